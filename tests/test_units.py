"""Units: parsing and formatting of sizes, rates, durations and counts.

Truth: the SI/IEC prefix definitions (k..E = 10^3k, Ki..Ei = 2^10k), 8 bits per byte, and
vendor convention that a bare "400G"/"51.2T" rate is a line rate in bits/s.
"""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from aifabric.errors import ConfigError
from aifabric.units import (
    bits_per_s,
    bytes_per_s,
    format_bandwidth,
    format_bytes,
    format_count,
    format_duration,
    format_usd,
    gbps,
    parse_bandwidth,
    parse_bytes,
    parse_count,
    parse_duration,
)

# ----- golden values ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("400G", 400e9 / 8),  # bare prefix = vendor line rate, bits/s -> 50 GB/s
        ("400Gb/s", 50e9),
        ("400Gbps", 50e9),
        ("400 Gbit/s", 50e9),
        ("900GB/s", 900e9),
        ("900GBps", 900e9),
        ("900 byte/s", 900.0),
        ("51.2T", 51.2e12 / 8),  # 6.4e12 bytes/s: a 51.2 Tb/s switch
        ("800G", 100e9),
        ("1Kib/s", 1024 / 8),  # binary prefix, bits
        ("12345", 12345.0),  # plain number = bytes/s
        ("0", 0.0),
    ],
)
def test_parse_bandwidth_golden(text: str, expected: float) -> None:
    assert parse_bandwidth(text) == pytest.approx(expected, rel=1e-12)


def test_parse_bandwidth_headline_values_exact() -> None:
    assert parse_bandwidth("400G") == 50e9
    assert parse_bandwidth("900GB/s") == 900e9
    assert parse_bandwidth("51.2T") == pytest.approx(6.4e12, rel=1e-15)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("1.5TiB", 1.5 * 2**40),
        ("80GB", 80e9),
        ("80G", 80e9),  # a size with a prefix and no unit is bytes
        ("10Gb", 10e9 / 8),  # 1.25e9 bytes
        ("10 Gbit", 1.25e9),
        ("81920MiB", 80 * 2**30),  # nvidia-smi's A100 80GB
        ("200MB", 200e6),
        ("1KiB", 1024.0),
        ("1kB", 1000.0),
        ("3 bytes", 3.0),
        ("64", 64.0),
        ("1e3GB", 1e12),
    ],
)
def test_parse_bytes_golden(text: str, expected: float) -> None:
    assert parse_bytes(text) == pytest.approx(expected, rel=1e-12)


def test_parse_bytes_headline_values_exact() -> None:
    assert parse_bytes("1.5TiB") == 1.5 * 2**40
    assert parse_bytes("80GB") == 80e9
    assert parse_bytes("10Gb") == 1.25e9


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("10ms", 0.010),
        ("560ns", 560e-9),
        ("2h", 7200.0),
        ("100d", 100 * 86400.0),
        ("100 days", 8.64e6),
        ("1day", 86400.0),
        ("3min", 180.0),
        ("5us", 5e-6),
        ("5µs", 5e-6),
        ("7sec", 7.0),
        ("7s", 7.0),
        ("42", 42.0),  # plain number = seconds
    ],
)
def test_parse_duration_golden(text: str, expected: float) -> None:
    assert parse_duration(text) == pytest.approx(expected, rel=1e-12)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("156B", 156e9),  # B = billion for counts
        ("364.6M", 364.6e6),
        ("2048", 2048.0),
        ("1e6", 1e6),
        ("8k", 8000.0),
        ("1.5T", 1.5e12),
        ("70G", 70e9),
        ("1_000_000", 1e6),
        ("1,024", 1024.0),
    ],
)
def test_parse_count_golden(text: str, expected: float) -> None:
    assert parse_count(text) == pytest.approx(expected, rel=1e-12)


def test_numbers_pass_through_as_base_units() -> None:
    assert parse_bytes(80e9) == 80e9
    assert parse_bandwidth(50e9) == 50e9
    assert parse_duration(3) == 3.0
    assert parse_count(156e9) == 156e9


def test_bit_byte_helpers() -> None:
    assert bits_per_s(50e9) == 400e9
    assert bytes_per_s(400e9) == 50e9
    assert gbps(400) == 50e9
    assert bytes_per_s(bits_per_s(1.25e9)) == 1.25e9


# ----- errors -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("parser", "text", "pattern"),
    [
        (parse_bandwidth, "fast", r"cannot read 'fast' as a rate"),
        (parse_bandwidth, "400Gx", r"as a rate"),
        (parse_bandwidth, "-400G", r"finite non-negative"),
        (parse_bytes, "lots", r"cannot read 'lots' as a size"),
        (parse_bytes, "80 parsecs", r"as a size"),
        (parse_bytes, "-1GB", r"finite non-negative"),
        (parse_bytes, "1e400GB", r"finite non-negative"),
        (parse_duration, "soon", r"cannot read 'soon' as a duration"),
        (parse_duration, "10 fortnights", r"as a duration"),
        (parse_duration, "-2h", r"finite non-negative"),
        (parse_count, "many", r"cannot read 'many' as a count"),
        (parse_count, "12X", r"as a count"),
        (parse_count, "-3M", r"finite non-negative"),
        (parse_bytes, "", r"as a size"),
    ],
)
def test_bad_text_raises_config_error(parser, text: str, pattern: str) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(ConfigError, match=pattern):
        parser(text)


@pytest.mark.parametrize("parser", [parse_bandwidth, parse_bytes, parse_duration, parse_count])
@pytest.mark.parametrize("value", [None, True, [1], math.inf, math.nan, -1.0])
def test_bad_values_raise_config_error(parser, value) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(ConfigError):
        parser(value)


def test_error_names_the_field() -> None:
    with pytest.raises(ConfigError, match=r"^gpu x hbm: "):
        parse_bytes("huge", what="gpu x hbm")


def test_config_error_is_a_value_error() -> None:
    with pytest.raises(ValueError):
        parse_count("nope")


# ----- properties -------------------------------------------------------------------------

finite_nonneg = st.floats(min_value=0.0, max_value=1e280, allow_nan=False, allow_infinity=False)


@given(finite_nonneg)
def test_bytes_decimal_prefix_round_trip(x: float) -> None:
    assert parse_bytes(f"{x}GB") == x * 1e9
    assert parse_bytes(f"{x}TB") == x * 1e12


@given(finite_nonneg)
def test_bytes_binary_prefix_round_trip(x: float) -> None:
    assert parse_bytes(f"{x}GiB") == x * 2**30


@given(finite_nonneg)
def test_bandwidth_bits_and_bytes_round_trip(x: float) -> None:
    assert parse_bandwidth(f"{x}Gb/s") == x * 1e9 / 8
    assert parse_bandwidth(f"{x}Gbps") == x * 1e9 / 8
    assert parse_bandwidth(f"{x}G") == x * 1e9 / 8
    assert parse_bandwidth(f"{x}GB/s") == x * 1e9


@given(finite_nonneg)
def test_bits_are_one_eighth_of_bytes(x: float) -> None:
    assert parse_bytes(f"{x}Mb") == pytest.approx(parse_bytes(f"{x}MB") / 8, rel=1e-15)


@given(st.floats(min_value=0.0, max_value=1e200, allow_nan=False))
def test_duration_round_trip(x: float) -> None:
    assert parse_duration(f"{x}ms") == x * 1e-3
    assert parse_duration(f"{x}h") == x * 3600.0
    assert parse_duration(f"{x}d") == x * 86400.0


@given(st.floats(min_value=0.0, max_value=1e200, allow_nan=False))
def test_count_round_trip(x: float) -> None:
    assert parse_count(f"{x}B") == x * 1e9
    assert parse_count(f"{x}M") == x * 1e6


magnitudes = st.floats(min_value=1e-3, max_value=1e21, allow_nan=False)

# 4 significant digits -> relative rounding error at most 5e-4.
FORMAT_TOL = 5e-4


@given(magnitudes)
def test_format_parse_bytes_round_trip(x: float) -> None:
    assert parse_bytes(format_bytes(x)) == pytest.approx(x, rel=FORMAT_TOL)
    assert parse_bytes(format_bytes(x, binary=True)) == pytest.approx(x, rel=FORMAT_TOL)


@given(magnitudes)
def test_format_parse_bandwidth_round_trip(x: float) -> None:
    assert parse_bandwidth(format_bandwidth(x)) == pytest.approx(x, rel=FORMAT_TOL)
    assert parse_bandwidth(format_bandwidth(x, bits=False)) == pytest.approx(x, rel=FORMAT_TOL)


@given(st.floats(min_value=1e-10, max_value=1e9, allow_nan=False))
def test_format_parse_duration_round_trip(x: float) -> None:
    assert parse_duration(format_duration(x)) == pytest.approx(x, rel=FORMAT_TOL)


@given(st.floats(min_value=1.0, max_value=1e14, allow_nan=False))
def test_format_parse_count_round_trip(x: float) -> None:
    assert parse_count(format_count(x)) == pytest.approx(x, rel=FORMAT_TOL)


@given(st.text(max_size=24))
def test_parsers_raise_only_config_error_on_any_text(text: str) -> None:
    for parser in (parse_bandwidth, parse_bytes, parse_duration, parse_count):
        try:
            value = parser(text)
        except ConfigError:
            continue
        assert math.isfinite(value) and value >= 0


@given(
    st.from_regex(
        r"\A[+-]?[0-9]{0,4}(\.[0-9]{0,3})?([eE][+-]?[0-9]{1,3})? ?(Ki|Mi|Gi|k|M|G|T|E)?"
        r"(B|b|bit|B/s|b/s|bps|Bps|ms|ns|h|d)?\Z"
    )
)
def test_parsers_raise_only_config_error_on_unit_like_text(text: str) -> None:
    for parser in (parse_bandwidth, parse_bytes, parse_duration, parse_count):
        try:
            value = parser(text)
        except ConfigError:
            continue
        assert math.isfinite(value) and value >= 0


# ----- formatting golden values -------------------------------------------------------------


def test_format_golden() -> None:
    assert format_bytes(1.174405120e9) == "1.174 GB"
    assert format_bytes(1.174405120e9, binary=True) == "1.094 GiB"  # 1.09375 GiB
    assert format_bandwidth(50e9) == "400 Gb/s"
    assert format_bandwidth(900e9, bits=False) == "900 GB/s"
    assert format_duration(0.0117440512) == "11.74 ms"
    assert format_duration(0) == "0 s"
    # 0.000999...98 s must print as 1 ms, not 1000 us (float noise in 0.1 / 100).
    assert format_duration((1 - 0.9) / 100) == "1 ms"
    assert format_duration(153.26 * 86400) == "153.3 days"
    assert format_count(70.55e9).replace(" ", "") == "70.55B"
    assert format_usd(14.8e6) == "$14.8M"
    assert format_usd(12.5) == "$12.50"
