"""Fabric builders: published reference designs, closed forms, and structural invariants.

Truth:
- NVIDIA DGX SuperPOD H100 Reference Architecture (RA-11333-001), Tables 3 and 4: QM9700
  compute-fabric (leaf, spine, core) counts per number of scalable units (32 DGX H100 of
  8 x 400G NICs each per SU) and the cable counts of the full fat tree;
- Alibaba HPN (Qian et al., SIGCOMM 2024): 15,360 GPUs per pod, 15 segments of 1,024 GPUs,
  16 ToRs per segment (dual-plane, 8 rails x 2 planes), 60 aggregation switches per plane,
  ToR 128 x 200G down : 60 x 400G up = 1.0667;
- Meta Llama 3 (arXiv:2407.21783, sec. 3.3.1): 24,576 GPUs, 3,072 servers, 16 GPUs (two
  servers) per ToR, 8 pods of 3,072 GPUs at full bisection, pod-to-aggregation 1:7;
- Al-Fares et al., SIGCOMM 2008: a non-blocking radix-k folded Clos holds k^2/2 endpoints
  with 3k/2 switches in 2 tiers and k^3/4 endpoints with 5k^2/4 switches in 3 tiers (k
  pods of k/2 leaves and k/2 spines, (k/2)^2 cores each linked once to every pod);
- a folded Clos is a layered graph: every link joins tier t-1 to tier t, each endpoint
  hangs off one leaf, no switch exceeds its radix, planes share no switch, and a cut
  through the middle of a non-blocking fabric of N endpoints at rate b carries N b / 2.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import pytest
from hypothesis import given, reject, settings
from hypothesis import strategies as st

from aifabric.errors import AifabricError, CapacityError, ConfigError
from aifabric.fabric.builders.clos import build_clos
from aifabric.fabric.builders.frontend import build_frontend
from aifabric.fabric.builders.presets import PRESETS, get_preset
from aifabric.fabric.builders.rail_optimized import build_rail_optimized
from aifabric.fabric.builders.spine_leaf import build_spine_leaf
from aifabric.fabric.capacity import (
    bisection_bandwidth,
    max_endpoints,
    max_gpus,
    max_switches,
    tier_oversubscription,
)
from aifabric.fabric.spec import FabricSpec
from aifabric.fabric.topology import Topology

GBPS = 1e9 / 8  # bytes/s per Gb/s
B400 = 400 * GBPS


# --------------------------------------------------------------------------- helpers


def node_tier(topo: Topology) -> np.ndarray:
    """Tier of every node id: 0 for endpoints, 1..3 for switches."""
    return np.concatenate([np.zeros(topo.num_endpoints, np.int64), topo.switch_tier])


def node_plane(topo: Topology) -> np.ndarray:
    return np.concatenate([topo.endpoint_plane, topo.switch_plane]).astype(np.int64)


def components(topo: Topology) -> np.ndarray:
    """Connected-component label of every node (min-label propagation over the links)."""
    n = topo.num_endpoints + topo.num_switches
    label = np.arange(n)
    src, dst = topo.link_src.astype(np.int64), topo.link_dst.astype(np.int64)
    while True:
        before = label.copy()
        m = np.minimum(label[src], label[dst])
        np.minimum.at(label, src, m)
        np.minimum.at(label, dst, m)
        label = label[label]  # pointer jumping
        if np.array_equal(label, before):
            return label


def endpoint_leaf(topo: Topology) -> np.ndarray:
    """Switch index (0-based) of the leaf of every endpoint."""
    t1 = topo.link_tier == 1
    out = np.full(topo.num_endpoints, -1, np.int64)
    out[topo.link_src[t1]] = topo.link_dst[t1] - topo.num_endpoints
    return out


def spec_tor(n: int, k: int, **kw: object) -> FabricSpec:
    """n single-NIC endpoints on radix-k switches, top-of-rack grouping."""
    return FabricSpec(num_gpus=n, gpus_per_node=1, nics_per_node=1, nic_speed=B400,
                      switch_radix=k, grouping="tor", **kw)  # type: ignore[arg-type]  # fmt: skip


# --------------------------------------------------------------------------- presets

SUPERPOD = {  # RA-11333-001 Tables 3-4: SUs -> (leaf, spine, core) QM9700
    1: (8, 4, 0), 2: (16, 8, 0), 3: (24, 16, 0), 4: (32, 16, 0), 8: (64, 32, 0),
    16: (128, 128, 64), 32: (256, 256, 128), 64: (512, 512, 256),
}  # fmt: skip


@pytest.mark.parametrize("su", sorted(SUPERPOD))
def test_superpod_switch_counts(su):
    """RA-11333-001 Tables 3-4: QM9700 leaf/spine/core counts per number of SUs."""
    preset = get_preset("dgx-superpod-h100", su)
    topo = build_clos(preset.spec)
    leaf, spine, core = SUPERPOD[su]
    assert topo.switches_by_tier() == {"leaf": leaf, "spine": spine, "core": core}
    assert topo.num_switches == leaf + spine + core
    assert topo.num_gpus == 8 * (32 * su - 1)  # 32 DGX H100 per SU, one removed for UFM
    assert topo.num_tiers == (3 if core else 2)
    assert bool((topo.ports_used() <= 64).all())  # QM9700: 64 NDR ports


@pytest.mark.parametrize("su", sorted(SUPERPOD))
def test_superpod_cable_counts(su):
    """RA-11333-001: node-leaf cables = GPUs (one 400G NIC per GPU) of the 32 x SU - 1 DGX
    (one removed for UFM, Table 4 footnote 1) plus the 4 UFM ports ("Compute and UFM");
    every leaf spends 32 of its 64 ports on spines (the full SU is built), so leaf-spine =
    32 x leaves; the core layer of the 16-SU and 32-SU designs has 4,096 and 8,192
    spine-core cables (a full fat tree)."""
    topo = build_clos(get_preset("dgx-superpod-h100", su).spec)
    links = topo.links_by_tier()
    leaf = SUPERPOD[su][0]
    assert links["endpoint_leaf"] == 8 * (32 * su - 1) + 4
    assert links["leaf_spine"] == 32 * leaf
    expected_core = {16: 4096, 32: 8192}.get(su, 256 * su if SUPERPOD[su][2] else 0)
    assert links["spine_core"] == expected_core
    assert bisection_bandwidth(topo) == pytest.approx((8 * (32 * su - 1) + 4) * B400 / 2)


def test_superpod_plan_fabric_matches_tables():
    """The same counts through plan_fabric (the CLI's path), 4 SU: 32 leaf + 16 spine."""
    from aifabric.fabric.plan import plan_fabric

    result, _, _ = plan_fabric({"preset": "dgx-superpod-h100", "scalable_units": 4})
    assert result["switches"] == {"leaf": 32, "spine": 16, "core": 0, "total": 48}
    assert result["published"]["leaf"] == 32 and result["published"]["spine"] == 16
    assert result["gpus"] == 1016 and result["nodes"] == 127  # Table 4: one DGX for UFM


def test_superpod_rail_optimized_wiring():
    """Rail optimization (RA-11333-001 Fig. 'compute fabric'): leaf r of SU s takes NIC r
    of each of the 32 DGX of SU s (31 in the last SU, one DGX removed for UFM), so every
    leaf serves exactly one (SU, rail)."""
    topo = build_clos(get_preset("dgx-superpod-h100", 4).spec)
    server = topo.endpoint_node >= 0
    leaf = endpoint_leaf(topo)[server]
    su = topo.endpoint_node[server] // 32
    key = su * 8 + topo.endpoint_rail[server]
    assert len(np.unique(leaf)) == 32
    for sw in np.unique(leaf):
        on = leaf == sw
        assert on.sum() == (31 if sw >= 24 else 32)
        assert len(np.unique(key[on])) == 1


def test_alibaba_hpn_counts():
    """Alibaba HPN (SIGCOMM'24): one pod of 15,360 GPUs = 15 segments x 1,024 GPUs, 16
    ToRs per segment (240), 60 aggregation switches per plane x 2 planes (120), ToR
    128 x 200G down : 60 x 400G up = 25.6 / 24 = 1.0667."""
    topo = build_clos(get_preset("alibaba-hpn").spec)
    assert topo.num_gpus == 15360
    assert topo.planes == 2
    assert topo.switches_by_tier() == {"leaf": 240, "spine": 120, "core": 0}
    for plane in (0, 1):
        assert int(((topo.switch_tier == 2) & (topo.switch_plane == plane)).sum()) == 60
        assert int(((topo.switch_tier == 1) & (topo.switch_plane == plane)).sum()) == 120
    # 16 ToRs per 1,024-GPU (128-host) segment, counting both planes.
    leaf = endpoint_leaf(topo)
    segment = topo.endpoint_node // 128
    for s in range(15):
        assert len(np.unique(leaf[segment == s])) == 16
    # every ToR: 128 x 200G hosts down, 60 x 400G to the 60 aggregation switches of its plane
    e = topo.num_endpoints
    t1, t2 = topo.link_tier == 1, topo.link_tier == 2
    tors = np.flatnonzero(topo.switch_tier == 1)
    down = np.bincount(topo.link_dst[t1] - e, minlength=topo.num_switches)
    assert np.array_equal(down[tors], np.full(240, 128))
    assert float(topo.link_capacity[t1][0]) == pytest.approx(200 * GBPS)
    assert float(topo.link_capacity[t2][0]) == pytest.approx(400 * GBPS)
    up = np.bincount(topo.link_src[t2] - e, minlength=topo.num_switches)
    assert np.array_equal(up[tors], np.full(240, 60))
    for tor in tors:
        aggs = np.unique(topo.link_dst[t2][topo.link_src[t2] - e == tor] - e)
        assert len(aggs) == 60
    expected = (128 * 200) / (60 * 400)
    assert expected == pytest.approx(1.0667, abs=1e-4)
    assert tier_oversubscription(topo)["leaf"] == pytest.approx(expected)


def test_meta_llama3_24k_counts():
    """Llama 3 (arXiv:2407.21783 sec. 3.3.1): 24,576 GPUs on 3,072 servers, 16 GPUs per
    rack/ToR (1,536 ToRs), 8 pods of 3,072 GPUs (192 racks) at full bisection, pods joined
    by the aggregation layer at 1:7. 192 down-links per pod spine over ceil(192/7) = 28
    up-links gives 192/28 = 6.857, the nearest a whole port count gets to 7."""
    topo = build_clos(get_preset("meta-llama3-24k").spec)
    assert topo.num_gpus == 24576
    assert topo.num_nodes == 3072
    assert topo.switches_by_tier()["leaf"] == 1536
    assert topo.num_tiers == 3
    over = tier_oversubscription(topo)
    assert over["leaf"] == pytest.approx(1.0)
    assert over["spine"] == pytest.approx(192 / math.ceil(192 / 7))
    assert over["spine"] == pytest.approx(7.0, rel=0.03)
    # 8 pods of 3,072 GPUs: pod of a GPU = group of the spines its ToR reaches
    e = topo.num_endpoints
    t2 = topo.link_tier == 2
    leaf_pod = np.full(topo.num_switches, -1)
    leaf_pod[topo.link_src[t2] - e] = topo.switch_group[topo.link_dst[t2] - e]
    gpu_pod = leaf_pod[endpoint_leaf(topo)]
    assert np.array_equal(np.bincount(gpu_pod), np.full(8, 3072))
    # 16 GPUs (2 servers x 8 NICs) per ToR
    per_leaf = np.bincount(endpoint_leaf(topo), minlength=topo.num_switches)
    assert np.array_equal(per_leaf[topo.switch_tier == 1], np.full(1536, 16))


def test_alibaba_hpn_two_pods_core():
    """HPN (SIGCOMM'24): pods join through a core tier at 15:1 from the aggregation
    switches (120 ToR down-links : 8 up-links on a 128-port aggregation switch); leaf and
    aggregation counts scale with pods (480 ToRs, 240 aggregation switches for 2 pods)."""
    topo = build_clos(get_preset("alibaba-hpn", 2).spec)
    assert topo.num_gpus == 2 * 15360
    assert topo.switches_by_tier()["leaf"] == 480
    assert topo.switches_by_tier()["spine"] == 240
    assert topo.switches_by_tier()["core"] > 0
    over = tier_oversubscription(topo)
    assert over["leaf"] == pytest.approx(128 * 200 / (60 * 400))
    assert over["spine"] == pytest.approx(15.0)


def test_unknown_preset_is_config_error():
    with pytest.raises(ConfigError, match="unknown preset 'nope'"):
        get_preset("nope")
    assert {"dgx-superpod-h100", "alibaba-hpn", "meta-llama3-24k"} <= set(PRESETS)


# --------------------------------------------------------------------------- closed forms


@pytest.mark.parametrize("k", [4, 8, 16, 32])
def test_two_tier_closed_form(k):
    """Al-Fares 2008: k^2/2 endpoints fit 2 tiers of radix k with k leaves + k/2 spines."""
    n = k * k // 2
    topo = build_clos(spec_tor(n, k))
    assert topo.meta["tiers"] == 2
    assert topo.switches_by_tier() == {"leaf": k, "spine": k // 2, "core": 0}
    assert topo.num_switches == 3 * k // 2 == max_switches(k, 2)
    assert n == max_endpoints(k, 2)
    assert topo.links_by_tier() == {"endpoint_leaf": n, "leaf_spine": n, "spine_core": 0}
    assert bool((topo.ports_used() == k).all())  # every port of every switch is used
    assert bisection_bandwidth(topo) == pytest.approx(n * B400 / 2)


@pytest.mark.parametrize("k", [4, 8, 16, 32])
def test_three_tier_closed_form(k):
    """Al-Fares 2008 k-ary fat tree: k^3/4 endpoints, k pods of k/2 leaves + k/2 spines,
    (k/2)^2 cores in k/2 groups; 5k^2/4 switches, k^3/4 links per layer, every port used,
    and every core linked exactly once to each of the k pods."""
    n = k**3 // 4
    topo = build_clos(spec_tor(n, k))
    assert topo.meta["tiers"] == 3
    assert topo.switches_by_tier() == {"leaf": k * k // 2, "spine": k * k // 2,
                                       "core": k * k // 4}  # fmt: skip
    assert topo.num_switches == 5 * k * k // 4 == max_switches(k, 3)
    assert n == max_endpoints(k, 3) == max_gpus(k, 3)
    assert topo.links_by_tier() == {"endpoint_leaf": n, "leaf_spine": n, "spine_core": n}
    assert bool((topo.ports_used() == k).all())
    e = topo.num_endpoints
    t3 = topo.link_tier == 3
    pod_of_spine = topo.switch_group[topo.link_src[t3] - e]
    core = topo.link_dst[t3] - e
    assert len(np.unique(topo.switch_group[topo.switch_tier == 2])) == k
    for c in np.unique(core):
        pods = np.sort(pod_of_spine[core == c])
        assert np.array_equal(pods, np.arange(k))
    assert bisection_bandwidth(topo) == pytest.approx(n * B400 / 2)


@pytest.mark.parametrize("k", [4, 8, 16, 32])
def test_closed_form_limits_are_tight(k):
    """One endpoint past k^2/2 needs a third tier; one past k^3/4 does not fit radix k."""
    assert build_clos(spec_tor(k * k // 2 + 1, k)).meta["tiers"] == 3
    with pytest.raises(CapacityError, match=f"radix-{k}"):
        build_clos(spec_tor(k**3 // 4 + 1, k))
    with pytest.raises(CapacityError, match="--tiers 3"):
        build_clos(spec_tor(k * k // 2 + 1, k, tiers=2))


def test_max_gpus_counts_gpus_per_nic():
    """Two GPUs sharing each NIC double the GPUs a fabric holds, not the endpoints."""
    assert max_gpus(64, 2, gpus_per_nic=2) == 2 * 64 * 64 // 2
    with pytest.raises(ConfigError, match="tiers"):
        max_endpoints(64, 4)


@pytest.mark.parametrize("k", [8, 64])
def test_one_tier_holds_k_endpoints(k):
    """capacity.max_endpoints(k, 1) = k and max_switches(k, 1) = 1: one radix-k switch
    connects k endpoints non-blocking (nothing above it needs uplinks)."""
    topo = build_clos(spec_tor(max_endpoints(k, 1), k, tiers=1))
    assert topo.num_switches == max_switches(k, 1) == 1


def _min_down_ports(k: int, ratio: float) -> tuple[int, int]:
    """Most down ports d of a radix-k leaf with d / (k - d) <= ratio (brute force)."""
    d = max(d for d in range(1, k) if d <= ratio * (k - d))
    return d, k - d


@pytest.mark.parametrize("k", [8, 16, 32, 64])
@pytest.mark.parametrize("ratio", [2, 3, 4])
@pytest.mark.parametrize("tiers", [2, 3])
def test_oversubscribed_bisection(k, ratio, tiers):
    """With leaves of d down and u up ports (the most down ports with d/u <= ratio), L full
    leaves carry E = L d endpoints and the leaf-spine cut is L u links: bisection =
    E b u / (2 d). For ratio 3 and k a multiple of 4, d/u = 3 exactly: E b / 6."""
    d, u = _min_down_ports(k, ratio)
    leaves = min(k, 8) if tiers == 2 else k + 2  # > k leaves need a third tier
    n = leaves * d
    topo = build_clos(spec_tor(n, k, oversubscription=float(ratio)))
    assert topo.meta["tiers"] == tiers
    up_links = int((topo.link_tier == 2).sum())
    assert up_links == leaves * u
    expected = n * B400 * u / (2 * d)
    assert bisection_bandwidth(topo) == pytest.approx(expected)
    assert bisection_bandwidth(topo) >= n * B400 / (2 * ratio) * (1 - 1e-12)
    assert tier_oversubscription(topo)["leaf"] == pytest.approx(d / u)
    if ratio == 3:
        assert bisection_bandwidth(topo) == pytest.approx(n * B400 / 2 / 3)


# --------------------------------------------------------------------------- invariants

BUILDERS: dict[str, Callable[[FabricSpec], Topology]] = {
    "clos": build_clos, "rail_optimized": build_rail_optimized, "spine_leaf": build_spine_leaf,
}  # fmt: skip


@st.composite
def fabric_specs(draw: st.DrawFn) -> tuple[str, FabricSpec]:
    gpn = draw(st.sampled_from([1, 2, 4, 8]))
    nics = draw(st.sampled_from([d for d in (1, 2, 4, 8) if gpn % d == 0]))
    nodes = draw(st.integers(1, 3072 // gpn))
    builder = draw(st.sampled_from(sorted(BUILDERS)))
    spec = FabricSpec(
        num_gpus=nodes * gpn, gpus_per_node=gpn, nics_per_node=nics,
        planes=draw(st.sampled_from([1, 2])),
        nic_speed=draw(st.sampled_from([100, 200, 400, 800])) * GBPS,
        switch_radix=draw(st.sampled_from([8, 16, 32, 64])),
        oversubscription=float(draw(st.sampled_from([1, 2, 3, 4]))),
        spine_oversubscription=float(draw(st.sampled_from([1, 1, 2]))),
        grouping=draw(st.sampled_from(["rail", "tor"])),
    )  # fmt: skip
    return builder, spec


def fits(spec: FabricSpec, grouping: str) -> bool:
    """Whether a folded Clos of radix k holds the spec, counted independently: leaves of d
    down ports (most d with d/(k-d) <= oversubscription), 2 tiers while the leaves of a
    plane fit one spine each (<= k), else pods of ds leaves (rail: whole SUs of nics_per_node
    rail leaves) under spines of ds down ports, at most k pods under radix-k cores."""
    k, nodes, nics = spec.switch_radix, spec.num_nodes, spec.nics_per_node
    d, _ = _min_down_ports(k, spec.oversubscription)
    ds, _ = _min_down_ports(k, spec.spine_oversubscription)
    if grouping == "rail":
        units = math.ceil(nodes / d)
        if units * nics <= k:
            return True
        per_pod = ds // nics
        return per_pod > 0 and math.ceil(units / per_pod) <= k
    leaves = math.ceil(nodes * nics / d)
    return leaves <= k or math.ceil(leaves / ds) <= k


def _build_or_reject(builder: str, spec: FabricSpec) -> Topology:
    """Build; a CapacityError must come exactly when the design does not fit (then the
    example is dropped)."""
    grouping = {"rail_optimized": "rail", "spine_leaf": "tor"}.get(builder, spec.grouping)
    if fits(spec, grouping):
        return BUILDERS[builder](spec)
    with pytest.raises(CapacityError, match=r"radix|rail leaves"):
        BUILDERS[builder](spec)
    reject()
    raise AssertionError("unreachable")


def check_invariants(topo: Topology, spec: FabricSpec) -> None:
    e, s = topo.num_endpoints, topo.num_switches
    nodes, nics, planes = spec.num_nodes, spec.nics_per_node, spec.planes
    mgmt = spec.management_ports  # UFM ports: endpoints of no server, after the servers'
    assert e == (nodes * nics + mgmt) * planes
    # no switch over its radix
    assert bool((topo.ports_used() <= topo.switch_ports).all())
    # one tier-1 link per endpoint, and endpoints appear only there
    t1 = topo.link_tier == 1
    assert np.array_equal(np.bincount(topo.link_src[t1], minlength=e), np.ones(e, np.int64))
    assert bool((topo.link_src[~t1] >= e).all())
    assert bool((topo.link_dst >= e).all())
    # every link climbs exactly one tier: endpoint->leaf, leaf->spine, spine->core
    tier = node_tier(topo)
    assert np.array_equal(tier[topo.link_src], topo.link_tier.astype(np.int64) - 1)
    assert np.array_equal(tier[topo.link_dst], topo.link_tier.astype(np.int64))
    # planes are disjoint and each endpoint's link goes to a switch of its plane
    plane = node_plane(topo)
    assert np.array_equal(plane[topo.link_src], plane[topo.link_dst])
    assert np.array_equal(np.bincount(topo.endpoint_plane, minlength=planes),
                          np.full(planes, nodes * nics + mgmt))  # fmt: skip
    # everything within a plane is connected (every GPU reaches every other GPU)
    label = components(topo)
    for p in range(planes):
        assert len(np.unique(label[plane == p])) == 1
    if planes > 1:
        assert len(np.unique(label)) == planes
    # 2 tiers: every leaf links directly to every spine of its plane
    if topo.num_tiers == 2:
        t2 = topo.link_tier == 2
        pairs = np.unique(np.stack([topo.link_src[t2], topo.link_dst[t2]]), axis=1)
        for p in range(planes):
            leaves = int(((topo.switch_tier == 1) & (topo.switch_plane == p)).sum())
            spines = int(((topo.switch_tier == 2) & (topo.switch_plane == p)).sum())
            in_plane = plane[pairs[0]] == p
            assert int(in_plane.sum()) == leaves * spines
    # no idle switch: every switch built carries at least one link
    assert bool((topo.ports_used() > 0).all()) or s == 0
    # NIC capacity: every NIC's full line rate reaches the leaves (split over planes)
    assert topo.link_capacity_by_tier()["endpoint_leaf"] == pytest.approx(
        (nodes * nics + mgmt) * spec.nic_speed
    )
    # a leaf never takes more endpoints than its down ports
    down, _ = spec.leaf_ports()
    assert int(np.bincount(endpoint_leaf(topo)).max()) <= down
    # rail grouping: a leaf holds one NIC index (rail) only; ToR: whole servers, in order
    leaf = endpoint_leaf(topo)
    if topo.meta["design"] == "rail" and not spec.single_switch():  # one switch: no rails
        for sw in np.unique(leaf):
            assert len(np.unique(topo.endpoint_rail[leaf == sw])) == 1
    else:
        first = leaf[topo.endpoint_plane == 0]
        assert bool((np.diff(first) >= 0).all())
    # non-blocking everywhere: bisection = half of the endpoint capacity
    if spec.oversubscription == 1 and spec.spine_oversubscription == 1:
        assert bisection_bandwidth(topo) == pytest.approx(
            (nodes * nics + mgmt) * spec.nic_speed / 2
        )


@settings(max_examples=80)
@given(fabric_specs())
def test_builder_invariants(case):
    """Structural invariants of a folded Clos hold for every buildable spec."""
    builder, spec = case
    topo = _build_or_reject(builder, spec)
    check_invariants(topo, spec)
    expected = {"rail_optimized": "rail", "spine_leaf": "tor"}.get(builder, spec.grouping)
    assert topo.meta["design"] == expected


def test_builder_invariants_large_presets():
    """The same invariants on the largest published designs (64-SU SuperPOD, Meta 24K)."""
    for name, size in (("dgx-superpod-h100", 64), ("meta-llama3-24k", None),
                       ("alibaba-hpn", None)):  # fmt: skip
        spec = get_preset(name, size).spec
        check_invariants(build_clos(spec), spec)


def test_frontend_builder():
    """Front-end network (one NIC per server, ToR, 4:3 at the leaves): radix 64 with
    down:up <= 4/3 gives 36 down + 28 up ports (36/28 = 1.286, 37/27 = 1.37 > 4/3)."""
    topo = build_frontend(num_gpus=1024)
    spec = FabricSpec(name="frontend", num_gpus=1024, nics_per_node=1, nic_speed=50e9,
                      oversubscription=4 / 3, grouping="tor")  # fmt: skip
    check_invariants(topo, spec)
    assert topo.num_endpoints == 128  # one NIC per 8-GPU server
    assert _min_down_ports(64, 4 / 3) == (36, 28)
    assert tier_oversubscription(topo)["leaf"] == pytest.approx(128 / (4 * 28))
    assert int(topo.link_reach[topo.link_tier == 1][0]) == 0  # copper in the rack


# --------------------------------------------------------------------------- errors


def _spec(**kw: object) -> FabricSpec:
    base: dict[str, object] = {"num_gpus": 1024, "nic_speed": B400}
    return FabricSpec(**{**base, **kw})  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("kw", "match"),
    [
        ({"num_gpus": 100000, "switch_radix": 16}, r"radix-16"),
        ({"num_gpus": 100000, "switch_radix": 16, "grouping": "tor"}, r"radix-16"),
        ({"num_gpus": 8192, "tiers": 2}, r"--tiers 3"),
        ({"num_gpus": 1024, "su_nodes": 40}, r"su_nodes\(=40\).*32 down ports"),
        ({"num_gpus": 1024, "switch_radix": 8, "grouping": "rail"}, r"rail leaves|radix-8"),
    ],
)
def test_radix_too_small_is_capacity_error(kw, match):
    with pytest.raises(CapacityError, match=match):
        build_clos(_spec(**kw))


@pytest.mark.parametrize(
    ("kw", "match"),
    [
        ({"oversubscription": 0.5}, r"oversubscription\(=0.5\).*>= 1"),
        ({"spine_oversubscription": 0.9}, r"spine_oversubscription\(=0.9\)"),
        ({"num_gpus": 1001}, r"gpus\(=1001\) must be a multiple of gpus_per_node\(=8\)"),
        ({"nics_per_node": 3}, r"nics_per_node\(=3\) must divide"),
        ({"switch_radix": 15}, r"switch_radix\(=15\) must be an even number >= 4"),
        ({"switch_radix": 2}, r"switch_radix\(=2\)"),
        ({"planes": 0}, r"planes\(=0\)"),
        ({"nic_speed": 0.0}, r"nic_speed"),
        ({"tiers": 4}, r"tiers\(=4\)"),
        ({"grouping": "mesh"}, r"grouping"),
        ({"leaf_down_ports": 40, "leaf_up_ports": 40}, r"exceed switch_radix\(=64\)"),
    ],
)
def test_invalid_spec_is_config_error(kw, match):
    with pytest.raises(ConfigError, match=match):
        _spec(**kw)


@pytest.mark.parametrize("field", ["oversubscription", "spine_oversubscription"])
@pytest.mark.parametrize("value", [math.nan, math.inf])
def test_non_finite_oversubscription_is_config_error(field, value):
    """A down:up ratio must be a finite number >= 1; 8,192 GPUs need 3 tiers, so both the
    leaf and the spine split are used."""
    with pytest.raises(ConfigError, match=field):
        build_clos(_spec(num_gpus=8192, **{field: value}))


@pytest.mark.parametrize("grouping", ["rail", "tor"])
def test_negative_su_nodes_is_config_error(grouping):
    with pytest.raises(ConfigError, match="su_nodes"):
        build_clos(_spec(su_nodes=-1, grouping=grouping))


@pytest.mark.parametrize("name", ["dgx-superpod-h100", "meta-llama3-24k", "alibaba-hpn"])
def test_preset_size_zero_is_config_error(name):
    with pytest.raises(ConfigError):
        get_preset(name, 0)


def test_errors_are_user_errors():
    """Both error kinds are AifabricErrors: the CLI prints them as one line, exit 2."""
    assert issubclass(CapacityError, AifabricError) and issubclass(ConfigError, AifabricError)
