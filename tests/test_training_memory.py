"""Memory per GPU (aifabric.training.memory) against hand-derived values.

Model state: Megatron-LM's distributed-optimizer guide tabulates bf16 parameters with fp32
gradients at 18 bytes per parameter (2 + 4 + 12: fp32 master weights and Adam's two
moments), 6 + 12/d with the optimizer sharded over d ranks. Activations: Korthikanti et
al. 2023, Table 2 and section 4.2.3.
"""

from __future__ import annotations

import pytest

from aifabric.catalog import get_model
from aifabric.errors import ConfigError
from aifabric.spec.parallel import ParallelPlan
from aifabric.training.memory import bytes_per_param, memory_per_gpu


def test_megatron_distributed_optimizer_table() -> None:
    assert bytes_per_param() == 18.0
    for d in (2, 8, 64):
        assert bytes_per_param(zero=1, dp=d) == pytest.approx(6 + 12 / d)
    assert bytes_per_param(zero=3, dp=8) == pytest.approx(18 / 8)
    assert bytes_per_param("fp32", "fp32") == 16.0  # no master copy needed


def test_llama3_70b_tp8_pp8_dp16_by_hand() -> None:
    """Llama-3-70B (70,553,706,496 parameters, h = 8,192, 80 layers), TP8 x PP8 x DP16,
    ZeRO-1, SP, seq 8,192, micro-batch 1, 128 micro-batches:
    - parameters per GPU: 70.55e9 / 64 = 1.1024e9; weights 2 B each, fp32 grads 4 B,
      optimizer 12 B / 16 ranks;
    - activations on stage 0: 34 h / 8 = 34,816 B per token per layer x 8,192 tokens x
      10 layers x 8 micro-batches in flight = 22.82 GB."""
    model = get_model("llama3-70b")
    plan = ParallelPlan(tp=8, pp=8, dp=16, zero=1, sequence_parallel=True)
    r = memory_per_gpu(model, plan, seq_len=8192, micro_batches=128, hbm_bytes=80e9)
    per_gpu = model.num_params / 64
    assert r["weights_bytes"] == pytest.approx(2 * per_gpu)
    assert r["gradients_bytes"] == pytest.approx(4 * per_gpu)
    assert r["optimizer_bytes"] == pytest.approx(12 * per_gpu / 16)
    assert r["activations_bytes"] == pytest.approx(34 * 8192 / 8 * 8192 * 10 * 8)
    assert r["fits_in_memory"] is True
    assert r["total_bytes"] == pytest.approx(sum(r[k] for k in (
        "weights_bytes", "gradients_bytes", "optimizer_bytes", "activations_bytes")))  # fmt: skip


def test_recompute_and_interleaving() -> None:
    """Full recomputation keeps the 2 h-byte layer input per token (/ t with SP): 34/2 = 17x
    less than the flash-attention store; interleaving v = 2 chunks holds 1 + (p-1)/(p v)
    times more micro-batches (8: 1 + 7/16)."""
    model = get_model("llama3-70b")
    plan = ParallelPlan(tp=8, pp=8, dp=16, zero=1, sequence_parallel=True)
    base = memory_per_gpu(model, plan, seq_len=8192, micro_batches=128)
    full = memory_per_gpu(model, plan, seq_len=8192, micro_batches=128, recompute="full")
    assert base["activations_bytes"] / full["activations_bytes"] == pytest.approx(17.0)
    inter = ParallelPlan(tp=8, pp=8, dp=16, zero=1, sequence_parallel=True, virtual_stages=2)
    r = memory_per_gpu(model, inter, seq_len=8192, micro_batches=128)
    assert r["in_flight_microbatches"] == pytest.approx(8 * (1 + 7 / 16))
    few = memory_per_gpu(model, plan, seq_len=8192, micro_batches=3)
    assert few["in_flight_microbatches"] == 3


def test_zero3_and_experts_shard_over_their_groups() -> None:
    """FSDP (ZeRO-3) divides weights, gradients and optimizer by dp; DeepSeek-V3's routed
    experts shard over ep and their optimizer over the expert-data-parallel group."""
    model = get_model("llama3-8b")
    plain = memory_per_gpu(model, ParallelPlan(dp=8), seq_len=4096, micro_batches=1)
    fsdp = memory_per_gpu(model, ParallelPlan(dp=8, zero=3), seq_len=4096, micro_batches=1)
    for k in ("weights_bytes", "gradients_bytes", "optimizer_bytes"):
        assert fsdp[k] == pytest.approx(plain[k] / 8)
    moe = get_model("deepseek-v3")
    plan = ParallelPlan(pp=16, dp=128, ep=64, zero=1)
    r = memory_per_gpu(moe, plan, seq_len=4096, micro_batches=64, hbm_bytes=80e9)
    dense, expert = plan.params_per_gpu(moe)
    assert r["optimizer_bytes"] == pytest.approx(
        12 * (dense / 128 + expert / plan.group_size("edp"))
    )
    with pytest.raises(ConfigError, match="recompute"):
        memory_per_gpu(moe, plan, seq_len=4096, micro_batches=1, recompute="some")
