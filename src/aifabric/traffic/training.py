"""Training traffic per iteration and per epoch, by parallel dimension, phase and collective.

Algorithmic accounting (default) puts each parallel dimension's collectives through the
collectives module with real algorithms (ring inside one network scope, hierarchical when a
group spans scale-up domains):

- TP (Megatron, Shoeybi et al. 2019): 2 all-reduces of the micro-batch's hidden states per
  layer forward and 2 backward; with sequence parallelism (Korthikanti et al. 2022) each
  becomes an all-gather + reduce-scatter pair of the same bytes.
- CP (ring attention): per layer, K/V of every chunk circulate (an all-gather) forward; K/V
  again plus dK/dV (reduce-scatter) backward.
- PP (1F1B, Narayanan et al. 2021): per micro-batch one activation send forward and one
  gradient send backward at each stage boundary; 1/tp of it per rank under SP.
- EP (Megatron-Core MoE): dispatch + combine all-to-all per MoE layer forward, two more
  backward; each token goes to experts_per_token experts (uniform routing assumed).
- DP: gradient all-reduce (ZeRO-0); reduce-scatter of gradients + all-gather of updated
  parameters (ZeRO-1/2, distributed optimizer); FSDP/ZeRO-3 also all-gathers parameters
  before forward and backward of every micro-batch (ZeRO paper: 1.5x plain DP).
  Non-expert gradients are reduced over dp x cp ranks, expert gradients over dp x cp / ep.

Seed accounting reproduces seed 002's formulas (traffic.seeds) exactly.
"""

from __future__ import annotations

from dataclasses import dataclass

from aifabric.errors import ConfigError
from aifabric.spec.jobs import TrainingJob
from aifabric.spec.model import dtype_bytes
from aifabric.traffic.collectives import SCALE_OUT, SCALE_UP
from aifabric.traffic.rows import DomainLayout, TrafficRow, collective_rows, p2p_rows, sum_rows
from aifabric.traffic.seeds import seed_fsdp_epoch, seed_training_epoch
from aifabric.traffic.storage import storage_traffic


@dataclass(frozen=True, slots=True)
class TrainingTraffic:
    """Result of ``training_traffic``: rows per iteration and the epoch totals."""

    job: TrainingJob
    rows: tuple[TrafficRow, ...]
    tokens_per_iteration: float
    compute_time: float  # s per iteration at the job's MFU

    @property
    def total_bytes(self) -> float:
        return sum_rows(list(self.rows))

    @property
    def iterations(self) -> int:
        return self.job.iterations_per_epoch

    def to_dict(self) -> dict[str, object]:
        job, world = self.job, self.job.plan.world_size
        rows = list(self.rows)
        total = self.total_bytes
        by_dim: dict[str, float] = {}
        for r in rows:
            by_dim[r.dimension] = by_dim.get(r.dimension, 0.0) + r.total_bytes
        scale_out = sum_rows(rows, SCALE_OUT)
        return {
            "model": job.model.name,
            "gpu": job.gpu.name,
            "plan": job.plan.summary(),
            "accounting": job.accounting,
            "scaleup_domain_size": job.domain_size,
            "per_iteration": {
                "tokens": self.tokens_per_iteration,
                "total_bytes": total,
                "bytes_per_gpu": total / world,
                "scale_up_bytes": sum_rows(rows, SCALE_UP),
                "scale_out_bytes": scale_out,
                "scale_out_bytes_per_gpu": scale_out / world,
                "by_dimension": by_dim,
                "compute_time_s": self.compute_time,
                "required_scale_out_bandwidth_per_gpu": scale_out / world / self.compute_time,
                "rows": [r.to_dict() for r in rows],
            },
            "per_epoch": {
                "iterations": self.iterations,
                "tokens": self.tokens_per_iteration * self.iterations,
                "total_bytes": total * self.iterations,
                "bytes_per_gpu": total * self.iterations / world,
                "scale_out_bytes": scale_out * self.iterations,
                "compute_time_s": self.compute_time * self.iterations,
            },
            "storage": storage_traffic(job, self.compute_time),
        }


def training_traffic(job: TrainingJob) -> TrainingTraffic:
    """Traffic of one iteration of ``job`` in its accounting, plus compute-time estimate."""
    if job.accounting == "seed":
        rows = seed_rows(job)
        tokens = job.dataset_tokens / job.iterations_per_epoch
    else:
        rows = algorithmic_rows(job)
        tokens = float(job.global_batch * job.seq_len)
    flops = job.model.training_flops_per_token(job.seq_len) * tokens
    compute = flops / (job.plan.world_size * job.gpu.peak_flops(job.compute_dtype) * job.mfu)
    return TrainingTraffic(job, tuple(rows), tokens, compute)


def _group_rows(
    job: TrainingJob,
    dimension: str,
    *,
    phase: str,
    operation: str,
    calls: float,
    size: float,
    group: str | None = None,
    label: str | None = None,
) -> list[TrafficRow]:
    plan = job.plan
    group = group or dimension
    n = plan.group_size(group)
    return collective_rows(
        dimension=label or dimension,
        phase=phase,
        operation=operation,
        group_size=n,
        num_groups=plan.world_size // n,
        calls=calls,
        size=size,
        layout=_layout(job, group),
        world_size=plan.world_size,
        algorithm=job.algorithm,
    )


def algorithmic_rows(job: TrainingJob) -> list[TrafficRow]:
    """Rows of one iteration with real collective algorithms."""
    rows = _tp_rows(job) + _cp_rows(job) + _pp_rows(job) + _ep_rows(job)
    return rows + _dp_rows(job)


def _tokens_per_microbatch(job: TrainingJob) -> float:
    """Tokens one rank processes per micro-batch (the sequence is split by cp)."""
    return job.plan.micro_batch_size * job.seq_len / job.plan.cp


def _tp_rows(job: TrainingJob) -> list[TrafficRow]:
    plan, model = job.plan, job.model
    if plan.tp == 1:
        return []
    size = _tokens_per_microbatch(job) * model.hidden_bytes_per_token(plan.activation_dtype)
    mb = plan.num_microbatches(job.global_batch)
    calls = 2 * plan.layers_per_stage(model) * mb
    rows: list[TrafficRow] = []
    for phase in ("forward", "backward"):
        ops = ("all_gather", "reduce_scatter") if plan.sequence_parallel else ("all_reduce",)
        for op in ops:
            rows += _group_rows(job, "tp", phase=phase, operation=op, calls=calls, size=size)
    return rows


def _cp_rows(job: TrainingJob) -> list[TrafficRow]:
    plan, model = job.plan, job.model
    if plan.cp == 1:
        return []
    kv_width = model.attention_kv_width() / min(
        plan.tp, model.num_kv_heads if model.attention != "mla" else plan.tp
    )
    size = plan.micro_batch_size * job.seq_len * kv_width * dtype_bytes(plan.activation_dtype)
    calls = plan.layers_per_stage(model) * plan.num_microbatches(job.global_batch)
    rows = _group_rows(job, "cp", phase="forward", operation="all_gather", calls=calls, size=size)
    for op in ("all_gather", "reduce_scatter"):
        rows += _group_rows(job, "cp", phase="backward", operation=op, calls=calls, size=size)
    return rows


def _pp_rows(job: TrainingJob) -> list[TrafficRow]:
    plan, model = job.plan, job.model
    if plan.pp == 1:
        return []
    size = _tokens_per_microbatch(job) * model.hidden_bytes_per_token(plan.activation_dtype)
    if plan.sequence_parallel:
        size /= plan.tp
    mb = plan.num_microbatches(job.global_batch)
    rows: list[TrafficRow] = []
    for phase in ("forward", "backward"):
        rows += p2p_rows(
            dimension="pp",
            phase=phase,
            chain_length=plan.pp,
            num_chains=plan.world_size // plan.pp,
            calls_per_hop=mb,
            size=size,
            layout=_layout(job, "pp"),
            world_size=plan.world_size,
        )
    return rows


def _ep_rows(job: TrainingJob) -> list[TrafficRow]:
    plan, model = job.plan, job.model
    if plan.ep == 1 or not model.is_moe:
        return []
    tokens = _tokens_per_microbatch(job) / (plan.tp if plan.sequence_parallel else 1)
    size = tokens * model.experts_per_token * model.hidden_bytes_per_token(plan.activation_dtype)
    calls = 2 * model.num_moe_layers / plan.pp * plan.num_microbatches(job.global_batch)
    rows: list[TrafficRow] = []
    for phase in ("forward", "backward"):
        rows += _group_rows(job, "ep", phase=phase, operation="all_to_all", calls=calls, size=size)
    return rows


def _dp_rows(job: TrainingJob) -> list[TrafficRow]:
    plan = job.plan
    dense, expert = plan.params_per_gpu(job.model)
    grad_b, param_b = dtype_bytes(plan.grad_dtype), dtype_bytes(plan.param_dtype)
    mb = plan.num_microbatches(job.global_batch)
    rows: list[TrafficRow] = []
    for group, params in (("dp_cp", dense), ("edp", expert)):
        if params <= 0 or plan.group_size(group) <= 1:
            continue
        label = "dp" if group == "dp_cp" else "dp-expert"

        def add(
            phase: str, op: str, calls: float, size: float, _g: str = group, _label: str = label
        ) -> None:
            rows.extend(
                _group_rows(
                    job,
                    "dp",
                    phase=phase,
                    operation=op,
                    calls=calls,
                    size=size,
                    group=_g,
                    label=_label,
                )
            )

        if plan.zero == 0:
            add("backward", "all_reduce", 1, params * grad_b)
        elif plan.zero in (1, 2):
            add("backward", "reduce_scatter", 1, params * grad_b)
            add("optimizer", "all_gather", 1, params * param_b)
        else:
            layers = plan.layers_per_stage(job.model)
            add("forward", "all_gather", layers * mb, params * param_b / layers)
            add("backward", "all_gather", layers * mb, params * param_b / layers)
            add("backward", "reduce_scatter", layers * mb, params * grad_b / layers)
    return rows


def _layout(job: TrainingJob, group: str) -> DomainLayout:
    """Where the members of every group of a dimension sit, by scale-up domain."""
    return DomainLayout.of_ranks(job.plan.group_ranks(group), job.domain_size)


def _seed_scope(job: TrainingJob, group: str) -> str:
    layout = _layout(job, group)
    if layout.all_inside():
        return SCALE_UP
    return SCALE_OUT if layout.all_apart() else "mixed"


def seed_rows(job: TrainingJob) -> list[TrafficRow]:
    """Rows of one iteration under seed 002's formulas (per-epoch figure / N)."""
    plan, model = job.plan, job.model
    if plan.cp > 1 or plan.ep > 1 or plan.zero in (1, 2):
        raise ConfigError(
            "the seed accounting has formulas for tp, pp, dp and FSDP only; "
            "use --accounting algorithmic for cp, ep or zero 1/2"
        )
    if plan.zero == 3 and (plan.tp > 1 or plan.pp > 1):
        raise ConfigError("the seed's FSDP formula is for pure data parallelism (tp = pp = 1)")
    n_iter = job.iterations_per_epoch
    p, world = float(model.num_params), plan.world_size
    b, a = dtype_bytes(plan.grad_dtype), dtype_bytes(plan.activation_dtype)
    tokens = job.dataset_tokens / n_iter  # T / N per iteration
    h, layers = model.hidden_size, model.num_layers

    def row(
        dim: str, phase: str, op: str, group: str, calls: float, buf: float, total_epoch: float
    ) -> TrafficRow:
        n = plan.group_size(group) if group != "chain" else 2
        groups = world // plan.group_size(group if group != "chain" else "pp")
        total = total_epoch / n_iter
        scope = _seed_scope(job, group if group != "chain" else "pp")
        return TrafficRow(
            dim, phase, op, "direct", n, groups, calls, buf, total, total / world, scope
        )

    rows: list[TrafficRow] = []
    if plan.zero == 3:
        bwd, fwd = seed_fsdp_epoch(minibatches=n_iter, params=p, gpus=plan.dp, param_bytes=b)
        buf = b * p / (layers * plan.dp)
        rows.append(row("dp", "backward", "all_reduce", "dp", layers, buf, bwd))
        rows.append(row("dp", "forward", "all_gather", "dp", layers, buf, fwd))
        return [r for r in rows if r.total_bytes > 0]
    e = seed_training_epoch(
        minibatches=n_iter,
        params=p,
        layers=layers,
        tokens=job.dataset_tokens,
        hidden=h,
        tp=plan.tp,
        pp=plan.pp,
        dp=plan.dp,
        param_bytes=b,
        activation_bytes=a,
    )
    stage_shard = b * p / (plan.tp * plan.pp)
    tok_per_group = tokens / (plan.dp * plan.pp)
    rows.append(row("dp", "backward", "all_reduce", "dp", 1, stage_shard, e.dp_backward))
    rows.append(
        row("tp", "backward", "all_reduce", "tp", 2 * layers / plan.pp, stage_shard, e.tp_backward)
    )
    rows.append(
        row("tp", "forward", "all_reduce", "tp", 2 * layers * tok_per_group, a * h, e.tp_forward)
    )
    for phase, total in (("backward", e.pp_backward), ("forward", e.pp_forward)):
        rows.append(row("pp", phase, "send_recv", "chain", tokens / plan.dp, a * h, total))
    return [r for r in rows if r.total_bytes > 0]
