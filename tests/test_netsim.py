"""The flow-level network simulator on planned fabrics (aifabric.netsim, fabric.routing).

Expected values are derived by hand in each docstring: closed forms of the ring schedule,
balls into bins for hashed flows, oversubscription ratios, conservation of bytes.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from aifabric.catalog import get_gpu, get_switch
from aifabric.errors import ConfigError
from aifabric.fabric.plan import build, fabric_spec
from aifabric.fabric.routing import Router, apply_impairments, parse_impairment
from aifabric.netsim.collectives import NetworkModel, Step, run_step, simulate
from aifabric.netsim.fairshare import max_min_rates, run_batch
from aifabric.netsim.run import simulate_collective

from .cli_helpers import run_error, run_json

GIB = 2**30


def network(options: dict, fail: list[str] | None = None, seed: int = 0) -> NetworkModel:
    spec, gpu_name, info = fabric_spec(options)
    topo = build(spec, info.get("design"))
    state = apply_impairments(topo, [parse_impairment(x) for x in fail], seed) if fail else None
    switch = get_switch(spec.switch_model).latency or 0.0
    return NetworkModel(Router(topo, state), topo.num_gpus, spec.scaleup_domain_size,
                        get_gpu(gpu_name).scaleup_bandwidth_per_direction, switch)  # fmt: skip


@pytest.mark.parametrize("gpus", [64, 4096])
def test_ring_all_reduce_on_non_blocking_spray_matches_the_closed_form(gpus: int) -> None:
    """Ring all-reduce of S over n GPUs in servers of 8 (8 x 400G NICs), 8 channels, on the
    non-blocking rail-optimized fabric with ideal spraying.

    Each of the 2(n-1) steps moves S/n per rank split over C = 8 channels; a channel leaves
    each server through one NIC, so every NIC carries S/(nC) per step at 50 GB/s, while a
    GPU's NVLink carries 7 channels' S/(nC) at 450 GB/s (less loaded: 7/8 S/n / 450e9 <
    S/n / 400e9). Step time = S/(n C B_nic) + alpha, alpha the longest path latency:
    at 64 GPUs (one scalable unit) every hop is rail-aligned inside the SU, nic->leaf->nic
    (2 cables of 30 m multimode at 5 ns/m = 150 ns each, one QM9700 at its catalog
    130 ns); at 4,096 GPUs (16 SUs, 3 tiers, pods of 32 leaves) the wrap-around hop from
    the last server to server 0 crosses pods: nic-leaf-spine-core-spine-leaf-nic, 4
    multimode cables, 2 singlemode ones of 150 m (750 ns) and 5 switches: 2.75 us. The simulated time must equal this within 1 %, and the alpha-beta
    reference too.
    """
    net = network({"gpus": gpus})
    topo = net.router.topo
    run = simulate(net, "all_reduce", np.arange(gpus), GIB, algorithm="ring", mode="spray",
                   seed=0, channels=8)  # fmt: skip
    assert net.switch_latency == pytest.approx(130e-9)
    alpha = 2 * 150e-9 + 130e-9 if gpus == 64 else 4 * 150e-9 + 2 * 750e-9 + 5 * 130e-9
    assert topo.num_tiers == (3 if gpus == 4096 else topo.num_tiers)
    closed = 2 * (gpus - 1) * (GIB / gpus / (8 * 50e9) + alpha)
    assert run.time == pytest.approx(closed, rel=0.01)
    assert run.analytic == pytest.approx(run.time, rel=0.01)


def test_ecmp_collisions_on_a_ring_across_scalable_units_cost_time() -> None:
    """Per-flow ECMP hashes the cross-SU ring hops onto spines; collisions make some NICs'
    flows share an uplink, so the simulated time exceeds the alpha-beta one (efficiency
    below 1) while spraying reaches it."""
    net = network({"gpus": 16384, "tiers": 3})
    ranks = np.arange(16384)
    ecmp = simulate(net, "all_reduce", ranks, GIB, algorithm="ring", mode="ecmp", seed=0,
                    channels=8)  # fmt: skip
    assert ecmp.time > 1.02 * ecmp.analytic


def test_balls_into_bins_mean_throughput_of_hashed_flows() -> None:
    """n flows from the n hosts of one leaf to the n hosts of another, ECMP over the
    leaf's n uplinks (one per spine; radix 16: 8 down, 8 up, 8 spines). A flow sharing its
    uplink with B others (B ~ Binomial(n-1, 1/n)) gets C/(1+B) (equal flows on a link
    finish together), so its mean throughput fraction is
    E[1/(1+B)] = (1 - (1-p)^(m+1)) / ((m+1) p) with m = n-1, p = 1/n, i.e.
    1 - (1 - 1/n)^n = 0.6564 for n = 8. Averaged over 300 hash seeds.
    """
    net = network({"gpus": 128, "design": "clos", "switch_radix": 16})
    n = 8
    step = Step(np.arange(n), np.arange(n, 2 * n), np.full(n, 1e9))  # latency negligible
    fractions = []
    for seed in range(300):
        res = run_step(net, step, "ecmp", seed, 1)
        fractions.extend((1e9 / res.flow_time / 50e9).tolist())
    expected = 1 - (1 - 1 / n) ** n
    assert np.mean(fractions) == pytest.approx(expected, rel=0.03)


@pytest.mark.parametrize("ratio", [1, 3])
def test_oversubscription_slows_a_cross_leaf_permutation_to_one_over_k(ratio: int) -> None:
    """768 GPUs on top-of-rack leaves of radix 64 at k:1 (k = 3: 48 down, 16 up; 16 full
    leaves). A permutation across leaves under spray sends every host's line rate over its
    leaf's uplinks: 48 flows share 16 uplinks, so each gets 1/3 of line rate (1 at 1:1)."""
    net = network({"gpus": 768, "design": "clos", "oversubscription": ratio})
    run = simulate(net, "permutation", np.arange(768), 64e6, algorithm="direct",
                   mode="spray", seed=1, line_rate=50e9)  # fmt: skip
    assert run.throughput_fraction is not None
    assert np.mean(run.throughput_fraction) == pytest.approx(1 / ratio, rel=0.01)


@pytest.mark.parametrize("spines_down", [1, 2, 4])
def test_losing_a_fraction_of_leaf_spine_links_lowers_spray_throughput_to_one_minus_f(
    spines_down: int,
) -> None:
    """Radix-16 ToR Clos (16 leaves of 8 down / 8 up, one cable from each leaf to each of
    8 spines). Taking f = d/8 of the leaf-spine cables down evenly (every cable of d
    spines) leaves every leaf 1 - f of its uplinks; a cross-leaf permutation under spray
    then runs at 1 - f of line rate."""
    names = ",".join(f"spine{i}" for i in range(spines_down))
    net = network({"gpus": 128, "design": "clos", "switch_radix": 16}, fail=[names])
    run = simulate(net, "permutation", np.arange(128), 1e9, algorithm="direct",
                   mode="spray", seed=1, line_rate=50e9)  # fmt: skip
    assert run.throughput_fraction is not None
    assert np.mean(run.throughput_fraction) == pytest.approx(1 - spines_down / 8, rel=0.01)


def test_random_link_failures_hurt_oblivious_spraying_more_than_capacity() -> None:
    """25 % of leaf-spine cables down at random: the capacity left bounds a cross-leaf
    permutation at 0.75 of line rate, and oblivious (even, hop-by-hop) spraying stays
    below it, since each flow is held to its most loaded sprayed path."""
    net = network({"gpus": 768, "design": "clos"}, fail=["leaf_spine:0.25"], seed=3)
    run = simulate(net, "permutation", np.arange(768), 1e9, algorithm="direct",
                   mode="spray", seed=1, line_rate=50e9)  # fmt: skip
    assert run.throughput_fraction is not None
    assert 0.2 < np.mean(run.throughput_fraction) < 0.75


def test_conservation_and_capacity_on_a_simulated_step() -> None:
    """Every byte of every flow crosses each of its links (times the link's weight): the
    engine's per-link byte count equals size x weight summed by link; and the max-min
    rates never put a link above its capacity."""
    net = network({"gpus": 1024})
    rng = np.random.default_rng(0)
    src = rng.integers(1024, size=500)
    dst = (src + 1 + rng.integers(1023, size=500)) % 1024
    sizes = rng.uniform(1e5, 1e7, size=500)
    for mode in ("ecmp", "spray", "adaptive"):
        ip, lk, w, sz, _ = net.paths(Step(src, dst, sizes), mode, 0, 1)
        finish, link_bytes, _ = run_batch(ip, lk, w, sz, net.capacity)
        owner = np.repeat(np.arange(len(sz)), np.diff(ip))
        expect = np.bincount(lk, weights=w * sz[owner], minlength=len(net.capacity))
        np.testing.assert_allclose(link_bytes, expect, rtol=1e-9, atol=1e-3)
        rates = max_min_rates(ip, lk, w, net.capacity)
        load = np.bincount(lk, weights=w * rates[owner], minlength=len(net.capacity))
        assert (load <= net.capacity * (1 + 1e-9) + 1e-6).all()
        assert (finish > 0).all()


def test_spray_weights_split_evenly_and_sum_to_one_per_layer() -> None:
    """On a 3-tier fabric a cross-pod sprayed flow's weights on each layer and direction
    sum to 1 (every byte goes up and comes down once per layer)."""
    spec, _, info = fabric_spec({"gpus": 4096})
    r = Router(build(spec, info["design"]))
    ep = r.endpoints_of_gpus(np.array([0, 0]))
    routes = r.route(ep, r.endpoints_of_gpus(np.array([8 * 300, 4000])), "spray")
    for f in range(2):
        lk = routes.links[routes.indptr[f] : routes.indptr[f + 1]]
        w = routes.weights[routes.indptr[f] : routes.indptr[f + 1]]
        for layer in (1, 2, 3):
            for down in (False, True):
                sel = (r.layer[lk] == layer) & ((lk >= r.num_links) == down)
                assert w[sel].sum() == pytest.approx(1.0)


def test_rail_aligned_flows_stay_on_their_leaf() -> None:
    """On the rail-optimized fabric GPU 0 and GPU 8 (NIC 0 of servers 0 and 1) share rail
    leaf 0: their flow takes nic->leaf->nic, two links, under every routing mode."""
    spec, _, info = fabric_spec({"gpus": 1024})
    r = Router(build(spec, info["design"]))
    for mode in ("ecmp", "spray", "adaptive"):
        routes = r.route(r.endpoints_of_gpus(np.array([0])), r.endpoints_of_gpus(np.array([8])),
                         mode)  # fmt: skip
        assert len(routes.links) == 2


def test_ecmp_qp_spreads_a_connection_over_queue_pairs() -> None:
    """One connection between two servers' NICs on different leaves: with one QP it takes
    one spine; split over 8 QPs (each hashed) it crosses several uplinks."""
    net = network({"gpus": 128, "design": "clos", "switch_radix": 16})
    step = Step(np.array([0]), np.array([8]), np.array([8e6]))
    ip, lk, _, _, _ = net.paths(step, "ecmp_qp", 0, 8)
    ups = {int(x) for x in lk if net.layer[x] == 2 and x < net.router.num_links}
    assert len(ip) - 1 == 8 and len(ups) > 1


def test_failures_parse_and_cut_off_flows_are_reported() -> None:
    with pytest.raises(ConfigError, match="fraction in"):
        parse_impairment("leaf_spine:1.5")
    with pytest.raises(ConfigError, match="not a layer"):
        parse_impairment("spines:2")
    with pytest.raises(ConfigError, match="SPEED"):
        parse_impairment("leaf_spine:0.1", degrade=True)
    assert parse_impairment("leaf-spine:0.1@0.5", degrade=True).speed == 0.5
    with pytest.raises(ConfigError, match="cut off"):
        simulate_collective({"gpus": 64}, op="all_reduce", sizes=[GIB], fail=["leaf0"],
                            routing="ecmp")  # fmt: skip
    with pytest.raises(ConfigError, match="no switch 'leaf99'"):
        simulate_collective({"gpus": 64}, op="all_reduce", sizes=[GIB], fail=["leaf99"])


def test_a_spine_down_slows_a_permutation_and_is_named() -> None:
    """Two of eight spines down (radix 16 ToR, 8 uplinks per leaf): a cross-leaf
    permutation under spray keeps 6/8 of the uplinks, so 0.75 of line rate."""
    result = simulate_collective({"gpus": 128, "design": "clos", "switch_radix": 16},
                                 op="permutation", sizes=[64e6], routing="spray",
                                 fail=["spine0,spine5"])  # fmt: skip
    assert result["fabric"]["failed_switches"] == ["spine0", "spine5"]
    r = result["results"][0]
    assert r["mean_flow_throughput_ratio"] == pytest.approx(0.75, rel=0.01)


def test_degraded_links_run_at_their_speed() -> None:
    """Every leaf-spine cable at half speed (fraction 1 - 1e-9 rounds to all 128): a
    permutation across leaves under spray runs at half line rate."""
    result = simulate_collective({"gpus": 128, "design": "clos", "switch_radix": 16},
                                 op="permutation", sizes=[64e6], routing="spray",
                                 degrade=["leaf_spine:0.999999@0.5"])  # fmt: skip
    assert result["fabric"]["degraded_links"] == 128
    assert result["results"][0]["mean_flow_throughput_ratio"] == pytest.approx(0.5, rel=0.01)


def test_cli_json_validates_and_deterministic(capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["simulate", "collective", "--gpus", "256", "--op", "all_reduce", "--size",
            "1MiB,1GiB", "--routing", "ecmp_qp", "--qps", "4", "--json"]  # fmt: skip
    a = run_json(capsys, *argv)
    b = run_json(capsys, *argv)
    assert [r["time_s"] for r in a["results"]] == [r["time_s"] for r in b["results"]]
    assert len(a["results"]) == 2 and a["results"][1]["busbw_bytes_per_s"] > 0
    group = run_json(capsys, "simulate", "collective", "--gpus", "64", "--group", "dp",
                     "--tp", "8", "--dp", "8", "--json")  # fmt: skip
    assert group["ranks"] == 8 and group["channels"] == 1
    scenario = run_json(capsys, "simulate", "collective", "-f",
                        str(Path(__file__).parents[1] / "examples/train/llama3-70b-tp8-pp8-dp16.yaml"), "--group", "dp", "--json")  # fmt: skip
    assert scenario["ranks"] == 16  # the scenario's dp
    pattern = run_json(capsys, "simulate", "collective", "--gpus", "64", "--op", "incast",
                       "--size", "1MiB", "--json")  # fmt: skip
    # 63 senders into one GPU: the 56 in other servers share its NIC (1/56 of line rate
    # each), the 7 in its server its NVLink.
    assert pattern["results"][0]["min_flow_throughput_ratio"] == pytest.approx(1 / 56, rel=0.02)
    json.dumps(a)


@pytest.mark.parametrize(
    "argv,match",
    [
        (["--gpus", "64", "--routing", "magic"], "routing"),
        (["--gpus", "64", "--op", "gather"], "op"),
        (["--gpus", "64", "--qps", "4"], "ecmp_qp"),
        (["--gpus", "64", "--size", "0"], "--size"),
        (["--gpus", "64", "--op", "all_gather", "--algorithm", "tree"], "not simulated"),
        (["--gpus", "64", "--group", "dp"], "must equal"),
        (["--gpus", "64", "--tp", "8"], "--group"),
        (["--gpus", "2048", "--op", "all_to_all"], "--max-work"),
        (["--gpus", "64", "--fail", "core:1"], "of 0"),
        (
            ["--gpus", "32768", "--tiers", "3", "--op", "permutation", "--routing", "spray"],
            "link entries",
        ),
    ],
)
def test_cli_refuses_bad_input(capsys: pytest.CaptureFixture[str], argv: list[str],
                               match: str) -> None:  # fmt: skip
    assert match in run_error(capsys, "simulate", "collective", *argv, "--json")


def _cold_batch(indptr, links, weights, sizes, capacity):
    """Reference: re-solve every active flow from scratch at each event."""
    n = len(sizes)
    left, finish, t = np.asarray(sizes, float).copy(), np.zeros(n), 0.0
    active = left > 0
    while active.any():
        idx = np.flatnonzero(active)
        rows = [np.arange(indptr[f], indptr[f + 1]) for f in idx]
        ptr = np.concatenate([[0], np.cumsum([len(r) for r in rows])])
        ent = np.concatenate(rows)
        rate = max_min_rates(ptr, links[ent], weights[ent], capacity)
        eta = left[idx] / rate
        dt = eta.min()
        left[idx] -= rate * dt
        t += dt
        done = idx[left[idx] <= 1e-9 * sizes[idx]]
        finish[done], active[done] = t, False
    return finish


@pytest.mark.parametrize("seed", range(25))
def test_warm_started_events_equal_a_cold_re_solve(seed: int) -> None:
    """run_batch keeps the rates of flows below the least rate that just left (progressive
    filling below that level cannot change); a cold re-solve at every event must give the
    same finish times, on random weighted flows over random capacities."""
    rng = np.random.default_rng(seed)
    n_links, n = 12, 40
    capacity = rng.uniform(1.0, 10.0, n_links)
    rows = [rng.choice(n_links, size=int(rng.integers(1, 5)), replace=False) for _ in range(n)]
    indptr = np.concatenate([[0], np.cumsum([len(r) for r in rows])]).astype(np.int64)
    links = np.concatenate(rows).astype(np.int64)
    weights = rng.choice([1.0, 0.5, 0.25], size=len(links))
    sizes = rng.uniform(1.0, 20.0, n)
    finish, _, _ = run_batch(indptr, links, weights, sizes, capacity)
    np.testing.assert_allclose(finish, _cold_batch(indptr, links, weights, sizes, capacity),
                               rtol=1e-7)  # fmt: skip


def test_hierarchical_all_reduce_matches_its_closed_form() -> None:
    """64 GPUs = k = 8 servers of m = 8 (NVLink 450 GB/s per direction, NIC 50 GB/s), one
    rail leaf per NIC index: ring reduce-scatter inside (m-1 steps of S/m on NVLink, no
    modeled latency), a ring all-reduce of each S/m shard across the 8 servers among the
    GPUs of one index (2(k-1) steps of S/(mk) on the NIC, each hop nic-leaf-nic: 2 x 150 ns
    of cable + 130 ns of QM9700), a ring all-gather inside:
    t = 2(m-1) S/(m 450e9) + 2(k-1) (S/(mk 50e9) + 430 ns)."""
    net = network({"gpus": 64})
    run = simulate(net, "all_reduce", np.arange(64), GIB, algorithm="hierarchical",
                   mode="ecmp", seed=0)  # fmt: skip
    closed = 2 * 7 * GIB / (8 * 450e9) + 14 * (GIB / (64 * 50e9) + 430e-9)
    assert run.time == pytest.approx(closed, rel=1e-3)


def test_tree_all_reduce_reaches_its_bound_under_spray_and_loses_under_ecmp() -> None:
    """NCCL's double binary tree over 128 servers with 8 channels: on a non-blocking fabric
    with ideal spraying the pipelined tree runs at the alpha-beta time of its busiest link
    (efficiency 1); per-flow ECMP collides tree edges that cross spines, so it is slower."""
    net = network({"gpus": 1024})
    ranks = np.arange(1024)
    spray = simulate(net, "all_reduce", ranks, GIB, algorithm="tree", mode="spray", seed=0,
                     channels=8)  # fmt: skip
    ecmp = simulate(net, "all_reduce", ranks, GIB, algorithm="tree", mode="ecmp", seed=0,
                    channels=8)  # fmt: skip
    assert spray.time == pytest.approx(spray.analytic, rel=0.01)
    assert ecmp.time > 1.5 * spray.time
