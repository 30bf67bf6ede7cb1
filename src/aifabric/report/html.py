"""Self-contained HTML reports of command results: interactive Plotly charts (plotly.js
inline, once per file, so the file opens with no network access) and tables.

Each chart is drawn from the ``--json`` object the command prints, nothing else; where a
view needs data that object does not carry (a serving queue over time needs
``--timeseries``; a step timeline needs ``--trace``), the report says so instead of
drawing it. Every axis names its unit, and every chart has a caption saying what to look
for. Plotly: https://plotly.com/python/ (``plotly.io.to_html``, ``plotly.offline.get_plotlyjs``).
"""

from __future__ import annotations

import html
import json
from collections.abc import Callable
from typing import Any

from aifabric.errors import ConfigError

__all__ = ["COMMANDS", "detect_command", "render"]

_STYLE = """
body{font-family:system-ui,sans-serif;margin:1.5em;color:#222;max-width:1100px}
h2{border-bottom:1px solid #ccc;padding-bottom:.2em;margin-top:1.6em}
p.caption{color:#444;margin:.2em 0 1.2em}
p.missing{color:#8a5a00}
table{border-collapse:collapse;margin:.6em 0;font-size:.92em}
td,th{border:1px solid #ddd;padding:.2em .6em;text-align:left}
td.num{text-align:right;font-family:monospace}
"""


class _Doc:
    """The report being built: sections of charts, captions and tables."""

    def __init__(self) -> None:
        self.parts: list[str] = []
        self.figures = 0

    def heading(self, text: str) -> None:
        self.parts.append(f"<h2>{html.escape(text)}</h2>")

    def figure(self, fig: Any, caption: str) -> None:
        import plotly.io as pio

        self.figures += 1
        fig.update_layout(template="plotly_white", height=420, margin={"t": 60})
        self.parts.append(pio.to_html(fig, include_plotlyjs=False, full_html=False,
                                      div_id=f"figure-{self.figures}",
                                      config={"displaylogo": False}))  # fmt: skip
        self.parts.append(f'<p class="caption">{html.escape(caption)}</p>')

    def missing(self, text: str) -> None:
        self.parts.append(f'<p class="missing">{html.escape(text)}</p>')

    def table(self, header: list[str], rows: list[list[Any]], table_id: str = "") -> None:
        def cell(v: Any) -> str:
            if isinstance(v, bool) or v is None or isinstance(v, str):
                return f"<td>{html.escape(str(v))}</td>"
            text = f"{v:,}" if isinstance(v, int) else _number(v)
            return f'<td class="num" data-value="{html.escape(json.dumps(v))}">{text}</td>'

        head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
        body = "".join("<tr>" + "".join(cell(v) for v in r) + "</tr>" for r in rows)
        ident = f' id="{html.escape(table_id)}"' if table_id else ""
        self.parts.append(f"<table{ident}><tr>{head}</tr>{body}</table>")


def _number(v: float) -> str:
    """Large numbers with thousands separators, small ones to 6 significant digits."""
    return f"{v:,.0f}" if abs(v) >= 1e5 else f"{v:,.6g}"


def _go() -> Any:
    import plotly.graph_objects as go

    return go


# --- plan ----------------------------------------------------------------------------------

_LAYERS = (("leaf", "endpoint_leaf"), ("spine", "leaf_spine"), ("core", "spine_core"))


def _plan(doc: _Doc, results: list[dict[str, Any]]) -> None:
    go = _go()
    for n, r in enumerate(results):
        label = f"{r['design']} fabric, {r['gpus']:,} x {r['gpu']}"
        doc.heading(f"Topology: {label}")
        sw, links = r["switches"], r["links"]
        levels = [("GPUs' NICs", int(r["nics"]), "")]
        levels += [(t, int(sw.get(t, 0)), str(r["switch_models"].get(t, ""))) for t, _ in _LAYERS
                   if sw.get(t, 0)]  # fmt: skip
        fig = go.Figure()
        for i, (name, count, model) in enumerate(levels):
            fig.add_trace(go.Scatter(
                x=[0.5], y=[i], mode="markers+text", marker={"symbol": "square", "size": 46,
                "color": ["#9ecae1", "#59a14f", "#f28e2b", "#e15759"][i]},
                text=[f"{name}: {count:,}" + (f" x {model}" if model else "")],
                textposition="middle right", hoverinfo="text", showlegend=False))  # fmt: skip
            if i:
                layer = _LAYERS[i - 1][1]
                fig.add_shape(type="line", x0=0.5, x1=0.5, y0=i - 1 + 0.18, y1=i - 0.18,
                              line={"width": 3, "color": "#888"})  # fmt: skip
                fig.add_annotation(x=0.52, y=i - 0.5, showarrow=False, xanchor="left",
                                   text=f"{int(links.get(layer, 0)):,} links ({layer})")  # fmt: skip
        fig.update_layout(title=f"Tiers of the {label}",
                          xaxis={"visible": False, "range": [0.3, 1.6]},
                          yaxis={"title": "tier (switch counts; links between tiers)",
                                 "tickvals": list(range(len(levels))),
                                 "ticktext": [lv[0] for lv in levels]})  # fmt: skip
        doc.figure(fig, "Each row is a tier: how many switches it has and of which model; the "
                        "numbers between rows are the links that join them. A tier with fewer "
                        "uplinks than downlinks is oversubscribed.")  # fmt: skip
        doc.table(["tier", "switches", "model"],
                  [[t, int(sw.get(t, 0)), r["switch_models"].get(t)] for t, _ in _LAYERS],
                  table_id=f"switches-{n}")  # fmt: skip
        doc.heading("Bill of materials and cost")
        by_cat: dict[str, float] = {}
        for line in r["bom"]:
            cost = line.get("cost_usd") or {}
            by_cat[line["category"]] = by_cat.get(line["category"], 0.0) + float(
                cost.get("likely") or 0.0
            )
        fig = go.Figure(go.Bar(x=list(by_cat), y=list(by_cat.values()), name="likely cost"))
        fig.update_layout(title="Network cost by category (likely prices)",
                          xaxis={"title": "category"}, yaxis={"title": "cost (USD)"})  # fmt: skip
        doc.figure(fig, f"Where the {r['cost']['total_usd']:,.0f} USD of network goes (likely "
                        f"prices of {r['cost'].get('price_date', 'the catalog')}); the range is "
                        f"{r['cost']['low_usd']:,.0f}-{r['cost']['high_usd']:,.0f} USD.")  # fmt: skip
        doc.table(["category", "item", "tier", "count", "power (W)", "likely cost (USD)"],
                  [[b["category"], b["item"], b.get("tier"), b["count"], b.get("power_w"),
                    (b.get("cost_usd") or {}).get("likely")] for b in r["bom"]],
                  table_id=f"bom-{n}")  # fmt: skip
        doc.table(["quantity", "value"], [
            ["total network cost (USD)", r["cost"]["total_usd"]],
            ["network cost per GPU (USD)", r["cost"]["per_gpu_usd"]],
            ["network power (W)", r["power"]["total_w"]],
            ["bisection bandwidth (bytes/s)", r["bisection_bandwidth_bytes_per_s"]],
        ], table_id=f"cost-{n}")  # fmt: skip
        doc.heading("Bytes per tier per parallel dimension")
        rows = r.get("traffic_by_tier")
        if not rows:
            doc.missing("This plan has no job (give model and parallel keys to `aifabric plan`), "
                        "so there is no traffic to place on the tiers.")  # fmt: skip
            continue
        tiers = ["scale_up", "leaf", "spine", "core"]
        fig = go.Figure()
        for dim in sorted({x["dimension"] for x in rows}):
            fig.add_trace(go.Bar(name=dim, x=tiers, y=[
                sum(float(x["bytes"]) for x in rows if x["dimension"] == dim and x["tier"] == t)
                / 1e9 for t in tiers]))  # fmt: skip
        fig.update_layout(barmode="stack", title="Bytes per iteration by tier and dimension",
                          xaxis={"title": "highest tier the bytes cross"},
                          yaxis={"title": "bytes per iteration (GB)"})  # fmt: skip
        doc.figure(fig, "Each bar is a tier; its segments are the parallel dimensions whose "
                        "traffic climbs that high. Bytes above the scale-up domain are what "
                        "the scale-out fabric must carry.")  # fmt: skip


# --- simulate collective -------------------------------------------------------------------


def _collective(doc: _Doc, results: list[dict[str, Any]]) -> None:
    go = _go()
    doc.heading("Bus bandwidth against message size")
    fig = go.Figure()
    for r in results:
        pts = sorted(r["results"], key=lambda x: x["size_bytes"])
        fig.add_trace(go.Scatter(
            x=[p["size_bytes"] for p in pts], y=[p["busbw_bytes_per_s"] / 1e9 for p in pts],
            mode="lines+markers", name=f"{r['op']} {r['algorithm']} {r['routing']}"))  # fmt: skip
    fig.update_layout(title="busbw vs message size",
                      xaxis={"title": "message size (bytes)", "type": "log"},
                      yaxis={"title": "bus bandwidth (GB/s)"})  # fmt: skip
    doc.figure(fig, "nccl-tests' bus bandwidth per routing mode: it rises with size until the "
                    "slowest link's rate caps it. A line below the others at large sizes is "
                    "losing bandwidth to collisions (ECMP) or to the tier it crosses.")  # fmt: skip
    doc.heading("Hottest links")
    for n, r in enumerate(results):
        pts = [p for p in r["results"] if p.get("hot_links")]
        if not pts:
            doc.missing("No per-link data in this result.")
            continue
        names = sorted({h["link"] for p in pts for h in p["hot_links"]})
        z = [[next((h["utilization"] for h in p["hot_links"] if h["link"] == ln), None)
               for ln in names] for p in pts]  # fmt: skip
        fig = go.Figure(go.Heatmap(z=z, x=names, y=[f"{p['size_bytes']:.3g} B" for p in pts],
                                   colorbar={"title": "utilization (0-1)"}, zmin=0, zmax=1))  # fmt: skip
        fig.update_layout(title=f"Link utilization, hottest links ({r['routing']})",
                          xaxis={"title": "link"}, yaxis={"title": "message size (bytes)"})  # fmt: skip
        doc.figure(fig, "Rows are message sizes, columns the hottest links the simulator "
                        "reports (utilization over the collective, 0-1). A few hot columns "
                        "mean traffic piles on a few links.")  # fmt: skip
        doc.table(["size (bytes)", "time (s)", "busbw (bytes/s)", "analytic time (s)"],
                  [[p["size_bytes"], p["time_s"], p["busbw_bytes_per_s"], p["analytic_time_s"]]
                   for p in r["results"]], table_id=f"collective-{n}")  # fmt: skip


# --- simulate train ------------------------------------------------------------------------


def _train(doc: _Doc, results: list[dict[str, Any]]) -> None:
    go = _go()
    for n, r in enumerate(results):
        p = r["parallel"]
        label = (f"{r['model']} on {r['gpus']:,} x {r['gpu']}, tp {p['tp']} pp {p['pp']} "
                 f"dp {p['dp']}")  # fmt: skip
        doc.heading(f"Step breakdown: {label}")
        # compute_s is the busiest stage's kernels plus the optimizer step (training.report)
        parts = {"compute + optimizer (busiest stage)": r["compute_s"],
                 "pipeline bubble": r["bubble_fraction"] * r["iteration_time_s"]}  # fmt: skip
        for dim, s in sorted(r["exposed_comm_s"].items()):
            parts[f"exposed {dim} comm"] = s
        fig = go.Figure([go.Bar(name=k, x=["step"], y=[v]) for k, v in parts.items()])
        fig.update_layout(barmode="stack", title=f"One step: {r['iteration_time_s']:.4g} s",
                          xaxis={"title": ""}, yaxis={"title": "time per step (s)"})  # fmt: skip
        doc.figure(fig, "What the step's time is made of. The parts are measured on different "
                        "stages and may overlap, so they need not add up to the step exactly; "
                        "exposed communication is the part no computation hides.")  # fmt: skip
        dims = sorted(r["comm_s"])
        fig = go.Figure([
            go.Bar(name="total", x=dims, y=[r["comm_s"][d] for d in dims]),
            go.Bar(name="exposed", x=dims, y=[r["exposed_comm_s"].get(d, 0.0) for d in dims]),
        ])  # fmt: skip
        fig.update_layout(barmode="group", title="Communication per parallel dimension",
                          xaxis={"title": "dimension"}, yaxis={"title": "time per step (s)"})  # fmt: skip
        doc.figure(fig, "Total against exposed communication per dimension: a tall exposed bar "
                        "is the dimension to move to a faster tier or to overlap better.")  # fmt: skip
        doc.missing("The per-stage timeline is not in the JSON: `aifabric simulate train "
                    "--trace FILE` writes it as Chrome trace events (open it in Perfetto).")  # fmt: skip
        rows = [["iteration time (s)", r["iteration_time_s"]], ["MFU", r["mfu"]],
                ["tokens/s", r["tokens_per_s"]],
                ["memory per GPU (bytes)", r["memory_per_gpu_bytes"]["total"]],
                ["fits in memory", r["fits_in_memory"]]]  # fmt: skip
        if r.get("cost_usd"):
            rows.append(["capital cost per step (USD)", r["cost_usd"].get("total_usd")])
        doc.table(["quantity", "value"], rows, table_id=f"train-{n}")


# --- simulate serve ------------------------------------------------------------------------

_PCTS = ("p50", "p95", "p99")


def _serve(doc: _Doc, results: list[dict[str, Any]]) -> None:
    go = _go()
    for n, r in enumerate(results):
        sc = r["scenario"]
        doc.heading(f"Latency per SLO tier: {sc['model']}, {sc['mode']}, {sc['routing']}")
        tiers = r.get("tiers") or {}
        for metric, unit in (("ttft_s", "time to first token (s)"),
                             ("tbt_s", "time between tokens (s)")):  # fmt: skip
            fig = go.Figure()
            groups = {"all": r[metric], **{t: v[metric] for t, v in tiers.items()}}
            for name, d in groups.items():
                fig.add_trace(go.Scatter(x=[50, 95, 99], y=[d[p] for p in _PCTS],
                                         mode="lines+markers", name=name))  # fmt: skip
            fig.update_layout(title=f"{metric[:-2].upper()} percentiles by tier",
                              xaxis={"title": "percentile of requests (%)"},
                              yaxis={"title": unit})  # fmt: skip
            doc.figure(fig, "The result carries p50, p95 and p99 per tier (not every sample), "
                            "so this is the percentile curve through those three points: how "
                            "long the slowest requests of each tier wait.")  # fmt: skip
        doc.table(["tier", "requests", "completed", "SLO attainment", "TTFT p99 (s)",
                   "TBT p99 (s)"],
                  [["all", r["requests"], r["completed"], r["slo_attainment"],
                    r["ttft_s"]["p99"], r["tbt_s"]["p99"]]]
                  + [[t, v["requests"], v["completed"], v["slo_attainment"], v["ttft_s"]["p99"],
                      v["tbt_s"]["p99"]] for t, v in tiers.items()], table_id=f"serve-{n}")  # fmt: skip
        doc.heading("Queue and instances")
        q = r["queue_depth"]
        doc.table(["quantity", "value"], [["queue depth, mean", q["mean"]],
                                          ["queue depth, p99", q["p99"]],
                                          ["queue depth, max", q["max"]]]
                  + [[f"{role} GPUs", u["gpus"]] for role, u in r["utilization_by_role"].items()],
                  table_id=f"queue-{n}")  # fmt: skip
        doc.missing("Queue depth and instance counts over time are not in the JSON: "
                    "`aifabric simulate serve --timeseries FILE` writes them.")  # fmt: skip
        roles = list(r["utilization_by_role"])
        fig = go.Figure([
            go.Bar(name="busy", x=roles,
                   y=[r["utilization_by_role"][x]["busy_fraction"] for x in roles]),
            go.Bar(name="compute of peak", x=roles,
                   y=[r["utilization_by_role"][x]["compute_utilization"] for x in roles]),
            go.Bar(name="HBM bandwidth of peak", x=roles,
                   y=[r["utilization_by_role"][x]["hbm_bandwidth_utilization"] for x in roles]),
        ])  # fmt: skip
        fig.update_layout(barmode="group", title="GPU use by role",
                          xaxis={"title": "role"}, yaxis={"title": "fraction (0-1)"})  # fmt: skip
        doc.figure(fig, "Busy is the share of time an instance runs a batch; the other two are "
                        "against datasheet peaks. Decode is usually memory-bound: HBM bandwidth "
                        "well above compute.")  # fmt: skip
        doc.heading("KV cache and network")
        kv = r["kv_cache"]
        fig = go.Figure(go.Bar(x=list(kv["hit_ratio_by_tier"]),
                               y=list(kv["hit_ratio_by_tier"].values())))  # fmt: skip
        fig.update_layout(title=f"KV prefix hits by tier (overall {kv['hit_ratio']:.1%})",
                          xaxis={"title": "where the reused prefix was found"},
                          yaxis={"title": "share of prompt tokens (0-1)"})  # fmt: skip
        doc.figure(fig, "The share of prompt tokens served from cached KV instead of being "
                        "recomputed, by the tier that held them.")  # fmt: skip
        nb = r["network_bytes"]
        fig = go.Figure(go.Bar(x=list(nb), y=[v / 1e9 for v in nb.values()]))
        fig.update_layout(title="Network bytes by kind", xaxis={"title": "traffic kind"},
                          yaxis={"title": "bytes over the run (GB)"})  # fmt: skip
        doc.figure(fig, "What the deployment puts on the network: KV transfers between prefill "
                        "and decode, prefix fetches and stores, TP all-reduces, EP all-to-all.")  # fmt: skip


# --- simulate cluster ----------------------------------------------------------------------


def _cluster(doc: _Doc, results: list[dict[str, Any]]) -> None:
    go = _go()
    doc.heading("Strategies side by side")
    fig = go.Figure()
    names = sorted({w["name"] for r in results for w in r["workloads"]})
    for r in results:
        by = {w["name"]: w for w in r["workloads"]}
        fig.add_trace(go.Bar(name=r["strategy"], x=names,
                             y=[_slowdown(by[n]) if n in by else None for n in names]))  # fmt: skip
    fig.update_layout(barmode="group", title="Each workload's slowdown from sharing",
                      xaxis={"title": "workload"},
                      yaxis={"title": "slowdown (shared / alone, 1 = none)"})  # fmt: skip
    doc.figure(fig, "How much slower each workload runs than alone on the same GPUs, per "
                    "strategy (training: step time; serving: TTFT p99; the ratio of shared to alone).")  # fmt: skip
    fig = go.Figure(go.Bar(x=[r["strategy"] for r in results],
                           y=[r["cost_usd"].get("usd_per_useful_gpu_hour") for r in results]))  # fmt: skip
    fig.update_layout(title="Cost per useful GPU-hour", xaxis={"title": "strategy"},
                      yaxis={"title": "cost (USD per useful GPU-hour)"})  # fmt: skip
    doc.figure(fig, "GPU and network capital divided by the GPU-hours spent on useful work: "
                    "the lower, the better the cluster is used.")  # fmt: skip
    doc.table(["strategy", "workload", "kind", "slowdown"],
              [[r["strategy"], w["name"], w["kind"], _slowdown(w)] for r in results
               for w in r["workloads"]], table_id="cluster")  # fmt: skip


def _slowdown(workload: dict[str, Any]) -> float | None:
    s = workload.get("slowdown")
    if isinstance(s, dict):
        for key in ("step_time_ratio", "ttft_p99_ratio"):
            if isinstance(s.get(key), (int, float)):
                return float(s[key])
        nums = [v for v in s.values() if isinstance(v, (int, float))]
        return float(nums[0]) if nums else None
    return float(s) if isinstance(s, (int, float)) else None


# --- sweep results -------------------------------------------------------------------------


def _pareto(doc: _Doc, results: list[dict[str, Any]]) -> None:
    go = _go()
    for r in results:
        metrics = [m["column"] for m in r["metrics"]]
        doc.heading("Pareto front: " + " vs ".join(metrics))
        if len(metrics) < 2:
            doc.missing("A front needs two metrics; the table lists the best points.")
        else:
            x, y = metrics[0], metrics[1]
            rows = sorted(r["rows"], key=lambda p: p[x])
            others = r.get("points") or []
            fig = go.Figure()
            if others:
                fig.add_trace(go.Scatter(x=[p[x] for p in others], y=[p[y] for p in others],
                                         mode="markers", name="feasible points",
                                         marker={"color": "#bbb"}))  # fmt: skip
            hover = ["<br>".join(f"{k}: {v}" for k, v in p.items() if not isinstance(v, dict))
                     for p in rows]  # fmt: skip
            fig.add_trace(go.Scatter(x=[p[x] for p in rows], y=[p[y] for p in rows],
                                     mode="lines+markers", name="Pareto front", text=hover,
                                     hoverinfo="text", line={"shape": "hv"}))  # fmt: skip
            fig.update_layout(title=f"Pareto front ({len(rows)} of {r['candidate_points']} "
                                    "feasible points)",
                              xaxis={"title": f"{x} ({_unit(x)})"},
                              yaxis={"title": f"{y} ({_unit(y)})"})  # fmt: skip
            doc.figure(fig, "The points no other point beats on both metrics; hover for each "
                            "design's inputs. Moving along the front trades one metric for "
                            "the other.")  # fmt: skip
        cols = list(r["rows"][0]) if r["rows"] else []
        keep = [c for c in cols if c in ("hash", "bottleneck") or c in metrics][:12]
        doc.table(keep, [[p.get(c) for c in keep] for p in r["rows"]], table_id="pareto")


def _unit(column: str) -> str:
    """The unit of a stored column from its name's suffix; a flattened sub-key such as
    ``memory_per_gpu_bytes__total`` takes its parent key's unit."""
    # longest suffix first: "_bytes_per_s" must not be read as seconds ("_s")
    for suffix, unit in (("_bytes_per_s", "bytes/s"), ("_per_token", "USD per token"),
                         ("_bytes", "bytes"), ("_usd", "USD"), ("_s", "s"), ("_w", "W"),
                         ("_j", "J")):  # fmt: skip
        if column.endswith(suffix):
            return unit
    if "__" in column:
        return _unit(column.rsplit("__", 1)[0])
    return "as stored"


COMMANDS: dict[str, Callable[[_Doc, list[dict[str, Any]]], None]] = {
    "plan": _plan, "simulate collective": _collective, "simulate train": _train,
    "simulate serve": _serve, "simulate cluster": _cluster, "results pareto": _pareto,
}  # fmt: skip


def detect_command(result: dict[str, Any]) -> str | None:
    """The command a ``--json`` object came from, by keys only that command prints."""
    if "bom" in result and "switches" in result:
        return "plan"
    if isinstance(result.get("results"), list) and "routing" in result and "op" in result:
        return "simulate collective"
    if "iteration_time_s" in result and "mfu" in result and "parallel" in result:
        return "simulate train"
    if "ttft_s" in result and "tbt_s" in result and "kv_cache" in result:
        return "simulate serve"
    if "workloads" in result and "strategy" in result:
        return "simulate cluster"
    if "metrics" in result and "candidate_points" in result:
        return "results pareto"
    return None


def render(command: str, results: list[dict[str, Any]], *, title: str | None = None) -> str:
    """The report's HTML: plotly.js inline once, then each section."""
    from plotly.offline import get_plotlyjs

    if command not in COMMANDS:
        raise ConfigError(f"report: no report for {command!r}; reports exist for "
                          f"{', '.join(COMMANDS)}")  # fmt: skip
    if not results:
        raise ConfigError("report: give at least one result")
    doc = _Doc()
    try:
        COMMANDS[command](doc, results)
    except (KeyError, TypeError, IndexError, AttributeError, ValueError) as exc:
        raise ConfigError(
            f"report: the result is not a complete `aifabric {command} --json` "
            f"object (missing or wrong {exc}); make it with that command"
        ) from None
    name = title or f"aifabric {command}"
    return ("<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">"
            f"<title>{html.escape(name)}</title><style>{_STYLE}</style>"
            f'<script type="text/javascript">{get_plotlyjs()}</script></head><body>'
            f"<h1>{html.escape(name)}</h1>" + "".join(doc.parts) + "</body></html>")  # fmt: skip
