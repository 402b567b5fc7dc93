# Motekit node firmware. VERSION is what the node reports in its banner and to `mote`.
VERSION = "0.1.0"
