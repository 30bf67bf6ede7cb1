"""SLO admission control, early rejection and the kv_aware router (serving.admission,
serving.routing).

The overload scenario: one colocated Llama-3-8B instance (TP1, H100 SXM), continuous
batching, fixed 512-token prompts and 64-token answers, the default gold / silver / bronze
tiers (TTFT 2 / 5 / 15 s, TBT 50 / 100 / 200 ms).

Sustainable rate (hand derivation): every request needs its prefill, P = prefill_time(512)
with the scenario's default (fitted) roofline (~25 ms: 512 x 2 x 8e9 FLOP / (989 TFLOP/s x
0.45) plus the 8 ms iteration overhead and the weight read), during which the instance does
nothing else, so no rate above 1/P (~39 req/s) can be sustained, whatever the batch. The tests run at 10 / P, at least 10x
what the instance sustains, with a few hundred requests.
"""

from __future__ import annotations

import math
from typing import Any

import pytest

from aifabric.catalog import get_gpu, get_model
from aifabric.outputs.schema_sim import ServeOutput
from aifabric.serving.cluster import ServingSimulation
from aifabric.serving.compute import RooflineTiming
from aifabric.serving.config import DEFAULT_TIERS, parse_scenario

MODEL = "llama3-8b"
GPU = "h100-sxm"
PROMPT, OUTPUT = 512, 64


def prefill_seconds() -> float:
    """P with the timing the scenario really gets (the default, fitted roofline)."""
    probe = {"model": MODEL, "gpu": GPU, "workload": {"num_requests": 1}}
    return float(ServingSimulation(parse_scenario(probe)).entry[0].timing.prefill_time(PROMPT))


OVERLOAD_RPS = 10.0 / prefill_seconds()  # >= 10x the sustainable 1 / P


def scenario(**sections: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "seed": 3,
        "model": MODEL,
        "gpu": GPU,
        "workload": {
            "source": "synthetic",
            "rate_rps": OVERLOAD_RPS,
            "num_requests": 800,
            "input_tokens": {"kind": "fixed", "mean": PROMPT},
            "output_tokens": {"kind": "fixed", "mean": OUTPUT},
        },
        "cluster": {"mode": "colocated", "instances": 1, "tp": 1},
        "batching": {"policy": "continuous", "max_batch_size": 256, "max_batch_tokens": 8192},
        "slo": {"tiers": [t.model_dump() for t in DEFAULT_TIERS], "admission_control": True},
    }
    for key, value in sections.items():
        if isinstance(value, dict) and isinstance(data.get(key), dict):
            data[key] = {**data[key], **value}
        else:
            data[key] = value
    return data


def run(data: dict[str, Any]) -> tuple[ServingSimulation, dict[str, Any]]:
    sim = ServingSimulation(parse_scenario(data))
    return sim, sim.run()


def met(req: Any, tier: Any) -> bool:
    """SLO check straight from a request's timeline (independent of summarize)."""
    ttft = req.first_token - req.arrival
    if req.output == 1:
        return bool(ttft <= tier.ttft_s)
    tbt = (req.finish - req.first_token) / (req.output - 1)
    return bool(ttft <= tier.ttft_s and tbt <= tier.tbt_s)


def test_overload_premise() -> None:
    """Without admission control the 10x overload misses gold's targets for most requests."""
    _, res = run(scenario(slo={"admission_control": False}))
    assert res["tiers"]["gold"]["slo_attainment"] < 0.5


@pytest.mark.parametrize(("cluster_mode", "policy"), [
    ("colocated", "continuous"), ("colocated", "chunked"), ("disaggregated", "continuous"),
])  # fmt: skip
def test_admitted_gold_meets_slo_at_10x_overload(cluster_mode: str, policy: str) -> None:
    sim, res = run(scenario(batching={"policy": policy}, cluster={"mode": cluster_mode}))
    gold = DEFAULT_TIERS[0]
    admitted_gold = [r for r in sim.records if r.tier == 0]
    assert res["rejected"] > res["requests"] / 2, "premise: the overload sheds most requests"
    assert len(admitted_gold) >= 20  # not an empty success
    share = sum(met(r, gold) for r in admitted_gold) / len(admitted_gold)
    assert share >= 0.95
    t = res["tiers"]["gold"]
    assert res["in_flight_at_end"] == 0
    assert t["admitted"] == len(admitted_gold)
    assert t["slo_attainment_admitted"] == pytest.approx(share)
    assert t["slo_attainment"] == pytest.approx(share * len(admitted_gold) / t["requests"])


@pytest.mark.parametrize("mode", ["none", "current", "predicted"])
@pytest.mark.parametrize("cluster_mode", ["colocated", "disaggregated"])
def test_all_arrival_attainment_never_exceeds_admitted(mode: str, cluster_mode: str) -> None:
    _, res = run(scenario(slo={"early_rejection": mode}, cluster={"mode": cluster_mode}))
    assert res["admitted"] == res["requests"] - res["rejected"]
    assert res["slo_attainment"] <= res["slo_attainment_admitted"]
    for t in res["tiers"].values():
        assert t["admitted"] == t["requests"] - t["rejected"]
        if t["slo_attainment_admitted"] is not None:
            assert t["slo_attainment"] <= t["slo_attainment_admitted"] + 1e-12
    # overall = arrival-weighted tiers
    good = sum(t["slo_attainment"] * t["requests"] for t in res["tiers"].values())
    assert res["slo_attainment"] == pytest.approx(good / res["requests"])


@pytest.mark.parametrize("cluster_mode", ["colocated", "disaggregated"])
def test_admission_off_rejects_nothing_for_slo(cluster_mode: str) -> None:
    _, res = run(scenario(slo={"admission_control": False}, cluster={"mode": cluster_mode}))
    ServeOutput.model_validate(res)  # the new keys have their fields in the output schema
    assert not any(k.startswith("slo") for k in res["rejected_by"])
    assert res["rejected"] == 0  # everything fits in KV memory too
    assert res["admitted"] == res["requests"]
    assert res["slo_attainment_admitted"] == res["slo_attainment"]
    assert res["rejected_prefill_tokens"] == 0


@pytest.mark.parametrize("mode", ["current", "predicted"])
@pytest.mark.parametrize("cluster_mode", ["colocated", "disaggregated"])
def test_early_rejection_spends_no_prefill_on_rejected(mode: str, cluster_mode: str) -> None:
    sim, res = run(scenario(slo={"early_rejection": mode}, cluster={"mode": cluster_mode}))
    assert res["rejected"] > 0
    assert res["rejected_prefill_tokens"] == 0
    for r in sim.rejected_reqs:  # never reached an instance's prefill
        assert math.isnan(r.first_token) and r.prefilled == 0 and r.instance == -1
    # Conservation: the prefill tokens the instances ran are exactly the admitted ones'.
    assert res["preemptions"] == 0 and res["in_flight_at_end"] == 0
    ran = sum(i.prefill_tokens for i in sim.instances)
    assert ran == sum(r.prompt - r.cached for r in sim.records)


def test_late_rejection_wastes_prefill() -> None:
    """early_rejection: none checks TBT only at the decode stage, after the prefill."""
    sim, res = run(scenario(slo={"early_rejection": "none"}))
    late = [r for r in sim.rejected_reqs if not math.isnan(r.first_token)]
    assert res["rejected_by"].get("slo_decode", 0) == len(late) > 0
    wasted = sum(r.prompt - r.cached for r in late)
    assert res["rejected_prefill_tokens"] == wasted
    assert res["preemptions"] == 0 and res["in_flight_at_end"] == 0
    ran = sum(i.prefill_tokens for i in sim.instances)
    assert ran == sum(r.prompt - r.cached for r in sim.records) + wasted


def test_admission_is_deterministic_per_seed() -> None:
    _, a = run(scenario())
    _, b = run(scenario())
    _, c = run(scenario(seed=4))
    for res in (a, b, c):
        res.pop("wall_s")
    assert a == b
    assert a != c


# ----- kv_aware router ------------------------------------------------------------------------
def shared_prefix(nic: float) -> dict[str, Any]:
    """Requests sharing a 2,048-token system prompt; no HBM prefix cache, so every reuse
    comes from the DRAM pool: fetch it or recompute it."""
    return scenario(
        workload={"rate_rps": 2.0, "num_requests": 60, "system_prompt_tokens": 2048},
        cluster={"mode": "colocated", "instances": 2, "tp": 1},
        routing={"policy": "kv_aware"},
        kv_store={"enabled": True, "hbm_cache_fraction": 0.0, "block_tokens": 512},
        network={"nic_bandwidth": nic},
        slo={"admission_control": False},
    )


def test_kv_aware_fetches_when_the_network_is_fast_and_recomputes_when_slow() -> None:
    """Hand numbers: 2,048 tokens x 128 KiB (Llama-3-8B's bf16 KV per token) = 256 MiB.
    At 50 GB/s that is ~5 ms, far below the ~60 ms to prefill 2,048 tokens; at 1 MB/s it
    is ~270 s, far above. So the router (and the plan) must fetch in the first case and
    recompute in the second."""
    kv = get_model(MODEL).kv_bytes_per_token("bf16")
    t = RooflineTiming(model=get_model(MODEL), gpu=get_gpu(GPU), tp=1)
    prefix = 2048 * kv
    assert prefix / 50e9 < t.prefill_time(2048 + PROMPT) - t.prefill_time(2048 + PROMPT, 2048)
    assert prefix / 1e6 > t.prefill_time(2048 + PROMPT)
    fast_sim, fast = run(shared_prefix(50e9))
    slow_sim, slow = run(shared_prefix(1e6))
    assert fast["kv_cache"]["hit_ratio_by_tier"]["dram"] > 0
    assert fast["kv_cache"]["fetches_skipped"] == 0
    assert fast["network_bytes"]["prefix_fetch"] > 0
    assert slow["kv_cache"]["hit_ratio_by_tier"]["dram"] == 0
    assert slow["kv_cache"]["fetches_skipped"] > 0
    assert slow["network_bytes"]["prefix_fetch"] == 0
    # Every request that found the prefix in the pool was served as the router costed it.
    assert all(r.hit_dram == 0 for r in slow_sim.records)
    reused = [r for r in fast_sim.records if r.cached]
    assert reused and all(r.hit_dram == r.cached for r in reused)
