"""Roofline timing of one serving instance (TP group) per batch iteration.

Prefill is compute-bound: time = FLOPs / (tp x peak x prefill_mfu), FLOPs from the model's
forward FLOPs per token with causal attention over the prompt. Decode is memory-bound:
each step reads the instance's weights once plus the batch's whole KV cache, time =
bytes / (tp x HBM bandwidth x decode_bandwidth_efficiency), unless the batch's FLOPs take
longer. Both add the TP all-reduces (2 per layer) of the batch's hidden states, timed by
the collectives module on the scale-up link (ring, per-direction bandwidth). The
efficiency factors are named config fields; a measured calibration table can replace this
class behind the same two methods (prefill_time, decode_step_time).
"""

from __future__ import annotations

from dataclasses import dataclass

from aifabric.errors import ConfigError
from aifabric.spec.gpu import GpuSpec
from aifabric.spec.model import ModelSpec, dtype_bytes
from aifabric.traffic.collectives import Link, collective


@dataclass(frozen=True, slots=True, kw_only=True)
class RooflineTiming:
    """Iteration times (s) of one instance of ``model`` on ``tp`` GPUs of type ``gpu``."""

    model: ModelSpec
    gpu: GpuSpec
    tp: int = 1
    weight_dtype: str = "bf16"
    kv_dtype: str = "bf16"
    compute_dtype: str = "bf16"
    prefill_mfu: float = 0.5
    decode_bandwidth_efficiency: float = 0.8
    decode_mfu: float = 0.5
    scaleup_latency: float = 2e-6  # s per collective step on NVLink

    def __post_init__(self) -> None:
        for name in ("prefill_mfu", "decode_bandwidth_efficiency", "decode_mfu"):
            value = getattr(self, name)
            if not 0 < value <= 1:
                raise ConfigError(f"compute.{name}(={value}) must be in (0, 1]")
        if self.tp < 1:
            raise ConfigError(f"tp(={self.tp}) must be >= 1")
        weights = self.weight_bytes / self.tp
        if weights > self.gpu.hbm_bytes:
            raise ConfigError(
                f"{self.model.name} needs {weights / 1e9:.0f} GB of weights per GPU at tp={self.tp},"
                f" more than {self.gpu.name}'s {self.gpu.hbm_bytes / 1e9:.0f} GB; raise tp"
            )

    @property
    def weight_bytes(self) -> float:
        """All weights of the model, bytes (the instance holds them once, split over tp)."""
        return self.model.num_params * dtype_bytes(self.weight_dtype)

    @property
    def kv_capacity_tokens(self) -> float:
        """Tokens of KV the instance's HBM holds after the weights (whole instance)."""
        free = self.tp * self.gpu.hbm_bytes - self.weight_bytes
        return max(0.0, free / self.model.kv_bytes_per_token(self.kv_dtype))

    def _allreduce_time(self, tokens: float) -> float:
        if self.tp == 1 or tokens <= 0:
            return 0.0
        size = tokens * self.model.hidden_bytes_per_token(self.compute_dtype)
        cost = collective("all_reduce", "ring", num_ranks=self.tp, size=size)
        link = Link(self.gpu.scaleup_bandwidth_per_direction, self.scaleup_latency)
        return 2 * self.model.num_layers * cost.time(link)

    def prefill_time(self, prompt_tokens: float, cached_tokens: float = 0.0) -> float:
        """Seconds to prefill ``prompt_tokens`` of which ``cached_tokens`` come from cache."""
        new = max(0.0, prompt_tokens - cached_tokens)
        if new == 0:
            return 0.0
        mean_context = cached_tokens + new / 2.0
        flops = new * self.model.forward_flops_per_token(mean_context)
        peak = self.tp * self.gpu.peak_flops(self.compute_dtype) * self.prefill_mfu
        return flops / peak + self._allreduce_time(new)

    def decode_step_time(self, batch: int, context_tokens: float) -> float:
        """Seconds for one decode step of ``batch`` sequences holding ``context_tokens`` of KV."""
        if batch <= 0:
            return 0.0
        per_param = dtype_bytes(self.weight_dtype)
        weights = self.model.num_active_params * per_param
        if self.model.is_moe:  # a batch touches more experts than one token does
            touched = min(1.0, batch * self.model.experts_per_token / self.model.num_experts)
            weights += touched * (self.weight_bytes - weights)
        kv = context_tokens * self.model.kv_bytes_per_token(self.kv_dtype)
        memory = (weights + kv) / (
            self.tp * self.gpu.hbm_bandwidth * self.decode_bandwidth_efficiency
        )
        flops = batch * self.model.forward_flops_per_token(context_tokens / batch)
        compute = flops / (self.tp * self.gpu.peak_flops(self.compute_dtype) * self.decode_mfu)
        return max(memory, compute) + self._allreduce_time(batch)
