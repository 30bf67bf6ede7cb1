"""A tiny discrete-event kernel: a heap of (time, priority, sequence) events.

Imports nothing else from aifabric. Events at equal time fire by priority (lower first),
then in scheduling order, so a run is deterministic. Handlers may schedule more events and
may cancel pending ones (lazily: a canceled event is skipped when it reaches the top).
"""

from __future__ import annotations

import heapq
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

Handler = Callable[..., None]


@dataclass(slots=True, eq=False)
class Event:
    """A scheduled call; the heap orders (time, priority, seq, event) tuples."""

    time: float
    priority: int
    seq: int
    handler: Handler = field(compare=False)
    args: tuple[Any, ...] = field(compare=False, default=())
    canceled: bool = field(compare=False, default=False)

    def cancel(self) -> None:
        self.canceled = True


class Simulator:
    """Event loop with a clock in seconds."""

    def __init__(self) -> None:
        self.now = 0.0
        self._heap: list[tuple[float, int, int, Event]] = []
        self._seq = 0
        self.events_run = 0

    def schedule(self, delay: float, handler: Handler, *args: Any, priority: int = 0) -> Event:
        """Run handler(*args) ``delay`` seconds from now (delay >= 0)."""
        if not delay >= 0 or math.isinf(delay):
            raise ValueError(f"event delay must be finite and >= 0, got {delay!r}")
        return self.schedule_at(self.now + delay, handler, *args, priority=priority)

    def schedule_at(self, time: float, handler: Handler, *args: Any, priority: int = 0) -> Event:
        """Run handler(*args) at absolute ``time`` (not in the past)."""
        if time < self.now:
            raise ValueError(f"cannot schedule at {time} before now ({self.now})")
        event = Event(time, priority, self._seq, handler, args)
        heapq.heappush(self._heap, (time, priority, self._seq, event))
        self._seq += 1
        return event

    def peek(self) -> float:
        """Time of the next live event, or inf when none is pending."""
        heap = self._heap
        while heap and heap[0][3].canceled:
            heapq.heappop(heap)
        return heap[0][0] if heap else math.inf

    def step(self) -> bool:
        """Run the next live event; False when none is left."""
        if self.peek() == math.inf:
            return False
        event = heapq.heappop(self._heap)[3]
        self.now = event.time
        self.events_run += 1
        event.handler(*event.args)
        return True

    def run(self, until: float = math.inf) -> float:
        """Run events with time <= until; the clock ends at ``until`` if it is finite."""
        # step() inlined (one event costs no extra calls): skip canceled events, stop at
        # the first live one past ``until`` (or at inf, as peek() reports it).
        heap = self._heap
        pop = heapq.heappop
        inf = math.inf
        while heap:
            entry = heap[0]
            event = entry[3]
            if event.canceled:
                pop(heap)
                continue
            if entry[0] == inf or entry[0] > until:
                break
            pop(heap)
            self.now = event.time
            self.events_run += 1
            event.handler(*event.args)
        if until != math.inf:
            self.now = max(self.now, until)
        return self.now

    def __len__(self) -> int:
        return sum(1 for e in self._heap if not e[3].canceled)
