"""Serving KV traffic on a planned fabric (issue 10, item 7): the ``fabric:`` section.

Rules under test (aifabric.serving.fabric): instances take tp consecutive GPUs, pools in
order prefill, decode, memory servers; a transfer is split evenly over the parties' rails
and moves as one weighted flow over the fabric's routed directed links; bytes per link
layer count both directions.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from aifabric.serving.cluster import ServingSimulation
from aifabric.serving.config import load_serve_scenario

from .cli_helpers import main_in_process, run_error, run_json

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples" / "serve"
NIC = 50e9  # 400G in bytes/s
LATENCY = 10e-6  # network.latency_s default

# One Llama-3-8B request through a 1:1 PD pair on a 128-GPU non-blocking spine-leaf.
HAND = """\
seed: 0
model: llama3-8b
gpu: h100-sxm
workload:
  source: synthetic
  rate_rps: 1
  num_requests: 1
  input_tokens: {kind: fixed, mean: 4096}
  output_tokens: {kind: fixed, mean: 4}
cluster: {mode: disaggregated, prefill_instances: 1, decode_instances: 1, tp: 8}
fabric:
  design: spine_leaf
  gpus: 128
  nic: 400G
  placement: separate_leaves
  routing: spray
"""


def _sim(tmp_path: Path, text: str, sets: list[str] | None = None) -> ServingSimulation:
    path = tmp_path / "scenario.yaml"
    path.write_text(text, encoding="utf-8")
    return ServingSimulation(load_serve_scenario(path, sets))


def _transfer_times(sim: ServingSimulation) -> np.ndarray:
    """KV transfer time of each completed request: KV at the decoder - first token (the
    transfer starts when prefill ends, when the decoder has room: it has here)."""
    return np.array([r.kv_ready - r.first_token for r in sim.records])


# --- (a) no fabric: as before ------------------------------------------------------------


def test_without_fabric_the_example_is_unchanged(capsys: pytest.CaptureFixture[str]) -> None:
    """The Mooncake PD example without a fabric, figures recorded from the run before the
    fabric was added (commit 574df79): the same TTFT, TBT, bytes and event count, and no
    fabric keys."""
    unfitted = [
        "--set",
        "compute.prefill_mfu=0.5",
        "--set",
        "compute.iteration_overhead_s=0",
        "--set",
        "compute.sequence_overhead_s=0",
        "--set",
        "compute.layer_overhead_s=0",
        "--set",
        "compute.layer_sequence_overhead_s=0",
        "--set",
        "compute.scaleup_bandwidth_efficiency=1",
        "--set",
        "compute.scaleup_latency_s=2e-6",
        "--set",
        "compute.timing=roofline",  # not the measured profile Llama-3-70B now borrows
    ]
    r = run_json(capsys, "simulate", "serve", "-f", str(EXAMPLES / "mooncake-conversation-pd.yaml"),
                 *unfitted, "--json")  # fmt: skip
    assert r["ttft_s"]["p50"] == pytest.approx(0.223314813934536, rel=1e-12)
    assert r["ttft_s"]["p99"] == pytest.approx(6.54955995034219, rel=1e-12)
    assert r["tbt_s"]["p99"] == pytest.approx(0.0213968886357503, rel=1e-12)
    assert r["network_bytes"]["kv_transfer"] == 46881305395200.0
    assert r["network_bytes"]["prefix_fetch"] == 12622506229760.0
    assert r["network_bytes"]["prefix_store"] == 30667073126400.0
    assert r["simulated_s"] == pytest.approx(3549.28081057223, rel=1e-12)
    assert r["events"] == 110160
    assert "network_bytes_by_tier" not in r and "network_utilization_by_tier" not in r


# --- (b) the hand case -----------------------------------------------------------------


def test_one_kv_transfer_across_leaves_takes_bytes_over_tp_nics(tmp_path: Path) -> None:
    """Llama-3-8B KV: 2 (K, V) x 32 layers x 8 KV heads x 128 x 2 bytes = 131,072 B per
    token; 4,096 prompt tokens: B = 536,870,912 bytes. On 128 GPUs a 64-port leaf at 400G is
    non-blocking with 32 ports down (4 servers: 4 leaves, 2 spines), so separate_leaves puts the prefill
    instance on server 0 (leaf 0) and the decode instance on server 4 (leaf 1). The
    transfer is split over 8 rails (B/8 each, GPU i -> GPU i); spray spreads each rail's
    share evenly over the spines, so only the NICs bind: each of the 8 NIC links carries
    rate/8 <= 50 GB/s, rate = 8 x 50 GB/s and the time is B / (8 x 50e9) + 10 us =
    1.3422 ms + 0.01 ms. Bytes by layer, both directions: up from 8 NICs and down into 8
    NICs = 2B on endpoint_leaf; up to the spines and down to leaf 1 = 2B on leaf_spine.
    """
    sim = _sim(tmp_path, HAND)
    assert sim.kv_bytes_per_token == 2 * 32 * 8 * 128 * 2
    assert sim.fabric is not None
    assert sim.fabric.leaves(0) == [0] and sim.fabric.leaves(1) == [1]
    r = sim.run()
    size = 4096 * 131072
    (t,) = _transfer_times(sim)
    assert t == pytest.approx(size / (8 * NIC) + LATENCY, rel=1e-9)
    assert r["network_bytes"]["kv_transfer"] == size
    assert r["network_bytes_by_tier"] == pytest.approx({"endpoint_leaf": 2 * size,
                                                        "leaf_spine": 2 * size}, rel=1e-12)  # fmt: skip
    # The same pair without a fabric (tp x NIC ports): the same time.
    plain = _sim(tmp_path, HAND.split("fabric:")[0], ["network.nic_bandwidth=400G"])
    plain.run()
    assert _transfer_times(plain)[0] == pytest.approx(t, rel=1e-12)


def test_hand_case_routing_modes(tmp_path: Path) -> None:
    """adaptive puts the 8 rails' parts on 8 distinct leaf uplinks (least loaded first,
    32 to choose from) and downlinks: the same time as spray. ECMP hashes them and may
    collide (two parts on one 50 GB/s link halve the rate): never faster. Within one leaf
    (contiguous placement: servers 0 and 1) only the NIC links are crossed: 2B on
    endpoint_leaf, 0 on leaf_spine, and the time is again B / (8 x 50e9) + 10 us."""
    size = 4096 * 131072
    ideal = size / (8 * NIC) + LATENCY
    adaptive = _sim(tmp_path, HAND, ["fabric.routing=adaptive"])
    adaptive.run()
    assert _transfer_times(adaptive)[0] == pytest.approx(ideal, rel=1e-9)
    ecmp = _sim(tmp_path, HAND, ["fabric.routing=ecmp"])
    ecmp.run()
    assert _transfer_times(ecmp)[0] >= ideal * (1 - 1e-12)
    local = _sim(tmp_path, HAND, ["fabric.placement=contiguous"])
    r = local.run()
    assert _transfer_times(local)[0] == pytest.approx(ideal, rel=1e-9)
    assert r["network_bytes_by_tier"] == {"endpoint_leaf": pytest.approx(2 * size),
                                          "leaf_spine": 0.0}  # fmt: skip


# --- (c) oversubscription --------------------------------------------------------------

BURST = """\
seed: 0
model: llama3-8b
gpu: h100-sxm
workload:
  source: synthetic
  rate_rps: 100000
  num_requests: 64
  input_tokens: {kind: fixed, mean: 8192}
  output_tokens: {kind: fixed, mean: 2}
cluster: {mode: disaggregated, prefill_instances: 4, decode_instances: 4, tp: 8}
batching: {policy: chunked, max_batch_tokens: 8192}
fabric:
  design: spine_leaf
  gpus: 128
  nic: 400G
  placement: separate_leaves
  routing: spray
"""


def test_oversubscription_slows_concurrent_cross_leaf_transfers(tmp_path: Path) -> None:
    """64 requests arrive together; the 4 prefill instances (one server each, leaf 0)
    finish a prompt per iteration in lockstep and send 4 transfers of 8,192 x 131,072 B =
    1.07 GB at once to the 4 decode servers (another leaf). Non-blocking (32 up = 32 down
    per leaf) only the NICs bind: each at 8 x 50 GB/s. Oversubscribed, the leaf's uplinks
    (4:1: 13 x 50 GB/s = 650 GB/s) carry the 4 x 400 GB/s the NICs could send, so the
    transfers share them. The mean transfer time can only grow with the ratio (1, 2, 4),
    and at 4:1 it is above the non-blocking one."""
    means = []
    for ratio in (1, 2, 4):
        sim = _sim(tmp_path, BURST, [f"fabric.oversubscription={ratio}"])
        r = sim.run()
        assert r["completed"] == 64
        assert r["network_bytes_by_tier"]["leaf_spine"] == pytest.approx(
            2 * r["network_bytes"]["kv_transfer"]
        )
        means.append(float(_transfer_times(sim).mean()))
    nonblocking = 8192 * 131072 / (8 * NIC) + LATENCY
    assert means[0] == pytest.approx(nonblocking, rel=1e-6)
    assert means[0] <= means[1] <= means[2]
    assert means[2] > means[0] * 1.5  # 1,600 / 650 = 2.46 x when all 4 overlap


# --- (d) bad sections ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("sets", "expected"),
    [
        (["fabric.gpus=64"], "fabric.gpus: 64 GPUs (8 servers of 8) are too few"),
        (["fabric.bogus=1"], "unknown scenario key 'fabric.bogus'"),
        (["fabric.routing=hashy"], "fabric.routing: 'hashy' is not one of ecmp"),
        (["fabric.placement=random"], "fabric.placement: 'random' is not one of"),
        (["fabric.qps=0"], "fabric.qps: expected an integer from 1 to 64"),
        (["fabric.design=torus"], "scenario key fabric: design(='torus') must be one of"),
        (["fabric.gpus=many"], "scenario key fabric: gpus: cannot read 'many'"),
        (["fabric=3"], "scenario key fabric"),
        (["network.nic_bandwidth=200G"], "network.nic_bandwidth: with a fabric: section"),
        (["network.oversubscription=2"], "give fabric.oversubscription instead"),
    ],
)
def test_bad_fabric_sections_fail_cleanly(capsys: pytest.CaptureFixture[str],
                                          sets: list[str], expected: str) -> None:  # fmt: skip
    """One line, exit status 2, naming the key. 64 GPUs are 8 servers; the example's pools
    need 4 + 2 + 8 = 14 servers even packed."""
    args = ["simulate", "serve", "-f", str(EXAMPLES / "mooncake-pd-fabric.yaml")]
    for s in sets:
        args += ["--set", s]
    assert expected in run_error(capsys, *args)


def test_a_fabric_without_gpus_or_preset_is_refused(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    path = tmp_path / "s.yaml"
    path.write_text(HAND.replace("  gpus: 128\n", ""), encoding="utf-8")
    assert "give fabric.gpus" in run_error(capsys, "simulate", "serve", "-f", str(path))


# --- (e) the example -------------------------------------------------------------------


def test_the_fabric_example_runs_and_validates(capsys: pytest.CaptureFixture[str]) -> None:
    """Every pool starts on a leaf of its own, so every byte moved between parties crosses a
    spine: each layer carries twice (up and down) the sum of KV transfer, prefix fetch and
    prefix store bytes. The same trace and compute as the plain example: every request
    completes, with the same KV volumes (the routing of bytes, not their amount, changes)."""
    r: dict[str, Any] = run_json(capsys, "simulate", "serve", "-f",
                                 str(EXAMPLES / "mooncake-pd-fabric.yaml"), "--json")  # fmt: skip
    assert r["completed"] == 12031
    moved = sum(r["network_bytes"][k] for k in ("kv_transfer", "prefix_fetch", "prefix_store"))
    assert set(r["network_bytes_by_tier"]) == {"endpoint_leaf", "leaf_spine"}
    for layer in ("endpoint_leaf", "leaf_spine"):
        assert r["network_bytes_by_tier"][layer] == pytest.approx(2 * moved, rel=1e-9)
        u = r["network_utilization_by_tier"][layer]
        assert 0 < u["mean_utilization"] <= u["max_utilization"] <= 1
    assert r["network_bytes"]["kv_transfer"] == 46881305395200.0
    assert math.isfinite(r["tbt_s"]["p99"])


def test_text_report_has_a_line_per_fabric_layer(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    path = tmp_path / "s.yaml"
    path.write_text(HAND, encoding="utf-8")
    out = main_in_process(capsys, "simulate", "serve", "-f", str(path))
    assert "fabric endpoint_leaf" in out and "fabric leaf_spine" in out
