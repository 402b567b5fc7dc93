# What `mote deploy` keeps on the node (docs/host-tools.md, "Deploy"): /manifest.json, whose
# "build" id `info` reports, and the /deploying mark that keeps main.py at the REPL while a
# deploy is under way. Imported only when a console command needs it.
import json

DEPLOYING = "/deploying"
MANIFEST = "/manifest.json"


def build():
    # The deployed build's id, or None (no manifest, or not ours).
    try:
        with open(MANIFEST) as f:
            return json.load(f).get("build")
    except (OSError, ValueError, AttributeError):
        return None


def begin():
    # Mark a deploy as begun; `mote deploy` removes the mark once the manifest is written.
    with open(DEPLOYING, "w") as f:
        f.write("mote deploy")
