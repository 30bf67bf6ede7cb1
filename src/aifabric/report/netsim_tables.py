"""Rich tables of ``aifabric simulate collective``."""

from __future__ import annotations

from typing import Any

from rich.table import Table

from aifabric.report.tables import _console
from aifabric.units import format_bandwidth, format_bytes, format_duration


def collective_report(r: dict[str, Any]) -> None:
    console = _console(150)
    f = r["fabric"]
    impaired = ""
    if f["failed_links"] or f["degraded_links"]:
        impaired = f", {f['failed_links']:,} cables down, {f['degraded_links']:,} degraded"
    console.print(
        f"{r['op']} / {r['algorithm']} over {r['ranks']:,} GPUs ({r['group']}) on "
        f"{f['design']}: {f['gpus']:,} GPUs, {f['tiers']} tier(s), NIC "
        f"{format_bandwidth(f['nic_speed_bytes_per_s'])}{impaired}; routing {r['routing']}"
        + (f" x {r['qps']} QPs" if r["qps"] > 1 else "")
        + f", {r['channels']} channel(s)"
    )
    table = Table()
    for col in ("size", "time", "algbw", "busbw", "alpha-beta", "efficiency", "flows",
                "events", *(t for t in r["results"][0]["tiers"])):  # fmt: skip
        table.add_column(col, justify="right")
    for x in r["results"]:

        def bw(v: float | None) -> str:
            return "-" if v is None else format_bandwidth(v, bits=False)

        tiers = [f"{t['mean_utilization']:.0%} / {t['max_utilization']:.0%}"
                 for t in x["tiers"].values()]  # fmt: skip
        eff = "-" if x["efficiency_ratio"] is None else f"{x['efficiency_ratio']:.1%}"
        table.add_row(format_bytes(x["size_bytes"], binary=True), format_duration(x["time_s"]),
                      bw(x["algbw_bytes_per_s"]), bw(x["busbw_bytes_per_s"]),
                      format_duration(x["analytic_time_s"]), eff, f"{x['flows']:,}",
                      f"{x['events']:,}", *tiers)  # fmt: skip
    console.print(table)
    console.print("tier columns: mean / max link utilization over the call")
    last = r["results"][-1]
    if "mean_flow_throughput_ratio" in last:
        console.print(f"flow throughput (fraction of line rate): mean "
                      f"{last['mean_flow_throughput_ratio']:.1%}, min "
                      f"{last['min_flow_throughput_ratio']:.1%}")  # fmt: skip
    hot = ", ".join(f"{h['link']} {h['utilization']:.0%} ({h['flows']} flows)"
                    for h in last["hot_links"][:5])  # fmt: skip
    console.print(f"hottest links ({format_bytes(last['size_bytes'], binary=True)}): {hot}; "
                  f"at most {last['max_flows_per_link']:,} flows on a link")  # fmt: skip
    console.print(f"wall {r['wall_s']:.2f} s")
