# What each cycle cost, measured: awake time, time in sensors and in radios, peak heap (the
# high-water mark of live objects, gc.mem_alloc() after a collection at every stage boundary),
# flash writes, and an energy estimate from the board's power figures (board.json "power":
# supply_v, active_ma, sleep_ua, radio_ma).
#
#   stats.reset_peak()             # at the start of a cycle
#   stats.mark()                   # at each stage boundary
#   cyc = stats.cycle(board, awake_ms, sensors_ms, radio_ms, flash_writes, sleep_ms, mah)
import gc

_peak = 0


def mark():
    # Live heap at a stage boundary: collected first, so the figure does not depend on when the
    # GC last ran (a collection costs about a millisecond on an ESP32's 111 KB heap).
    global _peak
    gc.collect()
    used = gc.mem_alloc()
    if used > _peak:
        _peak = used


def peak():
    return _peak


def reset_peak():
    # A collection first, so the high-water mark is what this cycle holds and allocates.
    global _peak
    gc.collect()
    _peak = gc.mem_alloc()


def energy_mj(power, awake_ms, radio_ms, sleep_ms):
    # mA x s x V = mJ. The radio currents come on top of the CPU's active current; radio_ms
    # is keyed by their names in board.json ("ble_tx", "lora_tx", "lora_rx").
    v = power["supply_v"]
    awake = power["active_ma"] * awake_ms
    radios = power.get("radio_ma", {})
    for key, ms in radio_ms.items():
        awake += radios.get(key, 0) * ms
    return v * (awake + power["sleep_ua"] / 1000 * sleep_ms) / 1000


def cycle(board, awake_ms, sensors_ms, radio_ms, flash_writes, sleep_ms, battery_mah):
    power = board.get("power")
    cyc = {
        "awake_ms": awake_ms,
        "sensors_ms": sensors_ms,
        "radio_ms": sum(radio_ms.values()),
        "peak_heap": _peak,
        "flash_writes": flash_writes,
        "sleep_ms": sleep_ms,
    }
    if power:
        e = energy_mj(power, awake_ms, radio_ms, sleep_ms)
        cyc["energy_mj"] = round(e, 3)
        period_s = (awake_ms + sleep_ms) / 1000
        if period_s > 0:
            avg_ma = e / power["supply_v"] / period_s
            cyc["avg_ua"] = round(avg_ma * 1000, 1)
            if battery_mah and avg_ma > 0:
                cyc["battery_days"] = round(battery_mah / avg_ma / 24, 1)
    return cyc


def add_totals(tot, cyc, reported, missed):
    tot["cycles"] = tot.get("cycles", 0) + 1
    tot["reports"] = tot.get("reports", 0) + (1 if reported else 0)
    tot["missed_periods"] = tot.get("missed_periods", 0) + missed
    tot["flash_writes"] = tot.get("flash_writes", 0) + cyc["flash_writes"]
    tot["energy_mj"] = round(tot.get("energy_mj", 0) + cyc.get("energy_mj", 0), 3)
    tot["peak_heap"] = max(tot.get("peak_heap", 0), cyc["peak_heap"])
