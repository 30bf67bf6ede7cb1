"""Output files: refused before any work when they cannot be written, written whole or not
at all, and nothing left behind by a failed command."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from aifabric.errors import ConfigError
from aifabric.outputs import check_output_path, write_atomic
from tests.cli_helpers import run_error


def test_refusals(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        check_output_path(tmp_path / "missing" / "x.csv")
    with pytest.raises(ConfigError, match="is a directory"):
        check_output_path(tmp_path)
    with pytest.raises(ConfigError, match="not a regular file"):
        check_output_path("/dev/null")
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    with pytest.raises(ConfigError, match="not a regular file"):
        check_output_path(fifo)
    assert check_output_path(tmp_path / "new.csv") == tmp_path / "new.csv"


def test_write_is_whole_or_nothing(tmp_path: Path) -> None:
    target = tmp_path / "out.txt"
    target.write_text("old", encoding="utf-8")

    def failing(f):  # type: ignore[no-untyped-def]
        f.write("partial")
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError):
        write_atomic(target, failing)
    assert target.read_text(encoding="utf-8") == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.txt"]
    write_atomic(target, "new")
    assert target.read_text(encoding="utf-8") == "new"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.txt"]


@pytest.mark.parametrize("flag", ["--graphml", "--export", "--matrix", "--svg"])
def test_plan_bad_paths_are_one_line_errors(capsys, tmp_path: Path, flag: str) -> None:
    err = run_error(
        capsys, "plan", "--gpus", "64", "--model", "llama3-8b", "--tp", "8", "--dp", "8",
        flag, str(tmp_path / "nowhere" / "f"),
    )  # fmt: skip
    assert flag in err and "does not exist" in err
    err = run_error(capsys, "plan", "--gpus", "64", flag, str(tmp_path))
    assert "directory" in err


def test_failed_plan_leaves_no_file(capsys, tmp_path: Path) -> None:
    """A job that does not fit the fabric fails after the paths were checked: no output."""
    out = tmp_path / "topo.graphml"
    run_error(
        capsys, "plan", "--gpus", "64", "--model", "llama3-8b", "--tp", "8", "--dp", "16",
        "--graphml", str(out),
    )  # fmt: skip
    assert list(tmp_path.iterdir()) == []


def test_serve_bad_output_path(capsys, tmp_path: Path) -> None:
    err = run_error(
        capsys, "simulate", "serve", "-f", "examples/serve/poisson-colocated.yaml",
        "--timeseries", str(tmp_path / "no" / "t.csv"),
    )  # fmt: skip
    assert "--timeseries" in err


def test_several_outputs_are_all_or_none(tmp_path: Path) -> None:
    """A write that fails on the second file leaves the first target untouched."""
    from aifabric.outputs import write_all_atomic

    first = tmp_path / "a.csv"
    first.write_text("old", encoding="utf-8")

    def failing(f):  # type: ignore[no-untyped-def]
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError):
        write_all_atomic([(first, "new"), (tmp_path / "b.csv", failing)])
    assert first.read_text(encoding="utf-8") == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.csv"]


def test_same_file_twice_and_long_names(capsys, tmp_path: Path) -> None:
    job = ["plan", "--gpus", "64", "--model", "llama3-8b", "--tp", "8", "--dp", "8"]
    same = str(tmp_path / "same.out")
    err = run_error(capsys, *job, "--svg", same, "--matrix", same)
    assert "name the same file" in err
    too_long = str(tmp_path / ("x" * 300))
    assert "longer than the file system allows" in run_error(
        capsys, *job, "--graphml", str(tmp_path / "g.xml"), "--svg", too_long
    )
    assert list(tmp_path.iterdir()) == []
    near_limit = tmp_path / ("y" * 250)  # valid; the temp file's name must not depend on it
    from tests.cli_helpers import run_json

    run_json(capsys, *job, "--svg", str(near_limit), "--json")
    assert near_limit.exists()
