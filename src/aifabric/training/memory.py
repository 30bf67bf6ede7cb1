"""Memory per GPU of a training plan: weights, gradients, optimizer states, activations.

Model state, per parameter held by the GPU (Megatron-LM's distributed-optimizer guide,
``docs/source/api-guide/dist_optimizer.md``: 16-bit parameters with fp32 gradients take
18 bytes per parameter, 6 + 12/d with the optimizer sharded over d data-parallel ranks):

- weights: ``param_dtype`` bytes (2 for bf16); sharded over data parallelism by ZeRO-3;
- gradients: ``grad_dtype`` bytes (Megatron keeps an fp32 main-grad buffer for bf16
  training); sharded by ZeRO-2 and -3;
- optimizer: Adam's two moments in fp32 (8 bytes) plus an fp32 master copy when the
  parameters are 16-bit (4 more); sharded by ZeRO-1 and up (Megatron's distributed
  optimizer). Dense parameters shard over dp x cp, routed experts over the expert-data-
  parallel group.

Activations (Korthikanti et al., *Reducing Activation Recomputation in Large Transformer
Models*, MLSys 2023): per layer and token ``ModelSpec.activation_bytes_per_token_per_layer``
(34 h + 5 a s bytes, tensor parallelism dividing 24 h and the attention term, sequence
parallelism everything; flash attention, as every current stack uses, drops the 5 a s/h
score term, which is what selective recomputation does); full recomputation keeps only each
layer's 16-bit input, 2 h per token (/ t with sequence parallelism). Context parallelism
divides the tokens. Under 1F1B the first pipeline stage holds min(p, m) micro-batches in
flight (section 4.2.3), with interleaving v chunks times 1 + (p - 1)/(p v).
"""

from __future__ import annotations

from typing import Any

from aifabric.errors import ConfigError
from aifabric.spec.model import ModelSpec, dtype_bytes
from aifabric.spec.parallel import ParallelPlan


def memory_per_gpu(model: ModelSpec, plan: ParallelPlan, *, seq_len: int, micro_batches: int,
                   recompute: str = "none", hbm_bytes: float | None = None,
                   flash_attention: bool = True) -> dict[str, Any]:  # fmt: skip
    """Bytes per GPU on the first pipeline stage (the fullest) by component, and the total."""
    if recompute not in ("none", "selective", "full"):
        raise ConfigError(f"recompute(={recompute!r}) must be none, selective or full")
    dense, expert = plan.params_per_gpu(model)
    dp_dense = plan.dp * plan.cp
    dp_expert = plan.group_size("edp")
    p_bytes = dtype_bytes(plan.param_dtype)
    g_bytes = dtype_bytes(plan.grad_dtype)
    o_bytes = 8.0 + (4.0 if p_bytes < 4 else 0.0)

    def held(count: float, stage: int, dp: int) -> float:
        return count / dp if plan.zero >= stage else count

    weights = p_bytes * (held(dense, 3, dp_dense) + held(expert, 3, dp_expert))
    grads = g_bytes * (held(dense, 2, dp_dense) + held(expert, 2, dp_expert))
    optimizer = o_bytes * (held(dense, 1, dp_dense) + held(expert, 1, dp_expert))
    # Activations on the first stage.
    layers = max(plan.stage_layers(model)) if plan.pp > 1 else model.num_layers
    tokens = seq_len / plan.cp * plan.micro_batch_size
    if recompute == "full":
        per_token = model.hidden_bytes_per_token(plan.activation_dtype)
        per_token /= plan.tp if plan.sequence_parallel else 1
    else:
        per_token = model.activation_bytes_per_token_per_layer(
            seq_len=seq_len, tp=plan.tp, sequence_parallel=plan.sequence_parallel,
            flash_attention=flash_attention or recompute == "selective",
        )  # fmt: skip
    in_flight = float(min(plan.pp, micro_batches))
    if plan.virtual_stages > 1:
        in_flight *= 1 + (plan.pp - 1) / (plan.pp * plan.virtual_stages)
    activations = per_token * tokens * layers * in_flight
    total = weights + grads + optimizer + activations
    out: dict[str, Any] = {
        "weights_bytes": weights,
        "gradients_bytes": grads,
        "optimizer_bytes": optimizer,
        "activations_bytes": activations,
        "total_bytes": total,
        "in_flight_microbatches": in_flight,
    }
    if hbm_bytes is not None:
        out["fits_in_memory"] = bool(total <= hbm_bytes)
    return out


def bytes_per_param(param_dtype: str = "bf16", grad_dtype: str = "fp32", *, zero: int = 0,
                    dp: int = 1) -> float:  # fmt: skip
    """Model-state bytes per parameter (weights + gradients + Adam), as Megatron's guide
    tabulates them: 18 for bf16/fp32 without sharding, 6 + 12/d with the distributed
    optimizer."""
    p, g = dtype_bytes(param_dtype), dtype_bytes(grad_dtype)
    o = 8.0 + (4.0 if p < 4 else 0.0)
    return (p / (dp if zero >= 3 else 1) + g / (dp if zero >= 2 else 1)
            + o / (dp if zero >= 1 else 1))  # fmt: skip


__all__ = ["bytes_per_param", "memory_per_gpu"]
