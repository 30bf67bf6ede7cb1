"""Time division (seed 004): one pool of GPUs moved between training and inference by time
of day, with a model-load delay at every move.

The pool is the training job's GPUs at full width; the serving deployment's instances sit
on the same GPUs, in order (instance ``i`` of TP ``t`` on GPUs ``[lo + i t, lo + (i+1) t)``).
A schedule gives the training job's GPUs from each time on (``training_gpus``, a
multiple of tp x pp x cp: training shrinks or grows its data-parallel width with the same
global batch, so each replica runs more or fewer micro-batches; 0 pauses it); training holds GPUs
``[lo, lo + training_gpus)`` and every instance wholly above serves. A move:

- **training shrinks**: the job finishes the step it is in, then reloads at the new width
  (``model_load`` seconds: restart from its last checkpoint, resharded) while the freed
  instances load the serving model (``model_load`` seconds) and then take requests;
- **training grows**: the instances in the way stop taking requests and finish what they
  hold (draining: no request is lost), then training finishes its step and reloads at the
  new width; GPUs drained early wait idle for the last one.

A move that comes while the previous one is under way waits for it. Each GPU is in one use
at every instant, kept in :class:`GpuLedger`: training (its steps, stalls and the step it
finishes before a move), inference (an instance that serves or drains), loading (either
side's load after a move) or idle, so the uses add up to the pool's GPU-seconds.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from aifabric.errors import ConfigError

USES = ("training", "inference", "loading", "idle")


@dataclass(frozen=True, slots=True)
class Window:
    at: float  # s
    training_gpus: int


class GpuLedger:
    """Each pool GPU's use over time and the GPU-seconds per use."""

    def __init__(self, gpus: int) -> None:
        self.use = np.full(gpus, USES.index("idle"))
        self.since = np.zeros(gpus)
        self.seconds = np.zeros(len(USES))
        self.intervals: list[tuple[float, float, int, int, int]] = []  # (t0, t1, lo, hi, use)

    def set(self, lo: int, hi: int, use: str, now: float) -> None:
        """GPUs [lo, hi) (pool indices) are in ``use`` from ``now``."""
        if hi <= lo:
            return
        code = USES.index(use)
        seg_use, seg_since = self.use[lo:hi], self.since[lo:hi]
        np.add.at(self.seconds, seg_use, now - seg_since)
        # one interval per run of equal (use, since)
        start = lo
        for k in range(lo + 1, hi + 1):
            if k == hi or self.use[k] != self.use[start] or self.since[k] != self.since[start]:
                if now > self.since[start]:
                    self.intervals.append((float(self.since[start]), now, start, k,
                                           int(self.use[start])))  # fmt: skip
                start = k
        self.use[lo:hi] = code
        self.since[lo:hi] = now

    def close(self, now: float) -> dict[str, float]:
        """GPU-seconds per use up to ``now``."""
        self.set(0, len(self.use), "idle", now)
        return {u: float(v) for u, v in zip(USES, self.seconds, strict=True)}

    def held(self, lo: int, hi: int, use: str, t0: float, t1: float) -> bool:
        """Whether GPUs [lo, hi) were all in ``use`` throughout [t0, t1]."""
        code = USES.index(use)
        covered = np.zeros(hi - lo)
        for a, b, x, y, u in self.intervals:
            if u != code or b <= t0 or a >= t1:
                continue
            ov_lo, ov_hi = max(x, lo), min(y, hi)
            if ov_hi > ov_lo:
                covered[ov_lo - lo : ov_hi - lo] += min(b, t1) - max(a, t0)
        return bool(np.all(covered >= (t1 - t0) * (1 - 1e-9)))


def parse_schedule(
    raw: Any, pool: int, unit: int, instance_gpus: int
) -> tuple[list[Window], float]:
    """(windows, model_load_s) of the ``time_division`` section.

    Raises:
        ConfigError: a window that is not a multiple of ``unit`` GPUs, leaves no serving
            instance, or starts out of order.
    """
    from aifabric.units import parse_duration

    if not isinstance(raw, dict):
        raise ConfigError("scenario key time_division: expected a mapping with schedule: "
                          "[{at, training_gpus}, ...] and model_load")  # fmt: skip
    for key in raw:
        if key not in ("schedule", "model_load"):
            raise ConfigError(f"unknown scenario key 'time_division.{key}'; known keys: "
                              "schedule, model_load")  # fmt: skip
    try:
        load = parse_duration(raw.get("model_load", "120s"), what="model_load")
    except ValueError as exc:
        raise ConfigError(f"scenario key time_division.model_load: {exc}") from None
    sched = raw.get("schedule")
    if not isinstance(sched, list) or not sched:
        raise ConfigError("scenario key time_division.schedule: expected a list of "
                          "{at: TIME, training_gpus: N}")  # fmt: skip
    windows: list[Window] = []
    for i, w in enumerate(sched):
        where = f"time_division.schedule[{i}]"
        if not isinstance(w, dict) or set(w) != {"at", "training_gpus"}:
            raise ConfigError(f"scenario key {where}: expected {{at: TIME, training_gpus: N}}")
        try:
            at = parse_duration(w["at"], what="at")
        except ValueError as exc:
            raise ConfigError(f"scenario key {where}.at: {exc}") from None
        n = w["training_gpus"]
        if isinstance(n, bool) or not isinstance(n, int) or n < 0 or n % unit:
            raise ConfigError(f"scenario key {where}.training_gpus: {n!r} must be 0 (training "
                              f"paused) or a multiple of tp x pp x cp = {unit}")  # fmt: skip
        if n > pool - instance_gpus:
            raise ConfigError(f"scenario key {where}.training_gpus: {n} leaves no serving "
                              f"instance in the pool of {pool} GPUs (one takes "
                              f"{instance_gpus}); give at most {pool - instance_gpus}")  # fmt: skip
        if windows and at <= windows[-1].at:
            raise ConfigError(f"scenario key {where}.at: windows must start in order")
        windows.append(Window(float(at), n))
    if windows[0].at != 0:
        raise ConfigError("scenario key time_division.schedule[0].at: the first window "
                          "starts at 0")  # fmt: skip
    return windows, float(load)


class TimeDivision:
    """Moves the pool between a training job (one TrainingWorkload per width) and a serving
    deployment's instances, on the cluster's clock."""

    def __init__(self, sim: Any, pool: tuple[int, int], windows: list[Window], load_s: float,
                 make_trainer: Any, serving: Any) -> None:  # fmt: skip
        """``make_trainer(gpus)``: a TrainingWorkload of that width (not started)."""
        self.sim, self.windows, self.load_s = sim, windows, load_s
        self.lo, self.hi = pool
        self.make_trainer, self.serving = make_trainer, serving
        self.ledger = GpuLedger(self.hi - self.lo)
        tp = serving.instances[0].timing.tp
        self.instance_range = {inst.index: (inst.index * tp, (inst.index + 1) * tp)
                               for inst in serving.instances}  # fmt: skip
        self.trainers: list[Any] = []
        self.training_gpus = 0
        self.busy = False
        self.pending: int | None = None
        self.moves = 0
        self.training_loading_s = 0.0
        self._draining: set[int] = set()
        self._collecting = False  # draining the instances in the way (retirements wait)
        serving.autoscaler.on_retire = self._retired

    # ----- the schedule ---------------------------------------------------------------
    def start(self) -> None:
        first = self.windows[0].training_gpus
        for inst in self.serving.instances:
            a, b = self.instance_range[inst.index]
            if a < first:
                self.serving.autoscaler.drain(inst)  # idle at 0: retires at once
            else:
                self.ledger.set(a, b, "inference", 0.0)
        if first:  # 0: training starts paused
            self._start_training(first)
        for w in self.windows[1:]:
            self.sim.schedule_at(w.at, self._window, w.training_gpus)

    def _window(self, gpus: int) -> None:
        if self.busy:
            self.pending = gpus
            return
        if gpus == self.training_gpus:
            return
        self.busy = True
        self.moves += 1
        if gpus < self.training_gpus:
            self.trainers[-1].stop(lambda: self._shrunk(gpus))
        else:
            self._target = gpus
            self._draining = {i for i, (a, b) in self.instance_range.items()
                              if a < gpus and b > self.training_gpus
                              and self.serving.instances[i].state != "retired"}  # fmt: skip
            if any(self.serving.instances[i].state == "loading" for i in self._draining):
                # A move waits for the previous one, whose instance loads and training
                # reload start together and take model_load each: loads still under way
                # end now, in the autoscaler's events after this one (priority 1).
                self.sim.schedule(0.0, self._drain_in_the_way, priority=2)
            else:
                self._drain_in_the_way()

    def _drain_in_the_way(self) -> None:
        """Drain the instances on the GPUs training grows into; once all have retired
        (an idle one at once, inside ``drain``), training moves."""
        self._collecting = True
        for i in sorted(self._draining):
            inst = self.serving.instances[i]
            if inst.state == "active":
                self.serving.autoscaler.drain(inst)
        self._collecting = False
        if not self._draining:
            self._drained()

    # ----- moves ----------------------------------------------------------------------
    def _shrunk(self, gpus: int) -> None:
        """Training has stopped: reload it smaller, load the freed instances."""
        now = self.sim.now
        old = self.training_gpus
        self.ledger.set(0, gpus, "loading", now)
        self.ledger.set(gpus, old, "idle", now)  # a gap no instance covers stays idle
        for inst in self.serving.instances:
            a, b = self.instance_range[inst.index]
            if gpus <= a < old:
                self.ledger.set(a, b, "loading", now)
                self.serving.autoscaler.revive(inst, self.load_s)
                self.sim.schedule(self.load_s, self.ledger.set, a, b, "inference",
                                  now + self.load_s)  # fmt: skip
        self.training_gpus = 0
        if gpus == 0:  # training pauses: nothing reloads on its side
            self.sim.schedule(self.load_s, self._move_done)
            return
        self.training_loading_s += self.load_s
        self.sim.schedule(self.load_s, self._start_training, gpus)

    def _retired(self, inst: Any) -> None:
        if inst.index not in self._draining:
            return
        a, b = self.instance_range[inst.index]
        self.ledger.set(a, b, "idle", self.sim.now)
        self._draining.discard(inst.index)
        if not self._draining and not self._collecting:
            self._drained()

    def _drained(self) -> None:
        """The instances in the way are empty: stop training, reload it wider."""
        gpus = self._target

        def stopped() -> None:
            now = self.sim.now
            self.ledger.set(0, gpus, "loading", now)
            self.training_gpus = 0
            self.training_loading_s += self.load_s
            self.sim.schedule(self.load_s, self._start_training, gpus)

        if self.training_gpus == 0:  # paused: nothing to stop
            stopped()
        else:
            self.trainers[-1].stop(stopped)

    def _start_training(self, gpus: int) -> None:
        now = self.sim.now
        self.ledger.set(0, gpus, "training", now)
        self.training_gpus = gpus
        trainer = self.make_trainer(gpus)
        if trainer.run.steps is not None:  # the job's steps, over all its widths
            done = sum(len(t.record.step_ends) for t in self.trainers)
            trainer.run.steps = max(0, trainer.run.steps - done)
        self.trainers.append(trainer)
        trainer.start()
        self._move_done()

    def _move_done(self) -> None:
        """A move is over: take the window that came meanwhile, if any."""
        if self.busy:
            self.busy = False
            if self.pending is not None:
                nxt, self.pending = self.pending, None
                self._window(nxt)
