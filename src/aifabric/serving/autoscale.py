"""Elastic serving pools (``autoscale:``): instances join after loading, leave after draining.

Each pool (colocated; or prefill and decode with PD) has a policy: a metric, a target, and
[min_instances, max_instances]. Every ``interval_s`` (one DES event, not per request) the
pool's metric m over its serving instances is compared with the target t by the Kubernetes
Horizontal Pod Autoscaler rule (kubernetes.io, "Horizontal Pod Autoscaling", Algorithm
details): desired = ceil(active x m / t), left unchanged while |m / t - 1| <= 0.1 (the HPA's
default tolerance), clipped to the bounds.

Metrics:

- ``utilization``: prefill/colocated pools: the share of the last interval the serving
  instances spent iterating; decode pool: the mean, over its serving instances at the
  decision, of max(KV in use / KV capacity, sequences / max_batch_size) (a decode instance
  iterates whenever it holds one sequence, so busy time says nothing about its headroom;
  its KV memory and batch slots do, as in DistServe's decode placement, Zhong et al.,
  OSDI 2024, sec. 4).
- ``queue_delay`` (seconds): prefill/colocated: the mean over serving instances of
  max(queued prefill work, age of the oldest waiting request); decode: the age of the
  oldest prefilled request waiting for decode KV memory.

Scale-up first returns draining instances to service (they still hold the model), then
creates new ones; a new instance holds its GPUs at once but is routed work only
``model_load_s`` later (default: weight bytes / ``load_bandwidth``; LOAD_BANDWIDTH below).
Instances held (loading, serving, draining) never exceed max_instances.

Scale-down waits ``scale_down_cooldown_s`` after the pool's last change and for no instance
to be loading; it drains the serving instances with the fewest outstanding requests (the
newest first on ties), never below min_instances. A draining instance gets no new work
(routers and the decode choice see only serving instances) but finishes its queue, its
running batch and, on a prefill instance, the KV transfers of its prefilled requests; it
retires once it holds no request, KV or inbound prefix fetch, so no request is lost.

Instance counts are traced per pool (``--timeseries`` columns) and ``instance_time_s``
(held time, loading and draining included) is summed per pool for costing.

Not modelled: requests already queued are not re-balanced onto a new instance; a fabric
scenario (instances placed on fabric nodes at construction) is refused.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from aifabric.des import Event
from aifabric.errors import ConfigError
from aifabric.serving.compute import IterationTiming
from aifabric.serving.config import Autoscale, PoolScale, ServeScenario

if TYPE_CHECKING:
    from aifabric.serving.instance import Instance

# Checkpoint loading rate, bytes/s per instance: ServerlessLLM (Fu et al., OSDI 2024,
# arXiv:2401.14351, sec. 1/2) reports LLaMA-2-70B (about 130 GB) taking 84 s to load into GPU
# memory with existing loaders (PyTorch / Safetensors): 130e9 / 84 = 1.55 GB/s.
LOAD_BANDWIDTH = 130e9 / 84
TOLERANCE = 0.1  # Kubernetes HPA default (--horizontal-pod-autoscaler-tolerance)


@dataclass(frozen=True, slots=True)
class PoolPolicy:
    metric: str
    target: float
    min_instances: int
    max_instances: int
    scale_down_cooldown_s: float


def pool_policy(cfg: Autoscale, role: str) -> PoolPolicy:
    """A pool's policy: its own keys, else the section's."""
    own: PoolScale = getattr(cfg, role)
    cooldown = own.scale_down_cooldown_s
    policy = PoolPolicy(
        metric=own.metric or cfg.metric,
        target=own.target if own.target is not None else cfg.target,
        min_instances=own.min_instances or cfg.min_instances,
        max_instances=own.max_instances or cfg.max_instances,
        scale_down_cooldown_s=cooldown if cooldown is not None else cfg.scale_down_cooldown_s,
    )
    if policy.min_instances > policy.max_instances:
        raise ConfigError(
            f"scenario key autoscale.{role}: min_instances(={policy.min_instances}) must be "
            f"<= max_instances(={policy.max_instances})"
        )
    return policy


def pool_sizes(scenario: ServeScenario) -> dict[str, tuple[str, int]]:
    """Pool role -> (config key, configured instance count)."""
    cl = scenario.cluster
    if cl.mode == "colocated":
        return {"colocated": ("cluster.instances", cl.instances)}
    return {"prefill": ("cluster.prefill_instances", cl.prefill_instances),
            "decode": ("cluster.decode_instances", cl.decode_instances)}  # fmt: skip


def check_autoscale(scenario: ServeScenario) -> None:
    """Refuse what elastic pools cannot do: a fabric, counts outside the bounds.

    Raises:
        ConfigError: one line naming the key.
    """
    cfg = scenario.autoscale
    if not cfg.enabled:
        return
    if scenario.fabric is not None:
        raise ConfigError(
            "scenario key autoscale.enabled: elastic pools are not supported with a fabric: "
            "section (its instances are placed on fabric nodes when the run is built); "
            "drop one of them"
        )
    for role, (key, count) in pool_sizes(scenario).items():
        policy = pool_policy(cfg, role)
        if not policy.min_instances <= count <= policy.max_instances:
            raise ConfigError(
                f"scenario key {key}: {count} starting instances is outside the {role} pool's "
                f"autoscale bounds [{policy.min_instances}, {policy.max_instances}]"
            )


def max_instances(scenario: ServeScenario) -> int:
    """Instances the run may hold at once (the configured ones without autoscale)."""
    sizes = pool_sizes(scenario)
    if not scenario.autoscale.enabled:
        return sum(n for _, n in sizes.values())
    return sum(pool_policy(scenario.autoscale, role).max_instances for role in sizes)


@dataclass(slots=True, eq=False)
class Pool:
    role: str
    key: str
    timing: IterationTiming
    policy: PoolPolicy
    load_s: float
    serving: list[Instance]  # the cluster's routable list (entry or decoders), shared
    members: list[Instance] = field(default_factory=list)  # every instance ever held
    initial: int = 0
    last_change: float = -math.inf
    created: int = 0
    retired: int = 0
    trace: list[tuple[float, int, int, int]] = field(default_factory=list)
    busy_mark: dict[int, float] = field(default_factory=dict)
    last_tick: float = 0.0

    def counts(self) -> tuple[int, int, int]:
        """(serving, loading, draining) instances."""
        loading = sum(1 for i in self.members if i.state == "loading")
        draining = sum(1 for i in self.members if i.state == "draining")
        return len(self.serving), loading, draining


class Autoscaler:
    """The pools of a ServingSimulation and the periodic policy event."""

    def __init__(self, cluster: Any, timings: dict[str, IterationTiming]) -> None:
        self.cluster = cluster
        self.sim = cluster.sim
        sc: ServeScenario = cluster.scenario
        self.cfg = sc.autoscale
        self.pools: dict[str, Pool] = {}
        for role, (key, _) in pool_sizes(sc).items():
            timing = timings[role]
            load = self.cfg.model_load_s
            if load is None:
                load = timing.weight_bytes / self.cfg.load_bandwidth
            serving = cluster.decoders if role == "decode" else cluster.entry
            pool = Pool(role, key, timing, pool_policy(self.cfg, role), load, serving)
            pool.members = list(serving)
            pool.initial = len(serving)
            pool.trace.append((0.0, len(serving), 0, 0))
            self.pools[role] = pool
        self.on_retire: Any = None  # called with each instance that retires
        self.own: dict[float, int] = {}  # times of pending decision / load events -> count
        self.own_total = 0
        if self.cfg.enabled:
            self._schedule(self.cfg.interval_s, self._tick)

    def only_own_left(self, next_time: float) -> bool:
        """Whether the simulator holds nothing but the autoscaler's own pending events (its
        next decision, model loads); cheap unless the next event may be one of them."""
        if next_time not in self.own:
            return False
        return len(self.sim) == self.own_total

    def _schedule(self, delay: float, handler: Any, *args: Any) -> Event:
        event: Event = self.sim.schedule(delay, handler, *args, priority=1)
        self.own[event.time] = self.own.get(event.time, 0) + 1
        self.own_total += 1
        return event

    def _fired(self) -> None:
        now = self.sim.now
        left = self.own[now] - 1
        if left:
            self.own[now] = left
        else:
            del self.own[now]
        self.own_total -= 1

    # ----- the policy ---------------------------------------------------------------------
    def _tick(self) -> None:
        self._fired()
        for pool in self.pools.values():
            self._decide(pool)
        if len(self.sim) > 0:  # anything left to happen: keep watching
            self._schedule(self.cfg.interval_s, self._tick)

    def _busy(self, inst: Instance) -> float:
        run = inst.run
        busy = inst.busy_time
        if run is not None:
            busy += min(self.sim.now - run.start, run.span)
        return float(busy)

    def metric(self, pool: Pool) -> float:
        now = self.sim.now
        serving = pool.serving
        decode = pool.role == "decode"
        if pool.policy.metric == "utilization":
            if decode:
                return float(np.mean([
                    max((i.kv_used + i.committed_growth()) / i.kv_capacity,
                        (i.batch.n + i.promised) / i.max_batch_size)
                    for i in serving
                ]))  # fmt: skip
            busy = window = 0.0
            for inst in serving:
                start = max(pool.last_tick, inst.active_at)
                mark = pool.busy_mark.get(inst.index, 0.0)
                now_busy = self._busy(inst)
                busy += now_busy - mark
                window += now - start
            for inst in pool.members:
                pool.busy_mark[inst.index] = self._busy(inst)
            pool.last_tick = now
            return busy / window if window > 0 else 0.0
        if decode:
            pending = self.cluster.pending
            return float(now - pending[0].last_token) if pending else 0.0
        delays = []
        for inst in serving:
            head = (now - inst.waiting[0][2].enqueued) if inst.waiting else 0.0
            delays.append(max(sum(inst.backlog.values()), head))
        return float(np.mean(delays))

    def _decide(self, pool: Pool) -> None:
        now = self.sim.now
        policy = pool.policy
        value = self.metric(pool)
        active, loading, draining = pool.counts()
        ratio = value / policy.target
        if abs(ratio - 1.0) <= TOLERANCE:
            return
        desired = math.ceil(active * ratio - 1e-9)
        desired = max(policy.min_instances, min(policy.max_instances, desired))
        if desired > active + loading:
            need = desired - active - loading
            for inst in sorted((i for i in pool.members if i.state == "draining"),
                               key=lambda i: i.index):  # fmt: skip
                if need == 0:
                    break
                inst.state = "active"
                pool.serving.append(inst)
                need -= 1
            held = active + loading + draining
            room = policy.max_instances - held
            for _ in range(min(need, room)):
                self._create(pool)
            pool.last_change = now
            self._record(pool)
        elif desired < active and loading == 0:
            if now - pool.last_change < policy.scale_down_cooldown_s:
                return
            order = sorted(pool.serving, key=lambda i: (i.outstanding, -i.index))
            for inst in order[: active - max(desired, policy.min_instances)]:
                self._drain(pool, inst)
            pool.last_change = now
            self._record(pool)

    # ----- instance life ------------------------------------------------------------------
    def _create(self, pool: Pool) -> None:
        inst = self.cluster.add_instance(pool.role, pool.timing, pool.key)
        inst.state = "loading"
        inst.created_at = self.sim.now
        pool.members.append(inst)
        pool.created += 1
        self._schedule(pool.load_s, self._loaded, pool, inst)

    def _loaded(self, pool: Pool, inst: Instance) -> None:
        self._fired()
        inst.state = "active"
        inst.active_at = self.sim.now
        pool.busy_mark[inst.index] = self._busy(inst)
        pool.serving.append(inst)
        self._record(pool)
        if pool.role == "decode":
            self.cluster.decode_room()

    def _drain(self, pool: Pool, inst: Instance) -> None:
        inst.state = "draining"
        inst.draining_since = self.sim.now
        pool.serving.remove(inst)
        inst.poke()  # an idle instance retires at once

    def retire(self, inst: Instance) -> None:
        """A draining instance has finished everything it held."""
        pool = self.pools[inst.role]
        inst.state = "retired"
        inst.retired_at = self.sim.now
        pool.retired += 1
        self._record(pool)
        if self.on_retire is not None:
            self.on_retire(inst)

    # ----- outside control (the cluster simulator's time division) -------------------------
    def drain(self, inst: Instance) -> None:
        """Stop routing to ``inst``; it retires when it holds nothing (``on_retire``)."""
        pool = self.pools[inst.role]
        self._drain(pool, inst)
        self._record(pool)

    def revive(self, inst: Instance, load_s: float) -> None:
        """Bring a retired (or draining) instance back: routable after ``load_s``."""
        pool = self.pools[inst.role]
        if inst.state == "draining":  # still holds work: routable again at once
            inst.state = "active"
            pool.serving.append(inst)
            self._record(pool)
            return
        inst.state = "loading"
        inst.retired_at = math.nan
        self._record(pool)
        self._schedule(load_s, self._loaded, pool, inst)

    def _record(self, pool: Pool) -> None:
        pool.trace.append((self.sim.now, *pool.counts()))

    # ----- results ------------------------------------------------------------------------
    def series(self, grid: np.ndarray) -> dict[str, np.ndarray]:
        """Serving and held instances per pool at each grid time (the state just after)."""
        out: dict[str, np.ndarray] = {}
        for role, pool in self.pools.items():
            times = np.array([t for t, *_ in pool.trace])
            counts = np.array([c for _, *c in pool.trace])
            idx = np.clip(np.searchsorted(times, grid, side="right") - 1, 0, None)
            out[f"instances_{role}"] = counts[idx, 0]
            out[f"held_{role}"] = counts[idx].sum(axis=1)
        return out

    def summary(self, end: float) -> dict[str, Any]:
        pools: dict[str, Any] = {}
        for role, pool in self.pools.items():
            held_s = 0.0
            loading_s = 0.0
            for inst in pool.members:
                stop = inst.retired_at if not math.isnan(inst.retired_at) else end
                held_s += max(0.0, stop - inst.created_at)
                loading_s += max(0.0, min(inst.active_at, stop) - inst.created_at)
            times = np.array([t for t, *_ in pool.trace] + [end])
            serving = np.array([c[0] for _, *c in pool.trace], np.float64)
            held = np.array([sum(c) for _, *c in pool.trace], np.float64)
            span = np.diff(np.clip(times, 0.0, end))
            pools[role] = {
                "min_instances": pool.policy.min_instances,
                "max_instances": pool.policy.max_instances,
                "metric": pool.policy.metric,
                "target": pool.policy.target,
                "model_load_s": pool.load_s,
                "initial": pool.initial,
                "final": len(pool.serving),
                "peak_held": int(held.max()),
                "mean_serving_instances": float(serving @ span / end)
                if end > 0
                else float(serving[-1]),
                "instance_time_s": held_s,
                "loading_time_s": loading_s,
                "scale_ups": pool.created,
                "retired": pool.retired,
            }
        return {"enabled": self.cfg.enabled, "interval_s": self.cfg.interval_s, "pools": pools}
