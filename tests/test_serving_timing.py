"""Serving iteration timing against measurements (issue 12 item 1).

Truth: SplitwiseSim's measured Llama-2-70B iteration times (catalog
``data/serving_profiles/splitwise_sim.yaml``, derived from its ``data/perf_model.csv``, MIT;
A100/H100 at TP 2/4/8, prefill and decode) and Argonne's LLM-Inference-Bench Llama-3-8B
decode iteration times on H100 at TP 1/2/4 (``alcf_inference_bench.yaml``, derived from its
``Plots/All_results.csv`` by derive_alcf_inference_bench.py, BSD-3-Clause: end-to-end times
of a batch minus a FLOP-scaled TTFT, over the output tokens; decode only) and on one A100
40 GB (ALCF Polaris), with its two measured TTFTs (``Plots/Fig_22/all_results_TTFT_ITL.csv``). The profile
timing must reproduce points it did not see (leave-one-out on interior points, other
contexts), and the roofline fallback, with its defaults fitted to those tables, must stay
near them.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from aifabric.catalog import find_serving_profile, get_gpu, get_model, serving_profiles
from aifabric.errors import ConfigError
from aifabric.serving.compute import RooflineTiming
from aifabric.serving.config import Compute
from aifabric.serving.profile import ProfileTiming, roofline_options, select_timing

PROFILES = sorted(serving_profiles().values(), key=lambda p: p.key)
SPLITWISE = [p for p in PROFILES if p.source == "splitwise-sim"]
BIG = [p for p in SPLITWISE if p.tp in (4, 8)]  # the TP4 / TP8 deployments
ALCF = [p for p in PROFILES if p.source == "alcf-inference-bench"]  # 8B, decode only


def _roofline(p: object, **kw: float) -> RooflineTiming:
    opts = roofline_options(Compute()) | kw
    return RooflineTiming(model=get_model(p.model), gpu=get_gpu(p.gpu), tp=p.tp, **opts)  # type: ignore[attr-defined]


def _profile(p: object) -> ProfileTiming:
    return ProfileTiming(profile=p, roofline=_roofline(p))  # type: ignore[arg-type]


def test_tables_shipped() -> None:
    """Llama-2-70B on A100 and H100 at TP 2/4/8, each with prefill and decode points."""
    keys = {(p.model, p.gpu, p.tp) for p in PROFILES}
    for gpu in ("a100-80g", "h100-sxm"):
        for tp in (4, 8):
            assert ("llama2-70b", gpu, tp) in keys
    for p in SPLITWISE:
        assert len(p.prefill) >= 8 and len(p.decode) >= 6
        assert p.decode_context == pytest.approx(512 + 127 / 2)
    # The 8B-class table on one GPU, decode only: batch 1/16/32/64 at L = 1,024
    # (mean context 1,024 + 1,023 / 2), the 5 x 4 grid kept for validation (A100: 19, batch
    # 64 at 2,048 tokens dropped, its KV does not fit in 40 GB).
    assert {(p.model, p.gpu, p.tp) for p in ALCF} == {("llama3-8b", g, 1)
                                                      for g in ("h100-sxm", "a100-40g")}  # fmt: skip
    for p in ALCF:
        assert p.prefill == () and [b for b, _ in p.decode] == [1, 16, 32, 64]
        assert p.decode_context == 1024 + 1023 / 2
        assert len(p.decode_points) == (20 if p.gpu == "h100-sxm" else 19)


def _leave_one_out_errors(p: object) -> list[float]:
    errs = []
    for axis in ("prefill", "decode"):
        pts = getattr(p, axis)
        for i in range(1, len(pts) - 1):
            held = replace(p, **{axis: pts[:i] + pts[i + 1 :]})  # type: ignore[type-var]
            t = _profile(held)
            x, measured = pts[i]
            if axis == "prefill":
                got = t.prefill_table_time(x)
            else:
                got = t.decode_step_time(int(x), x * p.decode_context)  # type: ignore[attr-defined]
            errs.append(got / measured - 1)
    return errs


@pytest.mark.parametrize("p", BIG, ids=lambda p: p.label)
def test_profile_predicts_held_out_points(p: object) -> None:
    """Drop each interior point, interpolate it from its neighbours (then 4x apart in
    tokens, 4x in batch). Decode: every point within 15 % (worst 8.4 %). Prefill: mean
    within 15 %, every point within 20 %: the measured curve turns sharply between 2,048
    and 4,096 tokens (H100 TP8: 135 -> 381 ms for 2x the tokens), which a 4x gap cannot
    follow, so 2 of the 28 TP4/TP8 held-out prefill points (2,048 tokens, A100 TP4 and H100
    TP8) are 16.8 % and 17.3 % off; reported, not tuned away."""
    errs = np.abs(_leave_one_out_errors(p))
    n = len(p.prefill) - 2  # type: ignore[attr-defined]
    pre, dec = errs[:n], errs[n:]
    assert dec.max() < 0.15, dec
    assert pre.mean() < 0.15 and pre.max() < 0.20, pre


def test_profile_decode_follows_the_measured_context_sweep() -> None:
    """The batch-1 token sweep (context 575 -> 4,607, not used by the interpolation) is
    matched by the table plus the KV-read term within 15 %."""
    for p in BIG:
        t = _profile(p)
        for context, measured in p.decode_context_points:
            assert t.decode_step_time(1, context) == pytest.approx(measured, rel=0.15)


def _roofline_errors(p: object, **kw: float) -> np.ndarray:
    r = _roofline(p, **kw)
    e = [r.prefill_time(n) / s - 1 for n, s in p.prefill]  # type: ignore[attr-defined]
    e += [r.decode_step_time(int(b), b * p.decode_context) / s - 1 for b, s in p.decode]  # type: ignore[attr-defined]
    return np.array(e)


def _alcf_errors(p: object, **kw: float) -> np.ndarray:
    r = _roofline(p, **kw)
    return np.array([r.decode_step_time(int(b), b * c) / s - 1
                     for b, c, s in p.decode_points])  # type: ignore[attr-defined]  # fmt: skip


#: The defaults fitted before the 8B table (a fixed 8 ms per iteration and 0.3 ms per
#: sequence, no per-layer terms, 9 us per ring step, all-reduces at the full link rate).
OLD_FIT = {"iteration_overhead": 8e-3, "sequence_overhead": 3e-4, "layer_overhead": 0.0,
           "layer_sequence_overhead": 0.0, "scaleup_latency": 9e-6, "prefill_mfu": 0.45,
           "scaleup_bandwidth_efficiency": 1.0}  # fmt: skip


def test_roofline_fitted_defaults_within_30_percent_of_the_tables() -> None:
    """Fitted defaults (config.Compute: per-layer overheads, per-ring-step all-reduce latency;
    fit set: 70B TP4/TP8 and the 8B H100 table at context 1,535.5). 70B TP4/TP8: mean
    |error| <= 30 % for prefill and decode, every decode point within 30 % (measured:
    prefill 16.1 % mean, 45.2 % worst, long TP8 prompts fast; decode 12.8 % mean, 29.7 %
    worst; before this fit 16.5 / 45.6 % and 10.8 / 18.2 %); the unfitted roofline (no
    overheads, prefill_mfu 0.5, 2 us per step) was ~60 % off on decode. Held out: 70B TP2
    decode, every point within 30 % (13.3 % mean, 21.5 % worst; was 5.7 / 10.1 %); its
    prefill stays 23 % mean, 42 % worst (test_tp_communication_explains_the_70b_prefill_trend
    for the mechanism)."""
    dec, pre, before, dec2, pre2 = [], [], [], [], []
    for p in BIG:
        e = _roofline_errors(p)
        pre += list(e[: len(p.prefill)])
        dec += list(e[len(p.prefill) :])
        b = _roofline_errors(p, iteration_overhead=0.0, sequence_overhead=0.0,
                             layer_overhead=0.0, layer_sequence_overhead=0.0,
                             scaleup_latency=2e-6, prefill_mfu=0.5,
                             scaleup_bandwidth_efficiency=1.0)  # fmt: skip
        before += list(b[len(p.prefill) :])
    for p in SPLITWISE:
        if p.tp == 2:
            e = _roofline_errors(p)
            pre2 += list(e[: len(p.prefill)])
            dec2 += list(e[len(p.prefill) :])
    assert np.mean(np.abs(pre)) < 0.30 and np.mean(np.abs(dec)) < 0.30
    assert np.max(np.abs(dec)) < 0.30
    assert np.max(np.abs(dec2)) < 0.30  # held out
    assert np.mean(np.abs(before)) > 0.5  # the optimism the fit removed


@pytest.mark.parametrize("p", ALCF, ids=lambda p: p.label)
def test_roofline_overheads_scale_with_layers_for_8b(p: object) -> None:
    """LLM-Inference-Bench Llama-3-8B on one GPU (vLLM): the fitted roofline is within 15 %
    of every derived decode point (H100: 4 in the fit, 16 at the other contexts held out,
    3.8 % mean, 11.3 % worst; A100 40 GB, all 19 held out, another GPU: 3.9 / 9.7 %), where
    the previous fit, a fixed 8 ms per iteration and 0.3 ms per sequence fitted on 80-layer
    70B at TP4/TP8, was 1.35-2.9x too slow (e.g. H100 batch 16 at 1,535.5 tokens: 20.0 ms
    against 10.4 ms derived). The measured overhead over the weight read at batch 1 is 1.9
    ms for 32 layers at TP1 against 11-34 ms for 80 layers at TP2-8: it scales with the
    layers and the all-reduces, not per iteration."""
    e = np.abs(_alcf_errors(p))
    assert e.max() < 0.15, e
    old = _alcf_errors(p, **OLD_FIT)
    assert old.min() > 0.3  # every point 1.3x or more too slow before


#: Measured TTFT of 16 prompts of 1,024 tokens, vLLM, Llama-3-8B, one GPU
#: (LLM-Inference-Bench Plots/Fig_22/all_results_TTFT_ITL.csv), s.
TTFT_16X1024 = {"h100-sxm": 0.42566500790417194, "a100-40g": 1.0420479719759896}


#: The prefill-TP-communication fit (config.Compute docstring): compute at 75 % of peak, the
#: TP all-reduces (not overlapped) at 17.5 % of the link's per-direction rate.
TP_COMM_PREFILL = {"prefill_mfu": 0.75, "scaleup_bandwidth_efficiency": 0.175,
                   "layer_sequence_overhead": 2e-6}  # fmt: skip


def _ttft(gpu: str, **kw: float) -> float:
    r = _roofline(find_serving_profile("llama3-8b", gpu, 1, "bf16"), **kw)
    return r.iteration_time(prefill_flops=16 * r.prefill_flops(1024), prefill_tokens=16384)


@pytest.mark.parametrize("gpu", sorted(TTFT_16X1024))
def test_roofline_prefill_against_the_measured_8b_ttft(gpu: str) -> None:
    """Held out (no 8B prefill in any fit): the roofline's prefill of 16 x 1,024-token
    prompts (16 x prefill_flops(1,024), one iteration) against the measured TTFT. Defaults
    (prefill_mfu 0.45, fitted on 70B at TP4/TP8): 33 % (H100) / 71 % (A100) slow, the 70B
    tables' low MFU carried to TP1, which pays no TP communication. With that
    communication modelled (TP_COMM_PREFILL): -20 % / +3 %, within 25 %."""
    measured = TTFT_16X1024[gpu]
    assert 1.3 * measured < _ttft(gpu) < 1.8 * measured
    assert _ttft(gpu, **TP_COMM_PREFILL) == pytest.approx(measured, rel=0.25)


def test_tp_communication_explains_the_70b_prefill_trend() -> None:
    """TP_COMM_PREFILL (all-reduce bytes at an effective 17.5 % of NVLink's per-direction
    rate, compute at 75 % of peak; fitted on 70B TP4/TP8 + the 8B H100 decode table like the
    defaults): the held-out TP2 prefills are within 30 % (11.3 % mean, 29.8 % worst; the
    defaults: 23.1 / 42.1 %), the long (>= 8,192-token) TP4/TP8 prefills within 30 % (26.5 %
    worst; the defaults: up to 45 % fast) and the decode stays as the defaults' (every
    TP4/TP8 point within 30 %, 8B within 15 %). What it does not follow: the TP8 tables' 512-2,048-token
    prompts (measured 2.8x from 2,048 to 4,096 tokens at H100 TP8), up to 48 % slow."""
    pre2, long_, dec, dflt2 = [], [], [], []
    for p in SPLITWISE:
        e = _roofline_errors(p, **TP_COMM_PREFILL)
        n = len(p.prefill)
        if p.tp == 2:
            pre2 += list(e[:n])
            dflt2 += list(_roofline_errors(p)[:n])
        else:
            long_ += [x for (tokens, _), x in zip(p.prefill, e[:n], strict=True) if tokens >= 8192]
            dec += list(e[n:])
    assert np.max(np.abs(pre2)) < 0.30 and np.mean(np.abs(pre2)) < 0.5 * np.mean(np.abs(dflt2))
    assert np.max(np.abs(long_)) < 0.30
    assert np.max(np.abs(dec)) < 0.30
    for p in ALCF:
        assert np.max(np.abs(_alcf_errors(p, **TP_COMM_PREFILL))) < 0.15


@pytest.mark.parametrize("p", PROFILES, ids=lambda p: p.label)
@settings(max_examples=40, deadline=None)
@given(a=st.floats(1, 70000), b=st.floats(1, 70000), batch=st.integers(1, 300),
       ctx=st.floats(0, 4000))  # fmt: skip
def test_more_tokens_are_never_faster(
    p: object, a: float, b: float, batch: int, ctx: float
) -> None:
    t = _profile(p)
    lo, hi = sorted((a, b))
    assert t.prefill_time(lo) <= t.prefill_time(hi) + 1e-12
    c = batch * ctx
    assert t.decode_step_time(batch, c) <= t.decode_step_time(batch + 1, c + ctx) + 1e-12
    assert t.decode_step_time(batch, c) <= t.iteration_time(
        prefill_flops=t.prefill_flops(lo), prefill_tokens=lo, decode_batch=batch, decode_context=c
    )
    assert t.prefill_time(lo) <= t.prefill_time(lo + 100.0, 100.0) + 1e-12  # cached context


@pytest.mark.parametrize("p", PROFILES[:2] + PROFILES[-2:], ids=lambda p: p.label)
def test_vectorised_decode_equals_scalar(p: object) -> None:
    t = _profile(p)
    for batch, ctx, steps in ((1, 0.0, 5), (7, 3000.0, 40), (64, 64 * 575.5, 3), (200, 1e5, 9)):
        vec = t.decode_step_times(batch, ctx, steps)
        scalar = [t.decode_step_time(batch, ctx + batch * i) for i in range(steps)]
        np.testing.assert_allclose(vec, scalar, rtol=1e-12)
    assert t.decode_step_times(0, 0.0, 3).tolist() == [0.0, 0.0, 0.0]


def test_mixed_iteration_is_the_prefill_table_at_all_tokens_plus_kv() -> None:
    """Hand derivation of the documented rule: t = prefill(p + b) + kv_read(C) when that
    exceeds the decode part, exactly."""
    p = find_serving_profile("llama2-70b", "h100-sxm", 8, "bf16")
    t = _profile(p)
    b, c, n = 16, 16 * 1000.0, 2048.0
    expect = t.prefill_table_time(n + b) + t.roofline.kv_read_time(c)
    got = t.iteration_time(prefill_flops=t.prefill_flops(n), prefill_tokens=n, decode_batch=b,
                           decode_context=c)  # fmt: skip
    assert got == pytest.approx(expect, rel=1e-12)
    # At measured points the table is returned as measured.
    assert t.prefill_time(4096) == pytest.approx(dict(p.prefill)[4096.0], rel=1e-9)


def test_selection_auto_profile_roofline() -> None:
    m, g = get_model("llama2-70b"), get_gpu("h100-sxm")
    auto = select_timing(model=m, gpu=g, tp=8, timing="auto")
    assert isinstance(auto, ProfileTiming)
    assert auto.name == "profile: splitwise-sim llama2-70b h100-sxm tp8"
    assert isinstance(select_timing(model=m, gpu=g, tp=8, timing="profile"), ProfileTiming)
    roof = select_timing(model=m, gpu=g, tp=8, timing="roofline")
    assert isinstance(roof, RooflineTiming) and roof.name.startswith("roofline")
    other = select_timing(model=get_model("llama3-8b"), gpu=get_gpu("a100-80g"), tp=1)
    assert isinstance(other, RooflineTiming)
    assert "no measured profile for llama3-8b a100-80g tp1" in other.name
    small = select_timing(model=get_model("llama3-8b"), gpu=g, tp=1)
    assert isinstance(small, ProfileTiming)
    assert small.name == ("profile (decode): alcf-inference-bench llama3-8b h100-sxm tp1 + "
                          "roofline (prefill)")  # fmt: skip
    # fp8 weights are not what was measured: roofline
    assert isinstance(select_timing(model=m, gpu=g, tp=8, weight_dtype="fp8"), RooflineTiming)
    # sizes come from the model arithmetic either way
    assert auto.kv_bytes_per_token == roof.kv_bytes_per_token == 80 * 2 * 8 * 128 * 2
    assert auto.tp_allreduce_bytes(100) == roof.tp_allreduce_bytes(100)


def test_unknown_deployment_with_profile_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="no measured serving profile"):
        select_timing(model=get_model("llama3-8b"), gpu=get_gpu("a100-80g"), tp=1,
                      timing="profile")  # fmt: skip


def test_serve_and_timing_cli_say_which_model_answered(capsys: pytest.CaptureFixture[str]) -> None:
    import json

    from aifabric.cli import main

    assert main(["simulate", "serve", "--set", "model=llama2-70b", "--set", "gpu=h100-sxm",
                 "--set", "cluster.tp=8", "--set", "workload.num_requests=30", "--json"]) == 0  # fmt: skip
    out = json.loads(capsys.readouterr().out)
    assert out["scenario"]["timing_model"] == "profile: splitwise-sim llama2-70b h100-sxm tp8"
    # measured 30-50 ms per token at batch 1..64 (SplitwiseSim H100 TP8)
    assert 0.029 < out["tbt_s"]["p50"] < 0.051
    assert main(["timing", "--tp", "8", "--batch", "1", "--context", "575", "--json"]) == 0
    t = json.loads(capsys.readouterr().out)
    assert t["decode_iteration_s"] == pytest.approx(0.029762, rel=1e-3)  # table, batch 1
    assert main(["timing", "--model", "llama3-8b", "--tp", "1", "--timing", "profile",
                 "--json"]) == 0  # fmt: skip
    t = json.loads(capsys.readouterr().out)
    assert t["timing_model"].startswith("profile (decode): alcf-inference-bench llama3-8b")
    assert t["decode_iteration_s"] == pytest.approx(0.0078897, rel=0.02)  # batch 1, 1,024 ctx
    assert main(["timing", "--model", "llama3-8b", "--gpu", "a100-80g", "--tp", "1",
                 "--timing", "profile", "--json"]) == 2  # fmt: skip
    assert main(["timing", "--batch", "0"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") <= 2 and "--batch" in err


def test_llama3_70b_borrows_llama2_70b_tables_scaled_by_its_weights() -> None:
    """siblings.yaml: Llama-3-70B (no table) is timed from Llama-2-70B's, prefill scaled by
    F(0) = 2 x matmul weights and the decode's fixed part by the same weights ratio; the
    bodies are equal, so the only difference is the 128,256- vs 32,000-token LM head:
    8192 x (128,256 - 32,000) = 788.5M more matmul weights on 68.98B (+1.1 %)."""
    from aifabric.catalog import get_gpu, get_model
    from aifabric.serving.profile import select_timing, sibling_scales

    l3, l2 = get_model("llama3-70b"), get_model("llama2-70b")
    pre, dec = sibling_scales(l3, "llama2-70b")  # type: ignore[misc]
    extra = 8192 * (128256 - 32000)
    assert dec == pytest.approx((l2.matmul_params_per_token() + extra)
                                / l2.matmul_params_per_token(), rel=1e-9)  # fmt: skip
    assert 1.0 < pre < 1.02 and 1.0 < dec < 1.02
    gpu = get_gpu("h100-sxm")
    t3 = select_timing(model=l3, gpu=gpu, tp=8)
    t2 = select_timing(model=l2, gpu=gpu, tp=8)
    assert t3.name.endswith("scaled to llama3-70b")
    assert t3.prefill_time(2048) == pytest.approx(t2.prefill_time(2048) * pre, rel=0.01)
    assert (
        t2.decode_step_time(8, 8192)
        < t3.decode_step_time(8, 8192)
        < 1.02 * t2.decode_step_time(8, 8192)
    )
    assert sibling_scales(get_model("llama3-8b"), "llama2-70b") is None  # not a sibling


@settings(max_examples=300, deadline=None)
@given(x=st.floats(0.0, 1e6, allow_nan=False), which=st.integers(0, 11), log=st.booleans())
def test_curve_scalar_path_equals_the_array_path(x: float, which: int, log: bool) -> None:
    """_Curve.scalar (plain floats, the simulator's hot path) equals _Curve.__call__ (NumPy)
    everywhere: below the first point, inside, above the last, for both interpolations."""
    from aifabric.serving.profile import _Curve

    prof = SPLITWISE[which % len(SPLITWISE)]
    pts = np.array(prof.prefill if log else prof.decode, dtype=np.float64)
    curve = _Curve(pts[:, 0], pts[:, 1], log=log, floor=float(prof.decode[0][1]) if log else None)
    assert curve.scalar(x) == pytest.approx(float(curve(x)), rel=1e-12)


@pytest.mark.parametrize("p", ALCF, ids=lambda p: p.label)
def test_decode_only_table_reproduces_the_measured_grid(p: object) -> None:
    """LLM-Inference-Bench (vLLM, Llama-3-8B, H100): the table holds the batch sweep at
    context 1,535.5 only; the 16 runs at the other four contexts (191.5..3,071.5 per
    sequence, 16x apart) come from it plus the roofline's KV-read term, and the interior
    batches (16, 32) held out are interpolated from their neighbours: every point within
    15 %."""
    t = _profile(p)
    for b, ctx, measured in p.decode_points:  # type: ignore[attr-defined]
        assert t.decode_step_time(int(b), b * ctx) == pytest.approx(measured, rel=0.15)
    pts = p.decode  # type: ignore[attr-defined]
    for i in range(1, len(pts) - 1):
        held = _profile(replace(p, decode=pts[:i] + pts[i + 1 :]))  # type: ignore[type-var]
        b, measured = pts[i]
        got = held.decode_step_time(int(b), b * p.decode_context)  # type: ignore[attr-defined]
        assert got == pytest.approx(measured, rel=0.15)


def test_decode_only_table_takes_prefill_from_the_roofline() -> None:
    """With no prefill curve the prefill side is the roofline's, exactly: a prefill alone,
    and a mixed iteration (max of the table's decode and the roofline's whole iteration)."""
    p = find_serving_profile("llama3-8b", "h100-sxm", 1, "bf16")
    t = _profile(p)
    r = t.roofline
    for n in (1.0, 128.0, 4096.0, 60000.0):
        assert t.prefill_time(n) == pytest.approx(r.prefill_time(n), rel=1e-12)
        assert t.prefill_time(n + 500.0, 500.0) == pytest.approx(r.prefill_time(n + 500, 500))
    b, c, n = 16, 16 * 1000.0, 2048.0
    mixed = t.iteration_time(prefill_flops=t.prefill_flops(n), prefill_tokens=n,
                             decode_batch=b, decode_context=c)  # fmt: skip
    expect = max(
        t.decode_step_time(b, c),
        r.iteration_time(
            prefill_flops=r.prefill_flops(n), prefill_tokens=n, decode_batch=b, decode_context=c
        ),
    )
    assert mixed == pytest.approx(expect, rel=1e-12)


def test_alcf_decode_point_is_the_published_latency_minus_the_published_ttft() -> None:
    """At batch 16 and 1,024 tokens the prefill estimate is the measured TTFT itself
    (all_results_TTFT_ITL.csv: 0.42567 s; All_results.csv end-to-end 11.02469 s, vLLM,
    Llama-3-8B, one H100), so the table's point is (11.02469 - 0.42567) / 1,023 steps =
    10.361 ms at context 1,024 + 1,023 / 2, independent of any FLOP scaling."""
    p = find_serving_profile("llama3-8b", "h100-sxm", 1, "fp16")
    assert p.source == "alcf-inference-bench"
    expect = (11.024687729899984 - 0.42566500790417194) / 1023
    assert dict(p.decode)[16.0] == pytest.approx(expect, rel=1e-4)
    assert p.decode_context == 1535.5
