# Deciding what to report: a pure function of the retained state, the new sample and the
# config, so it is tested without a board. docs/node-files.md describes the rules.
#
#   reasons, send = decide(st, sample, cfg, now_s, alarms)
#
# A sample is queued into the batch when it is the first, a channel moved at least its
# threshold from the last queued value (or appeared/disappeared), the heartbeat is due, or an
# alarm fired. The batch is sent when it holds cfg["batch"] samples, or at once on the first
# sample, a heartbeat or an alarm. A batch left over from a send that failed (a crash, a power
# cut) is sent at the next wake.


def _changed(last, values, thresholds):
    if set(last) != set(values):
        return True
    for ch, v in values.items():
        th = thresholds.get(ch[ch.rfind(".") + 1 :])
        if th is not None and abs(v - last[ch]) >= th:
            return True
    return False


def decide(st, sample, cfg, now_s, alarms):
    reasons = []
    last = st.get("last")
    if last is None:
        reasons.append("first")
    elif _changed(last, sample["values"], cfg["thresholds"]):
        reasons.append("change")
    if last is not None and now_s - st.get("last_up", now_s) >= cfg["heartbeat"]:
        reasons.append("heartbeat")
    for a in alarms:
        if a not in reasons:
            reasons.append(a)
    batch = st.setdefault("batch", [])
    if reasons:
        batch.append(sample)
        st["last"] = sample["values"]
    urgent = [r for r in reasons if r != "change"]
    send = bool(batch) and (len(batch) >= cfg["batch"] or bool(urgent))
    if send and len(batch) >= cfg["batch"] and (cfg["batch"] > 1 or not reasons):
        reasons.append("batch")  # full; or left over from a send that failed
    return reasons, send


def build(st, seq, reasons, battery_v, faults):
    return {
        "seq": seq,
        "reason": reasons,
        "samples": st["batch"],
        "battery_v": battery_v,
        "faults": faults,
    }
