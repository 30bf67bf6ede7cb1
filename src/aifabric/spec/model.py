"""LLM architecture arithmetic: the one home for parameters, FLOPs and KV bytes per token.

Every other module (training and inference traffic, the simulators) calls these methods;
none re-derives them.

References:
- Parameter counts: the layer shapes of each model's config.json (Llama 3, Mixtral,
  DeepSeek-V3, Qwen3), GPT-3 paper Table 2.1.
- FLOPs per token: Kaplan et al. 2020 (arXiv:2001.08361) sec. 2.1, C_forward = 2N + 2 n_layer
  n_ctx d_attn; backward = 2 x forward (Narayanan et al. 2021, arXiv:2104.04473, eq. 3).
- KV cache: 2 (K and V) x layers x kv_heads x head_dim x bytes for MHA/GQA (Ainslie et al.
  2023, arXiv:2305.13245); MLA caches the compressed latent plus the decoupled RoPE key,
  layers x (kv_lora_rank + qk_rope_head_dim) x bytes (DeepSeek-V2 arXiv:2405.04434 sec. 2.1).
- Activation memory: Korthikanti et al. 2022 (arXiv:2205.05198) sec. 4, Table 2.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from aifabric.errors import ConfigError

Attention = Literal["mha", "gqa", "mla"]
Ffn = Literal["swiglu", "gelu"]

DTYPE_BYTES: dict[str, float] = {
    "fp32": 4.0,
    "tf32": 4.0,
    "bf16": 2.0,
    "fp16": 2.0,
    "fp8": 1.0,
    "int8": 1.0,
    "fp4": 0.5,
    "int4": 0.5,
}


def dtype_bytes(dtype: str) -> float:
    """Bytes per element of a numeric format ("bf16" -> 2).

    Raises:
        ConfigError: unknown format.
    """
    try:
        return DTYPE_BYTES[dtype.lower()]
    except KeyError:
        known = ", ".join(DTYPE_BYTES)
        raise ConfigError(f"dtype {dtype!r} is unknown; use one of: {known}") from None


@dataclass(frozen=True, slots=True, kw_only=True)
class ModelSpec:
    """A decoder-only transformer, dense or mixture-of-experts.

    MoE fields: a layer index >= first_dense_layers is an MoE layer with num_experts routed
    experts (experts_per_token active) plus num_shared_experts always-active experts, each
    an FFN of moe_intermediate_size.

    MoE routing and dispatch, where the model publishes them (else uniform top-k over all
    experts, dispatched in the plan's activation dtype): max_nodes_per_token, node-limited
    routing (DeepSeek-V3's M: a token's experts lie on at most M nodes of the EP group,
    dispatched once per node; 0 = no limit); moe_dispatch_dtype / moe_combine_dtype, the
    formats of the token exchange towards the experts and back ("" = activation dtype).
    dropout: the hidden and attention dropout probability of training (Megatron-LM's GPT
    default 0.1; Llama-family recipes 0); the step simulator times its element-wise work.
    """

    name: str
    num_layers: int
    hidden_size: int
    num_attention_heads: int
    num_kv_heads: int
    head_dim: int
    intermediate_size: int
    vocab_size: int
    attention: Attention = "gqa"
    ffn: Ffn = "swiglu"
    tied_embeddings: bool = False
    bias: bool = False
    qk_norm: bool = False
    position_embeddings: int = 0
    max_seq_len: int = 8192
    num_experts: int = 0
    experts_per_token: int = 0
    num_shared_experts: int = 0
    moe_intermediate_size: int = 0
    first_dense_layers: int = 0
    max_nodes_per_token: int = 0
    moe_dispatch_dtype: str = ""
    moe_combine_dtype: str = ""
    q_lora_rank: int = 0
    kv_lora_rank: int = 0
    qk_nope_head_dim: int = 0
    qk_rope_head_dim: int = 0
    v_head_dim: int = 0
    dropout: float = 0.0
    source: str = ""
    published_params: float | None = field(default=None, compare=False)
    published_active_params: float | None = field(default=None, compare=False)

    def __post_init__(self) -> None:
        for name in (
            "num_layers",
            "hidden_size",
            "num_attention_heads",
            "num_kv_heads",
            "head_dim",
            "vocab_size",
        ):
            value = getattr(self, name)
            if not isinstance(value, int) or value <= 0:
                raise ConfigError(f"model {self.name}: {name}(={value!r}) must be a positive int")
        if self.attention not in ("mha", "gqa", "mla"):
            raise ConfigError(
                f"model {self.name}: attention(={self.attention!r}) must be mha, gqa or mla"
            )
        if self.ffn not in ("swiglu", "gelu"):
            raise ConfigError(f"model {self.name}: ffn(={self.ffn!r}) must be swiglu or gelu")
        if self.num_attention_heads % self.num_kv_heads:
            raise ConfigError(
                f"model {self.name}: num_kv_heads(={self.num_kv_heads}) must divide "
                f"num_attention_heads(={self.num_attention_heads})"
            )
        if self.attention == "mha" and self.num_kv_heads != self.num_attention_heads:
            raise ConfigError(f"model {self.name}: mha needs num_kv_heads == num_attention_heads")
        if self.attention == "mla" and (self.kv_lora_rank <= 0 or self.qk_rope_head_dim <= 0):
            raise ConfigError(f"model {self.name}: mla needs kv_lora_rank and qk_rope_head_dim > 0")
        if self.is_moe and not 0 < self.experts_per_token <= self.num_experts:
            raise ConfigError(
                f"model {self.name}: experts_per_token(={self.experts_per_token}) must be in "
                f"1..num_experts(={self.num_experts})"
            )
        if self.is_moe and self.moe_intermediate_size <= 0:
            raise ConfigError(f"model {self.name}: moe_intermediate_size must be > 0 for MoE")
        if not 0 <= self.first_dense_layers <= self.num_layers:
            raise ConfigError(f"model {self.name}: first_dense_layers must be in 0..num_layers")
        if not isinstance(self.dropout, (int, float)) or not 0 <= self.dropout < 1:
            raise ConfigError(f"model {self.name}: dropout(={self.dropout!r}) must be in [0, 1)")
        m = self.max_nodes_per_token
        if not isinstance(m, int) or isinstance(m, bool) or m < 0 or (m and not self.is_moe):
            raise ConfigError(
                f"model {self.name}: max_nodes_per_token(={m!r}) must be an integer >= 0, "
                "and 0 for a dense model"
            )
        for name in ("moe_dispatch_dtype", "moe_combine_dtype"):
            value = getattr(self, name)
            if not isinstance(value, str) or (value and value.lower() not in DTYPE_BYTES):
                raise ConfigError(
                    f"model {self.name}: {name}(={value!r}) must be one of "
                    f"{', '.join(DTYPE_BYTES)} (or empty for the activation dtype)"
                )

    # ----- structure -------------------------------------------------------------------
    @property
    def is_moe(self) -> bool:
        return self.num_experts > 0

    @property
    def num_moe_layers(self) -> int:
        return self.num_layers - self.first_dense_layers if self.is_moe else 0

    @property
    def num_dense_layers(self) -> int:
        return self.num_layers - self.num_moe_layers

    # ----- parameters ------------------------------------------------------------------
    def attention_params_per_layer(self) -> int:
        """Weights (and biases) of one attention block, including its pre-norm."""
        h = self.hidden_size
        norms = h + (2 * self.head_dim if self.qk_norm else 0)
        if self.attention == "mla":
            q_head = self.qk_nope_head_dim + self.qk_rope_head_dim
            n = self.num_attention_heads
            q = (
                h * self.q_lora_rank + self.q_lora_rank + self.q_lora_rank * n * q_head
                if self.q_lora_rank
                else h * n * q_head
            )
            kv_down = h * (self.kv_lora_rank + self.qk_rope_head_dim) + self.kv_lora_rank
            kv_up = self.kv_lora_rank * n * (self.qk_nope_head_dim + self.v_head_dim)
            out = n * self.v_head_dim * h
            return q + kv_down + kv_up + out + norms
        q_dim = self.num_attention_heads * self.head_dim
        kv_dim = self.num_kv_heads * self.head_dim
        weights = h * q_dim + 2 * h * kv_dim + q_dim * h
        biases = (q_dim + 2 * kv_dim + h) if self.bias else 0
        return weights + biases + norms * (2 if self.bias else 1)

    def ffn_params(self, intermediate: int) -> int:
        """Weights of one FFN (an expert is one FFN) of the given width."""
        h = self.hidden_size
        if self.ffn == "swiglu":
            return 3 * h * intermediate
        return 2 * h * intermediate + (intermediate + h if self.bias else 0)

    def mlp_params_per_layer(self, *, moe: bool, active: bool = False) -> int:
        """FFN-side weights of one layer (all experts, or only the active ones), with norm."""
        norm = self.hidden_size * (2 if self.bias else 1)
        if not moe:
            return self.ffn_params(self.intermediate_size) + norm
        routed = self.experts_per_token if active else self.num_experts
        experts = (routed + self.num_shared_experts) * self.ffn_params(self.moe_intermediate_size)
        router = self.hidden_size * self.num_experts
        return experts + router + norm

    def embedding_params(self) -> int:
        """Input token table, learned positions, output head (if untied) and final norm."""
        h = self.hidden_size
        table = self.vocab_size * h
        head = 0 if self.tied_embeddings else self.vocab_size * h
        final_norm = h * (2 if self.bias else 1)
        return table + head + self.position_embeddings * h + final_norm

    def expert_params(self) -> int:
        """Routed-expert weights: the part of the model that expert parallelism shards."""
        return self.num_moe_layers * self.num_experts * self.ffn_params(self.moe_intermediate_size)

    @property
    def num_params(self) -> int:
        """Total parameters."""
        attn = self.num_layers * self.attention_params_per_layer()
        dense = self.num_dense_layers * self.mlp_params_per_layer(moe=False)
        moe = self.num_moe_layers * self.mlp_params_per_layer(moe=True)
        return self.embedding_params() + attn + dense + moe

    @property
    def num_active_params(self) -> int:
        """Parameters used per token (all of a dense model; top-k + shared experts of MoE)."""
        attn = self.num_layers * self.attention_params_per_layer()
        dense = self.num_dense_layers * self.mlp_params_per_layer(moe=False)
        moe = self.num_moe_layers * self.mlp_params_per_layer(moe=True, active=True)
        return self.embedding_params() + attn + dense + moe

    # ----- FLOPs -----------------------------------------------------------------------
    def matmul_params_per_token(self) -> int:
        """Active weights that take part in a matmul: excludes the input lookup tables."""
        lookups = (self.vocab_size if not self.tied_embeddings else 0) + self.position_embeddings
        lookups_out = lookups * self.hidden_size
        # Tied models still multiply by the table in the LM head; untied ones by the head.
        return self.num_active_params - lookups_out

    def attention_flops_per_token(self, context_tokens: float) -> float:
        """Score and value FLOPs for one token attending to context_tokens earlier tokens."""
        qk_dim = (
            (self.qk_nope_head_dim + self.qk_rope_head_dim)
            if self.attention == "mla"
            else self.head_dim
        )
        v_dim = self.v_head_dim if self.attention == "mla" else self.head_dim
        per_layer = 2.0 * self.num_attention_heads * (qk_dim + v_dim) * context_tokens
        return per_layer * self.num_layers

    def forward_flops_per_token(self, context_tokens: float = 0.0) -> float:
        """Forward FLOP per token: 2 x matmul weights + attention over context_tokens.

        For causal training on sequences of length s, pass context_tokens = s / 2 (the mean
        number of earlier tokens attended).
        """
        return 2.0 * self.matmul_params_per_token() + self.attention_flops_per_token(context_tokens)

    def backward_flops_per_token(self, context_tokens: float = 0.0) -> float:
        """Backward FLOP per token: gradients w.r.t. inputs and weights, 2 x forward."""
        return 2.0 * self.forward_flops_per_token(context_tokens)

    def training_flops_per_token(self, seq_len: int) -> float:
        """Forward + backward FLOP per token of a causal sequence of seq_len tokens."""
        return 3.0 * self.forward_flops_per_token(seq_len / 2.0)

    # ----- bytes per token -------------------------------------------------------------
    def kv_elements_per_token(self) -> int:
        """Cached elements per token over all layers (K and V, or MLA's latent + rope key)."""
        if self.attention == "mla":
            return self.num_layers * (self.kv_lora_rank + self.qk_rope_head_dim)
        return 2 * self.num_layers * self.num_kv_heads * self.head_dim

    def kv_bytes_per_token(self, kv_dtype: str = "bf16") -> float:
        """KV-cache bytes per token for the whole model (all layers), MHA/GQA/MLA aware."""
        return self.kv_elements_per_token() * dtype_bytes(kv_dtype)

    def naive_kv_bytes_per_token(self, kv_dtype: str = "bf16") -> float:
        """The seeds' KV size per token: 2 x L x H x bytes, as if every head had its own K/V."""
        return 2.0 * self.num_layers * self.hidden_size * dtype_bytes(kv_dtype)

    def attention_kv_width(self) -> int:
        """K plus V elements per token per layer as attention consumes them (all heads).

        This is what context parallelism circulates between ranks; MLA decompresses its
        latent into per-head keys (qk_nope + qk_rope) and values (v_head_dim).
        """
        if self.attention == "mla":
            k = self.qk_nope_head_dim + self.qk_rope_head_dim
            return self.num_attention_heads * (k + self.v_head_dim)
        return 2 * self.num_kv_heads * self.head_dim

    def hidden_bytes_per_token(self, dtype: str = "bf16") -> float:
        """Bytes of one token's hidden state (the tensor a TP all-reduce or PP send moves)."""
        return self.hidden_size * dtype_bytes(dtype)

    def activation_bytes_per_token_per_layer(
        self,
        *,
        seq_len: int,
        tp: int = 1,
        sequence_parallel: bool = False,
        flash_attention: bool = True,
    ) -> float:
        """Activation memory stored for backward, per token per layer, 16-bit activations.

        Korthikanti et al. 2022, Table 2: s*b*h*(34 + 5*a*s/h) bytes per layer without
        parallelism; tensor parallel t divides 24 of the 34 (the rest replicated) and the
        attention term; sequence parallel divides everything. flash_attention drops the
        5*a*s/h term (score matrices are recomputed, as selective recomputation does).
        """
        h = self.hidden_size
        attn = 0.0 if flash_attention else 5.0 * self.num_attention_heads * seq_len
        if sequence_parallel:
            return (34.0 * h + attn) / tp
        return 10.0 * h + (24.0 * h + attn) / tp

    def summary(self) -> dict[str, object]:
        """A JSON-friendly description with the derived quantities."""
        return {
            "name": self.name,
            "num_params": self.num_params,
            "num_active_params": self.num_active_params,
            "published_params": None
            if self.published_params is None
            else round(self.published_params),
            "num_layers": self.num_layers,
            "hidden_size": self.hidden_size,
            "num_attention_heads": self.num_attention_heads,
            "num_kv_heads": self.num_kv_heads,
            "head_dim": self.head_dim,
            "attention": self.attention,
            "vocab_size": self.vocab_size,
            "num_experts": self.num_experts,
            "experts_per_token": self.experts_per_token,
            "max_nodes_per_token": self.max_nodes_per_token,
            "kv_bf16_bytes_per_token": self.kv_bytes_per_token("bf16"),
            "forward_flop_per_token": self.forward_flops_per_token(),
            "source": self.source,
        }
