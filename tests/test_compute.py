"""Roofline timing against hand-derived figures."""

from __future__ import annotations

import pytest

from aifabric.catalog import get_gpu, get_model
from aifabric.errors import ConfigError
from aifabric.serving.compute import RooflineTiming

H100 = get_gpu("h100-sxm")
LLAMA70 = get_model("llama3-70b")


def test_decode_is_weight_bound_at_batch_one():
    """Llama-3-70B TP8 BF16: 70.55e9 x 2 B / (8 x 3.35e12 B/s x 0.8) = 6.58 ms, plus
    2 x 80 ring all-reduces of 16 KiB: each 2 x 7 x 2 us latency + 2 x 7/8 x 16,384 B
    / 450e9 B/s."""
    t = RooflineTiming(model=LLAMA70, gpu=H100, tp=8)
    weights = 70_553_706_496 * 2 / (8 * 3.35e12 * 0.8)
    ar = 2 * 80 * (14 * 2e-6 + 2 * 7 / 8 * 16384 / 450e9)
    assert t.decode_step_time(1, 0) == pytest.approx(weights + ar, rel=1e-9)


def test_decode_reads_the_kv_of_the_batch():
    t = RooflineTiming(model=LLAMA70, gpu=H100, tp=8)
    extra = t.decode_step_time(1, 100_000) - t.decode_step_time(1, 0)
    assert extra == pytest.approx(100_000 * 327_680 / (8 * 3.35e12 * 0.8), rel=1e-9)


def test_prefill_is_compute_bound_and_cache_hits_save_time():
    t = RooflineTiming(model=LLAMA70, gpu=H100, tp=8)
    full = t.prefill_time(8192)
    flops = 8192 * LLAMA70.forward_flops_per_token(4096)
    assert full > flops / (8 * 989.4e12 * 0.5)
    assert t.prefill_time(8192, cached_tokens=4096) < full
    assert t.prefill_time(8192, cached_tokens=8192) == 0.0


def test_kv_capacity_and_weights_that_do_not_fit():
    t = RooflineTiming(model=LLAMA70, gpu=H100, tp=8)
    free = 8 * 80 * 2**30 - 70_553_706_496 * 2
    assert t.kv_capacity_tokens == pytest.approx(free / 327_680)
    with pytest.raises(ConfigError, match="raise tp"):
        RooflineTiming(model=LLAMA70, gpu=H100, tp=1)
