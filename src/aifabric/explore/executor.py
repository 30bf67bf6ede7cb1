"""Run a sweep's points in local worker processes, in chunks, storing rows as they finish.

Points go to the workers in chunks (consecutive points of grid order), so a point of a few
milliseconds does not pay a process round trip each; at most ``2 * workers`` chunks are
queued at once, so a killed sweep loses at most those points. Workers are *spawned*, never
forked, so they share nothing with the parent's DuckDB connection. Each chunk's rows are
one transaction. A result depends only on its point (every simulator draws from the
scenario's seeded Generator), so the stored rows are the same for any worker count; only
the order rows arrive in and the wall times differ.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from aifabric.explore.runners import Outcome, run_points
from aifabric.explore.sweep import Point, Sweep

__all__ = ["SweepSummary", "chunk_size", "default_workers", "run_sweep"]


@dataclass(frozen=True)
class SweepSummary:
    """Counts of one ``aifabric sweep`` run."""

    grid_points: int
    points: int  # after the input constraints (and sampling)
    skipped: int  # already stored (--resume)
    ran: int
    statuses: dict[str, int]  # of the points run now
    workers: int
    wall_s: float


def default_workers() -> int:
    """Worker processes by default: the CPUs this process may use."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not Linux
        return max(1, os.cpu_count() or 1)


def chunk_size(points: int, workers: int) -> int:
    """Points per chunk: about 8 chunks per worker, between 1 and 64 points."""
    return max(1, min(64, points // (8 * workers) or 1))


@contextmanager
def _progress(enabled: bool, total: int) -> Iterator[Callable[[int], None]]:
    """A Rich progress bar on stderr: points done, rate and time left."""
    if not enabled:
        yield lambda done: None
        return
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    with Progress(
        TextColumn("sweep"), BarColumn(), MofNCompleteColumn(), TextColumn("points"),
        TextColumn("{task.fields[rate]}"), TimeElapsedColumn(), TextColumn("ETA"),
        TimeRemainingColumn(), console=Console(stderr=True), transient=True,
    ) as bar:  # fmt: skip
        task = bar.add_task("sweep", total=total, rate="")
        start = time.perf_counter()

        def update(done: int) -> None:
            rate = done / max(time.perf_counter() - start, 1e-9)
            bar.update(task, completed=done, rate=f"{rate:,.0f}/s")

        yield update


def run_sweep(
    sweep: Sweep, store: Any, *, workers: int = 1, resume: bool = False,
    progress: bool = False,
) -> SweepSummary:  # fmt: skip
    """Run ``sweep``'s points and write their rows to ``store`` (a ResultStore)."""
    import aifabric
    from aifabric.explore.store import catalog_hash

    start = time.perf_counter()
    points = sweep.points()
    done = store.hashes() if resume else set()
    todo = [p for p in points if p.hash not in done]
    meta = {"sweep": sweep.name, "command": sweep.command,
            "aifabric_version": aifabric.__version__, "catalog_hash": catalog_hash()}  # fmt: skip
    size = chunk_size(len(todo), workers)
    chunks = [todo[i : i + size] for i in range(0, len(todo), size)]
    statuses: dict[str, int] = {}
    by_hash = {p.hash: p for p in todo}

    def store_chunk(outcomes: Sequence[Outcome]) -> None:
        rows = [store.row(o, by_hash[o.hash].scenario, meta) for o in outcomes]
        store.write(rows, replace=not resume)
        for o in outcomes:
            statuses[o.status] = statuses.get(o.status, 0) + 1

    with _progress(progress, len(todo)) as update:
        finished = 0
        for outcomes in _outcomes(sweep, chunks, workers):
            store_chunk(outcomes)
            finished += len(outcomes)
            update(finished)
    return SweepSummary(sweep.grid_size, len(points), len(points) - len(todo), len(todo),
                        statuses, workers, time.perf_counter() - start)  # fmt: skip


def _job(sweep: Sweep, chunk: list[Point]) -> tuple[Any, ...]:
    return (sweep.command, [(p.index, p.hash, p.scenario) for p in chunk],
            sweep.output_constraints, sweep.base_dir)  # fmt: skip


def _outcomes(sweep: Sweep, chunks: list[list[Point]], workers: int) -> Iterator[list[Outcome]]:
    """Each chunk's outcomes as it finishes (in order with one worker, in-process)."""
    if workers <= 1 or len(chunks) <= 1:
        for chunk in chunks:
            yield run_points(*_job(sweep, chunk))
        return
    import multiprocessing
    from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait

    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=workers, mp_context=context) as pool:
        pending: set[Future[list[Outcome]]] = set()
        queue = list(reversed(chunks))
        try:
            while True:
                while queue and len(pending) < 2 * workers:
                    pending.add(pool.submit(run_points, *_job(sweep, queue.pop())))
                if not pending:
                    return
                finished, pending = wait(pending, return_when=FIRST_COMPLETED)
                for future in finished:
                    yield future.result()
        finally:
            for future in pending:
                future.cancel()
