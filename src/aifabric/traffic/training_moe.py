"""MoE training traffic: each MoE layer's dispatch and combine, per micro-batch.

Forward: dispatch (tokens to their experts), then combine (results back). The backward
repeats both, and full recomputation reruns the forward pair. Uniform top-k routing is an
all-to-all over the EP group, one copy per token-expert pair (Megatron-Core's alltoall
dispatcher). Node-limited routing (DeepSeek-V3, max_nodes_per_token) sends one scale-out
copy per destination node, forwarded over NVLink inside it (traffic.moe_dispatch). Expert TP
adds an all-gather / reduce-scatter of the dispatched tokens over the expert_tp ranks.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from aifabric.errors import ConfigError
from aifabric.spec.jobs import TrainingJob
from aifabric.traffic.collectives import SCALE_OUT, SCALE_UP
from aifabric.traffic.rows import TrafficRow
from aifabric.traffic.training_groups import (
    FULL_RECOMPUTE,
    group_rows,
    layout,
    tokens_per_microbatch,
)


def ep_rows(job: TrainingJob) -> list[TrafficRow]:
    """MoE token exchange of every MoE layer and micro-batch, one row per direction.

    Forward: dispatch (tokens to their experts) then combine (results back); the backward
    repeats both directions (the combine's gradient travels like a dispatch, the dispatch's
    like a combine), and full recomputation reruns the forward pair inside the backward.
    Each direction is an all-to-all over the EP group (uniform top-k: Megatron-Core's
    alltoall dispatcher, one copy per token-expert pair) or, for node-limited routing, the
    node-aware exchange of ``_node_limited_rows``; with expert_tp > 1 the dispatched tokens
    are all-gathered over the expert-TP group and the results reduce-scattered back
    (Megatron-Core token_dispatcher.py, MoEAlltoAllTokenDispatcher.dispatch_postprocess /
    combine_preprocess). Directions carry the model's dispatch and combine dtypes.
    """
    plan, model = job.plan, job.model
    etp = plan.expert_tp_size
    if not model.is_moe or plan.ep * etp == 1:
        return []
    calls = model.num_moe_layers / plan.pp * plan.num_microbatches(job.global_batch)
    passes = [("forward", ""), ("backward", "")]
    if job.recompute == "full":
        passes.append(("backward", FULL_RECOMPUTE))
    rows: list[TrafficRow] = []
    for phase, recompute in passes:
        for direction in ("dispatch", "combine"):
            rows += _moe_direction_rows(job, phase, direction, calls, recompute)
    return rows


def _moe_dtype(job: TrainingJob, direction: str) -> str:
    """The format of one exchange direction: the model's published one, else activations."""
    model = job.model
    dtype = model.moe_dispatch_dtype if direction == "dispatch" else model.moe_combine_dtype
    return dtype or job.plan.activation_dtype


def _moe_direction_rows(
    job: TrainingJob, phase: str, direction: str, calls: float, recompute: str
) -> list[TrafficRow]:
    """One direction (dispatch or combine) of one pass: EP exchange + expert-TP collective.

    Per rank and call the exchange moves the rank's T tokens (micro-batch tokens / cp, and
    / tp under sequence parallelism) towards experts_per_token experts; under expert TP each
    rank then all-gathers (dispatch) or reduce-scatters (combine) the copies it holds over
    its expert_tp ranks: buffer expert_tp x T x copies-received x hidden x dtype.
    """
    plan, model = job.plan, job.model
    dtype = _moe_dtype(job, direction)
    note = f"{recompute + ', ' if recompute else ''}{direction} ({dtype})"
    tokens = tokens_per_microbatch(job) / (plan.tp if plan.sequence_parallel else 1)
    per_token = model.hidden_bytes_per_token(dtype)
    expert_inputs = tokens * model.experts_per_token * per_token  # bytes
    received = float(model.experts_per_token)  # copies a rank receives per token it sends
    rows: list[TrafficRow] = []
    if plan.ep > 1 and model.max_nodes_per_token:
        fanout = _moe_fanout(job)
        received = fanout.gpus
        rows += _node_limited_rows(job, phase, calls, tokens * per_token, expert_inputs, fanout)
        rows = [replace(r, note=note) for r in rows]
    elif plan.ep > 1:
        rows += group_rows(
            job, "ep", phase=phase, operation="all_to_all", calls=calls, size=expert_inputs,
            note=note,
        )  # fmt: skip
    etp = plan.expert_tp_size
    if etp > 1:
        operation = "all_gather" if direction == "dispatch" else "reduce_scatter"
        rows += group_rows(
            job, "ep", phase=phase, operation=operation, calls=calls, group="etp",
            size=etp * tokens * received * per_token, note=f"{note}, expert-TP",
        )  # fmt: skip
    return rows


def _moe_fanout(job: TrainingJob) -> Any:
    """Expected copies per token of the node-aware dispatch over this job's EP groups.

    Raises:
        ConfigError: the EP groups do not put the same number of ranks on every scale-up
            domain they span (the forwarding pairs each GPU with the same in-node index).
    """
    from aifabric.traffic.moe_dispatch import dispatch_fanout

    plan, model = job.plan, job.model
    m = layout(job, "ep").uniform_members()
    if m is None or plan.ep % m:
        raise ConfigError(
            f"ep(={plan.ep}) over scale-up domains of {job.domain_size}: node-limited "
            f"dispatch (max_nodes_per_token of {model.name}) needs the same number of EP "
            "ranks on every domain a group spans"
        )
    return dispatch_fanout(
        num_experts=model.num_experts,
        experts_per_token=model.experts_per_token,
        num_nodes=plan.ep // m,
        ranks_per_node=m,
        max_nodes=model.max_nodes_per_token,
    )


def _node_limited_rows(
    job: TrainingJob,
    phase: str,
    calls: float,
    token_bytes: float,
    expert_inputs: float,
    fanout: Any,
) -> list[TrafficRow]:
    """Rows of a node-aware exchange: per rank and call, token_bytes (T tokens x hidden x
    dtype) x the expected remote nodes on scale-out and x the NVLink copies on scale-up
    (see traffic.moe_dispatch). buffer_bytes is the call's expert inputs (T x k x hidden x
    dtype, the alltoall dispatcher's send buffer), which every routing delivers alike."""
    plan = job.plan
    world, n = plan.world_size, plan.ep
    rows = []
    for scope, copies in ((SCALE_UP, fanout.nvlink_copies), (SCALE_OUT, fanout.remote_nodes)):
        per_rank = token_bytes * copies * calls
        if per_rank <= 0:
            continue
        rows.append(
            TrafficRow(
                "ep",
                phase,
                "all_to_all",
                "deepep",
                n,
                world // n,
                calls,
                expert_inputs,
                per_rank * world,
                per_rank,
                scope,
            )
        )
    return rows
