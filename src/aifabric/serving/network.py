"""KV movement on modeled links: flows share link capacity max-min fairly, plus latency.

Links are the instances' NIC ports (egress and ingress, tp x per-GPU NIC), the memory
servers' NICs and SSD read bandwidth, and optionally an oversubscribed core that every
cross-node flow crosses, or, with a ``fabric:`` section, the directed links of a planned
fabric (:mod:`aifabric.serving.fabric`; a flow then has a weight per link). The flows
and their rates live in the shared flow engine
(:class:`aifabric.netsim.engine.FlowEngine`): a start or a last byte re-solves the fair
rates of the flows connected to it through shared links, and nothing else. The network
keeps one pending event, at the engine's next last byte; a flow is done ``latency`` seconds
after its last byte leaves, in an arrival event of its own. A flow may carry a traffic
class through to the engine (``traffic_class``; 0 by default), shared with the engine's class
policy (``policy``; None: classes are labels only, :mod:`aifabric.netsim.classes`).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from aifabric.des import Event, Simulator
from aifabric.netsim.engine import FlowEngine, Route

if TYPE_CHECKING:
    from aifabric.netsim.classes import ClassPolicy

SERVING_KINDS = ("kv_transfer", "prefix_fetch", "prefix_store")
# and the kinds of the other workloads of a shared cluster (aifabric.cluster)
KINDS = (*SERVING_KINDS, "training", "checkpoint", "dataset")


@dataclass(slots=True, eq=False)
class Flow:
    path: tuple[int, ...]
    size: float
    kind: str
    on_done: Callable[[], None] | None
    seq: int = 0  # start order: flows whose last bytes leave together arrive in this order
    weights: tuple[float, ...] | None = None  # share of its bytes on each link (None: all)


@dataclass(slots=True, eq=False)
class FlowGroup:
    """Flows started together that report once, when the last is done."""

    kind: str
    size: float  # bytes, all flows
    left: int  # flows not done
    started_at: float  # s
    on_done: Callable[[float], None] | None
    link_ids: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    link_bytes: np.ndarray = field(default_factory=lambda: np.zeros(0))


class FlowNetwork:
    """Flows on capacitated links inside a discrete-event simulation."""

    def __init__(
        self, sim: Simulator, *, latency: float = 0.0, policy: ClassPolicy | None = None
    ) -> None:
        self.sim = sim
        self.latency = latency
        self.capacity: dict[int, float] = {}  # finite links only
        self.names: list[str] = []
        self.engine = FlowEngine(policy=policy)  # one engine link per network link, same index
        self.bytes_done = dict.fromkeys(KINDS, 0.0)
        self.bytes_started = dict.fromkeys(KINDS, 0.0)
        self.link_bytes: dict[int, float] = {}  # counted when a flow arrives
        # per kind too, when asked for (a shared cluster's per-class figures)
        self.kind_link_bytes: dict[str, dict[int, float]] | None = None
        # flow groups' bytes per link, one array per kind (not in link_bytes)
        self.group_link_bytes: dict[str, np.ndarray] = {}
        self._moving: dict[int, Flow] = {}  # engine flow id -> flow whose bytes are moving
        # (path, weights, traffic class) -> the engine's prepared route
        self._routes: dict[tuple[tuple[int, ...], tuple[float, ...] | None, int], Route] = {}
        self._event: Event | None = None  # the next last byte
        self._groups: dict[int, FlowGroup] = {}  # engine flow id -> its group
        self._in_flight = 0
        self._seq = 0

    def add_link(self, name: str, capacity: float) -> int:
        link = len(self.names)
        self.names.append(name)
        if math.isfinite(capacity):
            self.capacity[link] = capacity
        self.engine.add_link(capacity)
        self.link_bytes[link] = 0.0
        return link

    def nominal_time(self, path: tuple[int, ...], size: float,
                     weights: tuple[float, ...] | None = None) -> float:  # fmt: skip
        """Transfer time alone on the path (no sharing): size / narrowest link + latency
        (with ``weights``: the link of least capacity / weight)."""
        if weights is None:
            narrowest = min((self.capacity.get(ln, math.inf) for ln in path), default=math.inf)
        else:
            narrowest = min((self.capacity.get(ln, math.inf) / w
                             for ln, w in zip(path, weights, strict=True) if w > 0),
                            default=math.inf)  # fmt: skip
        return size / narrowest + self.latency

    def start(self, path: tuple[int, ...], size: float, kind: str,
              on_done: Callable[[], None] | None = None,
              weights: tuple[float, ...] | None = None, traffic_class: int = 0) -> Flow:  # fmt: skip
        """Start moving ``size`` bytes along ``path``; call on_done when they have arrived.
        ``weights`` (one per link, distinct links): the share of the bytes crossing each
        link, for a flow split over several routes (a fabric's rails and paths).
        ``traffic_class``: the engine's traffic class of the flow."""
        flow = Flow(path, size, kind, on_done, self._seq, weights)
        self._seq += 1
        self.bytes_started[kind] += size
        if size <= 0:
            self.sim.schedule(self.latency, self._arrive, flow)
            return flow
        self._in_flight += 1
        self._land(self.engine.advance(self.sim.now))  # the engine's clock to now
        key = (path, weights, traffic_class)
        route = self._routes.get(key)
        if route is None:  # a link listed twice on a path (no weights) counts once
            route = self._routes[key] = self.engine.route(
                np.fromiter(dict.fromkeys(path), np.int64) if weights is None
                else np.array(path, np.int64),
                None if weights is None else np.array(weights, float), traffic_class)  # fmt: skip
        fid = self.engine.start_route(route, size)
        self._moving[fid] = flow
        self._reschedule()
        return flow

    @property
    def in_flight(self) -> int:
        """Flows started and not arrived (latency tails included; zero-size ones not)."""
        return self._in_flight

    def _reschedule(self) -> None:
        """Keep the one pending network event at the engine's next last byte."""
        t = self.engine.next_time()
        event = self._event
        if event is not None:
            if event.time == t:
                return
            event.cancel()
        self._event = None if math.isinf(t) else self.sim.schedule_at(t, self._tick, priority=-1)

    def _tick(self) -> None:
        self._event = None
        self._land(self.engine.advance(self.sim.now))
        self._reschedule()

    def start_group(self, indptr: np.ndarray, links: np.ndarray, weights: np.ndarray,
                    sizes: np.ndarray, kind: str,
                    on_done: Callable[[float], None] | None = None,
                    traffic_class: int = 0) -> FlowGroup:  # fmt: skip
        """Start many flows at once (flow f on ``links[indptr[f]:indptr[f+1]]`` with
        ``weights``; one re-solve for all); ``on_done(duration)`` when the last one's last
        byte has left (no latency is added: a collective's latency is its caller's). The
        group's bytes count per link when it is done, as one flow's do. ``traffic_class``:
        the engine's traffic class of all its flows."""
        n = len(sizes)
        size = float(np.sum(sizes))
        group = FlowGroup(kind, size, n, self.sim.now, on_done)
        self.bytes_started[kind] += size
        counts = np.diff(indptr)
        owner = np.repeat(np.arange(n), counts)
        group.link_ids = np.unique(links)
        pos = np.searchsorted(group.link_ids, links)
        group.link_bytes = np.bincount(pos, weights=weights * np.asarray(sizes)[owner],
                                       minlength=len(group.link_ids))  # fmt: skip
        if n == 0 or size <= 0:
            self.sim.schedule(0.0, self._group_done, group)
            return group
        self._in_flight += 1
        self._land(self.engine.advance(self.sim.now))
        rows = [links[indptr[f] : indptr[f + 1]] for f in range(n)]
        wts = [weights[indptr[f] : indptr[f + 1]] for f in range(n)]
        classes = None if traffic_class == 0 else [traffic_class] * n
        for fid in self.engine.start_many(rows, sizes, wts, classes):
            self._groups[fid] = group
        self._reschedule()
        return group

    def _group_done(self, group: FlowGroup) -> None:
        self.bytes_done[group.kind] += group.size
        # per link, in one array per kind (a group can cross thousands of links)
        acc = self.group_link_bytes.get(group.kind)
        if acc is None or len(acc) < len(self.names):
            grown = np.zeros(len(self.names))
            if acc is not None:
                grown[: len(acc)] = acc
            acc = self.group_link_bytes[group.kind] = grown
        np.add.at(acc, group.link_ids, group.link_bytes)
        if group.on_done is not None:
            group.on_done(self.sim.now - group.started_at)

    def _land(self, done: list[int]) -> None:
        """Flows whose last byte has left: they arrive ``latency`` later, in start order."""
        if not done:
            return
        if self._groups:
            done = self._land_groups(done)
        flows = sorted((self._moving.pop(fid) for fid in done), key=lambda f: f.seq)
        for flow in flows:
            if self.latency > 0:
                self.sim.schedule(self.latency, self._finish, flow, priority=-1)
            else:
                self._finish(flow)

    def _land_groups(self, done: list[int]) -> list[int]:
        """Count down the groups of finished flows; a group whose last flow is done is done
        now. Returns the finished flows that belong to no group."""
        rest = []
        for fid in done:
            group = self._groups.pop(fid, None)
            if group is None:
                rest.append(fid)
                continue
            group.left -= 1
            if group.left == 0:
                self._in_flight -= 1
                self._group_done(group)
        return rest

    def _finish(self, flow: Flow) -> None:
        self._in_flight -= 1
        self._arrive(flow)

    def _arrive(self, flow: Flow) -> None:
        self.bytes_done[flow.kind] += flow.size
        if flow.weights is None:
            for link in flow.path:
                self.link_bytes[link] += flow.size
        else:
            for link, w in zip(flow.path, flow.weights, strict=True):
                self.link_bytes[link] += flow.size * w
        if self.kind_link_bytes is not None:
            by = self.kind_link_bytes.setdefault(flow.kind, {})
            weights = flow.weights or (1.0,) * len(flow.path)
            for link, w in zip(flow.path, weights, strict=True):
                by[link] = by.get(link, 0.0) + flow.size * w
        if flow.on_done is not None:
            flow.on_done()
