"""One training step, simulated: compute per stage, the pipeline schedule, the collectives
on the fabric, what overlaps, stragglers; step time, MFU, memory.

Assembly (each piece has one home: ``compute`` for kernels, ``traffic.training`` for what
is sent, ``comm`` for how long a call takes, ``schedule`` for the pipeline's order):

- Model chunk c of pipeline rank s holds virtual stage c p + s with the plan's
  ``virtual_stage_layers`` (an even split unless ``pipeline_layers``); the first chunk adds
  the embedding, the last the final norm, LM head and loss.
- A chunk's forward (backward) per micro-batch = its compute + the exposed part of its
  TP / CP / EP collectives. TP is exposed unless ``tp_comm_overlap`` (Transformer Engine's
  userbuffer overlap: hidden behind the chunk's GEMMs), CP's ring exchange hides behind
  core attention, EP's all-to-alls are exposed (Megatron-Core's default dispatcher), and
  FSDP's per-layer gathers hide behind the chunk's compute. Hidden communication still
  slows compute by ``overlap_compute_slowdown`` of its time (NCCL's kernels hold SMs).
- The pipeline runs Megatron-Core's 1F1B or interleaved order (``schedule``) with each
  transfer taking the simulated send/recv time.
- Data parallelism (Megatron-Core DDP, ``distributed_data_parallel.py``): gradients are
  reduced in buckets of max(4e7, 1e6 x dp) parameters. With ``overlap_grad_reduce`` the
  buckets go out during the last micro-batch's backward on each rank: exposed =
  max(C / buckets, C - that backward's time); without, all of C follows the backward.
  The distributed optimizer's parameter all-gather overlaps the next step's first forward
  (``overlap_param_gather``), so a rank may start its first forward once the rest of it is
  done: later stages hide it in their warm-up wait. The optimizer step runs between.
- Stragglers: each GPU's passes are scaled by a seeded lognormal jitter of width
  ``jitter`` (the standard deviation of log time) and by the factor of slow GPUs or nodes;
  a pass of a stage waits for its slowest TP x CP member (they synchronise every layer),
  the step for its slowest data-parallel replica (the gradient reduction). Each cost is
  reported against the same step without it.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from aifabric.errors import ConfigError
from aifabric.spec.jobs import TrainingJob
from aifabric.training.comm import CommItem
from aifabric.training.compute import LayerShape, Work, layer_times, optimizer_time
from aifabric.training.kernels import KernelModel
from aifabric.training.schedule import Timeline, simulate_pipeline

NETWORKS = ("flow", "analytic")
FLOW_DEFAULT_MAX_GPUS = 4096
EMBEDDING_NOTES = ("embedding (first stage)",)
LAST_NOTES = ("LM head (last stage)", "cross-entropy, 3 x fp32/token")
LAYER_DIMENSIONS = ("tp", "cp", "ep")


@dataclass(frozen=True, slots=True, kw_only=True)
class StepOptions:
    """How to simulate the step (the job says what it is)."""

    network: str | None = None  # flow | analytic | None: flow up to 4,096 GPUs
    fabric: dict[str, Any] | None = None  # plan options; None: a fabric sized to the job
    routing: str = "ecmp"
    seed: int = 0
    flash_attention: bool = True
    tp_comm_overlap: bool = False
    overlap_grad_reduce: bool = True
    overlap_param_gather: bool = True
    expert_load_imbalance: float = 1.0
    jitter: float = 0.0
    slow_gpus: tuple[tuple[int, float], ...] = ()
    slow_nodes: tuple[tuple[int, float], ...] = ()
    fail: tuple[str, ...] = ()
    degrade: tuple[str, ...] = ()
    require_fit: bool = False
    dataset_tokens_given: bool = False
    calibration: Any = None  # a ComputeCalibration; None: the catalog's for the GPU

    def __post_init__(self) -> None:
        if self.network not in (None, *NETWORKS):
            raise ConfigError(f"network(={self.network!r}) must be flow or analytic")
        if not 0 <= self.jitter <= 1:
            raise ConfigError(f"jitter(={self.jitter}) must be in [0, 1] (std. dev. of log time)")
        if not 1 <= self.expert_load_imbalance <= 64:
            raise ConfigError(
                f"expert_load_imbalance(={self.expert_load_imbalance}) must be in [1, 64]"
            )
        for what, pairs in (("slow_gpu", self.slow_gpus), ("slow_node", self.slow_nodes)):
            for index, factor in pairs:
                if index < 0 or not 1 <= factor <= 100:
                    raise ConfigError(f"{what} {index}:{factor}: the index must be >= 0 and the "
                                      "factor in [1, 100] (2 = twice as slow)")  # fmt: skip


@dataclass(slots=True)
class StageModel:
    """Per (stage, chunk) compute and exposed communication of one micro-batch (s)."""

    forward: np.ndarray
    backward: np.ndarray
    forward_compute: np.ndarray
    backward_compute: np.ndarray
    exposed: dict[str, np.ndarray] = field(default_factory=dict)  # per dimension, (p, v)
    hidden: dict[str, np.ndarray] = field(default_factory=dict)
    hardware_flop: float = 0.0  # per GPU of each stage, summed over stages, per micro-batch
    kernel_model_flop: float = 0.0  # the same sum without what recompute reruns


def chunk_layers(job: TrainingJob) -> tuple[np.ndarray, np.ndarray]:
    """(layers, MoE layers) of each (stage, chunk), shape (p, v)."""
    plan, model = job.plan, job.model
    p, v = plan.pp, plan.virtual_stages
    counts = np.asarray(plan.virtual_stage_layers(model), float)
    end = np.cumsum(counts)
    start = end - counts
    moe = np.clip(end - np.maximum(start, model.num_dense_layers), 0, None)
    moe = np.minimum(moe, counts)
    # virtual stage g = c p + s -> [s, c]
    return counts.reshape(v, p).T.copy(), moe.reshape(v, p).T.copy()


def stage_model(job: TrainingJob, ks: KernelModel, opts: StepOptions,
                items: list[CommItem]) -> StageModel:  # fmt: skip
    plan = job.plan
    p, v = plan.pp, plan.virtual_stages
    m = plan.num_microbatches(job.global_batch)
    shape = LayerShape(model=job.model, plan=plan, seq_len=job.seq_len,
                       flash_attention=opts.flash_attention,
                       expert_load_imbalance=opts.expert_load_imbalance)  # fmt: skip
    lt = layer_times(ks, shape, job.recompute)
    layers, moe = chunk_layers(job)
    dense = layers - moe
    fw: list[list[Work]] = [[Work()] * v for _ in range(p)]
    bw: list[list[Work]] = [[Work()] * v for _ in range(p)]
    for s in range(p):
        for c in range(v):
            fw[s][c] = lt.dense_forward.scaled(dense[s, c]) + lt.moe_forward.scaled(moe[s, c])
            bw[s][c] = lt.dense_backward.scaled(dense[s, c]) + lt.moe_backward.scaled(moe[s, c])
    fw[0][0] = fw[0][0] + lt.first_forward
    bw[0][0] = bw[0][0] + lt.first_backward
    fw[p - 1][v - 1] = fw[p - 1][v - 1] + lt.last_forward
    bw[p - 1][v - 1] = bw[p - 1][v - 1] + lt.last_backward
    fc = np.array([[w.total for w in row] for row in fw])
    bc = np.array([[w.total for w in row] for row in bw])
    gemm_f = np.array([[w.gemm for w in row] for row in fw])
    gemm_b = np.array([[w.gemm for w in row] for row in bw])
    attn_f = np.array([[w.attention for w in row] for row in fw])
    attn_b = np.array([[w.attention for w in row] for row in bw])
    hw = sum(w.hardware_flop for row in fw + bw for w in row)
    mf = sum(w.model_flop for row in fw + bw for w in row)
    model = StageModel(fc.copy(), bc.copy(), fc, bc, hardware_flop=hw, kernel_model_flop=mf)
    layer_share = layers / np.maximum(layers.sum(axis=1, keepdims=True), 1e-30)
    moe_share = moe / np.maximum(moe.sum(axis=1, keepdims=True), 1e-30)
    per_chunk: dict[tuple[str, str], np.ndarray] = {}
    for item in items:
        zero3 = item.dimension in ("dp", "dp_expert") and plan.zero == 3
        if item.dimension not in LAYER_DIMENSIONS and not zero3:
            continue
        if item.phase not in ("forward", "backward"):
            continue
        stage = item.per_stage() / m  # s per micro-batch on each stage
        if item.note in EMBEDDING_NOTES:
            where = np.zeros((p, v))
            where[0, 0] = 1.0
        elif item.note in LAST_NOTES:
            where = np.zeros((p, v))
            where[p - 1, v - 1] = 1.0
        else:
            where = moe_share if item.dimension == "ep" else layer_share
        key = ("dp" if zero3 else item.dimension, item.phase)
        per_chunk[key] = per_chunk.get(key, np.zeros((p, v))) + stage[:, None] * where
    slowdown = ks.calibration.overlap_compute_slowdown
    for (dim, phase), comm in per_chunk.items():
        gemm, attn, comp = ((gemm_f, attn_f, fc) if phase == "forward"
                            else (gemm_b, attn_b, bc))  # fmt: skip
        if dim == "tp":
            window = gemm if opts.tp_comm_overlap else np.zeros_like(comm)
        elif dim == "cp":
            window = attn
        elif dim == "dp":
            window = comp
        else:
            window = np.zeros_like(comm)
        exposed = np.maximum(comm - window, 0.0)
        hidden = comm - exposed
        extra = exposed + slowdown * hidden
        if phase == "forward":
            model.forward += extra
        else:
            model.backward += extra
        model.exposed[dim] = model.exposed.get(dim, np.zeros((p, v))) + exposed
        model.hidden[dim] = model.hidden.get(dim, np.zeros((p, v))) + hidden
    return model


@dataclass(slots=True)
class DataParallel:
    """Per-stage data-parallel times per iteration (s)."""

    reduce: np.ndarray  # gradient reduce-scatter / all-reduce
    gather: np.ndarray  # distributed-optimizer parameter all-gather
    tail: np.ndarray  # not overlapped: tied-embedding all-reduce
    buckets: np.ndarray


def data_parallel(job: TrainingJob, items: list[CommItem]) -> DataParallel:
    plan = job.plan
    p = plan.pp
    reduce, gather, tail = np.zeros(p), np.zeros(p), np.zeros(p)
    if plan.zero < 3:
        for item in items:
            if item.dimension in ("dp", "dp_expert"):
                target = gather if item.phase == "optimizer" else reduce
                target += item.per_stage()
    for item in items:
        if item.note == "tied embedding grads":
            tail += item.per_stage()
    dense, expert = plan.params_per_gpu(job.model)
    bucket = max(4e7, 1e6 * plan.group_size("dp_cp"))
    buckets = np.full(p, max(1.0, math.ceil((dense + expert) / bucket)))
    return DataParallel(reduce, gather, tail, buckets)


def _factors(job: TrainingJob, opts: StepOptions, m: int) -> np.ndarray | None:
    """Per (replica, stage, chunk, micro-batch) slowdown of passes, or None when uniform."""
    plan = job.plan
    if not opts.jitter and not opts.slow_gpus and not opts.slow_nodes:
        return None
    world, v = plan.world_size, plan.virtual_stages
    per_gpu = np.ones(world)
    for rank, factor in opts.slow_gpus:
        if rank >= world:
            raise ConfigError(f"slow_gpu {rank}: the job has GPUs 0..{world - 1}")
        per_gpu[rank] *= factor
    for node, factor in opts.slow_nodes:
        d = job.domain_size
        if node * d >= world:
            raise ConfigError(f"slow_node {node}: the job has nodes 0..{(world - 1) // d}")
        per_gpu[node * d : (node + 1) * d] *= factor
    # Rank = tp_i + tp (cp_i + cp (dp_i + dp pp_i)): group by (pp, dp), members tp x cp.
    grid = per_gpu.reshape(plan.pp, plan.dp, plan.cp * plan.tp)
    members = plan.cp * plan.tp
    shape = (plan.dp, plan.pp, v, m, members)
    if opts.jitter:
        rng = np.random.default_rng(opts.seed)
        draws = np.exp(rng.normal(0.0, opts.jitter, size=shape))
    else:
        draws = np.ones(shape)
    draws *= grid.transpose(1, 0, 2)[:, :, None, None, :]
    out: np.ndarray = draws.max(axis=-1)
    return out


@dataclass(slots=True)
class Schedule:
    iteration: float
    timeline: Timeline
    replica: int
    rank_end: np.ndarray
    exposed_dp: np.ndarray
    exposed_gather: np.ndarray
    optimizer: float


def run_schedule(job: TrainingJob, sm: StageModel, dp: DataParallel, p2p: float,
                 optimizer: float, opts: StepOptions,
                 factors: np.ndarray | None) -> Schedule:  # fmt: skip
    plan = job.plan
    m = plan.num_microbatches(job.global_batch)
    first_fwd = sm.forward[:, 0]
    last_bwd = sm.backward.sum(axis=1)
    if opts.overlap_param_gather and plan.zero in (1, 2):
        gather = np.maximum(dp.gather / dp.buckets, dp.gather - first_fwd)
    else:
        gather = dp.gather.copy()
    if opts.overlap_grad_reduce:
        reduce = np.maximum(dp.reduce / dp.buckets, dp.reduce - last_bwd)
    else:
        reduce = dp.reduce.copy()
    tail = reduce + dp.tail + optimizer
    replicas = [None] if factors is None else list(range(factors.shape[0]))
    best: Schedule | None = None
    for r in replicas:
        if r is None:
            fwd, bwd = sm.forward, sm.backward
        else:
            f = factors[r]  # type: ignore[index]
            fwd = sm.forward[:, :, None] + sm.forward_compute[:, :, None] * (f - 1.0)
            bwd = sm.backward[:, :, None] + sm.backward_compute[:, :, None] * (f - 1.0)
        tl = simulate_pipeline(fwd, bwd, m, p2p=p2p, start=gather)
        ends = np.array([ops[-1].end if ops else 0.0 for ops in tl.ranks])
        iteration = float((ends + tail).max())
        if best is None or iteration > best.iteration:
            best = Schedule(iteration, tl, r or 0, ends, reduce, gather, optimizer)
    assert best is not None
    return best


def simulate_step(job: TrainingJob, opts: StepOptions) -> dict[str, Any]:
    """Simulate one step of ``job``; the JSON result (base units)."""
    return simulate_step_detail(job, opts)[0]


def simulate_step_detail(
    job: TrainingJob, opts: StepOptions
) -> tuple[dict[str, Any], dict[str, Any]]:
    """(JSON result, the simulation's pieces: stage model, schedule, data parallel)."""
    from aifabric.training.report import step_result
    from aifabric.training.setup import build_network, kernel_model

    wall0 = time.perf_counter()
    ks = kernel_model(job, opts)
    network = opts.network or (
        "flow" if job.plan.world_size <= FLOW_DEFAULT_MAX_GPUS else "analytic"
    )
    opts = replace(opts, network=network)
    net = build_network(job, opts)
    items = net.timed_items(job)
    base = _simulate(job, ks, opts, items, factors=None)
    costs: dict[str, float] = {}
    final = base
    m = job.plan.num_microbatches(job.global_batch)
    if opts.jitter:
        j = _simulate(
            job, ks, opts, items, _factors(job, replace(opts, slow_gpus=(), slow_nodes=()), m)
        )
        costs["jitter"] = j["schedule"].iteration - base["schedule"].iteration
    if opts.slow_gpus or opts.slow_nodes:
        s = _simulate(job, ks, opts, items, _factors(job, replace(opts, jitter=0.0), m))
        costs["slow_gpus"] = s["schedule"].iteration - base["schedule"].iteration
    if costs:
        final = _simulate(job, ks, opts, items, _factors(job, opts, m))
    if opts.fail or opts.degrade:
        healthy = build_network(job, replace(opts, fail=(), degrade=()))
        h = _simulate(job, ks, opts, healthy.timed_items(job), None)
        costs["links"] = base["schedule"].iteration - h["schedule"].iteration
    result = step_result(job, opts, ks, net, items, final, costs, time.perf_counter() - wall0)
    if opts.require_fit and not result["fits_in_memory"]:
        from aifabric.errors import CapacityError

        need = result["memory_per_gpu_bytes"]["total"] / 2**30
        raise CapacityError(f"the plan needs {need:.1f} GiB per GPU but {job.gpu.name} has "
                            f"{job.gpu.hbm_bytes / 2**30:.1f} GiB; add recompute, tp/pp/zero, or "
                            "drop --require-fit")  # fmt: skip
    return result, final


def _simulate(job: TrainingJob, ks: KernelModel, opts: StepOptions, items: list[CommItem],
              factors: np.ndarray | None) -> dict[str, Any]:  # fmt: skip
    sm = stage_model(job, ks, opts, items)
    dp = data_parallel(job, items)
    p2p = max((it.time for it in items if it.dimension == "pp" and it.collective == "send_recv"),
              default=0.0)  # fmt: skip
    optimizer = optimizer_time(ks, held_params(job))
    sched = run_schedule(job, sm, dp, p2p, optimizer, opts, factors)
    return {"stage": sm, "dp": dp, "schedule": sched, "p2p": p2p}


def held_params(job: TrainingJob) -> float:
    """Parameters whose optimizer step one GPU runs (sharded by the distributed optimizer)."""
    plan = job.plan
    dense, expert = plan.params_per_gpu(job.model)
    if plan.zero >= 1:
        return dense / plan.group_size("dp_cp") + expert / plan.group_size("edp")
    return dense + expert
