"""``aifabric sweep -f SWEEP.yaml`` and ``aifabric results query|export|pareto|top``.

A sweep runs one command over many scenarios (aifabric.explore.sweep) in local worker
processes and stores one row per point in a DuckDB file; ``results`` reads that file.
DuckDB, NumPy and the simulators load inside the commands only.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from aifabric.cli.edges import JsonFlag, emit_json

Opt = typer.Option

DbOpt = Annotated[str, Opt("--db", help="Results database file (DuckDB).")]
results_app = typer.Typer(
    no_args_is_help=True, help="Query, export and rank stored sweep results (DuckDB)."
)
_HIDDEN = ("inputs_json", "result_json")


def sweep_cmd(
    file: Annotated[Path, Opt("-f", "--file", help="Sweep YAML: command, base, axes.")],
    db: DbOpt = "results.duckdb",
    workers: Annotated[
        int | None, Opt(help="Worker processes (default: the CPUs available).")
    ] = None,
    resume: Annotated[bool, Opt("--resume", help="Skip points already stored.")] = False,
    progress: Annotated[
        bool | None,
        Opt("--progress/--no-progress", help="Progress bar on stderr (default: when a TTY)."),
    ] = None,
    as_json: JsonFlag = False,
    backend: Annotated[
        str,
        Opt(help="Where points run: local (processes here) or ray (pip install 'aifabric[ray]')."),
    ] = "local",
    address: Annotated[
        str | None,
        Opt(
            help="Ray cluster to join: auto or HOST:PORT (default: start a "
            "local Ray with --workers CPUs)."
        ),
    ] = None,
) -> None:
    """Run a command over a grid (or sample) of scenarios; one DuckDB row per point."""
    import sys

    from aifabric.errors import ConfigError
    from aifabric.explore.executor import BACKENDS, SweepInterrupted, SweepSummary, run_sweep
    from aifabric.explore.store import ResultStore
    from aifabric.explore.sweep import load_sweep

    if workers is not None and workers < 1:
        raise ConfigError(f"--workers(={workers}) must be >= 1")
    if backend not in BACKENDS:
        raise ConfigError(f"--backend(={backend!r}) must be one of {', '.join(BACKENDS)}")
    if address is not None and backend != "ray":
        raise ConfigError(f"--address(={address!r}) needs --backend ray")
    sweep = load_sweep(file)
    store = ResultStore(db)
    try:
        bar = sys.stderr.isatty() if progress is None else progress
        rounds: list[int] | None = None
        if sweep.search is not None:  # a budgeted search over the grid (explore.search)
            from aifabric.explore.search import run_search

            found = run_search(sweep, store, workers=workers, resume=resume, progress=bar,
                               backend=backend, address=address)  # fmt: skip
            summary = SweepSummary(found.grid_points, found.evaluated, found.skipped,
                                   found.ran, found.statuses, found.workers, found.wall_s)  # fmt: skip
            rounds, candidates = found.rounds, found.candidates
        else:
            summary = run_sweep(sweep, store, workers=workers, resume=resume, progress=bar,
                                backend=backend, address=address)  # fmt: skip
            candidates = summary.points
        totals = store.counts()
    except SweepInterrupted as exc:
        from aifabric.cli.edges import print_error

        print_error(str(exc), as_json=as_json)
        raise typer.Exit(128 + {"SIGINT": 2, "SIGTERM": 15}.get(exc.signame, 15)) from None
    finally:
        store.close()
    result = {
        "sweep": sweep.name, "command": sweep.command, "db": db,
        "grid_points": summary.grid_points, "points": summary.points,
        "filtered_points": summary.grid_points - candidates if sweep.sample is None
        else None, "search_rounds": rounds, "skipped_points": summary.skipped, "ran_points": summary.ran,
        "ok_points": summary.statuses.get("ok", 0),
        "infeasible_points": summary.statuses.get("infeasible", 0),
        "error_points": summary.statuses.get("error", 0),
        "stored_points": sum(totals.values()), "backend": backend, "workers": summary.workers,
        "wall_s": summary.wall_s,
        "points_per_s": summary.ran / summary.wall_s if summary.wall_s > 0 else None,
    }  # fmt: skip
    if as_json:
        emit_json(result)
        return
    from aifabric.report.tables import key_values

    rate = result["points_per_s"]
    key_values(f"sweep {sweep.name or file.name}: {sweep.command} -> {db}", [
        ("grid / after constraints / already stored", f"{summary.grid_points:,} / "
         f"{candidates:,} / {summary.skipped:,}"),
        *([("search: points run per round", " + ".join(f"{n:,}" for n in rounds))]
          if rounds is not None else []),
        ("ran: ok / infeasible / error", f"{summary.ran:,}: {result['ok_points']:,} / "
         f"{result['infeasible_points']:,} / {result['error_points']:,}"),
        ("rows stored", f"{result['stored_points']:,}"),
        ("backend, workers, wall, rate", f"{backend}, {summary.workers}, {summary.wall_s:,.2f} s, "
         + ("-" if rate is None else f"{rate:,.0f} points/s")),
    ])  # fmt: skip


def _plain(value: Any) -> Any:
    """A DuckDB value as JSON: numbers, strings, booleans and null stay; others become text."""
    import math

    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    return str(value)


def _sql(con: Any, sql: str, params: list[Any] | None = None) -> tuple[list[str], list[Any]]:
    import duckdb

    from aifabric.errors import ConfigError

    try:
        cur = con.execute(sql, params or [])
        columns = [d[0] for d in cur.description] if cur.description else []
        return columns, cur.fetchall()
    except duckdb.Error as exc:
        raise ConfigError(f"SQL: {' '.join(str(exc).split())}") from None


def _print_rows(title: str, columns: list[str], rows: list[Any]) -> None:
    from rich.table import Table

    from aifabric.report.tables import _console

    table = Table(title=title)
    for c in columns:
        table.add_column(c)
    for r in rows:
        table.add_row(*("" if v is None else f"{v:.6g}" if isinstance(v, float) else str(v)
                        for v in r))  # fmt: skip
    _console().print(table)


@results_app.command("query")
def results_query(
    sql: Annotated[str, typer.Argument(help="SQL over the table points (and point_columns).")],
    db: DbOpt = "results.duckdb",
    as_json: JsonFlag = False,
) -> None:
    """Run a read-only SQL query on the stored results, e.g. SELECT status, count(*) ..."""
    import time

    from aifabric.explore.store import open_readonly

    start = time.perf_counter()
    con = open_readonly(db)
    try:
        columns, rows = _sql(con, sql)
    finally:
        con.close()
    if as_json:
        emit_json({"columns": columns,
                   "rows": [dict(zip(columns, map(_plain, r), strict=True)) for r in rows],
                   "wall_s": time.perf_counter() - start})  # fmt: skip
        return
    _print_rows(f"{len(rows):,} rows", columns, rows)


@results_app.command("export")
def results_export(
    db: DbOpt = "results.duckdb",
    parquet: Annotated[Path | None, Opt("--parquet", help="Write Parquet here.")] = None,
    csv: Annotated[Path | None, Opt("--csv", help="Write CSV (with a header) here.")] = None,
    where: Annotated[str | None, Opt(help="SQL condition on the rows to export.")] = None,
) -> None:
    """Export the points table as Parquet or CSV (DuckDB's COPY; no pyarrow needed)."""
    from aifabric.errors import ConfigError
    from aifabric.explore.store import open_readonly

    if (parquet is None) == (csv is None):
        raise ConfigError("results export: give one of --parquet FILE or --csv FILE")
    target = parquet if parquet is not None else csv
    assert target is not None
    from aifabric.outputs import check_output_paths

    check_output_paths([("--parquet" if parquet is not None else "--csv", target)])
    fmt = "FORMAT parquet" if parquet is not None else "FORMAT csv, HEADER"
    con = open_readonly(db)
    try:
        cond = f" WHERE {where}" if where else ""
        _, count = _sql(con, f"SELECT count(*) FROM points{cond}")
        path = str(target).replace("'", "''")
        _sql(con, f"COPY (SELECT * FROM points{cond} ORDER BY hash) TO '{path}' ({fmt})")
    finally:
        con.close()
    typer.echo(f"wrote {count[0][0]:,} rows to {target}")


def pareto_rows(
    con: Any, minimize: list[str], maximize: list[str], where: str | None
) -> tuple[list[str], list[Any], int]:
    """(columns, rows of the Pareto set, feasible candidates) of the stored points; the set
    is ordered by the first metric (best first; ties by hash), so a 2-D front reads along."""
    import numpy as np

    from aifabric.errors import ConfigError
    from aifabric.explore.pareto import pareto_mask

    metrics = [*minimize, *maximize]
    if not metrics:
        raise ConfigError("results pareto: give at least one --minimize or --maximize column")
    tables = {str(t) for (t,) in con.execute("SHOW TABLES").fetchall()}
    if "points" not in tables:
        return ["hash", *metrics], [], 0
    known = {str(c) for (c,) in con.execute(
        "SELECT column_name FROM information_schema.columns WHERE table_name = 'points'"
    ).fetchall()}  # fmt: skip
    for m in metrics:
        if m not in known:
            raise ConfigError(f"results pareto: no column {m!r} in points")
    cols = [c for c in _ordered_columns(con) if c not in _HIDDEN]
    quoted = ", ".join('"' + c.replace('"', '""') + '"' for c in cols)
    present = " AND ".join(f'"{m}" IS NOT NULL' for m in metrics)
    cond = f"status = 'ok' AND {present}" + (f" AND ({where})" if where else "")
    columns, rows = _sql(con, f"SELECT {quoted} FROM points WHERE {cond} ORDER BY hash")
    if not rows:
        return columns, [], 0
    idx = [columns.index(m) for m in metrics]
    try:
        values = np.array([[float(r[i]) for i in idx] for r in rows])
    except (TypeError, ValueError):
        raise ConfigError(f"results pareto: metrics {metrics} must be numeric columns") from None
    mask = pareto_mask(values, [False] * len(minimize) + [True] * len(maximize))
    sign = -1.0 if not minimize else 1.0  # the first metric: minimize's first, else maximize's
    order = sorted(np.flatnonzero(mask).tolist(), key=lambda i: sign * values[i, 0])  # stable
    return columns, [rows[i] for i in order], len(rows)


def _ordered_columns(con: Any) -> list[str]:
    rows = con.execute("SELECT column_name FROM information_schema.columns "
                       "WHERE table_name = 'points' ORDER BY ordinal_position").fetchall()  # fmt: skip
    return [str(c) for (c,) in rows]


@results_app.command("pareto")
def results_pareto(
    minimize: Annotated[
        list[str] | None,
        Opt("--minimize", metavar="COLUMN", help="A column to minimise. Repeatable."),
    ] = None,
    maximize: Annotated[
        list[str] | None,
        Opt("--maximize", metavar="COLUMN", help="A column to maximise. Repeatable."),
    ] = None,
    where: Annotated[str | None, Opt(help="SQL condition on the candidate rows.")] = None,
    db: DbOpt = "results.duckdb",
    as_json: JsonFlag = False,
) -> None:
    """The non-dominated set of the feasible (status ok) rows over the given metrics."""
    import time

    from aifabric.explore.store import open_readonly

    start = time.perf_counter()
    con = open_readonly(db)
    try:
        columns, rows, candidates = pareto_rows(con, minimize or [], maximize or [], where)
        kinds = dict(con.execute("SELECT name, kind FROM point_columns").fetchall()) \
            if rows else {}  # fmt: skip
    finally:
        con.close()
    metrics = [{"column": m, "sense": "minimize"} for m in minimize or []] + [
        {"column": m, "sense": "maximize"} for m in maximize or []
    ]
    if as_json:
        emit_json({"metrics": metrics, "candidate_points": candidates,
                   "rows": [dict(zip(columns, map(_plain, r), strict=True)) for r in rows],
                   "wall_s": time.perf_counter() - start})  # fmt: skip
        return
    names = [m["column"] for m in metrics]
    varied = [c for c in columns if kinds.get(c) == "input"
              and len({r[columns.index(c)] for r in rows}) > 1]  # fmt: skip
    shown = ["hash", *varied, *names, "bottleneck"]
    shown = list(dict.fromkeys(c for c in shown if c in columns))
    at = [columns.index(c) for c in shown]
    cut = [[(r[i][:12] if c == "hash" else r[i]) for c, i in zip(shown, at, strict=True)]
           for r in rows]  # fmt: skip
    _print_rows(f"Pareto set: {len(rows):,} of {candidates:,} feasible points", shown, cut)


def _known_columns(con: Any) -> dict[str, str]:
    """Column -> DuckDB type of the points table (empty when there is none)."""
    rows = con.execute("SELECT column_name, data_type FROM information_schema.columns "
                       "WHERE table_name = 'points' ORDER BY ordinal_position").fetchall()  # fmt: skip
    return {str(c): str(t) for c, t in rows}


_NUMERIC = ("BIGINT", "DOUBLE", "INTEGER", "FLOAT", "HUGEINT", "DECIMAL", "SMALLINT", "TINYINT")


def top_rows(
    con: Any, metric: str, *, maximize: bool, by: list[str], n: int, where: str | None
) -> dict[str, Any]:
    """The ``n`` best feasible rows by ``metric`` within each group of the ``by`` columns.

    Candidates: status ok, ``metric`` not null, ``where`` true. Within a group (equal ``by``
    values, null counting as a value) rows are ranked by the metric, best first, ties by
    hash, with DuckDB's ``row_number()`` window (https://duckdb.org/docs/sql/functions/window_functions):
    rank 1 is the best. Returns the rows (every column but the JSON blobs, plus ``rank``),
    ordered by group then rank, and the candidate count, group count and the input columns
    that take more than one value among the candidates.
    """
    from aifabric.errors import ConfigError

    if n < 1:
        raise ConfigError(f"results top: --n(={n}) must be >= 1")
    known = _known_columns(con)
    if not known:
        return {"columns": [], "rows": [], "candidates": 0, "groups": 0, "varied": []}
    for c in [metric, *by]:
        if c not in known:
            raise ConfigError(f"results top: no column {c!r} in points")
    if not known[metric].upper().startswith(_NUMERIC):
        raise ConfigError(f"results top: --metric {metric!r} must be a numeric column, "
                          f"not {known[metric]}")  # fmt: skip

    def q(c: str) -> str:
        return '"' + c.replace('"', '""') + '"'

    cond = f"status = 'ok' AND {q(metric)} IS NOT NULL" + (f" AND ({where})" if where else "")
    cols = [c for c in known if c not in _HIDDEN and c != "rank"]  # "rank" is ours
    part = f"PARTITION BY {', '.join(q(b) for b in by)} " if by else ""
    order = f"{q(metric)} {'DESC' if maximize else 'ASC'}, hash"
    ranked = (f"SELECT {', '.join(q(c) for c in cols)}, row_number() OVER ({part}ORDER BY "
              f"{order}) AS rank FROM points WHERE {cond}")  # fmt: skip
    group_order = "".join(f"{q(b)} NULLS FIRST, " for b in by)
    columns, rows = _sql(con, f"SELECT * FROM ({ranked}) WHERE rank <= ? "
                              f"ORDER BY {group_order}rank", [n])  # fmt: skip
    keys = ", ".join(q(b) for b in by) if by else "1"
    _, counted = _sql(con, f"SELECT count(*), (SELECT count(*) FROM (SELECT DISTINCT {keys} "
                           f"FROM points WHERE {cond})) FROM points WHERE {cond}")  # fmt: skip
    candidates, groups = int(counted[0][0]), int(counted[0][1])
    varied: list[str] = []
    if candidates:
        kinds = dict(con.execute("SELECT name, kind FROM point_columns").fetchall())
        inputs = [c for c in cols if kinds.get(c) == "input"]
        if inputs:
            _, distinct = _sql(con, "SELECT " + ", ".join(f"count(DISTINCT {q(c)})" for c in inputs)
                               + f" FROM points WHERE {cond}")  # fmt: skip
            varied = [c for c, k in zip(inputs, distinct[0], strict=True) if k > 1]
    return {"columns": columns, "rows": rows, "candidates": candidates, "groups": groups,
            "varied": varied}  # fmt: skip


@results_app.command("top")
def results_top(
    metric: Annotated[str, Opt("--metric", metavar="COLUMN", help="The column to rank by.")],
    maximize: Annotated[
        bool, Opt("--maximize/--minimize", help="Best is the largest, or the smallest (default).")
    ] = False,
    by: Annotated[
        list[str] | None,
        Opt("--by", metavar="COLUMN", help="Rank within groups of this column. Repeatable."),
    ] = None,
    n: Annotated[int, Opt("--n", help="Rows to keep per group.")] = 5,
    where: Annotated[str | None, Opt(help="SQL condition on the candidate rows.")] = None,
    db: DbOpt = "results.duckdb",
    as_json: JsonFlag = False,
) -> None:
    """The best feasible rows by a metric within each group, with their bottleneck."""
    import time

    from aifabric.explore.store import open_readonly

    start = time.perf_counter()
    con = open_readonly(db)
    try:
        got = top_rows(con, metric, maximize=maximize, by=by or [], n=n, where=where)
    finally:
        con.close()
    columns, rows = got["columns"], got["rows"]
    sense = "maximize" if maximize else "minimize"
    if as_json:
        emit_json({"metric": {"column": metric, "sense": sense}, "by": by or [], "n": n,
                   "candidate_points": got["candidates"], "groups": got["groups"],
                   "varied": got["varied"],
                   "rows": [dict(zip(columns, map(_plain, r), strict=True)) for r in rows],
                   "wall_s": time.perf_counter() - start})  # fmt: skip
        return
    shown = list(dict.fromkeys([*(by or []), "rank", metric, "bottleneck", *got["varied"], "hash"]))
    shown = [c for c in shown if c in columns]
    at = [columns.index(c) for c in shown]
    cut = [[(r[i][:12] if c == "hash" else r[i]) for c, i in zip(shown, at, strict=True)]
           for r in rows]  # fmt: skip
    word = "largest" if maximize else "smallest"
    _print_rows(f"top {n} by {metric} ({word} first) in {got['groups']:,} groups of "
                f"{got['candidates']:,} feasible points", shown, cut)  # fmt: skip
