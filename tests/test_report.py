"""``aifabric report``: one self-contained HTML file per set of results. The truth is the
command's own ``--json`` object: the report's tables and figure data must hold its numbers.
Checked without a browser (tests/test_browser.py renders the charts): plotly.js inline
exactly once, nothing fetched from the network, every figure titled with units on its
axes and a caption."""

from __future__ import annotations

import json
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest
import yaml

pytest.importorskip("plotly")

from aifabric.explore.runners import run_command
from aifabric.report import render_html
from aifabric.report.html import detect_command

from .cli_helpers import run_error, run_json

ROOT = Path(__file__).resolve().parents[1]
SCENARIOS: dict[str, dict[str, Any]] = {
    "plan": {"gpus": 256, "model": "llama3-8b", "tp": 8, "dp": 32, "seq_len": 4096,
             "global_batch": 256, "design": "clos", "oversubscription": 2},
    "simulate collective": {"gpus": 64, "size": "1MiB,64MiB"},
    "simulate train": {"model": "llama3-8b", "gpus": 64, "tp": 8, "pp": 1, "dp": 8,
                       "seq_len": 4096, "global_batch": 64, "network": "analytic"},
    "simulate serve": {"seed": 1, "model": "llama3-8b",
                       "workload": {"rate_rps": 5, "num_requests": 150}},
}  # fmt: skip


class _Page(HTMLParser):
    """Scripts (inline text and src), link hrefs, captions, and table cells' data-value."""

    def __init__(self) -> None:
        super().__init__()
        self.scripts: list[str] = []
        self.srcs: list[str] = []
        self.hrefs: list[str] = []
        self.values: list[Any] = []
        self.captions = 0
        self._in_script = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        if tag == "script":
            self._in_script = True
            self.scripts.append("")
            if a.get("src"):
                self.srcs.append(str(a["src"]))
        if tag == "link" and a.get("href"):
            self.hrefs.append(str(a["href"]))
        if tag == "td" and a.get("data-value") is not None:
            self.values.append(json.loads(str(a["data-value"])))
        if tag == "p" and a.get("class") == "caption":
            self.captions += 1

    def handle_endtag(self, tag: str) -> None:
        if tag == "script":
            self._in_script = False

    def handle_data(self, data: str) -> None:
        if self._in_script:
            self.scripts[-1] += data


def _figures(page: _Page) -> list[dict[str, Any]]:
    """The Plotly figures embedded in the page: the data and layout JSON given to
    ``Plotly.newPlot("div id", data, layout, config)``, decoded in place."""
    decoder = json.JSONDecoder()
    figs = []
    for text in page.scripts:
        start = text.find("Plotly.newPlot(")
        if start < 0 or len(text) > 1_000_000:
            continue
        i = text.index(",", start) + 1
        data, end = decoder.raw_decode(text, len(text[:i]) + len(text[i:]) - len(text[i:].lstrip()))
        j = text.index(",", end) + 1
        layout, _ = decoder.raw_decode(text, j + len(text[j:]) - len(text[j:].lstrip()))
        figs.append({"data": data, "layout": layout})
    return figs


def _parse(text: str) -> _Page:
    page = _Page()
    page.feed(text)
    return page


@pytest.fixture(scope="module")
def results() -> dict[str, dict[str, Any]]:
    return {c: run_command(c, s) for c, s in SCENARIOS.items()}


@pytest.mark.parametrize("command", list(SCENARIOS))
def test_a_report_is_self_contained_and_every_chart_has_titles_units_and_a_caption(
    command: str, results: dict[str, dict[str, Any]]
) -> None:
    page = _parse(render_html(command, [results[command]]))
    big = [s for s in page.scripts if "plotly.js" in s[:2000].lower() or len(s) > 1_000_000]
    assert len(big) == 1  # plotly.js, inline, once
    assert not page.srcs and not page.hrefs  # nothing loaded from anywhere
    figs = _figures(page)
    assert figs and page.captions == len(figs)
    for fig in figs:
        title = fig["layout"]["title"]["text"]
        assert title
        for axis in ("xaxis", "yaxis"):
            ax = fig["layout"].get(axis, {})
            if ax.get("visible", True) is False:
                continue
            text = ax.get("title", {}).get("text", "")
            assert text or axis == "xaxis", f"{title}: {axis} has no title"
            if axis == "yaxis":
                assert "(" in text and ")" in text, f"{title}: y axis {text!r} names no unit"


def test_the_plan_report_holds_the_plans_counts_and_cost(results: dict[str, Any]) -> None:
    r = results["plan"]
    page = _parse(render_html("plan", [r]))
    assert r["cost"]["total_usd"] in page.values
    for tier in ("leaf", "spine"):
        assert r["switches"][tier] in page.values
    for line in r["bom"]:
        assert line["count"] in page.values
    texts = [t for f in _figures(page) for d in f["data"] for t in d.get("text") or []]
    assert any(f"leaf: {r['switches']['leaf']:,}" in t for t in texts)
    bars = {f["layout"]["title"]["text"]: f for f in _figures(page)}
    stack = bars["Bytes per iteration by tier and dimension"]["data"]
    total = sum(sum(y for y in d["y"]) for d in stack) * 1e9
    assert total == pytest.approx(sum(r["bytes_by_tier"].values()), rel=1e-12)


def test_the_serve_report_plots_the_results_percentiles(results: dict[str, Any]) -> None:
    r = results["simulate serve"]
    page = _parse(render_html("simulate serve", [r]))
    ttft = next(f for f in _figures(page) if f["layout"]["title"]["text"].startswith("TTFT"))
    by_name = {d["name"]: d["y"] for d in ttft["data"]}
    assert by_name["all"] == [r["ttft_s"]["p50"], r["ttft_s"]["p95"], r["ttft_s"]["p99"]]
    for tier, v in r["tiers"].items():
        assert by_name[tier][-1] == v["ttft_s"]["p99"]
    assert r["ttft_s"]["p99"] in page.values and r["completed"] in page.values


def test_train_and_collective_reports_hold_their_numbers(results: dict[str, Any]) -> None:
    t = results["simulate train"]
    page = _parse(render_html("simulate train", [t]))
    assert t["iteration_time_s"] in page.values and t["mfu"] in page.values
    # the step's stack counts the optimizer once: compute_s already includes it
    # (training/report.py: compute = max stage forward + backward, + optimizer)
    stack = {tr["name"]: tr["y"][0] for tr in _figures(page)[0]["data"]}
    assert stack["compute + optimizer (busiest stage)"] == t["compute_s"]
    assert "optimizer" not in stack
    for dim, v in t["exposed_comm_s"].items():
        assert stack[f"exposed {dim} comm"] == v
    c = results["simulate collective"]
    page = _parse(render_html("simulate collective", [c]))
    line = _figures(page)[0]["data"][0]
    assert line["y"] == [p["busbw_bytes_per_s"] / 1e9 for p in c["results"]]


def test_the_cluster_report_compares_strategies() -> None:
    s = yaml.safe_load((ROOT / "examples" / "cluster" / "converged.yaml").read_text())
    s["duration"] = "120s"
    r = run_command("simulate cluster", s, ROOT / "examples" / "cluster")
    page = _parse(render_html("simulate cluster", [r]))
    slow = _figures(page)[0]["data"][0]
    by = {w["name"]: w["slowdown"] for w in r["workloads"]}
    for name, y in zip(slow["x"], slow["y"], strict=True):
        ratio = by[name].get("step_time_ratio", by[name].get("ttft_p99_ratio"))
        assert y == ratio


@pytest.mark.parametrize("command", list(SCENARIOS))
def test_results_tell_which_command_made_them(command: str, results: dict[str, Any]) -> None:
    assert detect_command(results[command]) == command


def test_the_command_writes_from_json_files_a_scenario_and_a_sweep(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from .cli_helpers import main_in_process

    serve = tmp_path / "serve.yaml"
    serve.write_text(yaml.safe_dump(SCENARIOS["simulate serve"]))
    data = run_json(capsys, "simulate", "serve", "-f", str(serve), "--json")
    result = tmp_path / "serve.json"
    result.write_text(json.dumps(data))
    out = tmp_path / "a.html"
    main_in_process(capsys, "report", "-r", str(result), "-o", str(out))
    assert data["ttft_s"]["p99"] in _parse(out.read_text()).values
    out2 = tmp_path / "b.html"
    main_in_process(capsys, "report", "-f", str(serve), "--command", "simulate serve",
                    "-o", str(out2))  # fmt: skip
    assert out2.stat().st_size > 1_000_000
    sweep = tmp_path / "sweep.yaml"
    sweep.write_text(yaml.safe_dump({"command": "traffic train", "base": {
        "model": "llama3-8b", "seq_len": 4096, "global_batch": 256, "gpus": 64},
        "axes": {"tp": [1, 2, 4, 8], "dp": [8, 16, 32, 64]},
        "constraints": ["tp * dp == gpus"]}))  # fmt: skip
    db = tmp_path / "r.duckdb"
    main_in_process(capsys, "sweep", "-f", str(sweep), "--db", str(db), "--workers", "1")
    out3 = tmp_path / "c.html"
    main_in_process(capsys, "report", "--db", str(db), "--minimize", "tp", "--maximize", "dp",
                    "-o", str(out3))  # fmt: skip
    assert "Pareto front" in out3.read_text()


def test_bad_report_calls_are_one_line_errors(tmp_path: Path,
                                             capsys: pytest.CaptureFixture[str]) -> None:  # fmt: skip
    odd = tmp_path / "odd.json"
    odd.write_text('{"a": 1}')
    assert "give --command" in run_error(
        capsys, "report", "-r", str(odd), "-o", str(tmp_path / "x.html")
    )
    plan, serve = tmp_path / "plan.json", tmp_path / "serve.json"
    plan.write_text('{"bom": [], "switches": {}}')
    serve.write_text('{"ttft_s": {}, "tbt_s": {}, "kv_cache": {}}')
    assert "different commands (plan, simulate serve)" in run_error(
        capsys, "report", "-r", str(plan), "-r", str(serve), "-o", str(tmp_path / "x.html")
    )
    bad = tmp_path / "bad.json"
    bad.write_text("{nope")
    assert "not JSON" in run_error(capsys, "report", "-r", str(bad), "-o", str(tmp_path / "x.html"))
    assert "exactly one" in run_error(capsys, "report", "-o", str(tmp_path / "x.html"))
    assert "not a complete" in run_error(capsys, "report", "-r", str(odd), "--command", "plan",
                                         "-o", str(tmp_path / "x.html"))  # fmt: skip
    # a value of the wrong shape (a string where an object belongs) is one line, not a traceback
    wrong = tmp_path / "wrong.json"
    wrong.write_text(json.dumps({"bom": [{"category": "switch", "cost_usd": "x"}],
                                 "switches": "many"}))  # fmt: skip
    assert "not a complete" in run_error(capsys, "report", "-r", str(wrong), "-o",
                                         str(tmp_path / "x.html"))  # fmt: skip
    assert not (tmp_path / "x.html").exists()


def test_pareto_axis_units_read_the_longest_suffix() -> None:
    """A rate column is bytes/s, not seconds, though it ends in ``_s`` too."""
    from aifabric.report.html import _unit

    assert _unit("bisection_bandwidth_bytes_per_s") == "bytes/s"
    assert _unit("memory_per_gpu_bytes__total") == "bytes"
    assert _unit("iteration_time_s") == "s"
    assert _unit("cost__total_usd") == "USD"
    assert _unit("energy_j") == "J"
