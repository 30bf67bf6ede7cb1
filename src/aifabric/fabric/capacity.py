"""Capacity of a fabric: bisection bandwidth, oversubscription per tier, closed-form limits.

Bisection of a folded Clos: traffic between two halves of the endpoints climbs to the tier
that joins them, so the cut is the smaller of half the endpoint capacity and half of each
switch-to-switch layer's capacity (one direction). For a non-blocking fabric of N
endpoints at rate b this is N b / 2.

Closed forms for radix-k non-blocking fabrics (Al-Fares et al., SIGCOMM 2008): 2 tiers
hold k^2/2 endpoints (3k/2 switches), 3 tiers k^3/4 endpoints (5k^2/4 switches).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from aifabric.errors import ConfigError
from aifabric.fabric.topology import Topology


def bisection_bandwidth(topo: Topology) -> float:
    """Bytes/s across the worst balanced cut (one direction): half the smallest capacity
    of the link layers up to the top built tier, min over t <= T of C_t / 2.

    A layer whose upper tier has switches counts even with no links (spines above leaves
    that have no up ports): it cuts to 0, never to full bisection. Layers above the top
    built tier do not exist and are left out.
    """
    caps = list(topo.link_capacity_by_tier().values())[: topo.num_tiers]
    return min(caps) / 2.0 if caps else 0.0


def tier_oversubscription(topo: Topology) -> dict[str, float]:
    """Down/up capacity per switch tier (1.0 = non-blocking), from the links themselves."""
    e = topo.num_endpoints
    out: dict[str, float] = {}
    for tier, name in ((1, "leaf"), (2, "spine")):
        switches = np.flatnonzero(topo.switch_tier == tier) + e
        if switches.size == 0:
            continue
        down = topo.link_capacity[np.isin(topo.link_dst, switches)].sum()
        up = topo.link_capacity[np.isin(topo.link_src, switches)].sum()
        if up > 0:
            out[name] = float(down / up)
    return out


def worst_oversubscription(topo: Topology) -> dict[str, float]:
    """Largest down/up capacity of any one switch per tier (a partly filled leaf counts
    less than a full one, so this is the ratio the full switches were built with)."""
    e, s = topo.num_endpoints, topo.num_switches
    down = np.bincount(topo.link_dst - e, weights=topo.link_capacity, minlength=s)
    is_up = topo.link_src >= e
    up = np.bincount(topo.link_src[is_up] - e, weights=topo.link_capacity[is_up], minlength=s)
    out: dict[str, float] = {}
    for tier, name in ((1, "leaf"), (2, "spine")):
        sel = (topo.switch_tier == tier) & (up > 0)
        if sel.any():
            out[name] = float((down[sel] / up[sel]).max())
    return out


def max_endpoints(radix: int, tiers: int, *, spine_radix: int | None = None,
                  core_radix: int | None = None) -> int:  # fmt: skip
    """Endpoints of a non-blocking Clos with 1, 2 or 3 tiers of radix k1 (leaf), k2
    (spine, default k1) and k3 (core, default k2): k1, k1 k2 / 2, k1 k2 k3 / 4.

    A leaf gives k1/2 ports to endpoints; k2 leaves fill a spine's ports (2 tiers); with 3
    tiers a pod is k2/2 leaves under k1/2 spines, and a core's k3 ports reach k3 pods.
    With one radix these are k, k^2/2, k^3/4 (Al-Fares et al. 2008).
    """
    if tiers not in (1, 2, 3):
        raise ConfigError(f"tiers(={tiers}) must be 1, 2 or 3")
    k2 = spine_radix or radix
    k3 = core_radix or k2
    return {1: radix, 2: radix * k2 // 2, 3: radix * k2 * k3 // 4}[tiers]


def max_switches(radix: int, tiers: int) -> int:
    """Switches of that largest non-blocking fabric: 1, 3k/2, 5k^2/4."""
    return {1: 1, 2: 3 * radix // 2, 3: 5 * radix**2 // 4}[tiers]


def max_gpus(radix: int, tiers: int, *, gpus_per_nic: int = 1) -> int:
    """GPUs a non-blocking fabric holds when gpus_per_nic GPUs share each NIC (any planes:
    every plane holds one link of each NIC)."""
    return max_endpoints(radix, tiers) * gpus_per_nic


def tier_radix(topo: Topology) -> dict[int, int]:
    """Radix of the switches of each built tier (1 leaf, 2 spine, 3 core)."""
    return {int(t): int(topo.switch_ports[topo.switch_tier == t].max())
            for t in np.unique(topo.switch_tier)}  # fmt: skip


def capacity_summary(topo: Topology) -> dict[str, Any]:
    k = int(topo.meta.get("switch_radix", 0))
    tiers = int(topo.meta.get("tiers", topo.num_tiers))
    radix = tier_radix(topo)
    limit = max_endpoints(k, tiers, spine_radix=radix.get(2), core_radix=radix.get(3)) if k else 0
    bisection = bisection_bandwidth(topo)
    full = topo.link_capacity_by_tier()["endpoint_leaf"] / 2.0
    return {
        "bisection_bandwidth_bytes_per_s": bisection,
        "bisection_ratio": bisection / full if full else 0.0,
        "oversubscription": tier_oversubscription(topo),
        # endpoints as the topology counts them: one per NIC port per plane
        "max_endpoints_nonblocking": limit * topo.planes if k else None,
    }
