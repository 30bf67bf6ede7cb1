"""Top-of-rack spine-leaf, non-blocking or oversubscribed, single or multi-pod.

Seed 004's inference fabric: leaves at the top of each rack with 4:1 to 10:1
oversubscription towards the spines; copper from servers to their ToR. Multi-pod: a third
tier joins pods with its own (spine) oversubscription.
"""

from __future__ import annotations

from dataclasses import replace

from aifabric.fabric.builders.clos import build_clos
from aifabric.fabric.spec import FabricSpec
from aifabric.fabric.topology import Topology


def build_spine_leaf(spec: FabricSpec) -> Topology:
    """A ToR spine-leaf: grouping "tor", copper to the servers unless reach says otherwise."""
    reach = spec.reach
    if reach == ("multimode", "multimode", "singlemode"):  # the default: servers in the rack
        reach = ("copper", "multimode", "singlemode")
    return build_clos(replace(spec, grouping="tor", reach=reach))
