"""Training traffic per iteration and per epoch, by parallel dimension, phase and collective.

Algorithmic accounting (default) puts each parallel dimension's collectives through the
collectives module with real algorithms (ring inside one network scope, hierarchical when a
group spans scale-up domains):

- TP (Megatron, Shoeybi et al. 2019): 2 all-reduces of the micro-batch's hidden states per
  layer forward and 2 backward; with sequence parallelism (Korthikanti et al. 2022) each
  becomes an all-gather + reduce-scatter pair of the same bytes, and the backward also
  all-gathers the sequence-sharded input of each column-parallel linear (QKV, FC1) again to
  compute its weight gradient (Megatron-Core tensor_parallel/layers.py,
  LinearWithGradAccumulationAndAsyncCommunication.backward): forward 2 AG + 2 RS, backward
  4 AG + 2 RS per layer and micro-batch. Full recomputation (recompute: full) reruns the
  forward inside the backward, repeating its TP, CP and EP collectives; selective
  recomputation (core attention only) adds none.
- Embedding and LM head (Megatron-Core VocabParallelEmbedding, ColumnParallelLinear output
  layer, tensor_parallel/cross_entropy.py): on the first stage the vocab-parallel lookup is
  all-reduced over tp (reduce-scattered under SP, all-gathered back in the backward); on the
  last stage the head's input is all-reduced in the backward (under SP: all-gathered
  forward, reduce-scattered + re-gathered backward) and the vocab-parallel cross-entropy
  all-reduces three fp32 values per token (max logit, target logit, sum of exponentials).
  Tied embeddings with pp > 1 all-reduce the word-embedding gradient between the first and
  last stage once per iteration (distributed/finalize_model_grads.py,
  _allreduce_word_embedding_grads).
- CP (ring attention): per layer, K/V of every chunk circulate (an all-gather) forward; K/V
  again plus dK/dV (reduce-scatter) backward.
- PP (1F1B, Narayanan et al. 2021): per micro-batch one activation send forward and one
  gradient send backward at each stage boundary; 1/tp of it per rank under SP. Interleaved
  1F1B with v virtual stages sends v messages per boundary and direction, plus v - 1 over
  the wrap from the last rank back to the first: pp v - 1 hops per micro-batch instead of
  pp - 1. Uneven layer splits are reported per stage (``per_stage``).
- EP (Megatron-Core MoE): dispatch + combine per MoE layer forward, two more backward, in
  the model's dispatch / combine dtypes. Uniform top-k (models that publish no routing
  limit): an all-to-all of one copy per token-expert pair. Node-limited routing
  (DeepSeek-V3, max_nodes_per_token): one scale-out copy per destination node, forwarded
  over NVLink inside it (traffic.moe_dispatch). Expert TP adds an all-gather / reduce-
  scatter of the dispatched tokens over the expert_tp ranks.
- DP: gradient all-reduce (ZeRO-0); reduce-scatter of gradients + all-gather of updated
  parameters (ZeRO-1/2, distributed optimizer); FSDP/ZeRO-3 also all-gathers parameters
  before forward and backward of every micro-batch (ZeRO paper: 1.5x plain DP).
  Non-expert gradients are reduced over dp x cp ranks, expert gradients over
  tp x dp x cp / (ep x expert_tp) (Megatron-Core's expert-data-parallel group),
  in the plan's grad_dtype (fp32 by default, as Megatron-LM does for bf16 training).

Seed accounting reproduces seed 002's formulas (traffic.seeds) exactly.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

from aifabric.errors import ConfigError
from aifabric.spec.jobs import TrainingJob
from aifabric.spec.model import ModelSpec, dtype_bytes
from aifabric.traffic.collectives import SCALE_OUT, SCALE_UP
from aifabric.traffic.rows import (
    DomainLayout,
    TrafficRow,
    algorithm_rule,
    collective_rows,
    p2p_rows,
    sum_rows,
)
from aifabric.traffic.seeds import seed_fsdp_epoch, seed_training_epoch
from aifabric.traffic.storage import storage_traffic


@dataclass(frozen=True, slots=True)
class TrainingTraffic:
    """Result of ``training_traffic``: rows per iteration and the epoch totals."""

    job: TrainingJob
    rows: tuple[TrafficRow, ...]
    tokens_per_iteration: float  # real: global_batch x seq_len
    compute_time: float  # s per iteration at the job's MFU
    stage_weights: tuple[Any, ...] = field(default=())  # per row: share of each stage, mean 1

    @property
    def total_bytes(self) -> float:
        return sum_rows(list(self.rows))

    @property
    def iterations(self) -> int:
        return self.job.iterations_per_epoch

    def notes(self) -> list[str]:
        job = self.job
        if job.accounting != "seed":
            return []
        seed_tokens = job.dataset_tokens / job.iterations_per_epoch
        return [
            f"seed accounting: bytes per iteration are the seed's per-epoch formulas / "
            f"{job.iterations_per_epoch:,} iterations (its T/N = {seed_tokens:,.0f} tokens per "
            f"iteration); compute time uses the real {self.tokens_per_iteration:,.0f} tokens "
            "(global_batch x seq_len)"
        ]

    def per_stage(self) -> dict[str, object] | None:
        """Bytes each rank of each pipeline stage sends per iteration (None without pp)."""
        import numpy as np

        plan = self.job.plan
        if plan.pp == 1 or not self.stage_weights:
            return None
        total = np.zeros(plan.pp)
        scale_out = np.zeros(plan.pp)
        for row, weights in zip(self.rows, self.stage_weights, strict=True):
            total += row.bytes_per_gpu * weights
            if row.scope == SCALE_OUT:
                scale_out += row.bytes_per_gpu * weights
        busiest = int(np.argmax(total))
        return {
            "layers": list(plan.stage_layers(self.job.model)),
            "bytes_per_gpu": total.tolist(),
            "scale_out_bytes_per_gpu": scale_out.tolist(),
            "busiest_stage": busiest,
            "busiest_bytes_per_gpu": float(total[busiest]),
            "mean_bytes_per_gpu": float(total.mean()),
        }

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
            "grad_reduce_dtype": job.plan.grad_dtype if job.accounting != "seed" else None,
            "algorithm": job.algorithm,
            "algorithm_rule": algorithm_rule(job.algorithm) if job.accounting != "seed" else None,
            "in_network_reduction": job.in_network_reduction,
            "recompute": job.recompute,
            "scaleup_domain_size": job.domain_size,
            "notes": self.notes(),
            "per_stage": self.per_stage(),
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


def training_traffic(job: TrainingJob, *, max_work: float | None = None) -> TrainingTraffic:
    """Traffic of one iteration of ``job`` in its accounting, plus compute-time estimate.

    Raises:
        WorkLimitError: ranks x rows (world_size x 2 per parallel dimension > 1, at least 2; each
            row laying its groups' ranks out on scale-up domains) above
            aifabric.guards.MAX_TRAINING_RANK_ROWS, or above ``max_work`` when given.
    """
    from aifabric.guards import MAX_TRAINING_RANK_ROWS, check_work, limit_for

    plan = job.plan
    num_rows = max(2, 2 * sum(1 for d in (plan.tp, plan.cp, plan.pp, plan.ep, plan.dp) if d > 1))
    check_work("traffic train", float(plan.world_size) * num_rows,
               limit_for(MAX_TRAINING_RANK_ROWS, max_work), "rank-rows",
               basis=f"{plan.world_size:,} ranks x {num_rows} traffic rows")  # fmt: skip
    tokens = float(job.global_batch * job.seq_len)
    flops = job.model.training_flops_per_token(job.seq_len) * tokens
    compute = flops / (job.plan.world_size * job.gpu.peak_flops(job.compute_dtype) * job.mfu)
    if job.accounting == "seed":
        return TrainingTraffic(job, tuple(seed_rows(job)), tokens, compute)
    staged = staged_rows(job)
    rows = tuple(r for r, _ in staged)
    return TrainingTraffic(job, rows, tokens, compute, tuple(w for _, w in staged))


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
    note: str = "",
) -> list[TrafficRow]:
    plan = job.plan
    group = group or dimension
    n = plan.group_size(group)
    rows = collective_rows(
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
        in_network_reduction=job.in_network_reduction,
        gpu=job.gpu,
    )
    return [replace(r, note=note) for r in rows] if note else rows


def algorithmic_rows(job: TrainingJob) -> list[TrafficRow]:
    """Rows of one iteration with real collective algorithms."""
    return [row for row, _ in staged_rows(job)]


def staged_rows(job: TrainingJob) -> list[tuple[TrafficRow, Any]]:
    """Rows of one iteration, each with its share per pipeline stage (array, mean 1).

    A rank of stage s sends row.bytes_per_gpu x share[s]: TP and CP scale with the stage's
    layers, EP with its MoE layers, DP with its parameters, embedding rows sit on the first
    or last stage, and pipeline sends follow the direction of each boundary.
    """
    w = _StageWeights(job)
    staged = [(r, w.tp_blocks) for r in _tp_rows(job)]
    staged += [(r, w.layers) for r in _cp_rows(job)]
    staged += _pp_rows(job, w)
    staged += [(r, w.moe_layers) for r in _ep_rows(job)]
    staged += _embedding_rows(job, w)
    staged += [
        (r, w.expert_params if r.dimension == "dp-expert" else w.dense_params)
        for r in _dp_rows(job)
    ]
    return staged


def _tokens_per_microbatch(job: TrainingJob) -> float:
    """Tokens one rank processes per micro-batch (the sequence is split by cp)."""
    return job.plan.micro_batch_size * job.seq_len / job.plan.cp


INTERLEAVED_WRAP = "interleaved wrap: last rank -> first"
SP_REGATHER = "SP wgrad re-gather"


def tp_blocks(
    model: ModelSpec, dense_layers: float | None = None, moe_layers: float | None = None
) -> float:
    """Tensor-parallel blocks (a column- then a row-parallel linear) in the given layers.

    Attention is one block per layer and a dense MLP another. A MoE layer's routed experts
    are not a TP block: Megatron-Core's token dispatcher moves their tokens (EP rows, and the
    expert-TP gather inside it); only shared experts (SharedExpertMLP) are one more block.
    """
    dense = model.num_dense_layers if dense_layers is None else dense_layers
    moe = model.num_moe_layers if moe_layers is None else moe_layers
    return 2.0 * dense + (1.0 + (1.0 if model.num_shared_experts else 0.0)) * moe


FULL_RECOMPUTE = "full recompute"


def _tp_rows(job: TrainingJob) -> list[TrafficRow]:
    """Two TP blocks (attention, MLP) per layer and micro-batch; see the module docstring."""
    plan, model = job.plan, job.model
    if plan.tp == 1:
        return []
    size = _tokens_per_microbatch(job) * model.hidden_bytes_per_token(plan.activation_dtype)
    mb = plan.num_microbatches(job.global_batch)
    calls = tp_blocks(model) / plan.pp * mb
    full = job.recompute == "full"
    if plan.sequence_parallel:
        plan_ops = [
            ("forward", "all_gather", ""),
            ("forward", "reduce_scatter", ""),
            ("backward", "reduce_scatter", ""),
            ("backward", "all_gather", ""),
            ("backward", "all_gather", SP_REGATHER),
        ]
        if full:
            plan_ops += [
                ("backward", "all_gather", FULL_RECOMPUTE),
                ("backward", "reduce_scatter", FULL_RECOMPUTE),
            ]
    else:
        plan_ops = [("forward", "all_reduce", ""), ("backward", "all_reduce", "")]
        if full:
            plan_ops.append(("backward", "all_reduce", FULL_RECOMPUTE))
    rows: list[TrafficRow] = []
    for phase, op, note in plan_ops:
        rows += _group_rows(job, "tp", phase=phase, operation=op, calls=calls, size=size, note=note)
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
    if job.recompute == "full":
        rows += _group_rows(
            job, "cp", phase="backward", operation="all_gather", calls=calls, size=size,
            note=FULL_RECOMPUTE,
        )  # fmt: skip
    return rows


def _pp_rows(job: TrainingJob, weights: _StageWeights) -> list[tuple[TrafficRow, Any]]:
    """Activation sends forward, gradient sends backward, at every stage boundary.

    Interleaved 1F1B (v virtual stages): each boundary carries v messages per micro-batch
    and direction, and the wrap (last rank -> first, carrying chunk j to chunk j + 1) v - 1.
    """
    import numpy as np

    plan, model = job.plan, job.model
    if plan.pp == 1:
        return []
    size = _tokens_per_microbatch(job) * model.hidden_bytes_per_token(plan.activation_dtype)
    if plan.sequence_parallel:
        size /= plan.tp
    mb = plan.num_microbatches(job.global_batch)
    v = plan.virtual_stages
    layout = _layout(job, "pp")
    wrap = DomainLayout(layout.domains[:, [-1, 0]])
    staged: list[tuple[TrafficRow, Any]] = []
    for phase in ("forward", "backward"):

        def sends(
            chain: int, calls: float, where: DomainLayout, phase: str = phase
        ) -> list[TrafficRow]:
            return p2p_rows(
                dimension="pp", phase=phase, chain_length=chain, num_chains=plan.world_size // plan.pp,
                calls_per_hop=calls, size=size, layout=where, world_size=plan.world_size,
            )  # fmt: skip

        rows = sends(plan.pp, mb * v, layout)
        senders = np.ones(plan.pp)
        senders[-1 if phase == "forward" else 0] = 0.0
        staged += [(r, senders * plan.pp / senders.sum()) for r in rows]
        if v > 1:
            rows = sends(2, mb * (v - 1), wrap)
            edge = weights.last if phase == "forward" else weights.first
            staged += [(replace(r, note=INTERLEAVED_WRAP), edge) for r in rows]
    return staged


def _ep_rows(job: TrainingJob) -> list[TrafficRow]:
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


class _StageWeights:
    """Share of a row's bytes that a rank of each pipeline stage sends (arrays, mean 1)."""

    def __init__(self, job: TrainingJob) -> None:
        import numpy as np

        plan, model = job.plan, job.model
        pp = plan.pp
        layers = np.asarray(plan.stage_layers(model), dtype=float)
        end = np.cumsum(layers)
        start = end - layers
        moe = np.clip(end - np.maximum(start, model.num_dense_layers), 0, None)
        self.first = np.eye(pp)[0] * pp
        self.last = np.eye(pp)[-1] * pp
        self.layers = layers / layers.mean()
        blocks = np.array([tp_blocks(model, n - m, m) for n, m in zip(layers, moe, strict=True)])
        self.tp_blocks = blocks / blocks.mean()
        self.moe_layers = moe / moe.mean() if moe.sum() > 0 else self.layers
        attention = model.attention_params_per_layer()
        dense_mlp = model.mlp_params_per_layer(moe=False)
        moe_mlp = model.mlp_params_per_layer(moe=True) - model.num_experts * model.ffn_params(
            model.moe_intermediate_size
        )
        dense = layers * attention + (layers - moe) * dense_mlp + moe * moe_mlp
        dense[0] += model.vocab_size * model.hidden_size
        dense[-1] += model.embedding_params() - model.vocab_size * model.hidden_size
        if model.tied_embeddings and pp > 1:
            dense[-1] += model.vocab_size * model.hidden_size  # the head's copy of the table
        self.dense_params = dense / dense.mean()
        self.expert_params = self.moe_layers


def _embedding_rows(job: TrainingJob, weights: _StageWeights) -> list[tuple[TrafficRow, Any]]:
    """Vocab-parallel embedding (first stage), LM head and cross-entropy (last stage), and
    the tied-embedding gradient all-reduce between them; see the module docstring."""
    plan, model = job.plan, job.model
    mb = plan.num_microbatches(job.global_batch)
    tokens = _tokens_per_microbatch(job)
    hidden = tokens * model.hidden_bytes_per_token(plan.activation_dtype)
    staged: list[tuple[TrafficRow, Any]] = []
    if plan.tp > 1:
        if plan.sequence_parallel:
            first = [("forward", "reduce_scatter", hidden), ("backward", "all_gather", hidden)]
            last = [
                ("forward", "all_gather", hidden),
                ("backward", "reduce_scatter", hidden),
                ("backward", "all_gather", hidden),
            ]
        else:
            first = [("forward", "all_reduce", hidden)]
            last = [("backward", "all_reduce", hidden)]
        for ops, where, note in ((first, weights.first, EMBEDDING), (last, weights.last, HEAD)):
            for phase, op, size in ops:
                rows = _group_rows(
                    job, "tp", phase=phase, operation=op, calls=mb, size=size, note=note
                )
                staged += [(_one_stage(r, plan.pp), where) for r in rows]
        rows = _group_rows(
            job, "tp", phase="forward", operation="all_reduce", calls=3 * mb,
            size=tokens * dtype_bytes("fp32"), note=CROSS_ENTROPY,
        )  # fmt: skip
        staged += [(_one_stage(r, plan.pp), weights.last) for r in rows]
    if model.tied_embeddings and plan.pp > 1:
        ranks = plan.group_ranks("pp")[:, [0, -1]]
        rows = collective_rows(
            dimension="pp", phase="backward", operation="all_reduce", group_size=2,
            num_groups=plan.world_size // plan.pp, calls=1,
            size=model.vocab_size * model.hidden_size / plan.tp * dtype_bytes(plan.grad_dtype),
            layout=DomainLayout.of_ranks(ranks, job.domain_size),
            world_size=plan.world_size, algorithm=job.algorithm,
        )  # fmt: skip
        both = (weights.first + weights.last) / 2
        staged += [(replace(r, note=TIED_EMBEDDING), both) for r in rows]
    return staged


def _one_stage(row: TrafficRow, pp: int) -> TrafficRow:
    """A row built over every stage's groups, kept for one stage's: 1/pp of the groups."""
    total = row.total_bytes / pp
    return replace(
        row,
        num_groups=row.num_groups // pp,
        total_bytes=total,
        bytes_per_gpu=row.bytes_per_gpu / pp,
    )


EMBEDDING = "embedding (first stage)"
HEAD = "LM head (last stage)"
CROSS_ENTROPY = "cross-entropy, 3 x fp32/token"
TIED_EMBEDDING = "tied embedding grads"


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
    tokens = _tokens_per_microbatch(job) / (plan.tp if plan.sequence_parallel else 1)
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
        rows += _group_rows(
            job, "ep", phase=phase, operation="all_to_all", calls=calls, size=expert_inputs,
            note=note,
        )  # fmt: skip
    etp = plan.expert_tp_size
    if etp > 1:
        operation = "all_gather" if direction == "dispatch" else "reduce_scatter"
        rows += _group_rows(
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
    m = _layout(job, "ep").uniform_members()
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
