"""``aifabric simulate serve``: the LLM-serving simulator's command line."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any

import typer

from aifabric.cli.edges import JsonFlag, MaxWork, emit_json

simulate_app = typer.Typer(
    no_args_is_help=True, help="Simulate serving, and collectives or traffic patterns on a fabric."
)

Opt = typer.Option


@contextmanager
def _progress_bar(enabled: bool, total: int) -> Iterator[Callable[[int, int], None] | None]:
    """A Rich progress bar on stderr (a terminal only, so pipes and JSON stay clean)."""
    if not enabled:
        yield None
        return
    from rich.console import Console
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    with Progress(
        TextColumn("simulating"), BarColumn(), TextColumn("{task.completed:,.0f}/{task.total:,.0f} requests"),
        TimeElapsedColumn(), console=Console(stderr=True), transient=True,
    ) as bar:  # fmt: skip
        task = bar.add_task("serve", total=total)

        def update(done: int, total: int) -> None:
            bar.update(task, completed=done, total=total)

        yield update


@simulate_app.command("serve")
def simulate_serve(
    file: Annotated[
        Path | None,
        Opt(
            "-f",
            "--file",
            help="Serving scenario YAML (default: the built-in example, every key at its "
            "default; see examples/serve/ for full scenarios).",
        ),
    ] = None,
    seed: Annotated[int | None, Opt(help="Random seed (overrides the scenario's).")] = None,
    sets: Annotated[
        list[str] | None,
        Opt("--set", metavar="KEY=VALUE", help="Override a scenario key: dotted.key=value."),
    ] = None,
    timeseries: Annotated[
        Path | None,
        Opt(
            help="Write queue depth and mean queue wait over time (CSV, metrics.sample_interval_s)."
        ),
    ] = None,
    requests_csv: Annotated[
        Path | None, Opt("--requests", help="Write one CSV row per completed request.")
    ] = None,
    progress: Annotated[
        bool | None,
        Opt("--progress/--no-progress", help="Progress bar on stderr (default: when a TTY)."),
    ] = None,
    max_work: MaxWork = None,
    as_json: JsonFlag = False,
) -> None:
    """Simulate LLM serving on a scenario: TTFT/TBT per SLO tier, throughput, KV traffic.

    Without -f it runs the built-in example, every scenario key at its default (llama3-8b on one colocated H100 instance, 1,000 synthetic Poisson requests, seed 0); --set and --seed still apply. A fuller scenario: -f examples/serve/poisson-colocated.yaml.
    """
    from aifabric.outputs import check_output_paths, write_all_atomic
    from aifabric.serving.cluster import ServingSimulation
    from aifabric.serving.config import load_serve_scenario

    check_output_paths([("--timeseries", timeseries), ("--requests", requests_csv)])
    scenario = load_serve_scenario(file, sets or [], seed)
    simulation = ServingSimulation(scenario, max_work=max_work)
    show = sys.stderr.isatty() if progress is None else progress
    with _progress_bar(show, simulation.workload.total) as update:  # stderr, so --json too
        simulation.progress = update
        result = simulation.run()
    outputs: list[tuple[Path, str]] = []  # written together, only when all are ready
    if timeseries is not None:
        outputs.append((timeseries, _timeseries_csv(simulation)))
    if requests_csv is not None:
        outputs.append((requests_csv, _requests_csv(simulation)))
    write_all_atomic(outputs)
    if as_json:
        emit_json(result)
        return
    _print_result(result, builtin=file is None)


def _timeseries_csv(simulation: Any) -> str:
    from aifabric.serving.metrics import queue_series, wait_series

    interval = simulation.scenario.metrics.sample_interval_s
    grid, depth = queue_series(simulation, interval, simulation.sim.now)
    waits = wait_series(simulation, grid)
    header = "t_s,queue_depth,mean_wait_s"
    cells = [f"{t:.6g},{d},{'' if w != w else f'{w:.6g}'}"
             for t, d, w in zip(grid, depth, waits, strict=True)]  # fmt: skip
    if simulation.scenario.autoscale.enabled:  # serving / held instances per pool
        counts = simulation.autoscaler.series(grid)
        header += "".join(f",{name}" for name in counts)
        columns = [c.tolist() for c in counts.values()]
        cells = [row + "".join(f",{c[i]}" for c in columns) for i, row in enumerate(cells)]
    return "\n".join([header, *cells]) + "\n"


def _requests_csv(simulation: Any) -> str:
    from aifabric.serving.metrics import request_table

    table = request_table(simulation)
    names = list(table)
    tiers = [t.name for t in simulation.scenario.slo.tiers]
    lines = [",".join(names)]
    columns = [table[n].tolist() for n in names]
    for row in zip(*columns, strict=True):
        cells = [tiers[v] if n == "tier" else f"{v:.9g}" for n, v in zip(names, row, strict=True)]
        lines.append(",".join(cells))
    return "\n".join(lines) + "\n"


def _ms(p: dict[str, float | None]) -> str:
    if p["p50"] is None:
        return "-"
    return " / ".join(f"{1e3 * p[k]:,.1f}" for k in ("p50", "p95", "p99"))  # type: ignore[operator]


def _fabric_rows(r: dict[str, Any]) -> list[tuple[str, str]]:
    """One line per fabric link layer: bytes (both directions) and link utilization."""
    from aifabric.units import format_bytes

    by_bytes = r.get("network_bytes_by_tier")
    if by_bytes is None:
        return []
    util = r["network_utilization_by_tier"]
    return [(f"fabric {layer} (bytes, link utilization mean / max)",
             f"{format_bytes(v)}, {util[layer]['mean_utilization']:.1%} / "
             f"{util[layer]['max_utilization']:.1%}") for layer, v in by_bytes.items()]  # fmt: skip


def _elastic_rows(r: dict[str, Any]) -> list[tuple[str, str]]:
    """Autoscaled pools (start -> end, peak held, mean serving, instance-seconds) and the
    speculative decoding figure, when on."""
    rows: list[tuple[str, str]] = []
    scale = r.get("autoscale")
    if scale is not None:
        rows.append(("autoscale: start -> end (peak held, mean), instance-s", ", ".join(
            f"{role} {p['initial']} -> {p['final']} ({p['peak_held']}, {p['mean_serving_instances']:.1f}),"
            f" {p['instance_time_s']:,.0f}"
            for role, p in scale["pools"].items()
        )))  # fmt: skip
    spec = r.get("speculative")
    if spec is not None:
        rows.append(("speculative: draft tokens, acceptance, tokens / step",
                     f"{spec['draft_tokens']}, {spec['acceptance_ratio']:g}, "
                     f"{spec['expected_step_tokens']:.2f}"))  # fmt: skip
    return rows


def _print_result(r: dict[str, Any], *, builtin: bool = False) -> None:
    from rich.table import Table

    from aifabric.report.tables import _console, key_values
    from aifabric.units import format_bytes

    s = r["scenario"]
    pools = " + ".join(f"{n} {role}" for role, n in s["instances"].items())
    net = r["network_bytes"]
    origin = " (built-in example; -f FILE for a scenario)" if builtin else ""
    key_values(f"serving {s['model']}{origin}: {pools}, {s['batching']} batching, {s['routing']} routing; timing {s['timing_model']}", [
        ("requests (completed / rejected / in flight)",
         f"{r['requests']:,} ({r['completed']:,} / {r['rejected']:,} / {r['in_flight_at_end']:,})"),
        ("TTFT p50 / p95 / p99 (ms)", _ms(r["ttft_s"])),
        ("TBT p50 / p95 / p99 (ms, mean per request)", _ms(r["tbt_s"])),
        ("worst stall per request p50 / p95 / p99 (ms)", _ms(r["tbt_max_s"])),
        ("end-to-end p50 / p95 / p99 (ms)", _ms(r["e2e_s"])),
        ("throughput", f"{r['throughput']['requests_per_s']:.3f} req/s, "
                       f"{r['throughput']['output_tokens_per_s']:,.0f} output tokens/s"),
        ("goodput (SLO met)", f"{r['goodput_requests_per_s']:.3f} req/s "
                              f"({r['slo_attainment']:.1%} of requests)"),
        ("SLO met: of admitted / of all arrivals",
         f"{_pct(r['slo_attainment_admitted'])} of {r['admitted']:,} / "
         f"{_pct(r['slo_attainment'])} of {r['requests']:,}"),
        ("queue depth mean / max", f"{r['queue_depth']['mean']:.2f} / {r['queue_depth']['max']}"),
        ("utilization (busy time)", ", ".join(f"{k} {v:.0%}" for k, v in r["utilization"].items())),
        ("mean decode batch", ", ".join(f"{k} {v:.1f}" for k, v in r["mean_decode_batch"].items())),
        ("KV-cache hit ratio (HBM / DRAM / SSD)",
         f"{r['kv_cache']['hit_ratio']:.1%} ("
         + " / ".join(f"{v:.1%}" for v in r["kv_cache"]["hit_ratio_by_tier"].values()) + ")"),
        ("network: KV transfer / prefix fetch / prefix store",
         " / ".join(format_bytes(net[k]) for k in ("kv_transfer", "prefix_fetch", "prefix_store"))),
        ("TP all-reduce (scale-up)", format_bytes(net["tp_allreduce"])),
        *([("EP dispatch + combine (in instances)", format_bytes(net["ep_all_to_all"]))]
          if net.get("ep_all_to_all") else []),
        *_fabric_rows(r),
        *_elastic_rows(r),
        ("simulated / wall", f"{r['simulated_s']:,.1f} s / {r['wall_s']:.2f} s"),
    ])  # fmt: skip
    table = Table(title="SLO tiers")
    for col in ("tier", "requests", "SLO met adm / all", "TTFT target", "TTFT p50/p95/p99 ms",
                "TBT target", "TBT p50/p95/p99 ms"):  # fmt: skip
        table.add_column(col)
    for name, t in r["tiers"].items():
        met = f"{_pct(t['slo_attainment_admitted'])} / {_pct(t['slo_attainment'])}"
        table.add_row(name, f"{t['requests']:,}", met, f"{t['ttft_target_s']:g} s",
                      _ms(t["ttft_s"]), f"{1e3 * t['tbt_target_s']:g} ms", _ms(t["tbt_s"]))  # fmt: skip
    _console().print(table)
    _print_economics(r)


def _print_economics(r: dict[str, Any]) -> None:
    """Capacity utilisation per role, and cost and energy per token (serving.economics)."""
    from rich.table import Table

    from aifabric.report.tables import _console

    util = Table(title="capacity utilisation by role (serving.work)")
    for col in ("role", "GPUs", "busy", "compute (FLOP / peak)", "HBM bandwidth", "activity"):
        util.add_column(col)
    for role, u in r["utilization_by_role"].items():
        util.add_row(role, f"{u['gpus']}", f"{u['busy_fraction']:.1%}",
                     f"{u['compute_utilization']:.1%}", f"{u['hbm_bandwidth_utilization']:.1%}",
                     f"{u['activity_fraction']:.1%}")  # fmt: skip
    _console().print(util)
    ec = r["economics"]

    def usd_m(v: float | None) -> str:
        return "-" if v is None else f"{v:,.3f}"

    def j_tok(v: float | None) -> str:
        return "-" if v is None else f"{v:,.3f}"

    prices = ", ".join(f"{g} {v:.2f}" for g, v in ec["gpu_hour_usd"].items())
    title = (f"cost and energy over {r['simulated_s']:,.0f} s: {ec['cost_usd']:,.2f} USD "
             f"(GPU capital {ec['gpu_capital_usd']:,.2f}, network capital "
             f"{ec['network_capital_usd']:,.2f}, energy {ec['energy_cost_usd']:,.2f}), "
             f"{ec['energy_j'] / 3.6e6:,.2f} kWh, mean {ec['mean_power_w'] / 1e3:,.1f} kW; "
             f"USD/GPU-hour: {prices}")  # fmt: skip
    table = Table(title=title)
    for col in ("tier", "output tokens", "cost USD", "USD / 1M output tokens", "energy kWh",
                "J / output token"):  # fmt: skip
        table.add_column(col)
    for name, t in ec["tiers"].items():
        table.add_row(name, f"{t['output_tokens']:,}", f"{t['cost_usd']:,.2f}",
                      usd_m(t["usd_per_million_output_tokens"]), f"{t['energy_j'] / 3.6e6:,.3f}",
                      j_tok(t["j_per_output_token"]))  # fmt: skip
    tokens = sum(t["output_tokens"] for t in ec["tiers"].values())
    table.add_row("all", f"{tokens:,}", f"{ec['cost_usd']:,.2f}",
                  usd_m(ec["usd_per_million_output_tokens"]), f"{ec['energy_j'] / 3.6e6:,.3f}",
                  j_tok(ec["j_per_output_token"]))  # fmt: skip
    _console().print(table)


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{value:.1%}"


@simulate_app.command("collective")
def simulate_collective_cmd(
    file: Annotated[
        Path | None, Opt("-f", "--file", help="Plan scenario YAML (fabric keys).")
    ] = None,
    op: Annotated[
        str,
        Opt(
            help="all_reduce, all_gather, reduce_scatter, all_to_all, broadcast, send_recv, "
            "or a pattern: permutation, incast, uniform."
        ),
    ] = "all_reduce",
    size: Annotated[
        str, Opt(help="Bytes per call (NCCL convention), one or a list: 1MiB,64MiB,1GiB.")
    ] = "1GiB",
    preset: Annotated[str | None, Opt(help="A published design (see aifabric plan).")] = None,
    scalable_units: Annotated[int | None, Opt(help="SuperPOD scalable units.")] = None,
    pods: Annotated[int | None, Opt(help="Pods for the meta/alibaba presets.")] = None,
    gpus: Annotated[int | None, Opt(help="GPUs in the cluster.")] = None,
    gpu: Annotated[str | None, Opt(help="Catalog GPU (default h100-sxm).")] = None,
    gpus_per_node: Annotated[int | None, Opt(help="GPUs per server (default 8).")] = None,
    nic: Annotated[str | None, Opt(help="NIC: catalog name or line rate (400G).")] = None,
    nics_per_node: Annotated[int | None, Opt(help="Scale-out NICs per server.")] = None,
    switch: Annotated[str | None, Opt(help="Catalog switch.")] = None,
    switch_radix: Annotated[int | None, Opt(help="Ports per switch at the link rate.")] = None,
    design: Annotated[str | None, Opt(help="rail_optimized, clos or spine_leaf.")] = None,
    tiers: Annotated[int | None, Opt(help="Switch tiers (default: fewest).")] = None,
    oversubscription: Annotated[float | None, Opt(help="Leaf down:up (1 = non-blocking).")] = None,
    spine_oversubscription: Annotated[float | None, Opt(help="Spine down:up (3 tiers).")] = None,
    planes: Annotated[int | None, Opt(help="Network planes per NIC.")] = None,
    su_nodes: Annotated[int | None, Opt(help="Servers per scalable unit / per leaf.")] = None,
    group: Annotated[
        str, Opt(help="all GPUs, or rank 0's group of a job's dimension: tp, cp, dp, pp, ep.")
    ] = "all",
    tp: Annotated[int | None, Opt(help="Job for --group: tensor parallel degree.")] = None,
    pp: Annotated[int | None, Opt(help="Job for --group: pipeline parallel degree.")] = None,
    dp: Annotated[int | None, Opt(help="Job for --group: data parallel degree.")] = None,
    cp: Annotated[int | None, Opt(help="Job for --group: context parallel degree.")] = None,
    ep: Annotated[int | None, Opt(help="Job for --group: expert parallel degree.")] = None,
    algorithm: Annotated[
        str | None,
        Opt(help="ring, tree, hierarchical, halving_doubling (all_reduce); direct (all_to_all)."),
    ] = None,
    routing: Annotated[str, Opt(help="ecmp, ecmp_qp, spray or adaptive.")] = "ecmp",
    qps: Annotated[int, Opt(help="Queue pairs per connection (ecmp_qp).")] = 1,
    channels: Annotated[
        int | None, Opt(help="NCCL channels (rings); default one per GPU of the group in a server.")
    ] = None,
    fail: Annotated[
        list[str] | None,
        Opt(
            metavar="WHAT",
            help="Take links or switches down: leaf_spine:0.25, spine:2, "
            "leaf3,spine0-core1. Repeatable.",
        ),
    ] = None,
    degrade: Annotated[
        list[str] | None,
        Opt(metavar="LAYER:FRACTION@SPEED", help="Slow links: leaf_spine:0.1@0.5. Repeatable."),
    ] = None,
    seed: Annotated[int, Opt(help="Seed of hashing, patterns and failures.")] = 0,
    max_work: MaxWork = None,
    as_json: JsonFlag = False,
) -> None:
    """A collective or traffic pattern as flows on a planned fabric (nccl-tests for a fabric).

    Per size: simulated time, algbw and busbw (NCCL's definitions), the alpha-beta time on
    the same link speeds and their ratio, link utilization per tier and the hottest links.
    """
    from aifabric.spec.scenario import load_scenario

    flags = {"preset": preset, "scalable_units": scalable_units, "pods": pods, "gpus": gpus,
             "gpu": gpu, "gpus_per_node": gpus_per_node, "nic": nic, "nics_per_node": nics_per_node,
             "switch": switch, "switch_radix": switch_radix, "design": design, "tiers": tiers,
             "oversubscription": oversubscription, "spine_oversubscription": spine_oversubscription,
             "planes": planes, "su_nodes": su_nodes}  # fmt: skip
    scenario = load_scenario(file) if file else {}
    result = collective_result(
        scenario, flags, op=op, size=size, algorithm=algorithm, routing=routing, qps=qps,
        channels=channels, group=group, parallel={"tp": tp, "pp": pp, "dp": dp, "cp": cp,
        "ep": ep}, fail=fail, degrade=degrade, seed=seed, max_work=max_work,
    )  # fmt: skip
    if as_json:
        emit_json(result)
        return
    from aifabric.report.netsim_tables import collective_report

    collective_report(result)


def collective_result(
    scenario: dict[str, Any], flags: dict[str, Any] | None = None, *, op: str = "all_reduce",
    size: str | int | list[Any] = "1GiB", algorithm: str | None = None, routing: str = "ecmp",
    qps: int = 1, channels: int | None = None, group: str = "all",
    parallel: dict[str, int | None] | None = None, fail: list[str] | None = None,
    degrade: list[str] | None = None, seed: int = 0, max_work: float | None = None,
) -> dict[str, Any]:  # fmt: skip
    """The JSON result of ``aifabric simulate collective`` on a plan scenario.

    The one home of the command's logic, shared by the CLI and ``aifabric sweep``. ``size``
    is bytes per call: a number, a string with units (comma-separated for several) or a list.
    """
    from aifabric.errors import ConfigError
    from aifabric.netsim.run import simulate_collective
    from aifabric.spec.scenario import split_plan_options
    from aifabric.units import parse_bytes

    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise ConfigError(f"--seed(={seed}) must be >= 0")
    items = size if isinstance(size, list) else str(size).split(",")
    sizes = [parse_bytes(str(s).strip(), what="--size") for s in items if str(s).strip()]
    fabric_opts, job_opts = split_plan_options(scenario, flags or {})
    given = dict(parallel or {})
    if group != "all" and job_opts:  # a scenario's job names the group's degrees
        given = {k: v if v is not None else job_opts.get(k) for k, v in given.items()}
    degrees = {k: int(v) for k, v in given.items() if v is not None}
    result: dict[str, Any] = simulate_collective(
        fabric_opts, op=op, sizes=sizes, algorithm=algorithm, routing=routing, qps=qps,
        channels=channels, group=group, parallel=degrees, fail=fail, degrade=degrade,
        seed=seed, max_work=max_work,
    )  # fmt: skip
    return result
