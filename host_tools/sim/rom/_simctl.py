# Device tests only (script mode): drive the virtual board's control channel from the node,
# e.g. set the environment, attach a device model or inject a fault before exercising a driver.
#
#   import _simctl
#   _simctl.request("attach", model="at24c32", bus="i2c0", addr=0x50)
import json

import _simlink
from micropython import const

_OP_CONTROL = const(0x43)


class SimControlError(Exception):
    pass


def request(cmd, **args):
    args["cmd"] = cmd
    status, data = _simlink.call(_OP_CONTROL, json.dumps(args).encode())
    reply = json.loads(data)
    if not reply.get("ok"):
        raise SimControlError(reply.get("error"))
    return reply
