"""Developer tools run by `make`: checks on the MicroPython sources, not shipped to nodes."""
