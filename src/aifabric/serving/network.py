"""KV movement on modeled links: flows share link capacity max-min fairly, plus latency.

Links are the instances' NIC ports (egress and ingress, tp x per-GPU NIC), the memory
servers' NICs and SSD read bandwidth, and optionally an oversubscribed core that every
cross-node flow crosses, or, with a ``fabric:`` section, the directed links of a planned
fabric (:mod:`aifabric.serving.fabric`; a flow then has a weight per link). The flows
and their rates live in the shared flow engine
(:class:`aifabric.netsim.engine.FlowEngine`): a start or a last byte re-solves the fair
rates of the flows connected to it through shared links, and nothing else. The network
keeps one pending event, at the engine's next last byte; a flow is done ``latency`` seconds
after its last byte leaves, in an arrival event of its own.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from aifabric.des import Event, Simulator
from aifabric.netsim.engine import FlowEngine

KINDS = ("kv_transfer", "prefix_fetch", "prefix_store")


@dataclass(slots=True, eq=False)
class Flow:
    path: tuple[int, ...]
    size: float
    kind: str
    on_done: Callable[[], None] | None
    seq: int = 0  # start order: flows whose last bytes leave together arrive in this order
    weights: tuple[float, ...] | None = None  # share of its bytes on each link (None: all)


class FlowNetwork:
    """Flows on capacitated links inside a discrete-event simulation."""

    def __init__(self, sim: Simulator, *, latency: float = 0.0) -> None:
        self.sim = sim
        self.latency = latency
        self.capacity: dict[int, float] = {}  # finite links only
        self.names: list[str] = []
        self.engine = FlowEngine()  # one engine link per network link, same index
        self.bytes_done = dict.fromkeys(KINDS, 0.0)
        self.bytes_started = dict.fromkeys(KINDS, 0.0)
        self.link_bytes: dict[int, float] = {}  # counted when a flow arrives
        self._moving: dict[int, Flow] = {}  # engine flow id -> flow whose bytes are moving
        self._routes: dict[tuple[int, ...], np.ndarray] = {}  # path -> its links, once each
        self._weighted: dict[tuple[tuple[int, ...], tuple[float, ...]],
                             tuple[np.ndarray, np.ndarray]] = {}  # fmt: skip
        self._event: Event | None = None  # the next last byte
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
              weights: tuple[float, ...] | None = None) -> Flow:  # fmt: skip
        """Start moving ``size`` bytes along ``path``; call on_done when they have arrived.
        ``weights`` (one per link, distinct links): the share of the bytes crossing each
        link, for a flow split over several routes (a fabric's rails and paths)."""
        flow = Flow(path, size, kind, on_done, self._seq, weights)
        self._seq += 1
        self.bytes_started[kind] += size
        if size <= 0:
            self.sim.schedule(self.latency, self._arrive, flow)
            return flow
        self._in_flight += 1
        self._land(self.engine.advance(self.sim.now))  # the engine's clock to now
        if weights is None:
            route = self._routes.get(path)
            if route is None:  # a link listed twice on a path counts once
                route = self._routes[path] = np.fromiter(dict.fromkeys(path), np.int64)
            fid = self.engine.start(route, size)
        else:
            arrays = self._weighted.get((path, weights))
            if arrays is None:
                arrays = self._weighted[(path, weights)] = (np.array(path, np.int64),
                                                            np.array(weights, float))  # fmt: skip
            fid = self.engine.start(arrays[0], size, arrays[1])
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

    def _land(self, done: list[int]) -> None:
        """Flows whose last byte has left: they arrive ``latency`` later, in start order."""
        if not done:
            return
        flows = sorted((self._moving.pop(fid) for fid in done), key=lambda f: f.seq)
        for flow in flows:
            if self.latency > 0:
                self.sim.schedule(self.latency, self._finish, flow, priority=-1)
            else:
                self._finish(flow)

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
        if flow.on_done is not None:
            flow.on_done()
