"""Compute time of one micro-batch through one transformer layer (and the stage extras).

One GPU's share of a layer under the plan (tokens T = micro_batch x seq_len / cp; with
sequence parallelism the GEMMs see the all-gathered T, the element-wise work T / tp):

- GEMMs (Megatron-Core's column- then row-parallel linears, shapes [T x k] @ [k x n/tp]):
  attention QKV and output projection (MLA: the down / up projections), the MLP's FC1
  (gated: two halves) and FC2; MoE layers: the router, each local expert's FC1 / FC2 on
  its tokens (ep x T_d x top-k x expert_tp / E, times ``expert_load_imbalance``; T_d the
  tokens a rank dispatches), shared experts as a dense MLP. Backward: for each forward
  GEMM [m, k] @ [k, n] the data gradient [m, n] @ [n, k] and the weight gradient
  [k, m] @ [m, n].
- Core attention: flash attention on T / cp queries against the causal context; without
  flash attention the score and value GEMMs and the b a s^2 softmax and dropout bytes.
- Element-wise (HBM bound), bytes per token, 16-bit: two norms (read + write h), two
  residual adds (read 2 h, write h), dropout where the model has it (read + write h and a
  1-byte mask, twice), the activation (GeLU read + write f, SwiGLU read 2 f write f), rotary
  on q and k; the backward moves 1.5 x (reads the output gradient and the saved input,
  writes the input gradient).
- Recomputation: ``full`` reruns the forward inside the backward; ``selective`` reruns core
  attention (Korthikanti et al. 2022), which flash attention already does (no extra).

The first stage adds the embedding lookup, the last the final norm, the LM head GEMM and
the vocab-parallel cross-entropy (logits read, fp32 softmax written and read back).
The optimizer step reads and writes, per parameter held: the fp32 gradient (4, plus 4 for
the gradient-norm pass), the fp32 master weight (4 + 4), Adam's moments (8 + 8), the 16-bit
weight (2): 34 bytes (apex / Transformer Engine fused Adam).
"""

from __future__ import annotations

from dataclasses import dataclass

from aifabric.spec.model import ModelSpec, dtype_bytes
from aifabric.spec.parallel import ParallelPlan
from aifabric.training.kernels import KernelModel

OPTIMIZER_BYTES_PER_PARAM = 34.0
BACKWARD_ELEMENTWISE_FACTOR = 1.5


@dataclass(frozen=True, slots=True)
class Work:
    """Times (s) of one pass, by kind, and its model and hardware FLOP."""

    gemm: float = 0.0
    attention: float = 0.0
    elementwise: float = 0.0
    model_flop: float = 0.0
    hardware_flop: float = 0.0

    @property
    def total(self) -> float:
        return self.gemm + self.attention + self.elementwise

    def __add__(self, other: Work) -> Work:
        return Work(self.gemm + other.gemm, self.attention + other.attention,
                    self.elementwise + other.elementwise, self.model_flop + other.model_flop,
                    self.hardware_flop + other.hardware_flop)  # fmt: skip

    def scaled(self, k: float) -> Work:
        return Work(self.gemm * k, self.attention * k, self.elementwise * k,
                    self.model_flop * k, self.hardware_flop * k)  # fmt: skip


@dataclass(frozen=True, slots=True)
class LayerTimes:
    """Forward and backward Work of one micro-batch through one layer of each kind."""

    dense_forward: Work
    dense_backward: Work
    moe_forward: Work
    moe_backward: Work
    first_forward: Work  # embedding extras of the first stage
    first_backward: Work
    last_forward: Work  # final norm, LM head, cross-entropy
    last_backward: Work


@dataclass(frozen=True, slots=True, kw_only=True)
class LayerShape:
    model: ModelSpec
    plan: ParallelPlan
    seq_len: int
    flash_attention: bool = True
    expert_load_imbalance: float = 1.0

    @property
    def tokens(self) -> float:
        return self.plan.micro_batch_size * self.seq_len / self.plan.cp

    @property
    def sp_tokens(self) -> float:
        return self.tokens / (self.plan.tp if self.plan.sequence_parallel else 1)


def _gemms(ks: KernelModel, shapes: list[tuple[float, float, float, float]],
           backward: bool) -> tuple[float, float]:  # fmt: skip
    """(time, FLOP) of GEMMs (m, n, k, batch), or of their two backward GEMMs each."""
    time = flop = 0.0
    for m, n, k, b in shapes:
        if backward:
            time += ks.gemm(m, k, n, batch=b) + ks.gemm(k, n, m, batch=b)
            flop += 4.0 * m * n * k * b
        else:
            time += ks.gemm(m, n, k, batch=b)
            flop += 2.0 * m * n * k * b
    return time, flop


def attention_gemms(s: LayerShape) -> list[tuple[float, float, float, float]]:
    model, tp, t = s.model, s.plan.tp, s.tokens
    h = model.hidden_size
    if model.attention == "mla":
        n = model.num_attention_heads
        q_head = model.qk_nope_head_dim + model.qk_rope_head_dim
        out = [(t, model.kv_lora_rank + model.qk_rope_head_dim, h, 1.0),
               (t, n * (model.qk_nope_head_dim + model.v_head_dim) / tp, model.kv_lora_rank, 1.0),
               (t, h, n * model.v_head_dim / tp, 1.0)]  # fmt: skip
        if model.q_lora_rank:
            out += [(t, model.q_lora_rank, h, 1.0), (t, n * q_head / tp, model.q_lora_rank, 1.0)]
        else:
            out.append((t, n * q_head / tp, h, 1.0))
        return out
    q = model.num_attention_heads * model.head_dim
    kv = model.num_kv_heads * model.head_dim
    return [(t, (q + 2 * kv) / tp, h, 1.0), (t, h, q / tp, 1.0)]


def mlp_gemms(s: LayerShape, moe: bool) -> list[tuple[float, float, float, float]]:
    model, plan, t = s.model, s.plan, s.tokens
    h = model.hidden_size
    gate = 2 if model.ffn == "swiglu" else 1
    if not moe:
        f = model.intermediate_size / plan.tp
        return [(t, gate * f, float(h), 1.0), (t, float(h), f, 1.0)]
    out: list[tuple[float, float, float, float]] = [(t, float(model.num_experts), float(h), 1.0)]
    if model.num_shared_experts:
        f = model.num_shared_experts * model.moe_intermediate_size / plan.tp
        out += [(t, gate * f, float(h), 1.0), (t, float(h), f, 1.0)]
    etp = plan.expert_tp_size
    local = model.num_experts / plan.ep
    per_expert = (plan.ep * s.sp_tokens * model.experts_per_token * etp / model.num_experts
                  * s.expert_load_imbalance)  # fmt: skip
    f = model.moe_intermediate_size / etp
    out += [(per_expert, gate * f, float(h), local), (per_expert, float(h), f, local)]
    return out


def core_attention(ks: KernelModel, s: LayerShape, backward: bool) -> tuple[float, float, float]:
    """(attention-kernel time, element-wise time, FLOP) of core attention, per layer."""
    model, plan = s.model, s.plan
    heads = model.num_attention_heads / plan.tp
    per_token = model.attention_flops_per_token(s.seq_len / 2.0) / model.num_layers
    flop = per_token * s.tokens / plan.tp  # causal: half the score matrix
    if s.flash_attention:
        return ks.flash_attention(flop, backward=backward), 0.0, flop * (2.0 if backward else 1.0)
    # Unfused: the full s x s scores (no causal skipping), softmax and dropout in HBM.
    d = model.head_dim
    q_len, kv_len = s.tokens / plan.micro_batch_size, float(s.seq_len)
    batch = plan.micro_batch_size * heads
    scores = [(q_len, kv_len, d, batch), (q_len, d, kv_len, batch)]
    time, gemm_flop = _gemms(ks, scores, backward)
    elements = batch * q_len * kv_len
    per_element = 4.0 + (5.0 if model.dropout else 0.0)  # softmax r/w, dropout r/w + mask
    ew = elements * per_element * (BACKWARD_ELEMENTWISE_FACTOR if backward else 1.0)
    return time, ks.memory_bound(ew), gemm_flop


def elementwise_bytes(s: LayerShape, moe: bool) -> float:
    """Forward HBM bytes of a layer's memory-bound operations (module docstring)."""
    model, plan = s.model, s.plan
    a = dtype_bytes(plan.activation_dtype)
    h = model.hidden_size
    per_token = 2 * 2 * h * a + 2 * 3 * h * a  # norms, residual adds
    if model.dropout:
        per_token += 2 * (2 * h * a + h)
    out = per_token * s.sp_tokens
    gate = 3 if model.ffn == "swiglu" else 2
    if model.attention != "mla":
        q = model.num_attention_heads * model.head_dim
        kv = model.num_kv_heads * model.head_dim
        out += 2 * (q + kv) / plan.tp * a * s.tokens  # rotary on q and k
    if moe:
        pairs = s.sp_tokens * model.experts_per_token * plan.expert_tp_size
        out += pairs * gate * model.moe_intermediate_size / plan.expert_tp_size * a
        out += 4 * pairs * h * a  # permute and unpermute, read + write
        if model.num_shared_experts:
            f = model.num_shared_experts * model.moe_intermediate_size / plan.tp
            out += s.tokens * gate * f * a
    else:
        out += s.tokens * gate * model.intermediate_size / plan.tp * a
    return out


def layer_work(ks: KernelModel, s: LayerShape, *, moe: bool, backward: bool) -> Work:
    """One layer, one micro-batch, one pass (without recomputation)."""
    gemm, gemm_flop = _gemms(ks, attention_gemms(s) + mlp_gemms(s, moe), backward)
    attn, attn_ew, attn_flop = core_attention(ks, s, backward)
    ew_bytes = elementwise_bytes(s, moe) * (BACKWARD_ELEMENTWISE_FACTOR if backward else 1.0)
    flop = gemm_flop + attn_flop
    return Work(gemm, attn, ks.memory_bound(ew_bytes) + attn_ew, flop, flop)


def with_recompute(ks: KernelModel, s: LayerShape, moe: bool, recompute: str) -> tuple[Work, Work]:
    """(forward, backward) Work of a layer; the backward includes what recompute reruns
    (hardware FLOP only: model FLOP count each pass once)."""
    forward = layer_work(ks, s, moe=moe, backward=False)
    backward = layer_work(ks, s, moe=moe, backward=True)
    if recompute == "full":
        extra = forward
    elif recompute == "selective" and not s.flash_attention:
        attn, ew, flop = core_attention(ks, s, False)
        extra = Work(0.0, attn, ew, flop, flop)
    else:
        return forward, backward
    rerun = Work(extra.gemm, extra.attention, extra.elementwise, 0.0, extra.hardware_flop)
    return forward, backward + rerun


def stage_extras(ks: KernelModel, s: LayerShape) -> tuple[Work, Work, Work, Work]:
    """(first fwd, first bwd, last fwd, last bwd): embedding; final norm, head, loss."""
    model, plan = s.model, s.plan
    a = dtype_bytes(plan.activation_dtype)
    h, vocab = model.hidden_size, model.vocab_size / plan.tp
    lookup = ks.memory_bound(2 * s.sp_tokens * h * a)
    first_f, first_b = Work(elementwise=lookup), Work(elementwise=lookup * 2)
    head = [(s.tokens, vocab, float(h), 1.0)]
    gf, flop_f = _gemms(ks, head, False)
    gb, flop_b = _gemms(ks, head, True)
    logits = s.tokens * vocab
    norm = 4 * h * a * s.sp_tokens
    last_f = Work(gf, 0.0, ks.memory_bound(logits * (a + 4) + norm), flop_f, flop_f)
    last_b = Work(gb, 0.0, ks.memory_bound(logits * (4 + a) + 1.5 * norm), flop_b, flop_b)
    return first_f, first_b, last_f, last_b


def layer_times(ks: KernelModel, s: LayerShape, recompute: str) -> LayerTimes:
    df, db = with_recompute(ks, s, False, recompute)
    mf, mb = with_recompute(ks, s, True, recompute) if s.model.is_moe else (df, db)
    return LayerTimes(df, db, mf, mb, *stage_extras(ks, s))


def optimizer_time(ks: KernelModel, params_held: float) -> float:
    """The fused Adam step over the parameters this GPU updates (s)."""
    return ks.memory_bound(OPTIMIZER_BYTES_PER_PARAM * params_held)
