"""``aifabric sweep`` and ``aifabric results``: expansion, constraints, store, resume, Pareto.

Truth here is written by hand (the points a grid, zip, range or sample must give, in
itertools.product order), the command itself (a stored row holds what ``aifabric COMMAND
-f`` prints for that scenario), the definition of Pareto dominance checked by brute force,
and invariance (an interrupted-then-resumed sweep, or one on two workers, stores exactly the
rows of an uninterrupted one-worker run).
"""

from __future__ import annotations

import itertools
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import duckdb
import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st

from aifabric.errors import ConfigError
from aifabric.explore.expr import EvaluationError, parse_expression
from aifabric.explore.pareto import pareto_mask
from aifabric.explore.runners import run_command
from aifabric.explore.sweep import parse_sweep, point_hash

from .cli_helpers import run_error, run_json

ROOT = Path(__file__).resolve().parents[1]
TRAFFIC = {"model": "llama3-8b", "seq_len": 4096, "global_batch": 256, "micro_batch": 1}


def _write(tmp_path: Path, data: dict[str, Any], name: str = "sweep.yaml") -> str:
    path = tmp_path / name
    path.write_text(yaml.safe_dump(data))
    return str(path)


def _rows(db: str, *, drop: tuple[str, ...] = ("wall_s", "result_json")) -> list[dict[str, Any]]:
    """Every stored row, without the wall times, sorted by hash."""
    con = duckdb.connect(db, read_only=True)
    try:
        cur = con.execute("SELECT * FROM points ORDER BY hash")
        names = [d[0] for d in cur.description]
        rows = [dict(zip(names, r, strict=True)) for r in cur.fetchall()]
    finally:
        con.close()
    return [{k: v for k, v in r.items() if k not in drop} for r in rows]


# --- expansion ---------------------------------------------------------------------------


def test_grid_is_the_product_in_axis_order_with_base_merged_and_dotted_keys_nested() -> None:
    sweep = parse_sweep({"command": "simulate serve", "base": {"model": "llama3-8b",
                         "cluster": {"gpu": "h100-sxm"}},
                         "axes": {"cluster.tp": [1, 2], "seed": [0, 1, 2]}})  # fmt: skip
    points = sweep.points()
    assert sweep.grid_size == 6
    assert [(p.values["cluster.tp"], p.values["seed"]) for p in points] == list(
        itertools.product([1, 2], [0, 1, 2])
    )
    assert points[4].scenario == {"model": "llama3-8b", "seed": 1,
                                  "cluster": {"gpu": "h100-sxm", "tp": 2}}  # fmt: skip
    assert [p.index for p in points] == list(range(6))
    assert len({p.hash for p in points}) == 6
    assert points[4].hash == point_hash("simulate serve", points[4].scenario)


def test_zip_varies_lists_together_and_range_is_inclusive() -> None:
    sweep = parse_sweep({"command": "plan", "base": {"gpus": 64},
                         "axes": {"oversubscription": {"range": [1.0, 2.0, 0.5]}},
                         "zip": {"design": ["clos", "rail_optimized"], "tiers": [2, 3]}})  # fmt: skip
    got = [(p.values["oversubscription"], p.values["design"], p.values["tiers"])
           for p in sweep.points()]  # fmt: skip
    # 1.0, 1.5, 2.0 (b included) x the two zipped pairs (not their 4 combinations)
    assert got == [(o, d, t) for o in (1.0, 1.5, 2.0)
                   for d, t in (("clos", 2), ("rail_optimized", 3))]  # fmt: skip
    ints = parse_sweep({"command": "plan", "axes": {"gpus": {"range": [8, 40, 16]}}})
    assert [p.values["gpus"] for p in ints.points()] == [8, 24, 40]
    two = parse_sweep({"command": "plan", "zip": [{"a": [1, 2]}, {"b": [3, 4, 5]}]})
    assert two.grid_size == 6


def test_sample_draws_n_distinct_points_of_the_filtered_grid_reproducibly() -> None:
    spec = {"command": "traffic train", "base": TRAFFIC,
            "axes": {"tp": [1, 2, 4, 8], "dp": [1, 2, 4, 8], "pp": [1, 2, 4]},
            "constraints": ["tp * dp <= 16"]}  # fmt: skip
    full = parse_sweep(spec).points()
    assert len(full) == sum(1 for t, d in itertools.product([1, 2, 4, 8], repeat=2)
                            if t * d <= 16) * 3  # fmt: skip
    a = parse_sweep({**spec, "sample": {"n": 10, "seed": 3}}).points()
    b = parse_sweep({**spec, "sample": {"n": 10, "seed": 3}}).points()
    c = parse_sweep({**spec, "sample": {"n": 10, "seed": 4}}).points()
    assert [p.hash for p in a] == [p.hash for p in b] != [p.hash for p in c]
    assert len({p.hash for p in a}) == 10
    assert {p.hash for p in a} <= {p.hash for p in full}
    assert [p.index for p in a] == sorted(p.index for p in a)  # grid order
    assert len(parse_sweep({**spec, "sample": {"n": 10**6}}).points()) == len(full)


# --- constraint expressions -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "values", "expected"),
    [
        ("tp * pp * dp == gpus", {"tp": 8, "pp": 4, "dp": 2, "gpus": 64}, True),
        ("tp * pp * dp == gpus", {"tp": 8, "pp": 4, "dp": 2, "gpus": 128}, False),
        ("1 + 2 * 3 == 7 and (1 + 2) * 3 == 9", {}, True),  # precedence
        ("10 - 4 - 3 == 3 and 8 / 4 / 2 == 1", {}, True),  # left associative
        ("7 // 2 == 3 and 7 % 2 == 1 and -2 * -3 == 6", {}, True),
        ("1 <= tp <= 8", {"tp": 9}, False),  # chained, as Python
        ("1 <= tp <= 8", {"tp": 8}, True),
        ("not fits or x > 1", {"fits": True, "x": 0}, False),
        ("fits_in_memory", {"fits_in_memory": True}, True),
        ("design == 'clos' and slo.ttft_s < 0.5", {"design": "clos", "slo.ttft_s": 0.2}, True),
        ('design != "clos"', {"design": "clos"}, False),
        ("x == true", {"x": True}, True),
        ("1e3 == 1000 and .5 == 0.5", {}, True),
    ],
)
def test_expressions_evaluate_as_python_would(text: str, values: dict[str, Any],
                                              expected: bool) -> None:  # fmt: skip
    expr = parse_expression(text)
    assert expr.evaluate(values) is expected


@pytest.mark.parametrize(
    "text",
    [
        "x.__class__",  # attribute access
        "().__class__",
        "__import__('os')",  # a call, an underscore name
        "len(x) > 1",
        "open('f')",
        "a[0] == 1",  # subscript
        "lambda: 1",
        "[1, 2]",
        "x if y else z",
        "x = 1",
        "x ** 2",
        "x; y",
        "{}",
        "",
        "(" * 60 + "1" + ")" * 60,  # too deep
        "tp *",
        "(tp",
    ],
)
def test_expressions_refuse_anything_but_the_tiny_language(text: str) -> None:
    with pytest.raises(ConfigError):
        parse_expression(text)


def test_evaluation_errors_name_the_problem() -> None:
    for text, values, words in [
        ("tp == 1", {}, "unknown name 'tp'"),
        ("design + 1 == 2", {"design": "clos"}, "needs numbers"),
        ("x / 0 == 1", {"x": 1}, "division by zero"),
        ("tp * 2", {"tp": 1}, "not true or false"),
        ("x < 1", {"x": None}, "cannot order"),
    ]:
        with pytest.raises(EvaluationError, match=words):
            parse_expression(text).evaluate(values)
    assert parse_expression("a.b > c").names == {"a.b", "c"}


# --- running, storing -------------------------------------------------------------------------


def test_rows_hold_the_commands_json_and_refusals_are_infeasible_with_their_reason(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    spec = {"command": "traffic train", "name": "t", "base": {**TRAFFIC, "sequence_parallel": True},
            "axes": {"tp": [1, 2], "dp": [1, 2, 3]},
            "constraints": ["per_iteration.total_bytes < 1e14"]}  # fmt: skip
    db = str(tmp_path / "r.duckdb")
    out = run_json(capsys, "sweep", "-f", _write(tmp_path, spec), "--db", db,
                   "--workers", "1", "--json")  # fmt: skip
    rows = {(r["tp"], r["dp"]): r for r in _rows(db, drop=())}
    assert len(rows) == out["stored_points"] == out["ran_points"] == 6
    # the command itself refuses sequence parallelism without TP
    scenario = {**TRAFFIC, "sequence_parallel": True, "tp": 1, "dp": 1}
    with pytest.raises(ConfigError) as refused:
        run_command("traffic train", scenario)
    for dp in (1, 2, 3):
        assert rows[(1, dp)]["status"] == "infeasible"
        assert rows[(1, dp)]["reason"] == str(refused.value)
    ok = rows[(2, 2)]
    assert ok["status"] == "ok" and ok["reason"] is None
    direct = run_command("traffic train", {**scenario, "tp": 2, "dp": 2})
    assert json.loads(ok["result_json"]) == json.loads(json.dumps(direct, sort_keys=True))
    assert ok["per_iteration__total_bytes"] == direct["per_iteration"]["total_bytes"]
    assert ok["out__model"] == direct["model"]  # an output named as an input is prefixed
    assert ok["hash"] == point_hash("traffic train", {**scenario, "tp": 2, "dp": 2})
    assert ok["command"] == "traffic train" and ok["sweep"] == "t"
    assert len(ok["catalog_hash"]) == 16 and ok["aifabric_version"]
    # an output constraint that is false marks the point infeasible, with the reason
    spec["constraints"] = ["per_iteration.total_bytes < 1"]
    run_json(capsys, "sweep", "-f", _write(tmp_path, spec), "--db", db, "--workers", "1",
             "--json")  # fmt: skip
    stored = _rows(db)
    assert len(stored) == 6  # rerun without --resume replaces, never duplicates
    again = {(r["tp"], r["dp"]): r for r in stored}
    assert again[(2, 2)]["status"] == "infeasible"
    assert again[(2, 2)]["reason"] == "constraint 'per_iteration.total_bytes < 1' is false"


def test_input_constraints_filter_before_running(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    spec = {"command": "traffic train", "base": {**TRAFFIC, "gpus": 8},
            "axes": {"tp": [1, 2, 4, 8], "dp": [1, 2, 4, 8]},
            "constraints": ["tp * dp == gpus"]}  # fmt: skip
    db = str(tmp_path / "c.duckdb")
    out = run_json(capsys, "sweep", "-f", _write(tmp_path, spec), "--db", db, "--workers", "1",
                   "--json")  # fmt: skip
    assert out["grid_points"] == 16 and out["points"] == out["ok_points"] == 4
    assert out["filtered_points"] == 12
    assert sorted((r["tp"], r["dp"]) for r in _rows(db)) == [(1, 8), (2, 4), (4, 2), (8, 1)]


def _big_sweep(tmp_path: Path) -> str:
    """Points of about a millisecond each: traffic train over 4 x 6 x 5 x 4 x 3 plans."""
    return _write(tmp_path, {"command": "traffic train", "base": TRAFFIC, "axes": {
        "tp": [1, 2, 4, 8], "dp": [1, 2, 4, 8, 16, 32], "pp": [1, 2, 4, 8, 16],
        "seq_len": [1024, 2048, 4096, 8192], "zero": [0, 1, 3]}}, "big.yaml")  # fmt: skip


def _children(pid: int) -> set[int]:
    """Process ids whose parent is ``pid`` (Linux /proc; empty elsewhere)."""
    found = set()
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if int(fields[1]) == pid:
            found.add(int(stat.parent.name))
    return found


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"


@pytest.mark.parametrize(
    ("sig", "workers"), [(signal.SIGKILL, "1"), (signal.SIGTERM, "1"), (signal.SIGTERM, "2")]
)
def test_a_killed_sweep_resumed_stores_exactly_the_rows_of_an_uninterrupted_run(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, sig: signal.Signals, workers: str
) -> None:
    """SIGKILL loses the transaction in flight (DuckDB's WAL only replays commits); SIGTERM
    rolls it back, ends the workers and exits 128 + 15 with one line. Either way a resume
    stores exactly the rows of an uninterrupted run, each once."""
    path = _big_sweep(tmp_path)
    killed = str(tmp_path / "killed.duckdb")
    cmd = [sys.executable, "-m", "aifabric", "sweep", "-f", path, "--db", killed,
           "--workers", workers, "--no-progress"]  # fmt: skip
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    wal = Path(killed + ".wal")
    deadline = time.monotonic() + 60  # only a guard against a hang, not a measurement
    while proc.poll() is None and time.monotonic() < deadline:
        if wal.exists() and wal.stat().st_size > 200_000:  # some chunks committed
            break
        time.sleep(0.02)
    children = _children(proc.pid)
    if workers != "1" and Path("/proc").is_dir():
        assert len(children) >= int(workers), "the worker processes should be running"
    proc.send_signal(sig)
    _, stderr = proc.communicate(timeout=60)
    if sig == signal.SIGTERM:
        assert proc.returncode == 128 + signal.SIGTERM, stderr
        lines = stderr.strip().splitlines()
        assert len(lines) == 1 and "sweep interrupted by SIGTERM" in lines[0], stderr
        assert "--resume" in lines[0]
        deadline = time.monotonic() + 30  # a guard: terminated workers take a moment to go
        while any(_alive(c) for c in children) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not [c for c in children if _alive(c)], "the workers should be terminated"
    else:
        assert proc.returncode == -signal.SIGKILL
    partial = _rows(killed)
    assert 0 < len(partial) < 1440, "the kill should land mid-sweep"
    out = run_json(capsys, "sweep", "-f", path, "--db", killed, "--workers", "1", "--resume",
                   "--json")  # fmt: skip
    assert out["skipped_points"] == len(partial) and out["ran_points"] == 1440 - len(partial)
    whole = str(tmp_path / "whole.duckdb")
    run_json(capsys, "sweep", "-f", path, "--db", whole, "--workers", "1", "--json")
    resumed, reference = _rows(killed), _rows(whole)
    assert len({r["hash"] for r in resumed}) == len(resumed) == 1440
    assert resumed == reference


def test_two_workers_store_the_rows_one_worker_stores(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    spec = {"command": "simulate train", "base": {"model": "llama3-8b", "global_batch": 64,
            "seq_len": 2048, "network": "analytic", "jitter": 0.05, "seed": 7},
            "axes": {"tp": [1, 2, 4], "pp": [1, 2], "dp": [1, 2, 4, 8]}}  # fmt: skip
    path = _write(tmp_path, spec)
    one, two = str(tmp_path / "1.duckdb"), str(tmp_path / "2.duckdb")
    run_json(capsys, "sweep", "-f", path, "--db", one, "--workers", "1", "--json")
    out = run_json(capsys, "sweep", "-f", path, "--db", two, "--workers", "2", "--json")
    assert out["workers"] == 2 and out["ran_points"] == 24
    assert _rows(one) == _rows(two)


# --- Pareto -----------------------------------------------------------------------------------


def _dominated_brute(points: list[tuple[float, ...]], i: int) -> bool:
    return any(all(q <= p for q, p in zip(points[j], points[i], strict=True))
               and any(q < p for q, p in zip(points[j], points[i], strict=True))
               for j in range(len(points)))  # fmt: skip


@given(st.lists(st.tuples(*[st.integers(0, 6)] * 3), min_size=1, max_size=40),
       st.lists(st.booleans(), min_size=3, max_size=3))  # fmt: skip
def test_pareto_mask_is_the_brute_force_non_dominated_set(
    points: list[tuple[int, int, int]], maximize: list[bool]
) -> None:
    signed = [tuple(-v if m else v for v, m in zip(p, maximize, strict=True)) for p in points]
    expected = [not _dominated_brute(signed, i) for i in range(len(points))]  # type: ignore[arg-type]
    assert pareto_mask(points, maximize).tolist() == expected


def test_results_pareto_query_and_export(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    spec = {"command": "traffic train", "base": {**TRAFFIC, "mfu": 0.4},
            "axes": {"tp": [1, 2, 4, 8], "dp": [1, 2, 4], "pp": [1, 2]}}  # fmt: skip
    db = str(tmp_path / "p.duckdb")
    run_json(capsys, "sweep", "-f", _write(tmp_path, spec), "--db", db, "--workers", "1",
             "--json")  # fmt: skip
    a, b = "per_iteration__total_bytes", "per_iteration__compute_time_s"
    got = run_json(capsys, "results", "pareto", "--minimize", a, "--maximize", b, "--db", db,
                   "--where", "tp > 1", "--json")  # fmt: skip
    rows = run_json(capsys, "results", "query",
                    f"SELECT hash, {a}, {b} FROM points WHERE status = 'ok' AND tp > 1",
                    "--db", db, "--json")["rows"]  # fmt: skip
    pts = [(r[a], -r[b]) for r in rows]
    expected = {r["hash"] for i, r in enumerate(rows) if not _dominated_brute(pts, i)}
    assert {r["hash"] for r in got["rows"]} == expected and expected
    assert got["candidate_points"] == len(rows) == 18
    assert all(r["status"] == "ok" for r in got["rows"])
    csv, parquet = tmp_path / "o.csv", tmp_path / "o.parquet"
    run_error_free = [["--csv", str(csv)], ["--parquet", str(parquet)]]
    for flag in run_error_free:
        from aifabric.cli import main

        assert main(["results", "export", "--db", db, *flag]) == 0
    capsys.readouterr()
    con = duckdb.connect()
    assert con.execute(f"SELECT count(*) FROM read_csv('{csv}')").fetchone() == (24,)
    assert con.execute(f"SELECT count(*) FROM '{parquet}'").fetchone() == (24,)


# --- bad input ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("spec", "words"),
    [
        ({"command": "simulate nothing"}, "command(='simulate nothing') must be one of"),
        ({"command": "plan", "axis": {}}, "unknown key 'axis'"),
        ({"command": "plan", "axes": {"tp": 4}}, "axes.tp: expected a non-empty list"),
        ({"command": "plan", "axes": {"tp": []}}, "axes.tp: expected a non-empty list"),
        ({"command": "plan", "axes": {"tp": {"range": [8, 1, 1]}}}, "needs step > 0 and b >= a"),
        ({"command": "plan", "axes": {"tp": {"range": [1, 8]}}}, "must be [a, b, step]"),
        ({"command": "plan", "zip": {"a": [1, 2], "b": [1]}}, "lists must have equal lengths"),
        ({"command": "plan", "axes": {"a": [1]}, "zip": {"a": [2]}}, "is varied twice"),
        ({"command": "plan", "sample": {"n": 0}}, "sample.n(=0) must be an integer >= 1"),
        ({"command": "plan", "constraints": ["len(tp) > 1"]}, "calls are not allowed"),
        ({"command": "plan", "axes": {"gpus": {"range": [1, 10**9, 1]}}}, "at most"),
        (
            {"command": "plan", "base": {"tp": 2}, "constraints": ["tp / 0 == 1"]},
            "division by zero",
        ),
    ],
)
def test_bad_sweep_files_are_one_line_errors(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, spec: dict[str, Any], words: str
) -> None:
    line = run_error(capsys, "sweep", "-f", _write(tmp_path, spec), "--db",
                     str(tmp_path / "x.duckdb"))  # fmt: skip
    assert words in line
    assert words in run_error(capsys, "sweep", "-f", _write(tmp_path, spec), "--db",
                              str(tmp_path / "x.duckdb"), "--json")  # fmt: skip


def test_results_commands_refuse_bad_sql_and_missing_files(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    missing = str(tmp_path / "none.duckdb")
    assert "no results database" in run_error(capsys, "results", "query", "SELECT 1",
                                              "--db", missing)  # fmt: skip
    assert "SQL:" in run_error(capsys, "results", "query", "SELEC 1", "--db", ":memory:")
    assert "at least one" in run_error(capsys, "results", "pareto", "--db", ":memory:")
    assert "give one of" in run_error(capsys, "results", "export", "--db", ":memory:")
    assert not Path(missing).exists()


def test_the_example_sweep_runs_and_the_cli_stays_light() -> None:
    example = ROOT / "examples" / "sweep" / "llama70b-plans.yaml"
    sweep = parse_sweep(yaml.safe_load(example.read_text()))
    points = sweep.points()
    assert points and all(p.scenario["tp"] * p.scenario["pp"] * p.scenario["dp"] == 512
                          for p in points)  # fmt: skip
    code = ("import sys, aifabric.cli; "
            "print(sorted(m for m in ('duckdb', 'numpy', 'ray') if m in sys.modules))")  # fmt: skip
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         env=env, check=True).stdout  # fmt: skip
    assert "duckdb" not in out and "ray" not in out


def test_the_shipped_sweeps_expand_to_the_points_their_comments_describe() -> None:
    """Counted by hand from the files' axes.

    llama70b-fabrics: tp in {2, 4, 8} x pp in {1, 2, 4, 8, 16} gives 15 (tp, pp) pairs with
    tp * pp from 2 to 128; dp = gpus / (tp * pp) must be a listed power of two in
    [16, 2048]. 1,024 GPUs: tp * pp <= 64, all but (8, 16): 14. 2,048 and 4,096: all 15.
    8,192: dp <= 2048 needs tp * pp >= 4, all but (2, 1): 14. 58 plans x 3 fabrics = 174.

    mooncake-pd-split: 6 prefill counts x 4 decode counts x 3 routings = 72, minus the
    pairs with fewer prefill than decode instances ((2, 3), (2, 4), (3, 4)) x 3 = 63.
    """
    root = ROOT / "examples" / "sweep"
    fabrics = parse_sweep(yaml.safe_load((root / "llama70b-fabrics.yaml").read_text()))
    plans = {(p.scenario["gpus"], p.scenario["tp"], p.scenario["pp"]) for p in fabrics.points()}
    expected = {(g, t, p) for g in (1024, 2048, 4096, 8192) for t in (2, 4, 8)
                for p in (1, 2, 4, 8, 16) if 16 <= g // (t * p) <= 2048}  # fmt: skip
    assert plans == expected
    assert len(expected) == 58 and len(fabrics.points()) == 3 * 58
    serve = parse_sweep(yaml.safe_load((root / "mooncake-pd-split.yaml").read_text()))
    assert serve.grid_size == 72 and len(serve.points()) == 63
