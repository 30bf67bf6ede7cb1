"""``aifabric simulate cluster``: training, inference and storage on one shared network."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from aifabric.cli.edges import JsonFlag, MaxWork, emit_json
from aifabric.cli.simulate import simulate_app

Opt = typer.Option


@simulate_app.command("cluster")
def simulate_cluster_cmd(
    file: Annotated[
        Path,
        Opt("-f", "--file", help="Cluster scenario YAML (see examples/cluster/)."),
    ],
    sets: Annotated[
        list[str] | None,
        Opt("--set", metavar="KEY=VALUE", help="Override a scenario key: dotted.key=value."),
    ] = None,
    timeseries: Annotated[
        Path | None,
        Opt(help="Write per-class link utilisation and per-workload progress over time (CSV)."),
    ] = None,
    max_work: MaxWork = None,
    as_json: JsonFlag = False,
) -> None:
    """Each workload alone and all together on one fabric: slowdowns, tiers, GPU use, cost."""
    from aifabric.outputs import check_output_paths, write_all_atomic
    from aifabric.serving.config import apply_sets
    from aifabric.spec.scenario import load_scenario

    check_output_paths([("--timeseries", timeseries)])
    data = apply_sets(load_scenario(file), sets or [])
    result, series = cluster_scenario_result(data, file.parent, max_work=max_work,
                                             with_series=timeseries is not None)  # fmt: skip
    if timeseries is not None:
        write_all_atomic([(timeseries, series)])
    if as_json:
        emit_json(result)
        return
    _print(result)


def cluster_scenario_result(data: dict[str, Any], base_dir: Path | None, *,
                            max_work: float | None = None,
                            with_series: bool = False) -> tuple[dict[str, Any], Any]:  # fmt: skip
    """(JSON result, time series) of ``aifabric simulate cluster`` on a scenario mapping:
    the one home of the command's logic, shared by the CLI and ``aifabric sweep``
    (aifabric.explore.runners). ``base_dir``: where relative workload files are found."""
    from aifabric.cluster.config import parse_cluster
    from aifabric.cluster.run import simulate_cluster

    cfg = parse_cluster(data, base_dir, max_work=max_work)
    result, series = simulate_cluster(cfg, with_series=with_series)
    return result, series


def _print(r: dict[str, Any]) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console()
    console.print(f"[bold]simulate cluster[/]: strategy {r['strategy']}, "
                  f"{r['duration_s']:,.0f} s simulated, classes {r['classes']['policy']}")  # fmt: skip
    t = Table(title="Workloads: alone -> shared")
    for col in ("workload", "kind", "GPUs", "network", "figure", "alone", "shared", "slowdown"):
        t.add_column(col, justify="right" if col in ("GPUs", "alone", "shared", "slowdown")
                     else "left")  # fmt: skip
    for w in r["workloads"]:
        a, s, d = w["alone"], w["shared"], w["slowdown"]
        if w["kind"] == "train":
            rows = [("step time (s)", a["step_time_s"], s["step_time_s"], d["step_time_ratio"]),
                    ("MFU", a["mfu"], s["mfu"], d["mfu_ratio"]),
                    ("steps", a["steps"], s["steps"], d["tokens_per_s_ratio"])]  # fmt: skip
        else:
            rows = [("TTFT p99 (s)", a["ttft_s"]["p99"], s["ttft_s"]["p99"], d["ttft_p99_ratio"]),
                    ("TBT p99 (ms)", _ms(a["tbt_s"]["p99"]), _ms(s["tbt_s"]["p99"]), d["tbt_p99_ratio"]),
                    ("SLO attained", a["slo_attainment"], s["slo_attainment"],
                     d["slo_attainment_change_fraction"])]  # fmt: skip
        for i, (fig, va, vs, vd) in enumerate(rows):
            head = (w["name"], w["kind"], f"{w['gpus']:,}", w["network"]) if i == 0 else ("",) * 4
            t.add_row(*head, fig, _fmt(va), _fmt(vs), _fmt(vd))
    console.print(t)
    tt = Table(title="Network tiers: utilisation and share by class")
    for col in ("network", "tier", "utilization", "max link", "training", "inference", "storage"):
        tt.add_column(col, justify="left" if col in ("network", "tier") else "right")
    for net, tiers in r["tiers"].items():
        for name, v in tiers.items():
            sh = v["bytes_fraction_by_class"]
            tt.add_row(net, name, f"{v['utilization']:.1%}", f"{v['max_link_utilization']:.1%}",
                       f"{sh['training']:.0%}", f"{sh['inference']:.0%}", f"{sh['storage']:.0%}")  # fmt: skip
    console.print(tt)
    c, g = r["cost_usd"], r["gpu_utilization"]
    per = c["usd_per_useful_gpu_hour"]
    console.print(f"GPU utilisation {g['overall_utilization']:.1%} busy, "
                  f"{g['compute_utilization']:.1%} of peak FLOP, of {c['gpus']:,} GPUs; cost "
                  f"{c['total_usd']:,.2f} USD ({c['gpu_capital_usd']:,.2f} GPUs + "
                  f"{c['network_capital_usd']:,.2f} network), "
                  f"{'-' if per is None else f'{per:,.3f}'} USD per useful GPU-hour; "
                  f"wall {r['wall_s']:.1f} s")  # fmt: skip


def _ms(v: float | None) -> float | None:
    return None if v is None else 1e3 * v


def _fmt(v: Any) -> str:
    if v is None:
        return "-"
    if isinstance(v, int):
        return f"{v:,}"
    return f"{v:,.3f}" if abs(v) < 1000 else f"{v:,.0f}"
