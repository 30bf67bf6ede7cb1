"""The seed and algorithmic accountings agree where the algorithms coincide.

With two ranks, the seeds' "every GPU sends its whole buffer to every other GPU" (n-1)S
equals the ring's 2(n-1)/n S, so both accountings must give the same bytes; with more
ranks the seed's direct exchange must exceed the ring by exactly n/2.
"""

from __future__ import annotations

import pytest

from aifabric.catalog import get_gpu, get_model
from aifabric.spec.jobs import InferenceJob, TrainingJob
from aifabric.spec.parallel import ParallelPlan
from aifabric.traffic.inference import inference_traffic
from aifabric.traffic.training import training_traffic

H100 = get_gpu("h100-sxm")


def _train(accounting: str, **plan: int) -> float:
    job = TrainingJob(
        model=get_model("llama3-8b"),
        plan=ParallelPlan(grad_dtype="bf16", **plan),  # the seed's 2-byte gradients
        gpu=H100,
        seq_len=4096,
        global_batch=64,
        dataset_tokens=64 * 4096 * 10,
        accounting=accounting,
    )
    return training_traffic(job).total_bytes


@pytest.mark.parametrize("dp", [2, 4, 8, 16])
def test_dp_seed_is_ring_times_n_over_2(dp):
    """Seed DP: 2P G(G-1) per iteration; ring: G x 2(G-1)/G x 2P. Ratio G/2."""
    seed, algorithmic = _train("seed", dp=dp), _train("algorithmic", dp=dp)
    assert seed / algorithmic == pytest.approx(dp / 2)


def test_dp_two_ranks_accountings_agree():
    assert _train("seed", dp=2) == pytest.approx(_train("algorithmic", dp=2))


@pytest.mark.parametrize("tp", [2, 4, 8])
def test_inference_allreduce_seed_vs_ring(tp):
    """Per token: seed 2L x 2H x tp(tp-1); ring 2L x tp x 2(tp-1)/tp x 2H. Ratio tp/2."""
    model = get_model("seed-llama3-120b")

    def run(accounting: str) -> float:
        job = InferenceJob(
            model=model,
            gpu=H100,
            tp=tp,
            users=3,
            prompt_tokens=100,
            output_tokens=50,
            accounting=accounting,
            pd=False,
        )
        return inference_traffic(job)["allreduce_bytes_per_token"]

    assert run("seed") / run("algorithmic") == pytest.approx(tp / 2)
    layers, hidden = model.num_layers, model.hidden_size
    assert run("algorithmic") == pytest.approx(2 * layers * 2 * (tp - 1) * hidden * 2)


def test_mha_kv_is_identical_in_both_accountings():
    """For an MHA model the seed's 2LHb KV equals the architecture's 2 L kv_heads d b."""
    model = get_model("seed-llama3-120b")
    results = [
        inference_traffic(
            InferenceJob(model=model, gpu=H100, tp=4, prompt_tokens=256, accounting=a)
        )["kv_bytes_per_request"]
        for a in ("seed", "algorithmic")
    ]
    assert results[0] == results[1] == 2 * 140 * 8192 * 2 * 256


def test_gqa_kv_seed_overcounts_by_heads_ratio():
    model = get_model("llama3-70b")
    seed, real = (
        inference_traffic(
            InferenceJob(model=model, gpu=H100, tp=8, prompt_tokens=1000, accounting=a)
        )["kv_bytes_per_request"]
        for a in ("seed", "algorithmic")
    )
    assert seed / real == pytest.approx(64 / 8)  # 64 query heads share 8 KV heads
