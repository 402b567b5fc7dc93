# The gateway role (config "role": "gateway"): a board with a LoRa radio listens on one channel
# and forwards every frame it hears to the host as a console event, and transmits the downlinks
# the host asks for at a time counted from an uplink's timestamp (the node's RX1/RX2 window).
# The radio stays in continuous RX (the drivers' listen()/poll()), so every frame on the
# channel is heard except while a downlink is being transmitted.
# The host side is `mote gateway --port` (host_tools/gateway.py, SerialGateway); the protocol
# and the single-channel limits are in docs/gateway.md.
#
#   from motekit import gateway
#   gateway.run(app)      # from app.run() when app.cfg["role"] == "gateway"; never returns
#
# Events: gw_frame {phy, rssi, snr, freq, sf, bw, cr, t} with t = ticks_ms() at RxDone (the
# end of the uplink), gw_sent {t, late_ms, ok, msg}. Requests: gw_channel {freq, sf, bw: all
# optional} -> the channel; gw_send {phy, freq, sf, bw, ref, delay_ms, power} -> {queued: true,
# in_ms} or {queued: false, late_ms}: the downlink goes out at ticks_add(ref, delay_ms).
import binascii
import time

from micropython import const

from motekit import console, log, store
from motekit.console import Refused

_POLL_MS = const(50)  # longest radio polling between two looks at the console (RX stays on)
_TX_GUARD_MS = const(40)  # stop polling this long before a downlink is due (configure, wait)
_LATE_MS = const(20)  # a downlink may start this late: a node's RX window lasts some symbols
_TX_TIMEOUT_MS = const(12000)  # above 255 bytes at SF12/125 kHz (9.2 s on air)
_MAX_DELAY_MS = const(20000)  # RX2 after the longest RxDelay (15 s) + 1 s, with room
_TICKS_MAX = const(0x3FFFFFFF)  # ticks_ms() wraps at 2**30 (MICROPY_PY_TIME_TICKS_PERIOD)
_MAX_ERRORS = const(5)  # radio failures in a row before the gateway gives up (a reset)
_POWER_DBM = const(14)  # the EU868 limit (16 dBm EIRP) less a 2 dBi antenna
_FILE = "/gateway.json"
_BWS = (125000, 250000, 500000)


def default_channel(cfg):
    # The region's first join channel, at lorawan_dr clamped to that channel's data rates.
    import sys

    from motekit import lwregion

    try:
        name = cfg["lorawan_region"]
        reg = lwregion.region(name, cfg["lorawan_sub_band"] if name == "US915" else None)
        freq, lo, hi = reg.join_channels()[0]
        sf, bw = reg.dr(min(max(cfg["lorawan_dr"], lo), hi))
    finally:
        sys.modules.pop("motekit.lwregion", None)  # needed once: its tables leave the heap
    return freq, sf, bw


def _int(req, key, lo, hi, default=None):
    v = req.get(key, default)
    if not isinstance(v, int) or isinstance(v, bool) or not lo <= v <= hi:
        raise Refused("bad_value", "%s must be an integer %d..%d" % (key, lo, hi))
    return v


def _channel_args(req, cur):
    freq = _int(req, "freq", 137000000, 1020000000, cur[0])
    sf = _int(req, "sf", 7, 12, cur[1])
    bw = req.get("bw", cur[2])
    if bw not in _BWS:
        raise Refused("bad_value", "bw must be one of 125000, 250000, 500000")
    return freq, sf, bw


class Gateway:
    def __init__(self, radio, channel, emit=None, clock=time.ticks_ms):
        self.radio = radio
        self.freq, self.sf, self.bw = channel
        self.emit = emit or console.event
        self.clock = clock
        self.buf = bytearray(255)
        # (due ticks, phy, freq, sf, bw, power): one downlink waits at a time
        self.tx = None  # type: tuple | None
        self.rx = 0
        self.sent = 0
        self.late = 0
        self._listen()

    def _listen(self):
        # Uplinks: normal IQ, public sync word (the driver's default, 0x34 / 0x3444), then
        # continuous RX until the next downlink.
        self.radio.configure(self.freq, self.sf, self.bw, iq_invert=False)
        self.radio.listen()

    # --- console requests ----------------------------------------------------------------
    def channel(self, req):
        if "freq" in req or "sf" in req or "bw" in req:
            freq, sf, bw = _channel_args(req, (self.freq, self.sf, self.bw))
            old = (self.freq, self.sf, self.bw)
            self.freq, self.sf, self.bw = freq, sf, bw
            try:
                self._listen()
            except (OSError, ValueError):
                self.freq, self.sf, self.bw = old
                self._listen()
                raise
            store.write_json(_FILE, {"freq": freq, "sf": sf, "bw": bw})
            log.info("gateway: listening on %d Hz SF%d BW%d" % (freq, sf, bw))
        return {"freq": self.freq, "sf": self.sf, "bw": self.bw, "rx": self.rx,
                "sent": self.sent, "late": self.late}  # fmt: skip

    def send(self, req):
        phy = req.get("phy")
        try:
            phy = binascii.unhexlify(phy)
        except (TypeError, ValueError):
            raise Refused("bad_value", "phy must be hex") from None
        if not 0 < len(phy) <= 255:
            raise Refused("bad_value", "phy must be 1..255 bytes")
        freq, sf, bw = _channel_args(req, (None, None, None))
        ref = _int(req, "ref", 0, _TICKS_MAX)
        delay = _int(req, "delay_ms", 0, _MAX_DELAY_MS)
        power = _int(req, "power", 2, 22, _POWER_DBM)
        due = time.ticks_add(ref, delay)
        left = time.ticks_diff(due, self.clock())
        if left < -_LATE_MS:
            self.late += 1
            return {"queued": False, "late_ms": -left}
        if self.tx is not None:
            raise Refused("busy", "a downlink is already waiting")
        self.tx = (due, phy, freq, sf, bw, power)
        return {"queued": True, "in_ms": left}

    # --- the loop --------------------------------------------------------------------------
    def step(self):
        # A downlink that is due, else poll the listening radio for up to _POLL_MS: one frame
        # heard, or nothing, ends the step (the console is served between steps).
        start = self.clock()
        while True:
            now = self.clock()
            if self.tx is not None and time.ticks_diff(self.tx[0], now) <= _TX_GUARD_MS:
                self._transmit()
                return
            got = self.radio.poll(self.buf)
            if got is not None:
                break
            if time.ticks_diff(now, start) >= _POLL_MS:
                return
            time.sleep_ms(1)  # RxDone is stamped within 1 ms; the CPU is not kept spinning
        t = self.clock()  # RxDone: the end of the uplink, what the RX delays count from
        n, rssi, snr = got
        self.rx += 1
        self.emit(
            "gw_frame",
            phy=binascii.hexlify(bytes(self.buf[:n])).decode(),
            rssi=rssi,
            snr=snr,
            freq=self.freq,
            sf=self.sf,
            bw=self.bw,
            cr="4/5",
            t=t,
        )

    def _transmit(self):
        tx = self.tx
        if tx is None:
            return
        due, phy, freq, sf, bw, power = tx
        self.tx = None
        ok, msg = True, ""
        try:
            # Downlinks: inverted IQ (LoRaWAN 1.0.3 7.1, so nodes do not hear each other).
            self.radio.configure(freq, sf, bw, power_dbm=power, iq_invert=True)
            while time.ticks_diff(due, self.clock()) > 0:
                pass  # the last few ms: no sleep, the start time is what matters
            late = time.ticks_diff(self.clock(), due)
            self.radio.send(phy, _TX_TIMEOUT_MS)
            self.sent += 1
        except (OSError, ValueError) as e:
            late = time.ticks_diff(self.clock(), due)
            ok, msg = False, str(e)
            log.error("gateway: downlink not sent: %s" % e)
        self._listen()
        self.emit("gw_sent", t=self.clock(), late_ms=late, ok=ok, msg=msg)


def _saved_channel(cfg):
    obj, _ = store.read_json(_FILE)
    if isinstance(obj, dict):
        try:
            return _channel_args(obj, (None, None, None))
        except Refused:
            log.warning("gateway: %s is not a channel: the default one" % _FILE)
    return default_channel(cfg)


def run(app):
    # The gateway's life: the radio, then listen and serve the console until a reboot. A board
    # without a radio (or a chip that does not answer) goes to safe mode with the reason.
    import machine

    from motekit import commands, radio

    try:
        r = radio.open_radio(app.board)
        gw = Gateway(r, _saved_channel(app.cfg))
    except (OSError, ValueError) as e:
        app.mode = "safe"
        app.safe_reason = "gateway role: %s" % e
        log.error(app.safe_reason)
        print("motekit: " + app.safe_reason)
        return app.main()

    def handlers():
        h = commands.handlers(app)
        h["gw_channel"] = gw.channel
        h["gw_send"] = gw.send
        return h

    con = console.Console(handlers)
    app._console = con  # app.feed() and `hold` reach this console
    app.mode = "held"  # always listening to the host
    app.arm_watchdog()
    r.feed = app.wdt.feed if app.wdt is not None else None
    app.retained.set_crashes(app.st, 0)  # the radio is up: this boot did not crash
    app.retained.save(app.st)
    print("motekit: gateway on %d Hz SF%d BW%d" % (gw.freq, gw.sf, gw.bw))
    console.event("listen", ms=-1, mode="held")
    errors = 0
    while True:
        if app.wdt is not None:
            app.wdt.feed()
        con.serve(0)
        if con.after is not None:
            action, con.after = con.after, None
            if action == "reboot":
                app.retained.save(app.st)
                time.sleep_ms(50)  # let the reply leave the UART
                machine.reset()
            # release and sleep: a gateway stays up and listening
        try:
            gw.step()
            errors = 0
        except OSError as e:
            # A radio that stops answering: start it again; a reset (the app's crash
            # handling, then safe mode) only when it keeps failing.
            errors += 1
            log.error("gateway: radio: %s" % e)
            if errors >= _MAX_ERRORS:
                raise
            r.reset()
            gw.tx = None
            gw._listen()
