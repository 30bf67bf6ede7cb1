"""Routing on a built fabric's arrays: the equal-cost paths between endpoints, and the path
each flow takes by routing mode, with failed and degraded links.

Links are directed for simulation: cable ``l`` of the topology (lower end ``link_src``,
upper end ``link_dst``) is link ``l`` going up and ``L + l`` going down, each at the
cable's per-direction capacity.

Every builder makes a folded Clos (rail-optimized, ToR Clos, spine-leaf, multi-pod,
presets: 1-3 tiers, any planes), so the equal-cost paths are the up-down paths of least
tier: up from the source leaf to the lowest tier that reaches the destination leaf, then
down (valley-free routing). Reachability is held per tier as dense matrices over leaves
(``R2[spine, leaf]``: live links down; ``R3[core, leaf]``: through a live spine), so a path
set costs a few array lookups, not a graph search. A flow on a rail-aligned pair (both
NICs on one rail leaf) stays on that leaf.

Path choice per flow, as switches make it, hop by hop among the next hops that still
reach the destination at the least tier:

- ``ecmp``: a seeded hash of the flow's 5-tuple (source and destination port, queue pair)
  and the switch (per-switch hash seeds, as real switches salt their hash), modulo the
  next hops: collisions happen as on real switches.
- ``ecmp_qp``: the connection is split over ``qps`` queue pairs, each hashed on its own
  (NCCL's ``NCCL_IB_QPS_PER_CONNECTION``; the remedy in Meta's RoCE paper, SIGCOMM 2024).
- ``spray``: ideal per-packet spraying: at each hop the flow splits evenly over all next
  hops (its weight on each link is the share of its bytes that crosses it).
- ``adaptive``: flows are routed in order; each takes, at each hop, the next hop whose
  link carries the fewest flows so far (the local, per-hop choice of InfiniBand adaptive
  routing and Spectrum-X; flowlet timing is not modeled).

Across planes (a NIC with a port per plane), ``spray`` splits evenly over the planes and
the others hash the flow onto one plane.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import numpy as np

from aifabric.errors import ConfigError
from aifabric.fabric.topology import LINK_TIER_NAMES, TIER_NAMES, Topology

Mode = Literal["ecmp", "ecmp_qp", "spray", "adaptive"]
MODES: tuple[str, ...] = ("ecmp", "ecmp_qp", "spray", "adaptive")
_TIER_OF_NAME = {v: k for k, v in TIER_NAMES.items()}
_LAYER_OF_NAME = {v: k for k, v in LINK_TIER_NAMES.items()}


# --- failures --------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Impairment:
    """One ``--fail`` or ``--degrade`` item: ``what`` is a layer (endpoint_leaf,
    leaf_spine, spine_core), a tier (leaf, spine, core) or a list of switch and link
    names; ``amount`` a fraction (< 1) or count (>= 1) of it; ``speed`` the remaining
    share of capacity (0: down)."""

    what: str
    amount: float
    names: tuple[str, ...] = ()
    speed: float = 0.0


def parse_impairment(text: str, *, degrade: bool = False) -> Impairment:
    """``leaf_spine:0.25``, ``spine:2``, ``leaf3,spine0-core1`` (fail) or
    ``leaf_spine:0.1@0.5`` (degrade: 10 % of the layer's links at half speed)."""
    flag = "--degrade" if degrade else "--fail"
    body, speed = text.strip(), 0.0
    if degrade:
        body, at, sp = body.partition("@")
        try:
            speed = float(sp) if at else -1.0
        except ValueError:
            speed = -1.0
        if not 0 < speed < 1:
            raise ConfigError(f"{flag} {text!r}: give LAYER:FRACTION@SPEED with 0 < SPEED < 1, "
                              "e.g. leaf_spine:0.1@0.5")  # fmt: skip
    what, colon, amount = body.partition(":")
    what = what.replace("-", "_") if colon else what
    if colon and (what in _LAYER_OF_NAME or what in _TIER_OF_NAME):
        try:
            value = float(amount)
        except ValueError:
            value = -1.0
        if not (0 < value < 1 or (value >= 1 and value.is_integer())) or value > 1e9:
            raise ConfigError(f"{flag} {text!r}: the amount must be a fraction in (0, 1) or a "
                              "whole count >= 1")  # fmt: skip
        if what in _TIER_OF_NAME and degrade:
            raise ConfigError(f"{flag} {text!r}: degrade links (a layer such as leaf_spine), "
                              "not switches")  # fmt: skip
        return Impairment(what, value, speed=speed)
    if colon:
        raise ConfigError(
            f"{flag} {text!r}: {what!r} is not a layer ({', '.join(_LAYER_OF_NAME)}) or tier "
            f"({', '.join(_TIER_OF_NAME)})"
        )
    names = tuple(n.strip() for n in body.split(",") if n.strip())
    if not names:
        raise ConfigError(f"{flag} {text!r}: name a layer:amount or switches/links")
    return Impairment("names", float(len(names)), names, speed)


def switch_names(topo: Topology) -> list[str]:
    """``leaf0``, ``spine3``, ``core1``: tier name and index within the tier (all planes)."""
    names: list[str] = []
    seen = dict.fromkeys(TIER_NAMES, 0)
    for t in topo.switch_tier.tolist():
        names.append(f"{TIER_NAMES[t]}{seen[t]}")
        seen[t] += 1
    return names


@dataclass(slots=True)
class FabricState:
    """Per-cable capacity multipliers after failures and degradation (1 healthy, 0 down)."""

    factor: np.ndarray
    failed_switches: list[str] = field(default_factory=list)
    failed_links: int = 0
    degraded_links: int = 0


def apply_impairments(topo: Topology, items: list[Impairment], seed: int = 0) -> FabricState:
    """Cable capacity factors for ``items``, drawn with a seeded generator."""
    rng = np.random.default_rng(seed)
    factor = np.ones(len(topo.link_src))
    e = topo.num_endpoints
    names = switch_names(topo) if any(i.what == "names" for i in items) else []
    index = {n: i for i, n in enumerate(names)}
    state = FabricState(factor)
    for item in items:
        if item.what in _LAYER_OF_NAME:
            ids = np.flatnonzero((topo.link_tier == _LAYER_OF_NAME[item.what]) & (factor > 0))
            k = _howmany(item, len(ids), "links")
            chosen = rng.choice(ids, size=k, replace=False) if k else ids[:0]
            factor[chosen] = item.speed
        elif item.what in _TIER_OF_NAME:
            ids = np.flatnonzero(topo.switch_tier == _TIER_OF_NAME[item.what])
            k = _howmany(item, len(ids), "switches")
            chosen = rng.choice(ids, size=k, replace=False) if k else ids[:0]
            _switches_down(topo, chosen, factor)
            state.failed_switches += [f"{item.what}{int(np.sum(ids < c))}" for c in chosen]
        else:
            for name in item.names:
                a, dash, b = name.partition("-")
                if a not in index or (dash and b not in index):
                    raise ConfigError(f"no switch {a if a not in index else b!r} in this "
                                      "fabric; names are leaf0, spine3, core1 ...")  # fmt: skip
                if dash:
                    lo, hi = sorted((index[a] + e, index[b] + e))
                    sel = (topo.link_src == lo) & (topo.link_dst == hi)
                    if not sel.any():
                        raise ConfigError(f"no link {name!r}: {a} and {b} are not cabled")
                    factor[sel] = item.speed
                else:
                    if item.speed:
                        raise ConfigError(f"--degrade {name!r}: degrade links, not switches")
                    _switches_down(topo, np.array([index[a]]), factor)
                    state.failed_switches.append(a)
    state.failed_links = int((factor == 0).sum())
    state.degraded_links = int(((factor > 0) & (factor < 1)).sum())
    return state


def _howmany(item: Impairment, total: int, what: str) -> int:
    k = round(item.amount * total) if item.amount < 1 else int(item.amount)
    if k > total:
        raise ConfigError(f"{item.what}:{item.amount:g} asks for {k} {what} of {total}")
    return k


def _switches_down(topo: Topology, switches: np.ndarray, factor: np.ndarray) -> None:
    nodes = switches + topo.num_endpoints
    factor[np.isin(topo.link_src, nodes) | np.isin(topo.link_dst, nodes)] = 0.0


# --- routing ---------------------------------------------------------------------------


@dataclass(slots=True)
class Routes:
    """Paths of flows in CSR form over directed links: flow f uses
    ``links[indptr[f]:indptr[f+1]]`` with ``weights``; ``reachable[f]`` is False for a flow
    whose endpoints are cut off (it has no links)."""

    indptr: np.ndarray
    links: np.ndarray
    weights: np.ndarray
    reachable: np.ndarray


def _pad(groups: np.ndarray, values: list[np.ndarray], n: int) -> list[np.ndarray]:
    """Padded [n, maxdeg] arrays of ``values`` grouped by ``groups`` (-1 pads)."""
    order = np.argsort(groups, kind="stable")
    g = groups[order]
    deg = np.bincount(g, minlength=n)
    width = max(int(deg.max()) if len(deg) else 0, 1)
    start = np.concatenate([[0], np.cumsum(deg)[:-1]])
    col = np.arange(len(g)) - start[g]
    out = []
    for v in values:
        arr = np.full((n, width), -1, np.int64)
        arr[g, col] = v[order]
        out.append(arr)
    return out


class Router:
    """Equal-cost up-down paths on ``topo`` with cable capacity factors ``state``."""

    def __init__(self, topo: Topology, state: FabricState | None = None) -> None:
        self.topo = topo
        self.state = state or FabricState(np.ones(len(topo.link_src)))
        f = self.state.factor
        n_links = len(topo.link_src)
        self.num_links = n_links
        cap = topo.link_capacity * f
        self.capacity = np.concatenate([cap, cap])  # up then down, bytes/s
        self.latency = np.concatenate([topo.link_latency, topo.link_latency])
        self.layer = np.concatenate([topo.link_tier, topo.link_tier]).astype(np.int64)
        live = f > 0
        ids = np.flatnonzero(live)
        n_nodes = topo.num_endpoints + topo.num_switches
        self.up_node, self.up_link = _pad(topo.link_src[ids], [topo.link_dst[ids], ids], n_nodes)
        self.dn_node, self.dn_link = _pad(topo.link_dst[ids], [topo.link_src[ids], ids], n_nodes)
        e = topo.num_endpoints
        tier = np.concatenate([np.zeros(e, np.int64), topo.switch_tier.astype(np.int64)])
        self.node_tier = tier
        leaves = np.flatnonzero(tier == 1)
        self.leaf_index = np.full(n_nodes, -1, np.int64)
        self.leaf_index[leaves] = np.arange(len(leaves))
        self.num_leaves = len(leaves)
        # Each endpoint's leaf (its one live up link), -1 when cut off.
        self.ep_leaf = np.where(self.up_node[:e, 0] >= 0, self.up_node[:e, 0], -1)
        self.ep_link = self.up_link[:e, 0]
        self.ep_leaf[self.ep_link < 0] = -1
        # R2[spine node, leaf]: live links down; R3[core node, leaf]: reach through spines.
        self.r2 = np.zeros((n_nodes, len(leaves)), np.int32)
        sel = live & (topo.link_tier == 2)
        np.add.at(self.r2, (topo.link_dst[sel], self.leaf_index[topo.link_src[sel]]), 1)
        self.r3 = np.zeros((n_nodes, len(leaves)), bool)
        sel3 = live & (topo.link_tier == 3)
        for lo, hi in zip(topo.link_src[sel3].tolist(), topo.link_dst[sel3].tolist(),
                          strict=True):  # fmt: skip
            self.r3[hi] |= self.r2[lo] > 0
        # A spine reaches a leaf through a core (3-tier detour).
        self.s3 = np.zeros((n_nodes, len(leaves)), bool)
        for lo, hi in zip(topo.link_src[sel3].tolist(), topo.link_dst[sel3].tolist(),
                          strict=True):  # fmt: skip
            self.s3[lo] |= self.r3[hi]

    # --- helpers ----------------------------------------------------------------------
    def endpoints_of_gpus(self, gpus: np.ndarray, plane: np.ndarray | int = 0) -> np.ndarray:
        out: np.ndarray = self.topo.gpu_endpoints()[gpus] + plane
        return out

    def down_id(self, link: np.ndarray) -> np.ndarray:
        return link + self.num_links

    def _level(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        """Least tier joining leaves a and b (node ids): 1 same leaf, 2 via a spine, 3 via
        a core, 0 unreachable."""
        la, lb = self.leaf_index[a], self.leaf_index[b]
        ups = self.up_node[a]  # [F, u]
        valid_up = ups >= 0
        safe = np.where(valid_up, ups, 0)
        via2 = ((self.r2[safe, lb[:, None]] > 0) & valid_up).any(axis=1)
        via3 = (self.s3[safe, lb[:, None]] & valid_up).any(axis=1)
        level = np.where(la == lb, 1, np.where(via2, 2, np.where(via3, 3, 0)))
        return level

    def _candidates(self, node: np.ndarray, goal: np.ndarray, kind: str) -> tuple[
        np.ndarray, np.ndarray, np.ndarray]:  # fmt: skip
        """Next hops (node, cable, valid mask) from ``node`` toward leaf ``goal`` (index)."""
        if kind in ("up2", "up3", "upc"):
            nxt, cab = self.up_node[node], self.up_link[node]
        else:
            nxt, cab = self.dn_node[node], self.dn_link[node]
        ok = nxt >= 0
        safe = np.where(ok, nxt, 0)
        g = goal[:, None]
        if kind == "up2":  # leaf -> spine that has the goal leaf below
            ok &= self.r2[safe, g] > 0
        elif kind == "up3":  # leaf -> spine that reaches the goal through a core
            ok &= self.s3[safe, g]
        elif kind == "upc":  # spine -> core above the goal
            ok &= self.r3[safe, g]
        elif kind == "dns":  # core -> spine with the goal below
            ok &= self.r2[safe, g] > 0
        else:  # "dnl": spine -> the goal leaf itself
            ok &= self.leaf_index[safe] == g
        return nxt, cab, ok

    # --- routing ----------------------------------------------------------------------
    def route(
        self, src: np.ndarray, dst: np.ndarray, mode: str = "ecmp", *, seed: int = 0,
        key: np.ndarray | None = None, planes: bool = True,
    ) -> Routes:  # fmt: skip
        """Paths of flows from endpoints ``src`` to ``dst`` (plane-0 endpoint ids when
        ``planes``: the flow is put on a plane by the mode). ``key`` distinguishes flows
        of the same endpoint pair for hashing (queue pair, channel)."""
        if mode not in MODES:
            raise ConfigError(f"routing(={mode!r}) must be one of {', '.join(MODES)}")
        src, dst = np.asarray(src, np.int64), np.asarray(dst, np.int64)
        n = len(src)
        key = np.zeros(n, np.int64) if key is None else np.asarray(key, np.int64)
        p = self.topo.planes
        if planes and p > 1:
            if mode == "spray":  # split evenly over the planes, then spray in each
                parts = [self._route_plane(src + q, dst + q, mode, seed, key) for q in range(p)]
                return _combine(parts, 1.0 / p)
            plane = _hash(src, dst, key, np.int64(-1), seed) % np.uint64(p)
            off = plane.astype(np.int64)
            return self._route_plane(src + off, dst + off, mode, seed, key)
        return self._route_plane(src, dst, mode, seed, key)

    def _route_plane(self, src: np.ndarray, dst: np.ndarray, mode: str, seed: int,
                     key: np.ndarray) -> Routes:  # fmt: skip
        if mode == "spray":
            return self._spray(src, dst)
        n = len(src)
        la, lb = self.ep_leaf[src], self.ep_leaf[dst]
        ok = (la >= 0) & (lb >= 0) & (src != dst)
        level = np.zeros(n, np.int64)
        level[ok] = self._level(la[ok], lb[ok])
        reach = level > 0
        goal = np.where(reach, self.leaf_index[np.maximum(lb, 0)], 0)
        hops = 2 + np.where(level == 2, 2, np.where(level == 3, 4, 0))
        hops[~reach] = 0
        width = 6
        path = np.full((n, width), -1, np.int64)
        path[reach, 0] = self.ep_link[src[reach]]
        cur = np.where(reach, la, 0)
        loads = np.zeros(2 * self.num_links) if mode == "adaptive" else None
        plan = {2: ("up2", "dnl"), 3: ("up3", "upc", "dns", "dnl")}
        for lvl, kinds in plan.items():
            sel = np.flatnonzero(level == lvl)
            if len(sel) == 0:
                continue
            node = cur[sel]
            for h, kind in enumerate(kinds):
                nxt, cab, valid = self._candidates(node, goal[sel], kind)
                up = kind.startswith("up")
                ids = np.where(cab >= 0, cab + (0 if up else self.num_links), -1)
                if mode == "adaptive":
                    assert loads is not None
                    pick = _least_loaded(ids, valid, loads)
                else:
                    h_ = _hash(src[sel], dst[sel], key[sel], node, seed)
                    pick = _kth_valid(valid, h_)
                bad = pick < 0
                if bad.any():  # pragma: no cover - level guarantees a next hop
                    raise RuntimeError("routing found no next hop on an equal-cost path")
                rows = np.arange(len(sel))
                path[sel, 1 + h] = ids[rows, pick]
                node = nxt[rows, pick]
        last = hops - 1
        rows = np.flatnonzero(reach)
        path[rows, last[rows]] = self.down_id(self.ep_link[dst[rows]])
        valid_entries = path >= 0
        counts = valid_entries.sum(axis=1)
        indptr = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
        links = path[valid_entries]
        return Routes(indptr, links, np.ones(len(links)), reach)

    def levels(self, src: np.ndarray, dst: np.ndarray) -> np.ndarray:
        """Least tier joining endpoints ``src`` and ``dst``: 1 same leaf, 2 via a spine,
        3 via a core; 0 when the pair is cut off or the same endpoint."""
        src, dst = np.asarray(src, np.int64), np.asarray(dst, np.int64)
        la, lb = self.ep_leaf[src], self.ep_leaf[dst]
        ok = (la >= 0) & (lb >= 0) & (src != dst)
        level = np.zeros(len(src), np.int64)
        if ok.any():
            level[ok] = self._level(la[ok], lb[ok])
        return level

    def _spray(self, src: np.ndarray, dst: np.ndarray) -> Routes:
        """Even split at every hop over the next hops of least tier (fractional weights),
        computed once per (source leaf, destination leaf) pair."""
        level = self.levels(src, dst)
        reach = level > 0
        la, lb = self.ep_leaf[src], self.ep_leaf[dst]
        pair = np.where(reach, la * (self.ep_leaf.max() + 2) + lb, -1)
        uniq, first, pidx = np.unique(pair, return_index=True, return_inverse=True)
        mids_l, mids_w = [], []
        for u, f in zip(uniq.tolist(), first.tolist(), strict=True):
            if u < 0:
                mids_l.append(np.zeros(0, np.int64))
                mids_w.append(np.zeros(0))
                continue
            lk, w = self._spray_pair(int(la[f]), int(lb[f]), int(level[f]))
            mids_l.append(lk)
            mids_w.append(w)
        mid_len = np.array([len(x) for x in mids_l], np.int64)
        mid_ptr = np.concatenate([[0], np.cumsum(mid_len)])
        mid_links = np.concatenate(mids_l) if mids_l else np.zeros(0, np.int64)
        mid_w = np.concatenate(mids_w) if mids_w else np.zeros(0)
        # Flow f: its endpoint up link, its pair's middle, its endpoint down link.
        m = mid_len[pidx]
        counts = np.where(reach, m + 2, 0)
        indptr = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
        total = int(indptr[-1])
        links = np.zeros(total, np.int64)
        weights = np.ones(total)
        rows = np.flatnonzero(reach)
        starts = indptr[rows]
        links[starts] = self.ep_link[src[rows]]
        links[starts + counts[rows] - 1] = self.down_id(self.ep_link[dst[rows]])
        # Middle entries, gathered in one pass (each row's offset: the sum of the rows before
        # it; no rows, no offsets).
        mm = m[rows]
        pos = np.repeat(starts + 1, mm) + (
            np.arange(int(mm.sum())) - np.repeat(np.concatenate([[0], np.cumsum(mm)])[:-1], mm)
        )
        src_pos = np.repeat(mid_ptr[pidx[rows]], mm) + (pos - np.repeat(starts + 1, mm))
        links[pos] = mid_links[src_pos]
        weights[pos] = mid_w[src_pos]
        return Routes(indptr, links, weights, reach)

    def _spray_pair(self, a: int, b: int, level: int) -> tuple[np.ndarray, np.ndarray]:
        if level == 1:
            return np.zeros(0, np.int64), np.zeros(0)
        goal = self.leaf_index[b]
        kinds = ("up2", "dnl") if level == 2 else ("up3", "upc", "dns", "dnl")
        nodes, share = np.array([a]), np.array([1.0])
        got_l, got_w = [], []
        for kind in kinds:
            nxt, cab, valid = self._candidates(nodes, np.full(len(nodes), goal), kind)
            k = valid.sum(axis=1)
            w = np.where(valid, (share / np.maximum(k, 1))[:, None], 0.0)
            ids = cab + (0 if kind.startswith("up") else self.num_links)
            got_l.append(ids[valid])
            got_w.append(w[valid])
            # Next frontier: each reached node with the share that arrives there.
            uniq, inv = np.unique(nxt[valid], return_inverse=True)
            nodes, share = uniq, np.bincount(inv, weights=w[valid])
        lk = np.concatenate(got_l)
        uniq_l, inv_l = np.unique(lk, return_inverse=True)
        return uniq_l, np.bincount(inv_l, weights=np.concatenate(got_w))


def _combine(parts: list[Routes], scale: float) -> Routes:
    """Flow-wise union of several route sets (one per plane), weights scaled."""
    n = len(parts[0].indptr) - 1
    rows_l, rows_w = [], []
    for f in range(n):
        rows_l.append(np.concatenate([r.links[r.indptr[f] : r.indptr[f + 1]] for r in parts]))
        rows_w.append(np.concatenate([r.weights[r.indptr[f] : r.indptr[f + 1]] for r in parts]))
    counts = np.array([len(x) for x in rows_l], np.int64)
    reach = np.logical_and.reduce([r.reachable for r in parts])
    for f in np.flatnonzero(~reach).tolist():
        rows_l[f], rows_w[f] = np.zeros(0, np.int64), np.zeros(0)
        counts[f] = 0
    indptr = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
    return Routes(indptr, np.concatenate(rows_l).astype(np.int64),
                  np.concatenate(rows_w) * scale, reach)  # fmt: skip


_M1, _M2 = np.uint64(0xBF58476D1CE4E5B9), np.uint64(0x94D049BB133111EB)


def _mix(x: np.ndarray) -> np.ndarray:
    """splitmix64's finalizer: a well-mixed 64-bit hash (Steele et al., OOPSLA 2014)."""
    with np.errstate(over="ignore"):
        x = (x ^ (x >> np.uint64(30))) * _M1
        x = (x ^ (x >> np.uint64(27))) * _M2
        out: np.ndarray = x ^ (x >> np.uint64(31))
        return out


def _hash(src: np.ndarray, dst: np.ndarray, key: np.ndarray, node: np.ndarray | np.int64,
          seed: int) -> np.ndarray:  # fmt: skip
    """Per-switch salted hash of a flow's (source, destination, queue pair/channel)."""
    with np.errstate(over="ignore"):
        h = _mix(np.asarray(src, np.uint64) * np.uint64(0x9E3779B97F4A7C15)
                 + np.asarray(dst, np.uint64))  # fmt: skip
        h = _mix(h ^ np.asarray(key, np.int64).astype(np.uint64))
        salt = _mix(np.asarray(node, np.int64).astype(np.uint64) + np.uint64(seed & 0xFFFFFFFF)
                    * np.uint64(0x9E3779B97F4A7C15))  # fmt: skip
        return _mix(h ^ salt)


def _kth_valid(valid: np.ndarray, h: np.ndarray) -> np.ndarray:
    """Column of the (h mod count)-th True of each row (-1 where a row has none)."""
    count = valid.sum(axis=1)
    k = np.where(count > 0, (h % np.maximum(count, 1).astype(np.uint64)).astype(np.int64), -1)
    rank = np.cumsum(valid, axis=1) - 1
    hit = valid & (rank == k[:, None])
    return np.where(count > 0, hit.argmax(axis=1), -1)


def _least_loaded(ids: np.ndarray, valid: np.ndarray, loads: np.ndarray) -> np.ndarray:
    """Flows in order, each taking its valid next hop of least load (ties: first)."""
    pick = np.full(len(ids), -1, np.int64)
    for f in range(len(ids)):
        cols = np.flatnonzero(valid[f])
        if len(cols) == 0:
            continue
        c = cols[np.argmin(loads[ids[f, cols]])]
        pick[f] = c
        loads[ids[f, c]] += 1.0
    return pick
