"""Rich tables of ``simulate train``."""

from __future__ import annotations

from typing import Any

from aifabric.units import format_bytes, format_duration


def train_report(r: dict[str, Any]) -> None:
    from rich.console import Console
    from rich.table import Table

    con = Console()
    par = r["parallel"]
    con.print(f"[bold]{r['model']}[/] on {r['gpus']:,} x {r['gpu']}: tp {par['tp']} pp {par['pp']} "
              f"dp {par['dp']} cp {par['cp']} ep {par['ep']}, {r['microbatches']} micro-batches, "
              f"recompute {r['recompute']}, network {r['network']}, calibration {r['calibration']}")  # fmt: skip
    t = Table("quantity", "value", title="One training step")
    t.add_row("iteration time", format_duration(r["iteration_time_s"]))
    t.add_row("MFU / HFU", f"{r['mfu']:.1%} / {r['hfu']:.1%}")
    t.add_row("model TFLOP/s per GPU", f"{r['gpu_model_flop_per_s'] / 1e12:.0f}")
    t.add_row("tokens/s", f"{r['tokens_per_s']:,.0f}")
    t.add_row("compute (busiest stage)", format_duration(r["compute_s"]))
    t.add_row("pipeline bubble", f"{r['bubble_fraction']:.1%}")
    for d, v in r["exposed_comm_s"].items():
        t.add_row(f"exposed {d} comm (of {format_duration(r['comm_s'].get(d, 0.0))})",
                  format_duration(v))  # fmt: skip
    mem = r["memory_per_gpu_bytes"]
    fits = "fits" if r["fits_in_memory"] else "[red]does not fit[/]"
    t.add_row(
        "memory per GPU", f"{format_bytes(mem['total'])} of {format_bytes(r['hbm_bytes'])} ({fits})"
    )
    for name, v in r["straggler_cost_s"].items():
        t.add_row(f"straggler cost: {name}", format_duration(v))
    if "time_to_train_s" in r:
        t.add_row("time to train", f"{r['time_to_train_s'] / 86400:,.1f} days")
    c = r.get("cost_usd") or {}
    if c.get("total_usd") is not None:
        t.add_row("capital cost per step", f"{c['total_usd']:,.4f} USD "
                  f"({c['gpu_capital_usd']:,.4f} GPUs + {c['network_capital_usd']:,.4f} network; "
                  f"{1e6 * c['usd_per_token']:,.4f} USD per 1M tokens)")  # fmt: skip
        if c.get("to_train_usd") is not None:
            t.add_row("capital cost to train", f"{c['to_train_usd']:,.0f} USD")
    con.print(t)
    if r["tiers"]:
        u = Table("tier", "mean utilization", "max utilization", title="Fabric links over the step")
        for name, v in r["tiers"].items():
            u.add_row(name, f"{v['mean_utilization']:.1%}", f"{v['max_utilization']:.1%}")
        con.print(u)
