"""``simulate cluster``: every workload alone, then all together, on the strategy's networks.

A run builds the strategy's networks (:mod:`aifabric.cluster.shared`), places the workloads
in the order the scenario lists them (the same GPUs in every run), then simulates
``duration`` seconds of them on one discrete-event clock and one flow engine. Each
workload runs once alone (with the storage traffic it makes, on the same networks and GPUs)
and then with all the others; the slowdown is shared against alone. Storage servers take
server slots after every workload.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from aifabric.cluster.config import CLASS_OF_KIND, ClusterConfig, WorkloadConfig
from aifabric.cluster.shared import BuiltFabric, SharedFabric, build_fabric
from aifabric.cluster.storage import StorageServers, place_storage
from aifabric.cluster.train import TrainingWorkload, TrainOptions, TrainRecord
from aifabric.errors import ConfigError

KIND_CLASS = {"kv_transfer": "inference", "prefix_fetch": "inference",
              "prefix_store": "inference", "training": "training", "checkpoint": "storage",
              "dataset": "storage"}  # fmt: skip


@dataclass(slots=True)
class ServeShare:
    """What a serving deployment needs of the shared cluster (ServingSimulation(shared=))."""

    sim: Any
    network: Any
    fabric: BuiltFabric
    gpus: tuple[int, int]


@dataclass(slots=True)
class Prepared:
    """A workload's parsed inputs and its GPUs (the same in every run)."""

    config: WorkloadConfig
    gpus: tuple[int, int]
    network: str  # which network its flows use: fabric | frontend | inference_fabric
    job: Any = None
    opts: Any = None
    serve: Any = None
    cfg: Any = None


def serving_gpus(sc: Any, gpus_per_node: int) -> int:
    """GPUs a serving deployment holds: each pool from a fresh server, instances never
    straddling a server when they fit one, memory servers a server each (the placement
    rules of :mod:`aifabric.serving.fabric`)."""
    cl = sc.cluster
    if cl.mode == "colocated":
        pools = [(cl.instances, cl.tp)]
    else:
        pools = [(cl.prefill_instances, cl.prefill_tp or cl.tp),
                 (cl.decode_instances, cl.decode_tp or cl.tp)]  # fmt: skip
    total = 0
    for count, tp in pools:
        if tp >= gpus_per_node:
            total += count * -(-tp // gpus_per_node) * gpus_per_node
        else:
            per_server = gpus_per_node // tp
            total += -(-count // per_server) * gpus_per_node
    if sc.kv_store.enabled:
        total += sc.kv_store.dram.servers * gpus_per_node
    return total


class ClusterRun:
    """One simulation of the scenario's workloads (all, or one alone)."""

    def __init__(self, cfg: ClusterConfig, prepared: list[Prepared], only: list[str],
                 baseline: Any = None, cache: dict[str, Any] | None = None,
                 reference: bool = False, width: int | None = None) -> None:  # fmt: skip
        """``baseline(name, gpus)``: a training job's reference record at that width (None:
        none, the run is a reference); ``reference``: one step of each training job without
        its storage traffic (the run whose phase durations are the baseline), at ``width``
        GPUs; ``cache``: step simulations kept across runs."""
        self.cfg, self.prepared, self.cache = cfg, prepared, {} if cache is None else cache
        self.baseline, self.reference, self.width = baseline, reference, width
        latency = 0.0
        for p in prepared:
            if p.serve is not None and p.config.name in only:
                latency = max(latency, float(p.serve.network.latency_s))
        self.shared = SharedFabric(cfg.fabric, cfg.frontend, latency=latency,
                                   classes=cfg.classes)  # fmt: skip
        self.inference: BuiltFabric | None = None
        if cfg.strategy == "separate_clusters":
            opts = cfg.inference_fabric or _inference_fabric(cfg, prepared)
            self.inference = build_fabric("inference_fabric", opts, self.shared.network)
        self.storage = self._storage(prepared)
        self.trainers: dict[str, Any] = {}
        self.servers: dict[str, Any] = {}
        self.tdm: Any = None
        from aifabric.serving.cluster import ServingSimulation

        for p in prepared:
            if p.config.name not in only:
                continue
            if p.job is not None:
                gpus = width or (p.gpus[1] - p.gpus[0])
                self.trainers[p.config.name] = self.trainer(p, gpus)
            else:
                fabric = self._fabric_of(p.network)
                share = ServeShare(self.shared.sim, self.shared.network, fabric, p.gpus)
                self.servers[p.config.name] = ServingSimulation(
                    p.serve, shared=share, max_work=cfg.max_work
                )
        if cfg.strategy == "time_division" and self.trainers and self.servers:
            from aifabric.cluster.timediv import TimeDivision

            train = next(p for p in prepared if p.job is not None)
            windows, load = cfg.time_division
            self.tdm = TimeDivision(self.shared.sim, train.gpus, windows, load,
                                    lambda g: self.trainer(train, g),
                                    next(iter(self.servers.values())))  # fmt: skip
            self.trainers = {}

    def trainer(self, p: Prepared, gpus: int) -> TrainingWorkload:
        """The training workload of ``p`` on its first ``gpus`` GPUs (data-parallel width
        gpus / (tp pp cp)), with its baseline."""
        job, opts = job_at(p, gpus)
        run = TrainOptions(**p.config.options)
        if self.reference:
            run.steps = 1  # without storage, every reference step is the same
        base = None if self.baseline is None else self.baseline(p.config.name, gpus)
        work = TrainingWorkload(p.config.name, job, opts, self.shared, (p.gpus[0], p.gpus[0] + gpus),
                                run, None if self.reference else self.storage, base,
                                self.cache, key=f"{p.config.name}@{gpus}")  # fmt: skip
        _check_steps(work, self.cfg)
        return work

    def _fabric_of(self, name: str) -> BuiltFabric:
        if name == "frontend":
            assert self.shared.frontend is not None
            return self.shared.frontend
        if name == "inference_fabric":
            assert self.inference is not None
            return self.inference
        return self.shared.backend

    def _storage(self, prepared: list[Prepared]) -> StorageServers | None:
        st = self.cfg.storage
        if st is None:
            return None
        end = max((p.gpus[1] for p in prepared if p.network != "inference_fabric"), default=0)
        if self.cfg.placement == "separate_leaves":
            end = self.cfg.storage_first_gpu if self.cfg.storage_first_gpu is not None else end
        self.shared._next_gpu = end
        on = self._fabric_of(st.network)
        return place_storage(self.shared, on, st.servers, st.write_bandwidth, st.read_bandwidth)

    def run(self, samples: int = 0) -> float:
        """Simulate the duration; with ``samples``, record that many evenly spaced
        snapshots of per-class tier bytes and per-workload progress (``series``)."""
        wall = time.perf_counter()
        for s in self.servers.values():
            s.start()
        for t in self.trainers.values():
            t.start()
        if self.tdm is not None:
            self.tdm.start()
        self.series: list[dict[str, Any]] = []
        if samples:
            step = self.cfg.duration / samples
            for k in range(1, samples + 1):
                self.shared.sim.schedule_at(k * step, self._sample)
        self.shared.sim.run(self.cfg.duration)
        return time.perf_counter() - wall

    def train_records(self) -> dict[str, TrainRecord]:
        """Each training job's record (under time division, its widths' records merged)."""
        if self.tdm is None:
            return {n: t.record for n, t in self.trainers.items()}
        from aifabric.cluster.train import merge_records

        name = next(p.config.name for p in self.prepared if p.job is not None)
        return {name: merge_records([t.record for t in self.tdm.trainers])}

    def _sample(self) -> None:
        from aifabric.cluster.report import tier_class_bytes

        net = self.shared.network
        # the engine's clock to now, as a flow start does (its progress counts are at its
        # own clock, the last network event; nothing is due: network events run first)
        net._land(net.engine.advance(self.shared.sim.now))
        net._reschedule()
        row: dict[str, Any] = {"t_s": self.shared.sim.now, "bytes": tier_class_bytes(self)}
        row["progress"] = {n: len(r.step_ends) for n, r in self.train_records().items()}
        row["progress"].update({n: len(s.records) for n, s in self.servers.items()})
        if self.tdm is not None:
            from aifabric.cluster.timediv import USES

            counts = np.bincount(self.tdm.ledger.use, minlength=len(USES))
            row["gpus"] = {u: int(c) for u, c in zip(USES, counts, strict=True)}
        self.series.append(row)


def _check_steps(work: TrainingWorkload, cfg: ClusterConfig) -> None:
    """Refuse a training workload whose steps in the duration would take the run past
    about ten minutes: its flow groups (each a start and a finish on the engine, with a
    re-solve each) against :data:`aifabric.guards.MAX_CLUSTER_FLOW_GROUPS`."""
    from aifabric.guards import MAX_CLUSTER_FLOW_GROUPS, check_work, limit_for

    per_step = sum(len(ph.offsets) for ph in work.phases) + 2  # + its data read, its end
    steps = cfg.duration / work.alone_step if work.alone_step > 0 else math.inf
    if work.run.steps is not None:
        steps = min(steps, work.run.steps)
    check_work("simulate cluster", steps * per_step,
               limit_for(MAX_CLUSTER_FLOW_GROUPS, cfg.max_work), "flow groups",
               basis=f"workload {work.name}: steps in the duration x flow groups per step")  # fmt: skip


def _inference_fabric(cfg: ClusterConfig, prepared: list[Prepared]) -> dict[str, Any]:
    """The back-end's plan keys sized to the inference GPUs (separate_clusters' default)."""
    need = max((p.gpus[1] for p in prepared if p.network == "inference_fabric"), default=0)
    opts = {k: v for k, v in cfg.fabric.items() if k != "preset"}
    opts["gpus"] = max(need, 1)
    return opts


def prepare(cfg: ClusterConfig) -> list[Prepared]:
    """Parse each workload and give it its GPUs (server-aligned, in scenario order)."""
    from aifabric.fabric.plan import fabric_spec
    from aifabric.serving.config import parse_scenario

    plan = {k: v for k, v in cfg.fabric.items() if k != "routing"}
    spec, gpu_name, info = fabric_spec(plan)
    gpn = spec.gpus_per_node
    leaves = _server_leaves(spec, info) if cfg.placement == "separate_leaves" else None
    used: set[int] = set()
    backend_next = 0
    inference_next = 0
    out = []
    for i, w in enumerate(cfg.workloads):
        where = f"workloads[{i}] ({w.name})"
        if w.kind == "train":
            scenario = dict(w.spec)
            scenario.setdefault("gpu", gpu_name)
            job, opts = _train_inputs(cfg, scenario, plan, where)
            need = job.plan.world_size
            network = "fabric"
            prep = Prepared(w, (0, 0), network, job=job, opts=opts, cfg=cfg)
        else:
            try:
                sc = parse_scenario(w.spec, w.base)
            except ConfigError as exc:
                raise ConfigError(f"{where}.scenario: {exc}") from None
            if sc.autoscale.enabled:
                raise ConfigError(f"{where}: autoscale is not supported on a shared cluster; "
                                  "give fixed pools")  # fmt: skip
            need = serving_gpus(sc, gpn)
            network = {
                "separate_networks": "frontend",
                "separate_clusters": "inference_fabric",
            }.get(cfg.strategy, "fabric")
            prep = Prepared(w, (0, 0), network, serve=sc)
        gpus = w.gpus if w.gpus is not None else need
        if gpus < need:
            raise ConfigError(f"scenario key {where}.gpus: {gpus} is fewer than the {need} "
                              "GPUs it needs")  # fmt: skip
        if cfg.strategy == "time_division" and prep.serve is not None:
            lo, gpus = 0, 0  # on the pool: set below, once the training job is placed
        elif network == "inference_fabric":
            lo = inference_next if w.first_gpu is None else w.first_gpu
            inference_next = lo + -(-gpus // gpn) * gpn
        else:
            lo = -(-backend_next // gpn) * gpn if w.first_gpu is None else w.first_gpu
            if leaves is not None and w.first_gpu is None:
                lo = _first_free_leaf(lo // gpn, leaves, used) * gpn
            if lo % gpn or lo < backend_next:
                raise ConfigError(f"scenario key {where}.first_gpu: {lo} must start a free "
                                  f"server (a multiple of {gpn} from {backend_next})")  # fmt: skip
            backend_next = lo + gpus
            if backend_next > spec.num_gpus:
                raise ConfigError(f"scenario key {where}: GPUs {lo}..{backend_next - 1} do not "
                                  f"fit the fabric's {spec.num_gpus:,} GPUs; give more "
                                  "fabric.gpus")  # fmt: skip
        prep.gpus = (lo, lo + gpus)
        if leaves is not None and network != "inference_fabric":
            for server in range(lo // gpn, -(-(lo + gpus) // gpn)):
                used |= leaves[server] if server < len(leaves) else set()
        out.append(prep)
    if leaves is not None and cfg.storage is not None:
        end = max((p.gpus[1] for p in out if p.network != "inference_fabric"), default=0)
        cfg.storage_first_gpu = _first_free_leaf(-(-end // gpn), leaves, used) * gpn
    serves = [(i, p) for i, p in enumerate(out) if p.serve is not None]
    for i, p in serves[1:]:
        first, mine = serves[0][1].serve.network.latency_s, p.serve.network.latency_s
        if mine != first:
            # the shared FlowNetwork adds one latency to every transfer (the largest would
            # apply to all, slowing a deployment by another's latency, not by sharing)
            raise ConfigError(f"scenario key workloads[{i}] ({p.config.name}).scenario.network."
                              f"latency_s: {mine!r} differs from {serves[0][1].config.name}'s "
                              f"{first!r}; serving workloads on one cluster share one "
                              "per-transfer latency")  # fmt: skip
    if cfg.strategy == "time_division":
        _time_division(cfg, out, gpn)
    if cfg.frontend is not None:
        _check_reach(cfg, out, gpn, "frontend", cfg.frontend)
    if cfg.inference_fabric is not None:
        _check_reach(cfg, out, gpn, "inference_fabric", cfg.inference_fabric)
    return out


def _server_leaves(spec: Any, info: dict[str, Any]) -> list[set[int]]:
    """Leaf switches under each server's NIC ports (plane 0 included, every plane)."""
    from aifabric.fabric.plan import build
    from aifabric.fabric.routing import Router

    topo = build(spec, info.get("design"))
    router = Router(topo)
    per = topo.nics_per_node * topo.planes
    return [set(router.ep_leaf[s * per : (s + 1) * per].tolist()) for s in range(topo.num_nodes)]


def _first_free_leaf(server: int, leaves: list[set[int]], used: set[int]) -> int:
    """The first server from ``server`` none of whose leaves is in ``used`` (or past the
    end: the caller's range check refuses it)."""
    while server < len(leaves) and leaves[server] & used:
        server += 1
    return server


def _check_reach(cfg: ClusterConfig, prepared: list[Prepared], gpn: int, network: str,
                 options: dict[str, Any]) -> None:  # fmt: skip
    """A front-end network or inference fabric reaches every GPU and storage server whose
    flows cross it (GPU ``g`` of a workload on it is that network's GPU ``g``; storage
    servers take the server slots after every back-end workload,
    :mod:`aifabric.cluster.storage`)."""
    from aifabric.fabric.plan import fabric_spec

    spec, _, _ = fabric_spec({k: v for k, v in options.items() if k != "routing"})
    need, what = 0, ""
    for p in prepared:
        if p.network == network and p.gpus[1] > need:
            need, what = p.gpus[1], f"workload {p.config.name}'s"
    if network == "frontend" and cfg.storage is not None and cfg.storage.network == network:
        end = max((p.gpus[1] for p in prepared if p.network != "inference_fabric"), default=0)
        if cfg.placement == "separate_leaves" and cfg.storage_first_gpu is not None:
            end = cfg.storage_first_gpu  # as ClusterRun._storage places them
        need = -(-end // gpn) * gpn + cfg.storage.servers * gpn
        what = "the storage servers', placed after every workload,"
    if need > spec.num_gpus:
        raise ConfigError(f"scenario key {network}.gpus: its {spec.num_gpus:,} GPUs do not reach "
                          f"GPU {need - 1} ({what} flows cross it); give at least "
                          f"{need}")  # fmt: skip


def _time_division(cfg: ClusterConfig, prepared: list[Prepared], gpn: int) -> None:
    """Put the serving deployment on the training job's pool; check the schedule."""
    from aifabric.cluster.timediv import parse_schedule

    train = next(p for p in prepared if p.job is not None)
    serve = next(p for p in prepared if p.serve is not None)
    cl = serve.serve.cluster
    if cl.mode != "colocated" or serve.serve.kv_store.enabled:
        raise ConfigError("strategy time_division: the serving workload must be colocated "
                          "instances without a KV store (its instances move one by one)")  # fmt: skip
    pool = train.gpus[1] - train.gpus[0]
    need = serving_gpus(serve.serve, gpn)
    if need > pool:
        raise ConfigError(f"strategy time_division: the serving deployment needs {need} GPUs, "
                          f"more than the pool's {pool} (the training job's)")  # fmt: skip
    serve.gpus = train.gpus
    plan = train.job.plan
    cfg.time_division = parse_schedule(cfg.time_division_raw, pool, plan.tp * plan.pp * plan.cp,
                                       cl.tp)  # fmt: skip


def _train_inputs(cfg: ClusterConfig, scenario: dict[str, Any], plan: dict[str, Any],
                  where: str) -> tuple[Any, Any]:  # fmt: skip
    """A training workload's (job, step options) on the cluster's fabric (at its GPU 0)."""
    from aifabric.training.scenario import training_inputs

    try:
        job, opts = training_inputs(scenario, {}, {"network": "flow",
                                                   "routing": cfg.fabric["routing"],
                                                   "seed": cfg.seed})  # fmt: skip
    except ConfigError as exc:
        raise ConfigError(f"{where}.job: {exc}") from None
    return job, replace(opts, fabric=plan)


def job_at(p: Prepared, gpus: int) -> tuple[Any, Any]:
    """The training workload's (job, options) at ``gpus`` GPUs: data-parallel width
    gpus / (tp x pp x cp), the same global batch (time division shrinks and grows it)."""
    plan = p.job.plan
    if gpus == plan.world_size:
        return p.job, p.opts
    unit = plan.tp * plan.pp * plan.cp
    scenario = dict(p.config.spec)
    scenario.setdefault("gpu", p.job.gpu.name)
    scenario["dp"] = gpus // unit
    return _train_inputs(p.cfg, scenario, p.opts.fabric, f"workloads ({p.config.name}) at "
                         f"{gpus} GPUs")  # fmt: skip


def simulate_cluster(cfg: ClusterConfig, *, with_series: bool = False,
                     samples: int = 120) -> tuple[dict[str, Any], str]:  # fmt: skip
    """The JSON result of a cluster scenario (base units), and with ``with_series`` the
    time series CSV of the shared run (else "")."""
    wall0 = time.perf_counter()
    prepared = prepare(cfg)
    names = [p.config.name for p in prepared]
    cache: dict[str, Any] = {}
    # Baselines: one step of each training job (at each width it runs at) alone without
    # its storage traffic, where every phase takes the step simulator's time.
    refs: dict[tuple[str, int], TrainRecord] = {}

    def baseline(name: str, gpus: int) -> TrainRecord:
        if (name, gpus) not in refs:
            ref = ClusterRun(cfg, prepared, [name], cache=cache, reference=True, width=gpus)
            ref.run()
            refs[(name, gpus)] = ref.trainers[name].record
        return refs[(name, gpus)]

    alone: dict[str, ClusterRun] = {}
    for name in names:
        run = ClusterRun(cfg, prepared, [name], baseline, cache)
        run.run()
        alone[name] = run
    shared = ClusterRun(cfg, prepared, names, baseline, cache)
    shared.run(samples if with_series else 0)
    from aifabric.cluster.report import cluster_result, series_csv

    result = cluster_result(cfg, prepared, alone, shared, time.perf_counter() - wall0)
    return result, series_csv(shared) if with_series else ""


def class_of(kind: str) -> str:
    return KIND_CLASS[kind]


def workload_class(kind: str) -> str:
    return CLASS_OF_KIND[kind]


def link_layers(fabric: BuiltFabric) -> np.ndarray:
    """Tier code (1 endpoint-leaf, 2 leaf-spine, 3 spine-core) of each directed link."""
    out: np.ndarray = fabric.router.layer
    return out
