# The life of a LoRaWAN session on the node, off the common path of motekit.lorawan: restoring
# it from /lorawan.json after a reset or power loss, saving it (a join, a changed setting, an
# FCntUp reservation, a downlink), the duty-cycle history in /lwdc.json, the region defaults,
# and the queue of deferred frames. lorawan.Mac imports it when it needs one of these; the OTAA
# join is in lwjoin.py.
#
#   lwsession.restore(mac, ident, retained, warm)  # mac.s: the session to use
#   lwsession.save(mac)                            # /lorawan.json, atomically
#   lwsession.restore_dc(mac)                      # /lwdc.json's history, after a power loss
import binascii

from micropython import const

from motekit import log, lorawan, lwregion, store

_Q_FRAMES = const(4)  # deferred frames kept in retained state, at most ...
_Q_BYTES = const(128)  # ... and their payload bytes
# Kept in /lorawan.json ("fu" there is the reservation, fl).
_KEEP = ("id", "rg", "a", "nk", "ak", "fd", "jn", "hi", "dr", "pw", "nb", "o1", "r2", "f2", "d1")
_KEEP2 = ("mdc", "ch", "dl", "one")
# What belongs to the node's radio, not to a session: kept when a session is replaced.
RADIO_STATE = ("dc", "q", "jt", "j0", "jc")


def restore(mac, ident, old, warm):
    # mac.s <- the session for identity ident: the retained one when only the region changed,
    # else the one in /lorawan.json (counters resumed at their reservations), else a new one:
    # OTAA unjoined, or ABP from the config. Region defaults when the region is new to it.
    if warm and old.get("id") == ident:
        s = old
    else:
        s = {}
        for k in RADIO_STATE:  # DevNonce ("dn") is read from its own file again
            if k in old:
                s[k] = old[k]
        obj, _ = store.read_json(lorawan.PATH)
        if not isinstance(obj, dict):
            obj = {}
        if obj.get("id") == ident:
            for k in _KEEP + _KEEP2:
                if k in obj:
                    s[k] = obj[k]
            if "fu" in obj:
                s["fu"] = s["fl"] = obj["fu"]  # resume at the reservation, above any used
        else:
            s["id"] = ident
            hi = obj.get("hi", 0)
            if isinstance(hi, int) and hi > 0:
                s["hi"] = hi
            if mac.abp:
                addr = mac.cfg["lorawan_dev_addr"]
                if len(addr) != 8:
                    raise ValueError("ABP needs lorawan_dev_addr (8 hex digits)")
                s["a"] = int(addr, 16)
                # ABP keys are the user's and may have had a session here before: the counter
                # starts above every reservation this node ever made.
                s["fu"] = s["fl"] = s.get("hi", 0)
                s["fd"] = -1
    mac.s = s
    if not warm:
        restore_dc(mac)
    if s.get("rg") != lorawan.region_tag(mac.cfg) or ("ch" in s and not mac.reg.restore(s["ch"])):
        defaults(mac)


def defaults(mac):
    # The region's default settings: a new session, or a region changed under an ABP one.
    s = mac.s
    reg = mac.reg
    for k in ("ch", "dl", "mdc"):
        s.pop(k, None)
    s["dr"] = reg.clamp_dr(mac.cfg["lorawan_dr"])
    s["pw"] = 0
    s["nb"] = 1
    s["o1"] = 0
    s["f2"], s["r2"] = reg.rx2_default
    s["d1"] = 1
    s["rg"] = lorawan.region_tag(mac.cfg)
    s.pop("one", None)
    if mac.cfg["lorawan_single_channel"]:
        single(mac)


def single(mac):
    # lorawan_single_channel: the region's first join channel alone, at lorawan_dr clamped to
    # it: where a gateway-role board listens by default (gateway.default_channel).
    s = mac.s
    freq, lo, hi = mac.reg.join_channels()[0]
    mac.reg.only(freq)
    s["ch"] = mac.reg.state()
    s["dr"] = min(max(mac.cfg["lorawan_dr"], lo), hi)
    s["one"] = 1


def fresh_region(cfg):
    return lwregion.region(cfg["lorawan_region"], sub_band=cfg["lorawan_sub_band"])


def save(mac, fl=None):
    # /lorawan.json: the session and its settings, with the FCntUp reservation fl. Raises when
    # the file cannot be written; callers change retained state only after it succeeded.
    s = mac.s
    obj = {}
    for k in _KEEP + _KEEP2:
        if k in s:
            obj[k] = s[k]
    if fl is None:
        fl = s.get("fl")
    if fl is not None:
        obj["fu"] = fl
        obj["hi"] = max(s.get("hi", 0), fl)
    store.write_json(lorawan.PATH, obj)
    if "hi" in obj:
        s["hi"] = obj["hi"]


def restore_dc(mac):
    # After any boot but a deep-sleep wake: the duty-cycle record in /lwdc.json (lorawan
    # Mac.keep_dc) as if its transmission had just ended now, since the node cannot know how long
    # it was off; merged into whatever retained state holds (a watchdog reset may leave an
    # older copy). The per-band time-off and the hourly budget then count from this boot on.
    rec, _ = store.read_json(lorawan.DC_PATH)
    if not isinstance(rec, dict):
        return
    try:
        lwregion.DutyCycle(mac.s.setdefault("dc", {})).restore(rec, mac.now_ms())
    except (TypeError, ValueError, IndexError):
        # Not a record keep_dc wrote: the next transmission writes a new one. What was merged
        # before the error stays (it only makes the node wait longer).
        log.warning("lorawan: %s unreadable: duty-cycle history not restored" % lorawan.DC_PATH)


def defer(mac, items, why):
    # Keep [fport, bytes|base64] items for the next wake: the newest _Q_FRAMES / _Q_BYTES.
    q = []
    size = 0
    for p, f in items:
        if not isinstance(f, str):
            f = binascii.b2a_base64(f).decode().strip()
        q.append([p, f])
        size += len(f) * 3 // 4
    mac.count("deferred", len(q))
    mac.stats["last_deferred_ms"] = mac.now_ms()
    while q and (len(q) > _Q_FRAMES or size > _Q_BYTES):
        size -= len(q.pop(0)[1]) * 3 // 4
        mac.count("dropped")
    if q:
        mac.s["q"] = q
    log.warning("lorawan: %s: %d frame(s) kept for the next wake" % (why, len(q)))
