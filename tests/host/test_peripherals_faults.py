"""Fault specs parse to typed faults, print back, and reject bad forms; bit flips hit their rate."""

import random

import pytest

from host_tools.sim.peripherals.faults import (
    FAULT_FORMS,
    CorruptReplies,
    Detached,
    StaleData,
    StuckBus,
    flip_bits,
    parse_fault,
)


@pytest.mark.parametrize(
    ("spec", "fault"),
    [
        ("detach", Detached()),
        ("corrupt", CorruptReplies(prob=1.0)),
        ("corrupt:0.2", CorruptReplies(prob=0.2)),
        ("corrupt:0", CorruptReplies(prob=0.0)),
        (" Stuck ", StuckBus()),
        ("stale", StaleData()),
    ],
)
def test_specs_parse_to_faults(spec, fault):
    assert parse_fault(spec) == fault


@pytest.mark.parametrize("spec", ["detach", "corrupt", "corrupt:0.2", "stuck", "stale"])
def test_faults_print_as_their_spec(spec):
    assert str(parse_fault(spec)) == spec


@pytest.mark.parametrize(
    "spec",
    [
        "",
        "detached",
        "corrupt:",
        "corrupt:abc",
        "corrupt:1.5",
        "corrupt:-0.1",
        "corrupt:nan",
        "stale:1",
        "stuck:0.5",
        "detach:",
    ],
)
def test_bad_specs_name_the_allowed_forms(spec):
    with pytest.raises(ValueError) as info:
        parse_fault(spec)
    assert repr(spec) in str(info.value)
    assert FAULT_FORMS in str(info.value)


def test_corrupt_probability_is_checked_in_the_python_api_too():
    with pytest.raises(ValueError, match="0..1"):
        CorruptReplies(prob=1.01)


def test_flip_bits_flips_exactly_one_bit_per_hit_at_the_expected_rate():
    clean = bytes(random.Random(1).randrange(256) for _ in range(10_000))
    dirty = flip_bits(clean, 0.2, random.Random(7))
    hits = [(a ^ b) for a, b in zip(clean, dirty, strict=True) if a != b]
    # Binomial(10000, 0.2): mean 2000, sd 40; 5 sd either side.
    assert 1800 <= len(hits) <= 2200
    assert all(bin(x).count("1") == 1 for x in hits)
    assert set(hits) == {1 << bit for bit in range(8)}  # any bit can be hit, not just one


def test_flip_bits_is_reproducible_with_a_seed_and_a_no_op_at_zero():
    data = bytes(range(256))
    assert flip_bits(data, 0.5, random.Random(3)) == flip_bits(data, 0.5, random.Random(3))
    assert flip_bits(data, 0.5, random.Random(3)) != flip_bits(data, 0.5, random.Random(4))
    assert flip_bits(data, 0.0, random.Random(3)) == data
