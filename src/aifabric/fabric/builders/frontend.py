"""Front-end (storage, management, user traffic) network: one NIC per server, ToR spine-leaf.

DGX SuperPOD's in-band network gives each DGX H100 2 x 200G (two dual-port ConnectX-7,
RA-11333 Table 1); seed 004's inference servers 2 x 100G bonded. Storage fabrics run close
to non-blocking (SuperPOD: about 4:3 at the servers).
"""

from __future__ import annotations

from aifabric.fabric.builders.spine_leaf import build_spine_leaf
from aifabric.fabric.spec import FabricSpec
from aifabric.fabric.topology import Topology


def build_frontend(*, num_gpus: int, gpus_per_node: int = 8, nic_speed: float = 50e9,
                   nics_per_node: int = 1, switch_radix: int = 64,
                   oversubscription: float = 4 / 3) -> Topology:  # fmt: skip
    """A front-end spine-leaf for the servers of a cluster."""
    return build_spine_leaf(FabricSpec(
        name="frontend", num_gpus=num_gpus, gpus_per_node=gpus_per_node,
        nics_per_node=nics_per_node, nic_speed=nic_speed, switch_radix=switch_radix,
        oversubscription=oversubscription, grouping="tor",
    ))  # fmt: skip
