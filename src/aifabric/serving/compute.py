"""Roofline timing of one serving instance (TP group) per batch iteration.

One iteration may carry prefill tokens (compute-bound: FLOPs / (tp x peak x prefill_mfu)),
decode tokens (memory-bound: the instance's weights are read once, plus the KV cache of
every decoding sequence, at tp x HBM bandwidth x decode_bandwidth_efficiency; or their
FLOPs at decode_mfu if that is longer), or both (chunked prefill). Time is
max(compute, memory) -- so a short prefill is memory-bound too: it cannot beat one read of
the weights -- plus the TP all-reduces (2 per layer) of all the iteration's tokens, timed by
the collectives module on the scale-up link (ring, per-direction bandwidth x
scaleup_bandwidth_efficiency, scaleup_latency per step; not overlapped with compute, which
is what makes a long prefill's time fall less than 1/TP), plus overheads:
``iteration_overhead`` per iteration (scheduling, sampling), ``layer_overhead`` per
transformer layer (each layer's kernel launches and small-kernel tails: ~10-15 kernels a
layer), ``layer_sequence_overhead`` per layer per decoding sequence (the paged-attention and
per-row work that grows with the batch in every layer) and ``sequence_overhead`` per
decoding sequence (per-sequence bookkeeping outside the layers). Overheads that scale with
the layers are why one fixed per-iteration figure fitted on 80-layer 70B at TP4/TP8 made
32-layer 8B at TP1 1.8-2.9x too slow; the TP dependence is the all-reduces' per-step
latency and bytes, zero at TP1 (serving.config.Compute, fit). The
efficiency and overhead factors are named config fields (serving.config.Compute, fitted
there to measured tables); the dataclass defaults here are the unfitted roofline. The
measured tables themselves stand in behind the same protocol (serving.profile).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

import numpy as np

from aifabric.errors import ConfigError
from aifabric.spec.gpu import GpuSpec
from aifabric.spec.model import ModelSpec, dtype_bytes
from aifabric.traffic.collectives import Link, collective


class IterationTiming(Protocol):
    """What the serving simulator asks of a timing model (the calibration seam): a table
    of measured iteration times can stand in for the roofline by providing these."""

    @property
    def name(self) -> str: ...
    @property
    def tp(self) -> int: ...
    @property
    def gpu(self) -> GpuSpec: ...
    @property
    def weight_bytes(self) -> float: ...
    @property
    def kv_bytes_per_token(self) -> float: ...
    def tp_allreduce_bytes(self, tokens: float) -> float: ...
    def kv_tokens(self, memory_utilization: float) -> float: ...
    def prefill_flops(self, prompt_tokens: float, cached_tokens: float = 0.0) -> float: ...
    def prefill_time(self, prompt_tokens: float, cached_tokens: float = 0.0) -> float: ...
    def iteration_time(self, *, prefill_flops: float = 0.0, prefill_tokens: float = 0.0,
                       decode_batch: int = 0, decode_context: float = 0.0) -> float: ...  # fmt: skip
    def decode_step_times(self, batch: int, context_tokens: float, steps: int) -> np.ndarray: ...
    def decode_step_list(self, batch: int, context_tokens: float, steps: int) -> list[float]: ...


#: Decode stretches up to this many steps are timed in plain floats (NumPy's per-call
#: overhead exceeds the arithmetic there); longer ones as one array expression.
SMALL_STRETCH = 12


class IterationShortcuts:
    """``prefill_time`` and ``decode_step_time`` in terms of a timing's ``prefill_flops`` and
    ``iteration_time`` (shared by every timing model, so they cannot drift apart)."""

    __slots__ = ()

    def prefill_flops(self, prompt_tokens: float, cached_tokens: float = 0.0) -> float:
        raise NotImplementedError

    def iteration_time(self, *, prefill_flops: float = 0.0, prefill_tokens: float = 0.0,
                       decode_batch: int = 0, decode_context: float = 0.0) -> float:  # fmt: skip
        raise NotImplementedError

    def prefill_time(self, prompt_tokens: float, cached_tokens: float = 0.0) -> float:
        """Seconds to prefill ``prompt_tokens`` of which ``cached_tokens`` come from cache."""
        new = max(0.0, prompt_tokens - cached_tokens)
        flops = self.prefill_flops(prompt_tokens, cached_tokens)
        return self.iteration_time(prefill_flops=flops, prefill_tokens=new)

    def decode_step_time(self, batch: int, context_tokens: float) -> float:
        """Seconds for one decode step of ``batch`` sequences holding ``context_tokens`` of KV."""
        return self.iteration_time(decode_batch=batch, decode_context=context_tokens)

    def decode_step_times(self, batch: int, context_tokens: float, steps: int) -> np.ndarray:
        raise NotImplementedError

    def decode_step_list(self, batch: int, context_tokens: float, steps: int) -> list[float]:
        """``decode_step_times`` as a list of floats (what the simulator keeps per run)."""
        out: list[float] = self.decode_step_times(batch, context_tokens, steps).tolist()
        return out


@dataclass(frozen=True, slots=True, kw_only=True)
class RooflineTiming(IterationShortcuts):
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
    scaleup_bandwidth_efficiency: float = 1.0  # TP all-reduces' share of the link rate
    iteration_overhead: float = 0.0  # s per iteration (scheduling, sampling)
    sequence_overhead: float = 0.0  # s per decoding sequence in an iteration
    layer_overhead: float = 0.0  # s per transformer layer per iteration (kernel launches)
    layer_sequence_overhead: float = 0.0  # s per layer per decoding sequence
    note: str = ""  # why the roofline answers (shown in ``name``)
    # Derived once in __post_init__ (hot path): see _derive.
    _c: dict[str, float] = field(init=False, repr=False, compare=False, default_factory=dict)

    def __post_init__(self) -> None:
        for name in ("prefill_mfu", "decode_bandwidth_efficiency", "decode_mfu",
                     "scaleup_bandwidth_efficiency"):  # fmt: skip
            value = getattr(self, name)
            if not 0 < value <= 1:
                raise ConfigError(f"compute.{name}(={value}) must be in (0, 1]")
        if self.tp < 1:
            raise ConfigError(f"tp(={self.tp}) must be >= 1")
        for name in ("iteration_overhead", "sequence_overhead", "layer_overhead",
                     "layer_sequence_overhead"):  # fmt: skip
            value = getattr(self, name)
            if not 0 <= value < 10:
                raise ConfigError(f"compute.{name}_s(={value}) must be in [0, 10) s")
        weights = self.weight_bytes / self.tp
        if weights > self.gpu.hbm_bytes:
            raise ConfigError(
                f"{self.model.name} needs {weights / 1e9:.0f} GB of weights per GPU at tp={self.tp},"
                f" more than {self.gpu.name}'s {self.gpu.hbm_bytes / 1e9:.0f} GB; raise tp"
            )
        self._derive()

    def _derive(self) -> None:
        """Cache the constants every iteration needs (all from the model and collectives)."""
        c = self._c
        c["peak"] = self.tp * self.gpu.peak_flops(self.compute_dtype)
        c["hbm"] = self.tp * self.gpu.hbm_bandwidth * self.decode_bandwidth_efficiency
        c["kv"] = self.model.kv_bytes_per_token(self.kv_dtype)
        c["active"] = self.model.num_active_params * dtype_bytes(self.weight_dtype)
        c["flops0"] = self.model.forward_flops_per_token(0.0)
        c["slope"] = self.model.forward_flops_per_token(1.0) - c["flops0"]
        # The ring all-reduce's alpha-beta time is affine in its size: fix + per_token x tokens.
        fixed = self._allreduce_exact(0.0) if self.tp > 1 else 0.0
        c["ar_fixed"] = fixed
        layers = self.model.num_layers
        c["iter_fixed"] = self.iteration_overhead + layers * self.layer_overhead
        c["per_seq"] = self.sequence_overhead + layers * self.layer_sequence_overhead
        c["ar_per_token"] = (self._allreduce_exact(1e6) - fixed) / 1e6 if self.tp > 1 else 0.0

    @property
    def name(self) -> str:
        """Which timing model this is (the serve output's ``timing_model``)."""
        return f"roofline ({self.note})" if self.note else "roofline"

    @property
    def per_sequence_overhead(self) -> float:
        """Seconds each decoding sequence adds to an iteration (sequence_overhead plus
        layers x layer_sequence_overhead)."""
        return self._c["per_seq"]

    # ----- sizes --------------------------------------------------------------------------
    @property
    def weight_bytes(self) -> float:
        """All weights of the model, bytes (the instance holds them once, split over tp)."""
        return self.model.num_params * dtype_bytes(self.weight_dtype)

    @property
    def kv_bytes_per_token(self) -> float:
        return self._c["kv"]

    @property
    def kv_capacity_tokens(self) -> float:
        """Tokens of KV the instance's HBM holds after the weights (whole instance)."""
        return max(0.0, self.kv_tokens(1.0))

    def kv_tokens(self, memory_utilization: float) -> float:
        """KV tokens that fit in ``memory_utilization`` x HBM after the weights (may be < 0)."""
        usable = self.tp * self.gpu.hbm_bytes * memory_utilization
        return (usable - self.weight_bytes) / self.kv_bytes_per_token

    def tp_allreduce_bytes(self, tokens: float) -> float:
        """Bytes all TP ranks put on the scale-up links for ``tokens`` tokens' all-reduces."""
        if self.tp == 1 or tokens <= 0:
            return 0.0
        per_token = self.model.hidden_bytes_per_token(self.compute_dtype)
        cost = collective("all_reduce", "ring", num_ranks=self.tp, size=per_token)
        return 2 * self.model.num_layers * cost.total_bytes * tokens

    # ----- pieces -------------------------------------------------------------------------
    def _allreduce_time(self, tokens: float) -> float:
        if self.tp == 1 or tokens <= 0:
            return 0.0
        return self._c["ar_fixed"] + self._c["ar_per_token"] * tokens

    def _allreduce_exact(self, tokens: float) -> float:
        size = tokens * self.model.hidden_bytes_per_token(self.compute_dtype)
        cost = collective("all_reduce", "ring", num_ranks=self.tp, size=size)
        rate = self.gpu.scaleup_bandwidth_per_direction * self.scaleup_bandwidth_efficiency
        link = Link(rate, self.scaleup_latency)
        return 2 * self.model.num_layers * cost.time(link)

    def _weights_read(self, tokens: float) -> float:
        """Weight bytes one iteration of ``tokens`` tokens reads (MoE: experts touched)."""
        weights = self._c["active"]
        if self.model.is_moe:
            touched = min(1.0, tokens * self.model.experts_per_token / self.model.num_experts)
            weights += touched * (self.weight_bytes - weights)
        return weights

    def prefill_flops(self, prompt_tokens: float, cached_tokens: float = 0.0) -> float:
        """FLOPs to compute tokens [cached, prompt) attending causally to all before them."""
        new = max(0.0, prompt_tokens - cached_tokens)
        return new * (self._c["flops0"] + self._c["slope"] * (cached_tokens + new / 2.0))

    def prefill_compute_time(self, flops: float) -> float:
        """Seconds for ``flops`` of prefill work at tp x peak x prefill_mfu."""
        return flops / (self._c["peak"] * self.prefill_mfu)

    def kv_read_time(self, context_tokens: float) -> float:
        """Seconds to read ``context_tokens`` tokens of KV at the effective HBM rate."""
        return context_tokens * self._c["kv"] / self._c["hbm"]

    # ----- iteration times ----------------------------------------------------------------
    def iteration_time(self, *, prefill_flops: float = 0.0, prefill_tokens: float = 0.0,
                       decode_batch: int = 0, decode_context: float = 0.0) -> float:  # fmt: skip
        """Seconds for one iteration: prefill work plus ``decode_batch`` decode tokens whose
        sequences hold ``decode_context`` tokens of KV in total."""
        tokens = prefill_tokens + decode_batch
        if tokens <= 0:
            return 0.0
        c = self._c
        compute = prefill_flops / (c["peak"] * self.prefill_mfu)
        if decode_batch > 0:  # batch x forward_flops_per_token(context / batch)
            decode_flops = decode_batch * c["flops0"] + c["slope"] * decode_context
            compute += decode_flops / (c["peak"] * self.decode_mfu)
        memory = (self._weights_read(tokens) + decode_context * c["kv"]) / c["hbm"]
        fixed = c["iter_fixed"] + c["per_seq"] * decode_batch
        return max(compute, memory) + self._allreduce_time(tokens) + fixed

    def decode_step_times(self, batch: int, context_tokens: float, steps: int) -> np.ndarray:
        """Times of ``steps`` consecutive decode steps; the context grows by ``batch`` a step.

        Vectorized twin of ``decode_step_time`` (which it equals at every step): both the
        memory and the compute term are linear in the context, so a stretch of identical
        iterations costs one array expression instead of ``steps`` calls; a short stretch
        (up to ``SMALL_STRETCH`` steps) does the same operations in plain floats, which give
        the same numbers (tests/test_serving_speed_paths.py).
        """
        if batch <= 0 or steps <= 0:
            return np.zeros(max(steps, 0))
        if steps <= SMALL_STRETCH:
            return np.array(self._step_list(batch, context_tokens, steps))
        fixed, f0, slope, kv, hbm, peak, weights = self._step_terms(batch)
        context = context_tokens + batch * np.arange(steps, dtype=np.float64)
        compute = (f0 + slope * context) / peak
        memory = (weights + context * kv) / hbm
        return np.maximum(compute, memory) + fixed

    def decode_step_list(self, batch: int, context_tokens: float, steps: int) -> list[float]:
        """``decode_step_times`` as a list; a short stretch never becomes an array."""
        if batch <= 0 or steps <= 0 or steps > SMALL_STRETCH:
            out: list[float] = self.decode_step_times(batch, context_tokens, steps).tolist()
            return out
        return self._step_list(batch, context_tokens, steps)

    def _step_terms(self, batch: int) -> tuple[float, ...]:
        """The constants of a decode step of ``batch`` sequences (both paths use them):
        fixed seconds, FLOP with no context, FLOP and KV bytes per context token, HBM
        rate, FLOP rate, weight bytes read."""
        c = self._c
        fixed = self._allreduce_time(batch) + c["iter_fixed"]
        fixed += c["per_seq"] * batch
        peak = c["peak"] * self.decode_mfu
        return (fixed, batch * c["flops0"], c["slope"], c["kv"], c["hbm"], peak,
                self._weights_read(batch))  # fmt: skip

    def _step_list(self, batch: int, context_tokens: float, steps: int) -> list[float]:
        """A short stretch's step times: the array path's operations on plain floats."""
        fixed, f0, slope, kv, hbm, peak, weights = self._step_terms(batch)
        out = []
        for j in range(steps):
            ctx = context_tokens + batch * float(j)
            out.append(max((f0 + slope * ctx) / peak, (weights + ctx * kv) / hbm) + fixed)
        return out
