"""Run the CLI in-process: JSON on success, or the one-line error with exit status 2."""

from __future__ import annotations

import json
from typing import Any

import pytest

from aifabric.cli import main


def run_json(capsys: pytest.CaptureFixture[str], *args: str) -> dict[str, Any]:
    code = main(list(args))
    out, err = capsys.readouterr()
    assert code == 0, err
    data: dict[str, Any] = json.loads(out)
    return data


def run_error(capsys: pytest.CaptureFixture[str], *args: str) -> str:
    """The one error line, exit status 2; with --json it is {"error": MESSAGE}, MESSAGE returned."""
    code = main(list(args))
    out, err = capsys.readouterr()
    assert code == 2
    assert out == ""
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    if "--json" in args:
        data = json.loads(lines[0])
        assert set(data) == {"error"}, err
        message: str = data["error"]
        return message
    assert lines[0].startswith("aifabric: error: ")
    return lines[0]


def main_in_process(capsys: pytest.CaptureFixture[str], *args: str) -> str:
    """Run the CLI in-process and return what it printed on stdout (exit status 0)."""
    code = main(list(args))
    out, err = capsys.readouterr()
    assert code == 0, err
    return out
