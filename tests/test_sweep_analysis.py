"""Bottleneck labels, ``results top`` and the ``simulate cluster`` runner.

Truth: labels of constructed results derived by hand from the rules written in
aifabric.explore.bottleneck; labels of real results where the physics is plain (a plan
whose TP group fits a server vs the same GPUs with TP across two servers on a slow NIC);
``results top`` against a brute-force Python sort within groups of the same rows; and the
command itself (a stored ``simulate cluster`` row is the command's ``--json``).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import duckdb
import pytest
import yaml

from aifabric.explore.bottleneck import LABELS, bottleneck
from aifabric.explore.runners import run_command

from .cli_helpers import run_error, run_json

TRAIN = {"model": "llama3-8b", "gpus": 16, "seq_len": 4096, "global_batch": 32,
         "micro_batch": 1}  # fmt: skip


def _write(tmp_path: Path, data: dict[str, Any], name: str = "sweep.yaml") -> str:
    path = tmp_path / name
    path.write_text(yaml.safe_dump(data))
    return str(path)


def _tiers(**top: str) -> dict[str, dict[str, float]]:
    """comm_by_tier with bytes on scale_up and on each dimension's given top tier."""
    out = {}
    for dim, tier in top.items():
        by = dict.fromkeys(("scale_up_bytes", "leaf_bytes", "spine_bytes", "core_bytes"), 0.0)
        by["scale_up_bytes"] = 1.0
        by[f"{tier}_bytes"] = 5.0
        out[dim] = by
    return out


# --- constructed results, expected labels by hand -------------------------------------------


def _step(compute: float, exposed: dict[str, float], tiers: dict[str, Any], *,
          bubble: float = 0.0, iteration: float = 2.0, fits: bool = True) -> dict[str, Any]:  # fmt: skip
    return {"compute_s": compute, "exposed_comm_s": exposed, "comm_by_tier": tiers,
            "bubble_fraction": bubble, "iteration_time_s": iteration, "fits_in_memory": fits}  # fmt: skip


@pytest.mark.parametrize(
    ("result", "label"),
    [
        # compute 1.0 beats dp's 0.8 on the spine and tp's 0.3 on NVLink
        (_step(1.0, {"tp": 0.3, "dp": 0.8}, _tiers(tp="scale_up", dp="spine")), "compute"),
        # dp's 1.2 s on the spine is now the largest part
        (_step(1.0, {"tp": 0.3, "dp": 1.2}, _tiers(tp="scale_up", dp="spine")), "spine"),
        # two dimensions on the leaf add up: 0.6 + 0.6 = 1.2 > 1.0, though each is less
        (_step(1.0, {"tp": 0.6, "dp": 0.6}, _tiers(tp="leaf", dp="leaf")), "leaf"),
        # ... and split over two tiers they do not
        (_step(1.0, {"tp": 0.6, "dp": 0.6}, _tiers(tp="leaf", dp="core")), "compute"),
        # the highest tier with bytes is the dimension's, whatever the order of the keys
        (
            _step(
                0.1,
                {"pp": 1.0},
                {
                    "pp": {
                        "core_bytes": 1.0,
                        "scale_up_bytes": 9.0,
                        "leaf_bytes": 0.0,
                        "spine_bytes": 3.0,
                    }
                },
            ),
            "core",
        ),
        # no tier entry: NVLink
        (_step(0.5, {"tp": 1.0}, {}), "scale_up"),
        # bubble 0.5 x 3 s = 1.5 s > compute 1.0 s and any communication
        (
            _step(1.0, {"pp": 0.2}, _tiers(pp="leaf"), bubble=0.5, iteration=3.0),
            "pipeline_bubble",
        ),
        # a tie goes to the earlier part: compute
        (_step(1.0, {"dp": 1.0}, _tiers(dp="leaf")), "compute"),
        # does not fit: nothing else matters
        (_step(0.1, {"dp": 9.0}, _tiers(dp="core"), fits=False), "hbm_capacity"),
    ],
)
def test_train_labels_of_constructed_results(result: dict[str, Any], label: str) -> None:
    assert bottleneck("simulate train", result) == label
    assert label in LABELS


def _role(busy: float, compute: float, hbm: float) -> dict[str, float]:
    return {"busy_fraction": busy, "compute_utilization": compute,
            "hbm_bandwidth_utilization": hbm}  # fmt: skip


SERVE_ROLES = {"prefill": _role(0.6, 0.7, 0.2), "decode": _role(0.9, 0.05, 0.6)}


@pytest.mark.parametrize(
    ("result", "label"),
    [
        # decode is the busiest role and reads HBM far more than it computes
        ({"utilization_by_role": SERVE_ROLES}, "memory_bandwidth"),
        # prefill busiest: compute
        ({"utilization_by_role": {**SERVE_ROLES, "decode": _role(0.3, 0.05, 0.6)}}, "compute"),
        # a layer at 95 % on its busiest link (>= 0.9) beats the GPUs; 0.85 does not
        (
            {
                "utilization_by_role": SERVE_ROLES,
                "network_utilization_by_tier": {
                    "endpoint_leaf": {"max_utilization": 0.85},
                    "leaf_spine": {"max_utilization": 0.95},
                },
            },
            "spine",
        ),
        (
            {
                "utilization_by_role": SERVE_ROLES,
                "network_utilization_by_tier": {"endpoint_leaf": {"max_utilization": 0.85}},
            },
            "memory_bandwidth",
        ),
        # preemptions (KV cache full) or a prompt too long for an instance
        ({"utilization_by_role": SERVE_ROLES, "preemptions": 3}, "hbm_capacity"),
        ({"utilization_by_role": SERVE_ROLES, "rejected_by": {"too_long": 1}}, "hbm_capacity"),
        ({"utilization_by_role": SERVE_ROLES, "rejected_by": {"slo": 7}}, "memory_bandwidth"),
    ],
)
def test_serve_labels_of_constructed_results(result: dict[str, Any], label: str) -> None:
    assert bottleneck("simulate serve", result) == label


def test_collective_plan_and_cluster_labels_of_constructed_results() -> None:
    sizes = [{"tiers": {"scale_up": {"max_utilization": 0.9},
                        "endpoint_leaf": {"max_utilization": 0.1}}},
             {"tiers": {"scale_up": {"max_utilization": 0.2},
                        "endpoint_leaf": {"max_utilization": 0.5},
                        "leaf_spine": {"max_utilization": 0.7}}}]  # fmt: skip
    assert bottleneck("simulate collective", {"results": sizes}) == "spine"  # the largest size
    assert bottleneck("simulate collective", {"results": sizes[:1]}) == "scale_up"
    assert bottleneck("simulate collective", {"results": []}) is None
    job = {"job": {"compute_time_s": 2.0}}
    layers = [{"layer": "scale_up", "min_time_s": 1.0}, {"layer": "endpoint_leaf",
              "min_time_s": 2.5}, {"layer": "leaf_spine", "min_time_s": 0.3}]  # fmt: skip
    assert bottleneck("plan", {**job, "tier_bandwidth": layers}) == "leaf"
    assert bottleneck("plan", {**job, "tier_bandwidth": layers[:1]}) == "compute"
    assert bottleneck("plan", {"oversubscription": {"leaf": 1.79}}) == "leaf"
    assert bottleneck("plan", {"oversubscription": {"leaf": 1.0}}) is None
    nets = {"tiers": {"a": {"endpoint_leaf": {"max_link_utilization": 0.3}},
                      "b": {"leaf_spine": {"max_link_utilization": 0.4}}}}  # fmt: skip
    assert bottleneck("simulate cluster", nets) == "spine"
    assert bottleneck("traffic train", {"per_iteration": {}}) is None
    assert bottleneck("simulate train", None) is None


# --- real results ----------------------------------------------------------------------------


def test_tp_inside_a_server_is_compute_bound_and_tp_across_servers_waits_on_the_leaf() -> None:
    """16 H100 on a 200G rail-optimized fabric (flow model). TP 8 x DP 2: TP stays on NVLink
    (450 GB/s a direction), DP's one gradient all-reduce crosses the leaf; compute is the
    largest part. TP 16: every layer's all-reduce spans both servers, so its bytes climb to
    the leaf at 25 GB/s a NIC, 18x slower than NVLink, and the exposed TP time exceeds the
    compute."""
    base = {**TRAIN, "network": "flow", "nic": "200G"}
    inside = run_command("simulate train", {**base, "tp": 8, "dp": 2})
    across = run_command("simulate train", {**base, "tp": 16, "dp": 1})
    assert inside["comm_by_tier"]["tp"]["leaf_bytes"] == 0
    assert inside["comm_by_tier"]["dp"]["leaf_bytes"] > 0
    assert across["comm_by_tier"]["tp"]["leaf_bytes"] > 0
    assert across["exposed_comm_s"]["tp"] > across["compute_s"]
    assert inside["compute_s"] > sum(inside["exposed_comm_s"].values())
    assert bottleneck("simulate train", inside) == "compute"
    assert bottleneck("simulate train", across) == "leaf"
    # comm_by_tier is the planner's split of the same job on the same fabric
    plan = run_command("plan", {**{k: v for k, v in base.items() if k != "network"},
                                "tp": 16, "dp": 1})  # fmt: skip
    leaf = sum(r["bytes"] for r in plan["traffic_by_tier"]
               if r["dimension"] == "tp" and r["tier"] == "leaf")  # fmt: skip
    assert across["comm_by_tier"]["tp"]["leaf_bytes"] == pytest.approx(leaf, rel=1e-12)
    assert bottleneck("plan", plan) in LABELS


def _serve(prompt: int, output: int) -> dict[str, Any]:
    def tokens(mean: int) -> dict[str, Any]:
        return {"kind": "lognormal", "mean": mean, "cv": 0.1, "maximum": 4 * mean}

    return {"seed": 1, "model": "llama3-8b",
            "workload": {"source": "synthetic", "rate_rps": 20, "num_requests": 300,
                         "input_tokens": tokens(prompt), "output_tokens": tokens(output)},
            "cluster": {"mode": "colocated", "instances": 1, "tp": 8}}  # fmt: skip


def test_long_prompts_are_compute_bound_and_long_answers_memory_bandwidth_bound() -> None:
    """One TP-8 instance of Llama-3-8B. 4,096-token prompts, 8-token answers: prefill's
    GEMMs over thousands of tokens run near the FLOP roof, so compute use exceeds HBM use.
    64-token prompts, 512-token answers: decode reads all weights and the KV cache for one
    token per sequence per step, so HBM use exceeds compute use (the roofline's two sides:
    Williams et al., "Roofline", CACM 2009)."""
    for (prompt, output), label in (((4096, 8), "compute"), ((64, 512), "memory_bandwidth")):
        r = run_command("simulate serve", _serve(prompt, output))
        role = r["utilization_by_role"]["colocated"]
        more = role["compute_utilization"] > role["hbm_bandwidth_utilization"]
        assert more == (label == "compute")
        assert r["preemptions"] == 0
        assert bottleneck("simulate serve", r) == label


def test_the_stored_bottleneck_column_is_the_label_of_the_stored_result(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    spec = {"command": "simulate train", "base": {**TRAIN, "network": "flow", "nic": "200G"},
            "axes": {"tp": [1, 8, 16], "dp": [16, 2, 1]}}  # fmt: skip
    db = str(tmp_path / "b.duckdb")
    run_json(capsys, "sweep", "-f", _write(tmp_path, spec), "--db", db, "--workers", "1",
             "--json")  # fmt: skip
    con = duckdb.connect(db, read_only=True)
    rows = con.execute("SELECT tp, dp, status, bottleneck, result_json FROM points").fetchall()
    con.close()
    got = {(tp, dp): (b, json.loads(r) if r else None) for tp, dp, _, b, r in rows}
    assert got[(8, 2)][0] == "compute" and got[(16, 2)][1] is None  # 32 GPUs: refused
    assert got[(16, 1)][0] == "leaf" and got[(1, 16)][0] == "hbm_capacity"
    for label, result in got.values():
        assert label == bottleneck("simulate train", result)


# --- results top ------------------------------------------------------------------------------


def _brute_top(rows: list[dict[str, Any]], metric: str, by: list[str], n: int,
               maximize: bool) -> list[tuple[Any, ...]]:  # fmt: skip
    """(group..., rank, hash) of the n best rows of each group, by plain Python."""
    groups: dict[tuple[Any, ...], list[dict[str, Any]]] = {}
    for r in rows:
        if r["status"] == "ok" and r[metric] is not None:
            groups.setdefault(tuple(r[b] for b in by), []).append(r)
    out = []
    for key, members in groups.items():
        members.sort(key=lambda r: (-r[metric] if maximize else r[metric], r["hash"]))
        out += [(*key, i + 1, r["hash"]) for i, r in enumerate(members[:n])]
    return sorted(out, key=lambda t: (tuple((x is not None, x) for x in t[:-2]), t[-2]))


def test_results_top_is_the_brute_force_ranking_within_groups(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    spec = {"command": "simulate train",
            "base": {**TRAIN, "gpus": 32, "global_batch": 64, "network": "analytic"},
            "axes": {"tp": [1, 2, 4, 8], "pp": [1, 2, 4], "dp": [1, 2, 4, 8],
                     "micro_batch": [1, 2]},
            "constraints": ["tp * pp * dp <= gpus"]}  # fmt: skip
    db = str(tmp_path / "top.duckdb")
    run_json(capsys, "sweep", "-f", _write(tmp_path, spec), "--db", db, "--workers", "1",
             "--json")  # fmt: skip
    con = duckdb.connect(db, read_only=True)
    cur = con.execute("SELECT * FROM points")
    names = [d[0] for d in cur.description]
    rows = [dict(zip(names, r, strict=True)) for r in cur.fetchall()]
    con.close()
    ok = [r for r in rows if r["status"] == "ok"]
    assert len(ok) > 20 and len({r["bottleneck"] for r in ok}) >= 2
    cases = [("iteration_time_s", [], 5, False), ("mfu", ["tp"], 3, True),
             ("cost_usd__usd_per_token", ["tp", "pp"], 2, False),
             ("memory_per_gpu_bytes__total", ["bottleneck"], 1, False),
             ("tokens_per_s", ["micro_batch"], 100, True)]  # fmt: skip
    for metric, by, n, maximize in cases:
        args = ["results", "top", "--db", db, "--metric", metric, "--n", str(n), "--json",
                "--maximize" if maximize else "--minimize"]  # fmt: skip
        for b in by:
            args += ["--by", b]
        got = run_json(capsys, *args)
        expected = _brute_top(rows, metric, by, n, maximize)
        assert [(*(r[b] for b in by), r["rank"], r["hash"]) for r in got["rows"]] == expected
        assert got["candidate_points"] == len(ok)
        assert got["groups"] == len({tuple(r[b] for b in by) for r in ok})
        assert all("bottleneck" in r for r in got["rows"])
        assert set(got["varied"]) == {"tp", "pp", "dp", "micro_batch"}
    # --where narrows the candidates
    got = run_json(capsys, "results", "top", "--db", db, "--metric", "iteration_time_s",
                   "--where", "tp = 8", "--n", "1000", "--json")  # fmt: skip
    assert {r["tp"] for r in got["rows"]} == {8}
    assert got["candidate_points"] == sum(1 for r in ok if r["tp"] == 8) == len(got["rows"])
    # the table prints too
    from aifabric.cli import main

    assert main(["results", "top", "--db", db, "--metric", "mfu", "--maximize", "--by",
                 "tp"]) == 0  # fmt: skip
    table = capsys.readouterr().out
    assert "bottleneck" in table and "rank" in table
    assert main(["results", "pareto", "--db", db, "--minimize", "iteration_time_s",
                 "--minimize", "cost_usd__total_usd"]) == 0  # fmt: skip
    assert "bottleneck" in capsys.readouterr().out


def test_results_top_refuses_unknown_columns_in_one_line(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    spec = {"command": "traffic train", "base": {"model": "llama3-8b", "seq_len": 2048,
            "global_batch": 16}, "axes": {"tp": [1, 2]}}  # fmt: skip
    db = str(tmp_path / "e.duckdb")
    run_json(capsys, "sweep", "-f", _write(tmp_path, spec), "--db", db, "--workers", "1",
             "--json")  # fmt: skip
    top = ["results", "top", "--db", db]
    assert "no column 'nope'" in run_error(capsys, *top, "--metric", "nope")
    assert "no column 'grp'" in run_error(capsys, *top, "--metric", "tp", "--by", "grp")
    assert "must be a numeric column" in run_error(capsys, *top, "--metric", "status")
    assert "--n(=0) must be >= 1" in run_error(capsys, *top, "--metric", "tp", "--n", "0")
    assert "SQL:" in run_error(capsys, *top, "--metric", "tp", "--where", "tp >")
    assert "no column 'nope'" in run_error(capsys, *top, "--metric", "nope", "--json")
    empty = run_json(capsys, "results", "top", "--db", ":memory:", "--metric", "x", "--json")
    assert empty["rows"] == [] and empty["candidate_points"] == 0


# --- simulate cluster runner ------------------------------------------------------------------


def _no_wall(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _no_wall(v) for k, v in value.items() if k != "wall_s"}
    if isinstance(value, list):
        return [_no_wall(v) for v in value]
    return value


def test_a_stored_simulate_cluster_row_is_the_commands_json(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    base = {"duration": 10.0, "seed": 0,
            "fabric": {"gpus": 32, "gpu": "h100-sxm", "design": "spine_leaf", "nic": "400G",
                       "routing": "ecmp"},
            "workloads": [{"name": "train", "kind": "train",
                           "job": {"model": "llama3-8b", "tp": 8, "pp": 1, "dp": 4,
                                   "seq_len": 4096, "global_batch": 32, "zero": 1}}]}  # fmt: skip
    spec = {"command": "simulate cluster", "base": base,
            "axes": {"fabric.oversubscription": [1, 4]}}  # fmt: skip
    db = str(tmp_path / "c.duckdb")
    out = run_json(capsys, "sweep", "-f", _write(tmp_path, spec), "--db", db, "--workers", "1",
                   "--json")  # fmt: skip
    assert out["ok_points"] == 2
    con = duckdb.connect(db, read_only=True)
    rows = con.execute("SELECT fabric__oversubscription, result_json, bottleneck, "
                       "cost_usd__total_usd FROM points").fetchall()  # fmt: skip
    con.close()
    for over, stored, label, cost in rows:
        scenario = {**base, "fabric": {**base["fabric"], "oversubscription": over}}
        path = _write(tmp_path, scenario, f"cluster-{over}.yaml")
        cli = run_json(capsys, "simulate", "cluster", "-f", path, "--json")
        assert _no_wall(json.loads(stored)) == _no_wall(cli)
        assert label == bottleneck("simulate cluster", cli) == "leaf"
        assert cost == cli["cost_usd"]["total_usd"]


def test_the_cost_example_is_every_plan_that_uses_all_the_gpus() -> None:
    """tp in {2,4,8} x pp in {1,2,4,8} x dp in {8..128} with tp pp dp = gpus: 11 plans on
    256 GPUs, 11 on 512, 9 on 1,024 (dp 8 would need tp pp = 128), on two fabrics: 62."""
    from aifabric.explore.sweep import load_sweep

    example = Path(__file__).resolve().parents[1] / "examples" / "sweep" / "llama70b-cost.yaml"
    points = load_sweep(example).points()
    assert len(points) == 62
    assert all(p.scenario["tp"] * p.scenario["pp"] * p.scenario["dp"] == p.scenario["gpus"]
               for p in points)  # fmt: skip
    assert len({(p.scenario["gpus"], p.scenario["design"]) for p in points}) == 6


def test_a_results_file_from_before_the_bottleneck_column_gets_it(tmp_path: Path) -> None:
    from aifabric.explore.store import FIXED, ResultStore

    db = str(tmp_path / "old.duckdb")
    con = duckdb.connect(db)
    old = {k: v for k, v in FIXED.items() if k != "bottleneck"}
    con.execute("CREATE TABLE points (" + ", ".join(f"{k} {v}" for k, v in old.items()) + ")")
    con.close()
    store = ResultStore(db)
    store.close()
    con = duckdb.connect(db, read_only=True)
    cols = [r[0] for r in con.execute("DESCRIBE points").fetchall()]
    con.close()
    assert cols == list(FIXED)
