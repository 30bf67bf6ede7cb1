"""``aifabric simulate serve``: JSON contract, seeds and overrides, one-line errors, CSV output."""

from __future__ import annotations

import csv
import itertools
import math
from pathlib import Path

import pytest

from aifabric.cli import main
from aifabric.serving.config import load_serve_scenario

from .cli_helpers import run_error, run_json

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples" / "serve"

SMALL = """\
seed: 3
model: llama3-8b
gpu: h100-sxm
workload:
  source: synthetic
  rate_rps: 20
  num_requests: 300
  input_tokens: {kind: lognormal, mean: 512, cv: 1.0, maximum: 4096}
  output_tokens: {kind: lognormal, mean: 64, cv: 1.0, maximum: 512}
cluster: {mode: colocated, instances: 2, tp: 1}
metrics: {sample_interval_s: 0.5}
"""

PCTS = ("p50", "p95", "p99")


@pytest.fixture
def scenario(tmp_path: Path) -> Path:
    path = tmp_path / "small.yaml"
    path.write_text(SMALL, encoding="utf-8")
    return path


@pytest.fixture
def base(capsys, scenario: Path) -> dict:
    return run_json(capsys, "simulate", "serve", "-f", str(scenario), "--json")


def _serve(capsys, scenario: Path, *extra: str) -> dict:
    return run_json(capsys, "simulate", "serve", "-f", str(scenario), *extra, "--json")


def _serve_error(capsys, scenario: Path, *extra: str) -> str:
    line = run_error(capsys, "simulate", "serve", "-f", str(scenario), *extra, "--json")
    assert "Traceback" not in line
    return line


# ----- JSON contract ---------------------------------------------------------------------------
def test_json_contract(base):
    d = base
    for key in ("requests", "completed", "rejected"):
        assert isinstance(d[key], int)
    assert d["requests"] == 300
    assert d["completed"] + d["rejected"] + d["in_flight_at_end"] == d["requests"]
    for key in ("ttft_s", "tbt_s", "e2e_s"):
        for p in PCTS:
            assert isinstance(d[key][p], float) and d[key][p] > 0
        assert d[key]["p50"] <= d[key]["p95"] <= d[key]["p99"]
    assert set(d["tiers"]) == {"gold", "silver", "bronze"}
    assert sum(t["requests"] for t in d["tiers"].values()) == d["requests"]
    for tier in d["tiers"].values():
        assert {"requests", "slo_attainment", "ttft_s", "tbt_s"} <= set(tier)
        assert 0.0 <= tier["slo_attainment"] <= 1.0
        for p in PCTS:
            assert tier["ttft_s"][p] > 0 and tier["tbt_s"][p] > 0
    thr = d["throughput"]
    assert thr["requests_per_s"] == pytest.approx(d["completed"] / d["simulated_s"])
    assert thr["output_tokens_per_s"] > thr["requests_per_s"]
    assert 0 <= d["goodput_requests_per_s"] <= thr["requests_per_s"] * (1 + 1e-12)
    assert 0.0 <= d["kv_cache"]["hit_ratio"] <= 1.0
    assert {"kv_transfer", "prefix_fetch", "tp_allreduce"} <= set(d["network_bytes"])
    # Colocated, TP1, no KV store: nothing moves over the network.
    assert d["network_bytes"]["kv_transfer"] == 0
    assert d["network_bytes"]["prefix_fetch"] == 0
    assert d["network_bytes"]["tp_allreduce"] == 0
    assert d["simulated_s"] > 0
    assert d["wall_s"] >= 0
    # e2e >= ttft for every percentile of a distribution of per-request e2e >= ttft
    assert d["e2e_s"]["p99"] >= d["ttft_s"]["p50"]


def test_json_is_one_object(capsys, scenario):
    import json

    assert main(["simulate", "serve", "-f", str(scenario), "--json"]) == 0
    out, err = capsys.readouterr()
    assert err == ""
    assert isinstance(json.loads(out), dict)  # exactly one JSON document on stdout


def test_table_output_runs(capsys, scenario):
    assert main(["simulate", "serve", "-f", str(scenario), "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert "llama3-8b" in out and "gold" in out


# ----- seed and overrides ----------------------------------------------------------------------
def _strip_wall(d: dict) -> dict:
    d = dict(d)
    d.pop("wall_s")
    return d


def test_same_seed_same_result(capsys, scenario):
    a = _serve(capsys, scenario, "--seed", "11")
    b = _serve(capsys, scenario, "--seed", "11")
    assert a["scenario"]["seed"] == 11
    assert _strip_wall(a) == _strip_wall(b)


def test_seed_changes_result(capsys, scenario, base):
    other = _serve(capsys, scenario, "--seed", "12")
    assert other["scenario"]["seed"] == 12
    assert base["scenario"]["seed"] == 3
    assert other["ttft_s"] != base["ttft_s"]


def test_set_rate_takes_effect(capsys, scenario, base):
    slow = _serve(capsys, scenario, "--set", "workload.rate_rps=2")
    # 300 Poisson arrivals at 2/s span about 150 s; at 20/s about 15 s.
    assert slow["simulated_s"] > 100
    assert base["simulated_s"] < 40
    assert slow["throughput"]["requests_per_s"] < base["throughput"]["requests_per_s"]


def test_set_batching_policy(capsys, scenario, base):
    assert base["scenario"]["batching"] == "continuous"
    d = _serve(capsys, scenario, "--set", "batching.policy=static")
    assert d["scenario"]["batching"] == "static"
    assert _strip_wall(d) != _strip_wall(base) | {"scenario": d["scenario"]}


def test_set_kv_store_enabled(capsys, scenario, base):
    assert base["scenario"]["kv_store"] is False
    d = _serve(capsys, scenario, "--set", "kv_store.enabled=true",
               "--set", "workload.system_prompt_tokens=2048")  # fmt: skip
    assert d["scenario"]["kv_store"] is True
    assert d["network_bytes"]["prefix_store"] > 0  # prompts' blocks written to the pool
    assert d["kv_cache"]["hit_ratio"] > 0  # the shared system prompt is reused


def test_set_tp_gives_allreduce_bytes(capsys, scenario):
    d = _serve(capsys, scenario, "--set", "cluster.tp=2")
    assert d["network_bytes"]["tp_allreduce"] > 0


def test_set_routing_policy(capsys, scenario):
    d = _serve(capsys, scenario, "--set", "routing.policy=least_loaded")
    assert d["scenario"]["routing"] == "least_loaded"


# ----- errors ----------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("override", "key"),
    [
        ("workload.rate=3", "workload.rate"),
        ("workload.rate_rps=abc", "workload.rate_rps"),
        ("workload.rate_rps=-1", "workload.rate_rps"),
        ("batching.policy=fancy", "batching.policy"),
        ("cluster.tp=0", "cluster.tp"),
        ("routing.policy=fancy", "routing.policy"),
        ("workload.source=trace", "workload"),
    ],
)
def test_bad_override_names_key(capsys, scenario, override, key):
    line = _serve_error(capsys, scenario, "--set", override)
    assert key in line


def test_unknown_key_says_unknown(capsys, scenario):
    line = _serve_error(capsys, scenario, "--set", "workload.rate=3")
    assert "unknown" in line and "'workload.rate'" in line


def test_bad_enum_lists_choices(capsys, scenario):
    line = _serve_error(capsys, scenario, "--set", "batching.policy=fancy")
    assert "static" in line and "fancy" in line


def test_impossible_capacity_names_tp(capsys, scenario):
    line = _serve_error(capsys, scenario, "--set", "model=llama3-70b", "--set", "cluster.tp=1")
    assert "cluster.tp" in line
    assert "llama3-70b" in line


def test_malformed_set(capsys, scenario):
    line = _serve_error(capsys, scenario, "--set", "noequals")
    assert "noequals" in line and "dotted.key=value" in line


def test_missing_trace_file(capsys, scenario, tmp_path):
    missing = tmp_path / "nope.jsonl"
    line = _serve_error(capsys, scenario, "--set", "workload.source=trace",
                        "--set", f"workload.trace={missing}")  # fmt: skip
    assert "nope.jsonl" in line


def test_missing_scenario_file(capsys, tmp_path):
    line = run_error(capsys, "simulate", "serve", "-f", str(tmp_path / "absent.yaml"), "--json")
    assert "absent.yaml" in line
    assert "Traceback" not in line


def test_errors_print_no_traceback(capsys, scenario):
    code = main(["simulate", "serve", "-f", str(scenario), "--set", "batching.policy=fancy"])
    out, err = capsys.readouterr()
    assert code == 2
    assert "Traceback" not in out + err


# ----- CSV outputs -----------------------------------------------------------------------------
def _rows(path: Path) -> tuple[list[str], list[list[str]]]:
    with path.open(newline="", encoding="utf-8") as f:
        rows = list(csv.reader(f))
    return rows[0], rows[1:]


def test_timeseries_and_requests_csv(capsys, scenario, tmp_path):
    ts = tmp_path / "queue.csv"
    reqs = tmp_path / "requests.csv"
    d = _serve(capsys, scenario, "--timeseries", str(ts), "--requests", str(reqs))
    header, rows = _rows(ts)
    assert header == ["t_s", "queue_depth", "mean_wait_s"]
    interval = 0.5
    times = [float(r[0]) for r in rows]
    assert times[0] == 0.0
    for a, b in itertools.pairwise(times):
        assert b - a == pytest.approx(interval, rel=1e-5)
    end = d["simulated_s"]
    assert len(rows) == math.floor(end / interval + 0.5) + 1
    assert times[-1] == pytest.approx(end, abs=interval / 2 + 1e-6)
    depths = [int(r[1]) for r in rows]
    assert all(x >= 0 for x in depths)
    assert max(depths) <= d["queue_depth"]["max"]
    # mean queue wait of the requests arriving in each interval: non-negative, bounded
    waits = [float(r[2]) for r in rows if r[2]]
    assert waits and all(w >= 0 for w in waits)
    assert max(waits) <= d["queue_wait_s"]["p99"] * 10 + 1.0

    header, rows = _rows(reqs)
    assert {"id", "tier", "arrival", "ttft", "tbt", "e2e", "prompt", "output"} <= set(header)
    assert len(rows) == d["completed"]
    assert all(len(r) == len(header) for r in rows)
    col = {name: i for i, name in enumerate(header)}
    assert {r[col["tier"]] for r in rows} <= {"gold", "silver", "bronze"}
    assert len({r[col["id"]] for r in rows}) == len(rows)
    for r in rows:
        assert float(r[col["e2e"]]) >= float(r[col["ttft"]]) > 0
    # The file agrees with the JSON summary.
    output_tokens = sum(int(float(r[col["output"]])) for r in rows)
    assert output_tokens / d["simulated_s"] == pytest.approx(d["throughput"]["output_tokens_per_s"])


@pytest.mark.parametrize("flag", ["--timeseries", "--requests"])
def test_csv_into_missing_folder_is_an_error(capsys, scenario, tmp_path, flag):
    target = tmp_path / "no" / "such" / "dir" / "out.csv"
    line = _serve_error(capsys, scenario, flag, str(target))
    assert "does not exist" in line
    assert not target.exists()
    assert not target.parent.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["small.yaml"]


# ----- trace stats and shipped examples --------------------------------------------------------
def test_trace_stats_mooncake_conversation(capsys):
    path = ROOT / "traces" / "mooncake_conversation_trace.jsonl"
    d = run_json(capsys, "trace", "stats", str(path), "--json")
    assert d["requests"] == 12031


def test_shipped_examples_parse(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)  # relative trace paths resolve against the file's folder
    files = sorted(EXAMPLES.glob("*.yaml"))
    assert {f.name for f in files} >= {"poisson-colocated.yaml", "mooncake-conversation-pd.yaml"}
    for f in files:
        sc = load_serve_scenario(f)
        if sc.workload.source == "trace":
            assert sc.workload.trace is not None
            assert Path(sc.workload.trace).is_file()
    pd = load_serve_scenario(EXAMPLES / "mooncake-conversation-pd.yaml")
    assert pd.cluster.mode == "disaggregated"
    assert pd.network.nic_bandwidth == pytest.approx(400e9 / 8)
    assert pd.kv_store.enabled
    pc = load_serve_scenario(EXAMPLES / "poisson-colocated.yaml", ["workload.num_requests=500"])
    assert pc.workload.num_requests == 500
    assert pc.routing.policy == "least_loaded"


def test_poisson_colocated_example_runs(capsys):
    d = run_json(capsys, "simulate", "serve", "-f", str(EXAMPLES / "poisson-colocated.yaml"),
                 "--set", "workload.num_requests=500", "--json")  # fmt: skip
    assert d["requests"] == 500
    assert d["completed"] == 500
    assert d["scenario"]["instances"] == {"colocated": 4}
    assert d["scenario"]["routing"] == "least_loaded"
    assert d["scenario"]["seed"] == 7
    # 500 arrivals at 20/s take about 25 s.
    assert 15 < d["simulated_s"] < 60


def test_progress_bar_runs_and_reports_through_the_callback(capsys, scenario):
    """--progress draws a Rich bar on stderr and still prints the tables; the simulation
    reports progress up to the number of requests."""
    from aifabric.cli import main
    from aifabric.serving.cluster import ServingSimulation
    from aifabric.serving.config import load_serve_scenario

    assert main(["simulate", "serve", "-f", str(scenario), "--progress"]) == 0
    out, _ = capsys.readouterr()
    assert "SLO tiers" in out
    seen: list[tuple[int, int]] = []
    sim = ServingSimulation(
        load_serve_scenario(scenario), progress=lambda d, t: seen.append((d, t))
    )
    sim.run()
    assert seen and all(t == sim.workload.total for _, t in seen)
    assert [d for d, _ in seen] == sorted(d for d, _ in seen)
    assert seen[-1][0] <= sim.workload.total
