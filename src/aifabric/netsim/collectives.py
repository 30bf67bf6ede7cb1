"""Collectives and traffic patterns as flows on a planned fabric, run on the flow engine.

A collective algorithm is a sequence of steps; each step is a set of flows between GPUs,
all starting together, and the step ends when its last flow arrives (NCCL's steps are
synchronised by the ring/tree data dependencies). Steps with the same flow pattern are
solved once: a ring's 2(n-1) steps are one pattern, so a 16,384-GPU all-reduce costs one
solve of one step, not 32,766. Never per packet or per chunk.

Schedules (NCCL's, as in ``src/graph/rings.cc``, ``trees.cc`` and the device kernels):

- ``ring`` (all_reduce: 2(n-1) steps of S/n per rank; all_gather, reduce_scatter: n-1
  steps; broadcast: pipelined along the ring, modeled as n-1 steps of S/(n-1) chunks -
  the pipeline's steady state): C channels, each its own ring. NCCL keeps inter-node hops
  rail-aligned (``NCCL_CROSS_NIC=0``): a channel enters a node through one NIC and leaves
  through another, and consecutive nodes alternate so that every hop joins two NICs of the
  same index; channel c uses the c-th pair of the node's GPUs. Inside a node (a scale-up
  domain) hops go over NVLink.
- ``tree`` (all_reduce): NCCL's double binary tree across domains with a chain inside
  each, pipelined (see tree_steps); ``hierarchical`` (all_reduce): inside, across, inside
  (see hierarchical_steps).
- ``halving_doubling`` (Rabenseifner: reduce-scatter by recursive halving, all-gather by
  recursive doubling; log2 n steps each, partner at distance 2^i, sizes S/2 ... S/n);
  powers of two only here.
- ``direct`` (all_to_all: every rank sends S/n to each other rank at once - NCCL's
  all-to-all is one grouped send/recv round; send_recv: one S message per pair).

GPUs: scale-up traffic uses each GPU's NVLink egress and ingress (capacity: the GPU's
scale-up bandwidth per direction); scale-out traffic leaves through the GPU's NIC and is
routed on the fabric by :mod:`aifabric.fabric.routing`.

The reference (``analytic_time``) is the schedule's alpha-beta time on the same link
speeds, computed without routing: per step, the path latency plus the bandwidth term of the
busiest GPU NVLink or NIC, or of a fabric layer as a whole (its bytes over its capacity).
No routing beats it; ideal spraying on a non-blocking fabric reaches it.
"""

from __future__ import annotations

import itertools
import math
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from aifabric.errors import ConfigError
from aifabric.fabric.routing import Router
from aifabric.netsim.fairshare import run_batch
from aifabric.traffic.collectives import bus_factor

SIMULATED = {
    "all_reduce": ("ring", "tree", "hierarchical", "halving_doubling"),
    "all_gather": ("ring",),
    "reduce_scatter": ("ring",),
    "broadcast": ("ring",),
    "all_to_all": ("direct",),
    "send_recv": ("direct",),
}
PATTERNS = ("permutation", "incast", "all_to_all", "uniform")
LAYERS = ("scale_up", "endpoint_leaf", "leaf_spine", "spine_core")


@dataclass(slots=True)
class Step:
    """A set of flows between GPUs that start together; ``repeat`` identical steps."""

    src: np.ndarray
    dst: np.ndarray
    size: np.ndarray
    repeat: int = 1
    key: np.ndarray | None = None
    hops: int = 1  # hops in sequence (a pipeline's depth): latency counts this many times


@dataclass(slots=True)
class NetworkModel:
    """A fabric's directed links plus each GPU's NVLink egress and ingress."""

    router: Router
    gpus: int
    domain: int
    scaleup_bandwidth: float
    switch_latency: float = 0.0
    max_entries: float = math.inf  # guard on a sprayed step's (flow, link) entries
    capacity: np.ndarray = field(init=False)
    layer: np.ndarray = field(init=False)
    latency: np.ndarray = field(init=False)

    def __post_init__(self) -> None:
        r = self.router
        nvl = np.full(2 * self.gpus, self.scaleup_bandwidth)
        self.capacity = np.concatenate([r.capacity, nvl])
        self.layer = np.concatenate([r.layer, np.zeros(2 * self.gpus, np.int64)])
        self.latency = np.concatenate([r.latency, np.zeros(2 * self.gpus)])

    def _check_spray(self, src_ep: np.ndarray, dst_ep: np.ndarray) -> None:
        """Refuse a sprayed step whose link entries would take minutes and gigabytes: a
        flow via the spines spreads over the leaf's u uplinks (2 + 2u entries), via the
        cores also over each spine's uplinks (about 2 + 2u + 2u u2)."""
        from aifabric.guards import check_work

        r = self.router
        level = r.levels(src_ep, dst_ep)
        ups = (r.up_node >= 0).sum(axis=1)
        tier = r.node_tier
        u = float(ups[tier == 1].max(initial=0))
        u2 = float(ups[(tier == 2)].max(initial=0)) if (tier == 3).any() else 0.0
        per = {1: 2.0, 2: 2 + 2 * u, 3: 2 + 2 * u + 2 * u * u2}
        entries = sum(float((level == lv).sum()) * per[lv] for lv in (1, 2, 3))
        check_work("simulate collective --routing spray", entries, self.max_entries,
                   "link entries", basis=f"{len(src_ep):,} sprayed flows over up to "
                   f"{per[3 if u2 else 2]:,.0f} links each")  # fmt: skip

    @property
    def fabric_links(self) -> int:
        return len(self.router.capacity)

    def paths(self, step: Step, mode: str, seed: int, qps: int = 1) -> tuple[
        np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:  # fmt: skip
        """(indptr, links, weights, sizes, flow origin) of the step's flows; ``ecmp_qp``
        splits each scale-out flow into ``qps`` queue pairs of size/qps."""
        src, dst, size = step.src, step.dst, step.size
        key = np.zeros(len(src), np.int64) if step.key is None else step.key
        local = (src // self.domain) == (dst // self.domain)
        origin = np.arange(len(src))
        out = np.flatnonzero(~local & (src != dst))
        if mode == "ecmp_qp" and qps > 1:
            out_rep = np.repeat(out, qps)
            qkey = key[out_rep] * qps + np.tile(np.arange(qps), len(out))
            out_size = size[out_rep] / qps
        else:
            out_rep, qkey, out_size = out, key[out], size[out]
        r = self.router
        src_ep, dst_ep = r.endpoints_of_gpus(src[out_rep]), r.endpoints_of_gpus(dst[out_rep])
        if mode == "spray" and math.isfinite(self.max_entries):
            self._check_spray(src_ep, dst_ep)
        routes = r.route(src_ep, dst_ep, mode, seed=seed, key=qkey)
        if not routes.reachable.all():
            cut = int((~routes.reachable).sum())
            raise ConfigError(
                f"{cut} flow(s) have their endpoints cut off by the failures; "
                "fail fewer links or switches"
            )
        loc = np.flatnonzero(local & (src != dst))
        g = self.gpus
        f0 = self.fabric_links
        loc_links = np.stack([f0 + src[loc], f0 + g + dst[loc]], axis=1).ravel()
        n_out, n_loc = len(out_rep), len(loc)
        indptr = np.concatenate([routes.indptr, routes.indptr[-1] + 2 * np.arange(1, n_loc + 1)])
        links = np.concatenate([routes.links, loc_links]).astype(np.int64)
        weights = np.concatenate([routes.weights, np.ones(2 * n_loc)])
        sizes = np.concatenate([out_size, size[loc]])
        origin_all = np.concatenate([origin[out_rep], origin[loc]])
        assert len(indptr) == n_out + n_loc + 1
        return indptr, links, weights, sizes, origin_all


@dataclass(slots=True)
class StepResult:
    time: float
    analytic: float
    link_bytes: np.ndarray
    flows: int
    events: int
    flow_time: np.ndarray
    flow_size: np.ndarray
    link_flows: np.ndarray  # flows crossing each link (a sprayed flow counts on every path)


def run_step(net: NetworkModel, step: Step, mode: str, seed: int, qps: int) -> StepResult:
    """Simulate one step (its flows from 0 to the last arrival) and its reference time."""
    indptr, links, weights, sizes, origin = net.paths(step, mode, seed, qps)
    finish, link_bytes, events = run_batch(indptr, links, weights, sizes, net.capacity)
    counts = np.diff(indptr)
    owner = np.repeat(np.arange(len(sizes)), counts)
    # A sprayed flow's weights on each layer sum to 1, so these are its mean path's.
    lat = np.bincount(owner, weights=weights * net.latency[links], minlength=len(sizes))
    hops = np.bincount(owner, weights=weights * (links < net.fabric_links),
                       minlength=len(sizes))  # fmt: skip
    switches = np.maximum(hops - 1, 0) * net.switch_latency
    # Per message: the last of its queue pairs to arrive.
    arrive = np.zeros(len(step.src))
    np.maximum.at(arrive, origin, finish + lat + switches)
    alpha = float((lat + switches).max()) if len(lat) else 0.0
    if step.hops > 1:  # a pipeline fills through its depth before the bandwidth term
        arrive += (step.hops - 1) * alpha
        alpha *= step.hops
    analytic = alpha + _alpha_beta_bound(net, step)
    link_flows = np.bincount(links, minlength=len(net.capacity))
    return StepResult(float(arrive.max()) if len(arrive) else 0.0, analytic, link_bytes,
                      len(sizes), events, arrive, step.size, link_flows)  # fmt: skip


def _alpha_beta_bound(net: NetworkModel, step: Step) -> float:
    """The bandwidth term of the step's alpha-beta time on the same link speeds, without
    routing: the busiest GPU's NVLink or NIC (bytes sent or received over its capacity),
    or a fabric layer's total bytes over its total capacity (each flow crosses a layer
    once up and once down when its endpoints' least common tier lies above it)."""
    src, dst, size = step.src, step.dst, step.size
    g = net.gpus
    local = (src // net.domain) == (dst // net.domain)
    diff = src != dst
    r = net.router
    loc, out = local & diff, ~local & diff
    terms = [0.0]
    for sel, cap in ((loc, net.scaleup_bandwidth), (out, None)):
        if not sel.any():
            continue
        for ends in (src[sel], dst[sel]):
            per = np.bincount(ends, weights=size[sel], minlength=g)
            if cap is None:  # a GPU's NIC: its port rate summed over planes
                ep = r.endpoints_of_gpus(np.arange(g))
                caps = sum(r.capacity[r.ep_link[ep + q]] for q in range(r.topo.planes))
                with np.errstate(divide="ignore", invalid="ignore"):
                    terms.append(float(np.nanmax(np.where(per > 0, per / caps, 0.0))))
            else:
                terms.append(float(per.max() / cap))
    if out.any():
        level = r.levels(r.endpoints_of_gpus(src[out]), r.endpoints_of_gpus(dst[out]))
        for code in (2, 3):  # leaf_spine, spine_core: crossed when the level reaches them
            nbytes = float(size[out][level >= code].sum())
            cap = float(r.capacity[: r.num_links][r.layer[: r.num_links] == code].sum())
            if nbytes and cap > 0:
                terms.append(nbytes / cap)  # per direction: up and down carry it alike
    return max(terms)


# --- schedules ---------------------------------------------------------------------------


def ring_steps(op: str, ranks: np.ndarray, size: float, domain: int,
               channels: int) -> list[Step]:  # fmt: skip
    """The ring schedule's distinct step (with its repeat count) for ``ranks`` (GPU ids)."""
    n = len(ranks)
    if op == "all_reduce":
        repeat, chunk = 2 * (n - 1), size / n
    elif op in ("all_gather", "reduce_scatter"):
        repeat, chunk = n - 1, size / n
    else:  # broadcast, pipelined
        repeat, chunk = n - 1, size / max(n - 1, 1)
    src, dst, key = _ring_edges(ranks, domain, channels)
    return [Step(src, dst, np.full(len(src), chunk / channels), repeat, key)]


def _ring_edges(ranks: np.ndarray, domain: int, channels: int) -> tuple[
    np.ndarray, np.ndarray, np.ndarray]:  # fmt: skip
    """Edges (src, dst, channel) of C rings over ``ranks``, rail-aligned across domains."""
    nodes: dict[int, list[int]] = {}
    for g in ranks.tolist():
        nodes.setdefault(g // domain, []).append(g)
    groups = list(nodes.values())
    srcs, dsts, keys = [], [], []
    for c in range(channels):
        order: list[int] = []
        for i, gs in enumerate(groups):
            k = len(gs)
            a, b = gs[c % k], gs[(c + 1) % k]
            enter, leave = (a, b) if i % 2 == 0 else (b, a)
            rest = [g for g in gs if g not in (enter, leave)]
            order += [enter, *rest] + ([leave] if leave != enter else [])
        seq = np.array(order, np.int64)
        srcs.append(seq)
        dsts.append(np.roll(seq, -1))
        keys.append(np.full(len(seq), c, np.int64))
    return np.concatenate(srcs), np.concatenate(dsts), np.concatenate(keys)


def _by_domain(ranks: np.ndarray, domain: int) -> list[list[int]]:
    groups: dict[int, list[int]] = {}
    for g in ranks.tolist():
        groups.setdefault(g // domain, []).append(g)
    return list(groups.values())


def hierarchical_steps(ranks: np.ndarray, size: float, domain: int) -> list[Step]:
    """All-reduce inside each scale-up domain, across, inside again (collectives.py's
    ``hierarchical``): ring reduce-scatter over the m GPUs of each domain (m-1 steps of
    S/m), a ring all-reduce of each shard across the k domains among the GPUs of one local
    index (2(k-1) steps of S/(mk), rail-aligned), a ring all-gather inside (m-1 steps)."""
    groups = _by_domain(ranks, domain)
    m, k = len(groups[0]), len(groups)
    if any(len(g) != m for g in groups):
        raise ConfigError("hierarchical needs the same number of the group's GPUs per domain")
    steps: list[Step] = []
    if m > 1:
        src = np.array([g for gs in groups for g in gs], np.int64)
        dst = np.array([gs[(i + 1) % m] for gs in groups for i in range(m)], np.int64)
        inside = Step(src, dst, np.full(len(src), size / m), m - 1)
    if m > 1:
        steps.append(inside)
    if k > 1:
        cols = np.array(groups, np.int64)  # [k, m]
        src = cols.ravel()
        dst = np.roll(cols, -1, axis=0).ravel()
        steps.append(Step(src, dst, np.full(len(src), size / (m * k)), 2 * (k - 1)))
    if m > 1:
        steps.append(inside)
    return steps


def tree_steps(ranks: np.ndarray, size: float, domain: int, channels: int = 1) -> list[Step]:
    """NCCL's tree all-reduce, pipelined (src/graph/trees.cc): a chain through the GPUs of
    each domain and a double binary tree across domains (the second tree the mirror of the
    first, so a node that is a leaf in one is inner in the other), each tree taking half
    the buffer. In the pipeline's steady state every edge carries its tree's S/2 up
    (reduce) and S/2 down (broadcast) at once; the chain's edges serve both trees (S each
    way). C channels each take S/C, with the domain's c-th GPU as the tree's end of the
    chain (NCCL spreads channels over the NICs). One concurrent step, plus the pipeline's
    depth in latency."""
    groups = _by_domain(ranks, domain)
    k = len(groups)
    src_l: list[int] = []
    dst_l: list[int] = []
    size_l: list[float] = []
    key_l: list[int] = []
    s = size / channels
    for c in range(channels):
        chains = [gs[c % len(gs) :] + gs[: c % len(gs)] for gs in groups]
        for gs in chains:  # chain, both trees' halves: S/C up and S/C down per edge
            for a, b in itertools.pairwise(gs):
                src_l += [b, a]
                dst_l += [a, b]
                size_l += [s, s]
                key_l += [c, c]
        leaders = [gs[0] for gs in chains]
        for mirror in (False, True):
            for i in range(1, k):
                parent = (i - 1) // 2
                a, b = (k - 1 - i, k - 1 - parent) if mirror else (i, parent)
                src_l += [leaders[a], leaders[b]]
                dst_l += [leaders[b], leaders[a]]
                size_l += [s / 2, s / 2]
                key_l += [2 * c + mirror, 2 * c + mirror]
    m = len(groups[0])
    depth = (m - 1) + (max(1, math.ceil(math.log2(k))) if k > 1 else 0)
    return [Step(np.array(src_l, np.int64), np.array(dst_l, np.int64), np.array(size_l),
                 key=np.array(key_l, np.int64), hops=max(1, 2 * depth))]  # fmt: skip


def halving_doubling_steps(ranks: np.ndarray, size: float) -> list[Step]:
    n = len(ranks)
    if n & (n - 1):
        raise ConfigError(f"halving_doubling is simulated for powers of two ranks, not {n}")
    steps: list[Step] = []
    idx = np.arange(n)
    rounds = int(math.log2(n))
    for i in range(rounds):  # reduce-scatter: distance 2^i, S/2^(i+1)
        partner = idx ^ (1 << i)
        steps.append(Step(ranks[idx], ranks[partner], np.full(n, size / 2 ** (i + 1))))
    for i in reversed(range(rounds)):  # all-gather mirrors it
        partner = idx ^ (1 << i)
        steps.append(Step(ranks[idx], ranks[partner], np.full(n, size / 2 ** (i + 1))))
    return steps


def direct_steps(op: str, ranks: np.ndarray, size: float) -> list[Step]:
    n = len(ranks)
    if op == "send_recv":  # pairs (0,1), (2,3) ...: each sends S to its partner
        src = ranks[: n - n % 2]
        dst = src.reshape(-1, 2)[:, ::-1].ravel()
        return [Step(src, dst, np.full(len(src), size))]
    a, b = np.meshgrid(np.arange(n), np.arange(n), indexing="ij")
    off = a != b
    return [Step(ranks[a[off]], ranks[b[off]], np.full(int(off.sum()), size / n))]


def pattern_step(name: str, ranks: np.ndarray, size: float, leaf_of: np.ndarray,
                 domain_of: np.ndarray, rng: np.random.Generator) -> Step:  # fmt: skip
    """A synthetic pattern over GPUs ``ranks``: one message of ``size`` per flow.
    ``permutation`` pairs GPUs on different leaves and scale-up domains, so every flow
    crosses the fabric; the others may pair GPUs of one domain (NVLink)."""
    n = len(ranks)
    if name == "permutation":  # random one-to-one between hosts on different leaves
        dst = _cross_leaf_derangement(ranks, leaf_of, domain_of, rng)
        return Step(ranks, dst, np.full(n, size))
    if name == "incast":  # everyone to one
        target = ranks[int(rng.integers(n))]
        src = ranks[ranks != target]
        return Step(src, np.full(len(src), target), np.full(len(src), size))
    if name == "uniform":  # each to a random other
        pick = rng.integers(n - 1, size=n)
        dst = ranks[np.where(pick >= np.arange(n), pick + 1, pick)]
        return Step(ranks, dst, np.full(n, size))
    a, b = np.meshgrid(np.arange(n), np.arange(n), indexing="ij")
    off = a != b
    return Step(ranks[a[off]], ranks[b[off]], np.full(int(off.sum()), size))


def _cross_leaf_derangement(ranks: np.ndarray, leaf_of: np.ndarray, domain_of: np.ndarray,
                            rng: np.random.Generator) -> np.ndarray:  # fmt: skip
    """A random permutation sending no GPU to its own leaf or domain (swaps fix clashes)."""
    n = len(ranks)
    perm = rng.permutation(n)
    leaf, dom = leaf_of[ranks], domain_of[ranks]

    def clash(i: np.ndarray | int, j: np.ndarray | int) -> Any:
        return (leaf[perm[j]] == leaf[i]) | (dom[perm[j]] == dom[i])

    for _ in range(50):
        bad = np.flatnonzero(clash(np.arange(n), np.arange(n)))
        if len(bad) == 0:
            break
        other = rng.integers(n, size=len(bad))
        for i, j in zip(bad.tolist(), other.tolist(), strict=True):
            perm[i], perm[j] = perm[j], perm[i]
            if clash(i, i) or clash(j, j):
                perm[i], perm[j] = perm[j], perm[i]
    if np.any(clash(np.arange(n), np.arange(n))):
        raise ConfigError("no permutation across leaves and servers for this group")
    return ranks[perm]


# --- one run -----------------------------------------------------------------------------


@dataclass(slots=True)
class CollectiveRun:
    """What simulating one size gives."""

    size: float
    time: float
    analytic: float
    link_bytes: np.ndarray
    flows: int
    events: int
    throughput_fraction: np.ndarray | None
    wall: dict[str, float]
    link_flows: np.ndarray  # the most flows any step put on each link


def simulate(net: NetworkModel, op: str, ranks: np.ndarray, size: float, *, algorithm: str,
             mode: str, seed: int, qps: int = 1, channels: int = 1,
             line_rate: float = 1.0) -> CollectiveRun:  # fmt: skip
    """Simulate ``op`` (a collective or a pattern) of ``size`` bytes over GPUs ``ranks``."""
    t0 = time.perf_counter()
    if op in PATTERNS:
        rng = np.random.default_rng(seed)
        leaf_of = _gpu_leaf(net)
        domain_of = np.arange(net.gpus) // net.domain
        steps = [pattern_step(op, ranks, size, leaf_of, domain_of, rng)]
    elif algorithm == "ring":
        steps = ring_steps(op, ranks, size, net.domain, channels)
    elif algorithm == "halving_doubling":
        steps = halving_doubling_steps(ranks, size)
    elif algorithm == "hierarchical":
        steps = hierarchical_steps(ranks, size, net.domain)
    elif algorithm == "tree":
        steps = tree_steps(ranks, size, net.domain, channels)
    else:
        steps = direct_steps(op, ranks, size)
    t1 = time.perf_counter()
    total = analytic = 0.0
    link_bytes = np.zeros(len(net.capacity))
    flows = events = 0
    frac = None
    link_flows = np.zeros(len(net.capacity), np.int64)
    for step in steps:
        res = run_step(net, step, mode, seed, qps)
        total += res.time * step.repeat
        analytic += res.analytic * step.repeat
        link_bytes += res.link_bytes * step.repeat
        flows += res.flows
        events += res.events
        link_flows = np.maximum(link_flows, res.link_flows)
        if op in PATTERNS:
            net_flow = res.flow_time > 0
            frac = res.flow_size[net_flow] / res.flow_time[net_flow] / line_rate
    t2 = time.perf_counter()
    return CollectiveRun(size, total, analytic, link_bytes, flows, events, frac,
                         {"build_s": t1 - t0, "simulate_s": t2 - t1}, link_flows)  # fmt: skip


def _gpu_leaf(net: NetworkModel) -> np.ndarray:
    r = net.router
    out: np.ndarray = r.ep_leaf[r.endpoints_of_gpus(np.arange(net.gpus))]
    return out


def summarize(net: NetworkModel, run: CollectiveRun, op: str, n: int,
              switch_names: list[str]) -> dict[str, object]:  # fmt: skip
    """The JSON result of one size (base units)."""
    t = run.time
    bf = bus_factor(op, n) if op not in PATTERNS else 1.0
    util = np.zeros(len(net.capacity))
    ok = (net.capacity > 0) & (t > 0)
    util[ok] = run.link_bytes[ok] / (net.capacity[ok] * t)
    tiers = {}
    for code, layer in enumerate(LAYERS):
        sel = (net.layer == code) & (net.capacity > 0)
        if sel.any():
            tiers[layer] = {"mean_utilization": float(util[sel].mean()),
                            "max_utilization": float(util[sel].max())}  # fmt: skip
    hot = np.argsort(-util, kind="stable")[:10]
    result: dict[str, object] = {
        "size_bytes": run.size,
        "time_s": t,
        "algbw_bytes_per_s": run.size / t if t > 0 else None,
        "busbw_bytes_per_s": run.size / t * bf if t > 0 else None,
        "analytic_time_s": run.analytic,
        "efficiency_ratio": run.analytic / t if t > 0 else None,
        "tiers": tiers,
        "hot_links": [{"link": link_name(net, switch_names, i), "layer": LAYERS[int(net.layer[i])],
                       "utilization": float(util[i]),
                       "bytes": float(run.link_bytes[i]),
                       "flows": int(run.link_flows[i])} for i in hot.tolist() if util[i] > 0],
        "max_flows_per_link": int(run.link_flows.max(initial=0)),
        "flows": run.flows,
        "events": run.events,
    }  # fmt: skip
    if run.throughput_fraction is not None and len(run.throughput_fraction):
        result["mean_flow_throughput_ratio"] = float(run.throughput_fraction.mean())
        result["min_flow_throughput_ratio"] = float(run.throughput_fraction.min())
    return result


def link_name(net: NetworkModel, switch_names: list[str], i: int) -> str:
    """``leaf3->spine5`` (up) / ``spine5->leaf3`` (down), ``nic17->leaf2``, ``gpu4.nvlink_out``."""
    topo = net.router.topo
    e, n_links = topo.num_endpoints, len(topo.link_src)

    def node(x: int) -> str:
        return f"nic{x}" if x < e else switch_names[x - e]

    if i < 2 * n_links:
        lo, hi = int(topo.link_src[i % n_links]), int(topo.link_dst[i % n_links])
        return f"{node(lo)}->{node(hi)}" if i < n_links else f"{node(hi)}->{node(lo)}"
    g = i - 2 * n_links
    return f"gpu{g}.nvlink_out" if g < net.gpus else f"gpu{g - net.gpus}.nvlink_in"
