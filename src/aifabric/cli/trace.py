"""``aifabric trace stats``: summary statistics of an LLM-serving request trace."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from aifabric.cli.edges import JsonFlag, emit_json

trace_app = typer.Typer(no_args_is_help=True, help="LLM-serving request traces.")


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
        emit_json(result)
        return
    from aifabric.report.tables import key_values

    hit = result["prefix_cache"]["hit_ratio"]
    cv = result["interarrival_cv"]
    rate = result["arrival_rate_per_s"]  # None when the trace spans no time
    key_values(f"trace {result['trace']}", [
        ("requests", f"{result['requests']:,}"),
        ("duration", f"{result['duration_s']:,.0f} s"),
        ("mean input / output tokens",
         f"{result['mean_input_tokens']:,.0f} / {result['mean_output_tokens']:,.0f}"),
        ("arrival rate", "-" if rate is None else f"{rate:.3f} requests/s"),
        ("inter-arrival CV (1 = Poisson)", "-" if cv is None else f"{cv:.2f}"),
        ("prefix-cache hit ratio (prompt tokens)", "-" if hit is None else f"{hit:.1%}"),
    ])  # fmt: skip
