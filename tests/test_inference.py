"""Inference traffic: seed 000's worked example and the algorithm-aware accounting.

Truth: seed 000's example (digest: 23.958 TB activations + 100 x 1.174 GB KV = 21.896 TiB;
11.74 ms per user's KV over one 800 Gb/s port), the KV-cache arithmetic of GQA/MLA, and
the ring all-reduce's 2(n-1) x S bytes on the wire.
"""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from aifabric.catalog import get_model
from aifabric.errors import ConfigError
from aifabric.spec.gpu import GpuSpec
from aifabric.spec.jobs import InferenceJob
from aifabric.spec.model import ModelSpec
from aifabric.traffic.inference import (
    allreduce_bytes_per_token,
    alltoall_bytes_per_token,
    inference_traffic,
    kv_bytes_per_token,
)
from aifabric.traffic.seeds import seed_allreduce_bytes, seed_allreduces_per_request
from aifabric.units import parse_bandwidth


def _seed000(h100: GpuSpec, **kw: object) -> InferenceJob:
    base: dict[str, object] = dict(
        model=get_model("seed-llama3-120b"),
        gpu=h100,
        tp=4,
        users=100,
        prompt_tokens=256,
        output_tokens=4096,
        kv_dtype="fp16",
        activation_dtype="bf16",
        accounting="seed",
        nic_speed=parse_bandwidth("800G"),
    )
    base.update(kw)
    return InferenceJob(**base)  # type: ignore[arg-type]


# ----- seed 000 -----------------------------------------------------------------------------


def test_seed000_total_traffic(h100: GpuSpec) -> None:
    """Per all-reduce 2 H G(G-1) = 2 x 8192 x 4 x 3 = 196,608 B; 2 x 140 x (256 + 4096)
    = 1,218,560 all-reduces per user; KV 2 x 140 x 8192 x 2 x 256 = 1,174,405,120 B.
    100 x (1,218,560 x 196,608 + 1,174,405,120) = 24,075,304,960,000 B = 21.896 TiB."""
    out = inference_traffic(_seed000(h100))
    assert out["total_bytes"] == 24_075_304_960_000
    assert out["total_bytes"] / 2**40 == pytest.approx(21.896, abs=5e-4)
    assert out["kv_bytes_per_request"] == 1_174_405_120
    assert out["kv_bytes_per_request"] / 2**30 == 1.09375
    assert out["total_activation_bytes"] == 100 * 1_218_560 * 196_608
    assert out["total_activation_bytes"] / 1e12 == pytest.approx(23.958, abs=5e-4)
    assert out["total_kv_bytes"] == 100 * 1_174_405_120
    assert out["total_bytes"] == out["total_activation_bytes"] + out["total_kv_bytes"]


def test_seed000_kv_time_and_budget(h100: GpuSpec) -> None:
    """1,174,405,120 B over 800 Gb/s (1e11 B/s) = 11.744 ms; 100 tok/s at 90 % -> 1 ms."""
    out = inference_traffic(_seed000(h100))
    assert out["kv_transfer_time_one_nic_s"] == pytest.approx(11.744e-3, rel=1e-4)
    assert out["communication_budget_s"] == pytest.approx(1e-3, rel=1e-12)
    assert out["token_time_budget_s"] == pytest.approx(1e-2)
    # 1.174 GB in 10 ms = 117.4 GB/s = 939.5 Gb/s: two 800G NICs.
    req = out["required_bytes_per_s"]
    assert req["kv_transfer"] == pytest.approx(1_174_405_120 / 0.010)
    assert req["kv_transfer"] * 8 / 1e9 == pytest.approx(939.5, abs=0.1)
    assert out["kv_transfer_nics"] == 2


def test_seed_formula_helpers() -> None:
    assert seed_allreduce_bytes(hidden=8192, tp=4) == 2 * 8192 * 4 * 3 == 196_608
    assert seed_allreduces_per_request(layers=140, prompt_tokens=256, output_tokens=4096) == (
        1_218_560
    )


def test_seed_kv_is_naive_even_for_gqa(h100: GpuSpec, llama70b: ModelSpec) -> None:
    """The seed's KV ignores GQA: 2 L H b = 2 x 80 x 8192 x 2 per token for Llama-3-70B."""
    job = InferenceJob(model=llama70b, gpu=h100, tp=8, accounting="seed")
    assert kv_bytes_per_token(job) == 2 * 80 * 8192 * 2


# ----- algorithmic accounting -----------------------------------------------------------------


def test_llama70b_algorithmic_by_hand(h100: GpuSpec, llama70b: ModelSpec) -> None:
    """tp = 8: per token 2 x 80 ring all-reduces of 8192 x 2 B, each 2(8-1) x S on the wire
    (2 x 7/8 x S per rank); KV 327,680 B per prompt token (GQA, 8 KV heads)."""
    s_in, s_out, users = 1000, 200, 7
    job = InferenceJob(
        model=llama70b, gpu=h100, tp=8, users=users, prompt_tokens=s_in, output_tokens=s_out
    )
    out = inference_traffic(job)
    ar_total = 2 * 80 * 2 * (8 - 1) * 8192 * 2
    ar_rank = 2 * 80 * 2 * 7 / 8 * 8192 * 2
    assert out["allreduce_bytes_per_token"] == pytest.approx(ar_total, rel=1e-12)
    assert out["allreduce_bytes_per_token_per_gpu"] == pytest.approx(ar_rank, rel=1e-12)
    assert out["kv_bytes_per_request"] == 327_680 * s_in
    per_request = (s_in + s_out) * ar_total + 327_680 * s_in
    assert out["bytes_per_request"] == pytest.approx(per_request, rel=1e-12)
    assert out["total_bytes"] == pytest.approx(users * per_request, rel=1e-12)
    assert out["nic_speed_bytes_per_s"] == 50e9  # H100 default: 400G
    assert out["kv_transfer_time_one_nic_s"] == pytest.approx(327_680 * s_in / 50e9)
    assert out["required_bytes_per_s"]["allreduce_per_gpu_per_user"] == pytest.approx(
        ar_rank / 1e-3
    )


def test_no_disaggregation_ships_no_kv(h100: GpuSpec, llama70b: ModelSpec) -> None:
    out = inference_traffic(InferenceJob(model=llama70b, gpu=h100, tp=8, pd=False))
    assert out["kv_bytes_per_request"] == 0
    assert out["kv_transfer_nics"] == 0


def test_tp1_has_no_all_reduce(h100: GpuSpec, llama8b: ModelSpec) -> None:
    job = InferenceJob(model=llama8b, gpu=h100, tp=1)
    assert allreduce_bytes_per_token(job) == (0.0, 0.0)


def test_deepseek_mla_kv(h100: GpuSpec) -> None:
    job = InferenceJob(model=get_model("deepseek-v3"), gpu=h100, tp=8, prompt_tokens=4096)
    assert inference_traffic(job)["kv_bytes_per_request"] == 70_272 * 4096


def test_moe_expert_parallel_all_to_all(h100: GpuSpec, mixtral: ModelSpec) -> None:
    """Mixtral, ep = 8: per token and MoE layer a dispatch and a combine of top-2 copies of
    the 4096 x 2 B hidden state, of which 7/8 leave the rank: 2 x 32 x 7/8 x 2 x 8192 B."""
    job = InferenceJob(model=mixtral, gpu=h100, ep=8)
    assert alltoall_bytes_per_token(job) == pytest.approx(2 * 32 * 7 / 8 * 2 * 8192, rel=1e-12)
    assert alltoall_bytes_per_token(InferenceJob(model=mixtral, gpu=h100)) == 0


@given(tp_pow=st.integers(1, 6), hidden_pow=st.integers(10, 14))
def test_seed_over_ring_is_g_over_2(tp_pow: int, hidden_pow: int) -> None:
    """Direct exchange b H G(G-1) vs ring 2(G-1) b H: the seed counts G/2 x the ring's bytes."""
    from aifabric.catalog import get_gpu

    tp, h = 2**tp_pow, 2**hidden_pow
    model = ModelSpec(
        name="m",
        num_layers=4,
        hidden_size=h,
        num_attention_heads=64,
        num_kv_heads=64,
        head_dim=h // 64,
        intermediate_size=4 * h,
        vocab_size=1000,
        attention="mha",
    )
    gpu = get_gpu("h100-sxm")
    seed = InferenceJob(model=model, gpu=gpu, tp=tp, accounting="seed")
    algo = InferenceJob(model=model, gpu=gpu, tp=tp)
    assert allreduce_bytes_per_token(seed)[0] == pytest.approx(
        tp / 2 * allreduce_bytes_per_token(algo)[0], rel=1e-12
    )
    # MHA with heads x head_dim = hidden: GQA-aware and naive KV agree.
    assert kv_bytes_per_token(seed) == kv_bytes_per_token(algo)


@given(users=st.integers(1, 10_000), s_in=st.integers(1, 32_768), s_out=st.integers(0, 8192))
def test_totals_scale_linearly_with_users(users: int, s_in: int, s_out: int) -> None:
    from aifabric.catalog import get_gpu

    model, gpu = get_model("llama3-70b"), get_gpu("h100-sxm")
    one = inference_traffic(
        InferenceJob(model=model, gpu=gpu, tp=8, prompt_tokens=s_in, output_tokens=s_out)
    )
    many = inference_traffic(
        InferenceJob(
            model=model, gpu=gpu, tp=8, users=users, prompt_tokens=s_in, output_tokens=s_out
        )
    )
    assert many["total_bytes"] == pytest.approx(users * one["total_bytes"], rel=1e-12)
    assert many["bytes_per_request"] == one["bytes_per_request"]
    assert many["total_bytes"] == pytest.approx(
        many["total_kv_bytes"] + many["total_activation_bytes"], rel=1e-12
    )
    assert math.isfinite(many["required_bytes_per_s"]["aggregate_sustained"])


# ----- errors -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kw", "pattern"),
    [
        ({"tp": 6}, r"tp\(=6\) must divide num_attention_heads\(=64\)"),
        ({"ep": 8}, r"ep\(=8\) > 1 needs a mixture-of-experts model"),
        ({"users": 0}, r"users\(=0\) must be an integer >= 1"),
        ({"prompt_tokens": 0}, r"prompt_tokens must be >= 1"),
        ({"parallel_efficiency": 1.0}, r"parallel_efficiency\(=1.0\) must be in \(0, 1\)"),
        ({"tokens_per_s": 0}, r"tokens_per_s\(=0\) must be > 0"),
        ({"kv_deadline": 0}, r"kv_deadline\(=0\) must be > 0"),
        ({"kv_dtype": "fp7"}, r"dtype 'fp7' is unknown"),
        ({"accounting": "vibes"}, r"accounting\(='vibes'\)"),
    ],
)
def test_inference_job_errors(
    h100: GpuSpec, llama70b: ModelSpec, kw: dict[str, object], pattern: str
) -> None:
    with pytest.raises(ConfigError, match=pattern):
        InferenceJob(model=llama70b, gpu=h100, **kw)  # type: ignore[arg-type]


def test_sustained_bandwidth_conserves_bytes_per_request(h100: GpuSpec) -> None:
    """Steady state: each of U users has one request in flight, lasting S_out / tokens_per_s
    seconds, and every request moves bytes_per_request. So the sustained rate is
    U x bytes_per_request x tokens_per_s / S_out = 100 x 240,753,049,600 x 100 / 4096
    = 587,776,000,000 B/s for seed 000."""
    out = inference_traffic(_seed000(h100))
    assert out["bytes_per_request"] == 240_753_049_600
    expected = 100 * 240_753_049_600 * 100 / 4096
    assert out["required_bytes_per_s"]["aggregate_sustained"] == pytest.approx(expected, rel=1e-9)


def test_peak_bandwidth_by_hand(h100: GpuSpec) -> None:
    """Peak: one decode step's all-reduce bytes of all users inside the 1 ms budget, plus
    every user's KV shipped within its 10 ms deadline."""
    out = inference_traffic(_seed000(h100))
    step = 100 * 280 * 196_608
    kv_rate = 1_174_405_120 / 0.010
    assert out["required_bytes_per_s"]["aggregate_peak"] == pytest.approx(
        step / 1e-3 + 100 * kv_rate, rel=1e-9
    )
    # per GPU and user: 280 all-reduces x 196,608 B / 4 ranks in 1 ms
    assert out["required_bytes_per_s"]["allreduce_per_gpu_per_user"] == pytest.approx(
        280 * 196_608 / 4 / 1e-3, rel=1e-9
    )
