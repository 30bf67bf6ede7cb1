"""``aifabric schema COMMAND``: the JSON Schema of a command's ``--json`` output."""

from __future__ import annotations

from typing import Annotated

import typer

from aifabric.errors import ConfigError


def schema_cmd(
    command: Annotated[
        str | None,
        typer.Argument(help="The command: plan, traffic, simulate, seeds ...", show_default=False),
    ] = None,
    subcommand: Annotated[
        str | None,
        typer.Argument(
            help="Its subcommand, if any: train, serve, compare ...", show_default=False
        ),
    ] = None,
    list_commands: Annotated[
        bool, typer.Option("--list", help="List the commands that have a JSON output.")
    ] = False,
) -> None:
    """Print the JSON Schema (draft 2020-12) that COMMAND --json's output validates against.

    Generated from the pydantic models in aifabric.outputs.schema; every number carries its
    unit ("unit": bytes, s, bytes/s, FLOP/s, USD, W, 1).
    """
    from aifabric.cli.edges import emit_json
    from aifabric.outputs.schema import COMMANDS, json_schema

    if list_commands:
        typer.echo("\n".join(COMMANDS))
        return
    name = " ".join(w for w in (command, subcommand) if w)
    if not name:
        raise ConfigError("name a command, e.g. `aifabric schema plan`; --list lists them")
    if name not in COMMANDS:
        raise ConfigError(
            f"no JSON output is published for {name!r}; one of: {', '.join(COMMANDS)}"
        )
    emit_json(json_schema(name))
