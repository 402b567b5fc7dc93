# firmware/motekit/store.py on both virtual boards: the states a power cut can leave behind are
# made by hand, and read_json must find the old or the new content in each.
import json
import os

import _devtest
from motekit import store

P = "/s.json"


def _clean():
    for suffix in ("", ".bak", ".new"):
        try:
            os.remove(P + suffix)
        except OSError:
            pass


def _put(path, text):
    with open(path, "w") as f:
        f.write(text)


def _text(path):
    with open(path) as f:
        return f.read()


def _exists(path):
    try:
        os.stat(path)
        return True
    except OSError:
        return False


def test_write_then_read_and_the_previous_copy_is_kept_as_bak():
    _clean()
    w0 = store.writes
    store.write_json(P, {"n": 1})
    assert store.read_json(P) == ({"n": 1}, "")
    assert not _exists(P + ".bak") and not _exists(P + ".new")
    store.write_json(P, {"n": 2, "s": "two", "l": [1.5, None, True]})
    assert store.read_json(P) == ({"n": 2, "s": "two", "l": [1.5, None, True]}, "")
    assert json.loads(_text(P + ".bak")) == {"n": 1}
    assert not _exists(P + ".new")
    assert store.writes == w0 + 2
    _clean()


def test_nothing_on_disk_reads_as_none():
    _clean()
    assert store.read_json(P) == (None, None)


def test_corrupt_file_falls_back_to_bak():
    # E.g. a file edited by hand, or damaged: the last good copy is used.
    _clean()
    store.write_json(P, {"n": 1})
    store.write_json(P, {"n": 2})
    _put(P, '{"n": 3')
    assert store.read_json(P) == ({"n": 1}, ".bak")
    _clean()


def test_cut_between_the_renames_reads_the_old_copy_from_bak():
    # State 3: config.json renamed to .bak, the complete .new not yet renamed.
    _clean()
    _put(P + ".bak", '{"n": 1}')
    _put(P + ".new", '{"n": 2}')
    assert store.read_json(P) == ({"n": 1}, ".bak")
    _clean()


def test_first_write_cut_before_its_rename_reads_the_complete_new():
    _clean()
    _put(P + ".new", '{"n": 1}')
    assert store.read_json(P) == ({"n": 1}, ".new")
    _clean()


def test_a_new_file_that_never_got_its_data_is_not_used():
    # littlefs commits the empty file at open(): a cut while writing leaves it empty.
    _clean()
    _put(P + ".new", "")
    assert store.read_json(P) == (None, None)
    _put(P + ".bak", '{"n": 0}')
    _put(P + ".new", '{"n": 1')  # truncated
    assert store.read_json(P) == ({"n": 0}, ".bak")
    _clean()


def test_cut_while_writing_new_keeps_the_current_file():
    _clean()
    store.write_json(P, {"n": 1})
    _put(P + ".new", "")
    assert store.read_json(P) == ({"n": 1}, "")
    # The next write replaces the leftover .new and the file moves on as usual.
    store.write_json(P, {"n": 2})
    assert store.read_json(P) == ({"n": 2}, "")
    assert json.loads(_text(P + ".bak")) == {"n": 1}
    assert not _exists(P + ".new")
    _clean()


def test_write_after_a_recovery_leaves_old_and_new():
    # After state 3 (no file, .bak old), the next write must not lose the .bak.
    _clean()
    _put(P + ".bak", '{"n": 1}')
    _put(P + ".new", '{"n": 2}')
    store.write_json(P, {"n": 3})
    assert store.read_json(P) == ({"n": 3}, "")
    assert json.loads(_text(P + ".bak")) == {"n": 1}
    _clean()


def test_an_unserialisable_object_touches_no_file():
    _clean()
    store.write_json(P, {"n": 1})
    w0 = store.writes
    # MicroPython's json.dumps writes these, but nothing could read them back.
    for bad in (object(), float("nan"), float("inf")):
        e = _devtest.raises(ValueError, store.write_json, P, {"n": bad})
        assert str(e) == "/s.json: the object has no JSON form"
    assert store.read_json(P) == ({"n": 1}, "")
    assert not _exists(P + ".new") and not _exists(P + ".bak")
    assert store.writes == w0
    _clean()


def test_a_directory_in_the_way_is_an_oserror_not_a_crash_of_read():
    _clean()
    os.mkdir(P)
    try:
        assert store.read_json(P) == (None, None)
    finally:
        os.rmdir(P)
