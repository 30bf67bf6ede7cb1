"""Measured iteration timing: interpolated tables of prefill and decode iteration times.

A :class:`ServingProfile` holds, for one deployment (model, GPU, TP degree, weight dtype),
the measured time of a prefill iteration by batched tokens and of a decode iteration by
batch size (at the measured mean context per sequence). :class:`ProfileTiming` answers the
serving simulator's :class:`~aifabric.serving.compute.IterationTiming` questions from those
tables; every size (weights, KV bytes, all-reduce bytes, FLOPs) still comes from the model
arithmetic of a :class:`~aifabric.serving.compute.RooflineTiming` it delegates to, so there
is one home for model arithmetic. The shipped tables are in
``catalog/data/serving_profiles/`` (see ``aifabric.catalog.serving_profiles``).

Interpolation (``_Curve``), chosen per axis by leave-one-out error on the shipped tables
(tests/test_serving_timing.py; TP4/TP8, interior points held out):

- decode, by batch: piecewise linear. A decode iteration is a fixed cost (the weight read
  and overheads) plus a per-sequence cost, affine in the batch; held-out error 2.2 % mean,
  8.4 % worst (log-log: 3.6 / 13.7 %).
- prefill, by batched tokens: monotone cubic Hermite (Fritsch-Carlson slopes, as PCHIP) in
  log(tokens) -> log(time). Time goes from overhead-flat (128-512 tokens) to proportional
  and steeper (attention) over 128..32,768 tokens, a curve in log-log that segments cut;
  held-out error 7.4 % mean, 17.3 % worst (log-log linear: 9.4 / 27.2 %, linear: 8.4 /
  31.8 %). Both keep the tables' monotonicity (they are non-decreasing by derivation).
- above the largest point: linear in x with the last segment's slope (time per extra token
  or sequence), i.e. the last measured marginal cost continues; no physics beyond that.
- below the smallest point: prefill is log-log interpolated down to the decode-iteration
  time of batch 1 at 1 token (a 1-token prefill is one token's forward pass; anchored
  there, not held at the 128-token time); decode has batch 1 as its smallest point and no
  smaller batch exists.

Context of decode iterations: the tables measure a decode iteration at one mean context per
sequence (575.5 tokens in SplitwiseSim's batch sweep). Another context adds (or removes) the
KV it reads at the roofline's effective HBM rate:
``decode(b, C) = D(b) + (C - b x c_ref) x kv_bytes_per_token / (tp x HBM x efficiency)``,
C being the total context of the batch (D(b) - b x c_ref x that rate kept non-decreasing).
SplitwiseSim's batch-1 token sweep (context 575 to
4,607) moves by < 1 ms, within the 5 repeats' spread, which that term (0.06 ms at TP8 on
H100) matches; it is checked against those points in tests/test_serving_timing.py.

Prefill attending to cached context (prefix-cache hits, later chunks of a chunked prompt):
the table measures fresh prompts; FLOPs beyond a fresh prompt of the same new tokens
(``prefill_flops - model prefill_flops(new, 0)``, the attention over the cached tokens) are
added at the roofline's prefill rate (tp x peak x prefill_mfu).

Decode-only tables (a source that measured decode but not a prefill curve, e.g. Argonne's
LLM-Inference-Bench with one TTFT point per deployment): the prefill side of an iteration --
a prefill, or the prefill part of a mixed one -- is the roofline's ``iteration_time`` (its
prefill_mfu and overheads; the decode tokens' KV and weights included), and an iteration is
still never faster than its decode part from the table. The answer's name says so:
"profile (decode): SOURCE MODEL GPU tpN + roofline (prefill)".

Siblings: a model without its own table may borrow one of a model with the same transformer
body (catalog ``serving_profiles/siblings.yaml``: Llama-3-70B from Llama-2-70B, which
differ only in vocabulary), its times scaled by ``sibling_scales``; the answer's name says
"scaled to".

Mixed iterations (chunked prefill with decode tokens piggybacked):
``t = max(decode(b, C), prefill(p + b) + kv_read(C) + cached_attention)``. The linear
layers see all p + b tokens of the iteration, so the prefill table is read at p + b
(SplitwiseSim's ``get_iteration_duration`` does the same, times a 1.1 fudge we leave out);
the decode tokens' attention reads their KV on top (Vidur, Agrawal et al. MLSys 2024,
times token-wise operators by the batch's total tokens and the decode attention separately
by KV size); and an iteration is never faster than its decode part alone (more tokens are
never faster). Sarathi-Serve (Agrawal et al., OSDI 2024) observes hybrid batches cost
about their prefill chunk, the decode tokens riding on its weight reads, which this keeps.
Note a prefill iteration carries overhead a decode iteration does not (SplitwiseSim's
128-token prompt phase is ~2x a batch-64 decode step), so adding one prefill token to a
decode iteration jumps to the prefill curve: that is the measurement, not a seam.
"""

from __future__ import annotations

import bisect
import itertools
import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from aifabric.errors import ConfigError
from aifabric.serving.compute import SMALL_STRETCH, IterationShortcuts, RooflineTiming
from aifabric.spec.gpu import GpuSpec
from aifabric.spec.model import ModelSpec

#: Weight dtypes a 16-bit measured table stands for: fp16 and bf16 have the same bytes and
#: the same tensor-core rate on A100/H100 (NVIDIA A100 and H100 datasheets).
DTYPE_CLASS = {"fp16": "16-bit", "bf16": "16-bit"}


def dtype_class(dtype: str) -> str:
    """The class of weight formats one measured table covers (fp16 and bf16: 16-bit)."""
    return DTYPE_CLASS.get(dtype.lower(), dtype.lower())


@dataclass(frozen=True, slots=True, kw_only=True)
class ServingProfile:
    """Measured iteration times (s) of one deployment. ``prefill``: (batched tokens, s), or
    empty for a decode-only table (prefill then comes from the roofline); ``decode``:
    (batch, s) at ``decode_context`` tokens of context per sequence;
    ``decode_context_points``: (context per sequence, s) at batch 1 and ``decode_points``:
    (batch, context per sequence, s), both validation only."""

    source: str
    model: str
    gpu: str
    tp: int
    weight_dtype: str
    prefill: tuple[tuple[float, float], ...]
    decode: tuple[tuple[float, float], ...]
    decode_context: float
    decode_context_points: tuple[tuple[float, float], ...] = ()
    decode_points: tuple[tuple[float, float, float], ...] = ()

    def __post_init__(self) -> None:
        for what, pts in (("prefill", self.prefill), ("decode", self.decode)):
            if what == "prefill" and not pts:
                continue  # decode-only table
            xs = [x for x, _ in pts]
            ys = [y for _, y in pts]
            if len(pts) < 2 or any(b <= a for a, b in itertools.pairwise(xs)):
                raise ConfigError(f"serving profile {self.label}: {what} needs >= 2 points, "
                                  "increasing in size")  # fmt: skip
            if any(y <= 0 for y in ys) or any(b < a for a, b in itertools.pairwise(ys)):
                raise ConfigError(f"serving profile {self.label}: {what} times must be > 0 and"
                                  " non-decreasing")  # fmt: skip

    @property
    def key(self) -> tuple[str, str, int, str]:
        return (self.model, self.gpu, self.tp, dtype_class(self.weight_dtype))

    @property
    def label(self) -> str:
        return f"{self.source} {self.model} {self.gpu} tp{self.tp}"


def _monotone_slopes(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Fritsch-Carlson node slopes (SIAM J. Numer. Anal. 17(2), 1980; the weighted harmonic
    mean of Fritsch & Butland 1984, as in PCHIP): the cubic Hermite through (x, y) with
    these slopes is monotone wherever the data are."""
    h, d = np.diff(x), np.diff(y) / np.diff(x)
    m = np.empty_like(y)
    m[0], m[-1] = d[0], d[-1]
    w1, w2 = 2 * h[1:] + h[:-1], h[1:] + 2 * h[:-1]
    same = d[:-1] * d[1:] > 0
    safe = np.where(same, 1.0, 0.0)
    with np.errstate(divide="ignore", invalid="ignore"):
        inner = (w1 + w2) / (w1 / np.where(same, d[:-1], 1.0) + w2 / np.where(same, d[1:], 1.0))
    m[1:-1] = inner * safe
    return m


@dataclass(frozen=True, slots=True)
class _Curve:
    """Interpolation of one table axis (module docstring). ``log``: monotone cubic Hermite
    in log(x) -> log(y); else piecewise linear. Above the last point: the last segment's
    slope (linear in x); below the first, ``floor`` (log-log down to it at x = 1)."""

    xs: np.ndarray
    ys: np.ndarray
    log: bool = False
    floor: float | None = None
    _m: np.ndarray = field(init=False, repr=False, compare=False)
    _py: tuple[tuple[float, ...], ...] = field(init=False, repr=False, compare=False)
    _memo: dict[float, float] = field(init=False, repr=False, compare=False)

    #: ``scalar`` answers kept (a pure function of x; the simulator asks the same batch
    #: sizes and token counts again and again)
    MEMO = 1 << 16

    def __post_init__(self) -> None:
        object.__setattr__(self, "_memo", {})
        if self.log:
            object.__setattr__(self, "_m", _monotone_slopes(np.log(self.xs), np.log(self.ys)))
        logs = (np.log(self.xs), np.log(self.ys), self._m) if self.log else ()
        py = tuple(tuple(float(v) for v in a) for a in (self.xs, self.ys, *logs))
        object.__setattr__(self, "_py", py)

    def _inside(self, x: np.ndarray) -> np.ndarray:
        if not self.log:
            return np.asarray(np.interp(x, self.xs, self.ys), dtype=np.float64)
        lx, ly, m = np.log(self.xs), np.log(self.ys), self._m
        u = np.log(np.clip(x, self.xs[0], self.xs[-1]))
        i = np.clip(np.searchsorted(lx, u) - 1, 0, len(lx) - 2)
        h = lx[i + 1] - lx[i]
        t = (u - lx[i]) / h
        h00, h10 = (1 + 2 * t) * (1 - t) ** 2, t * (1 - t) ** 2
        h01, h11 = t * t * (3 - 2 * t), t * t * (t - 1)
        logy = h00 * ly[i] + h10 * h * m[i] + h01 * ly[i + 1] + h11 * h * m[i + 1]
        return np.asarray(np.exp(logy), dtype=np.float64)

    def __call__(self, x: np.ndarray | float) -> np.ndarray:
        x = np.maximum(np.asarray(x, dtype=np.float64), 1.0)
        slope = (self.ys[-1] - self.ys[-2]) / (self.xs[-1] - self.xs[-2])
        out = np.where(x > self.xs[-1], self.ys[-1] + (x - self.xs[-1]) * slope, self._inside(x))
        if self.floor is not None and self.xs[0] > 1.0:
            lo = min(self.floor, float(self.ys[0]))
            frac = np.log(x) / math.log(self.xs[0])
            below = np.exp(math.log(lo) + frac * (math.log(self.ys[0]) - math.log(lo)))
            out = np.where(x < self.xs[0], below, out)
        return np.asarray(out, dtype=np.float64)

    def scalar(self, x: float) -> float:
        """``self(x)`` for one x in plain floats (the simulator asks one point per
        iteration, where NumPy's per-call overhead is most of the cost); equal to the
        array path (tests/test_serving_timing.py)."""
        memo = self._memo
        y = memo.get(x)
        if y is None:
            y = self._scalar(x)
            if len(memo) < self.MEMO:
                memo[x] = y
        return y

    def _scalar(self, x: float) -> float:
        pts = self._py
        xs, ys = pts[0], pts[1]
        x = max(float(x), 1.0)
        n = len(xs)
        if x > xs[-1]:
            return ys[-1] + (x - xs[-1]) * (ys[-1] - ys[-2]) / (xs[-1] - xs[-2])
        if x < xs[0] and self.floor is not None and xs[0] > 1.0:
            lo = min(self.floor, ys[0])
            frac = math.log(x) / math.log(xs[0])
            return math.exp(math.log(lo) + frac * (math.log(ys[0]) - math.log(lo)))
        if not self.log:
            if x <= xs[0]:
                return ys[0]
            i = min(bisect.bisect_left(xs, x) - 1, n - 2)
            return ys[i] + (x - xs[i]) * (ys[i + 1] - ys[i]) / (xs[i + 1] - xs[i])
        lx, ly, m = pts[2], pts[3], pts[4]
        u = math.log(min(max(x, xs[0]), xs[-1]))
        i = min(max(bisect.bisect_left(lx, u) - 1, 0), n - 2)
        h = lx[i + 1] - lx[i]
        t = (u - lx[i]) / h
        h00, h10 = (1 + 2 * t) * (1 - t) ** 2, t * (1 - t) ** 2
        h01, h11 = t * t * (3 - 2 * t), t * t * (t - 1)
        return math.exp(h00 * ly[i] + h10 * h * m[i] + h01 * ly[i + 1] + h11 * h * m[i + 1])


@dataclass(frozen=True, slots=True, kw_only=True)
class ProfileTiming(IterationShortcuts):
    """Iteration times from a measured :class:`ServingProfile`; sizes from ``roofline``."""

    profile: ServingProfile
    roofline: RooflineTiming
    _decode: _Curve = field(init=False, repr=False, compare=False)
    _prefill: _Curve | None = field(init=False, repr=False, compare=False)  # None: roofline
    _kv_s: float = field(init=False, repr=False, compare=False)  # s per context token read

    def __post_init__(self) -> None:
        p, r = self.profile, self.roofline
        if (r.gpu.name, r.tp) != (p.gpu, p.tp) or (
            r.model.name != p.model and (sibling_scales(r.model, p.model) is None)
        ):
            raise ConfigError(f"serving profile {p.label} does not describe "
                              f"{r.model.name} on {r.tp} x {r.gpu.name}")  # fmt: skip
        pre_scale, dec_scale = sibling_scales(r.model, p.model) or (1.0, 1.0)
        dec = np.array(p.decode, dtype=np.float64)
        kv_s = r.kv_read_time(1.0)
        # Zero-context decode times D(b) - b x c_ref x kv_s, kept non-decreasing (running
        # maximum: moves a measured point by < 0.02 ms where the KV term outgrows a flat
        # stretch of the table), so that decode(b, C) = that + C x kv_s is monotone in both.
        # (A sibling's KV per token is the same: same layers, KV heads and head size.)
        zero = np.maximum.accumulate(dec_scale * (dec[:, 1] - dec[:, 0] * p.decode_context * kv_s))
        set_ = object.__setattr__
        set_(self, "_decode", _Curve(dec[:, 0], zero))
        prefill = None
        if p.prefill:
            pre = np.array(p.prefill, dtype=np.float64)
            pre[:, 1] *= pre_scale
            prefill = _Curve(pre[:, 0], pre[:, 1], log=True, floor=float(dec[0, 1]))
        set_(self, "_prefill", prefill)
        set_(self, "_kv_s", kv_s)

    # ----- sizes: the model arithmetic, delegated ------------------------------------------
    @property
    def name(self) -> str:
        own = self.roofline.model.name
        scaled = "" if own == self.profile.model else f", scaled to {own}"
        if self._prefill is None:
            return f"profile (decode): {self.profile.label}{scaled} + roofline (prefill)"
        return f"profile: {self.profile.label}{scaled}"

    @property
    def tp(self) -> int:
        return self.roofline.tp

    @property
    def gpu(self) -> GpuSpec:
        return self.roofline.gpu

    @property
    def weight_bytes(self) -> float:
        return self.roofline.weight_bytes

    @property
    def kv_bytes_per_token(self) -> float:
        return self.roofline.kv_bytes_per_token

    @property
    def kv_capacity_tokens(self) -> float:
        return self.roofline.kv_capacity_tokens

    def kv_tokens(self, memory_utilization: float) -> float:
        return self.roofline.kv_tokens(memory_utilization)

    def tp_allreduce_bytes(self, tokens: float) -> float:
        return self.roofline.tp_allreduce_bytes(tokens)

    def prefill_flops(self, prompt_tokens: float, cached_tokens: float = 0.0) -> float:
        return self.roofline.prefill_flops(prompt_tokens, cached_tokens)

    # ----- iteration times ------------------------------------------------------------------
    def decode_table_time(self, batch: float) -> float:
        """Measured decode iteration (s) of ``batch`` sequences at the table's context."""
        return self._decode.scalar(batch) + batch * self.profile.decode_context * self._kv_s

    def prefill_table_time(self, tokens: float) -> float:
        """Measured prefill iteration (s) of ``tokens`` fresh batched prompt tokens (the
        roofline's for a decode-only table)."""
        if self._prefill is None:
            flops = self.roofline.prefill_flops(tokens, 0.0)
            return self.roofline.iteration_time(prefill_flops=flops, prefill_tokens=tokens)
        return self._prefill.scalar(tokens)

    def iteration_time(self, *, prefill_flops: float = 0.0, prefill_tokens: float = 0.0,
                       decode_batch: int = 0, decode_context: float = 0.0) -> float:  # fmt: skip
        """Seconds for one iteration (module docstring: decode, prefill, mixed)."""
        if prefill_tokens + decode_batch <= 0:
            return 0.0
        decode = 0.0
        if decode_batch > 0:
            decode = self._decode.scalar(decode_batch) + decode_context * self._kv_s
        if prefill_tokens <= 0:
            return decode
        if self._prefill is None:  # decode-only table: the prefill side is the roofline's
            prefill = self.roofline.iteration_time(
                prefill_flops=prefill_flops, prefill_tokens=prefill_tokens,
                decode_batch=decode_batch, decode_context=decode_context)  # fmt: skip
            return max(decode, prefill)
        fresh = self.roofline.prefill_flops(prefill_tokens, 0.0)
        cached = self.roofline.prefill_compute_time(max(0.0, prefill_flops - fresh))
        prefill = self.prefill_table_time(prefill_tokens + decode_batch) + cached
        if decode_batch > 0:
            prefill += decode_context * self._kv_s
        return max(decode, prefill)

    def decode_step_times(self, batch: int, context_tokens: float, steps: int) -> np.ndarray:
        """Times of ``steps`` consecutive decode steps, the context growing by ``batch`` a
        step: one array expression (plain floats up to ``SMALL_STRETCH`` steps, the same
        numbers), equal to ``decode_step_time`` at every step."""
        if batch <= 0 or steps <= 0:
            return np.zeros(max(steps, 0))
        if steps <= SMALL_STRETCH:
            return np.array(self._step_list(batch, context_tokens, steps))
        base = self._decode.scalar(batch)
        context = context_tokens + batch * np.arange(steps, dtype=np.float64)
        return base + context * self._kv_s

    def decode_step_list(self, batch: int, context_tokens: float, steps: int) -> list[float]:
        """``decode_step_times`` as a list; a short stretch never becomes an array."""
        if batch <= 0 or steps <= 0 or steps > SMALL_STRETCH:
            out: list[float] = self.decode_step_times(batch, context_tokens, steps).tolist()
            return out
        return self._step_list(batch, context_tokens, steps)

    def _step_list(self, batch: int, context_tokens: float, steps: int) -> list[float]:
        """A short stretch's step times: the array path's operations on plain floats."""
        base = self._decode.scalar(batch)
        kv_s = self._kv_s
        return [base + (context_tokens + batch * float(j)) * kv_s for j in range(steps)]


#: Transformer-body fields a sibling must share (the kernels' shapes).
BODY = ("num_layers", "hidden_size", "num_attention_heads", "num_kv_heads", "head_dim",
        "intermediate_size", "attention", "ffn", "num_experts")  # fmt: skip


def sibling_scales(model: ModelSpec, source: str) -> tuple[float, float] | None:
    """(prefill, decode) scale factors for timing ``model`` from ``source``'s measured table
    when the catalog names ``source`` as its sibling (catalog siblings.yaml) and their
    transformer bodies match (``BODY``), else None. Prefill times scale by FLOP per token
    (F(0): 2 x the matmul weights, LM head included); the fixed part of a decode iteration
    by the matmul weight bytes each step reads, the same ratio. Overheads scale with them,
    which is exact for none of them and within the vocabulary's share of the weights (Llama
    3 70B vs Llama 2 70B: 2.3 %) of either reading."""
    from aifabric.catalog import get_model, serving_profile_siblings

    if serving_profile_siblings().get(model.name) != source:
        return None
    src = get_model(source)
    if any(getattr(model, f) != getattr(src, f) for f in BODY):
        raise ConfigError(f"serving profile siblings: {model.name} and {source} differ in their "
                          "transformer body; remove the pair from siblings.yaml")  # fmt: skip
    flop = model.forward_flops_per_token(0.0) / src.forward_flops_per_token(0.0)
    weights = model.matmul_params_per_token() / src.matmul_params_per_token()
    return flop, weights


def select_timing(*, model: ModelSpec, gpu: GpuSpec, tp: int, timing: str = "auto",
                  weight_dtype: str = "bf16", kv_dtype: str = "bf16",
                  **roofline: Any) -> RooflineTiming | ProfileTiming:  # fmt: skip
    """The timing model for a deployment: ``timing`` is ``auto`` (the measured profile when
    the catalog has one for (model, gpu, tp, weight dtype), else the roofline), ``profile``
    (ConfigError without one) or ``roofline``. ``roofline``: RooflineTiming's efficiency and
    overhead fields. The answer's ``name`` says which model answered and why."""
    from aifabric.catalog import find_serving_profile

    if timing not in ("auto", "profile", "roofline"):
        raise ConfigError(f"compute.timing(={timing!r}) must be one of auto, profile, roofline")
    where = f"{model.name} {gpu.name} tp{tp} {weight_dtype}"
    found = None if timing == "roofline" else find_serving_profile(model.name, gpu.name, tp,
                                                                   weight_dtype)  # fmt: skip
    if timing == "profile" and found is None:
        raise ConfigError(f"compute.timing(=profile): no measured serving profile for {where};"
                          " use auto or roofline")  # fmt: skip
    note = (
        "compute.timing: roofline" if timing == "roofline" else f"no measured profile for {where}"
    )
    base = RooflineTiming(
        model=model,
        gpu=gpu,
        tp=tp,
        weight_dtype=weight_dtype,
        kv_dtype=kv_dtype,
        note="" if found else note,
        **roofline,
    )
    return base if found is None else ProfileTiming(profile=found, roofline=base)


def roofline_options(compute: Any) -> dict[str, Any]:
    """RooflineTiming keyword arguments from a scenario's ``compute`` section (config.Compute)."""
    return {
        "prefill_mfu": compute.prefill_mfu,
        "decode_mfu": compute.decode_mfu,
        "decode_bandwidth_efficiency": compute.decode_bandwidth_efficiency,
        "iteration_overhead": compute.iteration_overhead_s,
        "sequence_overhead": compute.sequence_overhead_s,
        "layer_overhead": compute.layer_overhead_s,
        "layer_sequence_overhead": compute.layer_sequence_overhead_s,
        "scaleup_latency": compute.scaleup_latency_s,
        "scaleup_bandwidth_efficiency": compute.scaleup_bandwidth_efficiency,
    }
