"""Capacity utilisation, cost and energy per token of serving runs (serving.work,
serving.economics): hand derivations, conservation of cost over SLO tiers, bounds of the
power model, price linearity and the fabric's amortised bill of materials."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from aifabric.catalog import get_gpu, get_model
from aifabric.serving.cluster import ServingSimulation
from aifabric.serving.compute import RooflineTiming
from aifabric.serving.config import parse_scenario
from aifabric.serving.work import IterationWork

from .cli_helpers import UNFITTED_ROOFLINE, deep_merge, run_json

MODEL, GPU = "llama3-8b", "h100-sxm"
ONE_TIER = [{"name": "all", "share": 1.0, "ttft_s": 1000.0, "tbt_s": 1000.0, "priority": 0}]
THREE_TIERS = [
    {"name": "gold", "share": 0.2, "ttft_s": 2.0, "tbt_s": 0.05, "priority": 0},
    {"name": "silver", "share": 0.3, "ttft_s": 5.0, "tbt_s": 0.1, "priority": 1},
    {"name": "bronze", "share": 0.5, "ttft_s": 15.0, "tbt_s": 0.2, "priority": 2},
]
YEAR_S = 365.25 * 24 * 3600


def scenario(prompt: int = 512, output: int = 64, n: int = 1, **sections: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "seed": 0,
        "model": MODEL,
        "gpu": GPU,
        "workload": {
            "source": "synthetic",
            "rate_rps": 4.0,
            "num_requests": n,
            "input_tokens": {"kind": "fixed", "mean": prompt},
            "output_tokens": {"kind": "fixed", "mean": output},
        },
        "cluster": {"mode": "colocated", "instances": 1, "tp": 1},
        "slo": {"tiers": ONE_TIER},
    }
    return deep_merge(base, sections)


def run(data: dict[str, Any]) -> dict[str, Any]:
    return ServingSimulation(parse_scenario(data)).run()


# ----- hand-computed work of the model (independent of serving.work) -----------------------
M = get_model(MODEL)
H100 = get_gpu(GPU)
L, HEADS, KV_HEADS, HEAD_DIM, HIDDEN, VOCAB = 32, 32, 8, 128, 4096, 128256
KV_BYTES = 2 * L * KV_HEADS * HEAD_DIM * 2  # K and V, every layer, bf16 = 131,072 B/token
ATTN = 2 * HEADS * (HEAD_DIM + HEAD_DIM) * L  # score + value FLOP per context token
# Matmul weights: all parameters but the input embedding table (Llama 3 8B is untied).
MATMUL = M.num_params - VOCAB * HIDDEN
F0 = 2.0 * MATMUL  # FLOP of a token with no context


def token_flop(context: float) -> float:
    return F0 + ATTN * context


def lone_request_flop(prompt: int, output: int) -> float:
    """Prefill: tokens 0..P-1 attend to 0..P-1 earlier tokens; then output - 1 decode
    tokens attend to contexts P .. P + output - 2."""
    prefill = sum(token_flop(j) for j in range(prompt))
    return prefill + sum(token_flop(prompt + j) for j in range(output - 1))


def test_model_constants_are_llama3_8b() -> None:
    """The hand constants above against the published architecture (Meta's config.json:
    32 layers, 32 heads, 8 KV heads, hidden 4096, vocab 128,256) and the model spec."""
    assert M.kv_bytes_per_token("bf16") == KV_BYTES == 131_072
    assert M.forward_flops_per_token(0.0) == pytest.approx(F0)
    assert M.forward_flops_per_token(1000.0) - F0 == pytest.approx(1000 * ATTN)


def test_lone_request_cost_energy_and_utilization_by_hand() -> None:
    """One request (512-token prompt, 64-token answer) on one H100, arriving at t = 0.

    Time T: the roofline's prefill (whole prompt, compute bound) then 63 decode steps of
    batch 1 (memory bound), so T = prefill + sum of the steps (RooflineTiming).
    Work: FLOP = sum_{j<512} F(j) + sum_{c=512}^{574} F(c), F(c) = 2 x matmul weights +
    2 x 32 heads x 256 x 32 layers x c. HBM bytes: prefill reads the weights once (matmul
    weights + 512 looked-up embedding rows of 4096 bf16) and writes 512 tokens of KV; decode
    step at context c reads the weights (one row) and c tokens of KV and writes one.
    Activity seconds A = sum over iterations of max(FLOP / peak, bytes / HBM bandwidth)
    (each below the iteration's time: prefill runs at 50% MFU, decode at 80% bandwidth).
    Energy = 700 W x (0.2 T + (0.9 - 0.2) A). Cost = 2 USD/h x T / 3600 + energy x PUE 1.5
    x 0.1 USD/kWh / 3.6e6 J/kWh."""
    prompt, output = 512, 64
    econ = {"gpu_hour_usd": 2.0, "energy_usd_per_kwh": 0.1, "pue": 1.5,
            "idle_power_fraction": 0.2, "full_power_fraction": 0.9}  # fmt: skip
    # RooflineTiming's own defaults: the unfitted roofline, no per-iteration overheads
    res = run(scenario(prompt, output, economics=econ, compute=UNFITTED_ROOFLINE))
    t = RooflineTiming(model=M, gpu=H100)
    prefill = t.prefill_time(prompt)
    steps = [t.decode_step_time(1, prompt + j) for j in range(output - 1)]
    T = prefill + math.fsum(steps)
    assert res["simulated_s"] == pytest.approx(T, rel=1e-12)

    weights = 2.0 * MATMUL
    flop_p = sum(token_flop(j) for j in range(prompt))
    bytes_p = weights + prompt * 2 * HIDDEN + prompt * KV_BYTES
    flop_d = [token_flop(prompt + j) for j in range(output - 1)]
    bytes_d = [weights + 2 * HIDDEN + (prompt + j + 1) * KV_BYTES for j in range(output - 1)]
    peak, bw = H100.peak_bf16_flops, H100.hbm_bandwidth
    assert flop_p / peak < prefill and all(b / bw < s for b, s in zip(bytes_d, steps, strict=True))
    active = max(flop_p / peak, bytes_p / bw) + math.fsum(
        max(f / peak, b / bw) for f, b in zip(flop_d, bytes_d, strict=True)
    )
    flop = flop_p + math.fsum(flop_d)
    moved = bytes_p + math.fsum(bytes_d)
    assert flop == pytest.approx(lone_request_flop(prompt, output), rel=1e-12)

    u = res["utilization_by_role"]["colocated"]
    assert u["gpus"] == 1
    assert u["flop"] == pytest.approx(flop, rel=1e-12)
    assert u["hbm_bytes"] == pytest.approx(moved, rel=1e-12)
    assert u["compute_utilization"] == pytest.approx(flop / (peak * T), rel=1e-12)
    assert u["hbm_bandwidth_utilization"] == pytest.approx(moved / (bw * T), rel=1e-12)
    assert u["busy_fraction"] == pytest.approx(1.0, rel=1e-12)
    energy = 700.0 * (0.2 * T + 0.7 * active)
    cost = 2.0 * T / 3600 + energy * 1.5 * 0.1 / 3.6e6
    ec = res["economics"]
    assert ec["energy_j"] == pytest.approx(energy, rel=1e-12)
    assert ec["cost_usd"] == pytest.approx(cost, rel=1e-12)
    assert ec["usd_per_million_output_tokens"] == pytest.approx(cost / output * 1e6, rel=1e-12)
    assert ec["j_per_output_token"] == pytest.approx(energy / output, rel=1e-12)
    assert ec["tiers"]["all"]["cost_usd"] == pytest.approx(cost, rel=1e-12)
    assert ec["tiers"]["all"]["gpu_s"] == pytest.approx(T, rel=1e-12)


@pytest.mark.parametrize("policy", ["continuous", "chunked", "static"])
def test_compute_utilization_is_the_tokens_flop_over_peak_time(policy: str) -> None:
    """40 identical requests (300-token prompts, 20-token answers) batched together: however
    the batches form, the FLOP executed is the sum over tokens of F(context), 40 x the lone
    request's, as long as nothing is recomputed; utilisation = FLOP / (peak x 2 GPUs x T).
    Chunked prefill splits prompts (max_batch_tokens 256) without changing the sum."""
    n, prompt, output = 40, 300, 20
    res = run(scenario(prompt, output, n, workload={"rate_rps": 50.0},
                       cluster={"instances": 2},
                       batching={"policy": policy, "max_batch_tokens": 256}))  # fmt: skip
    assert res["completed"] == n and res["preemptions"] == 0
    flop = n * lone_request_flop(prompt, output)
    u = res["utilization_by_role"]["colocated"]
    assert u["flop"] == pytest.approx(flop, rel=1e-9)
    peak = H100.peak_bf16_flops
    assert u["compute_utilization"] == pytest.approx(flop / (peak * 2 * res["simulated_s"]))
    assert 0 < u["compute_utilization"] < u["busy_fraction"] <= 1
    assert 0 < u["hbm_bandwidth_utilization"] < u["busy_fraction"]


PD = {"cluster": {"mode": "disaggregated", "prefill_instances": 2, "decode_instances": 3},
      "slo": {"tiers": THREE_TIERS}, "batching": {"policy": "chunked"}}  # fmt: skip


@pytest.mark.parametrize("extra", [
    {},
    PD,
    {**PD, "workload": {"num_requests": 1}},  # idle instances: their cost goes by the share
    {"cluster": {"instances": 3}, "slo": {"tiers": THREE_TIERS},
     "fabric": {"design": "spine_leaf", "gpus": 16, "nic": "400G"}},
])  # fmt: skip
def test_tier_costs_and_energies_add_up_to_the_totals(extra: dict[str, Any]) -> None:
    """Whatever the cluster, every dollar and joule goes to some tier (when any ran)."""
    from aifabric.outputs.schema_sim import RoleUtilization, ServeEconomics

    res = run(deep_merge(scenario(700, 90, 60, workload={"rate_rps": 8.0}), extra))
    ServeEconomics.model_validate(res["economics"])  # the published models, fabric included
    for u in res["utilization_by_role"].values():
        RoleUtilization.model_validate(u)
    ec = res["economics"]
    tiers = ec["tiers"].values()
    assert math.fsum(t["cost_usd"] for t in tiers) == pytest.approx(ec["cost_usd"], rel=1e-12)
    assert math.fsum(t["energy_j"] for t in tiers) == pytest.approx(ec["energy_j"], rel=1e-12)
    parts = ec["gpu_capital_usd"] + ec["network_capital_usd"] + ec["energy_cost_usd"]
    assert parts == pytest.approx(ec["cost_usd"], rel=1e-12)
    # GPU-seconds attributed: the busy GPU-time of every role.
    busy = sum(u["busy_fraction"] * u["gpus"] for u in res["utilization_by_role"].values())
    attributed = math.fsum(t["gpu_s"] for t in tiers)
    assert attributed == pytest.approx(busy * res["simulated_s"], rel=1e-9)
    assert sum(t["output_tokens"] for t in tiers) == res["completed"] * 90


@settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(idle=st.floats(0.0, 0.5), full=st.floats(0.5, 1.0), rate=st.floats(0.5, 40.0))
def test_gpu_energy_lies_between_idle_and_tdp(idle: float, full: float, rate: float) -> None:
    """The power model's energy over T on g GPUs: at least idle x TDP x g x T (all idle),
    at most full x TDP x g x T <= TDP x g x T (every GPU fully active all the time)."""
    econ = {"idle_power_fraction": idle, "full_power_fraction": full}
    res = run(scenario(400, 40, 30, workload={"rate_rps": rate}, cluster={"instances": 2},
                       economics=econ))  # fmt: skip
    ec, T = res["economics"], res["simulated_s"]
    floor, ceiling = idle * 700 * 2 * T, full * 700 * 2 * T
    assert floor * (1 - 1e-12) <= ec["gpu_energy_j"] <= ceiling * (1 + 1e-12)
    assert ec["gpu_energy_j"] <= 700 * 2 * T
    if full > idle:
        assert ec["gpu_energy_j"] > floor  # work was done


def test_doubling_the_prices_doubles_the_cost_per_token() -> None:
    """Cost is linear in the prices: twice the GPU-hour and energy prices, twice the cost
    per token; the same energy. With free energy, the GPU-hour price alone scales it."""
    base = scenario(600, 50, 40, workload={"rate_rps": 6.0})
    one = run(deep_merge(base, {"economics": {"gpu_hour_usd": 1.7, "energy_usd_per_kwh": 0.09}}))
    two = run(deep_merge(base, {"economics": {"gpu_hour_usd": 3.4, "energy_usd_per_kwh": 0.18}}))
    a, b = one["economics"], two["economics"]
    assert b["usd_per_million_output_tokens"] == pytest.approx(
        2 * a["usd_per_million_output_tokens"], rel=1e-12)  # fmt: skip
    assert b["energy_j"] == a["energy_j"]
    free = [run(deep_merge(base, {"economics": {"gpu_hour_usd": p, "energy_usd_per_kwh": 0.0}}))
            for p in (1.0, 2.0)]  # fmt: skip
    x, y = (f["economics"]["usd_per_million_output_tokens"] for f in free)
    assert y == pytest.approx(2 * x, rel=1e-12)


def test_default_gpu_hour_is_the_catalog_capex_over_the_life() -> None:
    """parts.yaml prices an H100 at 28,000 USD (likely); over 5 years of 8,766 h that is
    28,000 / 43,830 = 0.6388 USD/GPU-hour; a 4-year life or a given capex change it."""
    ec = run(scenario(100, 4))["economics"]
    assert ec["gpu_hour_usd"] == {"h100-sxm": pytest.approx(28_000 / (5 * 8766))}
    ec = run(scenario(100, 4, economics={"amortization_years": 4, "gpu_capex_usd": 35_064}))
    assert ec["economics"]["gpu_hour_usd"]["h100-sxm"] == pytest.approx(1.0)


def test_fabric_adds_exactly_its_amortised_bom(capsys: pytest.CaptureFixture[str]) -> None:
    """Colocated instances move no KV, so a fabric changes no timing; it adds the plan's
    BOM (aifabric plan, same fabric keys) amortised over the same life, C x T / life, and
    its power P x T at the energy price x PUE, exactly."""
    base = scenario(500, 40, 30, workload={"rate_rps": 5.0}, cluster={"instances": 2})
    fabric = {"design": "spine_leaf", "gpus": 16, "nic": "400G"}
    plain, fab = run(base), run(deep_merge(base, {"fabric": fabric}))
    plan = run_json(capsys, "plan", "--gpus", "16", "--design", "spine-leaf", "--nic", "400G",
                    "--json")  # fmt: skip
    capex, power = plan["cost"]["total_usd"], plan["power"]["total_w"]
    T = plain["simulated_s"]
    assert fab["simulated_s"] == T
    a, b = plain["economics"], fab["economics"]
    assert b["network_capex_usd"] == capex and b["network_power_w"] == power
    assert a["network_capex_usd"] is None and a["network_capital_usd"] == 0.0
    assert b["network_capital_usd"] == pytest.approx(capex * T / (5 * YEAR_S), rel=1e-12)
    assert b["network_energy_j"] == pytest.approx(power * T, rel=1e-12)
    added = capex * T / (5 * YEAR_S) + power * T * 1.3 * 0.08 / 3.6e6
    assert b["cost_usd"] - a["cost_usd"] == pytest.approx(added, rel=1e-9)


def test_moe_weights_touched_grow_from_active_to_all() -> None:
    """Mixtral 8x7B routes each token to 2 of 8 experts: one token reads the active
    weights (matmul part), T tokens read a 1 - (3/4)^T share of the experts, and a large
    batch reads them all (every matmul weight)."""
    mx = get_model("mixtral-8x7b")
    w = IterationWork.of(mx, tp=1, peak_flops=1.0, hbm_bandwidth=1.0)
    row = mx.hidden_size * 2
    assert w.weights_read(1) - row == pytest.approx(2 * mx.matmul_params_per_token())
    experts = 2 * mx.expert_params()
    assert w.weights_read(3) - w.weights_read(1) - 2 * row == pytest.approx(
        experts * ((1 - 0.75**3) - 0.25))  # fmt: skip
    all_matmul = 2 * (mx.num_params - mx.vocab_size * mx.hidden_size)
    assert w.weights_read(10_000) - 10_000 * row == pytest.approx(all_matmul, rel=1e-12)


def test_bad_economics_keys_are_one_line_errors() -> None:
    from aifabric.errors import ConfigError

    with pytest.raises(ConfigError, match=r"economics\.pue"):
        parse_scenario(scenario(economics={"pue": 0.9}))
    with pytest.raises(ConfigError, match="idle_power_fraction"):
        parse_scenario(scenario(economics={"idle_power_fraction": 0.8,
                                           "full_power_fraction": 0.5}))  # fmt: skip
    with pytest.raises(ConfigError, match=r"economics\.gpu_hour_usd"):
        parse_scenario(scenario(economics={"gpu_hour_usd": -1}))


def test_decode_pool_busy_is_not_capacity() -> None:
    """A memory-bound decode pool at small batches: nearly always busy, yet its tensor
    cores do a few percent of their peak; HBM bandwidth use stays below the roofline's
    decode efficiency (0.8) x busy."""
    res = run(deep_merge(scenario(1000, 200, 200, workload={"rate_rps": 4.0}), PD))
    d = res["utilization_by_role"]["decode"]
    assert d["compute_utilization"] < 0.1 < d["busy_fraction"]
    assert d["hbm_bandwidth_utilization"] <= 0.8 * d["busy_fraction"] + 1e-9
    assert np.isclose(d["gpus"], 3)


@settings(max_examples=200, deadline=None)
@given(
    batch=st.integers(1, 300),
    context=st.floats(0, 1e6),
    k=st.integers(1, 400),
    slow=st.floats(1.0, 3.0),
    cap=st.booleans(),
)
def test_closed_form_decode_stretch_equals_step_by_step(batch, context, k, slow, cap) -> None:
    """IterationWork.decode_stretch sums its affine series in closed form; it must equal
    the direct per-step sums (FLOP, bytes, and min(dt, max(compute, memory)) activity),
    whether or not the step durations cap the activity."""
    gpu = get_gpu("h100-sxm")
    w = IterationWork.of(get_model("llama3-8b"), tp=1, peak_flops=gpu.peak_flops("bf16"),
                         hbm_bandwidth=gpu.hbm_bandwidth)  # fmt: skip
    ctx = context + batch * np.arange(k, dtype=np.float64)
    flop = batch * w.flop0 + w.slope * ctx
    moved = w.weights_read(batch) + w.kv * (ctx + batch)
    ideal = np.maximum(flop / w.peak, moved / w.bandwidth)
    steps = ideal * slow if not cap else ideal[::-1].copy() * 0.999
    got = w.decode_stretch(batch, context, steps)
    want = (flop.sum(), moved.sum(), np.minimum(steps, ideal).sum())
    assert got == pytest.approx(want, rel=1e-9)
