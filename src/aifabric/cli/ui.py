"""``aifabric ui``: the local web app and REST API (aifabric.web), served by uvicorn."""

from __future__ import annotations

from typing import Annotated

import typer


def ui_cmd(
    host: Annotated[
        str | None,
        typer.Option(
            help="Address to listen on (default 127.0.0.1; any other address is "
            "reachable by others and warns).",
            metavar="ADDRESS",
        ),
    ] = None,
    port: Annotated[int, typer.Option(help="TCP port.")] = 8765,
    db: Annotated[
        str | None,
        typer.Option(help="A sweep results DuckDB file to list (read only).", metavar="PATH"),
    ] = None,
    job_time_limit: Annotated[
        float,
        typer.Option(help="Seconds a run may take before it is stopped.", metavar="SECONDS"),
    ] = 600.0,
    jobs: Annotated[int, typer.Option(help="Runs at once (each in its own process).")] = 2,
) -> None:
    """Open a local web app to fill in scenarios, run them as jobs and read their reports;
    the same commands as JSON under /api/v1 (OpenAPI at /openapi.json)."""
    import sys
    from pathlib import Path

    from aifabric.errors import ConfigError
    from aifabric.web.safety import bind_address

    if not 0 < port < 65536:
        raise ConfigError(f"--port(={port}) must be between 1 and 65535")
    if job_time_limit <= 0:
        raise ConfigError(f"--job-time-limit(={job_time_limit:g}) must be > 0 seconds")
    if jobs < 1:
        raise ConfigError(f"--jobs(={jobs}) must be >= 1")
    if db is not None and not Path(db).is_file():
        raise ConfigError(f"--db {db}: no such file; give a results file of aifabric sweep")
    address, warning = bind_address(host)
    if warning:
        print(warning, file=sys.stderr)
    try:
        import uvicorn

        from aifabric.web.app import create_app
    except ImportError as exc:
        raise ConfigError(f"aifabric ui needs {exc.name}: pip install 'aifabric'") from None
    app = create_app(db=db, time_limit_s=job_time_limit, max_running=jobs)
    print(f"aifabric ui on http://{address}:{port}/ (Ctrl-C stops it)", file=sys.stderr)
    uvicorn.run(app, host=address, port=port, log_level="warning")
