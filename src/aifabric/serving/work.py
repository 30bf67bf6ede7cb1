"""The work of a serving iteration: FLOP executed and HBM bytes moved (model arithmetic).

These are facts of the model and the batch, independent of whichever timing model
(roofline, measured profile) said how long the iteration took; the serving metrics divide
them by capacity x time for utilisation, and the power model uses them as its load.

Definitions (one instance of ``tp`` GPUs; a token's *context* is the number of earlier
tokens of its sequence whose KV it attends to, itself excluded):

- FLOP of a token: ``ModelSpec.forward_flops_per_token(context)`` = 2 x matmul weights +
  attention over the context (Kaplan et al. 2020, table 1; aifabric.spec.model). A decode
  step of ``b`` sequences holding ``C`` KV tokens in total executes b x F(0) + slope x C
  (F is affine in the context); a prefill chunk of tokens [lo, hi) executes
  sum_{j=lo}^{hi-1} F(j) = n F(0) + slope (lo n + n (n - 1) / 2), n = hi - lo.
- HBM bytes of an iteration (the traffic a kernel cannot avoid; activations, which stay
  small or on chip at serving batch sizes, are not counted):
  - weights read once per iteration: every matmul weight except the routed experts, plus
    the rows of the input embedding the tokens look up, plus the routed experts touched.
    With T tokens each routed to k of E experts per MoE layer, uniformly and independently,
    an expert is left untouched with probability (1 - k/E)^T, so the expected share read
    is 1 - (1 - k/E)^T (T = 1 gives k/E: exactly the active parameters);
  - KV read for attention: decode reads each sequence's whole context; a prefill chunk
    reads the KV of the tokens before it once (FlashAttention tiles keep the chunk's own
    KV on chip: Dao et al. 2022, sec. 3.1);
  - KV written: one token's KV per decoded and per prefilled token.
- Activity of an iteration of duration dt: max(FLOP / (tp x peak), bytes / (tp x HBM
  bandwidth)) / dt, at most 1: the busier of the two resources at its datasheet peak,
  the load of the power model (serving.economics).

Peak FLOP/s is the GPU's dense figure for the compute dtype (catalog gpus.yaml).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from aifabric.spec.model import ModelSpec, dtype_bytes


@dataclass(frozen=True, slots=True, kw_only=True)
class IterationWork:
    """FLOP, HBM bytes and activity-seconds of iterations on one instance."""

    flop0: float  # FLOP of a token with no context
    slope: float  # FLOP per context token
    kv: float  # KV bytes per token
    dense_weights: float  # bytes read every iteration (all but routed experts)
    lookup: float  # bytes of one input-embedding row
    experts: float  # bytes of all routed experts (0 for a dense model)
    expert_miss: float  # 1 - k/E: chance one token leaves a given expert untouched
    peak: float  # FLOP/s of the instance (tp GPUs)
    bandwidth: float  # HBM bytes/s of the instance (tp GPUs)

    @classmethod
    def of(cls, model: ModelSpec, *, tp: int, peak_flops: float, hbm_bandwidth: float,
           weight_dtype: str = "bf16", kv_dtype: str = "bf16") -> IterationWork:  # fmt: skip
        """The work model of ``model`` on ``tp`` GPUs of the given per-GPU peaks."""
        wb = dtype_bytes(weight_dtype)
        routed_active = 0.0
        experts = 0.0
        miss = 1.0
        if model.is_moe:
            expert = model.ffn_params(model.moe_intermediate_size)
            routed_active = float(model.num_moe_layers * model.experts_per_token * expert)
            experts = float(model.expert_params())
            miss = 1.0 - model.experts_per_token / model.num_experts
        flop0 = model.forward_flops_per_token(0.0)
        return cls(
            flop0=flop0, slope=model.forward_flops_per_token(1.0) - flop0,
            kv=model.kv_bytes_per_token(kv_dtype),
            dense_weights=(model.matmul_params_per_token() - routed_active) * wb,
            lookup=model.hidden_size * wb * (2 if model.position_embeddings else 1),
            experts=experts * wb, expert_miss=miss,
            peak=tp * peak_flops, bandwidth=tp * hbm_bandwidth,
        )  # fmt: skip

    def weights_read(self, tokens: Any) -> Any:
        """Weight bytes one iteration of ``tokens`` tokens reads (array or scalar)."""
        touched = 1.0 - np.power(self.expert_miss, tokens) if self.experts else 0.0
        return self.dense_weights + self.lookup * tokens + self.experts * touched

    def iteration(self, chunks: list[tuple[int, int]], batch: int, context: float,
                  dt: float) -> tuple[float, float, float]:  # fmt: skip
        """(FLOP, HBM bytes, activity-seconds) of one iteration of ``dt`` seconds carrying
        prefill ``chunks`` [(lo, hi), ...] and one decode token for each of ``batch``
        sequences holding ``context`` KV tokens in total."""
        new = 0.0
        prior = 0.0  # KV tokens before the chunks, read once each
        pairs = 0.0  # sum over chunk tokens of their context
        for lo, hi in chunks:  # a few chunks: plain floats beat small arrays
            n = hi - lo
            new += n
            prior += lo
            pairs += lo * n + n * (n - 1) / 2
        flop = new * self.flop0 + self.slope * pairs
        flop += batch * self.flop0 + self.slope * context
        tokens = new + batch
        moved = float(self.weights_read(tokens)) + self.kv * (prior + context + tokens)
        active = min(dt, max(flop / self.peak, moved / self.bandwidth)) if tokens else 0.0
        return flop, moved, active

    def decode_stretch(self, batch: int, context: float, steps: Sequence[float] | np.ndarray
                       ) -> tuple[float, float, float]:  # fmt: skip
        """(FLOP, HBM bytes, activity-seconds) of len(steps) decode steps of ``batch``
        sequences whose KV context is ``context`` at the first step and grows by ``batch``
        a step; ``steps`` are the steps' durations (a list, or an array).

        Closed form (a stretch runs once per event, so this is a hot path): step j has
        FLOP f(j) = b F(0) + slope (C + b j) and bytes m(j) = W + kv (C + b j + b), both
        affine in j, so their sums are arithmetic series; its activity is
        min(dt_j, max(f(j) / peak, m(j) / bandwidth)), and the max of two affine functions
        is summed piecewise about their crossing. The cap by dt_j is exact when the
        shortest step is at least the largest ideal time (a convex function of j, so
        largest at an end) -- always, for a timing no faster than the datasheet peaks;
        otherwise the steps are summed one by one.
        """
        k = len(steps)
        if batch <= 0 or k == 0:
            return 0.0, 0.0, 0.0
        b = float(batch)
        series = k * context + b * k * (k - 1) / 2.0  # sum over j of the context C + b j
        flop = k * b * self.flop0 + self.slope * series
        weights = float(self.weights_read(batch))
        moved = k * weights + self.kv * (series + k * b)
        # ideal seconds of step j: max(a0 + a1 j, m0 + m1 j)
        a0 = (b * self.flop0 + self.slope * context) / self.peak
        a1 = self.slope * b / self.peak
        m0 = (weights + self.kv * (context + b)) / self.bandwidth
        m1 = self.kv * b / self.bandwidth
        last = k - 1
        top = max(a0 + a1 * last, m0 + m1 * last, a0, m0)
        if float(min(steps)) < top:  # the cap binds somewhere: step by step
            ctx = context + b * np.arange(k, dtype=np.float64)
            ideal = np.maximum((b * self.flop0 + self.slope * ctx) / self.peak,
                               (weights + self.kv * (ctx + b)) / self.bandwidth)  # fmt: skip
            return flop, moved, float(np.minimum(np.asarray(steps), ideal).sum())
        return flop, moved, _sum_max_affine(a0, a1, m0, m1, k)


def _sum_max_affine(a0: float, a1: float, m0: float, m1: float, k: int) -> float:
    """sum_{j=0}^{k-1} max(a0 + a1 j, m0 + m1 j), exactly, without an array: the
    difference d(j) = (a0 - m0) + (a1 - m1) j is monotone, so the a-line wins on one side
    of its root and the m-line on the other."""

    def line(c0: float, c1: float, lo: int, hi: int) -> float:  # sum over j in [lo, hi)
        n = hi - lo
        return c0 * n + c1 * (lo + hi - 1) * n / 2.0 if n > 0 else 0.0

    da, dd = a0 - m0, a1 - m1
    if dd == 0:
        return line(a0, a1, 0, k) if da >= 0 else line(m0, m1, 0, k)
    if dd > 0:  # d >= 0 from j0 = ceil(-da / dd) on
        j0 = min(k, max(0, math.ceil(-da / dd)))
        return line(m0, m1, 0, j0) + line(a0, a1, j0, k)
    j1 = min(k, max(0, math.floor(da / -dd) + 1))  # d >= 0 up to floor(da / -dd)
    return line(a0, a1, 0, j1) + line(m0, m1, j1, k)


def instance_work(cluster: Any, timing: Any) -> IterationWork:
    """The work model of an instance of ``cluster`` (a ServingSimulation) timed by ``timing``
    (its GPU and TP degree; the compute dtype is the timing's, bf16 where it names none)."""
    dtype = str(getattr(timing, "compute_dtype", "bf16"))
    compute = cluster.scenario.compute
    return IterationWork.of(
        cluster.model, tp=timing.tp, peak_flops=timing.gpu.peak_flops(dtype),
        hbm_bandwidth=timing.gpu.hbm_bandwidth, weight_dtype=compute.weight_dtype,
        kv_dtype=compute.kv_dtype,
    )  # fmt: skip
