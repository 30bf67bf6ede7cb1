"""Topology model held in NumPy arrays: endpoints (NIC ports), switches and links.

Node ids: endpoints are 0..E-1 (one per NIC port per plane), switches E..E+S-1. Every
link joins a lower-tier node to a higher-tier one; ``link_tier`` is the tier of its upper
end (1: endpoint-leaf, 2: leaf-spine, 3: spine-core). Capacities are bytes/s per direction.
No Python object exists per node or link, so a 100,000-GPU fabric builds in well under a
second and exports to JSON or GraphML.

Exports add the GPUs as nodes E+S..E+S+G-1, each joined by a host link (tier 0, PCIe, no
capacity modeled) to its NIC's port in every plane, and give every node its role (gpu,
nic, leaf, spine, core), server, rail, plane and group (``node_table``), so a reader can
redraw the fabric from the file alone. -1 means "not applicable": a switch has no server,
a GPU spans all planes, and a switch has a rail only when every NIC port below it is on
the same rail (NVIDIA DGX SuperPOD rail leaves; spines and top-of-rack leaves mix rails).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

import numpy as np

from aifabric.outputs import write_atomic

TIER_NAMES = {1: "leaf", 2: "spine", 3: "core"}
ROLES = ("gpu", "nic", "leaf", "spine", "core")  # role code = node tier + 1
NODE_COLUMNS = ("role", "tier", "server", "rail", "plane", "group")
LINK_TIER_NAMES = {1: "endpoint_leaf", 2: "leaf_spine", 3: "spine_core"}


@dataclass(frozen=True, slots=True, eq=False)
class Topology:
    """A built fabric.

    Endpoint arrays (length E): endpoint_node (server index; -1 for a management port,
    e.g. a UFM appliance's, after all server ports), endpoint_rail (NIC index in the
    server), endpoint_plane. GPU g of a node reaches the network through NIC
    g // (gpus_per_node / nics_per_node). Switch arrays (length S): switch_tier (1..3),
    switch_plane, switch_group (scalable unit or pod), switch_ports (radix).
    Link arrays (length L): link_src (lower end), link_dst (upper end), link_tier,
    link_capacity (bytes/s), link_latency (s), link_reach ("copper", "multimode",
    "singlemode", as small ints 0/1/2).
    """

    name: str
    num_gpus: int
    gpus_per_node: int
    nics_per_node: int
    planes: int
    scaleup_domain_size: int
    endpoint_node: np.ndarray
    endpoint_rail: np.ndarray
    endpoint_plane: np.ndarray
    switch_tier: np.ndarray
    switch_plane: np.ndarray
    switch_group: np.ndarray
    switch_ports: np.ndarray
    link_src: np.ndarray
    link_dst: np.ndarray
    link_tier: np.ndarray
    link_capacity: np.ndarray
    link_latency: np.ndarray
    link_reach: np.ndarray
    meta: dict[str, Any] = field(default_factory=dict)

    REACHES = ("copper", "multimode", "singlemode")

    @property
    def num_endpoints(self) -> int:
        return int(self.endpoint_node.shape[0])

    @property
    def num_management_endpoints(self) -> int:
        """Fabric ports of appliances that are not servers (endpoint_node -1: UFM)."""
        return int((self.endpoint_node < 0).sum())

    @property
    def num_switches(self) -> int:
        return int(self.switch_tier.shape[0])

    @property
    def num_nodes(self) -> int:
        return self.num_gpus // self.gpus_per_node

    @property
    def num_tiers(self) -> int:
        return int(self.switch_tier.max()) if self.num_switches else 0

    def switches_by_tier(self) -> dict[str, int]:
        counts = np.bincount(self.switch_tier, minlength=4)
        return {TIER_NAMES[t]: int(counts[t]) for t in (1, 2, 3)}

    def ports_used(self) -> np.ndarray:
        """Ports in use on each switch (links ending or starting there)."""
        e = self.num_endpoints
        used = np.bincount(self.link_dst - e, minlength=self.num_switches)
        up = self.link_src >= e
        used += np.bincount(self.link_src[up] - e, minlength=self.num_switches)
        return used

    def link_capacity_by_tier(self) -> dict[str, float]:
        """Sum of link capacities (bytes/s, one direction) per link tier."""
        sums = np.bincount(self.link_tier, weights=self.link_capacity, minlength=4)
        return {LINK_TIER_NAMES[t]: float(sums[t]) for t in (1, 2, 3)}

    def links_by_tier(self) -> dict[str, int]:
        counts = np.bincount(self.link_tier, minlength=4)
        return {LINK_TIER_NAMES[t]: int(counts[t]) for t in (1, 2, 3)}

    def gpu_endpoints(self) -> np.ndarray:
        """Endpoint id of each GPU's NIC port in plane 0 (array of num_gpus)."""
        gpus = np.arange(self.num_gpus)
        node = gpus // self.gpus_per_node
        nic = (gpus % self.gpus_per_node) // (self.gpus_per_node // self.nics_per_node)
        return (node * self.nics_per_node + nic) * self.planes

    def switch_rails(self) -> np.ndarray:
        """Rail of each switch: the NIC index shared by every endpoint below it, else -1.

        Computed tier by tier from the links (each climbs one tier), so it needs no record
        of how the builder grouped the NICs.
        """
        e = self.num_endpoints
        low = np.concatenate(
            [self.endpoint_rail, np.full(self.num_switches, np.iinfo(np.int64).max)]
        )
        high = np.concatenate([self.endpoint_rail, np.full(self.num_switches, -1)])
        for tier in (1, 2, 3):
            sel = self.link_tier == tier
            np.minimum.at(low, self.link_dst[sel], low[self.link_src[sel]])
            np.maximum.at(high, self.link_dst[sel], high[self.link_src[sel]])
        return np.where(low[e:] == high[e:], high[e:], -1)

    def host_links(self) -> tuple[np.ndarray, np.ndarray]:
        """(GPU node id, NIC port id) of every host link: each GPU to its NIC in every plane."""
        gpu_ids = self.num_endpoints + self.num_switches + np.arange(self.num_gpus)
        ports = self.gpu_endpoints()[:, None] + np.arange(self.planes)
        return np.repeat(gpu_ids, self.planes), ports.ravel()

    def node_table(self) -> dict[str, np.ndarray]:
        """Per export node (NIC ports, switches, then GPUs) each column of NODE_COLUMNS.

        role: gpu, nic, leaf, spine or core; tier: -1 gpu, 0 nic, 1..3 switch; server:
        node index (-1 for switches); rail: NIC index in the server (switches: see
        switch_rails); plane (-1 for GPUs); group: scalable unit or pod of a switch (-1
        for GPUs and NICs).
        """
        s, g = self.num_switches, self.num_gpus
        nic_of_gpu = self.gpu_endpoints()
        none_s, none_g = np.full(s, -1), np.full(g, -1)
        tier = np.concatenate([np.zeros(self.num_endpoints, np.int64), self.switch_tier, none_g])
        return {
            "role": np.array(ROLES)[tier + 1],
            "tier": tier,
            "server": np.concatenate([self.endpoint_node, none_s, self.endpoint_node[nic_of_gpu]]),
            "rail": np.concatenate([self.endpoint_rail, self.switch_rails(),
                                    self.endpoint_rail[nic_of_gpu]]),
            "plane": np.concatenate([self.endpoint_plane, self.switch_plane, none_g]),
            "group": np.concatenate([np.full(self.num_endpoints, -1), self.switch_group, none_g]),
        }  # fmt: skip

    def to_dict(self, *, include_links: bool = False) -> dict[str, Any]:
        """Summary counts; with ``include_links`` also the export arrays: ``node_arrays``
        (node_table, indexed by node id), ``link_arrays`` (the cables) and
        ``host_link_arrays`` (GPU to NIC)."""
        out: dict[str, Any] = {
            "name": self.name,
            "gpus": self.num_gpus,
            "nodes": self.num_nodes,
            "endpoints": self.num_endpoints,
            "planes": self.planes,
            "switches": {**self.switches_by_tier(), "total": self.num_switches},
            "links": self.links_by_tier(),
            "link_capacity_by_tier": self.link_capacity_by_tier(),
            **self.meta,
        }
        if include_links:
            out["link_arrays"] = {
                "src": self.link_src.tolist(),
                "dst": self.link_dst.tolist(),
                "tier": self.link_tier.tolist(),
                "capacity": self.link_capacity.tolist(),
            }
            out["node_arrays"] = {k: v.tolist() for k, v in self.node_table().items()}
            host_src, host_dst = self.host_links()
            out["host_link_arrays"] = {"src": host_src.tolist(), "dst": host_dst.tolist()}
        return out

    def write_graphml(self, path: str | Path) -> None:
        """Write the topology as GraphML (see ``graphml_writer``), whole or not at all."""
        write_atomic(path, self.graphml_writer())

    def graphml_writer(self) -> Callable[[TextIO], None]:
        """A function writing the topology as GraphML: every node of ``node_table`` with
        its columns, the cables (capacity in bytes/s, link tier 1..3) and the host links
        (tier 0, no capacity). GraphML 1.0 primer: graphml.graphdrawing.org/primer.
        """
        table = self.node_table()
        columns = [table[c].tolist() for c in NODE_COLUMNS]
        host_src, host_dst = self.host_links()

        def write(f: TextIO) -> None:
            f.write(
                '<?xml version="1.0" encoding="UTF-8"?>\n'
                '<graphml xmlns="http://graphml.graphdrawing.org/xmlns">\n'
                '<key id="role" for="node" attr.name="role" attr.type="string"/>\n'
            )
            for c in NODE_COLUMNS[1:]:
                f.write(f'<key id="{c}" for="node" attr.name="{c}" attr.type="int"/>\n')
            f.write('<key id="cap" for="edge" attr.name="capacity_bytes_per_s" attr.type="double"/>\n'
                    '<key id="ltier" for="edge" attr.name="tier" attr.type="int"/>\n'
                    f'<graph id="{self.name}" edgedefault="undirected">\n')  # fmt: skip
            for i, values in enumerate(zip(*columns, strict=True)):
                data = "".join(f'<data key="{c}">{v}</data>'
                               for c, v in zip(NODE_COLUMNS, values, strict=True))  # fmt: skip
                f.write(f'<node id="n{i}">{data}</node>\n')
            for s, d, c, t in zip(self.link_src.tolist(), self.link_dst.tolist(),
                                  self.link_capacity.tolist(), self.link_tier.tolist(),
                                  strict=True):  # fmt: skip
                f.write(f'<edge source="n{s}" target="n{d}"><data key="cap">{c:.6g}</data>'
                        f'<data key="ltier">{t}</data></edge>\n')  # fmt: skip
            for s, d in zip(host_src.tolist(), host_dst.tolist(), strict=True):
                f.write(f'<edge source="n{s}" target="n{d}"><data key="ltier">0</data></edge>\n')
            f.write("</graph>\n</graphml>\n")

        return write
