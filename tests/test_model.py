"""Model arithmetic: parameter counts, KV bytes per token and FLOPs per token.

Truth: published parameter totals (model cards, papers), hand-derived layer arithmetic,
Kaplan et al. 2020's FLOP count and the "backward = 2 x forward" rule.
"""

from __future__ import annotations

from dataclasses import replace

import pytest
from hypothesis import given
from hypothesis import strategies as st

from aifabric.catalog import get_model, models
from aifabric.errors import ConfigError
from aifabric.spec.model import ModelSpec, dtype_bytes

# ----- parameter counts against published totals -------------------------------------------


@pytest.mark.parametrize(
    ("name", "published"),
    [
        # Exact totals from the Hugging Face model cards / safetensors index.
        ("llama3-8b", 8_030_261_248),
        ("llama3-70b", 70_553_706_496),
        ("llama3-405b", 405_853_388_800),
    ],
)
def test_llama3_parameter_counts_are_exact(name: str, published: int) -> None:
    model = get_model(name)
    assert model.num_params == published
    assert model.num_active_params == published  # dense: every weight is active


def test_llama3_8b_hand_derived() -> None:
    """Llama-3-8B from its config, by hand.

    per layer: q,o 2*4096*4096 + k,v 2*4096*1024 + SwiGLU 3*4096*14336 + 2 RMSNorms 2*4096
    embeddings: input table + untied head 2*128256*4096, final norm 4096.
    """
    per_layer = 2 * 4096 * 4096 + 2 * 4096 * 1024 + 3 * 4096 * 14336 + 2 * 4096
    total = 32 * per_layer + 2 * 128256 * 4096 + 4096
    assert total == 8_030_261_248  # the arithmetic itself matches the model card
    assert get_model("llama3-8b").num_params == total


def test_gpt3_175b() -> None:
    """GPT-3 Table 2.1: 175.0B (rounded); the exact count of the stated shapes is 174.6e9.

    per layer: 4*h^2 + 4h (attn weights+biases) + 8*h^2 + 5h (MLP 4h wide + biases) + 4h
    (2 LayerNorms) = 12h^2 + 13h; plus tied wte 50257*h, wpe 2048*h, final LN 2h.
    """
    h = 12288
    expected = 96 * (12 * h * h + 13 * h) + 50257 * h + 2048 * h + 2 * h
    model = get_model("gpt3-175b")
    assert model.num_params == expected
    assert model.num_params == pytest.approx(174.6e9, rel=1e-3)


@pytest.mark.parametrize(
    ("name", "total", "total_tol", "active", "active_tol"),
    [
        # Mixtral paper/config: 46.7B total, 12.9B active (2 of 8 experts).
        ("mixtral-8x7b", 46.70e9, 0.005, 12.88e9, 0.005),
        # DeepSeek-V3 report: 671B total (without MTP), 37B active. Our count: 37.55B.
        ("deepseek-v3", 671e9, 0.005, 37e9, 0.02),
        # Qwen3 report: 235B total, 22B active.
        ("qwen3-235b-a22b", 235e9, 0.005, 22e9, 0.02),
    ],
)
def test_moe_parameter_counts(
    name: str, total: float, total_tol: float, active: float, active_tol: float
) -> None:
    model = get_model(name)
    assert model.num_params == pytest.approx(total, rel=total_tol)
    assert model.num_active_params == pytest.approx(active, rel=active_tol)


def test_moe_inactive_params_are_the_unrouted_experts() -> None:
    """total - active = MoE layers x (experts - top_k) x one SwiGLU expert (3 h i)."""
    mix = get_model("mixtral-8x7b")
    assert mix.num_params - mix.num_active_params == 32 * (8 - 2) * 3 * 4096 * 14336
    ds = get_model("deepseek-v3")
    assert ds.num_params - ds.num_active_params == (61 - 3) * (256 - 8) * 3 * 7168 * 2048
    qw = get_model("qwen3-235b-a22b")
    assert qw.num_params - qw.num_active_params == 94 * (128 - 8) * 3 * 4096 * 1536


def test_expert_params_of_mixtral() -> None:
    """Routed expert weights: 32 layers x 8 experts x 3 x 4096 x 14336."""
    assert get_model("mixtral-8x7b").expert_params() == 32 * 8 * 3 * 4096 * 14336


def test_dense_models_have_no_expert_params(llama70b: ModelSpec) -> None:
    assert llama70b.expert_params() == 0
    assert not llama70b.is_moe


def test_published_params_in_catalog_agree_with_computed() -> None:
    """Every catalog entry that states a published total is within 0.5 % of the count."""
    checked = 0
    for model in models().values():
        if model.published_params is not None:
            assert model.num_params == pytest.approx(model.published_params, rel=0.005)
            checked += 1
        if model.published_active_params is not None:
            assert model.num_active_params == pytest.approx(model.published_active_params, rel=0.02)
    assert checked >= 7


def test_published_params_are_numbers() -> None:
    for model in models().values():
        for value in (model.published_params, model.published_active_params):
            assert value is None or isinstance(value, float | int), (model.name, value)


def test_active_never_exceeds_total() -> None:
    for model in models().values():
        assert 0 < model.num_active_params <= model.num_params


# ----- KV cache ------------------------------------------------------------------------------


def test_kv_bytes_llama3_70b_gqa(llama70b: ModelSpec) -> None:
    """2 (K,V) x 80 layers x 8 KV heads x 128 head_dim x 2 bytes = 327,680 B/token."""
    assert llama70b.kv_bytes_per_token("bf16") == 2 * 80 * 8 * 128 * 2 == 327_680
    assert llama70b.kv_bytes_per_token("fp8") == 163_840


def test_kv_bytes_deepseek_v3_mla() -> None:
    """MLA caches latent (512) + decoupled RoPE key (64) per layer: 61 x 576 x 2 = 70,272."""
    assert get_model("deepseek-v3").kv_bytes_per_token("bf16") == 61 * (512 + 64) * 2 == 70_272


def test_kv_bytes_seed_llama3_120b_mha() -> None:
    """MHA: 2 x 140 x 64 heads x 128 x 2 (fp16) = 4,587,520; equals naive 2 L H b."""
    model = get_model("seed-llama3-120b")
    assert model.kv_bytes_per_token("fp16") == 2 * 140 * 64 * 128 * 2 == 4_587_520
    assert model.naive_kv_bytes_per_token("fp16") == 2 * 140 * 8192 * 2
    assert model.naive_kv_bytes_per_token("fp16") == model.kv_bytes_per_token("fp16")


@pytest.mark.parametrize("name", ["llama3-8b", "llama3-70b", "llama3-405b"])
def test_gqa_kv_smaller_than_naive(name: str) -> None:
    """Llama 3 has 8 KV heads: GQA KV = naive x (8 x 128) / hidden."""
    model = get_model(name)
    gqa, naive = model.kv_bytes_per_token(), model.naive_kv_bytes_per_token()
    assert gqa < naive
    assert gqa / naive == pytest.approx(8 * 128 / model.hidden_size, rel=1e-12)


def test_kv_scales_with_dtype(llama70b: ModelSpec) -> None:
    assert llama70b.kv_bytes_per_token("fp32") == 2 * llama70b.kv_bytes_per_token("bf16")
    assert llama70b.kv_bytes_per_token("int4") == llama70b.kv_bytes_per_token("bf16") / 4


def test_hidden_bytes_per_token(llama70b: ModelSpec) -> None:
    assert llama70b.hidden_bytes_per_token("bf16") == 8192 * 2


def test_attention_kv_width() -> None:
    """GQA: 2 x kv_heads x head_dim; MLA: heads x (qk_nope + qk_rope + v_head)."""
    assert get_model("llama3-70b").attention_kv_width() == 2 * 8 * 128
    assert get_model("deepseek-v3").attention_kv_width() == 128 * (128 + 64 + 128)


# ----- FLOPs ---------------------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(models()))
def test_forward_flops_at_zero_context_is_two_per_matmul_weight(name: str) -> None:
    model = get_model(name)
    assert model.forward_flops_per_token(0) == 2 * model.matmul_params_per_token()


@pytest.mark.parametrize("name", sorted(models()))
@pytest.mark.parametrize("context", [0.0, 512.0, 4096.0])
def test_backward_is_twice_forward(name: str, context: float) -> None:
    """Narayanan et al. 2021 eq. 3: backward = 2 x forward."""
    model = get_model(name)
    assert model.backward_flops_per_token(context) == 2 * model.forward_flops_per_token(context)


@pytest.mark.parametrize("name", sorted(models()))
@pytest.mark.parametrize("seq_len", [1, 2048, 8192])
def test_training_is_three_forwards_at_half_context(name: str, seq_len: int) -> None:
    model = get_model(name)
    assert model.training_flops_per_token(seq_len) == pytest.approx(
        3 * model.forward_flops_per_token(seq_len / 2), rel=1e-15
    )


@pytest.mark.parametrize("name", ["llama3-8b", "llama3-70b", "llama3-405b", "seed-llama3-120b"])
def test_matmul_params_exclude_only_the_input_table_for_untied(name: str) -> None:
    """Untied dense model: every weight but the input embedding table is a matmul weight."""
    model = get_model(name)
    assert not model.tied_embeddings and not model.is_moe
    assert model.matmul_params_per_token() == model.num_params - model.vocab_size * (
        model.hidden_size
    )


def test_matmul_params_gpt3_tied() -> None:
    """Tied GPT-3: the shared table is multiplied in the head; only wpe (2048 x h) is a lookup."""
    gpt3 = get_model("gpt3-175b")
    assert gpt3.matmul_params_per_token() == gpt3.num_params - 2048 * 12288


def test_forward_flops_match_kaplan(llama70b: ModelSpec) -> None:
    """Kaplan et al. 2020: C_forward = 2N + 2 n_layer n_ctx d_attn (causal mean over the
    sequence: our context = n_ctx / 2). d_attn = 64 x 128 = 8192 for Llama-3-70B."""
    n_ctx = 8192
    kaplan = 2 * llama70b.matmul_params_per_token() + 2 * 80 * n_ctx * 8192
    assert llama70b.forward_flops_per_token(n_ctx / 2) == pytest.approx(kaplan, rel=1e-12)


def test_training_flops_approach_six_n(llama70b: ModelSpec) -> None:
    """The 6N rule of thumb holds when attention is negligible (seq_len -> 1)."""
    assert llama70b.training_flops_per_token(1) == pytest.approx(
        6 * llama70b.matmul_params_per_token(), rel=1e-4
    )


def test_moe_flops_use_active_weights() -> None:
    mix = get_model("mixtral-8x7b")
    assert mix.forward_flops_per_token(0) == 2 * (mix.num_active_params - 32000 * 4096)


# ----- activation memory (Korthikanti et al. 2022, Table 2) ----------------------------------


def test_activation_memory_korthikanti(llama70b: ModelSpec) -> None:
    """Per token per layer: 34h + 5as without parallelism; 10h + 24h/t + 5as/t with TP;
    (34h + 5as)/t with sequence parallelism."""
    h, a, s, t = 8192, 64, 4096, 8
    m = llama70b
    assert (
        m.activation_bytes_per_token_per_layer(seq_len=s, flash_attention=False)
        == 34 * h + 5 * a * s
    )
    assert m.activation_bytes_per_token_per_layer(
        seq_len=s, tp=t, flash_attention=False
    ) == pytest.approx(10 * h + (24 * h + 5 * a * s) / t)
    assert m.activation_bytes_per_token_per_layer(
        seq_len=s, tp=t, sequence_parallel=True, flash_attention=False
    ) == pytest.approx((34 * h + 5 * a * s) / t)
    assert m.activation_bytes_per_token_per_layer(seq_len=s) == 34 * h


# ----- validation ----------------------------------------------------------------------------


def _base(**kw: object) -> dict[str, object]:
    base: dict[str, object] = dict(
        name="t",
        num_layers=2,
        hidden_size=64,
        num_attention_heads=8,
        num_kv_heads=2,
        head_dim=8,
        intermediate_size=128,
        vocab_size=100,
    )
    base.update(kw)
    return base


@pytest.mark.parametrize(
    ("kw", "pattern"),
    [
        ({"num_layers": 0}, r"num_layers\(=0\) must be a positive int"),
        ({"num_kv_heads": 3}, r"num_kv_heads\(=3\) must divide num_attention_heads\(=8\)"),
        ({"attention": "mha"}, r"mha needs num_kv_heads == num_attention_heads"),
        ({"attention": "mla"}, r"mla needs kv_lora_rank"),
        ({"attention": "linear"}, r"attention\(='linear'\) must be mha, gqa or mla"),
        ({"ffn": "relu"}, r"ffn\(='relu'\) must be swiglu or gelu"),
        (
            {"num_experts": 4, "experts_per_token": 5, "moe_intermediate_size": 8},
            r"experts_per_token\(=5\) must be in 1..num_experts\(=4\)",
        ),
        ({"num_experts": 4, "experts_per_token": 2}, r"moe_intermediate_size must be > 0"),
        ({"first_dense_layers": 3}, r"first_dense_layers must be in 0..num_layers"),
    ],
)
def test_model_validation_errors(kw: dict[str, object], pattern: str) -> None:
    with pytest.raises(ConfigError, match=pattern):
        ModelSpec(**_base(**kw))  # type: ignore[arg-type]


def test_dtype_bytes() -> None:
    assert dtype_bytes("bf16") == 2
    assert dtype_bytes("FP8") == 1
    assert dtype_bytes("fp4") == 0.5
    with pytest.raises(ConfigError, match=r"dtype 'fp12' is unknown"):
        dtype_bytes("fp12")


def test_unknown_model_lists_known_names() -> None:
    with pytest.raises(ConfigError, match=r"unknown model 'llama9'.*llama3-70b"):
        get_model("llama9")


# ----- properties ----------------------------------------------------------------------------


@given(
    layers=st.integers(1, 128),
    heads_pow=st.integers(0, 7),
    kv_pow=st.integers(0, 7),
    head_dim=st.sampled_from([32, 64, 128]),
    inter=st.integers(1, 50_000),
    vocab=st.integers(1, 200_000),
)
def test_dense_gqa_param_formula(
    layers: int, heads_pow: int, kv_pow: int, head_dim: int, inter: int, vocab: int
) -> None:
    """Any dense untied SwiGLU GQA model: L (2 h q + 2 h kv + 3 h i + 2 h) + 2 V h + h."""
    heads = 2**heads_pow
    kv = 2 ** min(kv_pow, heads_pow)
    h = heads * head_dim
    model = ModelSpec(
        name="p",
        num_layers=layers,
        hidden_size=h,
        num_attention_heads=heads,
        num_kv_heads=kv,
        head_dim=head_dim,
        intermediate_size=inter,
        vocab_size=vocab,
    )
    q, kvd = heads * head_dim, kv * head_dim
    per_layer = 2 * h * q + 2 * h * kvd + 3 * h * inter + 2 * h
    assert model.num_params == layers * per_layer + 2 * vocab * h + h
    assert model.kv_bytes_per_token("bf16") == 2 * layers * kvd * 2
    assert model.kv_bytes_per_token() <= model.naive_kv_bytes_per_token()
    # Tying the head removes exactly one V x h table.
    assert replace(model, tied_embeddings=True).num_params == model.num_params - vocab * h


# ----- GPU and network catalog ---------------------------------------------------------------


def test_h100_datasheet_figures() -> None:
    """H100 SXM5: 1,979 TFLOPS BF16 with sparsity -> 989.4 dense; NVLink 900 GB/s total
    = 450 GB/s each way; 80 GiB; 8 per HGX board; ConnectX-7 400 Gb/s = 50 GB/s."""
    from aifabric.catalog import get_gpu

    h100 = get_gpu("h100-sxm")
    assert h100.peak_flops("bf16") == 989.4e12
    assert h100.peak_flops("fp8") == 1978.9e12
    assert h100.hbm_bytes == 80 * 2**30
    assert h100.scaleup_bandwidth == 900e9
    assert h100.scaleup_bandwidth_per_direction == 450e9
    assert h100.scaleup_domain_size == 8
    assert h100.default_nic_speed == 50e9


def test_other_gpus() -> None:
    from aifabric.catalog import get_gpu

    assert get_gpu("a100-80g").hbm_bytes == 80 * 2**30  # 81920 MiB
    nvl72 = get_gpu("gb200-nvl72")
    assert nvl72.scaleup_domain_size == 72
    assert nvl72.default_nic_speed == 50e9  # DGX GB200 user guide: ConnectX-7 400 Gb/s
    assert get_gpu("h20").hbm_bytes * 8 == 768e9  # seed 001: 8 x 96 GB
    with pytest.raises(ConfigError, match=r"gpu a100-80g has no FP8 tensor cores"):
        get_gpu("a100-80g").peak_flops("fp8")
    with pytest.raises(ConfigError, match=r"compute dtype 'int8' is not one of"):
        get_gpu("h100-sxm").peak_flops("int8")
    with pytest.raises(ConfigError, match=r"unknown gpu 'h1000'"):
        get_gpu("h1000")


def test_switch_capacity_is_ports_times_speed() -> None:
    """Every catalog switch is a full-rate ASIC: one-way capacity = ports x port speed
    (51.2 Tb/s = 64 x 800 Gb/s = 6.4e12 B/s)."""
    from aifabric.catalog import get_switch, switches

    for sw in switches().values():
        assert sw.capacity == pytest.approx(sw.ports * sw.port_speed, rel=1e-12), sw.name
    seed = get_switch("seed-51.2t")
    assert seed.capacity == pytest.approx(6.4e12, rel=1e-12)
    assert seed.latency == pytest.approx(560e-9)
    assert seed.buffer_bytes == 200e6
    with pytest.raises(ConfigError, match=r"unknown switch"):
        get_switch("catalyst")


def test_nic_speeds() -> None:
    from aifabric.catalog import nics

    table = nics()
    assert table["cx7-400g"].speed == 50e9
    assert table["cx8-800g"].speed == 100e9
    assert table["eth-100g"].speed == 12.5e9
