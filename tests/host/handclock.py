"""The clock the device-model tests give a model: simulated milliseconds, advanced by hand.

clock = Clock()
model = Sht4x(clock, env=env)
clock.now += 8.3
"""


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now
