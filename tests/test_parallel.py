"""Parallel plans: validation rules, world size and the Megatron rank layout.

Truth: Megatron-LM's rules (tp divides the heads, ep divides the experts, global batch a
multiple of micro-batch x dp) and a brute-force enumeration of the default rank order
tp -> cp -> dp -> pp (fastest first).
"""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given
from hypothesis import strategies as st

from aifabric.catalog import get_model
from aifabric.errors import ConfigError
from aifabric.spec.model import ModelSpec
from aifabric.spec.parallel import ParallelPlan

# ----- validation against a model ------------------------------------------------------------


def test_tp_must_divide_heads(llama70b: ModelSpec) -> None:
    with pytest.raises(ConfigError, match=r"tp\(=6\) must divide num_attention_heads\(=64\)"):
        ParallelPlan(tp=6).validate_for(llama70b)


@pytest.mark.parametrize("tp", [1, 2, 4, 8, 16, 32, 64])
def test_tp_dividing_heads_is_accepted(llama70b: ModelSpec, tp: int) -> None:
    ParallelPlan(tp=tp).validate_for(llama70b)  # 8 KV heads: either divides the other


def test_tp_and_kv_heads_must_divide_one_another() -> None:
    """24 heads, 8 KV heads, tp = 6: 6 divides 24 but neither of 6, 8 divides the other."""
    model = ModelSpec(
        name="odd",
        num_layers=4,
        hidden_size=24 * 64,
        num_attention_heads=24,
        num_kv_heads=8,
        head_dim=64,
        intermediate_size=4096,
        vocab_size=1000,
    )
    with pytest.raises(ConfigError, match=r"tp\(=6\) and num_kv_heads\(=8\)"):
        ParallelPlan(tp=6).validate_for(model)
    ParallelPlan(tp=4).validate_for(model)


def test_ep_must_divide_experts(mixtral: ModelSpec) -> None:
    with pytest.raises(ConfigError, match=r"ep\(=3\) must divide num_experts\(=8\)"):
        ParallelPlan(dp=3, ep=3).validate_for(mixtral)
    with pytest.raises(ConfigError, match=r"ep\(=16\) must divide num_experts\(=8\)"):
        ParallelPlan(dp=16, ep=16).validate_for(mixtral)
    ParallelPlan(dp=8, ep=8).validate_for(mixtral)


def test_ep_needs_moe(llama70b: ModelSpec) -> None:
    with pytest.raises(ConfigError, match=r"ep\(=8\) > 1 needs a mixture-of-experts model"):
        ParallelPlan(dp=8, ep=8).validate_for(llama70b)


def test_ep_must_divide_dp_times_cp() -> None:
    with pytest.raises(ConfigError, match=r"ep\(=8\) must divide dp\*cp\(=4\)"):
        ParallelPlan(dp=4, ep=8)
    ParallelPlan(dp=4, cp=2, ep=8)  # 8 divides dp*cp = 8


def test_pp_at_most_layers(llama70b: ModelSpec) -> None:
    with pytest.raises(
        ConfigError, match=r"pp\(=81\) x virtual_stages\(=1\) exceeds num_layers\(=80\)"
    ):
        ParallelPlan(pp=81).validate_for(llama70b)
    ParallelPlan(pp=80).validate_for(llama70b)


def test_cp_must_divide_seq_len(llama70b: ModelSpec) -> None:
    with pytest.raises(ConfigError, match=r"cp\(=3\) must divide seq_len\(=8192\)"):
        ParallelPlan(cp=3).validate_for(llama70b, seq_len=8192)


def test_num_gpus_must_match_world(llama70b: ModelSpec) -> None:
    with pytest.raises(ConfigError, match=r"gpus\(=1000\) must equal tp\*cp\*dp\*pp\(=1024\)"):
        ParallelPlan(tp=8, pp=8, dp=16).validate_for(llama70b, num_gpus=1000)
    ParallelPlan(tp=8, pp=8, dp=16).validate_for(llama70b, num_gpus=1024)


def test_global_batch_multiple_of_microbatch_times_dp() -> None:
    plan = ParallelPlan(dp=8, micro_batch_size=2)
    with pytest.raises(
        ConfigError, match=r"global_batch\(=100\) must be a positive multiple of micro_batch\*dp"
    ):
        plan.num_microbatches(100)
    with pytest.raises(ConfigError, match=r"micro_batch\*dp\(=16\)"):
        plan.num_microbatches(0)
    assert plan.num_microbatches(2048) == 2048 // 16 == 128


@pytest.mark.parametrize(
    ("kw", "pattern"),
    [
        ({"tp": 0}, r"tp\(=0\) must be an integer >= 1"),
        ({"dp": 2.5}, r"dp\(=2.5\) must be an integer"),
        ({"pp": True}, r"pp\(=True\) must be an integer"),
        ({"micro_batch_size": 0}, r"micro_batch_size\(=0\)"),
        ({"zero": 4}, r"zero\(=4\) must be 0, 1, 2 or 3"),
        ({"sequence_parallel": True}, r"sequence_parallel needs tp > 1"),
        ({"grad_dtype": "fp12"}, r"dtype 'fp12' is unknown"),
    ],
)
def test_plan_field_validation(kw: dict[str, object], pattern: str) -> None:
    with pytest.raises(ConfigError, match=pattern):
        ParallelPlan(**kw)  # type: ignore[arg-type]


def test_unknown_dimension() -> None:
    with pytest.raises(ConfigError, match=r"unknown parallel dimension 'xp'"):
        ParallelPlan().group_stride("xp")
    with pytest.raises(ConfigError, match=r"unknown parallel dimension 'xp'"):
        ParallelPlan().group_size("xp")


# ----- sizes and layout ----------------------------------------------------------------------


def test_3d_world_size() -> None:
    plan = ParallelPlan(tp=8, pp=8, dp=16)
    assert plan.world_size == 1024
    assert ParallelPlan(tp=2, cp=2, dp=4, pp=3, ep=8).world_size == 2 * 2 * 4 * 3


@given(tp=st.integers(1, 64), cp=st.integers(1, 8), dp=st.integers(1, 128), pp=st.integers(1, 32))
def test_world_size_is_product(tp: int, cp: int, dp: int, pp: int) -> None:
    assert ParallelPlan(tp=tp, cp=cp, dp=dp, pp=pp).world_size == tp * cp * dp * pp


def test_ranks_per_domain_examples() -> None:
    plan = ParallelPlan(tp=8, pp=8, dp=16)
    assert plan.ranks_per_domain("tp", 8) == 8  # the whole TP group is one HGX board
    assert plan.group_stride("dp") == 8
    assert plan.ranks_per_domain("dp", 8) == 1  # DP neighbors are 8 ranks apart
    assert plan.ranks_per_domain("pp", 8) == 1
    # NVL72 rack: DP members of stride 8 at ranks 0, 8, ..., 64 -> 9 of the 16 in one rack.
    assert plan.ranks_per_domain("dp", 72) == 9
    assert ParallelPlan(dp=16).ranks_per_domain("dp", 8) == 8


def test_params_per_gpu_split(mixtral: ModelSpec) -> None:
    """Non-expert weights split by tp x pp; experts by ep x tp x pp."""
    plan = ParallelPlan(tp=2, pp=2, dp=8, ep=4)
    dense, expert = plan.params_per_gpu(mixtral)
    e = mixtral.expert_params()
    assert expert == e / (4 * 2 * 2)
    assert dense == (mixtral.num_params - e) / (2 * 2)
    # with ep = 1 the two parts add up to the model / (tp x pp)
    d1, e1 = ParallelPlan(tp=2, pp=2).params_per_gpu(mixtral)
    assert d1 + e1 == pytest.approx(mixtral.num_params / 4, rel=1e-15)


def test_layers_per_stage() -> None:
    assert ParallelPlan(pp=8).layers_per_stage(get_model("llama3-70b")) == 10


pow2 = st.sampled_from([1, 2, 4, 8])


def _coords(plan: ParallelPlan) -> dict[int, dict[str, int]]:
    """Megatron default order, fastest first: rank = tp + TP (cp + CP (dp + DP pp))."""
    out = {}
    for pp_i, dp_i, cp_i, tp_i in itertools.product(
        range(plan.pp), range(plan.dp), range(plan.cp), range(plan.tp)
    ):
        rank = tp_i + plan.tp * (cp_i + plan.cp * (dp_i + plan.dp * pp_i))
        out[rank] = {"tp": tp_i, "cp": cp_i, "dp": dp_i, "pp": pp_i}
    return out


@given(tp=pow2, cp=pow2, dp=pow2, pp=pow2, domain=st.sampled_from([1, 2, 4, 8, 16, 64]))
def test_layout_matches_brute_force(tp: int, cp: int, dp: int, pp: int, domain: int) -> None:
    """Group of rank 0 along each dimension, enumerated; stride, size and members per domain."""
    plan = ParallelPlan(tp=tp, cp=cp, dp=dp, pp=pp)
    coords = _coords(plan)
    assert sorted(coords) == list(range(plan.world_size))
    for dim in ("tp", "cp", "dp", "pp"):
        group = sorted(
            r
            for r, c in coords.items()
            if all(c[o] == 0 for o in ("tp", "cp", "dp", "pp") if o != dim)
        )
        assert len(group) == plan.group_size(dim)
        if len(group) > 1:
            assert {b - a for a, b in itertools.pairwise(group)} == {plan.group_stride(dim)}
        # members of that group inside rank 0's scale-up domain [0, domain)
        inside = sum(1 for r in group if r < domain)
        assert plan.ranks_per_domain(dim, domain) == inside, dim


@given(tp=pow2, cp=pow2, dp=pow2, pp=pow2, domain=st.sampled_from([1, 2, 4, 8, 16, 72]))
def test_ranks_per_domain_bounds(tp: int, cp: int, dp: int, pp: int, domain: int) -> None:
    plan = ParallelPlan(tp=tp, cp=cp, dp=dp, pp=pp)
    for dim in ("tp", "cp", "dp", "pp", "dp_cp"):
        m = plan.ranks_per_domain(dim, domain)
        assert 1 <= m <= plan.group_size(dim)
        assert m <= max(1, domain)
