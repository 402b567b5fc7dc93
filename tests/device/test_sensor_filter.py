# The sample filter (firmware/motekit/sensors.py): median, MAD outlier rejection.
from motekit import sensors


def test_median_odd_and_even():
    assert sensors.median([3.0, 1.0, 2.0]) == 2.0
    assert sensors.median([4.0, 1.0, 3.0, 2.0]) == 2.5


def test_robust_mean_rejects_a_spike_and_averages_the_rest():
    xs = [20.0, 20.2, 19.9, 20.1, 35.0]
    assert sensors.robust_mean(xs, 0) == 20.1  # plain median when rejection is off
    got = sensors.robust_mean(xs, 3.5)
    assert abs(got - 20.05) < 1e-9, got


def test_robust_mean_with_identical_readings_and_short_lists():
    assert sensors.robust_mean([5.0, 5.0, 5.0, 9.0], 3.0) == 5.0
    assert sensors.robust_mean([1.0, 3.0], 3.0) == 2.0
    assert sensors.robust_mean([7.0], 3.0) == 7.0
