# Motekit boot.py: runs on every boot, including wakes from deep sleep. Keep it tiny: the
# application starts from main.py, and the raw REPL (mpremote) runs boot.py but not main.py.
