"""Resource guards (issue 9 item 4): runs that would take minutes or gigabytes are refused
up front, in well under a second, with the estimate and the --max-work value that lifts
the limit; small runs' estimates are close to what the simulator counts."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from aifabric.errors import ConfigError
from aifabric.fabric.plan import estimated_links, fabric_spec, plan_fabric
from aifabric.guards import MAX_SERVE_EVENTS, WorkLimitError, check_work, limit_for
from aifabric.serving.cluster import ServingSimulation
from aifabric.serving.config import load_serve_scenario
from aifabric.serving.estimate import serving_estimates, synthetic_figures
from aifabric.spec.scenario import TRAIN_KEYS, merge_options, training_job
from aifabric.traffic.training import training_traffic
from tests.cli_helpers import run_error

ROOT = Path(__file__).resolve().parents[1]
POISSON = ROOT / "examples/serve/poisson-colocated.yaml"


def _serve(*sets: str) -> object:
    return load_serve_scenario(POISSON, list(sets))


@pytest.mark.parametrize(
    ("key", "what"),
    [
        ("metrics.sample_interval_s=0.00001", "time-series samples"),
        ("compute.prefill_mfu=1e-9", "time-series samples"),
        ("workload.num_requests=10000000", "events"),
    ],
)
def test_serving_refused_quickly(key: str, what: str) -> None:
    """Each pathological override is refused before any workload is drawn (< 1 s)."""
    start = time.perf_counter()
    with pytest.raises(WorkLimitError, match=rf"simulate serve: ~\S+ {what} estimated .*"
                       r"pass --max-work \S+ to run it anyway"):  # fmt: skip
        ServingSimulation(_serve(key))
    assert time.perf_counter() - start < 1.0


def test_prefill_mfu_estimate_matches_the_closed_form() -> None:
    """prefill_mfu=1e-9 on 4 instances: each of 20,000 requests needs at least
    prefill_time(mean prompt 1,024) ~ 1.6e7 s (8B model: ~1.6e10 FLOP a token x 1,024
    tokens / (989e12 x 1e-9)), so the run lasts >= 20,000 x that / 4 ~ 8e10 s."""
    with pytest.raises(WorkLimitError, match=r"~(7\.\d|8\.\d)e10 time-series samples"):
        ServingSimulation(_serve("compute.prefill_mfu=1e-9"))


def test_work_limit_error_is_a_config_error() -> None:
    """The CLI prints ConfigErrors as one line with exit status 2."""
    assert issubclass(WorkLimitError, ConfigError)


def test_small_run_estimates_close_to_the_count() -> None:
    """Estimated events within 2x of the simulator's counted events, and the simulated-time
    lower bound within 2x of the clock at the end (a light load: arrival-span dominated)."""
    sc = _serve("workload.num_requests=2000")
    sim = ServingSimulation(sc)
    est = serving_estimates(sc, sim.entry[0].timing, None, **synthetic_figures(sc))
    result = sim.run()
    assert result["events"] / 2 <= est["events"] <= 2 * result["events"]
    assert est["simulated_s"] <= result["simulated_s"] * 1.05
    assert est["simulated_s"] >= result["simulated_s"] / 2


def test_max_work_lifts_the_serving_limit() -> None:
    """1e-5 s samples over ~100 s of 2,000 requests: ~1e7 samples; a limit of 1e6 refuses,
    max_work=2e7 runs it."""
    sc = _serve("workload.num_requests=2000", "metrics.sample_interval_s=0.00001")
    with pytest.raises(WorkLimitError, match="pass --max-work 1e7"):
        ServingSimulation(sc, max_work=1e6)
    assert ServingSimulation(sc, max_work=2e7).run()["requests"] == 2000


def test_benchmark_and_examples_under_the_default_limits() -> None:
    """bench_serving.py's 1,000,000 requests (160 req/s, 32 instances) estimate 4e6 events
    and ~6,250 samples: under the defaults, so the benchmark needs no max_work."""
    sc = _serve("workload.num_requests=1000000", "workload.rate_rps=160",
                "cluster.instances=32")  # fmt: skip
    small = ServingSimulation(_serve("workload.num_requests=1"))
    est = serving_estimates(sc, small.entry[0].timing, None, **synthetic_figures(sc))
    assert est["events"] == 4e6 <= MAX_SERVE_EVENTS
    assert est["samples"] < 1e5


def _job(**options: object) -> object:
    return training_job(merge_options(TRAIN_KEYS, {}, {"model": "llama3-8b", **options}))


def test_training_refused_quickly() -> None:
    """tp 8 x pp 16 x dp 1,048,576 = 134,217,728 ranks x (2 x 3 dims) rows = 8.05e8."""
    job = _job(dp=1048576, global_batch=1048576, tp=8, pp=16)
    start = time.perf_counter()
    with pytest.raises(WorkLimitError, match=r"traffic train: ~8\.1e8 rank-rows .*"
                       r"134,217,728 ranks x 6 traffic rows.*--max-work 8\.1e8"):  # fmt: skip
        training_traffic(job)
    assert time.perf_counter() - start < 1.0
    with pytest.raises(WorkLimitError, match="rank-rows"):
        training_traffic(_job(dp=1024, global_batch=1024, tp=8), max_work=1e3)


def test_training_rows_estimate_close() -> None:
    """The rank-rows estimate's row count is within 2x of the rows built."""
    for options in ({"dp": 4}, {"dp": 4, "tp": 8}, {"dp": 4, "tp": 8, "pp": 4}):
        job = _job(global_batch=1024, **options)
        rows = len(training_traffic(job).rows)
        dims = sum(1 for v in options.values() if v > 1)
        assert rows / 2 <= max(2, 2 * dims) <= 2 * rows


def test_plan_refused_quickly_and_lifted() -> None:
    """1e8 GPUs, 8 NICs per 8-GPU node, 3 tiers: 3e8 links, above 5e7."""
    start = time.perf_counter()
    with pytest.raises(WorkLimitError, match=r"plan: ~3e8 links .*--max-work 3e8"):
        plan_fabric({"gpus": 100_000_000})
    assert time.perf_counter() - start < 1.0
    with pytest.raises(WorkLimitError, match="links"):
        plan_fabric({"gpus": 1024}, max_work=100)
    result, _, _ = plan_fabric({"gpus": 1024}, max_work=1e4)
    assert result["gpus"] == 1024


def test_plan_links_estimate_close() -> None:
    """Estimated links within 2x (here 1 %) of the built fabric's 30,000-GPU links."""
    spec, _, _ = fabric_spec({"gpus": 30000})
    _, topo, _ = plan_fabric({"gpus": 30000})
    built = topo.link_src.shape[0]
    assert built / 2 <= estimated_links(spec) <= 2 * built


def test_check_work_and_limits() -> None:
    check_work("x", 10, 10, "events")
    with pytest.raises(WorkLimitError, match=r"x: ~11 events estimated \(b\), above the limit "
                       r"10; pass --max-work 11 to run it anyway"):  # fmt: skip
        check_work("x", 11, 10, "events", basis="b")
    with pytest.raises(WorkLimitError, match="cannot run"):
        check_work("x", float("inf"), 10, "events")
    assert limit_for(5.0, None) == 5.0
    assert limit_for(5.0, 7) == 7.0
    for bad in (0, -1, float("nan"), float("inf"), True):
        with pytest.raises(ConfigError, match="max_work"):
            limit_for(5.0, bad)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "argv",
    [
        ["simulate", "serve", "-f", str(POISSON), "--set", "compute.prefill_mfu=1e-9"],
        ["simulate", "serve", "-f", str(POISSON), "--set", "workload.num_requests=10000000"],
        ["simulate", "serve", "-f", str(POISSON), "--set", "metrics.sample_interval_s=1e-5"],
        ["plan", "--gpus", "100000000"],
        ["traffic", "train", "--model", "llama3-8b", "--dp", "1048576", "--global-batch",
         "1048576", "--tp", "8", "--pp", "16"],
    ],
)  # fmt: skip
def test_cli_refuses_in_one_line(capsys: pytest.CaptureFixture[str], argv: list[str]) -> None:
    start = time.perf_counter()
    message = run_error(capsys, *argv)
    assert time.perf_counter() - start < 1.0
    assert "estimated" in message and "--max-work" in message


def test_cli_max_work_flag_lifts_and_validates(capsys) -> None:
    """--max-work on plan, traffic train and simulate serve reaches the guard: a value
    above the estimate lets the run through, a non-positive or NaN one is refused."""
    from tests.cli_helpers import run_json

    assert "--max-work" in run_error(capsys, "plan", "--gpus", "100000000")
    assert run_json(capsys, "plan", "--gpus", "64", "--max-work", "1e6", "--json")
    for argv in (
        ["plan", "--gpus", "64", "--max-work", "-1"],
        ["traffic", "train", "--model", "llama3-8b", "--max-work", "0"],
        ["simulate", "serve", "--max-work", "nan"],
    ):
        assert "max_work" in run_error(capsys, *argv).replace("-", "_")
