// Motekit report decoder for The Things Stack and ChirpStack v4: decodeUplink(input) with input
// {bytes, fPort, recvTime?, variables?} -> {data, warnings} or {errors}. Format: docs/payload.md.
//
// @@GENERATED@@
//
// ECMAScript 5.1 only (The Things Stack runs payload formatters on an ES 5.1 runtime; ChirpStack
// v4 runs QuickJS). `data` is what host_tools.payload.decode() returns:
//   {version, seq, seq_mod, part, more, incomplete, battery_v (part 0), faults (part 0),
//    samples: [{t, values: {"<sensor>.<quantity>": number}, missing?, uncal?, out_of_range?,
//               time?}]}   (oldest first; t in seconds, 0 for the report's newest sample)
//
// Sensors are named by kind ("sht4x"; the n-th of a kind "ds18b20_2"). To get your node's own
// sensor ids, set SENSORS below to the node's config "sensors" list, e.g.
//   var SENSORS = [{"kind": "battery"}, {"kind": "ds18b20", "id": "inside"}];
// or, on ChirpStack, give the device a variable "sensors" holding that list as JSON.
var SENSORS = null;

@@TABLES@@

function fail(message) {
  throw new Error(message);
}

function Reader(bytes) {
  this.bytes = bytes;
  this.pos = 0;
}

Reader.prototype.left = function () {
  return this.bytes.length - this.pos;
};

Reader.prototype.u8 = function (what) {
  if (this.pos >= this.bytes.length) {
    fail("frame ends at byte " + this.pos + ", before " + what);
  }
  return this.bytes[this.pos++] & 0xff;
};

Reader.prototype.uint = function (width, what) {
  var n = 0;
  for (var i = 0; i < width; i++) {
    n = n * 256 + this.u8(what);
  }
  return n;
};

Reader.prototype.varint = function (what) {
  var n = 0;
  for (var i = 0; i < 4; i++) {
    var b = this.u8(what);
    n += (b & 0x7f) * Math.pow(2, 7 * i);
    if (!(b & 0x80)) {
      return n;
    }
  }
  fail("time offset longer than 4 bytes at byte " + (this.pos - 1));
};

function sensorName(key, sensors) {
  var kind = KINDS[key >> 3][0];
  var inst = key & 7;
  if (sensors) {
    var seen = 0;
    for (var i = 0; i < sensors.length; i++) {
      if (sensors[i].kind === kind) {
        if (seen === inst) {
          return String(sensors[i].id || kind);
        }
        seen++;
      }
    }
  }
  return inst === 0 ? kind : kind + "_" + (inst + 1);
}

function descriptors(r, what) {
  var keys = [];
  for (;;) {
    var b = r.u8(what);
    var key = b >> 1;
    if ((key >> 3) >= KINDS.length) {
      fail("unknown sensor kind " + (key >> 3) + " at byte " + (r.pos - 1));
    }
    keys.push(key);
    if (b & 1) {
      return keys;
    }
  }
}

function readValue(r, q, what) {
  var width = q[2];
  var raw = r.uint(width, what);
  var span = Math.pow(2, 8 * width);
  if (q[3] ? raw === span / 2 : raw === span - 1) {
    return null;
  }
  if (q[3] && raw >= span / 2) {
    raw -= span;
  }
  return q[1] === 0 ? raw : raw / Math.pow(10, q[1]);
}

function bitmap(r, n, what) {
  var raw = [];
  var bits = [];
  for (var i = 0; i < (n + 7) >> 3; i++) {
    raw.push(r.u8(what));
  }
  for (var j = 0; j < n; j++) {
    bits.push(((raw[j >> 3] >> (j & 7)) & 1) === 1);
  }
  return bits;
}

function filled(n, value) {
  var out = [];
  for (var i = 0; i < n; i++) {
    out.push(value);
  }
  return out;
}

function pad(n, width) {
  var s = String(n);
  while (s.length < width) {
    s = "0" + s;
  }
  return s;
}

function isoTime(ms) {
  // Date.prototype.toISOString, written out: its output for years past 9999 differs by engine
  var t = new Date(ms);
  return (
    pad(t.getUTCFullYear(), 4) + "-" + pad(t.getUTCMonth() + 1, 2) + "-" + pad(t.getUTCDate(), 2) +
    "T" + pad(t.getUTCHours(), 2) + ":" + pad(t.getUTCMinutes(), 2) + ":" +
    pad(t.getUTCSeconds(), 2) + "." + pad(t.getUTCMilliseconds(), 3) + "Z"
  );
}

function decodeFrame(bytes, fPort, sensors, recvMs) {
  if (!(fPort >= 1 && fPort <= 223)) {
    fail("FPort " + fPort + " carries no report (reports use FPort 1..223)");
  }
  var r = new Reader(bytes);
  var b0 = r.u8("the header");
  var form = b0 >> 6;
  var seqBits, b1;
  if (form === SHORT) {
    // one sensor, no flags: its kind and the seq modulo 8 in byte 0
    seqBits = SHORT_SEQ_BITS;
    var kind = (b0 >> seqBits) & ((1 << (6 - seqBits)) - 1);
    if (kind >= BITMAP_KINDS) {
      fail("short frame of sensor kind " + kind + ": only kinds 0..6 have one");
    }
    b1 = 1 << kind;
  } else if (form === VERSION) {
    seqBits = SEQ_BITS;
    b1 = r.u8("the sensor bitmap");
  } else {
    fail("payload format version " + form + ": this decoder reads version " + VERSION);
  }
  var flags = b1 & HAS_FLAGS ? r.u8("the flags") : 0;
  if (flags & F_RESERVED) {
    fail("reserved flag bit set: a newer payload format?");
  }
  var part = 0;
  var more = false;
  if (flags & F_PART) {
    var p = r.u8("the part byte");
    part = p & PART_MAX;
    more = (p & PART_MORE) !== 0;
  }
  var keys = [];
  var i, k;
  for (k = 0; k < BITMAP_KINDS; k++) {
    if ((b1 >> k) & 1) {
      keys.push(k << 3);
    }
  }
  if (flags & F_DESCRIPTORS) {
    var extra = descriptors(r, "the sensor descriptors");
    for (i = 0; i < extra.length; i++) {
      if (keys.indexOf(extra[i]) >= 0) {
        fail("sensor " + sensorName(extra[i], null) + " listed twice");
      }
      keys.push(extra[i]);
    }
  }
  keys.sort(function (a, b) {
    return a - b;
  });
  var names = {};
  var channels = [];
  for (i = 0; i < keys.length; i++) {
    names[keys[i]] = sensorName(keys[i], sensors);
    var qs = KINDS[keys[i] >> 3][1];
    for (var j = 0; j < qs.length; j++) {
      channels.push([keys[i], names[keys[i]] + "." + QUANTITIES[qs[j]][0], QUANTITIES[qs[j]]]);
    }
  }
  var out = {
    version: VERSION,
    seq: b0 & ((1 << seqBits) - 1),
    seq_mod: 1 << seqBits,
    part: part,
    more: more,
    incomplete: (flags & F_INCOMPLETE) !== 0
  };
  var battery = null;
  if (flags & F_BATTERY) {
    if (part) {
      fail("battery voltage in a part other than 0");
    }
    battery = readValue(r, QUANTITIES[BATTERY_Q], "the battery voltage");
  }
  var faults = [];
  if (flags & F_FAULTS) {
    if (part) {
      fail("faults in a part other than 0");
    }
    var fk = descriptors(r, "the faults");
    for (i = 0; i < fk.length; i++) {
      faults.push(sensorName(fk[i], sensors));
    }
  }
  var n = channels.length;
  var samples = [];
  var offset = 0;
  while (samples.length === 0 || r.left() > 0) {
    if (samples.length > 0 || part) {
      offset += r.varint("a sample's time offset");
    }
    var have = flags & F_SPARSE ? bitmap(r, n, "a sample's channel bitmap") : filled(n, true);
    var uncal = flags & F_UNCAL ? bitmap(r, n, "a sample's uncal bitmap") : filled(n, false);
    var s = { t: offset === 0 ? 0 : -offset, values: {} };
    var bad = [];
    var unc = [];
    for (i = 0; i < n; i++) {
      if (have[i]) {
        var v = readValue(r, channels[i][2], "a value of " + channels[i][1]);
        if (v === null) {
          bad.push(channels[i][1]);
        } else {
          s.values[channels[i][1]] = v;
        }
        if (uncal[i]) {
          unc.push(channels[i][1]);
        }
      }
    }
    var missing = [];
    for (k = 0; k < keys.length; k++) {
      var any = false;
      for (i = 0; i < n; i++) {
        if (channels[i][0] === keys[k] && have[i]) {
          any = true;
        }
      }
      if (!any) {
        missing.push(names[keys[k]]);
      }
    }
    if (missing.length) {
      s.missing = missing;
    }
    if (unc.length) {
      s.uncal = unc;
    }
    if (bad.length) {
      s.out_of_range = bad;
    }
    if (recvMs !== null) {
      s.time = isoTime(recvMs - offset * 1000);
    }
    samples.push(s);
  }
  if (part === 0) {
    if (!(flags & F_BATTERY)) {
      // the newest sample's battery.voltage (instance 0) says it
      battery = null;
      if (names.hasOwnProperty(0)) {
        var bv = samples[0].values[names[0] + ".voltage"];
        battery = bv === undefined ? null : bv;
      }
    }
    out.battery_v = battery;
    out.faults = faults;
  }
  out.samples = samples.reverse();
  return out;
}

function sensorsFor(input) {
  var v = input.variables && input.variables.sensors;
  if (v) {
    return typeof v === "string" ? JSON.parse(v) : v;
  }
  return SENSORS;
}

function receivedMs(input) {
  var t = input.recvTime;
  if (t === undefined || t === null) {
    return null;
  }
  var ms = typeof t.getTime === "function" ? t.getTime() : Date.parse(t);
  return isNaN(ms) ? null : ms;
}

function warningsFor(data) {
  var warnings = [];
  if (data.incomplete) {
    warnings.push("the node left values of report " + data.seq + " out (docs/payload.md)");
  }
  if (data.part > 0 || data.more) {
    warnings.push("report " + data.seq + " part " + data.part + (data.more ? ", more follow" : ", the last"));
  }
  for (var i = 0; i < data.samples.length; i++) {
    var bad = data.samples[i].out_of_range;
    if (bad) {
      warnings.push("out of range at t=" + data.samples[i].t + ": " + bad.join(", "));
    }
  }
  return warnings;
}

function decodeUplink(input) {
  var data;
  try {
    data = decodeFrame(input.bytes, input.fPort, sensorsFor(input), receivedMs(input));
  } catch (e) {
    return { errors: [e && e.message ? e.message : String(e)] };
  }
  return { data: data, warnings: warningsFor(data) };
}
