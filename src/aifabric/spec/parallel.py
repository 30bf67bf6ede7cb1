"""Parallel plan for training or serving: how a model is split over GPUs.

Rank layout follows Megatron-LM's default order, fastest-varying first:
tp -> cp -> dp -> pp (expert parallelism is carved out of the dp x cp ranks). The layout
decides which groups fit inside a scale-up domain; see ``group_stride``.

References: Megatron-LM (Shoeybi et al. 2019; Narayanan et al. 2021, arXiv:2104.04473),
ZeRO (Rajbhandari et al. 2020, arXiv:1910.02054), PyTorch FSDP (Zhao et al. 2023), context
parallelism (ring attention, Liu et al. 2023), Megatron-Core MoE expert parallelism.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from aifabric.errors import ConfigError
from aifabric.spec.model import ModelSpec, dtype_bytes

DIMENSIONS = ("tp", "cp", "dp", "pp")
GRAD_REDUCE_DTYPES = ("fp32", "bf16", "fp16")


@dataclass(frozen=True, slots=True, kw_only=True)
class ParallelPlan:
    """Degrees of parallelism and the optimizer/precision choices that shape traffic.

    zero: 0 = plain data parallel (all-reduce of gradients); 1 = optimizer states sharded
    (reduce-scatter gradients + all-gather parameters, Megatron's distributed optimizer);
    2 = gradients sharded too (same traffic as 1); 3 = parameters sharded (FSDP): parameters
    are all-gathered before forward and again before backward, gradients reduce-scattered.

    grad_dtype: the dtype gradients are reduced in. Megatron-LM reduces in fp32 for bf16
    training unless ``--grad-reduce-in-bf16`` is given (megatron/training/arguments.py sets
    accumulate_allreduce_grads_in_fp32 for bf16), so fp32 is the default here.
    virtual_stages: model chunks per pipeline rank (Megatron's
    virtual_pipeline_model_parallel_size; interleaved 1F1B when > 1).
    pipeline_layers: transformer layers of each pipeline stage, first to last (Megatron's
    --decoder-first/last-pipeline-num-layers), or with interleaving one entry per virtual
    stage (--pipeline-model-parallel-layout; see ``virtual_stage_layers``); None splits as
    evenly as possible, the first ``num_layers mod pp`` stages taking one more.
    expert_tp: tensor parallelism inside each routed expert (Megatron-Core's
    expert_tensor_parallel_size); None = tp, Megatron-Core's default
    (model_parallel_config.py: "Default is None, which will be set to the value of
    tensor_model_parallel_size"). Experts use their own rank grid over each stage's
    tp x cp x dp ranks, fastest first: expert_tp -> ep -> expert-dp (parallel_state.py,
    expert RankGenerator, order tp-ep-dp-pp), so expert weights split by ep x expert_tp and
    their gradients reduce over tp dp cp / (ep expert_tp) ranks.
    """

    tp: int = 1
    pp: int = 1
    dp: int = 1
    cp: int = 1
    ep: int = 1
    zero: int = 0
    sequence_parallel: bool = False
    micro_batch_size: int = 1
    virtual_stages: int = 1
    pipeline_layers: tuple[int, ...] | None = None
    grad_dtype: str = "fp32"
    param_dtype: str = "bf16"
    activation_dtype: str = "bf16"
    expert_tp: int | None = None

    def __post_init__(self) -> None:
        for name in ("tp", "pp", "dp", "cp", "ep", "micro_batch_size", "virtual_stages"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ConfigError(f"{name}(={value!r}) must be an integer >= 1")
        if self.zero not in (0, 1, 2, 3):
            raise ConfigError(f"zero(={self.zero!r}) must be 0, 1, 2 or 3 (3 = FSDP)")
        if self.sequence_parallel and self.tp == 1:
            raise ConfigError("sequence_parallel needs tp > 1")
        if self.virtual_stages > 1 and self.pp == 1:
            raise ConfigError(
                f"virtual_stages(={self.virtual_stages}) > 1 needs pp > 1 (interleaved 1F1B)"
            )
        if self.pipeline_layers is not None:
            layers, p, v = self.pipeline_layers, self.pp, self.virtual_stages
            per_virtual = v > 1 and len(layers) == p * v
            floor = 0 if per_virtual else 1
            if (len(layers) != p and not per_virtual) or any(
                isinstance(n, bool) or not isinstance(n, int) or n < floor for n in layers
            ):
                shape = f"pp(={p}) integers >= 1, one per stage" + (
                    f", or pp x virtual_stages(={p * v}) integers >= 0, one per virtual stage"
                    if v > 1 else "")  # fmt: skip
                raise ConfigError(f"pipeline_layers(={list(layers)}) must list {shape}")
            if per_virtual and min(sum(layers[s::p]) for s in range(p)) < 1:
                raise ConfigError(
                    f"pipeline_layers(={list(layers)}) leaves a pipeline stage without layers; "
                    "every stage needs one"
                )
        if self.expert_tp is not None and (
            not isinstance(self.expert_tp, int) or isinstance(self.expert_tp, bool)
            or self.expert_tp < 1
        ):  # fmt: skip
            raise ConfigError(f"expert_tp(={self.expert_tp!r}) must be an integer >= 1")
        local = self.tp * self.dp * self.cp
        if self.expert_tp not in (None, self.tp) and local % (self.ep * self.expert_tp):
            raise ConfigError(
                f"ep(={self.ep}) x expert_tp(={self.expert_tp}) must divide "
                f"tp*dp*cp(={local}): the expert grid reuses each stage's ranks"
            )
        if self.expert_tp in (None, self.tp) and (self.dp * self.cp) % self.ep:
            raise ConfigError(
                f"ep(={self.ep}) must divide dp*cp(={self.dp * self.cp}): experts are spread "
                "over the data-parallel ranks"
            )
        for name in ("grad_dtype", "param_dtype", "activation_dtype"):
            dtype_bytes(getattr(self, name))
        if self.grad_dtype.lower() not in GRAD_REDUCE_DTYPES:
            raise ConfigError(
                f"grad_dtype(={self.grad_dtype!r}) must be one of {', '.join(GRAD_REDUCE_DTYPES)}: "
                "gradients are reduced in a floating format (Megatron: fp32, or bf16 with "
                "--grad-reduce-in-bf16)"
            )

    @property
    def world_size(self) -> int:
        """GPUs in the job: tp x cp x dp x pp (ep reuses dp x cp ranks)."""
        return self.tp * self.cp * self.dp * self.pp

    @property
    def expert_tp_size(self) -> int:
        """Expert tensor-parallel degree in effect: expert_tp, or tp when not given."""
        return self.tp if self.expert_tp is None else self.expert_tp

    @property
    def fsdp(self) -> bool:
        return self.zero == 3

    def group_stride(self, dimension: str) -> int:
        """Distance in global rank between neighbors of a group of this dimension."""
        strides = {
            "tp": 1,
            "cp": self.tp,
            "ep": self.expert_tp_size,
            "etp": 1,
            "dp": self.tp * self.cp,
            "dp_cp": self.tp,
            "edp": self.expert_tp_size * self.ep,
            "pp": self.tp * self.cp * self.dp,
        }
        try:
            return strides[dimension]
        except KeyError:
            raise ConfigError(f"unknown parallel dimension {dimension!r}") from None

    def group_size(self, dimension: str) -> int:
        sizes = {
            "tp": self.tp,
            "cp": self.cp,
            "dp": self.dp,
            "pp": self.pp,
            "ep": self.ep,
            "dp_cp": self.dp * self.cp,
            "etp": self.expert_tp_size,
            "edp": self.tp * self.dp * self.cp // (self.ep * self.expert_tp_size),
        }
        try:
            return sizes[dimension]
        except KeyError:
            raise ConfigError(f"unknown parallel dimension {dimension!r}") from None

    def ranks_per_domain(self, dimension: str, domain_size: int) -> int:
        """How many members of one group of this dimension share a scale-up domain.

        With contiguous rank placement, a group of size n and stride s has members
        r, r+s, ..., r+(n-1)s. Members share a domain of D consecutive ranks when s < D;
        then min(n, D // s) of them do (D a multiple of s, the usual power-of-two case).
        """
        n, stride = self.group_size(dimension), self.group_stride(dimension)
        if stride >= domain_size:
            return 1
        return max(1, min(n, domain_size // stride))

    def group_ranks(self, dimension: str) -> Any:
        """Global ranks of every group of a dimension: int array (num_groups, group_size).

        Megatron order, fastest first: rank = tp_i + tp (cp_i + cp (dp_i + dp pp_i)). Each
        row lists one group's members in ring order. dp_cp is the joint dp x cp group (cp
        fastest). The expert groups come from Megatron-Core's expert grid over each stage's
        tp x cp x dp ranks in rank order, fastest first etp -> ep -> edp: etp (expert
        tensor parallel) is consecutive ranks, ep has stride expert_tp, edp (the ranks
        holding the same expert shard) stride expert_tp x ep. With expert_tp = tp this is
        ep carved from dp_cp in consecutive blocks, as before expert_tp existed.
        """
        import numpy as np

        grid = np.arange(self.world_size).reshape(self.pp, self.dp, self.cp, self.tp)
        axes = {"pp": 0, "dp": 1, "cp": 2, "tp": 3}
        if dimension in axes:
            return np.moveaxis(grid, axes[dimension], -1).reshape(-1, self.group_size(dimension))
        if dimension == "dp_cp":
            dp_cp = grid.transpose(0, 3, 1, 2)
            return dp_cp.reshape(-1, self.dp * self.cp)
        etp = self.expert_tp_size
        expert = grid.reshape(self.pp, -1, self.ep, etp)  # (pp, edp, ep, etp)
        if dimension == "etp":
            return expert.reshape(-1, etp)
        if dimension == "ep":
            return expert.transpose(0, 1, 3, 2).reshape(-1, self.ep)
        if dimension == "edp":
            return expert.transpose(0, 2, 3, 1).reshape(-1, expert.shape[1])
        raise ConfigError(f"unknown parallel dimension {dimension!r}")

    def validate_for(
        self, model: ModelSpec, *, seq_len: int | None = None, num_gpus: int | None = None
    ) -> None:
        """Check the plan against a model (and optionally a sequence length and GPU count).

        Raises:
            ConfigError: naming the rule, e.g. "tp(=6) must divide num_attention_heads(=64)".
        """
        if model.num_attention_heads % self.tp:
            raise ConfigError(
                f"tp(={self.tp}) must divide num_attention_heads(={model.num_attention_heads}) "
                f"of {model.name}"
            )
        kv = model.num_kv_heads
        if model.attention != "mla" and kv % self.tp and self.tp % kv:
            raise ConfigError(
                f"tp(={self.tp}) and num_kv_heads(={kv}) of {model.name} must divide one another"
            )
        per_virtual = self.pipeline_layers is not None and len(self.pipeline_layers) != self.pp
        if self.pp * self.virtual_stages > model.num_layers and not per_virtual:
            raise ConfigError(
                f"pp(={self.pp}) x virtual_stages(={self.virtual_stages}) exceeds "
                f"num_layers(={model.num_layers}) of {model.name}"
            )
        if self.virtual_stages > 1 and self.pipeline_layers is None:
            uneven = [n for n in self.stage_layers(model) if n % self.virtual_stages]
            if uneven:
                raise ConfigError(
                    f"virtual_stages(={self.virtual_stages}) must divide every stage's layers "
                    f"(here {uneven[0]}) as Megatron-LM asserts; change virtual_stages or give "
                    "pipeline_layers"
                )
        if self.pipeline_layers is not None:
            if sum(self.pipeline_layers) != model.num_layers:
                raise ConfigError(
                    f"pipeline_layers sum to {sum(self.pipeline_layers)}, not "
                    f"num_layers(={model.num_layers}) of {model.name}"
                )
            if (
                len(self.pipeline_layers) == self.pp
                and min(self.pipeline_layers) < self.virtual_stages
            ):
                raise ConfigError(
                    f"every stage of pipeline_layers needs >= virtual_stages"
                    f"(={self.virtual_stages}) layers, or give one entry per virtual stage"
                )
        if self.ep > 1 and not model.is_moe:
            raise ConfigError(
                f"ep(={self.ep}) > 1 needs a mixture-of-experts model; {model.name} is dense"
            )
        if model.is_moe and model.num_experts % self.ep:
            raise ConfigError(
                f"ep(={self.ep}) must divide num_experts(={model.num_experts}) of {model.name}"
            )
        if model.is_moe and model.moe_intermediate_size % self.expert_tp_size:
            raise ConfigError(
                f"expert_tp(={self.expert_tp_size}) must divide moe_intermediate_size"
                f"(={model.moe_intermediate_size}) of {model.name}"
            )
        if seq_len is not None and seq_len % self.cp:
            raise ConfigError(f"cp(={self.cp}) must divide seq_len(={seq_len})")
        if num_gpus is not None and num_gpus != self.world_size:
            raise ConfigError(
                f"gpus(={num_gpus}) must equal tp*cp*dp*pp(={self.world_size}) for this plan"
            )

    def num_microbatches(self, global_batch: int) -> int:
        """Micro-batches per pipeline per iteration: global_batch / (micro_batch_size x dp).

        Raises:
            ConfigError: global_batch is not a multiple of micro_batch_size x dp.
        """
        per_step = self.micro_batch_size * self.dp
        if global_batch < 1 or global_batch % per_step:
            raise ConfigError(
                f"global_batch(={global_batch}) must be a positive multiple of "
                f"micro_batch*dp(={per_step})"
            )
        return global_batch // per_step

    def layers_per_stage(self, model: ModelSpec) -> float:
        """Mean transformer layers per pipeline stage."""
        return model.num_layers / self.pp

    def stage_layers(self, model: ModelSpec) -> tuple[int, ...]:
        """Transformer layers of each pipeline stage (``pipeline_layers`` or an even split)."""
        if self.pipeline_layers is not None and len(self.pipeline_layers) == self.pp:
            return self.pipeline_layers
        if self.pipeline_layers is not None:
            return tuple(sum(self.pipeline_layers[s :: self.pp]) for s in range(self.pp))
        base, extra = divmod(model.num_layers, self.pp)
        return tuple(base + (1 if s < extra else 0) for s in range(self.pp))

    def virtual_stage_layers(self, model: ModelSpec) -> tuple[int, ...]:
        """Transformer layers of each virtual stage g = c pp + s (chunk c of rank s).

        ``pipeline_layers`` with pp x virtual_stages entries lists them directly, in that
        order (Megatron-Core's --pipeline-model-parallel-layout, where a chunk may hold only
        the embedding or the loss); with pp entries each stage's layers are split over its
        chunks as evenly as possible, the earlier chunks taking one more; without it, the
        model's layers are split evenly over all virtual stages (Megatron's default).
        """
        p, v = self.pp, self.virtual_stages
        if self.pipeline_layers is not None and len(self.pipeline_layers) == p * v:
            return self.pipeline_layers
        if self.pipeline_layers is None:
            base, extra = divmod(model.num_layers, p * v)
            return tuple(base + (1 if g < extra else 0) for g in range(p * v))
        out = [0] * (p * v)
        for s, n in enumerate(self.pipeline_layers):
            base, extra = divmod(n, v)
            for c in range(v):
                out[c * p + s] = base + (1 if c < extra else 0)
        return tuple(out)

    def params_per_gpu(self, model: ModelSpec) -> tuple[float, float]:
        """(non-expert, expert) parameters held by one GPU before ZeRO/FSDP sharding.

        Non-expert weights are split by tp and pp; routed experts by ep, expert_tp and pp.
        """
        expert = model.expert_params()
        dense = model.num_params - expert
        return dense / (self.tp * self.pp), expert / (self.ep * self.expert_tp_size * self.pp)

    def summary(self) -> dict[str, object]:
        return {
            "tp": self.tp,
            "pp": self.pp,
            "dp": self.dp,
            "cp": self.cp,
            "ep": self.ep,
            "expert_tp": self.expert_tp_size,
            "zero": self.zero,
            "sequence_parallel": self.sequence_parallel,
            "micro_batch_size": self.micro_batch_size,
            "virtual_stages": self.virtual_stages,
            "pipeline_layers": None if self.pipeline_layers is None else list(self.pipeline_layers),
            "grad_dtype": self.grad_dtype,
            "param_dtype": self.param_dtype,
            "world_size": self.world_size,
        }
