"""Units: parse and format quantities; the only module that knows 1e9, 2**30 and 8 bits/byte.

Internally aifabric uses base units: bytes, seconds, bytes/s, FLOP, FLOP/s, watts, USD.
Vendors quote link and switch speeds in *bits* per second ("400G" NIC, "51.2T" switch),
and memory and NVLink bandwidth in *bytes* ("80GB", "900GB/s"). The parsers below make that
explicit:

- ``parse_bandwidth("400G")`` -> 50e9 bytes/s: a bare ``G``/``T`` rate is a vendor line rate,
  bits/s. ``"400Gb/s"``, ``"400Gbps"`` are bits/s; ``"900GB/s"``, ``"900GBps"`` bytes/s.
- ``parse_bytes("1.5TiB")`` -> 1.5 * 2**40; ``"80GB"`` -> 80e9; ``"10Gb"`` -> 1.25e9 (bits).
- ``parse_duration("10ms")`` -> 0.01; ``"560ns"``, ``"2h"``, ``"100d"``.
- ``parse_count("156B")`` -> 156e9 (B = billion for counts of tokens or parameters).

Decimal prefixes (k, M, G, T, P, E) are powers of 1000; binary prefixes (Ki, Mi, Gi, Ti, Pi,
Ei) powers of 1024.
"""

from __future__ import annotations

import math
import re

from aifabric.errors import ConfigError

BITS_PER_BYTE = 8

DECIMAL_PREFIX: dict[str, float] = {
    "": 1.0,
    "k": 1e3,
    "K": 1e3,
    "M": 1e6,
    "G": 1e9,
    "T": 1e12,
    "P": 1e15,
    "E": 1e18,
}
BINARY_PREFIX: dict[str, float] = {
    "Ki": 2.0**10,
    "Mi": 2.0**20,
    "Gi": 2.0**30,
    "Ti": 2.0**40,
    "Pi": 2.0**50,
    "Ei": 2.0**60,
}
KiB, MiB, GiB, TiB, PiB = (BINARY_PREFIX[p] for p in ("Ki", "Mi", "Gi", "Ti", "Pi"))
KB, MB, GB, TB, PB, EB = 1e3, 1e6, 1e9, 1e12, 1e15, 1e18

SECONDS_PER_UNIT: dict[str, float] = {
    "ns": 1e-9,
    "us": 1e-6,
    "µs": 1e-6,
    "ms": 1e-3,
    "s": 1.0,
    "sec": 1.0,
    "min": 60.0,
    "h": 3600.0,
    "d": 86400.0,
    "day": 86400.0,
    "days": 86400.0,
}
SECONDS_PER_DAY = SECONDS_PER_UNIT["d"]

_NUMBER = r"(?P<num>[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?)"
_PREFIX = r"(?P<prefix>Ki|Mi|Gi|Ti|Pi|Ei|k|K|M|G|T|P|E)?"
_BANDWIDTH_RE = re.compile(rf"^{_NUMBER}\s*{_PREFIX}(?P<unit>bps|Bps|b/s|B/s|bit/s|byte/s)?$")
_BYTES_RE = re.compile(rf"^{_NUMBER}\s*{_PREFIX}(?P<unit>B|b|bit|bits|byte|bytes)?$")
_DURATION_RE = re.compile(rf"^{_NUMBER}\s*(?P<unit>ns|us|µs|ms|sec|s|min|h|days|day|d)?$")
_COUNT_RE = re.compile(rf"^{_NUMBER}\s*(?P<suffix>k|K|M|B|G|T)?$")
_COUNT_SUFFIX = {"": 1.0, "k": 1e3, "K": 1e3, "M": 1e6, "B": 1e9, "G": 1e9, "T": 1e12}


def _prefix_factor(prefix: str | None) -> float:
    if not prefix:
        return 1.0
    return BINARY_PREFIX.get(prefix) or DECIMAL_PREFIX[prefix]


def _as_text(value: str | float | int, what: str) -> str | float:
    if isinstance(value, bool):
        raise ConfigError(f"{what}: expected a number or a string with units, got {value!r}")
    if isinstance(value, int | float):
        try:
            number = float(value)
        except OverflowError:
            raise ConfigError(f"{what}: the number is too large (above 1.8e308)") from None
        if not math.isfinite(number):
            raise ConfigError(f"{what}: {value!r} is not a finite number")
        return number
    if not isinstance(value, str):
        raise ConfigError(f"{what}: expected a number or a string with units, got {value!r}")
    return value.strip()


def parse_bandwidth(value: str | float | int, *, what: str = "bandwidth") -> float:
    """Parse a rate and return bytes/s.

    A plain number is taken as bytes/s. A prefix with no unit ("400G", "51.2T") is a vendor
    line rate in bits/s; "Gb/s", "Gbps", "bit/s" are bits/s; "GB/s", "GBps" are bytes/s.

    Raises:
        ConfigError: the text is not a rate.
    """
    text = _as_text(value, what)
    if isinstance(text, float):
        return _non_negative(text, what, value)
    match = _BANDWIDTH_RE.match(text)
    if match is None:
        raise ConfigError(
            f"{what}: cannot read {value!r} as a rate; write e.g. '400G' or '400Gb/s' "
            "(bits/s) or '900GB/s' (bytes/s)"
        )
    number = float(match["num"]) * _prefix_factor(match["prefix"])
    unit = match["unit"]
    if unit is None and not match["prefix"]:
        return _non_negative(number, what, value)
    in_bits = unit is None or unit in ("bps", "b/s", "bit/s")
    return _non_negative(number / BITS_PER_BYTE if in_bits else number, what, value)


def parse_bytes(value: str | float | int, *, what: str = "size") -> float:
    """Parse a data size and return bytes ("1.5TiB", "80GB", "80G" = 80e9 bytes, "10Gb" bits).

    Raises:
        ConfigError: the text is not a size.
    """
    text = _as_text(value, what)
    if isinstance(text, float):
        return _non_negative(text, what, value)
    match = _BYTES_RE.match(text)
    if match is None:
        raise ConfigError(f"{what}: cannot read {value!r} as a size; write e.g. '1.5TiB' or '80GB'")
    number = float(match["num"]) * _prefix_factor(match["prefix"])
    in_bits = match["unit"] in ("b", "bit", "bits")
    return _non_negative(number / BITS_PER_BYTE if in_bits else number, what, value)


def parse_duration(value: str | float | int, *, what: str = "duration") -> float:
    """Parse a duration and return seconds ("10ms", "560ns", "2h", "100d"; plain number = s).

    Raises:
        ConfigError: the text is not a duration.
    """
    text = _as_text(value, what)
    if isinstance(text, float):
        return _non_negative(text, what, value)
    match = _DURATION_RE.match(text)
    if match is None:
        raise ConfigError(f"{what}: cannot read {value!r} as a duration; write e.g. '10ms' or '2h'")
    seconds = float(match["num"]) * SECONDS_PER_UNIT[match["unit"] or "s"]
    return _non_negative(seconds, what, value)


def parse_count(value: str | float | int, *, what: str = "count") -> float:
    """Parse a count ("156B" = 156e9, "364.6M", "2048", "1e6"). B means billion here.

    Raises:
        ConfigError: the text is not a count.
    """
    text = _as_text(value, what)
    if isinstance(text, float):
        return _non_negative(text, what, value)
    match = _COUNT_RE.match(text.replace("_", "").replace(",", ""))
    if match is None:
        raise ConfigError(
            f"{what}: cannot read {value!r} as a count; write e.g. '156B' or '364.6M'"
        )
    return _non_negative(float(match["num"]) * _COUNT_SUFFIX[match["suffix"] or ""], what, value)


def _non_negative(number: float, what: str, original: object) -> float:
    if not math.isfinite(number) or number < 0:
        raise ConfigError(f"{what}: {original!r} must be a finite non-negative quantity")
    return number


def bits_per_s(bytes_per_s: float) -> float:
    """Convert bytes/s to bits/s."""
    return bytes_per_s * BITS_PER_BYTE


def bytes_per_s(bits_per_second: float) -> float:
    """Convert bits/s (a vendor line rate) to bytes/s."""
    return bits_per_second / BITS_PER_BYTE


def gbps(value: float) -> float:
    """A line rate given in Gb/s, returned in bytes/s."""
    return value * 1e9 / BITS_PER_BYTE


def _scaled(value: float, steps: list[tuple[float, str]], digits: int) -> str:
    magnitude = abs(value) * (1 + 1e-12)  # 0.000999...98 s is 1 ms, not 1000 us
    for factor, suffix in steps:
        if magnitude >= factor:
            return f"{value / factor:.{digits}g} {suffix}"
    factor, suffix = steps[-1]
    return f"{value / factor:.{digits}g} {suffix}"


def format_bytes(value: float, *, binary: bool = False, digits: int = 4) -> str:
    """Format bytes with decimal (default) or binary prefixes: 1.174e9 -> '1.174 GB'."""
    if binary:
        steps = [
            (2.0**60, "EiB"),
            (2.0**50, "PiB"),
            (2.0**40, "TiB"),
            (2.0**30, "GiB"),
            (2.0**20, "MiB"),
            (2.0**10, "KiB"),
            (1.0, "B"),
        ]
    else:
        steps = [(EB, "EB"), (PB, "PB"), (TB, "TB"), (GB, "GB"), (MB, "MB"), (KB, "kB"), (1.0, "B")]
    return _scaled(value, steps, digits)


def format_bandwidth(value: float, *, bits: bool = True, digits: int = 4) -> str:
    """Format a rate given in bytes/s, as bits/s (default, vendor style) or bytes/s."""
    if bits:
        steps = [
            (1e15, "Pb/s"),
            (1e12, "Tb/s"),
            (1e9, "Gb/s"),
            (1e6, "Mb/s"),
            (1e3, "kb/s"),
            (1.0, "b/s"),
        ]
        return _scaled(value * BITS_PER_BYTE, steps, digits)
    steps = [
        (1e15, "PB/s"),
        (1e12, "TB/s"),
        (1e9, "GB/s"),
        (1e6, "MB/s"),
        (1e3, "kB/s"),
        (1.0, "B/s"),
    ]
    return _scaled(value, steps, digits)


def format_duration(seconds: float, *, digits: int = 4) -> str:
    """Format seconds with the largest unit that keeps the number >= 1 (ns .. days)."""
    steps = [
        (86400.0, "days"),
        (3600.0, "h"),
        (60.0, "min"),
        (1.0, "s"),
        (1e-3, "ms"),
        (1e-6, "us"),
        (1e-9, "ns"),
    ]
    if seconds == 0:
        return "0 s"
    return _scaled(seconds, steps, digits)


def format_count(value: float, *, digits: int = 4) -> str:
    """Format a count with K/M/B/T suffixes (B = billion): 70.55e9 -> '70.55 B'."""
    steps = [(1e12, "T"), (1e9, "B"), (1e6, "M"), (1e3, "K"), (1.0, "")]
    return _scaled(value, steps, digits).replace(" ", "")


def format_flops(value: float, *, digits: int = 4) -> str:
    """Format FLOP or FLOP/s with decimal prefixes (no unit suffix)."""
    steps = [(1e18, "E"), (1e15, "P"), (1e12, "T"), (1e9, "G"), (1e6, "M"), (1.0, "")]
    return _scaled(value, steps, digits).rstrip()


def format_usd(value: float) -> str:
    """Format US dollars: 14.8e6 -> '$14.8M'."""
    for factor, suffix in ((1e9, "B"), (1e6, "M"), (1e3, "k")):
        if abs(value) >= factor:
            return f"${value / factor:.4g}{suffix}"
    return f"${value:.2f}"
