"""``aifabric sweep --backend ray``: the same rows as the local backend, and clean refusals.

Truth is the local backend itself: a point's row depends only on the point (each simulator
draws from the scenario's seeded Generator), so a sweep run as Ray tasks must store exactly
the rows, every column but the wall times, that local processes store. Ray starts once for
the module (a fixture, 2 CPUs); one test runs the CLI as a fresh process with no --address,
so the start-a-private-Ray-and-stop-it path runs too.
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from .cli_helpers import run_error, run_json
from .test_sweep import TRAFFIC, _rows, _write

SEEDED = {"command": "simulate train", "base": {"model": "llama3-8b", "global_batch": 64,
          "seq_len": 2048, "network": "analytic", "jitter": 0.05, "seed": 7},
          "axes": {"tp": [1, 2, 4], "pp": [1, 2], "dp": [1, 2, 4, 8]},
          "constraints": ["fits_in_memory"]}  # fmt: skip


def _full_rows(db: str) -> list[dict[str, Any]]:
    """Every column but wall_s, result_json parsed and without its own wall_s."""
    rows = _rows(db, drop=("wall_s",))
    for r in rows:
        if r["result_json"] is not None:
            result = json.loads(r["result_json"])
            result.pop("wall_s", None)
            r["result_json"] = result
    return rows


@pytest.fixture(scope="module")
def ray_session() -> Iterator[Any]:
    ray = pytest.importorskip("ray")
    import logging

    ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False,
             logging_level=logging.ERROR, object_store_memory=128 * 2**20)  # fmt: skip
    yield ray
    ray.shutdown()


def test_ray_tasks_store_exactly_the_rows_of_local_processes(
    ray_session: Any, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    path = _write(tmp_path, SEEDED)
    local, on_ray = str(tmp_path / "local.duckdb"), str(tmp_path / "ray.duckdb")
    run_json(capsys, "sweep", "-f", path, "--db", local, "--workers", "2", "--json")
    out = run_json(capsys, "sweep", "-f", path, "--db", on_ray, "--backend", "ray",
                   "--workers", "2", "--json")  # fmt: skip
    assert out["backend"] == "ray" and out["workers"] == 2 and out["ran_points"] == 24
    assert ray_session.is_initialized()  # a Ray this process started is left running
    reference = _full_rows(local)
    assert len(reference) == 24 and {r["status"] for r in reference} >= {"ok"}
    assert _full_rows(on_ray) == reference
    # resume on Ray: nothing left to run, nothing duplicated
    again = run_json(capsys, "sweep", "-f", path, "--db", on_ray, "--backend", "ray",
                     "--resume", "--json")  # fmt: skip
    assert again["skipped_points"] == 24 and again["ran_points"] == 0
    assert _full_rows(on_ray) == reference


def test_the_cli_starts_a_local_ray_with_no_address_and_stops_it(tmp_path: Path) -> None:
    pytest.importorskip("ray")
    spec = {"command": "traffic train", "base": TRAFFIC,
            "axes": {"tp": [1, 2, 4, 8], "dp": [1, 2, 4], "zero": [0, 3]}}  # fmt: skip
    path = _write(tmp_path, spec)
    local, on_ray = str(tmp_path / "local.duckdb"), str(tmp_path / "ray.duckdb")
    base = [sys.executable, "-m", "aifabric", "sweep", "-f", path, "--workers", "2", "--json",
            "--no-progress"]  # fmt: skip
    subprocess.run([*base, "--db", local], check=True, capture_output=True, timeout=300)
    done = subprocess.run([*base, "--db", on_ray, "--backend", "ray"], capture_output=True,
                          text=True, timeout=300)  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["ran_points"] == 24
    assert _full_rows(on_ray) == _full_rows(local)


def _closed_port() -> int:
    """A local TCP port nothing listens on (bound, then released)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
    return port


@pytest.mark.parametrize(
    ("flags", "words"),
    [
        (["--backend", "ray", "--address", "127.0.0.1:PORT"], "no Ray cluster reachable"),
        (["--backend", "ray", "--address", "nowhere"], "must be auto or HOST:PORT"),
        (["--backend", "spark"], "--backend(='spark') must be one of local, ray"),
        (["--address", "auto"], "needs --backend ray"),
    ],
)
def test_bad_backend_flags_are_one_line_errors(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, flags: list[str], words: str
) -> None:
    path = _write(tmp_path, {"command": "traffic train", "base": TRAFFIC, "axes": {"tp": [1]}})
    if "ray" in flags:
        pytest.importorskip("ray")
    flags = [f.replace("PORT", str(_closed_port())) for f in flags]
    db = str(tmp_path / "x.duckdb")
    assert words in run_error(capsys, "sweep", "-f", path, "--db", db, *flags)


def test_without_ray_installed_the_ray_backend_says_how_to_install_it(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "ray", None)  # import ray -> ImportError
    path = _write(tmp_path, {"command": "traffic train", "base": TRAFFIC, "axes": {"tp": [1]}})
    line = run_error(capsys, "sweep", "-f", path, "--db", str(tmp_path / "x.duckdb"),
                     "--backend", "ray")  # fmt: skip
    assert "pip install 'aifabric[ray]'" in line
