"""``aifabric net time`` and ``net switches``: volume, capacity and deadline arithmetic."""

from __future__ import annotations

from typing import Annotated

import typer

from aifabric.cli.edges import JsonFlag, emit_json

net_app = typer.Typer(no_args_is_help=True, help="Network requirement helpers.")


@net_app.command("time")
def net_time(
    nbytes: Annotated[str, typer.Option("--bytes", help="Data volume, e.g. 84.75EB.")],
    capacity: Annotated[str, typer.Option(help="Link or switch capacity, e.g. 51.2T (bits/s).")],
    utilization: Annotated[float, typer.Option(help="Share of capacity used.")] = 1.0,
    as_json: JsonFlag = False,
) -> None:
    """Time to move a volume through a link or switch."""
    from aifabric.traffic.network import transfer_time
    from aifabric.units import format_duration, parse_bandwidth, parse_bytes

    volume, cap = parse_bytes(nbytes, what="--bytes"), parse_bandwidth(capacity, what="--capacity")
    t = transfer_time(volume, cap, utilization=utilization)
    result = {"bytes": volume, "capacity_bytes_per_s": cap, "capacity_bits_per_s": cap * 8.0,
              "utilization": utilization, "time_s": t}  # fmt: skip
    if as_json:
        emit_json(result)
    else:
        typer.echo(f"{format_duration(t)} to move {nbytes} through {capacity} at {utilization:.0%}")


@net_app.command("switches")
def net_switches(
    nbytes: Annotated[str, typer.Option("--bytes", help="Data volume, e.g. 8475EB.")],
    deadline: Annotated[str, typer.Option(help="Time allowed, e.g. 100d.")],
    capacity: Annotated[str, typer.Option(help="Capacity of one switch, e.g. 51.2T.")] = "51.2T",
    utilization: Annotated[float, typer.Option(help="Share of capacity used.")] = 1.0,
    as_json: JsonFlag = False,
) -> None:
    """Switches of a capacity needed to carry a volume within a deadline."""
    from aifabric.traffic.network import devices_for_deadline, whole_devices
    from aifabric.units import parse_bandwidth, parse_bytes, parse_duration

    volume = parse_bytes(nbytes, what="--bytes")
    d = parse_duration(deadline, what="--deadline")
    cap = parse_bandwidth(capacity, what="--capacity")
    need = devices_for_deadline(volume, d, cap, utilization=utilization)
    result = {"bytes": volume, "deadline_s": d, "capacity_bytes_per_s": cap,
              "capacity_bits_per_s": cap * 8.0, "utilization": utilization,
              "fractional_switches": need, "whole_switches": whole_devices(need)}  # fmt: skip
    if as_json:
        emit_json(result)
    else:
        typer.echo(f"{need:.2f} switches of {capacity} -> {whole_devices(need)} whole switches")
