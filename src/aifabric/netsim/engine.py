"""The flow engine every simulator shares: flows over capacitated links, max-min fair
rates, and an event loop from flow start to flow finish.

A flow moves ``size`` bytes over a set of links, each with a weight: the share of the
flow's rate that crosses it (1 for a single path; 1/k on each of k sprayed paths, summed
where paths share a link). Rates are max-min fair (Bertsekas & Gallager, *Data Networks*,
6.5.2) with weighted link use: rates rise together; a link saturates when the weighted sum
of its flows' rates reaches its capacity; its flows freeze; the rest go on rising. The
solve is progressive filling vectorised over the flows' link lists (NumPy ``bincount``), one
round per distinct bottleneck level, so a symmetric collective (every flow alike) solves in
one round whatever its size.

The event loop advances from one flow finish (or start) to the next. When flows start or
finish, only the flows connected to them through shared links (the connected component of
the flow-link graph) can change rate, so only that component is re-solved; flows elsewhere
keep their rates and finish times. This is what keeps many independent transfers (KV
flows of a serving cluster on separate NICs) at one cheap event each. Flows on the same
links with the same weights (a route class) get the same rate, so a component is solved
over its classes, and a small one (a few dozen link entries, the serving case) in plain
Python (``fill_small``), where NumPy's per-call overhead would dominate. Progress is kept
per class and the next finish of each class waits in a heap, so an event costs the size of
its component, not the number of flows in flight.

What the fluid model leaves out, by design: queueing delay, packet loss, PFC pauses and
congestion-control dynamics (a flow gets its fair share at once, not after DCQCN/Swift
converge). Latency is added per flow by the callers (per hop from the catalog).

Traffic classes: every flow carries one (a small int; 0 unless given). With no policy they
are labels only (one max-min pool; bytes counted per class). With a
:class:`aifabric.netsim.classes.ClassPolicy` (strict priority or weighted fair sharing,
the same on every link) a component whose route classes span more than one traffic class
is solved by that policy (:mod:`aifabric.netsim.classes`); one with a single traffic class,
and every component of an engine without a policy, by the max-min solvers of :mod:`aifabric.netsim.fairshare`.
"""

from __future__ import annotations

import heapq
import math
from collections.abc import Sequence
from typing import TYPE_CHECKING, NamedTuple

import numpy as np

from aifabric.netsim.fairshare import BIG, EPS, SMALL, fill_small, max_min_rates

if TYPE_CHECKING:
    from aifabric.netsim.classes import ClassPolicy


class FlowEngine:
    """Flows on capacitated links, advanced from event to event.

    Links are added up front (``capacity``) or one by one (``add_link``). ``start`` adds a
    flow at the current time; ``next_time`` is when the next flow's last byte leaves;
    ``advance(t)`` moves the clock there and returns the flows done by then. Bytes per
    link are counted as flows progress (``link_bytes``), so conservation can be checked:
    every byte of a finished flow has crossed each of its links, times the link weight.

    Flows with the same links and weights form a route class: max-min gives them the same
    rate, so the solver sees one entry per class (weights times the class's flow count)
    and components are traced over classes. A serving cluster's hundreds of KV flows in
    flight fall into a dozen classes (one per NIC pair), so a re-solve costs the same
    whatever the backlog. Progress is kept per class, lazily: every flow of a class has
    moved the same bytes since it started (the class's offset, linear in time between
    re-solves), a flow is done when the offset reaches its target (offset at start plus
    size), and the class's next finish (its smallest target) waits in one heap of events.
    A finish or start therefore touches only its component, never the flows elsewhere.

    ``policy``: the class policy every link applies between traffic classes (None: classes
    are labels only). Route classes are keyed by traffic class too, and bytes per link are
    kept per traffic class (``link_bytes_by_class``).
    """

    def __init__(
        self, capacity: Sequence[float] | np.ndarray = (), policy: ClassPolicy | None = None
    ) -> None:
        self.capacity = np.asarray(capacity, float).copy()
        self.policy = policy
        # Bytes of dropped route classes per link, per traffic class.
        self._link_done: dict[int, np.ndarray] = {0: np.zeros(len(self.capacity))}
        self.now = 0.0
        self.solves = 0  # component re-solves done (a measure of work)
        self.solved_flows = 0  # flows in those components, summed (the rest kept their rates)
        self._n_active = 0
        self._seq = 0  # tie-break for equal targets and equal event times
        # Flow slots (ids), reused after a flow is done.
        self._size: list[float] = []
        self._target: list[float] = []  # class offset at which the flow is done
        self._cls: list[int] = []
        self._active: list[bool] = []
        self._free: list[int] = []
        self._last_fid = -1  # the flow _add_flow made last
        # Route classes; a class leaves its slot when its last flow is done.
        self._class_of: dict[tuple[bytes, bytes, int], int] = {}
        self._c_key: list[tuple[bytes, bytes, int]] = []
        self._c_tc: list[int] = []  # its traffic class
        self._c_links: list[np.ndarray] = []  # all its links (bytes are counted on each)
        self._c_weights: list[np.ndarray] = []
        self._c_fin: list[list[int]] = []  # its finite links (the ones that constrain)
        self._c_finw: list[list[float]] = []
        self._c_fincap: list[list[float]] = []  # the capacities of those links
        self._c_flows: list[list[tuple[float, int, int]]] = []  # heap (target, seq, fid)
        self._c_rate: list[float] = []  # rate of each of its flows
        self._c_t: list[float] = []  # the offset was _c_o at time _c_t
        self._c_o: list[float] = []
        self._c_done: list[float] = []  # bytes of its finished flows, not yet in _link_done
        self._c_ver: list[int] = []  # bumped when its next finish changes
        self._c_free: list[int] = []
        self._live: set[int] = set()  # classes with active flows
        self._users: dict[int, set[int]] = {}  # finite link -> live classes on it
        self._events: list[tuple[float, int, int, int]] = []  # (time, seq, class, version)

    # --- links -----------------------------------------------------------------------
    def add_link(self, capacity: float) -> int:
        self.capacity = np.append(self.capacity, float(capacity))
        for tc, done in self._link_done.items():
            self._link_done[tc] = np.append(done, 0.0)
        return len(self.capacity) - 1

    @property
    def link_bytes(self) -> np.ndarray:
        """Bytes that have crossed each link so far (a fresh array), all classes."""
        by = self.link_bytes_by_class
        out = by.pop(0)
        for tc in sorted(by):
            out += by[tc]
        return out

    @property
    def link_bytes_by_class(self) -> dict[int, np.ndarray]:
        """Bytes that have crossed each link so far, per traffic class (fresh arrays; class 0
        always present)."""
        out = {tc: done.copy() for tc, done in self._link_done.items()}
        for c in sorted(self._live):
            o = self._offset(c, self.now)
            moved = self._c_done[c]
            for target, _, fid in self._c_flows[c]:
                size = self._size[fid]
                moved += min(max(size - (target - o), 0.0), size)
            out[self._c_tc[c]][self._c_links[c]] += moved * self._c_weights[c]
        return out

    # --- flows -----------------------------------------------------------------------
    def start(
        self, links: Sequence[int] | np.ndarray, size: float,
        weights: Sequence[float] | np.ndarray | None = None, traffic_class: int = 0,
    ) -> int:  # fmt: skip
        """Start a flow of ``size`` bytes now; returns its id (reused after it finishes)."""
        return self.start_route(self.route(links, weights, traffic_class), size)

    def start_many(
        self, links: Sequence[np.ndarray], sizes: Sequence[float] | np.ndarray,
        weights: Sequence[np.ndarray] | None = None, classes: Sequence[int] | None = None,
    ) -> list[int]:  # fmt: skip
        """Start several flows at once (one re-solve for all of them); ``classes``: the
        traffic class of each (None: all 0), one the policy names when there is one."""
        ids: list[int] = []
        seeds: set[int] = set()
        if classes is not None:
            classes = [int(k) for k in classes]
            for k in classes:
                self._check_class(k)
        else:
            self._check_class(0, default=True)
        for i, lk in enumerate(links):
            lk = np.asarray(lk, np.int64)
            w = np.ones(len(lk)) if weights is None else np.asarray(weights[i], float)
            c = self._class(*_merge(lk, w), 0 if classes is None else classes[i])
            ids.append(self._add_flow(c, sizes[i]))
            seeds.add(c)
        self._resolve(seeds, seeds)
        return ids

    def route(
        self, links: Sequence[int] | np.ndarray,
        weights: Sequence[float] | np.ndarray | None = None, traffic_class: int = 0,
    ) -> Route:  # fmt: skip
        """A flow's links prepared once for :meth:`start_route` (a caller that starts many
        flows on the same path keeps it): validated, merged (one entry per link) and keyed
        as :meth:`start` would each time, so a flow started either way joins the same route
        class and the engine's state after it is the same."""
        lk = np.asarray(links, np.int64)
        w = np.ones(len(lk)) if weights is None else np.asarray(weights, float)
        tc = int(traffic_class)
        self._check_class(tc, default=tc == 0)
        lk, w = _merge(lk, w)
        return self._route((lk.tobytes(), w.tobytes(), tc), lk.copy(), w.copy(), tc)

    def _route(self, key: tuple[bytes, bytes, int], links: np.ndarray, weights: np.ndarray,
               tc: int) -> Route:  # fmt: skip
        """The route of merged ``links`` and ``weights``, its finite links listed (a link's
        capacity never changes, so they stay right)."""
        fin = np.isfinite(self.capacity[links]) & (weights > 0)
        return Route(key, links, weights, tc, links[fin].tolist(), weights[fin].tolist(),
                     self.capacity[links[fin]].tolist())  # fmt: skip

    def start_route(self, route: Route, size: float) -> int:
        """:meth:`start` on a prepared route (same result, without re-validating, merging
        and keying the links); returns the flow's id.

        Fast path for the re-solve: when the flow's route class shares none of its finite
        links with another live class (a KV flow alone on its NICs, or with flows of its
        own route only), the component is that class alone. Max-min over one class of k
        flows is one progressive-filling round: every link's load is k times its weight,
        the rate rises from 0 by the least capacity / (weight k), and that link freezes
        it. This computes exactly the expression :func:`fill_small` evaluates for a
        single row (``0.0 + min(capacity / (weight * k))`` over the same links in the same
        order), so rates, finish times and event order are bit-identical to the general
        path (which the component search would have chosen, and which _resolve runs
        otherwise)."""
        c = self._class_of.get(route.key)
        if c is None:
            c = self._new_class(route)
        self._add_flow(c, size)
        users = self._users
        fin = self._c_fin[c]
        if len(fin) > SMALL:  # solved by max_min_rates
            self._resolve({c}, {c})
            return self._last_fid
        for ln in fin:
            if len(users[ln]) != 1:
                self._resolve({c}, {c})
                return self._last_fid
        self.solves += 1
        k = len(self._c_flows[c])
        self.solved_flows += k
        caps = self._c_fincap[c]
        if caps:
            rate = 0.0 + min([x / (w * k) for x, w in zip(caps, self._c_finw[c], strict=True)])
        else:
            rate = math.inf
        if rate != self._c_rate[c]:
            if not math.isinf(self._c_rate[c]):
                self._c_o[c] = self._offset(c, self.now)
            self._c_t[c] = self.now
            self._c_rate[c] = rate
        self._retime(c)  # its rate changed, or its first flow did (it is in ``dirty``)
        self._compact_events()
        return self._last_fid

    def _check_class(self, tc: int, default: bool = False) -> None:
        """Refuse a negative traffic class, or one the policy does not name (``default``:
        the flow was given none, so 0)."""
        known = None if self.policy is None else self.policy.classes
        if default:
            if known is not None and 0 not in known:
                raise ValueError("traffic class 0 (the default) is not in the engine's policy")
        elif tc < 0 or (known is not None and tc not in known):
            raise ValueError(f"traffic class {tc} is not one of the policy's "
                             f"{sorted(known or ())} (or negative)")  # fmt: skip

    def _add_flow(self, c: int, size: float) -> int:
        """A new flow of ``size`` bytes in route class ``c`` (not yet re-solved)."""
        size = max(float(size), 0.0)
        fid = self._slot()
        target = (0.0 if math.isinf(self._c_rate[c]) else self._offset(c, self.now)) + size
        self._size[fid], self._target[fid] = size, target
        self._cls[fid], self._active[fid] = c, True
        if c not in self._live:
            self._live.add(c)
            for ln in self._c_fin[c]:
                self._users.setdefault(ln, set()).add(c)
        heapq.heappush(self._c_flows[c], (target, self._seq, fid))
        self._seq += 1
        self._n_active += 1
        self._last_fid = fid
        return fid

    def rate(self, fid: int) -> float:
        return self._c_rate[self._cls[fid]] if self._active[fid] else 0.0

    def remaining(self, fid: int) -> float:
        if not self._active[fid]:
            return 0.0
        return max(self._target[fid] - self._offset(self._cls[fid], self.now), 0.0)

    @property
    def active(self) -> int:
        return self._n_active

    def next_time(self) -> float:
        """When the next active flow's last byte leaves (inf when none is active)."""
        events, ver = self._events, self._c_ver
        while events and events[0][3] != ver[events[0][2]]:
            heapq.heappop(events)
        return events[0][0] if events else math.inf

    def advance(self, t: float) -> list[int]:
        """Move the clock to ``t`` (no later than next_time()); return the flows that
        finished, whose slots are freed (their rates re-solved away).

        A flow is done when its class's event (its projected finish, the time next_time()
        returned) comes, or when what it has left is within EPS of its size then; so
        ``advance(next_time())`` always finishes a flow, even one shorter than the clock's
        resolution at ``now``, and flows finishing together to rounding are done in one
        step (one re-solve). Given a later ``t``, the finishes up to it are taken in time
        order, each with its re-solve."""
        done: list[int] = []
        events, ver = self._events, self._c_ver
        while True:
            te = self.next_time()
            if te > t:
                break
            self.now = max(self.now, te)
            seeds: set[int] = set()
            dirty: set[int] = set()
            while events:
                _, _, c, v = events[0]
                if v != ver[c]:
                    heapq.heappop(events)
                    continue
                flows = self._c_flows[c]
                o = self._offset(c, self.now)
                if events[0][0] > te and not self._nearly_done(flows[0], o):
                    break
                heapq.heappop(events)
                self._finish(c, heapq.heappop(flows)[2], done)  # the one the event is for
                while flows and self._nearly_done(flows[0], o):
                    self._finish(c, heapq.heappop(flows)[2], done)
                if flows:
                    dirty.add(c)
                else:
                    self._drop(c)
                for ln in self._c_fin[c]:
                    seeds |= self._users[ln]
                seeds.add(c)
            self._resolve(seeds, dirty)
        self.now = max(self.now, t)
        return sorted(done)

    def run(self) -> dict[int, float]:
        """Advance until every flow is done; the finish time of each flow."""
        finished: dict[int, float] = {}
        while True:
            t = self.next_time()
            if not math.isfinite(t):
                if self.active:
                    raise RuntimeError("flows with zero rate can never finish")
                return finished
            for fid in self.advance(t):
                finished[fid] = t

    # --- internals -------------------------------------------------------------------
    def _offset(self, c: int, t: float) -> float:
        """Bytes each flow of class ``c`` has moved since the class's epoch, at ``t``."""
        rate = self._c_rate[c]
        return math.inf if math.isinf(rate) else self._c_o[c] + rate * (t - self._c_t[c])

    def _nearly_done(self, head: tuple[float, int, int], offset: float) -> bool:
        return head[0] - offset <= EPS * max(self._size[head[2]], 1.0)

    def _finish(self, c: int, fid: int, done: list[int]) -> None:
        self._c_done[c] += self._size[fid]  # every byte has crossed, rounding crumbs too
        self._active[fid] = False
        self._n_active -= 1
        self._free.append(fid)
        done.append(fid)

    def _slot(self) -> int:
        if self._free:
            return self._free.pop()
        self._size.append(0.0)
        self._target.append(0.0)
        self._cls.append(0)
        self._active.append(False)
        return len(self._size) - 1

    def _class(self, links: np.ndarray, weights: np.ndarray, tc: int) -> int:
        """The route class of a flow of traffic class ``tc`` on ``links`` with ``weights``,
        made if new."""
        key = (links.tobytes(), weights.tobytes(), tc)
        c = self._class_of.get(key)
        if c is not None:
            return c
        return self._new_class(self._route(key, links.copy(), weights.copy(), tc))

    def _new_class(self, route: Route) -> int:
        """A new route class (a free slot reused) for ``route``, its arrays kept."""
        key, links, weights, tc, row, roww, caps = route
        if tc not in self._link_done:
            self._link_done[tc] = np.zeros(len(self.capacity))
        rate = 0.0 if row else math.inf
        if self._c_free:
            c = self._c_free.pop()
            self._c_key[c], self._c_links[c], self._c_weights[c] = key, links, weights
            self._c_tc[c] = tc
            self._c_fin[c], self._c_finw[c], self._c_fincap[c] = row, roww, caps
            self._c_rate[c], self._c_t[c], self._c_o[c] = rate, self.now, 0.0
        else:
            c = len(self._c_key)
            self._c_key.append(key)
            self._c_tc.append(tc)
            self._c_links.append(links)
            self._c_weights.append(weights)
            self._c_fin.append(row)
            self._c_finw.append(roww)
            self._c_fincap.append(caps)
            self._c_flows.append([])
            self._c_rate.append(rate)
            self._c_t.append(self.now)
            self._c_o.append(0.0)
            self._c_done.append(0.0)
            self._c_ver.append(0)
        self._class_of[key] = c
        return c

    def _drop(self, c: int) -> None:
        """Class ``c`` has no flow left: its bytes to the links, off the links, its slot
        free for reuse, its event void."""
        self._link_done[self._c_tc[c]][self._c_links[c]] += self._c_done[c] * self._c_weights[c]
        self._c_done[c] = 0.0
        self._live.discard(c)
        for ln in self._c_fin[c]:
            self._users[ln].discard(c)
        del self._class_of[self._c_key[c]]
        self._c_ver[c] += 1
        self._c_free.append(c)

    def _component(self, seeds: set[int]) -> list[int]:
        """Live classes connected to ``seeds`` through shared finite links."""
        seen = seeds & self._live
        n_live = len(self._live)
        if n_live >= BIG and len(seen) * 4 >= n_live:  # most of the network: solve it all
            return sorted(self._live)
        frontier = list(seen)
        done_links: set[int] = set()
        while frontier:
            nxt: list[int] = []
            for c in frontier:
                for ln in self._c_fin[c]:
                    if ln in done_links:
                        continue
                    done_links.add(ln)
                    for d in self._users[ln]:
                        if d not in seen:
                            seen.add(d)
                            nxt.append(d)
            frontier = nxt
            if n_live >= BIG and len(seen) * 4 >= n_live:
                return sorted(self._live)
        return sorted(seen)

    def _resolve(self, seeds: set[int], dirty: set[int]) -> None:
        """Re-solve the component of ``seeds``; re-time the classes whose rate changed and
        those in ``dirty`` (their first flow changed)."""
        comp = self._component(seeds)
        if comp:
            self.solves += 1
            counts = [len(self._c_flows[c]) for c in comp]
            self.solved_flows += sum(counts)
            rows = [self._c_fin[c] for c in comp]
            # k flows alike load each link as one flow of k times the weight.
            wts = [[x * k for x in self._c_finw[c]] for c, k in zip(comp, counts, strict=True)]
            tcs = None if self.policy is None else [self._c_tc[c] for c in comp]
            if tcs is not None and self.policy is not None and len(set(tcs)) > 1:
                rates: list[float] = self.policy.solve(rows, wts, tcs, self.capacity)
            elif sum(len(r) for r in rows) <= SMALL:
                rates = fill_small(rows, wts, self.capacity, [self._c_fincap[c] for c in comp])
            else:
                lens = [len(r) for r in rows]
                indptr = np.concatenate([[0], np.cumsum(lens)]).astype(np.int64)
                links = np.fromiter((ln for r in rows for ln in r), np.int64, int(indptr[-1]))
                weights = np.fromiter((x for r in wts for x in r), float, int(indptr[-1]))
                rates = max_min_rates(indptr, links, weights, self.capacity).tolist()
            for c, rate in zip(comp, rates, strict=True):
                if rate != self._c_rate[c]:
                    if not math.isinf(self._c_rate[c]):
                        self._c_o[c] = self._offset(c, self.now)
                    self._c_t[c] = self.now
                    self._c_rate[c] = rate
                    self._retime(c)
                elif c in dirty:
                    self._retime(c)
        self._compact_events()

    def _compact_events(self) -> None:
        """Drop void events when they outnumber the live ones."""
        if len(self._events) > 64 + 4 * len(self._live):
            ver = self._c_ver
            self._events[:] = [e for e in self._events if e[3] == ver[e[2]]]  # in place:
            heapq.heapify(self._events)  # advance() holds the list

    def _retime(self, c: int) -> None:
        """Schedule class ``c``'s next finish: its first flow's last byte."""
        self._c_ver[c] += 1
        rate = self._c_rate[c]
        if rate <= 0:
            return  # never (the run reports flows that cannot finish)
        t = self.now
        if not math.isinf(rate):
            t += max(self._c_flows[c][0][0] - self._offset(c, self.now), 0.0) / rate
        heapq.heappush(self._events, (t, self._seq, c, self._c_ver[c]))
        self._seq += 1


class Route(NamedTuple):
    """A flow's links as :meth:`FlowEngine.start_route` takes them (made by
    :meth:`FlowEngine.route`): one entry per link, weights summed, and the route-class key."""

    key: tuple[bytes, bytes, int]
    links: np.ndarray
    weights: np.ndarray
    tc: int
    fin: list[int]  # its finite links (weight > 0), the ones that constrain
    finw: list[float]  # their weights
    fincap: list[float]  # their capacities


def _merge(links: np.ndarray, weights: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """One entry per link, weights summed (two sprayed paths sharing a link)."""
    if len(links) < 2 or (len(links) < 16 and len(set(links.tolist())) == len(links)):
        return links, weights
    uniq, inv = np.unique(links, return_inverse=True)
    if len(uniq) == len(links):
        return links, weights
    return uniq, np.bincount(inv, weights=weights)
