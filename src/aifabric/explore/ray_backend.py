"""The Ray backend of ``aifabric sweep --backend ray``: one Ray task per chunk.

Ray (https://docs.ray.io/, an optional extra: ``pip install 'aifabric[ray]'``) is imported
here only. With no ``--address`` the sweep starts a private local Ray with ``--workers``
CPUs (``ray.init(address="local", num_cpus=...)``, no dashboard, Ray's own logging at
ERROR) and shuts it down after; with ``--address auto`` or ``HOST:PORT`` it joins a running
cluster (``ray start --head``), whose nodes must have the same aifabric installed, and
leaves it running. A process that already called ``ray.init`` (a notebook, a test) is used
as it is. The chunking, the window of ``2 * workers`` chunks in flight and the storing are
the local backend's (:func:`aifabric.explore.executor._windowed`); each task runs
:func:`aifabric.explore.runners.run_points`, so a point's row is the same on either backend.
Tasks are not retried (``max_retries=0``): a point that kills its worker fails the sweep
rather than running twice.
"""

from __future__ import annotations

import logging
import socket
from typing import Any

from aifabric.errors import ConfigError
from aifabric.explore.runners import Outcome, run_points

__all__ = ["INSTALL_HINT", "RayPool", "check_address"]

INSTALL_HINT = "pip install 'aifabric[ray]'"
#: Seconds to wait for a TCP connection to ``--address`` before calling it unreachable.
CONNECT_TIMEOUT_S = 5.0
#: Object store of a Ray started for one sweep (Ray's minimum is 75 MiB; chunk results are
#: kilobytes, so the default of 30 % of RAM would only reserve shared memory for nothing).
LOCAL_OBJECT_STORE_BYTES = 128 * 2**20


def check_address(address: str) -> None:
    """Refuse a ``HOST:PORT`` (or ``ray://HOST:PORT``) nothing listens on, in one line.

    Ray itself retries an unreachable GCS for minutes, printing a warning every few seconds;
    one TCP connect with a timeout answers at once. ``auto`` is left to Ray (it reads the
    address of the cluster ``ray start`` last started on this machine).
    """
    if address == "auto":
        return
    rest = address.removeprefix("ray://")
    host, sep, port = rest.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ConfigError(f"--address(={address!r}) must be auto or HOST:PORT")
    try:
        with socket.create_connection((host.strip("[]"), int(port)), CONNECT_TIMEOUT_S):
            pass
    except OSError as exc:
        why = exc.strerror or type(exc).__name__
        raise ConfigError(
            f"--address(={address!r}): no Ray cluster reachable there ({why})"
        ) from None


class RayPool:
    """Chunks as Ray tasks (the :class:`aifabric.explore.executor.Pool` protocol)."""

    def __init__(self, workers: int | None, address: str | None) -> None:
        try:
            import ray
        except ImportError:
            raise ConfigError(f"--backend ray: Ray is not installed ({INSTALL_HINT})") from None
        self.ray = ray
        self.owned = False  # connected here, so disconnected (or stopped) in close
        if address is not None:
            check_address(address)
        if address is not None or not ray.is_initialized():
            options: dict[str, Any] = {"logging_level": logging.ERROR, "log_to_driver": False}
            if address is None:
                options.update(address="local", num_cpus=workers, include_dashboard=False,
                               object_store_memory=LOCAL_OBJECT_STORE_BYTES)  # fmt: skip
            else:
                options["address"] = address
            try:
                ray.init(**options)
            except (ConnectionError, RuntimeError, ValueError) as exc:
                where = f"--address(={address!r})" if address else "--backend ray"
                raise ConfigError(f"{where}: {' '.join(str(exc).split())}") from None
            self.owned = True
        cpus = int(ray.cluster_resources().get("CPU", 0))  # type: ignore[no-untyped-call]
        self.workers = workers if workers is not None else max(1, cpus)
        self.task = ray.remote(num_cpus=1, max_retries=0)(run_points)

        self.pending: list[Any] = []

    def submit(self, job: tuple[Any, ...]) -> Any:
        ref = self.task.remote(*job)
        self.pending.append(ref)
        return ref

    def wait(self, pending: list[Any]) -> tuple[list[Any], list[Any]]:
        done, rest = self.ray.wait(pending, num_returns=1)
        self.pending = list(rest)
        return list(done), list(rest)

    def result(self, handle: Any) -> list[Outcome]:
        outcomes: list[Outcome] = self.ray.get(handle)
        return outcomes

    def close(self, *, abort: bool) -> None:
        """Disconnect (a Ray started here stops; a cluster ends this driver's tasks)."""
        if abort:
            for ref in self.pending:
                self.ray.cancel(ref, force=True)
        if self.owned:
            self.ray.shutdown()
