"""Rich tables for the CLI's human output. Numbers are formatted here, at the edge."""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.table import Table

from aifabric.units import (
    format_bandwidth,
    format_bytes,
    format_count,
    format_duration,
    format_flops,
)


def _console(min_width: int = 120) -> Console:
    import shutil

    width = max(min_width, shutil.get_terminal_size((120, 40)).columns)
    return Console(highlight=False, soft_wrap=False, width=width)


def seeds_table(examples: list[dict[str, Any]]) -> None:
    table = Table(title="Seed worked examples, recomputed", show_lines=False)
    for col in ("id", "ours", "seed", "agrees", "note"):
        table.add_column(col, overflow="fold", max_width=60 if col == "note" else None)
    for e in examples:
        unit = "" if e["seed_unit"] in (None, "1") else f" {e['seed_unit']}"
        seed = "-" if e["seed_value"] is None else f"{e['seed_value']:g}{unit}"
        mark = {True: "[green]yes[/]", False: "[red]NO[/]", None: "-"}[e["agrees"]]
        table.add_row(e["id"], e["display"], seed, mark, e["note"])
    _console().print(table)


def models_table(models: list[dict[str, Any]]) -> None:
    table = Table(title="Models")
    for col in ("name", "params", "active", "layers", "hidden", "heads/kv", "attention",
                "experts", "KV/token (bf16)"):  # fmt: skip
        table.add_column(col)
    for m in models:
        experts = f"{m['experts_per_token']}/{m['num_experts']}" if m["num_experts"] else "-"
        table.add_row(
            m["name"], format_count(m["num_params"]), format_count(m["num_active_params"]),
            str(m["num_layers"]), str(m["hidden_size"]),
            f"{m['num_attention_heads']}/{m['num_kv_heads']}", m["attention"], experts,
            format_bytes(m["kv_bf16_bytes_per_token"], binary=True),
        )  # fmt: skip
    _console().print(table)


def gpus_table(gpus: list[dict[str, Any]]) -> None:
    table = Table(title="GPUs (dense peak; scale-up bandwidth bidirectional per GPU)")
    for col in ("name", "BF16", "FP8", "HBM", "HBM bw", "scale-up", "domain", "TDP"):
        table.add_column(col)
    for g in gpus:
        fp8 = g["peak_fp8_flop_per_s"]
        fp8 = format_flops(fp8) + "FLOP/s" if fp8 else "-"
        table.add_row(
            g["name"], format_flops(g["peak_bf16_flop_per_s"]) + "FLOP/s", fp8,
            format_bytes(g["hbm_bytes"]),
            format_bandwidth(g["hbm_bandwidth_bytes_per_s"], bits=False),
            format_bandwidth(g["scale_up_bandwidth_bytes_per_s"], bits=False),
            str(g["scale_up_domain_size"]),
            f"{g['tdp_w']:.0f} W",
        )  # fmt: skip
    _console().print(table)


def parts_table(title: str, parts: list[dict[str, Any]]) -> None:
    table = Table(title=title)
    skip = ("source", "port_modes")
    keys = [k for k in parts[0] if k not in skip and not k.endswith("_bits_per_s")] if parts else []
    for key in keys:
        table.add_column(key.removesuffix("_bytes_per_s").removesuffix("_s"))
    for part in parts:
        cells = []
        for key in keys:
            value = part[key]
            if key.endswith("_bytes_per_s"):
                cells.append(format_bandwidth(value))
            elif key == "latency_s" and value is not None:
                cells.append(format_duration(value))
            elif key == "buffer_bytes" and value is not None:
                cells.append(format_bytes(value))
            else:
                cells.append("-" if value is None else str(value))
        table.add_row(*cells)
    _console().print(table)


def training_report(result: dict[str, Any]) -> None:
    it, ep = result["per_iteration"], result["per_epoch"]
    plan = result["plan"]
    console = _console(148)
    console.print(
        f"[bold]{result['model']}[/] on {plan['world_size']:,} x {result['gpu']}  "
        f"tp={plan['tp']} pp={plan['pp']} dp={plan['dp']} cp={plan['cp']} ep={plan['ep']} "
        f"zero={plan['zero']}  scale-up domain {result['scale_up_domain_size']}  "
        f"accounting: {result['accounting']}"
    )
    extras = [f"recompute {result['recompute']}"]
    if result.get("grad_reduce_dtype"):
        extras.insert(0, f"grad reduce {result['grad_reduce_dtype']}")
    if plan.get("virtual_stages", 1) > 1:
        extras.append(f"virtual stages {plan['virtual_stages']}")
    extras += _algorithm_notes(result)
    console.print("  ".join(extras))
    for note in result.get("notes", []):
        console.print(f"note: {note}")
    table = Table(title="Traffic per iteration")
    for col in ("dim", "phase", "collective", "algorithm", "scope", "group", "calls",
                "buffer", "total", "per GPU", "note"):  # fmt: skip
        table.add_column(
            col,
            justify="right" if col in ("calls", "group") else "left",
            no_wrap=True,
        )
    for r in it["rows"]:
        table.add_row(
            r["dimension"], r["phase"], r["collective"], r["algorithm"], r["scope"],
            str(r["group_size"]), f"{r['calls']:,.4g}", format_bytes(r["buffer_bytes"]),
            format_bytes(r["total_bytes"]), format_bytes(r["bytes_per_gpu"]), r.get("note", ""),
        )  # fmt: skip
    console.print(table)
    stages = result.get("per_stage")
    if stages:
        layers = stages["layers"]
        console.print(
            f"per stage: layers {min(layers)}-{max(layers)}; busiest rank (stage "
            f"{stages['busiest_stage']}) sends {format_bytes(stages['busiest_bytes_per_gpu'])} "
            f"vs mean {format_bytes(stages['mean_bytes_per_gpu'])}/GPU"
        )
    console.print(
        f"per iteration: {format_bytes(it['total_bytes'])} on the wire "
        f"({format_bytes(it['bytes_per_gpu'])}/GPU; scale-out {format_bytes(it['scale_out_bytes'])}"
        f"), compute ~{format_duration(it['compute_time_s'])} at the given MFU -> scale-out "
        f"needs {format_bandwidth(it['required_scale_out_bytes_per_s_per_gpu'])}/GPU to hide"
    )
    console.print(
        f"per epoch: {ep['iterations']:,} iterations, {format_count(ep['tokens'])} tokens, "
        f"{format_bytes(ep['total_bytes'])} on the wire ({format_bytes(ep['scale_out_bytes'])} "
        f"scale-out)"
    )
    st = result["storage"]
    console.print(
        f"storage: dataset {format_bytes(st['dataset_bytes_per_epoch'])}/epoch "
        f"({format_bandwidth(st['dataset_read_bytes_per_s'], bits=False)} read); checkpoint "
        f"{format_bytes(st['checkpoint_bytes'])} -> "
        f"{format_bandwidth(st['checkpoint_write_bytes_per_s'], bits=False)} to write in "
        f"{format_duration(st['checkpoint_stall_s'])}"
    )


def _algorithm_notes(result: dict[str, Any]) -> list[str]:
    """Header words for how the rows' algorithms were chosen (column "algorithm")."""
    notes = []
    if result.get("algorithm_rule"):
        fixed = result["algorithm_rule"] == "fixed" and result.get("algorithm")
        notes.append(f"algorithms: {result['algorithm_rule']}" + (f" {fixed}" if fixed else ""))
    if result.get("in_network_reduction"):
        notes.append("in-network reduction (NVLS / SHARP)")
    return notes


def inference_report(r: dict[str, Any]) -> None:
    console = _console()
    bw = r["required_bytes_per_s"]
    console.print(
        f"[bold]{r['model']}[/] tp={r['tp']} ep={r['ep']} on {r['gpu']}, {r['users']:,} users, "
        f"S_in={r['prompt_tokens']:,} S_out={r['output_tokens']:,}, PD={'on' if r['pd'] else 'off'}"
        f", accounting: {r['accounting']}"
    )
    if _algorithm_notes(r):
        console.print("  ".join(_algorithm_notes(r)))
    table = Table(show_header=True)
    table.add_column("quantity")
    table.add_column("value")
    rows = [
        ("KV cache per token", format_bytes(r["kv_bytes_per_token"], binary=True)),
        ("KV shipped per request (prefill -> decode)",
         f"{format_bytes(r['kv_bytes_per_request'])} ({format_bytes(r['kv_bytes_per_request'], binary=True)})"),
        ("TP all-reduce bytes per token (group)",
         format_bytes(r["allreduce_bytes_per_token"])
         + (f" ({r['tp_algorithm']})" if r.get("tp_algorithm") else "")),
        ("EP all-to-all bytes per token", format_bytes(r["alltoall_bytes_per_token"])),
        ("bytes per request", format_bytes(r["bytes_per_request"])),
        ("total for all users",
         f"{format_bytes(r['total_bytes'])} ({format_bytes(r['total_bytes'], binary=True)})"),
        ("token time / communication budget",
         f"{format_duration(r['token_time_budget_s'])} / {format_duration(r['communication_budget_s'])}"),
        ("KV over one NIC", f"{format_duration(r['kv_transfer_time_one_nic_s'])} at "
                            f"{format_bandwidth(r['nic_speed_bytes_per_s'])}"),
        ("KV bandwidth for the deadline",
         f"{format_bandwidth(bw['kv_transfer'])} in {format_duration(r['kv_deadline_s'])} "
         f"({r['kv_transfer_nics']} NICs)"),
        ("all-reduce bandwidth per GPU, per user", format_bandwidth(bw["allreduce_per_gpu_per_user"])),
        ("aggregate peak / sustained",
         f"{format_bandwidth(bw['aggregate_peak'])} / {format_bandwidth(bw['aggregate_sustained'])}"),
    ]  # fmt: skip
    for name, value in rows:
        table.add_row(name, value)
    console.print(table)


def key_values(title: str, pairs: list[tuple[str, str]]) -> None:
    table = Table(title=title)
    table.add_column("quantity")
    table.add_column("value")
    for name, value in pairs:
        table.add_row(name, value)
    _console().print(table)
