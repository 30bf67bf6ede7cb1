"""One planned fabric (and optionally a front-end network) that every workload's flows share.

The links of the back-end fabric enter one :class:`~aifabric.serving.network.FlowNetwork`
(and so one :class:`~aifabric.netsim.engine.FlowEngine`) first, in the fabric's own link
order (directed links up, then down, as :class:`aifabric.fabric.routing.Router` numbers
them), so a route of the router is a path of the network with no translation. The
front-end network's links follow at an offset, then the storage servers' disk links.
Every workload on the cluster (training collectives, serving KV transfers, storage reads
and writes) starts its flows on this network, so they compete for the same links under
the engine's max-min sharing and traffic-class policy.

GPUs are handed to workloads in server-aligned contiguous ranges (:meth:`SharedFabric.take`),
in the order the scenario lists them; storage servers each take one whole server after
them, talking through that server's first NIC port, as the serving simulator's memory
servers do (:mod:`aifabric.serving.fabric`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from aifabric.des import Simulator
from aifabric.errors import ConfigError
from aifabric.serving.network import FlowNetwork


@dataclass(slots=True)
class BuiltFabric:
    """A planned fabric's topology, router and place in the shared network's link space."""

    name: str
    options: dict[str, Any]
    spec: Any
    info: dict[str, Any]
    topo: Any
    router: Any
    routing: str
    link_base: int  # network link id of the fabric's directed link 0

    @property
    def num_gpus(self) -> int:
        return int(self.topo.num_gpus)

    def route(self, src_ep: np.ndarray, dst_ep: np.ndarray, *, seed: int,
              key: np.ndarray | None = None) -> Any:  # fmt: skip
        """Routes (CSR, network link ids) between NIC endpoints by the fabric's mode."""
        routes = self.router.route(src_ep, dst_ep, self.routing, seed=seed, key=key)
        if not bool(routes.reachable.all()):  # pragma: no cover - healthy fabrics
            raise ConfigError(f"{self.name}: a pair of endpoints has no path")
        routes.links = routes.links + self.link_base
        return routes


def build_fabric(name: str, options: dict[str, Any], network: FlowNetwork) -> BuiltFabric:
    """Plan and build the fabric of ``options`` (plan keys plus ``routing``); add its
    directed links to ``network`` in the router's order."""
    from aifabric.fabric.plan import build, fabric_spec
    from aifabric.fabric.routing import Router

    plan = {k: v for k, v in options.items() if k != "routing"}
    spec, _, info = fabric_spec(plan)
    topo = build(spec, info.get("design"))
    router = Router(topo)
    base = len(network.names)
    for i, cap in enumerate(router.capacity.tolist()):
        up = i < router.num_links
        network.add_link(f"{name}.{'up' if up else 'down'}{i % router.num_links}", cap)
    return BuiltFabric(name, options, spec, info, topo, router,
                       str(options.get("routing", "ecmp")), base)  # fmt: skip


class SharedFabric:
    """The cluster's network: the back-end fabric, an optional front-end, one engine."""

    def __init__(self, fabric: dict[str, Any], frontend: dict[str, Any] | None = None,
                 *, latency: float = 0.0, classes: dict[str, Any] | None = None) -> None:  # fmt: skip
        """``classes``: the scenario's traffic-class policy (``aifabric.netsim.classes``:
        inference 0, storage 1, training 2; fair or None: one max-min pool)."""
        from aifabric.netsim.classes import parse_class_policy

        self.sim = Simulator()
        policy = parse_class_policy(classes, key="classes") if classes else None
        self.network = FlowNetwork(self.sim, latency=latency, policy=policy)
        self.network.kind_link_bytes = {}
        self.backend = build_fabric("fabric", fabric, self.network)
        self.frontend = (build_fabric("frontend", frontend, self.network)
                         if frontend is not None else None)  # fmt: skip
        self._next_gpu = 0

    @property
    def gpus_per_node(self) -> int:
        return int(self.backend.topo.gpus_per_node)

    def take(self, gpus: int, what: str, first_gpu: int | None = None) -> tuple[int, int]:
        """GPUs [lo, hi) for a workload: from ``first_gpu`` (a server boundary) or the next
        free server; a range that overlaps an earlier one or leaves the fabric is refused."""
        gpn = self.gpus_per_node
        lo = -(-self._next_gpu // gpn) * gpn if first_gpu is None else first_gpu
        if lo % gpn:
            raise ConfigError(f"{what}.first_gpu(={lo}) must start a server "
                              f"(a multiple of {gpn})")  # fmt: skip
        if lo < self._next_gpu:
            raise ConfigError(f"{what}.first_gpu(={lo}) overlaps GPUs an earlier workload "
                              f"holds (0..{self._next_gpu - 1})")  # fmt: skip
        hi = lo + gpus
        if hi > self.backend.num_gpus:
            raise ConfigError(f"{what}: GPUs {lo}..{hi - 1} do not fit the fabric's "
                              f"{self.backend.num_gpus:,} GPUs; give more fabric.gpus")  # fmt: skip
        self._next_gpu = hi
        return lo, hi

    def endpoint_of_gpu(self, gpus: np.ndarray, on: BuiltFabric) -> np.ndarray:
        """NIC endpoint (plane 0) of each GPU on fabric ``on``; on a front-end with fewer
        GPUs per NIC, the server's front-end NIC the GPU shares."""
        out: np.ndarray = on.topo.gpu_endpoints()[np.asarray(gpus, np.int64)]
        return out
