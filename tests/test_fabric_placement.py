"""Placement of a training job on a fabric and the split of its traffic over the tiers.

Truth:
- conservation: placement decides where bytes travel, never how many; the per-tier bytes
  sum to the job's training_traffic total per iteration, per dimension and per scope;
- Megatron rank order (tp fastest, then cp, dp, pp): with tp = 8 = the HGX H100 NVLink
  domain, every TP group is one server, so TP bytes never leave NVLink;
- rail optimization (NVIDIA DGX SuperPOD RA-11333-001): GPU i of every DGX in a 32-node
  scalable unit shares leaf i; a DP ring of 16 servers inside one SU, member i of each
  server talking to member i of the next, therefore stays on one leaf. On a top-of-rack
  fabric of radix-64 leaves (32 down ports = 4 servers of 8 NICs) the same ring of 16
  servers crosses a ToR boundary on 4 of its 16 hops: 1/4 of the DP bytes reach spines;
- Meta Llama 3 (arXiv:2407.21783 sec. 3.3.1): two servers per ToR, 384 servers per pod;
  a contiguous ring over 768 servers (two pods) crosses a ToR on every other hop (384 of
  768) and a pod on 2 of them: 384 hops on a leaf, 382 via spines, 2 via the core;
- a byte that climbs to tier t crosses every lower layer once upwards, so a layer's
  load is the bytes of all tiers at or above it, and the least time to move an iteration's
  bytes is the largest layer load / layer capacity (NVLink: 900 GB/s bidirectional per
  H100 = 450 GB/s per direction, NVIDIA H100 datasheet).
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

import numpy as np
import pytest

from aifabric.errors import ConfigError
from aifabric.fabric.placement import traffic_by_tier
from aifabric.fabric.plan import plan_fabric
from aifabric.spec.jobs import TrainingJob
from aifabric.spec.scenario import TRAIN_KEYS, merge_options, training_job
from aifabric.traffic.collectives import SCALE_UP
from aifabric.traffic.training import training_traffic

# Four full SUs of 32 DGX H100 (the dgx-superpod-h100 preset removes one DGX for UFM,
# RA-11333-001 Table 4, and so holds 1,016 GPUs; these plans need all 1,024).
SUPERPOD_4SU = {"gpus": 1024, "design": "rail_optimized", "su_nodes": 32}
NVLINK_H100 = 450e9  # bytes/s per direction per GPU (900 GB/s bidirectional)


def job(**kw: Any) -> TrainingJob:
    flags = {"seq_len": 4096, **kw}
    flags.setdefault("global_batch", flags.get("dp", 1) * flags.get("micro_batch", 1) * 8)
    return training_job(merge_options(TRAIN_KEYS, {}, flags))


def dim_bytes(rows: list[dict[str, Any]]) -> dict[str, dict[str, float]]:
    out: dict[str, dict[str, float]] = defaultdict(dict)
    for r in rows:
        out[r["dimension"]][r["tier"]] = out[r["dimension"]].get(r["tier"], 0.0) + r["bytes"]
    return out


PLANS = {
    "tp8-dp16": {"model": "llama3-8b", "tp": 8, "dp": 16},
    "tp8-pp4-dp8": {"model": "llama3-70b", "tp": 8, "pp": 4, "dp": 8},
    "tp4-dp32": {"model": "llama3-8b", "tp": 4, "dp": 32},
    "tp2-dp64-zero3": {"model": "llama3-8b", "tp": 2, "dp": 64, "zero": 3},
    "tp16-pp2-dp8": {"model": "llama3-70b", "tp": 16, "pp": 2, "dp": 8},
    "mixtral-ep8": {"model": "mixtral-8x7b", "tp": 2, "ep": 8, "dp": 32},
    "tp8-cp2-dp8": {"model": "llama3-8b", "tp": 8, "cp": 2, "dp": 8},
    "tp1-dp1024": {"model": "llama3-8b", "tp": 1, "dp": 1024},
    "tp8-dp128": {"model": "llama3-8b", "tp": 8, "dp": 128},
    "tp4-dp256-tree": {"model": "llama3-8b", "tp": 4, "dp": 256, "algorithm": "tree"},
    "tp8-dp16-direct": {"model": "llama3-8b", "tp": 8, "dp": 16, "algorithm": "direct"},
    "dp8-in-node": {"model": "llama3-8b", "tp": 1, "dp": 8},
}


@pytest.mark.parametrize("name", sorted(PLANS))
def test_bytes_are_conserved(name):
    """Every byte of every traffic row lands on exactly one tier: per dimension, per scope
    (scale-up rows on NVLink, scale-out rows on leaf/spine/core) and in total."""
    j = job(**PLANS[name])
    traffic = training_traffic(j)
    result, _, _ = plan_fabric(SUPERPOD_4SU, j)
    by_tier = result["bytes_by_tier"]
    assert set(by_tier) == {"scale_up", "leaf", "spine", "core"}
    assert sum(by_tier.values()) == pytest.approx(traffic.total_bytes, rel=1e-12)
    assert result["job"]["iteration_bytes"] == pytest.approx(traffic.total_bytes)
    up = sum(r.total_bytes for r in traffic.rows if r.scope == SCALE_UP)
    out = traffic.total_bytes - up
    assert by_tier["scale_up"] == pytest.approx(up, rel=1e-12, abs=1.0)
    assert by_tier["leaf"] + by_tier["spine"] + by_tier["core"] == pytest.approx(
        out, rel=1e-12, abs=1.0
    )
    per_dim = dim_bytes(result["traffic_by_tier"])
    expected: dict[str, float] = defaultdict(float)
    for r in traffic.rows:
        expected[r.dimension] += r.total_bytes
    for dim, total in expected.items():
        if total > 0:
            assert sum(per_dim[dim].values()) == pytest.approx(total, rel=1e-12)
    assert all(r["bytes"] > 0 for r in result["traffic_by_tier"])
    assert all(r["tier"] in by_tier for r in result["traffic_by_tier"])


@pytest.mark.parametrize("name", ["tp8-dp16", "tp8-pp4-dp8", "tp8-cp2-dp8", "tp8-dp128"])
def test_tp8_stays_in_the_server(name):
    """tp = 8 = NVLink domain of an HGX H100: all TP bytes are scale-up."""
    result, _, _ = plan_fabric(SUPERPOD_4SU, job(**PLANS[name]))
    tp = dim_bytes(result["traffic_by_tier"])["tp"]
    assert set(tp) == {"scale_up"} and tp["scale_up"] > 0


def test_rail_optimized_keeps_dp_on_one_leaf():
    """tp8 x dp16 on the 4-SU SuperPOD: 16 servers of SU 0; DP member i of every server is
    GPU i, all on rail leaf i of SU 0, so every DP byte stays on a leaf."""
    result, _, _ = plan_fabric(SUPERPOD_4SU, job(**PLANS["tp8-dp16"]))
    dp = dim_bytes(result["traffic_by_tier"])["dp"]
    assert set(dp) == {"leaf"}
    assert result["bytes_by_tier"]["spine"] == 0 and result["bytes_by_tier"]["core"] == 0


def test_top_of_rack_sends_dp_to_the_spines():
    """The same job on a ToR Clos of 1,024 GPUs (radix 64, 32 down ports = 4 servers per
    leaf): the 16-server ring crosses a leaf on 4 of 16 hops, so 1/4 of DP bytes reach the
    spine tier and 3/4 stay on a leaf."""
    result, topo, _ = plan_fabric({"gpus": 1024, "design": "clos"}, job(**PLANS["tp8-dp16"]))
    assert topo.meta["design"] == "tor"
    dp = dim_bytes(result["traffic_by_tier"])["dp"]
    total = sum(dp.values())
    assert dp["spine"] == pytest.approx(total / 4)
    assert dp["leaf"] == pytest.approx(3 * total / 4)


def test_rail_optimized_ring_across_scalable_units():
    """tp8 x dp128 fills the 4 SUs; the ring of 128 servers leaves its SU on 4 of 128 hops
    (31 -> 32, 63 -> 64, 95 -> 96, 127 -> 0): 1/32 of DP bytes via spines."""
    result, _, _ = plan_fabric(SUPERPOD_4SU, job(**PLANS["tp8-dp128"]))
    dp = dim_bytes(result["traffic_by_tier"])["dp"]
    total = sum(dp.values())
    assert dp["spine"] == pytest.approx(total * 4 / 128)
    assert dp["leaf"] == pytest.approx(total * 124 / 128)
    assert "core" not in dp


def test_meta_two_pods_reaches_the_core():
    """Llama 3 layout, 2 pods (6,144 GPUs): tp8 x dp768 ring over 768 servers, 2 per ToR,
    384 per pod: 384 leaf hops, 382 spine hops, 2 core hops (out of 768)."""
    result, topo, _ = plan_fabric({"preset": "meta-llama3-24k", "pods": 2},
                                  job(model="llama3-8b", tp=8, dp=768, global_batch=768))  # fmt: skip
    assert topo.num_tiers == 3
    dp = dim_bytes(result["traffic_by_tier"])["dp"]
    total = sum(dp.values())
    assert dp["leaf"] == pytest.approx(total * 384 / 768)
    assert dp["spine"] == pytest.approx(total * 382 / 768)
    assert dp["core"] == pytest.approx(total * 2 / 768)


def _placed(name: str, placement: str, seed: int = 0, **opts: Any) -> dict[str, Any]:
    j = job(**PLANS[name])
    _, topo, _ = plan_fabric({**SUPERPOD_4SU, **opts})
    rows = list(training_traffic(j).rows)
    return traffic_by_tier(rows, j.plan, topo, placement=placement, seed=seed)


@pytest.mark.parametrize("seed", [0, 1, 7])
def test_random_placement_keeps_bytes_but_climbs(seed):
    """Shuffling whole servers keeps every byte and the NVLink share (TP groups are still
    servers) but scatters the 16 DP servers over 4 SUs: a ring hop stays in its SU with
    probability about 31/127, so most DP bytes now climb to the spines."""
    contiguous = _placed("tp8-dp16", "contiguous")
    shuffled = _placed("tp8-dp16", "random", seed)
    a, b = contiguous["by_tier"], shuffled["by_tier"]
    assert sum(b.values()) == pytest.approx(sum(a.values()), rel=1e-12)
    assert b["scale_up"] == pytest.approx(a["scale_up"])
    assert b["leaf"] < a["leaf"]
    assert b["spine"] > a["spine"] == 0
    assert b["spine"] > 0.4 * (b["leaf"] + b["spine"])
    assert shuffled["placement"] == "random"
    assert _placed("tp8-dp16", "random", seed)["by_tier"] == b  # seeded: reproducible


def test_unknown_placement_is_config_error():
    with pytest.raises(ConfigError, match="placement"):
        _placed("tp8-dp16", "diagonal")


def test_plan_fabric_honours_placement_option():
    """The 'placement' plan option (a PLAN_KEYS key, the CLI's --placement) must reach the
    traffic split: plan_fabric with placement=random matches traffic_by_tier(random)."""
    j = job(**PLANS["tp8-dp16"])
    result, _, _ = plan_fabric({**SUPERPOD_4SU, "placement": "random"}, j)
    expected = _placed("tp8-dp16", "random")["by_tier"]
    assert result["placement"] == "random"
    assert result["bytes_by_tier"] == pytest.approx(expected)
    contiguous, _, _ = plan_fabric(SUPERPOD_4SU, j)
    assert contiguous["placement"] == "contiguous"
    assert result["bytes_by_tier"]["spine"] > contiguous["bytes_by_tier"]["spine"] == 0


def test_node_matrix_sums_to_scale_out_bytes():
    """tp8 x dp16: the node matrix is the DP ring of servers 0..15 (i -> i+1 mod 16),
    each pair carrying 1/16 of the scale-out bytes; no server talks to itself."""
    j = job(**PLANS["tp8-dp16"])
    traffic = training_traffic(j)
    out = sum(r.total_bytes for r in traffic.rows if r.scope != SCALE_UP)
    _, topo, (src, dst, nbytes) = plan_fabric(SUPERPOD_4SU, j, matrix=True)
    assert nbytes.sum() == pytest.approx(out, rel=1e-12)
    assert bool((src != dst).all())
    assert set(zip(src.tolist(), dst.tolist(), strict=True)) == {
        (i, (i + 1) % 16) for i in range(16)
    }
    assert np.allclose(nbytes, out / 16)
    assert int(max(src.max(), dst.max())) < topo.num_nodes


@pytest.mark.parametrize("name", ["tp8-pp4-dp8", "mixtral-ep8", "tp1-dp1024", "tp4-dp32"])
def test_node_matrix_conservation_other_plans(name):
    j = job(**PLANS[name])
    traffic = training_traffic(j)
    out = sum(r.total_bytes for r in traffic.rows if r.scope != SCALE_UP)
    result, _, (src, dst, nbytes) = plan_fabric(SUPERPOD_4SU, j, matrix=True)
    assert nbytes.sum() == pytest.approx(out, rel=1e-12)
    assert bool((src != dst).all())  # server = NVLink domain: scale-out leaves the server
    by = result["bytes_by_tier"]
    assert nbytes.sum() == pytest.approx(by["leaf"] + by["spine"] + by["core"], rel=1e-12)


def test_node_matrix_empty_when_all_traffic_is_scale_up():
    result, _, (src, dst, nbytes) = plan_fabric(SUPERPOD_4SU, job(**PLANS["dp8-in-node"]),
                                                matrix=True)  # fmt: skip
    assert src.size == dst.size == nbytes.size == 0
    assert result["bytes_by_tier"]["leaf"] == 0


@pytest.mark.parametrize("name", ["tp8-dp16", "tp8-dp128", "mixtral-ep8", "tp4-dp256-tree"])
def test_min_communication_time_is_worst_layer(name):
    """Layer loads: NVLink = scale-up bytes; endpoint-leaf = leaf + spine + core bytes;
    leaf-spine = spine + core; spine-core = core. Capacities: 1,024 x 450 GB/s NVLink,
    1,024 x 400G NICs, 32 leaves x 32 x 400G uplinks; time = max load / capacity."""
    result, _, _ = plan_fabric(SUPERPOD_4SU, job(**PLANS[name]))
    by = result["bytes_by_tier"]
    nic = 400e9 / 8
    loads = {
        "scale_up": (by["scale_up"], 1024 * NVLINK_H100),
        "endpoint_leaf": (by["leaf"] + by["spine"] + by["core"], 1024 * nic),
        "leaf_spine": (by["spine"] + by["core"], 32 * 32 * nic),
    }
    expected = max(b / c for b, c in loads.values())
    assert result["min_communication_time_s"] == pytest.approx(expected)
    layers = {x["layer"]: x for x in result["tier_bandwidth"]}
    for name_, (b, c) in loads.items():
        assert layers[name_]["bytes"] == pytest.approx(b)
        assert layers[name_]["available_bytes_per_s"] == pytest.approx(c)
        step = result["job"]["compute_time_s"]
        assert layers[name_]["required_bytes_per_s"] == pytest.approx(b / step)
    assert "spine_core" not in layers  # 2 tiers: no core layer
    assert result["min_communication_time_s"] == max(x["min_time_s"] for x in layers.values())


def test_job_larger_than_fabric_is_config_error():
    with pytest.raises(ConfigError, match="needs 128 GPUs but the fabric has 64"):
        plan_fabric({"gpus": 64}, job(model="llama3-8b", dp=128))
