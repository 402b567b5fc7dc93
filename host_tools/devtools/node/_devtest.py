# Device-test harness: runs on the virtual node (MicroPython), driven by
# host_tools.devtools.devtest.
# Each test's output is framed by marker lines that the host parses; a failing test prints its
# MicroPython traceback inside its frame.
#
#   import _devtest
#   _devtest.run("test_example", ["test_a", "test_b"])
import sys
import time

_MARK = "\x1edevtest:"


class SkipTest(Exception):
    pass


def skip(reason):
    raise SkipTest(reason)


def raises(exc_type, fn, *args, **kwargs):
    # Assert that fn(*args, **kwargs) raises exc_type; return the exception for inspection.
    try:
        fn(*args, **kwargs)
    except exc_type as e:
        return e
    raise AssertionError("%s not raised" % exc_type.__name__)


def sensor_rail(on=True):
    # Switch the virtual board's sensor rail (board.json pins.sensor_power), which feeds every
    # I2C and 1-Wire model: they do not answer while it is off, and restart from power-on reset
    # when it comes on. Returns the pin number, or None on a board without the switch.
    import _simctl
    import machine

    pin = _simctl.request("status")["hardware"]["sensor_rail"]["pin"]
    if pin is not None:
        machine.Pin(pin, machine.Pin.OUT, value=1 if on else 0)
        # A pin write reaches the board without a reply; a request after it returns once the
        # board has switched the rail, so the caller's warm-up starts from there, however
        # loaded the machine is.
        _simctl.request("status")
    return pin


def run(module_name, names):
    mod = __import__(module_name)
    for name in names:
        fn = getattr(mod, name, None)
        print(_MARK + "start " + name)
        if fn is None:
            print(_MARK + "fail " + name)
            continue
        t0 = time.ticks_ms()
        try:
            fn()
        except SkipTest as e:
            print(_MARK + "skip " + name + " " + str(e))
            continue
        except BaseException as e:  # noqa: B036  a device test may raise anything
            sys.print_exception(e)
            print(_MARK + "fail " + name)
            continue
        print(_MARK + "pass %s %d" % (name, time.ticks_diff(time.ticks_ms(), t0)))
    print(_MARK + "done")
