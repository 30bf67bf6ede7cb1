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
    """Bytes/s across the worst balanced cut (one direction)."""
    caps = [c for c in topo.link_capacity_by_tier().values() if c > 0]
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


def max_endpoints(radix: int, tiers: int) -> int:
    """Endpoints of a non-blocking radix-k Clos with 1, 2 or 3 tiers: k, k^2/2, k^3/4."""
    if tiers not in (1, 2, 3):
        raise ConfigError(f"tiers(={tiers}) must be 1, 2 or 3")
    return {1: radix, 2: radix**2 // 2, 3: radix**3 // 4}[tiers]


def max_switches(radix: int, tiers: int) -> int:
    """Switches of that largest non-blocking fabric: 1, 3k/2, 5k^2/4."""
    return {1: 1, 2: 3 * radix // 2, 3: 5 * radix**2 // 4}[tiers]


def max_gpus(radix: int, tiers: int, *, gpus_per_nic: int = 1) -> int:
    """GPUs a non-blocking fabric holds when gpus_per_nic GPUs share each NIC (any planes:
    every plane holds one link of each NIC)."""
    return max_endpoints(radix, tiers) * gpus_per_nic


def capacity_summary(topo: Topology) -> dict[str, Any]:
    k = int(topo.meta.get("switch_radix", 0))
    tiers = int(topo.meta.get("tiers", topo.num_tiers))
    bisection = bisection_bandwidth(topo)
    full = topo.link_capacity_by_tier()["endpoint-leaf"] / 2.0
    return {
        "bisection_bandwidth": bisection,
        "bisection_ratio": bisection / full if full else 0.0,
        "oversubscription": tier_oversubscription(topo),
        "max_endpoints_nonblocking": max_endpoints(k, tiers) * topo.planes if k else None,
    }
