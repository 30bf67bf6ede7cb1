"""A training job on the shared cluster network: its steps replayed as flows.

The step itself is the training-step simulator's (:mod:`aifabric.training.step`): compute,
pipeline schedule, overlap, each collective timed alone on the fabric. On a shared
cluster the collectives that cross the fabric (scale-up traffic stays on the job's own
NVLink, which nothing else uses) are replayed every step as flows on the shared network,
at the moments the alone schedule puts them:

- **dp_gather**: the distributed optimizer's parameter all-gather, at the step's start;
- **dp_reduce**: the gradient reduce-scatter / all-reduce (and the tied-embedding
  all-reduce), ending where the optimizer step starts;
- **pp, ep, tp, cp** (per-micro-batch traffic): the step's bytes in ``chunks`` equal
  parts spread evenly over the pipeline's compute span (a named simplification: the
  per-micro-batch timing inside a chunk is not replayed).

A phase's flows are every flow of its collectives' netsim steps (ring, tree, ...; from
:func:`aifabric.training.comm.flow_steps`, the one home of the flows), each step's flows
summed over its repeats and the collective's calls per step: in the fluid model a ring's
identical steps take the same time back to back as summed. The flows of a phase that move
the same bytes go as one *gang* (one engine flow over all their links, each link weighted
by the member flows crossing it): a collective's flows advance in lock step, as NCCL's
ring and tree steps do (every step waits for its slowest hop, so a ring runs at the pace of
its most loaded link; NCCL's ``ncclPrimitives`` synchronise each step's send and receive).
This is also what keeps a 1,000-GPU job at a few engine flows per phase.

**Slowdown.** Each phase's duration is compared with its duration at the same step of the
job's reference run (the job alone on the same networks, without its storage traffic):
``f = duration / reference``. The step then takes what the step simulator gives with every
collective of that phase ``f`` times slower (its exposed and hidden parts re-derived by the
same overlap rules), so interference costs exactly what the schedule cannot hide, and the
reference run's steps take the step simulator's ``iteration_time_s`` exactly. The alone
run (the job with its own checkpoints and dataset reads) and the shared run are timed
against that reference, so a checkpoint burst slowing the job's own all-reduce shows in
both. A step never ends before its last phase's flows are done.

**Placement.** The step simulator times the job's collectives with the job on the first
GPUs of the fabric; the replay runs on the GPUs the job holds. A job placed elsewhere (a
second job, or after a serving deployment) therefore takes the step simulator's step for
the first GPUs as its alone step: exact on a fabric whose leaves repeat (rail-optimised
scalable units, spine-leaf blocks) when the job starts on a leaf boundary, an
approximation otherwise. Interference is measured where the job really is.

**Storage.** With storage servers, the next step's data is read during the current step
(started with it; the next step waits for it: a data stall), and every
``checkpoint_every_steps`` the job writes a checkpoint; ``sync`` stops training until the
write is done, ``async`` writes in the background (Megatron-Core's asynchronous save).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from aifabric.cluster.shared import BuiltFabric, SharedFabric
from aifabric.cluster.storage import FlowSet, StorageServers, storage_flows
from aifabric.netsim.classes import DEFAULT_CLASS_NAMES

TRAINING = DEFAULT_CLASS_NAMES["training"]
STORAGE = DEFAULT_CLASS_NAMES["storage"]


@dataclass(slots=True)
class Phase:
    name: str
    items: list[int]  # indices of the collectives it replays
    flows: FlowSet  # one chunk's flows
    offsets: list[float]  # s after the step's start, one per chunk


@dataclass(slots=True)
class TrainOptions:
    """How a training workload runs on the cluster (the scenario's workload keys)."""

    steps: int | None = None  # None: as many as fit the duration
    checkpoint_every_steps: int = 0  # 0: no checkpoints
    checkpoint_mode: str = "sync"
    read_dataset: bool = True
    chunks: int = 4


@dataclass(slots=True)
class TrainRecord:
    """What the run measured (s)."""

    step_ends: list[float] = field(default_factory=list)
    step_times: list[float] = field(default_factory=list)  # compute + exposed comm
    step_gpus: list[int] = field(default_factory=list)  # GPUs each step ran on
    data_stall_s: float = 0.0
    checkpoint_stall_s: float = 0.0
    checkpoints: int = 0
    checkpoint_bytes: float = 0.0
    dataset_bytes: float = 0.0
    phase_durations: dict[tuple[int, str, int], float] = field(default_factory=dict)


class TrainingWorkload:
    """One training job on GPUs [lo, hi) of the shared fabric."""

    def __init__(self, name: str, job: Any, opts: Any, shared: SharedFabric,
                 gpus: tuple[int, int], run: TrainOptions, storage: StorageServers | None,
                 baseline: TrainRecord | None = None,
                 cache: dict[str, Any] | None = None, key: str | None = None) -> None:  # fmt: skip
        """``cache``: a dict this job's step simulation is kept in across runs under
        ``key`` (default the name; the step simulator's results do not depend on the
        other workloads)."""
        from aifabric.traffic.storage import checkpoint_bytes, storage_traffic
        from aifabric.training.step import _simulate

        self.name, self.job, self.opts, self.shared, self.run = name, job, opts, shared, run
        self.lo, self.hi = gpus
        self.storage, self.baseline = storage, baseline
        cache = {} if cache is None else cache
        key = name if key is None else key
        if key not in cache:
            cache[key] = _step_pieces(job, opts)
        self.result, self.detail, self.ks, self.items = cache[key]
        self._simulate = _simulate
        sched = self.detail["schedule"]
        self.alone_step = float(sched.iteration)
        self.phases = self._phases(shared.backend)
        traffic = storage_traffic(job, self.alone_step)
        self.checkpoint_total = checkpoint_bytes(job.model.num_params,
                                                 job.checkpoint_bytes_per_param)  # fmt: skip
        self.dataset_per_step = float(traffic["dataset_bytes_per_iteration"])
        self.record = TrainRecord()
        self._iteration_cache: dict[tuple[float, ...], float] = {}
        self._read_pending = False
        self._ckpt_pending = 0
        self._stopped = False
        self._in_step = False
        self._on_stopped: Any = None
        self._read_flows: FlowSet | None = None
        self._ckpt_flows: FlowSet | None = None

    # ----- phases ---------------------------------------------------------------------
    def _phases(self, fabric: BuiltFabric) -> list[Phase]:
        from aifabric.training.comm import TIED_EMBEDDING, flow_steps

        job, sched, dp = self.job, self.detail["schedule"], self.detail["dp"]
        plan = job.plan
        domain = job.domain_size
        per_stage = plan.world_size // plan.pp
        groups: dict[str, list[int]] = {}
        for i, item in enumerate(self.items):
            if item.dimension in ("dp", "dp_expert") or item.note == TIED_EMBEDDING:
                name = "dp_gather" if item.phase == "optimizer" else "dp_reduce"
            else:
                name = item.dimension
            groups.setdefault(name, []).append(i)
        span = float(np.max(sched.rank_end)) if len(sched.rank_end) else 0.0
        reduce_span = float(np.max(dp.reduce + dp.tail)) if len(dp.reduce) else 0.0
        phases = []
        for name, members in groups.items():
            src, dst, size = [], [], []
            for i in members:
                item = self.items[i]
                one_stage = item.dimension == "pp" or item.note in _one_stage_notes()
                for step in flow_steps(job, item, domain, fabric.spec.nics_per_node):
                    out = (step.src // domain) != (step.dst // domain)
                    if not out.any():
                        continue
                    s, d = step.src[out], step.dst[out]
                    share = item.share[np.minimum(s // per_stage, len(item.share) - 1)]
                    mult = item.calls * ((share > 0) if one_stage else share) * step.repeat
                    src.append(s)
                    dst.append(d)
                    size.append(step.size[out] * mult)
            if not src:
                continue
            chunked = name not in ("dp_gather", "dp_reduce")
            k = self.run.chunks if chunked else 1
            s_all = np.concatenate(src) + self.lo
            d_all = np.concatenate(dst) + self.lo
            sizes = np.concatenate(size) / k
            keep = sizes > 0
            ep = fabric.topo.gpu_endpoints()
            key = np.arange(int(keep.sum()), dtype=np.int64)
            routes = fabric.route(ep[s_all[keep]], ep[d_all[keep]], seed=self.opts.seed, key=key)
            flows = _gangs(FlowSet(routes.indptr, routes.links, routes.weights, sizes[keep]))
            if name == "dp_gather":
                offsets = [0.0]
            elif name == "dp_reduce":
                offsets = [max(0.0, self.alone_step - sched.optimizer - reduce_span)]
            else:
                offsets = [c * span / k for c in range(k)]
            phases.append(Phase(name, members, flows, offsets))
        return phases

    # ----- the run --------------------------------------------------------------------
    def start(self) -> None:
        if self.run.steps is None or self.run.steps > 0:
            self._read_next()
        self._begin()

    def stop(self, on_stopped: Any = None) -> None:
        """Start no further step; ``on_stopped()`` once the step in progress (or the stall
        it waits in) is over and the GPUs are free."""
        self._stopped = True
        self._on_stopped = on_stopped
        if not self._in_step and not self._read_pending and not self._ckpt_pending:
            self._stop_now()

    def _stop_now(self) -> None:
        cb, self._on_stopped = self._on_stopped, None
        if cb is not None:
            cb()

    def _begin(self) -> None:
        self._in_step = False
        if self._stopped:
            if not self._ckpt_pending:
                self._stop_now()
            return
        if self.run.steps is not None and len(self.record.step_ends) >= self.run.steps:
            return
        if self._read_pending:  # wait for this step's data
            self._waiting_since = self.shared.sim.now
            self._wait_data = True
            return
        if self._ckpt_pending and self.run.checkpoint_mode == "sync":
            self._waiting_since = self.shared.sim.now
            return
        self._in_step = True
        self._step_start = self.shared.sim.now
        self._ratios: dict[str, list[float]] = {p.name: [] for p in self.phases}
        self._left = sum(len(p.offsets) for p in self.phases)
        if self._left == 0:
            self.shared.sim.schedule(self.alone_step, self._end_step)
        for p, phase in enumerate(self.phases):
            for c, offset in enumerate(phase.offsets):
                self.shared.sim.schedule(offset, self._start_chunk, p, c)
        if self.run.steps is None or len(self.record.step_ends) + 1 < self.run.steps:
            self.shared.sim.schedule(0.0, self._read_next)  # after the chunks due now

    def _start_chunk(self, p: int, c: int) -> None:
        phase = self.phases[p]
        step = len(self.record.step_ends)

        def done(duration: float) -> None:
            self.record.phase_durations[(step, phase.name, c)] = duration
            base = self._baseline(step, phase.name, c, duration)
            self._ratios[phase.name].append(duration / base if base > 0 else 1.0)
            self._left -= 1
            if self._left == 0:
                self._phases_done()

        f = phase.flows
        self.shared.network.start_group(f.indptr, f.links, f.weights, f.sizes, "training", done,
                                        traffic_class=TRAINING)  # fmt: skip

    def _baseline(self, step: int, name: str, chunk: int, duration: float) -> float:
        """The chunk's duration in the alone run (same step; else that run's first step;
        without an alone run this is the alone run: itself)."""
        if self.baseline is None:
            return duration
        got = self.baseline.phase_durations
        return got.get((step, name, chunk), got.get((0, name, chunk), duration))

    def _phases_done(self) -> None:
        factors = tuple(round(float(np.mean(self._ratios[p.name])), 6) for p in self.phases)
        iteration = self._iteration(factors)
        end = max(self._step_start + iteration, self.shared.sim.now)
        self.shared.sim.schedule_at(end, self._end_step)

    def _iteration(self, factors: tuple[float, ...]) -> float:
        """The step simulator's iteration with each phase's collectives slowed by its
        factor (all 1: the alone step, exactly)."""
        if all(f == 1.0 for f in factors):
            return self.alone_step
        got = self._iteration_cache.get(factors)
        if got is None:
            scale = np.ones(len(self.items))
            for phase, f in zip(self.phases, factors, strict=True):
                scale[phase.items] = f
            items = [replace(it, time=it.time * s) for it, s in zip(self.items, scale, strict=True)]
            sim = self._simulate(self.job, self.ks, self.opts, items, None)
            got = self._iteration_cache[factors] = float(sim["schedule"].iteration)
        return got

    def _end_step(self) -> None:
        now = self.shared.sim.now
        rec = self.record
        rec.step_times.append(now - self._step_start)
        rec.step_ends.append(now)
        rec.step_gpus.append(self.job.plan.world_size)
        every = self.run.checkpoint_every_steps
        if self.storage is not None and every and len(rec.step_ends) % every == 0:
            self._checkpoint()
        self._begin()

    # ----- storage --------------------------------------------------------------------
    def _read_next(self) -> None:
        """Start reading the next step's data (nothing without storage servers)."""
        if self.storage is None or not self.run.read_dataset or self.dataset_per_step <= 0:
            return
        flows = self._read_flows
        if flows is None:  # the same every step: routed once
            plan = self.job.plan
            firsts = self.lo + plan.group_ranks("dp")[0]  # the first GPU of each replica
            sizes = np.full(len(firsts), self.dataset_per_step / len(firsts))
            flows = storage_flows(self.storage, firsts, sizes, write=False, seed=self.opts.seed)
            self._read_flows = flows
        self._read_pending = True
        self.record.dataset_bytes += flows.total

        def done(_: float) -> None:
            self._read_pending = False
            if self._stopped and not self._in_step and not self._ckpt_pending:
                self._stop_now()
            elif getattr(self, "_wait_data", False):
                self._wait_data = False
                self.record.data_stall_s += self.shared.sim.now - self._waiting_since
                self._begin()

        self.shared.network.start_group(flows.indptr, flows.links, flows.weights, flows.sizes,
                                        "dataset", done, traffic_class=STORAGE)  # fmt: skip

    def _checkpoint(self) -> None:
        assert self.storage is not None
        flows = self._ckpt_flows
        if flows is None:  # the same every checkpoint: routed once
            gpus = np.arange(self.lo, self.lo + self.job.plan.world_size)
            sizes = np.full(len(gpus), self.checkpoint_total / len(gpus))
            flows = storage_flows(self.storage, gpus, sizes, write=True, seed=self.opts.seed)
            self._ckpt_flows = flows
        self._ckpt_pending += 1
        self.record.checkpoints += 1
        self.record.checkpoint_bytes += flows.total
        sync = self.run.checkpoint_mode == "sync"
        if sync:
            self._waiting_since = self.shared.sim.now

        def done(_: float) -> None:
            self._ckpt_pending -= 1
            if self._stopped and not sync:
                if not self._in_step and not self._read_pending and not self._ckpt_pending:
                    self._stop_now()
            elif sync:
                self.record.checkpoint_stall_s += self.shared.sim.now - self._waiting_since
                self._begin()

        self.shared.network.start_group(flows.indptr, flows.links, flows.weights, flows.sizes,
                                        "checkpoint", done, traffic_class=STORAGE)  # fmt: skip


def merge_records(records: list[TrainRecord]) -> TrainRecord:
    """One record of several consecutive ones (a job run at several widths)."""
    out = TrainRecord()
    for r in records:
        out.step_ends += r.step_ends
        out.step_times += r.step_times
        out.step_gpus += r.step_gpus
        out.data_stall_s += r.data_stall_s
        out.checkpoint_stall_s += r.checkpoint_stall_s
        out.checkpoints += r.checkpoints
        out.checkpoint_bytes += r.checkpoint_bytes
        out.dataset_bytes += r.dataset_bytes
    return out


def _step_pieces(job: Any, opts: Any) -> tuple[Any, Any, Any, Any]:
    """(result, detail, kernel model, timed collectives) of the job's alone step."""
    from aifabric.training.setup import build_network, kernel_model
    from aifabric.training.step import simulate_step_detail

    result, detail = simulate_step_detail(job, opts)
    return result, detail, kernel_model(job, opts), build_network(job, opts).timed_items(job)


def _gangs(f: FlowSet) -> FlowSet:
    """One flow per distinct member size: its links are every member's, each weighted by
    the members crossing it (the engine sums a link listed twice), its size a member's."""
    counts = np.diff(f.indptr)
    owner = np.repeat(np.arange(len(f.sizes)), counts)
    sizes, gang = np.unique(f.sizes, return_inverse=True)
    order = np.argsort(gang[owner], kind="stable")
    per = np.bincount(gang[owner], minlength=len(sizes))
    indptr = np.concatenate([[0], np.cumsum(per)]).astype(np.int64)
    return FlowSet(indptr, f.links[order], f.weights[order], sizes)


def _one_stage_notes() -> tuple[str, ...]:
    from aifabric.training.comm import ONE_STAGE_NOTES

    return ONE_STAGE_NOTES
