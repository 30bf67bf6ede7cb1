"""Trace readers and statistics: hand-made traces with known answers, and the shipped ones."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from aifabric.errors import ConfigError
from aifabric.serving.trace import prefix_hit_tokens, read_trace, trace_stats

from .cli_helpers import run_error, run_json

ROOT = Path(__file__).resolve().parents[1]
CONVERSATION = ROOT / "traces" / "mooncake_conversation_trace.jsonl"


def write_mooncake(path: Path, records: list[tuple[int, int, int, list[int]]]) -> Path:
    with path.open("w") as f:
        for t, n_in, n_out, ids in records:
            f.write(json.dumps({"timestamp": t, "input_length": n_in, "output_length": n_out,
                                "hash_ids": ids}) + "\n")  # fmt: skip
    return path


@pytest.fixture
def small(tmp_path: Path) -> Path:
    """Three requests, 512-token blocks:
    r0 (t=0 s): 1,200 tokens, blocks [1, 2, 3] -> nothing cached, 0 hit.
    r1 (t=1 s): 1,100 tokens, blocks [1, 2, 4] -> leading [1, 2] cached: 1,024 tokens hit.
    r2 (t=3 s):   700 tokens, blocks [1, 5]    -> leading [1]: 512 tokens hit.
    Hit ratio = (0 + 1,024 + 512) / (1,200 + 1,100 + 700) = 1,536 / 3,000 = 0.512."""
    return write_mooncake(tmp_path / "t.jsonl", [
        (0, 1200, 10, [1, 2, 3]), (1000, 1100, 20, [1, 2, 4]), (3000, 700, 30, [1, 5]),
    ])  # fmt: skip


def test_small_trace_statistics(small):
    stats = trace_stats(read_trace(small))
    assert stats["requests"] == 3
    assert stats["duration_s"] == pytest.approx(3.0)
    assert stats["mean_input_tokens"] == pytest.approx(1000.0)
    assert stats["mean_output_tokens"] == pytest.approx(20.0)
    assert stats["arrival_rate_per_s"] == pytest.approx(1.0)
    gaps = np.array([1.0, 2.0])
    assert stats["interarrival_cv"] == pytest.approx(gaps.std() / gaps.mean())
    assert stats["prefix_cache"]["hit_ratio"] == pytest.approx(0.512)


def test_hit_is_capped_by_the_prompt(tmp_path):
    """A 600-token prompt whose 2 blocks are both cached reuses 600 tokens, not 1,024."""
    path = write_mooncake(tmp_path / "t.jsonl", [(0, 600, 1, [7, 8]), (1, 600, 1, [7, 8])])
    assert prefix_hit_tokens(read_trace(path)).tolist() == [0, 600]


def test_only_a_leading_run_counts(tmp_path):
    """Block 9 cached but block 1 not: a prefix match must start at the first block."""
    path = write_mooncake(tmp_path / "t.jsonl", [(0, 512, 1, [9]), (1, 1024, 1, [1, 9])])
    assert prefix_hit_tokens(read_trace(path)).tolist() == [0, 0]


def test_lru_capacity_evicts_oldest_blocks(tmp_path):
    """Capacity of 2 blocks (1,024 tokens). r0 caches [1, 2]; r1 [3, 4] evicts both;
    r2 asks for [1, 2] again: a miss with LRU, a hit with an infinite cache."""
    path = write_mooncake(tmp_path / "t.jsonl", [
        (0, 1024, 1, [1, 2]), (1, 1024, 1, [3, 4]), (2, 1024, 1, [1, 2]),
    ])  # fmt: skip
    trace = read_trace(path)
    assert prefix_hit_tokens(trace).tolist() == [0, 0, 1024]
    assert prefix_hit_tokens(trace, capacity_tokens=1024).tolist() == [0, 0, 0]
    # Capacity 3 blocks: after r1 the cache holds [2, 3, 4] (1 evicted first), so r2
    # misses at its first block although block 2 is still cached.
    assert prefix_hit_tokens(trace, capacity_tokens=1536).tolist() == [0, 0, 0]


def test_arrivals_are_sorted_and_relative(tmp_path):
    path = write_mooncake(tmp_path / "t.jsonl", [(5000, 10, 1, [1]), (2000, 20, 2, [2])])
    trace = read_trace(path)
    assert trace.arrival.tolist() == [0.0, 3.0]
    assert trace.input_tokens.tolist() == [20, 10]


def test_azure_reader(tmp_path):
    path = tmp_path / "a.csv"
    path.write_text("TIMESTAMP,ContextTokens,GeneratedTokens\n"
                    "2023-11-16 18:15:46.6805900,374,44\n"
                    "2023-11-16 18:15:50.9951690,396,109\n")  # fmt: skip
    trace = read_trace(path)
    assert trace.arrival[1] == pytest.approx(4.314579, abs=1e-6)
    stats = trace_stats(trace)
    assert stats["prefix_cache"]["hit_ratio"] is None
    assert stats["mean_output_tokens"] == pytest.approx(76.5)


@pytest.mark.parametrize(
    ("text", "suffix", "match"),
    [
        ('{"timestamp": 0, "input_length": 5}\n', ".jsonl", r"line 1: not a Mooncake record"),
        ("not json\n", ".jsonl", r"line 1"),
        ("TIMESTAMP,ContextTokens,GeneratedTokens\nyesterday,1,2\n", ".csv", r"line 2"),
        ("", ".jsonl", r"no requests"),
    ],
)
def test_malformed_traces(tmp_path, text, suffix, match):
    path = tmp_path / f"bad{suffix}"
    path.write_text(text)
    with pytest.raises(ConfigError, match=match):
        read_trace(path)


def test_shipped_mooncake_conversation_trace():
    """The release's conversation trace: 12,031 requests over ~1 h, timestamps quantized to
    1,180 distinct values (traces/README.md)."""
    stats = trace_stats(read_trace(CONVERSATION))
    assert stats["requests"] == 12_031
    assert stats["distinct_arrival_times"] == 1_180
    assert 3_400 < stats["duration_s"] < 3_700
    assert 0 < stats["prefix_cache"]["hit_ratio"] < 1


def test_finite_cache_never_beats_infinite():
    trace = read_trace(CONVERSATION)
    infinite = prefix_hit_tokens(trace)
    for capacity in (1e5, 1e6, 1e7):
        finite = prefix_hit_tokens(trace, capacity)
        assert (finite <= infinite).all()


def test_trace_stats_cli(capsys, small):
    data = run_json(capsys, "trace", "stats", str(small), "--cache-capacity-tokens", "1M", "--json")
    for key in ("requests", "duration_s", "mean_input_tokens", "mean_output_tokens",
                "arrival_rate_per_s", "interarrival_cv"):  # fmt: skip
        assert key in data
    assert data["prefix_cache"]["hit_ratio"] == pytest.approx(0.512)
    empty = small.with_name("e.jsonl")
    empty.write_text("")
    assert "no requests" in run_error(capsys, "trace", "stats", str(empty))
