"""The `mote` command line: click commands that parse, call one service, and print."""
