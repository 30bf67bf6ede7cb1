"""Max-min fair rates of flows over capacitated, weighted links: the solvers every flow
simulator calls (the flow engine, the collectives' batch runs, the traffic-class policies).

Progressive filling (Bertsekas & Gallager, *Data Networks*, 6.5.2) with weighted link use:
the rates of the unfrozen flows rise together by the largest step that keeps every link
within capacity; links that reach capacity (within ``EPS``) freeze their flows. Three
forms of the one mechanism:

- :func:`max_min_rates`: vectorised over CSR link lists (NumPy ``bincount``), one round per
  distinct bottleneck level, with an optional warm start;
- :func:`fill_small`: the same filling in plain Python for components of a few dozen link
  entries, where NumPy's per-call overhead dominates (the serving case);
- :func:`run_batch`: flows that all start together (one collective step), advanced from
  finish to finish with warm-started re-solves.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

__all__ = ["BIG", "EPS", "SMALL", "fill_small", "max_min_rates", "run_batch"]

EPS = 1e-9  # relative tolerance: a link within EPS of its capacity is saturated


def max_min_rates(
    indptr: np.ndarray,
    links: np.ndarray,
    weights: np.ndarray | None,
    capacity: np.ndarray,
    *,
    start: float = 0.0,
) -> np.ndarray:
    """Max-min fair rate (bytes/s) of each flow; flow f uses ``links[indptr[f]:indptr[f+1]]``
    with ``weights`` (None: all 1). Links of infinite capacity do not constrain; a flow on
    no finite link gets inf.

    Progressive filling: every unfrozen flow's rate rises by the largest common step that
    keeps every link within capacity; links that reach capacity freeze their flows.
    ``start``: every flow is known to get at least this rate and ``capacity`` is what is
    left once the flows are at it (a warm start; see run_batch).
    """
    n = len(indptr) - 1
    rates = np.zeros(n)
    if n == 0:
        return rates
    counts = np.diff(indptr)
    owner = np.repeat(np.arange(n), counts)
    w = np.ones(len(links)) if weights is None else np.asarray(weights, float)
    cap = capacity[links]
    finite = np.isfinite(cap) & (w > 0)
    owner, lk, w = owner[finite], links[finite], w[finite]
    # Compress to the links in use.
    used, inv = np.unique(lk, return_inverse=True)
    left = np.maximum(capacity[used].astype(float), 0.0)
    scale = np.maximum(left, 1.0)
    frozen = np.zeros(n, bool)
    frozen[np.bincount(owner, minlength=n) == 0] = True  # no finite link: unconstrained
    rates[frozen] = math.inf
    level = start  # the common rate of every unfrozen flow
    # Incremental: the load of unfrozen flows on each link is kept up to date by
    # subtracting the entries of the flows that freeze (their use is already in ``left``),
    # so a round costs the links in use plus the entries it touches, not all entries.
    load = np.bincount(inv, weights=w, minlength=len(used))
    users = np.bincount(inv, minlength=len(used))  # unfrozen flows on each link
    fptr = np.concatenate([[0], np.cumsum(np.bincount(owner, minlength=n))])
    by_link = np.argsort(inv, kind="stable")
    lptr = np.concatenate([[0], np.cumsum(users)])
    idx = np.flatnonzero(users > 0)
    while len(idx):
        step = max(float(np.min(left[idx] / load[idx])), 0.0)
        level += step
        left[idx] -= step * load[idx]
        full = idx[left[idx] <= EPS * scale[idx]]
        left[full] = 0.0
        # Unfrozen flows on the saturated links freeze at this level.
        ent = by_link[_ranges(lptr[full], lptr[full + 1])]
        hit = np.unique(owner[ent])
        hit = hit[~frozen[hit]]
        rates[hit] = level
        frozen[hit] = True
        gone = _ranges(fptr[hit], fptr[hit + 1])
        load -= np.bincount(inv[gone], weights=w[gone], minlength=len(used))
        users -= np.bincount(inv[gone], minlength=len(used))
        users[full] = 0
        idx = idx[users[idx] > 0]
    return rates


def _ranges(starts: np.ndarray, ends: np.ndarray) -> np.ndarray:
    """Concatenated aranges [starts[i], ends[i]) (vectorised)."""
    lens = ends - starts
    total = int(lens.sum())
    if total == 0:
        return np.zeros(0, np.int64)
    offs = np.repeat(starts - np.concatenate([[0], np.cumsum(lens)[:-1]]), lens)
    out: np.ndarray = np.arange(total) + offs
    return out


def run_batch(
    indptr: np.ndarray,
    links: np.ndarray,
    weights: np.ndarray | None,
    sizes: np.ndarray,
    capacity: np.ndarray,
) -> tuple[np.ndarray, np.ndarray, int]:
    """Flows that all start at time 0 (one step of a collective, one pattern): their finish
    times, the bytes that crossed each link, and the events (rate changes) it took.

    Fully vectorised: each event re-solves the flows still active (they all started
    together, so they form one batch) and advances to the next finish. A flow with no links
    finishes at 0; one whose links are all unconstrained is an error.
    """
    n = len(indptr) - 1
    finish = np.zeros(n)
    link_bytes = np.zeros(len(capacity))
    if n == 0:
        return finish, link_bytes, 0
    counts = np.diff(indptr)
    size = np.asarray(sizes, float)
    left = size.copy()
    active = (left > 0) & (counts > 0)  # a flow on no link (same endpoint) takes no time
    # The entries (flow, link, weight) of active flows, kept compact as flows finish.
    e_owner = np.repeat(np.arange(n), counts)
    e_link = np.asarray(links, np.int64)
    e_w = np.ones(len(e_link)) if weights is None else np.asarray(weights, float)
    keep = active[e_owner]
    e_owner, e_link, e_w = e_owner[keep], e_link[keep], e_w[keep]
    t, events = 0.0, 0
    prev = np.zeros(n)  # each flow's rate in the last solve
    moved_all = np.zeros(n)
    floor = -1.0  # the least rate among the flows that just finished (none yet)
    idx = np.flatnonzero(active)
    while len(idx):
        events += 1
        if floor > 0:
            # Warm start: flows below the least rate that left keep their rates (filling
            # below that level is unchanged: every link a departed flow crossed saturated
            # at or above it); the others restart from it on the capacity left.
            r_e = prev[e_owner]
            cap_left = capacity - np.bincount(e_link, weights=e_w * np.minimum(r_e, floor),
                                              minlength=len(capacity))  # fmt: skip
            cut = floor * (1 - 1e-12)
            moving = idx[prev[idx] >= cut]
            sel = r_e >= cut
            mptr = np.concatenate([[0], np.cumsum(counts[moving])])
            prev[moving] = max_min_rates(mptr, e_link[sel], e_w[sel], cap_left, start=floor)
        else:
            sub_ptr = np.concatenate([[0], np.cumsum(counts[idx])])
            prev[idx] = max_min_rates(sub_ptr, e_link, e_w, capacity)
        rate = prev[idx]
        if np.isinf(rate).any():
            raise ValueError("a flow crosses no finite link: give every path a capacity")
        with np.errstate(divide="ignore"):
            eta = np.where(rate > 0, left[idx] / rate, math.inf)
        dt = float(eta.min())
        if not math.isfinite(dt):
            raise RuntimeError("flows with zero rate can never finish")
        moved = np.minimum(rate * dt, left[idx])
        left[idx] -= moved
        t += dt
        finished = left[idx] <= EPS * np.maximum(size[idx], 1.0)
        finished[np.argmin(eta)] = True
        done = idx[finished]
        floor = float(prev[done].min())
        moved[finished] += left[done]  # rounding: the last crumbs cross too
        moved_all[idx] = moved
        link_bytes += np.bincount(e_link, weights=e_w * moved_all[e_owner],
                                  minlength=len(capacity))  # fmt: skip
        left[done] = 0.0
        finish[done] = t
        active[done] = False
        keep = active[e_owner]
        e_owner, e_link, e_w = e_owner[keep], e_link[keep], e_w[keep]
        idx = idx[~finished]
    return finish, link_bytes, events


SMALL = 64  # link entries up to which a component is solved in plain Python (fill_small)
BIG = 64  # route classes from which a component covering a quarter of them is solved whole


def fill_small(
    rows: Sequence[Sequence[int]], weights: Sequence[Sequence[float]], capacity: np.ndarray,
    caps: Sequence[Sequence[float]] | None = None,
) -> list[float]:  # fmt: skip
    """:func:`max_min_rates` in plain Python for small problems: the same progressive
    filling (rates rise by the least ``left / load`` of the loaded links; links within EPS
    of capacity freeze their flows), without NumPy's per-call overhead, which dominates when
    a component has a few dozen link entries. Loads are kept up to date as flows freeze
    instead of recomputed each round. ``rows[f]`` lists flow f's finite links, ``weights[f]``
    their (positive) weights; a flow on no link gets inf. ``caps[f]``, when given, lists
    ``capacity`` at flow f's links (read from Python lists, faster than NumPy scalars).

    One flow (the common serving case: a KV transfer alone on its NICs) fills in one
    round: its rate is the least capacity / weight of its links (weights of a link listed
    twice summed), the same number the rounds give (its level rises from 0 by that step)."""
    if len(rows) == 1:
        row, ws = rows[0], weights[0]
        if not row:
            return [math.inf]
        use: dict[int, float] = {}
        for ln, w in zip(row, ws, strict=True):
            use[ln] = use.get(ln, 0.0) + w  # a link listed twice carries both weights
        return [0.0 + min([float(capacity[ln]) / x for ln, x in use.items()])]
    if caps is None:
        caps = [capacity[row].tolist() for row in rows]
    # Links get local indices in order of first appearance, so lists replace dicts and
    # every loop below visits them in the order a dict keyed by link id would (the same
    # floating-point operations in the same order, so bit-identical rates).
    rates = [math.inf] * len(rows)
    index: dict[int, int] = {}
    left: list[float] = []
    load: list[float] = []  # of the unfrozen flows on each link
    count: list[int] = []  # unfrozen flows on each link
    users: list[list[int]] = []
    local: list[list[int]] = []  # each flow's links, as local indices
    alive = [False] * len(rows)
    n_live = 0
    for f, (row, ws, cs) in enumerate(zip(rows, weights, caps, strict=True)):
        if row:
            alive[f] = True
            n_live += 1
        mine: list[int] = []
        for ln, w, cap in zip(row, ws, cs, strict=True):
            i = index.get(ln, -1)
            if i < 0:
                i = index[ln] = len(load)
                load.append(w)
                count.append(1)
                users.append([f])
                left.append(cap)
            else:
                load[i] += w
                count[i] += 1
                users[i].append(f)
            mine.append(i)
        local.append(mine)
    scale = list(left)
    active = list(range(len(load)))  # links with unfrozen flows, in first-appearance order
    level = 0.0
    while n_live:
        step = min([left[i] / load[i] for i in active])
        level += step
        full: list[int] = []
        for i in active:
            rest = left[i] - step * load[i]
            if rest <= EPS * scale[i]:
                rest = 0.0
                full.append(i)
            left[i] = rest
        for i in full:
            for f in users[i]:
                if not alive[f]:
                    continue
                alive[f] = False
                n_live -= 1
                rates[f] = level
                for j, w in zip(local[f], weights[f], strict=True):
                    n = count[j] - 1
                    count[j] = n
                    if n:
                        load[j] -= w
        active = [i for i in active if count[i]]
    return rates
