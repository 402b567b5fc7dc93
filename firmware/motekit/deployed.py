# What `mote deploy` keeps on the node (docs/host-tools.md, "Deploy"): /manifest.json, whose
# "build" id `info` reports, and the /deploying mark that keeps main.py at the REPL while a
# deploy is under way. Imported only when a console command needs it.
DEPLOYING = "/deploying"
MANIFEST = "/manifest.json"
_KEY = '"build": "'  # mote deploy writes the id among the manifest's first keys


def build():
    # The deployed build's id, or None. Only the head of the manifest is read: parsing its
    # list of files would take several KB of heap, and `info` must work on a full node.
    try:
        with open(MANIFEST) as f:
            head = f.read(200)
    except OSError:
        return None
    i = head.find(_KEY)
    j = head.find('"', i + len(_KEY)) if i >= 0 else -1
    return head[i + len(_KEY) : j] if j > 0 else None


def begin():
    # Mark a deploy as begun; `mote deploy` removes the mark once the manifest is written.
    with open(DEPLOYING, "w") as f:
        f.write("mote deploy")
