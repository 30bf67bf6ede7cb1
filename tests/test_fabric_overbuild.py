"""No overbuilding: a partial pod or a forced extra tier buys only what its endpoints use.

Truth (Al-Fares et al., SIGCOMM 2008, generalized): a non-blocking 3-tier folded Clos of
radix k spends per endpoint 1/(k/2) leaf, 1/(k/2) spine and 1/k core switches, so N
endpoints need about N (2/k + 2/k + 1/k) = 5N/k switches (k-ary fat tree: N = k^3/4,
5k^2/4 switches); with tier radices k1, k2, k3 it holds k1 k2 / 2 endpoints in 2 tiers
and k1 k2 k3 / 4 in 3.

Hand counts (radix 64, 400G, top of rack, non-blocking: 32 down + 32 up per leaf):
- 2,056 endpoints: ceil(2056 / 32) = 65 leaves > 64 spine ports, so 3 tiers; pods of 32
  leaves: 2 full pods (32 spines each) + a 1-leaf pod whose 32 uplinks fit one spine
  (32 down + 32 up) = 65 spines; 65 x 32 spine uplinks / 64 = 32.5, so 33 cores.
  163 switches, 5 x 2056 / 64 = 160.6 by the closed form (before: 225, 3 full pods).
- 1,024 GPUs forced to 3 tiers: 32 leaves, one full pod of 32 spines, 32 x 32 / 64 = 16
  cores: 80 = 5 x 1024 / 64 (before: 96, a core group per spine position).
- 256 endpoints forced to 3 tiers: 8 leaves; a pod of 8 leaves under 8 spines (each 4
  uplink positions x 8 leaves = 32 down + 32 up); 256 / 64 = 4 cores: 20 = 5 x 256 / 64.
"""

from __future__ import annotations

import numpy as np
import pytest

from aifabric.fabric.builders.clos import build_clos
from aifabric.fabric.capacity import max_endpoints, tier_oversubscription, worst_oversubscription
from aifabric.fabric.plan import plan_fabric
from aifabric.fabric.spec import FabricSpec

from .test_fabric_builders import check_invariants, spec_tor

B400 = 400e9 / 8


def test_partial_pod_does_not_buy_a_full_pod():
    """plan --gpus 2056 --design clos: 65 + 65 + 33 = 163 switches (derivation above)."""
    result, topo, _ = plan_fabric({"gpus": 2056, "design": "clos"})
    assert result["switches"] == {"leaf": 65, "spine": 65, "core": 33, "total": 163}
    assert result["switches"]["total"] <= 1.02 * 5 * 2056 / 64
    # the 1-leaf pod: one spine with the leaf's 32 uplinks and 32 to the cores
    e = topo.num_endpoints
    last_pod = np.flatnonzero((topo.switch_tier == 2) & (topo.switch_group == 2))
    assert last_pod.size == 1
    used = topo.ports_used()[last_pod[0]]
    down = int((topo.link_dst == e + last_pod[0]).sum())
    assert (down, used) == (32, 64)
    assert result["bisection_bandwidth_bytes_per_s"] == pytest.approx(2056 * B400 / 2)


@pytest.mark.parametrize(("gpus", "design", "total"), [(1024, "rail_optimized", 80),
                                                        (256, "clos", 20)])  # fmt: skip
def test_forced_third_tier_matches_the_closed_form(gpus, design, total):
    """A forced 3rd tier buys 5N/k switches, not full pods and a core group per spine."""
    result, topo, _ = plan_fabric({"gpus": gpus, "design": design, "tiers": 3})
    assert result["tiers"] == 3
    assert result["switches"]["total"] == total == 5 * gpus // 64
    assert tier_oversubscription(topo) == {"leaf": pytest.approx(1.0), "spine": pytest.approx(1.0)}


@pytest.mark.parametrize("leaves", [33, 40, 47, 65, 96, 100])
def test_partial_pods_keep_the_invariants(leaves):
    """Radix 16 (8 leaves a pod): any leaf count past one pod builds a valid, connected,
    non-blocking fabric whose spines are ceil-proportional to their leaves."""
    n = leaves * 8
    spec = spec_tor(n, 16)
    topo = build_clos(spec)
    check_invariants(topo, spec)
    full, rest = divmod(leaves, 8)
    # each full pod 8 spines; the partial pod the fewest dividing 8 with rest x 8 / s <= 8
    partial = next(s for s in (1, 2, 4, 8) if rest * (8 // s) <= 8) if rest else 0
    assert topo.switches_by_tier()["spine"] == 8 * full + partial
    assert topo.switches_by_tier()["core"] == -(-n // 16)  # every spine uplink, 16 per core


def test_fat_tree_cores_reach_every_pod_once():
    """The round-robin core layer keeps the k-ary fat tree exact: k = 8, 128 endpoints,
    16 cores each linked once to each of the 8 pods."""
    topo = build_clos(spec_tor(8**3 // 4, 8))
    e = topo.num_endpoints
    t3 = topo.link_tier == 3
    pods = topo.switch_group[topo.link_src[t3] - e]
    cores = topo.link_dst[t3] - e
    assert len(np.unique(cores)) == 16
    for c in np.unique(cores):
        assert np.array_equal(np.sort(pods[cores == c]), np.arange(8))


@pytest.mark.parametrize(("k1", "k2", "k3"), [(8, 16, 16), (16, 8, 8), (8, 8, 16)])
def test_max_endpoints_uses_every_tier(k1, k2, k3):
    """k1 k2 / 2 endpoints fit 2 tiers of radix-k1 leaves under radix-k2 spines; one more
    leaf's worth needs a third tier. max_endpoints(k1, 3, ...) = k1 k2 k3 / 4."""
    n2 = max_endpoints(k1, 2, spine_radix=k2)
    assert n2 == k1 * k2 // 2
    fits = build_clos(spec_tor(n2, k1, spine_radix=k2, core_radix=k3))
    assert fits.meta["tiers"] == 2
    more = build_clos(spec_tor(n2 + k1 // 2, k1, spine_radix=k2, core_radix=k3))
    assert more.meta["tiers"] == 3
    assert max_endpoints(k1, 3, spine_radix=k2, core_radix=k3) == k1 * k2 * k3 // 4


def test_plan_reports_the_per_tier_limit():
    """Meta's preset: 64-port ToRs (32 used), 256-port spines and aggregation:
    64 x 256 x 256 / 4 = 1,048,576, not the leaf's 64^3 / 4 = 65,536."""
    result, _, _ = plan_fabric({"preset": "meta-llama3-24k"})
    assert result["max_endpoints_nonblocking"] == 64 * 256 * 256 // 4


def test_one_leaf_partial_pod_spine_ratio():
    """17 leaves of radix 16 (pods of 8): the 1-leaf pod's spine keeps a full pod spine's
    down:up ratio, 1:1 in a non-blocking fabric, and so does every spine."""
    spec = FabricSpec(num_gpus=8 * 17, gpus_per_node=1, nics_per_node=1, nic_speed=B400,
                      switch_radix=16, grouping="tor")  # fmt: skip
    topo = build_clos(spec)
    assert topo.meta["tiers"] == 3
    assert worst_oversubscription(topo)["spine"] == pytest.approx(1.0)
    assert tier_oversubscription(topo)["spine"] == pytest.approx(1.0)
