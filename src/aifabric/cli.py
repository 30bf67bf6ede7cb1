"""Command line: parse -> spec -> run -> print. ``--json`` everywhere; bad input exits 2.

Every command prints exactly one JSON object with ``--json`` (numbers in base units: bytes,
s, bytes/s, USD, W), otherwise Rich tables. Errors are one line on stderr, exit status 2.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from aifabric.errors import AifabricError

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  help="Model, plan and simulate AI-datacenter network traffic.")  # fmt: skip
traffic_app = typer.Typer(no_args_is_help=True, help="Analytic traffic of training and inference.")
catalog_app = typer.Typer(
    no_args_is_help=True, help="Shipped catalog of models, GPUs, NICs, switches."
)
net_app = typer.Typer(no_args_is_help=True, help="Network requirement helpers.")
trace_app = typer.Typer(no_args_is_help=True, help="LLM-serving request traces.")
app.add_typer(traffic_app, name="traffic")
app.add_typer(catalog_app, name="catalog")
app.add_typer(net_app, name="net")
app.add_typer(trace_app, name="trace")


def _register_plan() -> None:
    from aifabric.cli_plan import plan_app

    app.add_typer(plan_app, name="plan")


_register_plan()


def _register_simulate() -> None:
    from aifabric.cli_simulate import simulate_app

    app.add_typer(simulate_app, name="simulate")


_register_simulate()

JsonFlag = Annotated[bool, typer.Option("--json", help="Print one JSON object (base units).")]
ScenarioFile = Annotated[Path | None, typer.Option("-f", "--file", help="Scenario YAML file.")]


def _emit_json(obj: Any) -> None:
    sys.stdout.write(json.dumps(obj, indent=2, allow_nan=False) + "\n")


# ----- seeds ----------------------------------------------------------------------------------
@app.command()
def seeds(as_json: JsonFlag = False) -> None:
    """Recompute every worked example of the seed documents and compare with the seeds."""
    from aifabric.traffic.seed_examples import all_examples

    examples = [e.to_dict() for e in all_examples()]
    if as_json:
        _emit_json({"examples": examples})
        return
    from aifabric.report.tables import seeds_table

    seeds_table(examples)


# ----- catalog --------------------------------------------------------------------------------
@catalog_app.command("models")
def catalog_models(as_json: JsonFlag = False) -> None:
    """LLM architectures with computed parameter counts and KV bytes per token."""
    from aifabric import catalog

    rows = [m.summary() for m in catalog.models().values()]
    if as_json:
        _emit_json({"models": rows})
        return
    from aifabric.report.tables import models_table

    models_table(rows)


@catalog_app.command("gpus")
def catalog_gpus(as_json: JsonFlag = False) -> None:
    """Accelerators: dense peak FLOP/s, HBM, scale-up bandwidth and domain size."""
    from aifabric import catalog

    rows = [g.summary() for g in catalog.gpus().values()]
    if as_json:
        _emit_json({"gpus": rows})
        return
    from aifabric.report.tables import gpus_table

    gpus_table(rows)


def _parts(kind: str, as_json: bool) -> None:
    from dataclasses import asdict

    from aifabric import catalog

    table = catalog.nics() if kind == "nics" else catalog.switches()
    rows = [asdict(part) for part in table.values()]
    if as_json:
        _emit_json({kind: rows})
        return
    from aifabric.report.tables import parts_table

    parts_table(kind.upper() if kind == "nics" else "Switches", rows)


@catalog_app.command("nics")
def catalog_nics(as_json: JsonFlag = False) -> None:
    """Network interface cards (line rates in bits/s)."""
    _parts("nics", as_json)


@catalog_app.command("switches")
def catalog_switches(as_json: JsonFlag = False) -> None:
    """Switches: radix, port speed, one-direction capacity."""
    _parts("switches", as_json)


# ----- traffic --------------------------------------------------------------------------------
@traffic_app.command("train")
def traffic_train(
    file: ScenarioFile = None,
    model: Annotated[str | None, typer.Option(help="Catalog model name.")] = None,
    gpu: Annotated[str | None, typer.Option(help="Catalog GPU (default h100-sxm).")] = None,
    gpus: Annotated[int | None, typer.Option(help="Check: total GPUs = tp*cp*dp*pp.")] = None,
    tp: Annotated[int | None, typer.Option(help="Tensor parallel degree.")] = None,
    pp: Annotated[int | None, typer.Option(help="Pipeline parallel degree.")] = None,
    dp: Annotated[int | None, typer.Option(help="Data parallel degree.")] = None,
    cp: Annotated[int | None, typer.Option(help="Context parallel degree.")] = None,
    ep: Annotated[int | None, typer.Option(help="Expert parallel degree (within dp*cp).")] = None,
    expert_tp: Annotated[
        int | None, typer.Option(help="Expert tensor parallel degree (default: tp, as Megatron).")
    ] = None,
    zero: Annotated[int | None, typer.Option(help="ZeRO stage 0-3 (3 = FSDP).")] = None,
    fsdp: Annotated[bool | None, typer.Option("--fsdp/--no-fsdp", help="Same as --zero 3.")] = None,
    sequence_parallel: Annotated[bool | None, typer.Option("--sp/--no-sp")] = None,
    seq_len: Annotated[int | None, typer.Option(help="Tokens per sequence.")] = None,
    global_batch: Annotated[int | None, typer.Option(help="Sequences per iteration.")] = None,
    micro_batch: Annotated[int | None, typer.Option(help="Sequences per micro-batch.")] = None,
    grad_dtype: Annotated[
        str | None, typer.Option(help="Gradient reduction dtype (default fp32, as Megatron-LM).")
    ] = None,
    recompute: Annotated[
        str | None, typer.Option(help="Activation recomputation: none, selective, full.")
    ] = None,
    virtual_stages: Annotated[
        int | None, typer.Option(help="Model chunks per pipeline rank (interleaved 1F1B).")
    ] = None,
    pipeline_layers: Annotated[
        str | None, typer.Option(help="Layers per pipeline stage, e.g. 4,4,4,3.")
    ] = None,
    dataset_tokens: Annotated[str | None, typer.Option(help="Tokens per epoch, e.g. 156B.")] = None,
    samples: Annotated[str | None, typer.Option(help="Samples per epoch, e.g. 364.6M.")] = None,
    accounting: Annotated[str | None, typer.Option(help="algorithmic (default) or seed.")] = None,
    algorithm: Annotated[
        str | None,
        typer.Option(
            help="auto (what NCCL's tuning model picks), ring, tree, halving_doubling, direct, "
            "hierarchical, nvls, sharp."
        ),
    ] = None,
    in_network_reduction: Annotated[
        bool | None,
        typer.Option(
            "--in-network-reduction/--no-in-network-reduction",
            help="Let auto use NVLS / SHARP in-switch all-reduce.",
        ),
    ] = None,
    mfu: Annotated[
        float | None, typer.Option(help="Model FLOPs utilisation for step time.")
    ] = None,
    as_json: JsonFlag = False,
) -> None:
    """Bytes on the wire per iteration and per epoch, by parallel dimension and scope."""
    from aifabric.spec.scenario import TRAIN_KEYS, load_scenario, merge_options, training_job
    from aifabric.traffic.training import training_traffic

    flags = {"model": model, "gpu": gpu, "gpus": gpus, "tp": tp, "pp": pp, "dp": dp, "cp": cp,
             "ep": ep, "zero": zero, "fsdp": fsdp, "sequence_parallel": sequence_parallel,
             "seq_len": seq_len, "global_batch": global_batch, "micro_batch": micro_batch,
             "grad_dtype": grad_dtype, "dataset_tokens": dataset_tokens, "samples": samples,
             "accounting": accounting, "algorithm": algorithm, "mfu": mfu,
             "in_network_reduction": in_network_reduction, "recompute": recompute,
             "virtual_stages": virtual_stages,
             "pipeline_layers": pipeline_layers, "expert_tp": expert_tp}  # fmt: skip
    scenario = load_scenario(file) if file else {}
    job = training_job(merge_options(TRAIN_KEYS, scenario, flags))
    result = training_traffic(job).to_dict()
    if as_json:
        _emit_json(result)
        return
    from aifabric.report.tables import training_report

    training_report(result)


@traffic_app.command("infer")
def traffic_infer(
    file: ScenarioFile = None,
    model: Annotated[str | None, typer.Option(help="Catalog model name.")] = None,
    gpu: Annotated[str | None, typer.Option(help="Catalog GPU (default h100-sxm).")] = None,
    tp: Annotated[int | None, typer.Option(help="Tensor parallel degree per instance.")] = None,
    ep: Annotated[int | None, typer.Option(help="Expert parallel degree per instance.")] = None,
    users: Annotated[int | None, typer.Option(help="Concurrent users U.")] = None,
    prompt_tokens: Annotated[int | None, typer.Option(help="Prompt tokens S_in.")] = None,
    output_tokens: Annotated[int | None, typer.Option(help="Output tokens S_out.")] = None,
    kv_dtype: Annotated[str | None, typer.Option(help="KV cache dtype (bf16, fp16, fp8).")] = None,
    pd: Annotated[
        bool | None, typer.Option("--pd/--no-pd", help="Prefill/decode disaggregation.")
    ] = None,
    tokens_per_s: Annotated[
        float | None, typer.Option(help="Per-user decode speed target.")
    ] = None,
    parallel_efficiency: Annotated[
        float | None, typer.Option(help="Compute share of token time.")
    ] = None,
    kv_deadline: Annotated[
        str | None, typer.Option(help="KV transfer deadline, e.g. 10ms.")
    ] = None,
    nic_speed: Annotated[str | None, typer.Option(help="NIC line rate, e.g. 400G.")] = None,
    accounting: Annotated[str | None, typer.Option(help="algorithmic (default) or seed.")] = None,
    algorithm: Annotated[
        str | None,
        typer.Option(help="TP all-reduce: auto (NCCL's tuning model), ring, tree, nvls, ..."),
    ] = None,
    in_network_reduction: Annotated[
        bool | None,
        typer.Option(
            "--in-network-reduction/--no-in-network-reduction",
            help="Let auto use NVLS in-switch all-reduce.",
        ),
    ] = None,
    as_json: JsonFlag = False,
) -> None:
    """Per-request and aggregate inference traffic, and the bandwidth targets imply."""
    from aifabric.spec.scenario import INFER_KEYS, inference_job, load_scenario, merge_options
    from aifabric.traffic.inference import inference_traffic

    flags = {"model": model, "gpu": gpu, "tp": tp, "ep": ep, "users": users,
             "prompt_tokens": prompt_tokens, "output_tokens": output_tokens,
             "kv_dtype": kv_dtype, "pd": pd, "tokens_per_s": tokens_per_s,
             "parallel_efficiency": parallel_efficiency, "kv_deadline": kv_deadline,
             "nic_speed": nic_speed, "accounting": accounting, "algorithm": algorithm,
             "in_network_reduction": in_network_reduction}  # fmt: skip
    scenario = load_scenario(file) if file else {}
    result = inference_traffic(inference_job(merge_options(INFER_KEYS, scenario, flags)))
    if as_json:
        _emit_json(result)
        return
    from aifabric.report.tables import inference_report

    inference_report(result)


# ----- collective and net ---------------------------------------------------------------------
@app.command("collective")
def collective_cmd(
    operation: Annotated[
        str,
        typer.Argument(
            help="all_reduce, reduce_scatter, all_gather, all_to_all, broadcast, send_recv."
        ),
    ],
    ranks: Annotated[int, typer.Option(help="Ranks in the group.")] = 8,
    size: Annotated[
        str, typer.Option(help="Buffer size (NCCL-tests convention), e.g. 1GiB.")
    ] = "1GiB",
    algorithm: Annotated[
        str,
        typer.Option(
            help="ring, tree, halving_doubling, direct, hierarchical, nvls, sharp, or auto "
            "(what NCCL's tuning model picks for ranks / ranks-per-domain nodes)."
        ),
    ] = "ring",
    bandwidth: Annotated[
        str, typer.Option(help="Per-rank link rate, e.g. 400G or 450GB/s.")
    ] = "400G",
    latency: Annotated[str, typer.Option(help="Per-step latency, e.g. 5us.")] = "5us",
    ranks_per_domain: Annotated[
        int, typer.Option(help="Hierarchical: ranks per scale-up domain.")
    ] = 1,
    scaleup_bandwidth: Annotated[
        str, typer.Option(help="Hierarchical: scale-up rate.")
    ] = "450GB/s",
    scaleup_latency: Annotated[str, typer.Option(help="Hierarchical: scale-up latency.")] = "1us",
    in_network_reduction: Annotated[
        bool,
        typer.Option(
            "--in-network-reduction/--no-in-network-reduction",
            help="Let auto use NVLS / SHARP all-reduce.",
        ),
    ] = False,
    as_json: JsonFlag = False,
) -> None:
    """Bytes, steps, alpha-beta time and NCCL algbw/busbw of one collective call."""
    from aifabric.traffic.collectives import Link, collective, lower_bound_time
    from aifabric.units import parse_bandwidth, parse_bytes, parse_duration

    nbytes = parse_bytes(size, what="--size")
    out_link = Link(
        parse_bandwidth(bandwidth, what="--bandwidth"), parse_duration(latency, what="--latency")
    )
    up_link = Link(parse_bandwidth(scaleup_bandwidth, what="--scaleup-bandwidth"),
                   parse_duration(scaleup_latency, what="--scaleup-latency"))  # fmt: skip
    rule = "fixed"
    if algorithm == "auto":
        from aifabric.traffic import nccl_tuning

        system = nccl_tuning.NcclSystem(
            scale_up_bandwidth=up_link.bandwidth, scale_out_bandwidth=out_link.bandwidth
        )
        nodes = -(-ranks // max(ranks_per_domain, 1))
        algorithm, rule = nccl_tuning.choose(
            operation, num_ranks=ranks, num_nodes=nodes, size=nbytes,
            in_network_reduction=in_network_reduction, system=system,
        ), nccl_tuning.RULE  # fmt: skip
    cost = collective(
        operation, algorithm, num_ranks=ranks, size=nbytes, ranks_per_domain=ranks_per_domain
    )
    split = any(p.scope == "scale-up" for p in cost.phases)
    link, scaleout = (up_link, out_link) if split else (out_link, None)
    t = cost.time(link, scaleout)
    result: dict[str, Any] = {
        "operation": operation, "algorithm": algorithm, "algorithm_rule": rule,
        "num_ranks": ranks, "size": nbytes,
        "steps": cost.steps, "bytes_per_rank": cost.bytes_per_rank, "total_bytes": cost.total_bytes,
        "scale_up_bytes_per_rank": cost.bytes_per_rank_in("scale-up"),
        "scale_out_bytes_per_rank": cost.bytes_per_rank_in("scale-out"),
        "time": t, "algbw": cost.algbw(link, scaleout), "busbw": cost.busbw(link, scaleout),
        "lower_bound_time": lower_bound_time(operation, ranks, nbytes, out_link.bandwidth),
    }  # fmt: skip
    if as_json:
        _emit_json(result)
        return
    from aifabric.report.tables import key_values
    from aifabric.units import format_bandwidth, format_bytes, format_duration

    key_values(f"{operation} / {algorithm} over {ranks} ranks, {format_bytes(nbytes, binary=True)}", [
        ("bytes sent per rank", format_bytes(result["bytes_per_rank"])),
        ("steps", str(result["steps"])),
        ("time (alpha-beta)", format_duration(t)),
        ("algbw / busbw", f"{format_bandwidth(result['algbw'], bits=False)} / "
                          f"{format_bandwidth(result['busbw'], bits=False)}"),
        ("bandwidth lower bound", format_duration(result["lower_bound_time"])),
    ])  # fmt: skip


@net_app.command("time")
def net_time(
    nbytes: Annotated[str, typer.Option("--bytes", help="Data volume, e.g. 84.75EB.")],
    capacity: Annotated[str, typer.Option(help="Link or switch capacity, e.g. 51.2T (bits/s).")],
    utilisation: Annotated[float, typer.Option(help="Share of capacity used.")] = 1.0,
    as_json: JsonFlag = False,
) -> None:
    """Time to move a volume through a link or switch."""
    from aifabric.traffic.network import transfer_time
    from aifabric.units import format_duration, parse_bandwidth, parse_bytes

    volume, cap = parse_bytes(nbytes, what="--bytes"), parse_bandwidth(capacity, what="--capacity")
    t = transfer_time(volume, cap, utilisation=utilisation)
    result = {"bytes": volume, "capacity": cap, "utilisation": utilisation, "time": t}
    if as_json:
        _emit_json(result)
    else:
        typer.echo(f"{format_duration(t)} to move {nbytes} through {capacity} at {utilisation:.0%}")


@net_app.command("switches")
def net_switches(
    nbytes: Annotated[str, typer.Option("--bytes", help="Data volume, e.g. 8475EB.")],
    deadline: Annotated[str, typer.Option(help="Time allowed, e.g. 100d.")],
    capacity: Annotated[str, typer.Option(help="Capacity of one switch, e.g. 51.2T.")] = "51.2T",
    utilisation: Annotated[float, typer.Option(help="Share of capacity used.")] = 1.0,
    as_json: JsonFlag = False,
) -> None:
    """Switches of a capacity needed to carry a volume within a deadline."""
    from aifabric.traffic.network import devices_for_deadline, whole_devices
    from aifabric.units import parse_bandwidth, parse_bytes, parse_duration

    volume = parse_bytes(nbytes, what="--bytes")
    d = parse_duration(deadline, what="--deadline")
    cap = parse_bandwidth(capacity, what="--capacity")
    need = devices_for_deadline(volume, d, cap, utilisation=utilisation)
    result = {"bytes": volume, "deadline": d, "capacity": cap, "utilisation": utilisation,
              "switches": need, "whole_switches": whole_devices(need)}  # fmt: skip
    if as_json:
        _emit_json(result)
    else:
        typer.echo(f"{need:.2f} switches of {capacity} -> {whole_devices(need)} whole switches")


@trace_app.command("stats")
def trace_stats_cmd(
    path: Annotated[Path, typer.Argument(help="Trace file (Mooncake .jsonl or Azure .csv).")],
    fmt: Annotated[str | None, typer.Option("--format", help="mooncake or azure.")] = None,
    cache_capacity_tokens: Annotated[
        str | None, typer.Option(help="Prefix cache size in tokens (LRU); default infinite.")
    ] = None,
    as_json: JsonFlag = False,
) -> None:
    """Requests, duration, lengths, arrival rate, burstiness and prefix-cache reuse of a trace."""
    from aifabric.serving.trace import read_trace, trace_stats
    from aifabric.units import parse_count

    capacity = None
    if cache_capacity_tokens is not None:
        capacity = parse_count(cache_capacity_tokens, what="--cache-capacity-tokens")
    result = trace_stats(read_trace(path, fmt), capacity)
    if as_json:
        _emit_json(result)
        return
    from aifabric.report.tables import key_values

    hit = result["prefix_cache"]["hit_ratio"]
    cv = result["interarrival_cv"]
    key_values(f"trace {result['trace']}", [
        ("requests", f"{result['requests']:,}"),
        ("duration", f"{result['duration_s']:,.0f} s"),
        ("mean input / output tokens",
         f"{result['mean_input_tokens']:,.0f} / {result['mean_output_tokens']:,.0f}"),
        ("arrival rate", f"{result['arrival_rate_rps']:.3f} requests/s"),
        ("inter-arrival CV (1 = Poisson)", "-" if cv is None else f"{cv:.2f}"),
        ("prefix-cache hit ratio (prompt tokens)", "-" if hit is None else f"{hit:.1%}"),
    ])  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    """Entry point: run the app; turn every input error into one line and exit status 2."""
    usage_error = getattr(typer, "TyperException", None)
    if usage_error is None:  # typer < 0.26 uses click directly
        import click  # type: ignore[import-not-found, unused-ignore]

        usage_error = click.ClickException
    try:
        result = app(args=argv, standalone_mode=False, prog_name="aifabric")
    except AifabricError as exc:
        return _fail(str(exc))
    except typer.Exit as exc:
        return int(exc.exit_code)
    except typer.Abort:
        return _fail("aborted")
    except usage_error as exc:
        message = exc.format_message() if hasattr(exc, "format_message") else str(exc)
        if type(exc).__name__ == "NoArgsIsHelpError":
            sys.stderr.write(message + "\n")
            return 2
        return _fail(" ".join(message.split()))
    except BrokenPipeError:
        return 0
    return int(result) if isinstance(result, int) else 0


def _fail(message: str) -> int:
    sys.stderr.write(f"aifabric: error: {message}\n")
    return 2


def run() -> None:
    """Console-script entry point."""
    raise SystemExit(main())


if __name__ == "__main__":
    run()
