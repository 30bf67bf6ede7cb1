"""Placement of a parallel plan on a fabric, and where each dimension's bytes travel.

Rank r runs on GPU r (contiguous placement: TP inside a server, then CP, DP, PP across) or
on a seeded random permutation of whole servers ("random"; of whole NVLink domains where a
domain spans servers, as an NVL72 rack of 4-GPU trays does). Scale-up is the NVLink
domain (scaleup_domain_size), not the server. For every traffic row of the
training model (traffic.training) the scale-out bytes are spread over the GPU pairs that
carry them:

- hierarchical collectives: the rail-aligned rings between domains (local rank i of each
  domain talks to local rank i of the next), which a rail-optimized fabric keeps on one
  leaf inside a scalable unit;
- flat rings and trees: consecutive members in different domains, member i sending to
  member i + 1 (mod n), a closed cycle, so every domain sends what it receives;
- pipeline sends: consecutive stages in different domains, in the direction the data
  moves: forward activations from stage s to s + 1, backward activation gradients from
  s + 1 to s (1F1B, Narayanan et al. 2021, "Efficient Large-Scale Language Model Training
  on GPU Clusters Using Megatron-LM", sec. 2.2), so a job with as many forward as
  backward sends leaves every server's out-bytes equal to its in-bytes; the interleaved
  1F1B wrap joins the chain's ends (last rank to first forward, first to last backward),
  as does the tied-embedding gradient all-reduce (first and last stage);
- all-to-all and direct exchanges: every pair of members in different domains.

Each pair is classified by the highest tier its path climbs: leaf (same leaf), spine (same
pod) or core; scale-up rows stay on NVLink. The result feeds per-tier required bandwidth
and a node x node traffic matrix.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from aifabric.errors import ConfigError
from aifabric.fabric.topology import Topology
from aifabric.traffic.collectives import SCALE_UP
from aifabric.traffic.rows import TrafficRow
from aifabric.traffic.training import INTERLEAVED_WRAP, TIED_EMBEDDING

TIERS = ("scale_up", "leaf", "spine", "core")
GROUP_OF = {"tp": "tp", "cp": "cp", "pp": "pp", "ep": "ep", "dp": "dp_cp", "dp_expert": "edp"}
DIRECT_PAIR_LIMIT = 512  # groups larger than this use ring pairs for direct patterns


@dataclass(frozen=True, slots=True)
class FabricIndex:
    """Per-GPU lookup arrays: leaf switch and pod of each GPU's NIC (plane 0), its server."""

    gpu_leaf: np.ndarray
    gpu_pod: np.ndarray
    gpu_node: np.ndarray
    gpu_domain: np.ndarray


def index_fabric(topo: Topology, permutation: np.ndarray | None = None) -> FabricIndex:
    """Lookup arrays for rank -> GPU placement (identity or a permutation of GPUs)."""
    e = topo.num_endpoints
    tier1 = topo.link_tier == 1
    ep_leaf = np.empty(e, np.int64)
    ep_leaf[topo.link_src[tier1]] = topo.link_dst[tier1] - e
    # A leaf's pod: the group of the spine it first connects to (3 tiers), else 0.
    leaf_pod = np.zeros(topo.num_switches, np.int64)
    tier2 = topo.link_tier == 2
    if topo.num_tiers >= 3:
        leaf_pod[topo.link_src[tier2] - e] = topo.switch_group[topo.link_dst[tier2] - e]
    gpus = np.arange(topo.num_gpus) if permutation is None else permutation
    endpoint = topo.gpu_endpoints()[gpus]
    leaf = ep_leaf[endpoint]
    return FabricIndex(leaf, leaf_pod[leaf], gpus // topo.gpus_per_node,
                       gpus // topo.scaleup_domain_size)  # fmt: skip


def pair_tiers(index: FabricIndex, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Tier code per rank pair: 0 scale-up, 1 leaf, 2 spine, 3 core."""
    same_domain = index.gpu_domain[a] == index.gpu_domain[b]
    same_leaf = index.gpu_leaf[a] == index.gpu_leaf[b]
    same_pod = index.gpu_pod[a] == index.gpu_pod[b]
    return np.where(same_domain, 0, np.where(same_leaf, 1, np.where(same_pod, 2, 3)))


def _ring_pairs(members: np.ndarray, domain: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    nxt = np.roll(members, -1, axis=1)
    cross = domain[members] != domain[nxt]
    return members[cross], nxt[cross]


def _rail_pairs(members: np.ndarray, domain: np.ndarray, m: int) -> tuple[np.ndarray, np.ndarray]:
    """Rings across domains among members with the same position inside their domain."""
    order = np.argsort(domain[members], axis=1, kind="stable")
    ordered = np.take_along_axis(members, order, axis=1)
    groups, n = ordered.shape
    grid = ordered.reshape(groups, n // m, m)  # (group, domain, local index)
    nxt = np.roll(grid, -1, axis=1)
    return grid.ravel(), nxt.ravel()


def _rail_all_pairs(members: np.ndarray, domain: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Every ordered pair of members in different domains with the same in-domain position:
    DeepEP's internode dispatch (one copy per remote node to the same-index GPU)."""
    counts = np.bincount(domain[members[0]])
    m = int(counts[counts > 0][0])
    order = np.argsort(domain[members], axis=1, kind="stable")
    grid = np.take_along_axis(members, order, axis=1).reshape(members.shape[0], -1, m)
    d = grid.shape[1]
    i, j = np.nonzero(~np.eye(d, dtype=bool))
    return grid[:, i, :].ravel(), grid[:, j, :].ravel()


def _all_pairs(members: np.ndarray, domain: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    n = members.shape[1]
    i, j = np.nonzero(~np.eye(n, dtype=bool))
    a, b = members[:, i].ravel(), members[:, j].ravel()
    cross = domain[a] != domain[b]
    return a[cross], b[cross]


def _chain_pairs(
    members: np.ndarray, domain: np.ndarray, *, backward: bool = False
) -> tuple[np.ndarray, np.ndarray]:
    """(sender, receiver) of each cross-domain hop of every chain: stage s to s + 1, or
    s + 1 to s for backward sends (activation gradients flow back up the pipeline)."""
    a, b = members[:, :-1].ravel(), members[:, 1:].ravel()
    if backward:
        a, b = b, a
    cross = domain[a] != domain[b]
    return a[cross], b[cross]


def row_pairs(
    row: TrafficRow, members: np.ndarray, domain: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """The (sender, receiver) rank pairs that carry a scale-out row's bytes, each pair an
    equal share; pipeline sends of the backward phase run from the later stage back."""
    if row.note in (INTERLEAVED_WRAP, TIED_EMBEDDING):
        members = members[:, [-1, 0]]  # the pipeline's last and first stage
    if row.collective == "send_recv":
        return _chain_pairs(members, domain, backward=row.phase == "backward")
    if row.algorithm == "deepep":
        return _rail_all_pairs(members, domain)
    if row.collective == "all_to_all" and members.shape[1] <= DIRECT_PAIR_LIMIT:
        return _all_pairs(members, domain)
    if row.algorithm == "hierarchical":
        counts = np.bincount(domain[members[0]])
        m = int(counts[counts > 0][0])
        return _rail_pairs(members, domain, m)
    if row.algorithm == "direct" and members.shape[1] <= DIRECT_PAIR_LIMIT:
        return _all_pairs(members, domain)
    return _ring_pairs(members, domain)


def placement_unit(topo: Topology) -> int:
    """GPUs that move together under random placement: a server, or a whole NVLink domain
    when it spans servers (an NVL72 rack of 18 trays), so that the rows the traffic model
    puts on scale-up (TP, EP inside the domain) stay on NVLink."""
    size, per = topo.scaleup_domain_size, topo.gpus_per_node
    return size if size > per and size % per == 0 else per


def placement_permutation(
    num_gpus: int, gpus_per_node: int, how: str, seed: int = 0
) -> np.ndarray | None:
    """GPU of each rank: None (identity) for contiguous, else a seeded shuffle of servers."""
    if how == "contiguous":
        return None
    if how != "random":
        raise ConfigError(f"placement(={how!r}) must be contiguous or random")
    rng = np.random.default_rng(seed)
    nodes = rng.permutation(num_gpus // gpus_per_node)
    return (nodes[:, None] * gpus_per_node + np.arange(gpus_per_node)).ravel()


def traffic_by_tier(rows: list[TrafficRow], plan: Any, topo: Topology, *,
                    placement: str = "contiguous", seed: int = 0, matrix: bool = False,
                    stage_weights: Any = None) -> dict[str, Any]:  # fmt: skip
    """Bytes per iteration per (dimension, tier), tier totals, and optionally node pairs.

    A row's bytes go to its rank pairs in equal shares, or, given ``stage_weights`` (one
    array per row: the share each pipeline stage's ranks send, as training's staged rows
    give), in proportion to the sending rank's stage, so uneven stages and first/last-stage
    parameters show in the matrix as in ``per_stage``.

    Raises:
        ConfigError: the plan needs more GPUs than the fabric has.
    """
    if plan.world_size > topo.num_gpus:
        raise ConfigError(
            f"the plan needs {plan.world_size} GPUs but the fabric has {topo.num_gpus}"
        )
    perm = placement_permutation(topo.num_gpus, placement_unit(topo), placement, seed)
    index = index_fabric(topo, perm)
    rank_domain = index.gpu_domain
    by_dim: dict[tuple[str, str], float] = {}
    node_src: list[np.ndarray] = []
    node_dst: list[np.ndarray] = []
    node_bytes: list[np.ndarray] = []
    members_cache: dict[str, np.ndarray] = {}
    stage_size = max(1, plan.world_size // plan.pp)
    for i, row in enumerate(rows):
        if row.scope == SCALE_UP:
            key = (row.dimension, "scale_up")
            by_dim[key] = by_dim.get(key, 0.0) + row.total_bytes
            continue
        group = row.group or GROUP_OF[row.dimension]
        if group not in members_cache:
            members_cache[group] = plan.group_ranks(group)
        a, b = row_pairs(row, members_cache[group], rank_domain)
        if a.size == 0:
            continue
        share = np.full(a.size, row.total_bytes / a.size)
        if stage_weights is not None:
            w = np.asarray(stage_weights[i], dtype=float)[a // stage_size]
            if w.sum() > 0:
                share = row.total_bytes * w / w.sum()
        tiers = pair_tiers(index, a, b)
        for code, total in enumerate(np.bincount(tiers, weights=share, minlength=4)):
            if total > 0:
                key = (row.dimension, TIERS[code])
                by_dim[key] = by_dim.get(key, 0.0) + float(total)
        if matrix:
            node_src.append(index.gpu_node[a])
            node_dst.append(index.gpu_node[b])
            node_bytes.append(share)
    out: dict[str, Any] = {
        "placement": placement,
        "rows": [{"dimension": d, "tier": t, "bytes": v} for (d, t), v in by_dim.items()],
        "by_tier": {t: sum(v for (_, tt), v in by_dim.items() if tt == t) for t in TIERS},
    }
    if matrix:
        out["node_matrix"] = _node_matrix(topo.num_nodes, node_src, node_dst, node_bytes)
    return out


def _node_matrix(nodes: int, src: list[np.ndarray], dst: list[np.ndarray],
                 weights: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:  # fmt: skip
    """Non-zero (src node, dst node, bytes) triples of inter-server traffic."""
    if not src:
        empty = np.zeros(0, np.int64)
        return empty, empty, np.zeros(0)
    key = np.concatenate(src) * nodes + np.concatenate(dst)
    uniq, inverse = np.unique(key, return_inverse=True)
    total = np.bincount(inverse, weights=np.concatenate(weights))
    return uniq // nodes, uniq % nodes, total


def tier_requirements(by_tier: dict[str, float], topo: Topology, *, step_time: float,
                      scaleup_bandwidth_per_gpu: float) -> list[dict[str, Any]]:  # fmt: skip
    """Required vs available bandwidth per link layer, and the minimum communication time.

    A byte whose path climbs to tier t crosses every lower layer up and down; one direction
    of each layer carries all bytes reaching at least that layer.
    """
    caps = topo.link_capacity_by_tier()
    reach = {"leaf": ("leaf", "spine", "core"), "spine": ("spine", "core"), "core": ("core",)}
    layers = [("scale_up", by_tier.get("scale_up", 0.0), scaleup_bandwidth_per_gpu * topo.num_gpus),
              ("endpoint_leaf", sum(by_tier.get(t, 0.0) for t in reach["leaf"]), caps["endpoint_leaf"]),
              ("leaf_spine", sum(by_tier.get(t, 0.0) for t in reach["spine"]), caps["leaf_spine"]),
              ("spine_core", by_tier.get("core", 0.0), caps["spine_core"])]  # fmt: skip
    out = []
    for name, nbytes, capacity in layers:
        if nbytes <= 0 and capacity <= 0:
            continue
        out.append({
            "layer": name, "bytes": nbytes, "available_bytes_per_s": capacity,
            "required_bytes_per_s": nbytes / step_time if step_time > 0 else 0.0,
            "min_time_s": nbytes / capacity if capacity > 0 else float("inf"),
        })  # fmt: skip
    return out
