# A counter that never goes backwards, even across a power loss: report sequence numbers now,
# radio frame counters later. Writing flash on every increment would wear it and cost energy, so
# the file holds a reservation (value + step): the live value rides in retained state, and the
# file is rewritten once per `step` increments. After a power loss the counter resumes at the
# reservation, skipping at most `step` values, never repeating one.
#
#   seq = NvCounter("/seq.json", st, "seq")     # st: the retained-state dict
#   n = seq.next()
from motekit import store


class NvCounter:
    def __init__(self, path, st, key, step=64):
        self._path = path
        self._st = st
        self._key = key
        self._step = step
        if key not in st or key + "_lim" not in st:
            obj, _ = store.read_json(path)
            start = obj.get("next", 0) if isinstance(obj, dict) else 0
            if not isinstance(start, int) or start < 0:
                start = 0
            st[key] = start
            self._reserve(start + step)

    def _reserve(self, limit):
        store.write_json(self._path, {"next": limit})
        self._st[self._key + "_lim"] = limit

    def value(self):
        return self._st[self._key]

    def next(self):
        n = self._st[self._key]
        if n + 1 >= self._st[self._key + "_lim"]:
            self._reserve(n + 1 + self._step)
        self._st[self._key] = n + 1
        return n
