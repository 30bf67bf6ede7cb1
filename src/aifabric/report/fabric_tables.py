"""Rich output of the fabric planner."""

from __future__ import annotations

from typing import Any

from rich.table import Table

from aifabric.report.tables import _console
from aifabric.units import format_bandwidth, format_bytes, format_duration, format_usd


def plan_report(r: dict[str, Any]) -> None:
    console = _console()
    title = r.get("preset") or r.get("design", "fabric")
    console.print(
        f"[bold]{title}[/]: {r['gpus']:,} x {r['gpu']} in {r['nodes']:,} servers, "
        f"{r['nics']:,} NICs at {format_bandwidth(r['nic_speed_bytes_per_s'])}, {r['planes']} plane(s), "
        f"{r['tiers']} tier(s) of {r['switch_model']} (radix {r['switch_radix']})"
    )
    if r.get("source"):
        console.print(f"source: {r['source']}")
    table = Table(title="Bill of materials")
    for col in ("category", "item", "tier", "count", "power", "cost (likely)"):
        table.add_column(
            col, justify="right" if col in ("count", "power", "cost (likely)") else "left"
        )
    for line in r["bom"]:
        table.add_row(line["category"], line["item"], line["tier"], f"{line['count']:,}",
                      f"{line['power_w'] / 1e3:,.1f} kW", format_usd(line["cost_usd"]["likely"]))  # fmt: skip
    console.print(table)
    cost, power = r["cost"], r["power"]
    share = cost.get("network_to_gpu_cost_ratio")
    console.print(
        f"switches: {r['switches']['leaf']} leaf + {r['switches']['spine']} spine + "
        f"{r['switches']['core']} core = {r['switches']['total']}; network "
        f"{format_usd(cost['total_usd'])} ({format_usd(cost['low_usd'])}-{format_usd(cost['high_usd'])}"
        f", {format_usd(cost['per_gpu_usd'])}/GPU"
        + (f", {share:.0%} of GPU cost" if share else "")
        + f"), {power['total_w'] / 1e3:,.0f} kW"
    )
    console.print(
        f"bisection {format_bandwidth(r['bisection_bandwidth_bytes_per_s'])} "
        f"({r['bisection_ratio']:.0%} of full), scale-out {format_bandwidth(r['bandwidth_per_gpu_bytes_per_s'])}/GPU,"
        f" scale-up {format_bandwidth(r['scale_up']['bandwidth_per_gpu_bytes_per_s'], bits=False)}/GPU per direction"
        f" in {r['scale_up']['domains']:,} domain(s) of {r['scale_up']['domain_size']} GPUs"
        + (
            f"; {r['management_ports']} management (UFM) port(s)"
            if r.get("management_ports")
            else ""
        )
    )
    for warning in r.get("warnings", []):
        console.print(f"[yellow]warning:[/] {warning}")
    if "traffic_by_tier" in r:
        _traffic(r)


def _traffic(r: dict[str, Any]) -> None:
    console = _console()
    job = r["job"]
    table = Table(title=f"{job['model']} per iteration, by tier")
    table.add_column("dimension")
    for tier in ("scale_up", "leaf", "spine", "core"):
        table.add_column(tier.replace("_", "-"), justify="right")
    dims: dict[str, dict[str, float]] = {}
    for row in r["traffic_by_tier"]:
        dims.setdefault(row["dimension"], {})[row["tier"]] = row["bytes"]
    for dim, tiers in dims.items():
        table.add_row(
            dim, *(format_bytes(tiers.get(t, 0.0)) for t in ("scale_up", "leaf", "spine", "core"))
        )
    console.print(table)
    layers = Table(title="Bandwidth per link layer")
    for col in ("layer", "bytes/iteration", "required", "available", "min time"):
        layers.add_column(col)
    for x in r["tier_bandwidth"]:
        layers.add_row(x["layer"], format_bytes(x["bytes"]), format_bandwidth(x["required_bytes_per_s"]),
                       format_bandwidth(x["available_bytes_per_s"]), format_duration(x["min_time_s"]))  # fmt: skip
    console.print(layers)
    console.print(
        f"compute ~{format_duration(job['compute_time_s'])} per iteration; communication needs at "
        f"least {format_duration(r['min_communication_time_s'])} on this fabric"
    )


def compare_report(r: dict[str, Any]) -> None:
    console = _console()
    table = Table(title=f"{r['gpus']:,} x {r['gpu']}: training vs inference fabric")
    table.add_column("")
    table.add_column("training", justify="right")
    table.add_column("inference", justify="right")
    t, i = r["training"], r["inference"]
    rows = [
        ("design", t["design"], i["design"]),
        ("NICs", f"{t['nics']:,} x {format_bandwidth(t['nic_speed_bytes_per_s'])}",
         f"{i['nics']:,} x {format_bandwidth(i['nic_speed_bytes_per_s'])}"),
        ("switches", f"{t['switches']['total']:,}", f"{i['switches']['total']:,}"),
        ("transceivers", f"{t['transceivers']:,}", f"{i['transceivers']:,}"),
        ("NIC cost", format_usd(t["cost"]["nics_usd"]), format_usd(i["cost"]["nics_usd"])),
        ("switch cost", format_usd(t["cost"]["switches_usd"]), format_usd(i["cost"]["switches_usd"])),
        ("optics + cables", format_usd(t["cost"]["optics_usd"]), format_usd(i["cost"]["optics_usd"])),
        ("network total", format_usd(t["cost"]["total_usd"]), format_usd(i["cost"]["total_usd"])),
        ("share of GPU cost", f"{t['cost'].get('network_to_gpu_cost_ratio', 0):.1%}",
         f"{i['cost'].get('network_to_gpu_cost_ratio', 0):.1%}"),
        ("power", f"{t['power']['total_w'] / 1e3:,.0f} kW", f"{i['power']['total_w'] / 1e3:,.0f} kW"),
        ("bandwidth per GPU", format_bandwidth(t["bandwidth_per_gpu_bytes_per_s"]),
         format_bandwidth(i["bandwidth_per_gpu_bytes_per_s"])),
    ]  # fmt: skip
    for row in rows:
        table.add_row(*row)
    console.print(table)
    console.print(
        f"training network costs {r['training_to_inference_cost_ratio']:.1f}x the inference network"
    )
    st = Table(title="Hybrid strategies (seed 004)")
    for col in (
        "strategy",
        "GPUs",
        "network",
        "GPUs cost",
        "capex",
        "utilization",
        "capex per utilized GPU",
    ):
        st.add_column(col)
    for s in r["strategies"]:
        util = s["utilization"]
        st.add_row(
            s["strategy"], f"{s['gpus']:,}", format_usd(s["network_cost_usd"]),
            format_usd(s["gpu_cost_usd"]), format_usd(s["capex_usd"]),
            "not stated" if util is None else f"{util['low']:.0%}-{util['high']:.0%}",
            "-" if s["capex_per_utilized_gpu_usd"] is None else format_usd(s["capex_per_utilized_gpu_usd"]),
        )  # fmt: skip
    console.print(st)
