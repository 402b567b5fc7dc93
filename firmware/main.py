# Motekit main.py: hands over to the application in /lib/motekit, unless a deploy has begun and
# not finished (`mote deploy` writes /deploying first and removes it last): then the node stays
# at the REPL rather than run a half-copied firmware, and says so.
import os


def _deploying():
    try:
        os.stat("/deploying")
        return True
    except OSError:
        return False


if _deploying():
    print("motekit: a deploy has not finished (/deploying): staying at the REPL; run mote deploy")
else:
    del os, _deploying
    from motekit import app

    app.run()
