"""Command line: parse -> spec -> run -> print. ``--json`` everywhere; bad input exits 2.

Every command prints exactly one JSON object with ``--json`` (numbers in base units: bytes,
s, bytes/s, USD, W), otherwise Rich tables. Errors are one line on stderr, exit status 2:
``aifabric: error: ...``, or ``{"error": "..."}`` with ``--json`` (usage errors too).

This module is the app root: it assembles the Typer app from one module per command group
(:mod:`~aifabric.cli.traffic`, :mod:`~aifabric.cli.catalog`, :mod:`~aifabric.cli.net`,
:mod:`~aifabric.cli.trace`, :mod:`~aifabric.cli.plan`, :mod:`~aifabric.cli.simulate`,
:mod:`~aifabric.cli.sweep` (``sweep`` and ``results``), and the
single commands :mod:`~aifabric.cli.collective`, :mod:`~aifabric.cli.seeds`, :mod:`~aifabric.cli.timing` and
:mod:`~aifabric.cli.schema`) and turns
errors into exit codes. The edges (JSON, error lines, output files) live in
:mod:`aifabric.cli.edges`; command modules import that, never this module.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import Any

import typer

import aifabric.cli.cluster  # registers simulate cluster
import aifabric.cli.simulate_train  # noqa: F401  (registers simulate train)
from aifabric.cli.catalog import catalog_app
from aifabric.cli.collective import collective_cmd
from aifabric.cli.edges import EXIT_INPUT_ERROR, EXIT_OK, print_error, wants_json
from aifabric.cli.net import net_app
from aifabric.cli.plan import plan_app
from aifabric.cli.report import report_cmd
from aifabric.cli.schema import schema_cmd
from aifabric.cli.seeds import seeds
from aifabric.cli.simulate import simulate_app
from aifabric.cli.sweep import results_app, sweep_cmd
from aifabric.cli.timing import timing_cmd
from aifabric.cli.trace import trace_app
from aifabric.cli.traffic import traffic_app
from aifabric.cli.ui import ui_cmd
from aifabric.errors import AifabricError

__all__ = ["app", "main", "run"]

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  help="Model, plan and simulate AI-datacenter network traffic.")  # fmt: skip
app.add_typer(traffic_app, name="traffic")
app.add_typer(catalog_app, name="catalog")
app.add_typer(net_app, name="net")
app.add_typer(trace_app, name="trace")
app.add_typer(plan_app, name="plan")
app.add_typer(simulate_app, name="simulate")
app.add_typer(results_app, name="results")
app.command("sweep")(sweep_cmd)
app.command("seeds")(seeds)
app.command("collective")(collective_cmd)
app.command("schema")(schema_cmd)
app.command("timing")(timing_cmd)
app.command("ui")(ui_cmd)
app.command("report")(report_cmd)


def command() -> Any:
    """The app as a Click command tree, with boolean flags shown without a ``<bool>`` type.

    A flag takes no value, so the type column of ``--help`` has nothing to say about it;
    Typer's Rich help prints ``<bool>`` unless the option has a metavar, so flags get an empty
    one here, once, rather than at each declaration.
    """
    root = typer.main.get_command(app)
    for cmd in _walk(root):
        # Click builds --help once per command and caches it, so it is reachable here too.
        help_option = cmd.get_help_option(typer.Context(cmd))
        for param in [*cmd.params, *([help_option] if help_option is not None else [])]:
            if getattr(param, "is_flag", False) and param.metavar is None:
                param.metavar = ""
    return root


def _walk(cmd: Any) -> list[Any]:
    found = [cmd]
    for sub in getattr(cmd, "commands", {}).values():
        found.extend(_walk(sub))
    return found


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point: run the app; turn every input error into one line and exit status 2."""
    args = list(sys.argv[1:] if argv is None else argv)
    as_json = wants_json(args)
    usage_error = _usage_error_class()
    try:
        result = command().main(args=args, standalone_mode=False, prog_name="aifabric")
    except AifabricError as exc:
        return print_error(str(exc), as_json=as_json)
    except typer.Exit as exc:
        return int(exc.exit_code)
    except typer.Abort:
        return print_error("aborted", as_json=as_json)
    except usage_error as exc:  # Click's usage errors: unknown flag, bad value
        message = exc.format_message() if hasattr(exc, "format_message") else str(exc)
        if type(exc).__name__ == "NoArgsIsHelpError":  # bare group: its help, not an error
            sys.stderr.write(message + "\n")
            return EXIT_INPUT_ERROR
        return print_error(message, as_json=as_json)
    except BrokenPipeError:
        return EXIT_OK
    except OSError as exc:  # stdout on a full or failing device: say so, not a traceback
        import errno

        if exc.errno not in (errno.ENOSPC, errno.EIO, errno.EDQUOT):
            raise
        print_error(f"cannot write the output: {exc.strerror}", as_json=as_json)
        return 1
    return int(result) if isinstance(result, int) else EXIT_OK


def _usage_error_class() -> type[Exception]:
    """Click's exception base: Typer >= 0.26 vendors Click as ``typer.TyperException``."""
    found: type[Exception] | None = getattr(typer, "TyperException", None)
    if found is None:  # typer < 0.26 uses click directly
        import click  # type: ignore[import-not-found, unused-ignore]

        found = click.ClickException
    return found


def run() -> None:
    """Console-script entry point (``aifabric = "aifabric.cli:run"`` in pyproject.toml)."""
    raise SystemExit(main())
