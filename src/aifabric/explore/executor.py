"""Run a sweep's points in worker processes, in chunks, storing rows as they finish.

Points go to the workers in chunks (consecutive points of grid order), so a point of a few
milliseconds does not pay a process round trip each; at most ``2 * workers`` chunks are
queued at once, so a killed sweep loses at most those points. Each chunk's rows are one
transaction. A result depends only on its point (every simulator draws from the scenario's
seeded Generator), so the stored rows are the same for any worker count and backend; only
the order rows arrive in and the wall times differ.

Backends (one chunking and storing loop, :func:`_windowed`, serves them all):

- ``local``: a :class:`concurrent.futures.ProcessPoolExecutor` of *spawned* (never forked)
  processes, which share nothing with the parent's DuckDB connection; one worker runs the
  chunks in-process, in order;
- ``ray``: one Ray task per chunk (:mod:`aifabric.explore.ray_backend`), on a local Ray
  started for the sweep or on a running cluster (``--address``).

SIGTERM and SIGINT stop a sweep cleanly: the transaction being written is rolled back (the
chunks committed before stay), the workers are terminated, and :class:`SweepInterrupted`
says how many points were stored; ``--resume`` carries on from there.
"""

from __future__ import annotations

import contextlib
import os
import signal
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from types import FrameType
from typing import Any, Protocol

from aifabric.explore.runners import Outcome, run_points
from aifabric.explore.sweep import Point, Sweep

__all__ = [
    "BACKENDS",
    "SweepInterrupted",
    "SweepSummary",
    "chunk_size",
    "default_workers",
    "run_sweep",
]

#: The ``--backend`` values.
BACKENDS = ("local", "ray")


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


class SweepInterrupted(BaseException):
    """A sweep stopped by SIGTERM or SIGINT after storing ``stored`` of ``total`` points.

    A BaseException, as KeyboardInterrupt is: raised from the signal handler wherever the
    main thread is, it must pass through the runners' ``except Exception`` (which would
    store the point being run as an error) up to the sweep.
    """

    def __init__(self, signame: str, stored: int = 0, total: int = 0) -> None:
        super().__init__(signame)
        self.signame, self.stored, self.total = signame, stored, total

    def __str__(self) -> str:
        return (f"sweep interrupted by {self.signame}: {self.stored:,} of {self.total:,} points "
                "stored this run; rerun with --resume to finish")  # fmt: skip


class Pool(Protocol):
    """Where chunks run: :func:`_windowed` submits jobs and collects their outcomes."""

    workers: int

    def submit(self, job: tuple[Any, ...]) -> Any:
        """Start ``run_points(*job)``; a handle to wait on."""

    def wait(self, pending: list[Any]) -> tuple[list[Any], list[Any]]:
        """(finished, still pending) once at least one handle of ``pending`` is done."""

    def result(self, handle: Any) -> list[Outcome]:
        """The outcomes of a finished handle."""

    def close(self, *, abort: bool) -> None:
        """Release the workers; with ``abort``, drop queued chunks and end running ones."""


class _InProcess:
    """One worker: each chunk runs in this process when waited on, in submission order."""

    workers = 1

    def submit(self, job: tuple[Any, ...]) -> Any:
        return job

    def wait(self, pending: list[Any]) -> tuple[list[Any], list[Any]]:
        return [run_points(*pending[0])], pending[1:]

    def result(self, handle: Any) -> list[Outcome]:
        outcomes: list[Outcome] = handle
        return outcomes

    def close(self, *, abort: bool) -> None:
        pass


class _Processes:
    """Spawned local processes (concurrent.futures), ``workers`` of them."""

    def __init__(self, workers: int) -> None:
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor

        self.workers = workers
        context = multiprocessing.get_context("spawn")
        self.pool = ProcessPoolExecutor(max_workers=workers, mp_context=context)

    def submit(self, job: tuple[Any, ...]) -> Any:
        return self.pool.submit(run_points, *job)

    def wait(self, pending: list[Any]) -> tuple[list[Any], list[Any]]:
        from concurrent.futures import FIRST_COMPLETED, wait

        done, rest = wait(pending, return_when=FIRST_COMPLETED)
        return [f for f in pending if f in done], [f for f in pending if f in rest]

    def result(self, handle: Any) -> list[Outcome]:
        outcomes: list[Outcome] = handle.result()
        return outcomes

    def close(self, *, abort: bool) -> None:
        if abort:
            # ProcessPoolExecutor has no public way to end running tasks before Python 3.14
            # (terminate_workers); its _processes maps pid -> Process.
            processes = list(getattr(self.pool, "_processes", None) or {})
            self.pool.shutdown(wait=False, cancel_futures=True)
            for pid in processes:
                with contextlib.suppress(OSError):  # already gone
                    os.kill(pid, signal.SIGTERM)
        self.pool.shutdown(wait=True, cancel_futures=abort)


def open_pool(backend: str, workers: int | None, address: str | None, chunks: int) -> Pool:
    """The pool of ``backend`` (``workers`` None: the CPUs here, or the Ray cluster's)."""
    from aifabric.errors import ConfigError

    if backend not in BACKENDS:
        raise ConfigError(f"--backend(={backend!r}) must be one of {', '.join(BACKENDS)}")
    if address is not None and backend != "ray":
        raise ConfigError(f"--address(={address!r}) needs --backend ray")
    if backend == "ray":
        from aifabric.explore.ray_backend import RayPool

        return RayPool(workers, address)
    count = default_workers() if workers is None else workers
    if count <= 1 or chunks <= 1:
        return _InProcess()
    return _Processes(count)


def _windowed(pool: Pool, jobs: Sequence[tuple[Any, ...]]) -> Iterator[list[Outcome]]:
    """Each job's outcomes as it finishes, with at most ``2 * pool.workers`` in flight."""
    queue = list(reversed(jobs))
    pending: list[Any] = []
    while True:
        while queue and len(pending) < 2 * pool.workers:
            pending.append(pool.submit(queue.pop()))
        if not pending:
            return
        finished, pending = pool.wait(pending)
        for handle in finished:
            yield pool.result(handle)


@contextmanager
def _signals_raise() -> Iterator[list[str]]:
    """While inside, SIGTERM raises :class:`SweepInterrupted` (once) in the main thread.

    Yields the names of the signals caught: DuckDB's Python client checks for signals while
    a query runs and turns the handler's exception into ``RuntimeError: Query interrupted``
    (after rolling the statement back), so the sweep asks this list what happened.
    """
    caught: list[str] = []
    if threading.current_thread() is not threading.main_thread():
        yield caught
        return

    def handler(signum: int, frame: FrameType | None) -> None:
        if not caught:
            caught.append(signal.Signals(signum).name)
            raise SweepInterrupted(caught[0])

    previous = signal.signal(signal.SIGTERM, handler)
    try:
        yield caught
    finally:
        signal.signal(signal.SIGTERM, previous)


def run_sweep(
    sweep: Sweep, store: Any, *, workers: int | None = 1, resume: bool = False,
    progress: bool = False, backend: str = "local", address: str | None = None,
    points: Sequence[Point] | None = None,
) -> SweepSummary:  # fmt: skip
    """Run ``sweep``'s points (or the given subset of them: a search's round) and write
    their rows to ``store`` (a ResultStore).

    ``workers`` None means the CPUs here (local backend, or a local Ray) or the CPUs of the
    Ray cluster at ``address``. A point listed twice in the grid (an axis value repeated)
    runs and is stored once.
    """
    import aifabric
    from aifabric.explore.store import catalog_hash

    start = time.perf_counter()
    points = sweep.points() if points is None else list(points)
    stored = store.hashes()
    done = stored if resume else set()
    by_hash: dict[str, Point] = {}
    for p in points:
        if p.hash not in done:
            by_hash.setdefault(p.hash, p)
    todo = list(by_hash.values())
    meta = {"sweep": sweep.name, "command": sweep.command,
            "aifabric_version": aifabric.__version__, "catalog_hash": catalog_hash()}  # fmt: skip
    statuses: dict[str, int] = {}
    finished, used = 0, 1
    with _signals_raise() as caught:
        pool: Pool | None = None
        aborted = True
        try:
            count = default_workers() if workers is None and backend == "local" else workers
            size = chunk_size(len(todo), count or 1)  # a Ray cluster's size is not known yet
            chunks = [todo[i : i + size] for i in range(0, len(todo), size)]
            pool = open_pool(backend, count, address, len(chunks))
            used = pool.workers
            if count is None:  # now it is: chunk for the cluster
                size = chunk_size(len(todo), used)
                chunks = [todo[i : i + size] for i in range(0, len(todo), size)]
            with _progress(progress, len(todo)) as update:
                for outcomes in _windowed(pool, [_job(sweep, c) for c in chunks]):
                    rows = [store.row(o, by_hash[o.hash].scenario, meta) for o in outcomes]
                    # without --resume a stored point is replaced; a DELETE only if any is
                    store.write(rows, replace=not resume
                                and any(o.hash in stored for o in outcomes))  # fmt: skip
                    for o in outcomes:
                        statuses[o.status] = statuses.get(o.status, 0) + 1
                    finished += len(outcomes)
                    update(finished)
            aborted = False
        except KeyboardInterrupt:
            raise SweepInterrupted("SIGINT", finished, len(todo)) from None
        except BaseException:
            if caught:  # SweepInterrupted itself, or what DuckDB made of it
                raise SweepInterrupted(caught[0], finished, len(todo)) from None
            raise
        finally:
            if pool is not None:
                pool.close(abort=aborted)
    skipped = sum(1 for p in points if p.hash in done)
    return SweepSummary(sweep.grid_size, len(points), skipped, len(todo), statuses, used,
                        time.perf_counter() - start)  # fmt: skip


def _outcomes(sweep: Sweep, chunks: list[list[Point]], workers: int) -> Iterator[list[Outcome]]:
    """Each chunk's outcomes as it finishes, on local workers (in order with one)."""
    pool = open_pool("local", workers, None, len(chunks))
    aborted = True
    try:
        yield from _windowed(pool, [_job(sweep, c) for c in chunks])
        aborted = False
    finally:
        pool.close(abort=aborted)


def _job(sweep: Sweep, chunk: list[Point]) -> tuple[Any, ...]:
    return (sweep.command, [(p.index, p.hash, p.scenario) for p in chunk],
            sweep.output_constraints, sweep.base_dir)  # fmt: skip
