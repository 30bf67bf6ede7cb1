"""``aifabric report``: one self-contained HTML report (aifabric.report.html) from command
results (``--json`` files), from a scenario run on the spot, or from a sweep's results file."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from aifabric.cli.edges import JsonFlag, emit_json


def report_cmd(
    results: Annotated[
        list[str] | None,
        typer.Option(
            "--result",
            "-r",
            help="A --json file of one command; repeat it to draw several results together.",
            metavar="FILE",
            show_default=False,
        ),
    ] = None,
    output: Annotated[
        str, typer.Option("--output", "-o", help="HTML file to write.", metavar="PATH")
    ] = "report.html",
    file: Annotated[
        str | None,
        typer.Option(
            "--file",
            "-f",
            help="Run this scenario and report on it (give --command).",
            metavar="PATH",
        ),
    ] = None,
    command: Annotated[
        str | None,
        typer.Option(
            help="The command the results come from, or to run with "
            "-f: plan, simulate collective|train|serve|cluster, "
            "results pareto (default: told by the results' keys).",
            metavar="COMMAND",
        ),
    ] = None,
    db: Annotated[
        str | None,
        typer.Option(
            help="A sweep results file: report its Pareto front (give --minimize/--maximize).",
            metavar="PATH",
        ),
    ] = None,
    minimize: Annotated[
        list[str] | None, typer.Option(help="With --db: a column to minimize.", metavar="COLUMN")
    ] = None,
    maximize: Annotated[
        list[str] | None, typer.Option(help="With --db: a column to maximize.", metavar="COLUMN")
    ] = None,
    where: Annotated[
        str | None, typer.Option(help="With --db: an SQL filter.", metavar="SQL")
    ] = None,
    title: Annotated[str | None, typer.Option(help="The report's title.")] = None,
    as_json: JsonFlag = False,
) -> None:
    """Write one HTML file with interactive charts (plotly.js inline: it opens offline) and
    the tables of a plan, a collective, a training step, a serving run, a cluster or a sweep."""
    from aifabric.errors import ConfigError
    from aifabric.outputs.files import check_output_path, write_atomic
    from aifabric.report.html import COMMANDS, detect_command

    sources = sum(x is not None and x != [] for x in (results, file, db))
    if sources != 1:
        raise ConfigError("report: give exactly one of -r RESULT.json (repeatable), -f SCENARIO, "
                          "or --db RESULTS")  # fmt: skip
    check_output_path(output, what="--output")
    loaded: list[dict[str, Any]]
    if db is not None:
        loaded, command = [_pareto(db, minimize or [], maximize or [], where)], "results pareto"
    elif file is not None:
        if command is None:
            raise ConfigError("report -f: give --command (plan, simulate collective, simulate "
                              "train, simulate serve or simulate cluster)")  # fmt: skip
        from aifabric.explore.runners import RUNNERS, run_command
        from aifabric.spec.scenario import load_scenario

        if command not in RUNNERS:
            raise ConfigError(f"--command(={command!r}) must be one of {', '.join(RUNNERS)}")
        loaded = [run_command(command, load_scenario(file), Path(file).resolve().parent)]
    else:
        loaded = [_read_json(p) for p in results or []]
        told = {detect_command(r) for r in loaded}
        if command is None:
            if len(told) > 1 and None not in told:
                raise ConfigError("report: the results come from different commands ("
                                  + ", ".join(sorted(str(t) for t in told))
                                  + "); report one command's results at a time")  # fmt: skip
            if len(told) != 1 or None in told:
                raise ConfigError("report: cannot tell which command made these results; "
                                  "give --command")  # fmt: skip
            command = told.pop()
    if command not in COMMANDS:
        raise ConfigError(f"--command(={command!r}) must be one of {', '.join(COMMANDS)}")
    from aifabric.report import render_html

    text = render_html(command, loaded, title=title)
    write_atomic(output, text)
    if as_json:
        emit_json({"output": output, "command": command, "results": len(loaded),
                   "html_bytes": len(text.encode("utf-8"))})  # fmt: skip
        return
    typer.echo(f"report of {len(loaded)} {command} result(s) -> {output}")


def _read_json(path: str) -> dict[str, Any]:
    import json

    from aifabric.errors import ConfigError
    from aifabric.yaml_input import read_text_file

    text = read_text_file(path, f"result file {path}", max_bytes=256 * 2**20)
    try:
        data = json.loads(text)
    except ValueError as exc:
        raise ConfigError(f"result file {path} is not JSON ({exc}); give a --json output") from None
    if not isinstance(data, dict) or ("error" in data and len(data) == 1):
        raise ConfigError(f"result file {path} is not a command's --json result object")
    return data


def _pareto(db: str, minimize: list[str], maximize: list[str], where: str | None) -> dict[str, Any]:
    """The ``results pareto --json`` object, plus every feasible point's two metrics."""
    from aifabric.cli.sweep import _plain, pareto_rows
    from aifabric.explore.store import open_readonly

    con = open_readonly(db)
    try:
        columns, rows, candidates = pareto_rows(con, minimize, maximize, where)
        metrics = [*minimize, *maximize]
        points: list[dict[str, Any]] = []
        if len(metrics) >= 2 and rows:
            x, y = ('"' + m.replace('"', '""') + '"' for m in metrics[:2])
            cond = "status = 'ok'" + (f" AND ({where})" if where else "")
            points = [{metrics[0]: a, metrics[1]: b} for a, b in con.execute(
                f"SELECT {x}, {y} FROM points WHERE {cond} AND {x} IS NOT NULL AND {y} IS NOT NULL"
            ).fetchall()]  # fmt: skip
    finally:
        con.close()
    return {"metrics": [{"column": m, "sense": "minimize"} for m in minimize]
            + [{"column": m, "sense": "maximize"} for m in maximize],
            "candidate_points": candidates,
            "rows": [dict(zip(columns, map(_plain, r), strict=True)) for r in rows],
            "points": points}  # fmt: skip
