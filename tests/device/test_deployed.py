# firmware/motekit/deployed.py on both virtual boards: the build id read from the head of the
# manifest `mote deploy` writes, and the deploy mark.
import json
import os

from motekit import deployed

deployed.MANIFEST = "/manifest_test.json"
deployed.DEPLOYING = "/deploying_test"


def _put(text):
    with open(deployed.MANIFEST, "w") as f:
        f.write(text)


def test_the_build_id_comes_from_the_manifest_head():
    files = {}
    for i in range(40):  # a long manifest: only its head is read
        files["/lib/m%d.mpy" % i] = {"sha256": "ab" * 32, "size": 1000 + i}
    _put(
        json.dumps(
            {
                "version": 1,
                "fw": "0.1.0",
                "board": "rpi-pico-lora-sx1262",
                "build": "4c9b2ffe12207f64",
                "files": files,
            }
        )
    )
    assert deployed.build() == "4c9b2ffe12207f64"


def test_no_manifest_or_no_build_is_none():
    try:
        os.remove(deployed.MANIFEST)
    except OSError:
        pass
    assert deployed.build() is None
    _put('{"version": 1, "files": {}}')
    assert deployed.build() is None
    _put('{"build": "unterminated')
    assert deployed.build() is None


def test_begin_marks_the_deploy():
    deployed.begin()
    with open(deployed.DEPLOYING) as f:
        assert f.read() == "mote deploy"
    os.remove(deployed.DEPLOYING)
