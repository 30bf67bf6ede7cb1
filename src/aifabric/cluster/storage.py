"""Storage servers on the shared cluster network: checkpoint writes and dataset reads.

Each storage server takes one whole server slot of the fabric it sits on (the back-end
fabric or the front-end network) and talks through that slot's first NIC port, as the
serving simulator's memory servers do; behind the port it has a disk write link and a disk
read link (``write_bandwidth``, ``read_bandwidth``, bytes/s per server), so a write crosses
the route to the server and then the disk, a read the disk and then the route back.

Flows (seed 002's second traffic class; sizes from :mod:`aifabric.traffic.storage`, the
one home of the formulas):

- **Checkpoint**: every GPU of the job writes an equal shard of the full checkpoint
  (``checkpoint_bytes`` = parameters x bytes per parameter, 14 by default: BF16 weights,
  FP32 master weights and both Adam moments), as Megatron-Core's fully parallel
  distributed checkpoint save spreads the write over the data-parallel ranks (Megatron-Core
  ``dist_checkpointing``, ``FullyParallelSaveStrategyWrapper``); GPU ``g`` writes to server
  ``g mod S``.
- **Dataset**: each data-parallel replica reads its share of the step's tokens
  (``dataset_bytes_per_iteration`` / dp) through its first GPU's port, from server
  ``replica mod S``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from aifabric.cluster.shared import BuiltFabric, SharedFabric


@dataclass(slots=True)
class StorageServers:
    """Where the storage servers are and their links in the shared network."""

    fabric: BuiltFabric
    endpoints: np.ndarray  # NIC endpoint of each server on ``fabric``
    write_links: np.ndarray  # network link id of each server's disk write
    read_links: np.ndarray

    @property
    def count(self) -> int:
        return len(self.endpoints)


def place_storage(shared: SharedFabric, on: BuiltFabric, servers: int, write_bandwidth: float,
                  read_bandwidth: float) -> StorageServers:  # fmt: skip
    """Put ``servers`` storage servers on the next free server slots of ``shared``."""
    gpn = shared.gpus_per_node
    lo, _ = shared.take(servers * gpn, "storage.servers")
    slots = lo // gpn + np.arange(servers)
    per_server = on.topo.nics_per_node * on.topo.planes
    endpoints = (slots * per_server).astype(np.int64)
    net = shared.network
    writes = np.array([net.add_link(f"storage{s}.write", write_bandwidth)
                       for s in range(servers)], np.int64)  # fmt: skip
    reads = np.array([net.add_link(f"storage{s}.read", read_bandwidth)
                      for s in range(servers)], np.int64)  # fmt: skip
    return StorageServers(on, endpoints, writes, reads)


@dataclass(slots=True)
class FlowSet:
    """Flows in CSR form over network link ids, ready for FlowNetwork.start_group."""

    indptr: np.ndarray
    links: np.ndarray
    weights: np.ndarray
    sizes: np.ndarray

    @property
    def total(self) -> float:
        return float(self.sizes.sum())


def storage_flows(store: StorageServers, gpus: np.ndarray, sizes: np.ndarray, *,
                  write: bool, seed: int) -> FlowSet:  # fmt: skip
    """Flows between GPUs (global ids) and the storage servers, GPU ``i`` of the list with
    server ``i mod S``: writes GPU -> server -> disk, reads disk -> server -> GPU."""
    gpus = np.asarray(gpus, np.int64)
    server = np.arange(len(gpus)) % store.count
    gpu_ep = store.fabric.topo.gpu_endpoints()[gpus]
    st_ep = store.endpoints[server]
    src, dst = (gpu_ep, st_ep) if write else (st_ep, gpu_ep)
    routes = store.fabric.route(src, dst, seed=seed)
    disk = (store.write_links if write else store.read_links)[server]
    return _with_extra_link(routes, disk, np.asarray(sizes, float))


def _with_extra_link(routes: Any, extra: np.ndarray, sizes: np.ndarray) -> FlowSet:
    """Append one link (weight 1) to each route."""
    counts = np.diff(routes.indptr)
    n = len(counts)
    indptr = np.concatenate([[0], np.cumsum(counts + 1)]).astype(np.int64)
    links = np.empty(int(indptr[-1]), np.int64)
    weights = np.empty(int(indptr[-1]))
    last = indptr[1:] - 1
    mask = np.ones(len(links), bool)
    mask[last] = False
    links[mask], weights[mask] = routes.links, routes.weights
    links[last], weights[last] = extra[:n], 1.0
    return FlowSet(indptr, links, weights, sizes)
