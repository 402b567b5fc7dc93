# Atomic JSON files with a last-good copy: /config.json, /secrets.json, /cal.json, counters.
#
#   from motekit import store
#   store.write_json("/config.json", {"version": 2, "sample_period": 60})
#   obj, source = store.read_json("/config.json")   # source "", ".bak", ".new" or None
#   if source: log.warning("recovered config.json from " + source)
#   store.writes                                    # files written since boot (flash wear)
#
# Why this survives a power cut on littlefs (the root filesystem of both ports):
# - A file's data is copy-on-write: writes go to fresh blocks, and the file's new size and block
#   pointer reach its directory's metadata log only in the commit that lfs_file_sync/close makes
#   (MicroPython's flush() and close()). A cut before that commit leaves the previous content
#   of PATH.new (or the empty file that open() created, which does not parse); the uncommitted
#   blocks are simply unused. A commit is checksummed, so a half-programmed one is discarded on
#   mount and the metadata pair falls back to its last good commit.
# - lfs_rename within one directory is one metadata commit that also drops a destination that
#   exists, so it is atomic: after a cut the name points to the old file or the new one.
# - So the states a cut can leave are, in write order:
#     1. PATH old, PATH.new partial/stale         -> read PATH (old)
#     2. PATH old, PATH.new complete              -> read PATH (old)
#     3. no PATH, PATH.bak old, PATH.new complete -> read PATH.bak (old)
#     4. PATH new, PATH.bak old                   -> read PATH (new)
#   and on the very first write (no PATH yet) the complete PATH.new is the only copy, hence the
#   last fallback. Each rename makes one commit; nothing is ever deleted, so there is always a
#   name that holds a complete file.
# - os.sync() flushes ports whose filesystem caches (FAT); littlefs has committed on close
#   already, and the unix-port virtual board has no os.sync.
# A FAT root would not be safe: its rename onto an existing file removes the destination first.
import json
import os

writes = 0  # files written by write_json since boot; the app reports flash writes per cycle


def write_json(path, obj):
    global writes
    # Serialise first, and check the text parses: MicroPython's json.dumps writes nan, inf and
    # the repr of any object, which read_json could not load. Such an object touches no file.
    data = json.dumps(obj)
    try:
        json.loads(data)
    except ValueError:
        raise ValueError("%s: the object has no JSON form" % path) from None
    new = path + ".new"
    with open(new, "w") as f:
        f.write(data)
        f.flush()  # lfs_file_sync: the content is committed before any rename
    sync = getattr(os, "sync", None)
    if sync is not None:
        sync()
    if exists(path):
        os.rename(path, path + ".bak")
    os.rename(new, path)
    writes += 1


def exists(path):
    try:
        os.stat(path)
        return True
    except OSError:
        return False


def _load(path):
    with open(path) as f:
        return json.load(f)


def read_json(path):
    # -> (obj, source): the first of PATH, PATH.bak, PATH.new that parses; (None, None) if none.
    for source in ("", ".bak", ".new"):
        try:
            return _load(path + source), source
        except (OSError, ValueError):
            pass
    return None, None
