"""Topology model held in NumPy arrays: endpoints (NIC ports), switches and links.

Node ids: endpoints are 0..E-1 (one per NIC port per plane), switches E..E+S-1. Every
link joins a lower-tier node to a higher-tier one; ``link_tier`` is the tier of its upper
end (1: endpoint-leaf, 2: leaf-spine, 3: spine-core). Capacities are bytes/s per direction.
No Python object exists per node or link, so a 100,000-GPU fabric builds in well under a
second and exports to JSON or GraphML.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

TIER_NAMES = {1: "leaf", 2: "spine", 3: "core"}
LINK_TIER_NAMES = {1: "endpoint-leaf", 2: "leaf-spine", 3: "spine-core"}


@dataclass(frozen=True, slots=True, eq=False)
class Topology:
    """A built fabric.

    Endpoint arrays (length E): endpoint_node (server index), endpoint_rail (NIC index in
    the server), endpoint_plane. GPU g of a node reaches the network through NIC
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

    def to_dict(self, *, include_links: bool = False) -> dict[str, Any]:
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
        return out

    def write_graphml(self, path: str | Path) -> None:
        """Write the topology as GraphML (nodes with tier, links with capacity in bytes/s).

        Written to a temporary file first and renamed, so a failure leaves nothing behind.
        """
        path = Path(path)
        tmp = path.with_name(path.name + ".tmp")
        e = self.num_endpoints
        with tmp.open("w", encoding="utf-8") as f:
            f.write('<?xml version="1.0" encoding="UTF-8"?>\n'
                    '<graphml xmlns="http://graphml.graphdrawing.org/xmlns">\n'
                    '<key id="tier" for="node" attr.name="tier" attr.type="int"/>\n'
                    '<key id="plane" for="node" attr.name="plane" attr.type="int"/>\n'
                    '<key id="cap" for="edge" attr.name="capacity_bytes_per_s" attr.type="double"/>\n'
                    '<key id="ltier" for="edge" attr.name="tier" attr.type="int"/>\n'
                    f'<graph id="{self.name}" edgedefault="undirected">\n')  # fmt: skip
            for i in range(e):
                f.write(f'<node id="n{i}"><data key="tier">0</data>'
                        f'<data key="plane">{self.endpoint_plane[i]}</data></node>\n')  # fmt: skip
            for j in range(self.num_switches):
                f.write(f'<node id="n{e + j}"><data key="tier">{self.switch_tier[j]}</data>'
                        f'<data key="plane">{self.switch_plane[j]}</data></node>\n')  # fmt: skip
            for s, d, c, t in zip(self.link_src, self.link_dst, self.link_capacity,
                                  self.link_tier, strict=True):  # fmt: skip
                f.write(f'<edge source="n{s}" target="n{d}"><data key="cap">{c:.6g}</data>'
                        f'<data key="ltier">{t}</data></edge>\n')  # fmt: skip
            f.write("</graph>\n</graphml>\n")
        tmp.replace(path)
