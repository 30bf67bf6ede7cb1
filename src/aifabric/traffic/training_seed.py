"""Training rows under seed 002's own formulas (``--accounting seed``): per-epoch figures
of traffic.seeds divided by the iterations, on the seed's terms (tp, pp, dp and FSDP)."""

from __future__ import annotations

from aifabric.errors import ConfigError
from aifabric.spec.jobs import TrainingJob
from aifabric.spec.model import dtype_bytes
from aifabric.traffic.collectives import SCALE_OUT, SCALE_UP
from aifabric.traffic.rows import TrafficRow
from aifabric.traffic.seeds import seed_fsdp_epoch, seed_training_epoch
from aifabric.traffic.training_groups import layout


def _seed_scope(job: TrainingJob, group: str) -> str:
    where = layout(job, group)
    if where.all_inside():
        return SCALE_UP
    return SCALE_OUT if where.all_apart() else "mixed"


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
    # The seed's b is bytes per parameter, for gradients too (its BF16 example).
    b, a = dtype_bytes(plan.param_dtype), dtype_bytes(plan.activation_dtype)
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


# ----- MoE dispatch and combine (helpers of _ep_rows) ---------------------------------------
