"""The training-step simulator: kernel-model arithmetic, invariants, CLI."""

from __future__ import annotations

import json
import math
from dataclasses import replace
from pathlib import Path

import pytest

from aifabric.catalog import get_compute_calibration, get_gpu, get_model
from aifabric.spec.jobs import TrainingJob
from aifabric.spec.parallel import ParallelPlan
from aifabric.training.kernels import ComputeCalibration, KernelModel
from aifabric.training.step import StepOptions, simulate_step

from .cli_helpers import run_error, run_json

CAL = ComputeCalibration(
    name="test", num_sms=132, gemm_peak_efficiency=0.8,
    gemm_tiles=((256, 128, 1.0), (128, 128, 0.9), (64, 128, 0.75), (64, 64, 0.55)),
    gemm_k_overhead=64, hbm_efficiency=0.9, attention_forward_efficiency=0.6,
    attention_backward_efficiency=0.45, overlap_compute_slowdown=0.05,
)  # fmt: skip


def test_gemm_wave_quantization_by_hand() -> None:
    """m = 256, n = 128 x 133 on 132 SMs. 256x128 tiles: 133 tiles, 2 waves, 133/264 =
    0.5038. 128x128: 266 tiles, 3 waves, 266/396 x 0.9 = 0.6045. 64x128: 532 tiles, 5 waves,
    532/660 x 0.75 = 0.6045. 64x64: 1064 tiles, 9 waves, 1064/1188 x 0.55 = 0.4926. Best
    0.60455, times peak 0.8 and k / (k + 64) at k = 4096."""
    ks = KernelModel(get_gpu("h100-sxm"), CAL)
    expected = 0.8 * (266 / 396 * 0.9) * 4096 / (4096 + 64)
    assert ks.gemm_efficiency(256, 128 * 133, 4096) == pytest.approx(expected, rel=1e-12)
    # A memory-bound GEMM (a matrix-vector product) runs at HBM speed.
    t = ks.gemm(1, 8192, 8192)
    assert t == pytest.approx((8192 + 8192 * 8192 + 8192) * 2 / (3.35e12 * 0.9), rel=1e-9)


def _job(**plan: int | bool) -> TrainingJob:
    args = {"tp": 1, "pp": 1, "dp": 1, **plan}
    gb = int(plan.pop("global_batch", 0)) if "global_batch" in plan else 0
    args.pop("global_batch", None)
    p = ParallelPlan(**args)  # type: ignore[arg-type]
    return TrainingJob(model=get_model("llama3-8b"), plan=p, gpu=get_gpu("h100-sxm"),
                       seq_len=4096, global_batch=gb or p.dp * 8)  # fmt: skip


def test_without_communication_the_step_is_its_compute() -> None:
    """One GPU: no collective, no bubble; the step is forward + backward of every
    micro-batch plus the optimizer step, exactly."""
    r = simulate_step(_job(), StepOptions(network="analytic"))
    assert r["exposed_comm_s"] == {} and r["comm_s"] == {}
    assert r["bubble_fraction"] == pytest.approx(0.0, abs=1e-12)
    assert r["iteration_time_s"] == pytest.approx(r["compute_s"], rel=1e-12)
    assert 0 < r["mfu"] < 1


@pytest.mark.parametrize("network", ["analytic", "flow"])
def test_more_scale_out_bandwidth_never_slows_a_step(network: str) -> None:
    job = _job(tp=8, dp=4, zero=1, sequence_parallel=True)
    times = [simulate_step(job, StepOptions(network=network, fabric={"nic": nic}))["iteration_time_s"]
             for nic in ("100G", "200G", "400G")]  # fmt: skip
    assert times == sorted(times, reverse=True)
    assert times[0] > times[-1]


def test_more_microbatches_shrink_the_bubble_toward_1f1b() -> None:
    """Equal stages and cheap transfers: the bubble approaches (p - 1) / (m + p - 1); the
    embedding and LM head make the end stages a little heavier, so it stays near it."""
    p = 4
    bubbles = []
    for m in (4, 16, 64):
        r = simulate_step(_job(pp=p, global_batch=m), StepOptions(network="analytic"))
        bubbles.append(r["bubble_fraction"])
        assert r["bubble_fraction"] == pytest.approx((p - 1) / (m + p - 1), abs=0.06)
    assert bubbles == sorted(bubbles, reverse=True)


def test_a_straggler_never_speeds_a_step() -> None:
    job = _job(tp=2, pp=2, dp=2)
    base = simulate_step(job, StepOptions(network="analytic"))["iteration_time_s"]
    for opts in (StepOptions(network="analytic", slow_gpus=((3, 1.3),)),
                 StepOptions(network="analytic", jitter=0.05, seed=1),
                 StepOptions(network="analytic", slow_nodes=((0, 1.1),))):  # fmt: skip
        r = simulate_step(job, opts)
        assert r["iteration_time_s"] >= base
        assert all(v >= 0 for v in r["straggler_cost_s"].values())
    # A GPU twice as slow on a one-stage job doubles its passes (all on the critical path).
    one = _job(dp=2)
    a = simulate_step(one, StepOptions(network="analytic"))
    b = simulate_step(one, StepOptions(network="analytic", slow_gpus=((1, 2.0),)))
    passes = a["compute_s"] - a["optimizer_s"]
    assert b["iteration_time_s"] - a["iteration_time_s"] == pytest.approx(passes, rel=1e-6)


def test_jitter_is_deterministic_per_seed() -> None:
    job = _job(tp=2, dp=4)
    a, b, c = (simulate_step(job, StepOptions(network="analytic", jitter=0.1, seed=s))
               for s in (7, 7, 8))  # fmt: skip
    assert a["iteration_time_s"] == b["iteration_time_s"] != c["iteration_time_s"]


def test_recompute_raises_hfu_not_mfu_flops() -> None:
    job = _job(tp=2, dp=2)
    none = simulate_step(job, StepOptions(network="analytic"))
    full = simulate_step(replace(job, recompute="full"), StepOptions(network="analytic"))
    assert full["model_flop"] == none["model_flop"]
    assert none["hfu"] == pytest.approx(none["mfu"], rel=1e-12)  # nothing rerun
    assert full["iteration_time_s"] > none["iteration_time_s"]
    assert full["hfu"] / full["mfu"] == pytest.approx(4 / 3, rel=0.1)  # one more forward


def test_cli_json_trace_and_errors(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    trace = tmp_path / "step.json"
    r = run_json(capsys, "simulate", "train", "--model", "llama3-8b", "--tp", "8", "--pp", "2",
                 "--dp", "2", "--seq-len", "4096", "--global-batch", "16", "--zero", "1",
                 "--trace", str(trace), "--json")  # fmt: skip
    assert r["network"] == "flow" and r["gpus"] == 32
    events = json.loads(trace.read_text())["traceEvents"]
    slices = [e for e in events if e["ph"] == "X" and e["cat"] == "compute" and e["tid"] == 0]
    assert len([e for e in slices if e["name"].startswith("forward")]) == 16 // 2
    assert math.isclose(json.loads(trace.read_text())["otherData"]["iteration_time_s"],
                        r["iteration_time_s"])  # fmt: skip
    msg = run_error(capsys, "simulate", "train", "--model", "llama3-405b", "--tp", "8",
                    "--require-fit", "--global-batch", "8")  # fmt: skip
    assert "GiB per GPU" in msg
    msg = run_error(capsys, "simulate", "train", "--model", "llama3-8b", "--network", "packet")
    assert "network" in msg


def test_calibration_falls_back_to_default_and_says_so() -> None:
    assert get_compute_calibration("mi300x").name.startswith("default (no calibration for")


def test_timeline_svg_draws_every_pass() -> None:
    """p stages x m micro-batches x (forward + backward) rectangles, plus two per stage
    (exposed DP reduce and optimizer step)."""
    from aifabric.training.step import simulate_step_detail
    from aifabric.training.trace import timeline_svg

    _, sim = simulate_step_detail(_job(pp=4, global_batch=8), StepOptions(network="analytic"))
    svg = timeline_svg(sim, title="t")
    assert svg.count("<rect") == 4 * 8 * 2 + 4 * 2
    assert svg.startswith("<svg") and svg.endswith("</svg>")
