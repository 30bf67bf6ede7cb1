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


def read_trace(path: str | Path, fmt: str | None = None) -> Trace:
    """Read a trace file (format from the extension unless given).

    Raises:
        ConfigError: unreadable file, unknown format, or a malformed line (named).
    """
    p = Path(path)
    fmt = fmt or detect_format(p)
    if fmt not in FORMATS:
        raise ConfigError(f"trace format(={fmt!r}) must be one of {', '.join(FORMATS)}")
    try:
        with p.open(encoding="utf-8") as f:
            return _read_mooncake(f, p.name) if fmt == "mooncake" else _read_azure(f, p.name)
    except OSError as exc:
        raise ConfigError(f"cannot read trace {str(p)!r}: {exc.strerror}") from None


def _read_mooncake(lines: Any, name: str) -> Trace:
    times, ins, outs, hashes = [], [], [], []
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            rec = json.loads(line)
            times.append(float(rec["timestamp"]) / 1e3)
            ins.append(int(rec["input_length"]))
            outs.append(int(rec["output_length"]))
            hashes.append([int(h) for h in rec.get("hash_ids", [])])
        except (ValueError, KeyError, TypeError) as exc:
            raise ConfigError(
                f"{name} line {number}: not a Mooncake record (timestamp, input_length, "
                f"output_length, hash_ids): {exc}"
            ) from None
    return _sorted(name, times, ins, outs, hashes)


def _read_azure(lines: Any, name: str) -> Trace:
    reader = csv.DictReader(lines)
    times, ins, outs = [], [], []
    for number, row in enumerate(reader, 2):
        try:
            stamp = row["TIMESTAMP"].strip()
            if "." in stamp:  # 7-digit fractions: keep microseconds
                head, frac = stamp.split(".")
                stamp = f"{head}.{frac[:6]}"
            times.append(datetime.fromisoformat(stamp).replace(tzinfo=UTC).timestamp())
            ins.append(int(row["ContextTokens"]))
            outs.append(int(row["GeneratedTokens"]))
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise ConfigError(
                f"{name} line {number}: not an Azure record (TIMESTAMP, ContextTokens, "
                f"GeneratedTokens): {exc}"
            ) from None
    return _sorted(name, times, ins, outs, None)


def _sorted(name: str, times: list[float], ins: list[int], outs: list[int],
            hashes: list[list[int]] | None) -> Trace:  # fmt: skip
    if not times:
        raise ConfigError(f"trace {name} has no requests")
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
        "arrival_rate_rps": n / duration if duration > 0 else None,
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
