"""The web app's pages, rendered on the server as plain HTML (no template engine, no build
step); the one script, ``static/app.js``, fills the form and polls a running job.

Every value shown comes from the job's result, the command's ``--json`` object: the job
page's table lists its headline numbers and then every scalar leaf (dotted keys), each
cell carrying the exact JSON value in ``data-value``; the report below it is
:func:`aifabric.report.render_html` of the same object.
"""

from __future__ import annotations

import html
import json
from typing import Any

__all__ = ["HEADLINES", "index_page", "job_page", "report_html", "runs_page"]

#: The numbers a job page shows first, per command (dotted keys of the --json object).
HEADLINES: dict[str, tuple[str, ...]] = {
    "plan": ("gpus", "nodes", "tiers", "switches.total", "links.total", "cost.total_usd",
             "power.total_w", "bisection_bandwidth_bytes_per_s"),
    "traffic train": ("model", "gpus", "bytes_per_iteration", "iteration.total_bytes"),
    "simulate collective": ("op", "size_bytes", "time_s", "busbw_bytes_per_s"),
    "simulate train": ("iteration_time_s", "mfu", "tokens_per_s", "compute_s",
                       "cost_usd.total_usd", "fits_in_memory"),
    "simulate serve": ("requests", "completed", "rejected", "ttft_s.p50", "ttft_s.p99",
                       "tbt_s.p50", "tbt_s.p99", "slo_attainment",
                       "throughput.output_tokens_per_s",
                       "economics.usd_per_million_output_tokens"),
    "simulate cluster": ("strategy", "cost_usd.usd_per_useful_gpu_hour"),
}  # fmt: skip

_STYLE = """
body{font-family:system-ui,sans-serif;margin:0;color:#222}
header{background:#1f3b57;color:#fff;padding:.6em 1.2em}
header a{color:#fff;margin-right:1.2em}
main{padding:1em 1.2em;max-width:1200px}
fieldset{border:1px solid #ccc;margin:.6em 0}
label{display:inline-block;min-width:16em;margin:.2em 0}
textarea{width:100%;height:18em;font-family:monospace}
table{border-collapse:collapse;margin:.6em 0}
td,th{border:1px solid #ddd;padding:.2em .6em;text-align:left}
td.value{text-align:right;font-family:monospace}
.error{color:#b00020;white-space:pre-wrap}
iframe{width:100%;height:1400px;border:1px solid #ccc}
"""


def _page(title: str, body: str, *, script: bool = False) -> str:
    js = '<script src="/static/app.js"></script>' if script else ""
    return (f"<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">"
            f"<title>{html.escape(title)}</title><style>{_STYLE}</style></head><body>"
            '<header><strong>aifabric</strong> &nbsp; <a href="/">new run</a>'
            '<a href="/runs">runs</a><a href="/openapi.json">API (OpenAPI)</a></header>'
            f"<main>{body}</main>{js}</body></html>")  # fmt: skip


def _field(key: str, label: str, kind: str = "number", **attrs: Any) -> str:
    extra = " ".join(f'{k}="{html.escape(str(v))}"' for k, v in attrs.items())
    if kind == "select":
        options = "".join(f'<option value="{html.escape(o)}">{html.escape(o or "(file)")}'
                          "</option>" for o in ["", *attrs.pop("options", [])])  # fmt: skip
        return (f'<label>{html.escape(label)} <select data-key="{key}">{options}</select>'
                "</label><br>")  # fmt: skip
    return (f'<label>{html.escape(label)} <input type="{kind}" data-key="{key}" {extra}>'
            "</label><br>")  # fmt: skip


def index_page(examples: dict[str, dict[str, str]], defaults: dict[str, dict[str, Any]]) -> str:
    """The form: a command, a scenario (an example, or the built-in small one) and the main
    fields of ``plan`` and ``simulate serve``; fields left empty keep the scenario's value."""
    commands = "".join(f'<option value="{html.escape(c)}">{html.escape(c)}</option>'
                       for c in examples)  # fmt: skip
    plan = "".join([
        _field("gpus", "GPUs", min=8, step=8),
        _field("gpu", "GPU", "text", placeholder="h100-sxm"),
        _field("design", "design", "select",
               options=["rail_optimized", "clos", "spine_leaf"]),
        _field("oversubscription", "oversubscription", min=1, step="any"),
        _field("switch", "switch", "text", placeholder="spectrum-4-sn5600"),
    ])  # fmt: skip
    serve = "".join([
        _field("model", "model", "text", placeholder="llama3-8b"),
        _field("workload.rate_rps", "arrival rate (requests/s)", min=0.001, step="any"),
        _field("workload.num_requests", "requests", min=1, step=1),
        _field("cluster.mode", "mode", "select", options=["colocated", "disaggregated"]),
        _field("cluster.instances", "instances (colocated)", min=1, step=1),
        _field("cluster.tp", "TP per instance", min=1, step=1),
        _field("routing.policy", "routing", "select",
               options=["round_robin", "least_loaded", "cache_aware", "kv_aware"]),
    ])  # fmt: skip
    data = json.dumps({"examples": examples, "defaults": defaults}).replace("</", "<\\/")
    body = f"""
<h1>Run a scenario</h1>
<form id="run-form" onsubmit="return false">
<label>command <select id="command">{commands}</select></label><br>
<label>start from <select id="example"></select></label><br>
<fieldset id="fields-plan" data-command="plan"><legend>plan: main keys</legend>{plan}</fieldset>
<fieldset id="fields-serve" data-command="simulate serve"><legend>simulate serve: main keys</legend>{serve}</fieldset>
<p>Scenario (YAML or JSON; the fields above override its keys):</p>
<textarea id="scenario" spellcheck="false"></textarea><br>
<button id="run" type="submit">Run</button> <span id="error" class="error"></span>
</form>
<script id="form-data" type="application/json">{data}</script>
"""
    return _page("aifabric: new run", body, script=True)


def _show(value: Any) -> str:
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return html.escape(str(value))
    if isinstance(value, int):
        return f"{value:,}"
    return f"{value:,.0f}" if abs(value) >= 1e5 else f"{value:,.6g}"


def numbers_table(command: str, result: dict[str, Any]) -> str:
    """Headline numbers, then every scalar leaf; ``data-value`` holds the exact JSON value."""
    from aifabric.explore.sweep import flatten

    flat = flatten(result)
    head = [k for k in HEADLINES.get(command, ()) if k in flat]

    def rows(keys: list[str]) -> str:
        return "".join(
            f'<tr data-key="{html.escape(k)}"><td>{html.escape(k)}</td><td class="value" '
            f"data-value='{html.escape(json.dumps(flat[k]), quote=True)}'>{_show(flat[k])}</td></tr>"
            for k in keys
        )

    rest = [k for k in flat if k not in head and k != "wall_s"]
    return (f'<table id="headline"><tr><th>quantity</th><th>value</th></tr>{rows(head)}</table>'
            f"<details><summary>every number ({len(rest):,})</summary>"
            f'<table id="numbers"><tr><th>key</th><th>value</th></tr>{rows(rest)}</table>'
            "</details>")  # fmt: skip


def job_page(job: Any) -> str:
    """A job: its status while it runs (the script polls and reloads), then the numbers and
    the report, or the one-line refusal."""
    state = html.escape(job.status)
    head = (f'<h1>{html.escape(job.command)} <small>({html.escape(job.id)})</small></h1>'
            f'<p>status: <strong id="status" data-job="{html.escape(job.id)}" '
            f'data-ended="{str(job.ended.is_set()).lower()}">{state}</strong> '
            '<span id="elapsed"></span></p>')  # fmt: skip
    if job.status == "done" and job.result is not None:
        body = (head + numbers_table(job.command, job.result)
                + f'<h2>Report</h2><iframe id="report" src="/jobs/{html.escape(job.id)}/report" '
                'title="report"></iframe>')  # fmt: skip
    elif job.status in ("failed", "cancelled"):
        body = head + f'<p id="error" class="error">{html.escape(job.error or job.status)}</p>'
    else:
        body = head + '<p id="error" class="error"></p>'
    return _page(f"aifabric: {job.command} {job.id}", body, script=True)


def report_html(command: str, result: dict[str, Any]) -> str:
    """The job's report: :func:`aifabric.report.render_html`."""
    from aifabric.report import render_html

    return render_html(command, [result], title=f"aifabric {command}")


def runs_page(jobs: list[Any], db: str | None) -> str:
    """This server's jobs, and the newest rows of the sweep results file when one is given."""
    rows = "".join(
        f'<tr><td><a href="/jobs/{html.escape(j.id)}">{html.escape(j.id)}</a></td>'
        f"<td>{html.escape(j.command)}</td><td>{html.escape(j.status)}</td></tr>"
        for j in jobs
    )
    body = ("<h1>Runs</h1><h2>This server's jobs</h2>"
            f'<table id="jobs"><tr><th>job</th><th>command</th><th>status</th></tr>{rows}</table>')  # fmt: skip
    if db is not None:
        body += f"<h2>Sweep results: {html.escape(db)}</h2>" + _sweep_rows(db)
    return _page("aifabric: runs", body)


def _sweep_rows(db: str) -> str:
    from aifabric.errors import AifabricError
    from aifabric.explore.store import open_readonly

    try:
        con = open_readonly(db)
    except AifabricError as exc:
        return f'<p class="error">{html.escape(" ".join(str(exc).split()))}</p>'
    try:
        names = {str(r[0]) for r in con.execute(
            "SELECT column_name FROM information_schema.columns WHERE table_name = 'points'"
        ).fetchall()}  # fmt: skip
        if not names:
            return "<p>no sweep rows</p>"
        cols = [c for c in ("sweep", "command", "point_index", "status", "bottleneck", "reason",
                            "hash") if c in names]  # fmt: skip
        quoted = ", ".join(f'"{c}"' for c in cols)
        rows = con.execute(f"SELECT {quoted} FROM points ORDER BY sweep, point_index "
                           "LIMIT 200").fetchall()  # fmt: skip
    finally:
        con.close()
    head = "".join(f"<th>{c}</th>" for c in cols)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(str(v))}</td>" for v in r) + "</tr>"
                   for r in rows)  # fmt: skip
    return f'<table id="sweep-rows"><tr>{head}</tr>{body}</table>'
