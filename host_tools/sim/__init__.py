"""The virtual board: a real MicroPython interpreter behind a pty, run by a CPython supervisor.

Layout: `rom/` is MicroPython that runs on the virtual node (boot ROM, REPL, machine/time
shims); `node` starts and stops that interpreter; `link` frames the node<->supervisor RPC;
`serial_port` is the pty with its wire-rate throttle; `supervisor` ties them together with the
simulated clock and the device models in `peripherals`; `control` is the channel tests and
`mote sim` options use to drive the environment and inject faults.
"""
