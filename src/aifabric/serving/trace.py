"""Request traces: Mooncake JSONL and Azure 2023 CSV readers, and trace statistics.

A Trace holds NumPy arrays (arrival time in s from the first request, prompt and output
tokens) and, for Mooncake, each request's prefix-block hash ids (512 tokens a block). Two
requests sharing their first k ids share the KV cache of their first k x 512 tokens, so a
cache of blocks answers "how much of this prompt's KV is reusable" by its longest run of
leading ids already cached.

References: Mooncake (Qin et al., FAST'25) trace release; Azure LLM inference trace 2023
(Patel et al., Splitwise, ISCA'24).
"""

from __future__ import annotations

import csv
import json
import math
from collections import OrderedDict
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from aifabric.errors import ConfigError

MOONCAKE_BLOCK_TOKENS = 512
FORMATS = ("mooncake", "azure")


@dataclass(frozen=True, slots=True, eq=False)
class Trace:
    """Requests sorted by arrival; block_hashes is None when the format has none."""

    name: str
    arrival: np.ndarray  # s, from the first request
    input_tokens: np.ndarray
    output_tokens: np.ndarray
    block_hashes: list[list[int]] | None = None
    block_tokens: int = MOONCAKE_BLOCK_TOKENS

    @property
    def num_requests(self) -> int:
        return int(self.arrival.shape[0])


def detect_format(path: Path) -> str:
    return "azure" if path.suffix.lower() == ".csv" else "mooncake"


MAX_TRACE_TOKENS = 100_000_000  # per request: 10x the longest published context (10M)
MAX_TRACE_TIMESTAMP_MS = 1e15  # ~31,700 years of milliseconds (Mooncake: ms from the start)


def read_trace(path: str | Path, fmt: str | None = None) -> Trace:
    """Read a trace file (format from the extension unless given).

    Every record is checked at the edge: token counts are whole numbers in
    [1, MAX_TRACE_TOKENS] (outputs may be 0), timestamps finite numbers >= 0.

    Raises:
        ConfigError: unreadable, binary or non-UTF-8 file, unknown format, a malformed or
            absurd record (its line named), or no requests.
    """
    p = Path(path)
    fmt = fmt or detect_format(p)
    if fmt not in FORMATS:
        raise ConfigError(f"trace format(={fmt!r}) must be one of {', '.join(FORMATS)}")
    try:
        with p.open("rb") as f:
            lines = _text_lines(f, p.name)
            return (
                _read_mooncake(lines, p.name) if fmt == "mooncake" else _read_azure(lines, p.name)
            )
    except IsADirectoryError:
        raise ConfigError(f"cannot read trace {str(p)!r}: it is a directory; give a file") from None
    except OSError as exc:
        raise ConfigError(f"cannot read trace {str(p)!r}: {exc.strerror}") from None


MAX_TRACE_LINE_BYTES = 1 << 20  # one request record; a longer "line" is not a trace


def _text_lines(f: Any, name: str) -> Any:
    """Decoded lines of a binary file; a NUL byte, non-UTF-8 bytes or a line over
    MAX_TRACE_LINE_BYTES stop with the line (so /dev/zero or a newline-free blob is refused
    before it fills memory)."""
    number = 0
    while raw := f.readline(MAX_TRACE_LINE_BYTES + 1):
        number += 1
        if len(raw) > MAX_TRACE_LINE_BYTES:
            raise ConfigError(
                f"trace {name}: line {number} is longer than {MAX_TRACE_LINE_BYTES:,} bytes; "
                "give one JSON record or CSV row per line"
            )
        if b"\x00" in raw:
            raise ConfigError(
                f"trace {name} is a binary file (NUL byte at line {number}); give a text trace"
            )
        try:
            yield raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise ConfigError(
                f"trace {name} is not UTF-8 text (byte 0x{raw[exc.start]:02x} at line {number}); "
                "save it as UTF-8"
            ) from None


def _tokens(value: Any, field: str, low: int) -> int:
    """A token count: a whole number (not a boolean, not text) in [low, MAX_TRACE_TOKENS]."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"{field}(={value!r}) must be a whole number of tokens")
    if isinstance(value, float) and not value.is_integer():
        raise ValueError(f"{field}(={value!r}) must be a whole number of tokens")
    if not low <= value <= MAX_TRACE_TOKENS:
        raise ValueError(f"{field}(={value!r}) must be in [{low}, {MAX_TRACE_TOKENS:,}] tokens")
    return int(value)


def _read_mooncake(lines: Any, name: str) -> Trace:
    times, ins, outs, hashes = [], [], [], []
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            rec = json.loads(line)
            if not isinstance(rec, dict):
                raise TypeError("a record is a JSON object")
            stamp = rec["timestamp"]
            if isinstance(stamp, bool) or not isinstance(stamp, int | float):
                raise ValueError(f"timestamp(={stamp!r}) must be a number of milliseconds")
            if not 0 <= stamp <= MAX_TRACE_TIMESTAMP_MS:  # NaN fails too
                raise ValueError(f"timestamp(={stamp!r}) must be finite ms in [0, 1e15]")
            ids = rec.get("hash_ids", [])
            # integers, not booleans (JSON gives no other int subclass): the types, in C
            if not isinstance(ids, list) or (ids and set(map(type, ids)) != {int}):
                raise ValueError("hash_ids must be a list of integers")
            times.append(float(stamp) / 1e3)
            ins.append(_tokens(rec["input_length"], "input_length", 1))
            outs.append(_tokens(rec["output_length"], "output_length", 0))
            hashes.append(ids)
        except (ValueError, KeyError, TypeError, RecursionError) as exc:
            problem = "nested too deeply" if isinstance(exc, RecursionError) else str(exc)
            raise ConfigError(
                f"{name} line {number}: not a Mooncake record (timestamp, input_length, "
                f"output_length, hash_ids): {problem}"
            ) from None
    return _sorted(name, times, ins, outs, hashes)


_AZURE_COLUMNS = ("TIMESTAMP", "ContextTokens", "GeneratedTokens")


def _read_azure(lines: Any, name: str) -> Trace:
    reader = csv.DictReader(lines)
    times, ins, outs = [], [], []
    number = 1
    try:
        header = reader.fieldnames
        if header is None or not set(_AZURE_COLUMNS) <= set(header):
            raise ConfigError(
                f"trace {name}: the first line must be the Azure header "
                f"{','.join(_AZURE_COLUMNS)} (got {','.join(header or []) or 'nothing'})"
            )
        for number, row in enumerate(reader, 2):
            try:
                stamp = row["TIMESTAMP"].strip()
                if "." in stamp:  # 7-digit fractions: keep microseconds
                    head, frac = stamp.split(".")
                    stamp = f"{head}.{frac[:6]}"
                times.append(datetime.fromisoformat(stamp).replace(tzinfo=UTC).timestamp())
                ins.append(_tokens(_whole(row["ContextTokens"]), "ContextTokens", 1))
                outs.append(_tokens(_whole(row["GeneratedTokens"]), "GeneratedTokens", 0))
            except (ValueError, KeyError, TypeError, AttributeError, OverflowError) as exc:
                raise ConfigError(
                    f"{name} line {number}: not an Azure record (TIMESTAMP, ContextTokens, "
                    f"GeneratedTokens): {exc}"
                ) from None
    except csv.Error as exc:
        raise ConfigError(f"{name} line {number + 1}: not CSV: {exc}") from None
    return _sorted(name, times, ins, outs, None)


def _whole(text: Any) -> int:
    if not isinstance(text, str):
        raise ValueError("a column is missing")
    return int(text)


def _sorted(name: str, times: list[float], ins: list[int], outs: list[int],
            hashes: list[list[int]] | None) -> Trace:  # fmt: skip
    if not times:
        raise ConfigError(f"trace {name} has no requests; give a trace with at least one")
    t = np.asarray(times, dtype=np.float64)
    order = np.argsort(t, kind="stable")
    t = t[order] - t[order[0]]
    block_hashes = None if hashes is None else [hashes[i] for i in order]
    return Trace(name, t, np.asarray(ins, np.int64)[order], np.asarray(outs, np.int64)[order],
                 block_hashes)  # fmt: skip


def prefix_hit_tokens(trace: Trace, capacity_tokens: float | None = None) -> np.ndarray:
    """Prompt tokens of each request whose KV is already cached when it arrives.

    The cache holds prefix blocks; a request reuses its longest run of leading blocks in the
    cache (min(k x 512, input_length) tokens), then inserts all its blocks. Infinite
    capacity by default; with a capacity, least-recently-used blocks are evicted.
    """
    if trace.block_hashes is None:
        raise ConfigError(f"trace {trace.name} has no prefix hashes (Azure traces carry none)")
    capacity = math.inf if capacity_tokens is None else capacity_tokens / trace.block_tokens
    cache: OrderedDict[int, None] = OrderedDict()
    hits = np.zeros(trace.num_requests, np.int64)
    for i, blocks in enumerate(trace.block_hashes):
        k = 0
        while k < len(blocks) and blocks[k] in cache:
            k += 1
        hits[i] = min(k * trace.block_tokens, int(trace.input_tokens[i]))
        for block in blocks:
            if block in cache:
                cache.move_to_end(block)
            else:
                cache[block] = None
        while len(cache) > capacity:
            cache.popitem(last=False)
    return hits


def trace_stats(trace: Trace, capacity_tokens: float | None = None) -> dict[str, Any]:
    """Size, rate, burstiness (CV of inter-arrival times) and prefix-cache reuse of a trace."""
    n = trace.num_requests
    duration = float(trace.arrival[-1] - trace.arrival[0])
    gaps = np.diff(trace.arrival)
    cv = float(gaps.std() / gaps.mean()) if gaps.size and gaps.mean() > 0 else None
    out: dict[str, Any] = {
        "trace": trace.name,
        "requests": n,
        "duration_s": duration,
        "mean_input_tokens": float(trace.input_tokens.mean()),
        "mean_output_tokens": float(trace.output_tokens.mean()),
        "p50_input_tokens": float(np.percentile(trace.input_tokens, 50)),
        "p99_input_tokens": float(np.percentile(trace.input_tokens, 99)),
        "arrival_rate_per_s": n / duration if duration > 0 else None,
        "interarrival_cv": cv,
        "distinct_arrival_times": int(np.unique(trace.arrival).size),
    }
    if trace.block_hashes is None:
        out["prefix_cache"] = {"hit_ratio": None, "note": "this format carries no prefix hashes"}
    else:
        hits = prefix_hit_tokens(trace, capacity_tokens)
        out["prefix_cache"] = {
            "hit_ratio": float(hits.sum() / trace.input_tokens.sum()),
            "capacity_tokens": capacity_tokens,
            "hit_requests": int((hits > 0).sum()),
            "block_tokens": trace.block_tokens,
        }
    return out
