"""``aifabric catalog ...``: the shipped catalog of models, GPUs, NICs and switches."""

from __future__ import annotations

import typer

from aifabric.cli.edges import JsonFlag, emit_json

catalog_app = typer.Typer(
    no_args_is_help=True, help="Shipped catalog of models, GPUs, NICs, switches."
)


@catalog_app.command("models")
def catalog_models(as_json: JsonFlag = False) -> None:
    """LLM architectures with computed parameter counts and KV bytes per token."""
    from aifabric import catalog

    rows = [m.summary() for m in catalog.models().values()]
    if as_json:
        emit_json({"models": rows})
        return
    from aifabric.report.tables import models_table

    models_table(rows)


@catalog_app.command("gpus")
def catalog_gpus(as_json: JsonFlag = False) -> None:
    """Accelerators: dense peak FLOP/s, HBM, scale-up bandwidth and domain size."""
    from aifabric import catalog

    rows = [g.summary() for g in catalog.gpus().values()]
    if as_json:
        emit_json({"gpus": rows})
        return
    from aifabric.report.tables import gpus_table

    gpus_table(rows)


def _parts(kind: str, as_json: bool) -> None:
    from aifabric import catalog

    table = catalog.nics() if kind == "nics" else catalog.switches()
    rows = [part.summary() for part in table.values()]
    if as_json:
        emit_json({kind: rows})
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
