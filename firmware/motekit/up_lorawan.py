# The LoRaWAN uplink ("lorawan" in /config.json "uplinks"; motekit.uplinks loads it): joins when
# needed, encodes the report (motekit.payload) for the current data rate and sends each frame
# through the MAC in motekit.lorawan. Results go to the log; keys never do.
#
#   up = Uplink(board, st, cfg)      # OSError on a board without a LoRa radio
#   up.feed = wdt.feed               # called at least every second while it waits
#   up.send(report)                  # OSError when it could not (not joined yet, radio fault)
from motekit import log


class Uplink:
    RADIO = "lora"  # send() sets radio_ms: the MAC's time on air and in RX windows

    def __init__(self, board, st, cfg):
        if "lora" not in (board.get("radios") or ()):
            raise OSError("this board has no LoRa radio")
        self.board = board
        self.st = st
        self.cfg = cfg
        self.feed = None
        self.mac = None  # the last send's MAC
        self.radio_ms = None
        self.radio = None  # tests: a radio (and a clock) instead of the board's
        self.clock = None

    def open(self):
        from motekit import lorawan, lwregion, secrets

        cfg = self.cfg
        keys = {}
        abp = cfg["lorawan_activation"] == "abp"
        for name in ("nwkskey", "appskey") if abp else ("appkey", "nwkkey"):
            keys[name] = secrets.get("lorawan." + name)
        radio = self.radio
        if radio is None:
            from motekit.radio import open_radio

            radio = open_radio(self.board)
        reg = lwregion.region(cfg["lorawan_region"], sub_band=cfg["lorawan_sub_band"])
        mac = lorawan.Mac(radio, reg, self.st, cfg, keys, lorawan.warm(), self.clock)
        mac.feed = self.feed
        self.mac = mac
        return mac

    def send(self, report):
        from motekit import payload

        cfg = self.cfg
        self.radio_ms = None
        mac = self.open()
        mac.battery_v = report.get("battery_v")
        try:
            joined = mac.joined or mac.join()
            frames = payload.encode(report, mac.max_len(), cfg["sensors"])
            if not joined:
                mac.defer([[cfg["lorawan_fport"], f] for f in frames], "not joined")
                raise OSError("not joined yet; report %d kept for later" % report["seq"])
            res = mac.uplink(frames, cfg["lorawan_fport"], cfg["lorawan_confirmed"])
        finally:
            mac.radio.sleep()
            self.radio_ms = mac.radio_ms
        st = mac.stats
        log.info(
            "lorawan: report %d: %d frame(s) sent, %d deferred, FCnt %s, DR%d"
            % (report["seq"], res["sent"], res["deferred"], st.get("fcnt"), mac.s["dr"])
        )
