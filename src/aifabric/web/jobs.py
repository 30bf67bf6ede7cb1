"""Runs as jobs: each in its own spawned process, at most ``max_running`` at once, killed at
the time limit or on cancel.

A job runs :func:`aifabric.explore.runners.run_command` (the function every command's
``--json`` output comes from) in a process started with the *spawn* method, so a run
shares no state with the server, a cancel really stops its work (the process is
terminated), and a run that hangs or passes the time limit cannot hold the server.
Progress: ``queued``, ``running`` (with seconds elapsed, and for ``simulate serve`` the
fraction of the workload's requests that have arrived, which the simulator reports as it
goes), then ``done``, ``failed`` (with the command's one-line refusal) or ``cancelled``.
The other commands report no progress while they run (``fraction`` is null).
"""

from __future__ import annotations

import itertools
import threading
import time
from dataclasses import dataclass, field
from typing import Any

__all__ = ["Job", "JobManager"]

STATES = ("queued", "running", "done", "failed", "cancelled")
_POLL_S = 0.05


def _work(command: str, scenario: dict[str, Any], conn: Any, fraction: Any) -> None:
    """The child process: run the command and send (status, result, error) back; the
    shared ``fraction`` follows the run's progress where the command reports it."""
    from aifabric.errors import AifabricError
    from aifabric.explore.runners import run_command

    def progress(done: int, total: int) -> None:
        fraction.value = done / total if total else 0.0

    try:
        conn.send(("done", run_command(command, scenario, progress=progress), None))
    except AifabricError as exc:
        conn.send(("failed", None, " ".join(str(exc).split()) or type(exc).__name__))
    except Exception as exc:  # a bug must come back as a message, not kill the server
        conn.send(("failed", None, f"internal error: {type(exc).__name__}: "
                                   f"{' '.join(str(exc).split())}"))  # fmt: skip
    finally:
        conn.close()


@dataclass
class Job:
    """One run and what is known of it."""

    id: str
    command: str
    scenario: dict[str, Any]
    status: str = "queued"
    created: float = field(default_factory=time.time)
    started: float | None = None
    finished: float | None = None
    result: dict[str, Any] | None = None
    error: str | None = None
    fraction: Any = None  # a shared double in [0, 1] while running, for commands that report
    cancel: threading.Event = field(default_factory=threading.Event)
    ended: threading.Event = field(default_factory=threading.Event)

    def _fraction(self) -> float | None:
        if self.status == "done":
            return 1.0
        if self.fraction is None or self.command != "simulate serve":
            return None
        return float(self.fraction.value)

    def describe(self, *, with_result: bool = True) -> dict[str, Any]:
        """The job as the API returns it."""
        now = self.finished or time.time()
        out: dict[str, Any] = {
            "id": self.id, "command": self.command, "status": self.status,
            "progress": {"state": self.status,
                         "elapsed_s": 0.0 if self.started is None else now - self.started,
                         "fraction": self._fraction()},
            "error": self.error,
        }  # fmt: skip
        if with_result:
            out["result"] = self.result
        return out


class JobManager:
    """Jobs of one server: started in order, ``max_running`` at a time."""

    def __init__(self, *, max_running: int = 2, time_limit_s: float = 600.0,
                 keep: int = 200) -> None:  # fmt: skip
        self.time_limit_s = time_limit_s
        self.keep = keep
        self.jobs: dict[str, Job] = {}
        self._ids = itertools.count(1)
        self._slots = threading.Semaphore(max_running)
        self._lock = threading.Lock()

    def submit(self, command: str, scenario: dict[str, Any]) -> Job:
        with self._lock:
            job = Job(f"j{next(self._ids)}", command, scenario)
            self.jobs[job.id] = job
            done = [j for j in self.jobs.values() if j.ended.is_set()]
            for old in done[: max(0, len(self.jobs) - self.keep)]:
                del self.jobs[old.id]
        threading.Thread(target=self._run, args=(job,), daemon=True).start()
        return job

    def cancel(self, job: Job) -> None:
        job.cancel.set()
        if job.status == "queued":
            self._end(job, "cancelled", None, None)

    def shutdown(self) -> None:
        for job in list(self.jobs.values()):
            self.cancel(job)

    def _end(self, job: Job, status: str, result: Any, error: str | None) -> None:
        with self._lock:
            if job.ended.is_set():
                return
            job.status, job.result, job.error = status, result, error
            job.finished = time.time()
            job.ended.set()

    def _run(self, job: Job) -> None:
        import multiprocessing

        with self._slots:
            if job.cancel.is_set():
                self._end(job, "cancelled", None, None)
                return
            ctx = multiprocessing.get_context("spawn")
            parent, child = ctx.Pipe(duplex=False)
            job.fraction = ctx.Value("d", 0.0, lock=False)
            proc = ctx.Process(target=_work, args=(job.command, job.scenario, child,
                                                   job.fraction), daemon=True)  # fmt: skip
            job.started = time.time()
            job.status = "running"
            try:
                proc.start()
            except Exception as exc:  # no process: the job fails, the server goes on
                self._end(job, "failed", None, f"could not start the run: {exc}".split("\n")[0])
                parent.close()
                child.close()
                return
            child.close()
            try:
                while True:
                    if job.cancel.is_set():
                        self._end(job, "cancelled", None, None)
                        return
                    if time.time() - job.started > self.time_limit_s:
                        self._end(job, "failed", None,
                                  f"the run passed the time limit of {self.time_limit_s:g} s "
                                  "(aifabric ui --job-time-limit S); run it with the CLI")  # fmt: skip
                        return
                    if parent.poll(_POLL_S):
                        try:
                            status, result, error = parent.recv()
                        except EOFError:
                            status, result, error = "failed", None, "the run's process died"
                        self._end(job, status, result, error)
                        return
                    if not proc.is_alive() and not parent.poll(0):
                        self._end(job, "failed", None,
                                  f"the run's process died (exit code {proc.exitcode})")  # fmt: skip
                        return
            finally:
                if proc.is_alive():
                    proc.terminate()
                proc.join(5)
                if proc.is_alive():
                    proc.kill()
                    proc.join()
                parent.close()
