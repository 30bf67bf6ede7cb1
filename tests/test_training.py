"""Training traffic: seed 002's formulas and the algorithm-aware accounting.

Truth:
- seed 002's per-epoch formulas written out by hand, and the figures of its worked
  example (digest: 61.83 EB backward + 22.92 EB forward = 84.75 EB for TP8 x PP8 x DP16);
- one ring all-reduce of the gradients moves 2(n-1) x S bytes in all (Patarasuk & Yuan);
- ZeRO (Rajbhandari et al. 2020): ZeRO-1/2 move the same bytes as plain DP, ZeRO-3 1.5x;
- sequence parallelism (Korthikanti et al. 2022) trades each all-reduce for an
  all-gather + reduce-scatter of the same bytes;
- conservation: splitting a group over scale-up domains changes where bytes go, not how
  many there are.
"""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from aifabric.catalog import get_gpu, get_model
from aifabric.errors import ConfigError
from aifabric.spec.gpu import GpuSpec
from aifabric.spec.jobs import TrainingJob
from aifabric.spec.model import ModelSpec
from aifabric.spec.parallel import ParallelPlan
from aifabric.traffic.collectives import SCALE_OUT, SCALE_UP
from aifabric.traffic.rows import TrafficRow, collective_rows, p2p_rows, sum_rows
from aifabric.traffic.seeds import seed_fsdp_epoch, seed_training_epoch
from aifabric.traffic.storage import checkpoint_bytes, storage_traffic, write_bandwidth
from aifabric.traffic.training import training_traffic

# Seed 002 inputs: Llama3-70B on C4.
N_C4 = 178_027  # floor(364.6e6 samples / 2048)
P_SEED, L_SEED, T_SEED, H_SEED = 70e9, 80, 156e9, 8192
PB, EB = 1e15, 1e18


def _job(model: ModelSpec, gpu: GpuSpec, **kw: object) -> TrainingJob:
    plan_keys = {
        "tp",
        "pp",
        "dp",
        "cp",
        "ep",
        "zero",
        "sequence_parallel",
        "micro_batch_size",
        "grad_dtype",
        "param_dtype",
    }
    # These derivations use 2-byte gradients; the Megatron fp32 default is tested apart.
    kw.setdefault("grad_dtype", "bf16")
    plan = ParallelPlan(**{k: v for k, v in kw.items() if k in plan_keys})  # type: ignore[arg-type]
    job_kw = {k: v for k, v in kw.items() if k not in plan_keys}
    job_kw.setdefault("seq_len", 4096)
    job_kw.setdefault("global_batch", plan.dp * plan.micro_batch_size)
    return TrainingJob(model=model, plan=plan, gpu=gpu, **job_kw)  # type: ignore[arg-type]


def _rows(job: TrainingJob, dimension: str | None = None) -> list[TrafficRow]:
    rows = list(training_traffic(job).rows)
    return [r for r in rows if dimension is None or r.dimension == dimension]


# ----- seed 002 formulas ---------------------------------------------------------------------


def _seed_epoch(tp: int, pp: int, dp: int) -> float:
    return seed_training_epoch(
        minibatches=N_C4,
        params=P_SEED,
        layers=L_SEED,
        tokens=T_SEED,
        hidden=H_SEED,
        tp=tp,
        pp=pp,
        dp=dp,
    ).total


def test_seed_3d_epoch_is_84_75_eb() -> None:
    """Digest: TP8 x PP8 x DP16 = 61.83 EB backward + 22.92 EB forward = 84.75 EB."""
    e = seed_training_epoch(
        minibatches=N_C4,
        params=P_SEED,
        layers=L_SEED,
        tokens=T_SEED,
        hidden=H_SEED,
        tp=8,
        pp=8,
        dp=16,
    )
    assert e.total == pytest.approx(84.75 * EB, rel=1e-3)
    assert e.backward == pytest.approx(61.83 * EB, rel=1e-3)
    assert e.forward == pytest.approx(22.92 * EB, rel=1e-3)
    assert e.total == e.backward + e.forward


def test_seed_3d_epoch_by_hand() -> None:
    """backward = 2 N P Gdp [2 L (Gtp-1)/Gpp + (Gdp-1)] + 2 T H (Gpp-1);
    forward = 2 T H [2 L Gtp (Gtp-1) + (Gpp-1)]."""
    n, p, t, h, layers = N_C4, P_SEED, T_SEED, H_SEED, L_SEED
    bwd = 2 * n * p * 16 * (2 * layers * 7 / 8 + 15) + 2 * t * h * 7
    fwd = 2 * t * h * (2 * layers * 8 * 7 + 7)
    assert _seed_epoch(8, 8, 16) == pytest.approx(bwd + fwd, rel=1e-12)


def test_seed_single_dimension_rows() -> None:
    """Seed 002's table, G = 8, recomputed by hand (decimal PB)."""
    n, p, t, h, layers, g = N_C4, P_SEED, T_SEED, H_SEED, L_SEED, 8

    def epoch(tp: int, pp: int, dp: int):  # type: ignore[no-untyped-def]
        return seed_training_epoch(
            minibatches=n, params=p, layers=layers, tokens=t, hidden=h, tp=tp, pp=pp, dp=dp
        )

    dp, tp, pp = epoch(1, 1, g), epoch(g, 1, 1), epoch(1, g, 1)
    # DP backward 2NPG(G-1) = 1395.7 PB; no forward traffic.
    assert dp.backward == pytest.approx(2 * n * p * g * (g - 1))
    assert dp.backward == pytest.approx(1395.7 * PB, rel=1e-4)
    assert dp.forward == 0
    # TP backward 4NPL(G-1) = 27915 PB (the seed prints 26622 = 27915 / 1.048576).
    assert tp.backward == pytest.approx(4 * n * p * layers * (g - 1))
    assert tp.backward == pytest.approx(27915 * PB, rel=1e-4)
    assert tp.backward / 1.048576 == pytest.approx(26622 * PB, rel=1e-4)
    # TP forward 4LTH(G-1)G = 22901 PB (seed: 21840 = 22901 / 1.048576).
    assert tp.forward == pytest.approx(4 * layers * t * h * (g - 1) * g)
    assert tp.forward == pytest.approx(22901 * PB, rel=1e-4)
    # PP 2TH(G-1) = 17.9 PB each way.
    assert pp.backward == pytest.approx(2 * t * h * (g - 1))
    assert pp.forward == pp.backward
    assert pp.forward == pytest.approx(17.9 * PB, rel=1e-3)


def test_seed_fsdp_row() -> None:
    """FSDP: 2NP(G-1) each way = 174.5 PB for G = 8."""
    bwd, fwd = seed_fsdp_epoch(minibatches=N_C4, params=P_SEED, gpus=8)
    assert bwd == fwd == pytest.approx(2 * N_C4 * P_SEED * 7)
    assert bwd == pytest.approx(174.5 * PB, rel=1e-3)


@given(
    tp=st.integers(1, 16),
    pp=st.integers(1, 16),
    dp=st.integers(1, 64),
)
def test_seed_epoch_components_are_non_negative_and_vanish_with_g1(
    tp: int, pp: int, dp: int
) -> None:
    e = seed_training_epoch(
        minibatches=N_C4, params=P_SEED, layers=80, tokens=T_SEED, hidden=8192, tp=tp, pp=pp, dp=dp
    )
    assert min(e.dp_backward, e.tp_backward, e.tp_forward, e.pp_backward, e.pp_forward) >= 0
    assert (e.dp_backward == 0) == (dp == 1)
    assert (e.tp_forward == 0) == (tp == 1)
    assert (e.pp_forward == 0) == (pp == 1)


# ----- seed accounting of a job --------------------------------------------------------------


def _seed_job(llama70b: ModelSpec, h100: GpuSpec, **kw: object) -> TrainingJob:
    base: dict[str, object] = dict(
        accounting="seed",
        global_batch=2048,
        dataset_tokens=T_SEED,
        samples=364.6e6,
        seq_len=4096,
    )
    base.update(kw)
    return _job(llama70b, h100, **base)


def test_seed_accounting_reproduces_formula_per_epoch(llama70b: ModelSpec, h100: GpuSpec) -> None:
    """Sum of rows x iterations = seed formula with the model's own P (70.55e9), by hand."""
    job = _seed_job(llama70b, h100, tp=8, pp=8, dp=16)
    tr = training_traffic(job)
    assert tr.iterations == N_C4
    p, t, h, n = float(llama70b.num_params), T_SEED, 8192, N_C4
    bwd = 2 * n * p * 16 * (2 * 80 * 7 / 8 + 15) + 2 * t * h * 7
    fwd = 2 * t * h * (2 * 80 * 8 * 7 + 7)
    epoch = tr.total_bytes * tr.iterations
    assert epoch == pytest.approx(bwd + fwd, rel=1e-9)
    ref = seed_training_epoch(
        minibatches=n, params=p, layers=80, tokens=t, hidden=h, tp=8, pp=8, dp=16
    )
    assert epoch == pytest.approx(ref.total, rel=1e-9)
    d = tr.to_dict()["per_epoch"]
    assert d["total_bytes"] == pytest.approx(bwd + fwd, rel=1e-9)  # type: ignore[index]


def test_seed_accounting_scopes(llama70b: ModelSpec, h100: GpuSpec) -> None:
    """TP8 fits the 8-GPU board; DP (stride 8) and PP (stride 128) cross boards."""
    rows = _rows(_seed_job(llama70b, h100, tp=8, pp=8, dp=16))
    scopes = {(r.dimension, r.scope) for r in rows}
    assert scopes == {("tp", SCALE_UP), ("dp", SCALE_OUT), ("pp", SCALE_OUT)}
    for r in rows:
        assert r.bytes_per_gpu * 1024 == pytest.approx(r.total_bytes, rel=1e-12)


def test_seed_accounting_fsdp(llama70b: ModelSpec, h100: GpuSpec) -> None:
    job = _seed_job(llama70b, h100, dp=8, zero=3)
    tr = training_traffic(job)
    epoch = tr.total_bytes * tr.iterations
    assert epoch == pytest.approx(2 * (2 * N_C4 * llama70b.num_params * 7), rel=1e-9)


@pytest.mark.parametrize(
    ("kw", "pattern"),
    [
        ({"dp": 8, "cp": 2}, r"formulas for tp, pp, dp and FSDP only"),
        ({"dp": 8, "zero": 1}, r"use --accounting algorithmic"),
        ({"dp": 8, "tp": 2, "zero": 3}, r"FSDP formula is for pure data parallelism"),
    ],
)
def test_seed_accounting_refuses_what_it_cannot_model(
    llama70b: ModelSpec, h100: GpuSpec, kw: dict[str, object], pattern: str
) -> None:
    with pytest.raises(ConfigError, match=pattern):
        training_traffic(_seed_job(llama70b, h100, **kw))


# ----- algorithmic accounting: data parallel --------------------------------------------------


def test_pure_dp_is_one_ring_all_reduce(llama8b: ModelSpec, h100: GpuSpec) -> None:
    """dp = 8 in an 8-GPU board: 8 ranks x 2(8-1)/8 x (P x 2 bytes), all on NVLink."""
    rows = _rows(_job(llama8b, h100, dp=8))
    s = llama8b.num_params * 2
    assert len(rows) == 1
    (row,) = rows
    assert (row.dimension, row.collective, row.algorithm, row.scope) == (
        "dp",
        "all_reduce",
        "ring",
        SCALE_UP,
    )
    assert row.buffer_bytes == s
    assert row.total_bytes == pytest.approx(8 * 2 * 7 / 8 * s, rel=1e-12)
    assert row.bytes_per_gpu == pytest.approx(2 * 7 / 8 * s, rel=1e-12)


def test_dp16_on_8_gpu_boards_splits_hierarchically(llama8b: ModelSpec, h100: GpuSpec) -> None:
    """dp = 16 over two boards: inside, reduce-scatter + all-gather (16 x 2 x 7/8 S = 28 S);
    across, a 2-rank all-reduce of each S/8 shard (16 x 2 x 1/2 x S/8 = 2 S); total 30 S
    = 2(16-1) S, the flat ring's bytes. (Named: auto now picks what NCCL would, a ring.)"""
    rows = _rows(_job(llama8b, h100, dp=16, algorithm="hierarchical"))
    s = llama8b.num_params * 2
    assert {r.algorithm for r in rows} == {"hierarchical"}
    assert sum_rows(rows, SCALE_UP) == pytest.approx(28 * s, rel=1e-12)
    assert sum_rows(rows, SCALE_OUT) == pytest.approx(2 * s, rel=1e-12)
    assert sum_rows(rows) == pytest.approx(2 * (16 - 1) * s, rel=1e-12)


def test_dp16_forced_ring_conserves_bytes(llama8b: ModelSpec, h100: GpuSpec) -> None:
    """A flat ring over two boards crosses them on 2 of its 16 edges: 1/8 of 30 S goes out."""
    rows = _rows(_job(llama8b, h100, dp=16, algorithm="ring"))
    s = llama8b.num_params * 2
    assert sum_rows(rows) == pytest.approx(30 * s, rel=1e-12)
    assert sum_rows(rows, SCALE_OUT) == pytest.approx(30 * s / 8, rel=1e-12)


def test_dp_direct_is_the_seed_dp_formula(llama8b: ModelSpec, h100: GpuSpec) -> None:
    """Direct all-reduce: G (G-1) x b P per iteration -- seed 002's DP row per mini-batch."""
    rows = _rows(_job(llama8b, h100, dp=8, algorithm="direct"))
    assert sum_rows(rows) == pytest.approx(8 * 7 * 2 * llama8b.num_params, rel=1e-12)


@pytest.mark.parametrize("zero", [1, 2])
def test_zero12_bytes_equal_zero0(llama8b: ModelSpec, h100: GpuSpec, zero: int) -> None:
    """Reduce-scatter of gradients + all-gather of parameters = one all-reduce."""
    for dp in (8, 16, 32):
        z0 = sum_rows(_rows(_job(llama8b, h100, dp=dp, zero=0)))
        zn = sum_rows(_rows(_job(llama8b, h100, dp=dp, zero=zero)))
        assert zn == pytest.approx(z0, rel=1e-12)


def test_zero1_rows(llama8b: ModelSpec, h100: GpuSpec) -> None:
    rows = _rows(_job(llama8b, h100, dp=8, zero=1))
    assert {(r.phase, r.collective) for r in rows} == {
        ("backward", "reduce_scatter"),
        ("optimizer", "all_gather"),
    }


def test_zero3_is_one_and_a_half_times_zero0(llama8b: ModelSpec, h100: GpuSpec) -> None:
    """ZeRO paper sec. 7: ZeRO-3 moves 3 Psi vs 2 Psi (one micro-batch per iteration)."""
    z0 = sum_rows(_rows(_job(llama8b, h100, dp=8, zero=0)))
    z3 = sum_rows(_rows(_job(llama8b, h100, dp=8, zero=3)))
    assert z3 == pytest.approx(1.5 * z0, rel=1e-12)


def test_zero3_gathers_per_microbatch(llama8b: ModelSpec, h100: GpuSpec) -> None:
    """FSDP gathers and reduce-scatters for every micro-batch: 4 micro-batches -> 6x."""
    z0 = sum_rows(_rows(_job(llama8b, h100, dp=8, zero=0, global_batch=32)))
    z3 = sum_rows(_rows(_job(llama8b, h100, dp=8, zero=3, global_batch=32)))
    assert z3 == pytest.approx(4 * 1.5 * z0, rel=1e-12)


def test_dp_grads_are_sharded_by_tp_and_pp(llama8b: ModelSpec, h100: GpuSpec) -> None:
    """Each DP group reduces its tp x pp shard: the total over groups equals the whole model's."""
    rows = _rows(_job(llama8b, h100, tp=2, pp=2, dp=8, global_batch=16), "dp")
    s = llama8b.num_params * 2
    # 4 DP groups of 8, each all-reducing S / 4: 4 x 2(8-1) x S / 4.
    assert sum_rows(rows) == pytest.approx(2 * 7 * s, rel=1e-12)
    assert {r.buffer_bytes for r in rows} == {s / 4}


# ----- tensor, pipeline, context and expert parallel -----------------------------------------


def test_tp_all_reduce_bytes_by_hand(llama8b: ModelSpec, h100: GpuSpec) -> None:
    """Llama-3-8B, tp = 8, dp = 2, seq 4096, global batch 16 (8 micro-batches of 1):
    S = 4096 tokens x 4096 x 2 B; 2 all-reduces per layer per micro-batch each way:
    2 phases x 2 groups x (2 x 32 x 8) calls x 2(8-1) S. (The rows with a note are the
    embedding and LM head's, tested in test_training_fidelity.py.)"""
    rows = [r for r in _rows(_job(llama8b, h100, tp=8, dp=2, global_batch=16), "tp") if not r.note]
    s = 4096 * 4096 * 2
    assert {r.buffer_bytes for r in rows} == {s}
    assert {r.scope for r in rows} == {SCALE_UP}
    assert sum_rows(rows) == pytest.approx(2 * 2 * (2 * 32 * 8) * 14 * s, rel=1e-12)


def test_sequence_parallel_bytes_per_layer(llama8b: ModelSpec, h100: GpuSpec) -> None:
    """Per layer an all-reduce is an all-gather + reduce-scatter of the same bytes
    (Korthikanti et al. 2022): plain TP moves 4 all-reduces (2 forward, 2 backward); SP
    moves 2 AG + 2 RS forward (= 2 all-reduces) and 4 AG + 2 RS backward (= 3, the extra
    all-gather re-gathers the linear input for the weight gradient): 5/4 of plain."""
    plain = _job(llama8b, h100, tp=8, dp=2, global_batch=16)
    sp = _job(llama8b, h100, tp=8, dp=2, global_batch=16, sequence_parallel=True)
    layer_rows = [r for r in _rows(sp, "tp") if r.note in ("", "SP wgrad re-gather")]
    plain_rows = [r for r in _rows(plain, "tp") if not r.note]
    assert sum_rows(layer_rows) == pytest.approx(1.25 * sum_rows(plain_rows), rel=1e-12)
    assert {r.collective for r in layer_rows} == {"all_gather", "reduce_scatter"}
    others = [r for r in _rows(sp) if r.dimension != "tp"]
    assert sum_rows(others) == pytest.approx(
        sum_rows([r for r in _rows(plain) if r.dimension != "tp"]), rel=1e-12
    )


def test_pp_sends_by_hand(llama8b: ModelSpec, h100: GpuSpec) -> None:
    """pp = 4, dp = 2, 4 micro-batches: 3 boundaries x 4 sends x 2 chains x S each way;
    PP neighbors are 2 ranks apart, so all 4 stages share the 8-GPU board."""
    job = _job(llama8b, h100, pp=4, dp=2, global_batch=8)
    rows = _rows(job, "pp")
    s = 4096 * 4096 * 2
    assert {(r.phase, r.collective, r.scope) for r in rows} == {
        ("forward", "send_recv", SCALE_UP),
        ("backward", "send_recv", SCALE_UP),
    }
    assert sum_rows(rows) == pytest.approx(2 * 3 * 4 * 2 * s, rel=1e-12)


def test_pp_across_boards(llama8b: ModelSpec, h100: GpuSpec) -> None:
    """With 2-GPU domains and PP stride 2 every boundary crosses the scale-out network."""
    job = _job(llama8b, h100, pp=4, dp=2, global_batch=8, scaleup_domain_size=2)
    rows = _rows(job, "pp")
    assert {r.scope for r in rows} == {SCALE_OUT}
    assert sum_rows(rows) == pytest.approx(2 * 3 * 4 * 2 * 4096 * 4096 * 2, rel=1e-12)


def test_cp_ring_attention_bytes(llama8b: ModelSpec, h100: GpuSpec) -> None:
    """cp = 2, 4 micro-batches of 4096 tokens: the full K,V buffer per layer is
    4096 x (2 x 8 KV heads x 128) x 2 B; forward all-gather, backward all-gather +
    reduce-scatter, each 2 ranks x 1/2 S per call, 32 layers x 4 micro-batches calls."""
    job = _job(llama8b, h100, cp=2, global_batch=4, micro_batch_size=1)
    rows = _rows(job, "cp")
    s = 4096 * 2 * 8 * 128 * 2
    assert {r.buffer_bytes for r in rows} == {s}
    assert sum_rows(rows) == pytest.approx(3 * (32 * 4) * s, rel=1e-12)


def test_moe_all_to_all_rows(mixtral: ModelSpec, h100: GpuSpec) -> None:
    """Mixtral, ep = 8 = dp: per micro-batch and MoE layer a dispatch + combine forward and
    again backward, each with S = 4096 tokens x top-2 x 4096 x 2 B per rank; a rank keeps
    1/8 and sends 7/8 S. One row per direction (dispatch, combine) and phase, 32 calls
    each (Mixtral publishes no routing limit or dispatch dtype: uniform top-k, bf16)."""
    rows = _rows(_job(mixtral, h100, dp=8, ep=8), "ep")
    s = 4096 * 2 * 4096 * 2
    assert {r.buffer_bytes for r in rows} == {s}
    assert {(r.collective, r.algorithm, r.scope) for r in rows} == {
        ("all_to_all", "direct", SCALE_UP)
    }
    assert sorted((r.phase, r.note) for r in rows) == [
        ("backward", "combine (bf16)"),
        ("backward", "dispatch (bf16)"),
        ("forward", "combine (bf16)"),
        ("forward", "dispatch (bf16)"),
    ]
    for r in rows:
        assert r.calls == 32
        assert r.total_bytes == pytest.approx(8 * 32 * 7 / 8 * s, rel=1e-12)


def test_moe_dp_splits_dense_and_expert_gradients(mixtral: ModelSpec, h100: GpuSpec) -> None:
    """dp = 16, ep = 8: non-expert grads all-reduced over 16 ranks; each expert shard
    (experts / 8) over the 16 / 8 = 2 ranks holding it, which sit on different boards."""
    rows = _rows(_job(mixtral, h100, dp=16, ep=8))
    expert = mixtral.expert_params()
    dense_s = (mixtral.num_params - expert) * 2
    expert_s = expert / 8 * 2
    dp_rows = [r for r in rows if r.dimension == "dp"]
    edp_rows = [r for r in rows if r.dimension == "dp_expert"]
    assert sum_rows(dp_rows) == pytest.approx(2 * 15 * dense_s, rel=1e-12)
    assert {r.buffer_bytes for r in edp_rows} == {expert_s}
    assert {r.scope for r in edp_rows} == {SCALE_OUT}
    # 8 groups of 2 ranks, one all-reduce each: 8 x 2(2-1) x S_e.
    assert sum_rows(edp_rows) == pytest.approx(8 * 2 * expert_s, rel=1e-12)


def test_moe_with_ep_equal_dp_has_no_expert_dp_rows(mixtral: ModelSpec, h100: GpuSpec) -> None:
    rows = _rows(_job(mixtral, h100, dp=8, ep=8))
    assert not [r for r in rows if r.dimension == "dp_expert"]


# ----- invariants over many plans ------------------------------------------------------------

plans = st.fixed_dictionaries(
    {
        "tp": st.sampled_from([1, 2, 4, 8]),
        "pp": st.sampled_from([1, 2, 4]),
        "dp": st.sampled_from([1, 2, 4, 8, 16]),
        "cp": st.sampled_from([1, 2]),
        "zero": st.sampled_from([0, 1, 3]),
        "micro_batch_size": st.sampled_from([1, 2]),
        "sp": st.booleans(),
        "algorithm": st.sampled_from(["auto", "ring", "tree", "halving_doubling", "direct"]),
    }
)


def _plan_job(model: ModelSpec, gpu: GpuSpec, p: dict[str, object], domain: int) -> TrainingJob:
    kw = dict(p)
    sp = bool(kw.pop("sp")) and kw["tp"] != 1
    return _job(
        model,
        gpu,
        sequence_parallel=sp,
        global_batch=2 * int(kw["dp"]) * int(kw["micro_batch_size"]),  # type: ignore[call-overload]
        seq_len=1024,
        scaleup_domain_size=domain,
        **kw,
    )


@given(p=plans, domain=st.sampled_from([2, 4, 8, 16, 72]))
def test_domain_size_moves_bytes_between_scopes_but_conserves_them(
    p: dict[str, object], domain: int
) -> None:
    """Total bytes per iteration do not depend on the scale-up domain; with a domain of one
    GPU everything is scale-out, with one holding the whole job everything is scale-up."""
    model, gpu = get_model("llama3-8b"), get_gpu("h100-sxm")
    flat = _plan_job(model, gpu, p, 1)
    job = _plan_job(model, gpu, p, domain)
    whole = _plan_job(model, gpu, p, job.plan.world_size)
    rows_flat, rows, rows_whole = _rows(flat), _rows(job), _rows(whole)
    total = sum_rows(rows_flat)
    assert sum_rows(rows) == pytest.approx(total, rel=1e-9)
    assert sum_rows(rows_whole) == pytest.approx(total, rel=1e-9)
    assert sum_rows(rows_flat, SCALE_UP) == 0
    assert sum_rows(rows_whole, SCALE_OUT) == 0
    assert sum_rows(rows, SCALE_UP) + sum_rows(rows, SCALE_OUT) == pytest.approx(total, rel=1e-9)
    world = job.plan.world_size
    for r in rows:
        assert r.total_bytes > 0
        assert r.bytes_per_gpu * world == pytest.approx(r.total_bytes, rel=1e-12)
        assert r.scope in (SCALE_UP, SCALE_OUT)


@given(p=plans)
def test_dp_bytes_match_closed_form(p: dict[str, object]) -> None:
    """DP rows of any plan under ring-like algorithms: (world / n) groups x c x 2(n-1)/n x n
    x S, with n = dp x cp, S = 2 P / (tp pp) and c = 1 (ZeRO 0/1) or 1.5 x micro-batches."""
    if p["algorithm"] == "direct":
        p = {**p, "algorithm": "ring"}
    model, gpu = get_model("llama3-8b"), get_gpu("h100-sxm")
    job = _plan_job(model, gpu, p, 8)
    plan = job.plan
    n = plan.dp * plan.cp
    s = 2 * model.num_params / (plan.tp * plan.pp)
    mb = plan.num_microbatches(job.global_batch)
    c = 1.5 * mb if plan.zero == 3 else 1.0
    expected = (plan.world_size // n) * c * 2 * (n - 1) * s
    assert sum_rows(_rows(job, "dp")) == pytest.approx(expected, rel=1e-9, abs=1e-6)


# ----- compute time, epochs, storage ---------------------------------------------------------


def test_compute_time_by_hand(llama8b: ModelSpec, h100: GpuSpec) -> None:
    """Kaplan: 3 x (2 N_matmul + 2 L s d_attn) FLOP per token; H100 989.4 TFLOP/s at 40 %."""
    job = _job(llama8b, h100, dp=8, global_batch=64, seq_len=4096)
    tr = training_traffic(job)
    tokens = 64 * 4096
    flops = 3 * (2 * llama8b.matmul_params_per_token() + 2 * 32 * 4096 * 4096) * tokens
    assert tr.tokens_per_iteration == tokens
    assert tr.compute_time == pytest.approx(flops / (8 * 989.4e12 * 0.4), rel=1e-12)


def test_to_dict_consistency(llama8b: ModelSpec, h100: GpuSpec) -> None:
    job = _job(llama8b, h100, tp=2, pp=2, dp=4, global_batch=64, dataset_tokens=1e9, seq_len=2048)
    tr = training_traffic(job)
    d = tr.to_dict()
    it, ep = d["per_iteration"], d["per_epoch"]
    # 1e9 tokens / 2048 = 488,281.25 samples; / 64 per batch -> 7629 whole batches.
    assert tr.iterations == 7629 == ep["iterations"]  # type: ignore[index]
    assert ep["total_bytes"] == pytest.approx(it["total_bytes"] * 7629)  # type: ignore[index]
    assert it["scale_up_bytes"] + it["scale_out_bytes"] == pytest.approx(  # type: ignore[index]
        it["total_bytes"]  # type: ignore[index]
    )
    assert sum(it["bytes_by_dimension"].values()) == pytest.approx(it["total_bytes"])  # type: ignore[index]
    assert it["bytes_per_gpu"] * 16 == pytest.approx(it["total_bytes"])  # type: ignore[index]


def test_iterations_round_down_or_up(llama8b: ModelSpec, h100: GpuSpec) -> None:
    kw: dict[str, object] = dict(dp=8, global_batch=2048, samples=364.6e6)
    assert _job(llama8b, h100, **kw).iterations_per_epoch == 178_027
    assert _job(llama8b, h100, drop_last=False, **kw).iterations_per_epoch == 178_028


def test_storage_traffic(llama8b: ModelSpec, h100: GpuSpec) -> None:
    """Checkpoint = 14 B/param (BF16 + FP32 master + Adam m, v); Llama 3's 128,256-token
    vocabulary needs 4-byte token ids."""
    job = _job(llama8b, h100, dp=8, global_batch=64, dataset_tokens=15e12)
    s = storage_traffic(job, 2.0)
    assert s["checkpoint_bytes"] == 14 * llama8b.num_params
    assert s["checkpoint_write_bytes_per_s"] == pytest.approx(14 * llama8b.num_params / 60)
    assert s["checkpoint_write_bytes_per_s_per_gpu"] == pytest.approx(
        14 * llama8b.num_params / 60 / 8
    )
    assert s["dataset_bytes_per_epoch"] == 15e12 * 4
    assert s["dataset_bytes_per_iteration"] == pytest.approx(64 * 4096 * 4)
    assert s["dataset_read_bytes_per_s"] == pytest.approx(64 * 4096 * 4 / 2.0)
    assert checkpoint_bytes(1e9) == 14e9
    assert write_bandwidth(1e12, 10) == 1e11


def test_gpt3_token_ids_fit_two_bytes(h100: GpuSpec) -> None:
    job = _job(get_model("gpt3-175b"), h100, dp=8, seq_len=2048)
    assert job.bytes_per_token_id == 2


@pytest.mark.parametrize(
    ("kw", "pattern"),
    [
        ({"global_batch": 100}, r"global_batch\(=100\) must be a positive multiple"),
        ({"mfu": 0.0}, r"mfu\(=0.0\) must be in \(0, 1\]"),
        ({"seq_len": 0}, r"seq_len\(=0\) must be in \[1, "),
        ({"accounting": "magic"}, r"accounting\(='magic'\) must be one of algorithmic, seed"),
        ({"dataset_tokens": 0}, r"dataset_tokens\(=0\) must be > 0"),
        ({"tp": 6}, r"tp\(=6\) must divide num_attention_heads\(=32\)"),
        ({"algorithm": "carrier-pigeon"}, r"algorithm\(='carrier-pigeon'\) must be one of"),
    ],
)
def test_training_job_errors(
    llama8b: ModelSpec, h100: GpuSpec, kw: dict[str, object], pattern: str
) -> None:
    with pytest.raises(ConfigError, match=pattern):
        job = _job(llama8b, h100, dp=8, **kw)
        training_traffic(job)


# ----- rows helpers --------------------------------------------------------------------------


def test_collective_rows_single_rank_group_is_empty() -> None:
    rows = collective_rows(
        dimension="tp",
        phase="forward",
        operation="all_reduce",
        group_size=1,
        num_groups=8,
        calls=10,
        size=1e6,
        ranks_per_domain=8,
        world_size=8,
    )
    assert rows == []


def test_p2p_rows_split_by_domain() -> None:
    """A 16-stage chain over 8-rank domains: 14 boundaries inside, 1 across."""
    rows = p2p_rows(
        dimension="pp",
        phase="forward",
        chain_length=16,
        num_chains=1,
        calls_per_hop=3,
        size=1e6,
        ranks_per_domain=8,
        world_size=16,
    )
    assert sum_rows(rows, SCALE_UP) == 14 * 3 * 1e6
    assert sum_rows(rows, SCALE_OUT) == 1 * 3 * 1e6
    assert math.isclose(sum_rows(rows), 15 * 3 * 1e6)


def test_uneven_domain_split_ring_crossings() -> None:
    """GB200 NVL72 (72-GPU domains), tp = 8, dp = 16: DP members are ranks r, r+8, ..., r+120,
    so 9 share the first rack and 7 the second. A ring through the 16 members in rank order
    crosses racks on 2 of its 16 edges (member 8 -> 9 and the wrap 15 -> 0): 2/16 of the
    ring's bytes go scale-out."""
    job = _job(get_model("llama3-8b"), get_gpu("gb200-nvl72"), tp=8, dp=16, seq_len=1024)
    assert job.plan.ranks_per_domain("dp", 72) == 9
    rows = _rows(job, "dp")
    assert sum_rows(rows, SCALE_OUT) / sum_rows(rows) == pytest.approx(2 / 16, rel=1e-9)
