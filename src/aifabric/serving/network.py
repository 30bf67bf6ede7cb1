"""KV movement on modeled links: flows share link capacity max-min fairly, plus latency.

Links are the instances' NIC ports (egress and ingress, tp x per-GPU NIC), the memory
servers' NICs and SSD read bandwidth, and optionally an oversubscribed core that every
cross-node flow crosses. Each start or finish of a flow re-solves the fair rates
(netsim.maxmin) and reschedules the finish of every flow in flight; a flow is done
``latency`` seconds after its last byte leaves. A flow that shares no link with another
needs one event (its arrival); a shared one gets a second at its last byte, when its share
goes to the others.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

from aifabric.des import Event, Simulator
from aifabric.netsim.maxmin import max_min_rates

KINDS = ("kv_transfer", "prefix_fetch", "prefix_store")


@dataclass(slots=True, eq=False)
class Flow:
    path: tuple[int, ...]
    size: float
    kind: str
    on_done: Callable[[], None] | None
    remaining: float = 0.0
    rate: float = 0.0
    shared: bool = False
    event: Event | None = field(default=None, repr=False)


class FlowNetwork:
    """Flows on capacitated links inside a discrete-event simulation."""

    def __init__(self, sim: Simulator, *, latency: float = 0.0) -> None:
        self.sim = sim
        self.latency = latency
        self.capacity: dict[int, float] = {}
        self.names: list[str] = []
        self.flows: list[Flow] = []
        self._last = 0.0
        self.bytes_done = dict.fromkeys(KINDS, 0.0)
        self.bytes_started = dict.fromkeys(KINDS, 0.0)
        self.link_bytes: dict[int, float] = {}
        self._users: dict[int, int] = {}  # flows in flight (tails included) per finite link

    def add_link(self, name: str, capacity: float) -> int:
        link = len(self.names)
        self.names.append(name)
        if math.isfinite(capacity):
            self.capacity[link] = capacity
        self.link_bytes[link] = 0.0
        return link

    def nominal_time(self, path: tuple[int, ...], size: float) -> float:
        """Transfer time alone on the path (no sharing): size / narrowest link + latency."""
        narrowest = min((self.capacity.get(ln, math.inf) for ln in path), default=math.inf)
        return size / narrowest + self.latency

    def start(self, path: tuple[int, ...], size: float, kind: str,
              on_done: Callable[[], None] | None = None) -> Flow:  # fmt: skip
        """Start moving ``size`` bytes along ``path``; call on_done when they have arrived."""
        flow = Flow(path, size, kind, on_done, remaining=size)
        self.bytes_started[kind] += size
        if size <= 0:
            self.sim.schedule(self.latency, self._arrive, flow)
            return flow
        self._advance()
        self.flows.append(flow)
        users = self._users
        links = [ln for ln in dict.fromkeys(path) if ln in self.capacity]
        alone = not any(users.get(ln) for ln in links)
        for ln in links:
            users[ln] = users.get(ln, 0) + 1
        if alone:  # it shares no link with any flow in flight: nobody else's rate changes
            rate = min((self.capacity[ln] for ln in links), default=math.inf)
            self._schedule(flow, rate, False)
        else:
            self._reallocate()
        return flow

    @property
    def in_flight(self) -> int:
        return len(self.flows)

    def _advance(self) -> None:
        dt = self.sim.now - self._last
        if dt > 0:
            for flow in self.flows:
                flow.remaining -= flow.rate * dt
        self._last = self.sim.now

    def _reallocate(self) -> None:
        # Flows whose last byte has left hold no bandwidth; they only wait out the latency.
        active = [f for f in self.flows if f.remaining > 1e-9 * f.size]
        if len(active) == 1:  # alone: the narrowest link on its path, nothing shared
            flow = active[0]
            cap = self.capacity
            rate = min((cap[ln] for ln in flow.path if ln in cap), default=math.inf)
            self._schedule(flow, rate, False)
            return
        paths = [f.path for f in active]
        rates = max_min_rates(paths, self.capacity)
        count: dict[int, int] = {}
        for path in paths:
            for link in path:
                if link in self.capacity:
                    count[link] = count.get(link, 0) + 1
        for flow, rate in zip(active, rates, strict=True):
            shared = any(count.get(link, 0) > 1 for link in flow.path)
            self._schedule(flow, rate, shared)

    def _schedule(self, flow: Flow, rate: float, shared: bool) -> None:
        """(Re)schedule a flow's next event after its rate or sharing changed."""
        if flow.event is not None and rate == flow.rate and shared == flow.shared:
            return
        now = self.sim.now
        flow.rate, flow.shared = rate, shared
        if flow.event is not None:
            flow.event.cancel()
        eta = 0.0 if math.isinf(rate) else max(flow.remaining, 0.0) / rate
        if shared:  # free the share at the last byte, arrive a latency later
            flow.event = self.sim.schedule_at(now + eta, self._release, flow, priority=-1)
        else:
            flow.event = self.sim.schedule_at(
                now + eta + self.latency, self._finish, flow, priority=-1
            )

    def _release(self, flow: Flow) -> None:
        self._advance()
        flow.remaining = 0.0
        flow.rate = 0.0
        self._reallocate()
        flow.event = self.sim.schedule(self.latency, self._finish, flow, priority=-1)

    def _finish(self, flow: Flow) -> None:
        # No re-solve: the flow shared no link with an active flow (or released its share
        # already), so nobody's rate changes.
        self._advance()
        self.flows.remove(flow)
        for ln in dict.fromkeys(flow.path):
            if ln in self.capacity:
                self._users[ln] -= 1
        flow.remaining = 0.0
        flow.rate = 0.0
        self._arrive(flow)

    def _arrive(self, flow: Flow) -> None:
        self.bytes_done[flow.kind] += flow.size
        for link in flow.path:
            self.link_bytes[link] += flow.size
        if flow.on_done is not None:
            flow.on_done()
