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
from aifabric.traffic.storage import storage_traffic
from aifabric.traffic.training_groups import (
    FULL_RECOMPUTE,
    group_rows,
    layout,
    tokens_per_microbatch,
)
from aifabric.traffic.training_moe import ep_rows
from aifabric.traffic.training_seed import seed_rows


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
            "scale_up_domain_size": job.domain_size,
            "notes": self.notes(),
            "per_stage": self.per_stage(),
            "per_iteration": {
                "tokens": round(self.tokens_per_iteration),
                "total_bytes": total,
                "bytes_per_gpu": total / world,
                "scale_up_bytes": sum_rows(rows, SCALE_UP),
                "scale_out_bytes": scale_out,
                "scale_out_bytes_per_gpu": scale_out / world,
                "bytes_by_dimension": by_dim,
                "compute_time_s": self.compute_time,
                "required_scale_out_bytes_per_s_per_gpu": scale_out / world / self.compute_time,
                "rows": [r.to_dict() for r in rows],
            },
            "per_epoch": {
                "iterations": self.iterations,
                "tokens": round(self.tokens_per_iteration) * self.iterations,
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
    staged += [(r, w.moe_layers) for r in ep_rows(job)]
    staged += _embedding_rows(job, w)
    staged += [
        (r, w.expert_params if r.dimension == "dp_expert" else w.dense_params)
        for r in _dp_rows(job)
    ]
    return staged


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


def _tp_rows(job: TrainingJob) -> list[TrafficRow]:
    """Two TP blocks (attention, MLP) per layer and micro-batch; see the module docstring."""
    plan, model = job.plan, job.model
    if plan.tp == 1:
        return []
    size = tokens_per_microbatch(job) * model.hidden_bytes_per_token(plan.activation_dtype)
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
        rows += group_rows(job, "tp", phase=phase, operation=op, calls=calls, size=size, note=note)
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
    rows = group_rows(job, "cp", phase="forward", operation="all_gather", calls=calls, size=size)
    for op in ("all_gather", "reduce_scatter"):
        rows += group_rows(job, "cp", phase="backward", operation=op, calls=calls, size=size)
    if job.recompute == "full":
        rows += group_rows(
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
    size = tokens_per_microbatch(job) * model.hidden_bytes_per_token(plan.activation_dtype)
    if plan.sequence_parallel:
        size /= plan.tp
    mb = plan.num_microbatches(job.global_batch)
    v = plan.virtual_stages
    chain = layout(job, "pp")
    wrap = DomainLayout(chain.domains[:, [-1, 0]])
    staged: list[tuple[TrafficRow, Any]] = []
    for phase in ("forward", "backward"):

        def sends(
            chain: int, calls: float, where: DomainLayout, phase: str = phase
        ) -> list[TrafficRow]:
            return p2p_rows(
                dimension="pp", phase=phase, chain_length=chain, num_chains=plan.world_size // plan.pp,
                calls_per_hop=calls, size=size, layout=where, world_size=plan.world_size,
            )  # fmt: skip

        rows = sends(plan.pp, mb * v, chain)
        senders = np.ones(plan.pp)
        senders[-1 if phase == "forward" else 0] = 0.0
        staged += [(r, senders * plan.pp / senders.sum()) for r in rows]
        if v > 1:
            rows = sends(2, mb * (v - 1), wrap)
            edge = weights.last if phase == "forward" else weights.first
            staged += [(replace(r, note=INTERLEAVED_WRAP), edge) for r in rows]
    return staged


def _dp_rows(job: TrainingJob) -> list[TrafficRow]:
    plan = job.plan
    dense, expert = plan.params_per_gpu(job.model)
    grad_b, param_b = dtype_bytes(plan.grad_dtype), dtype_bytes(plan.param_dtype)
    mb = plan.num_microbatches(job.global_batch)
    rows: list[TrafficRow] = []
    for group, params in (("dp_cp", dense), ("edp", expert)):
        if params <= 0 or plan.group_size(group) <= 1:
            continue
        label = "dp" if group == "dp_cp" else "dp_expert"

        def add(
            phase: str, op: str, calls: float, size: float, _g: str = group, _label: str = label
        ) -> None:
            rows.extend(
                group_rows(
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
    tokens = tokens_per_microbatch(job)
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
                rows = group_rows(
                    job, "tp", phase=phase, operation=op, calls=mb, size=size, note=note
                )
                staged += [(_one_stage(r, plan.pp), where) for r in rows]
        rows = group_rows(
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
