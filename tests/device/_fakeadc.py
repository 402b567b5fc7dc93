# An ADC stand-in for the analog drivers' device tests: read_u16() gives the codes in turn,
# round and round.


class Sequence:
    def __init__(self, codes):
        self._codes = codes
        self._i = 0

    def read_u16(self):
        code = self._codes[self._i % len(self._codes)]
        self._i += 1
        return code
