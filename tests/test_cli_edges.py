"""The CLI's edges (aifabric.cli.edges): JSON errors, usage errors, help texts, light start-up."""

from __future__ import annotations

import ast
import json
import math
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from aifabric.cli import _walk, command, main
from aifabric.cli.edges import emit_json, wants_json

CLI_DIR = Path(__file__).resolve().parents[1] / "src" / "aifabric" / "cli"


def _error(capsys: pytest.CaptureFixture[str], *args: str) -> str:
    code = main(list(args))
    out, err = capsys.readouterr()
    assert (code, out) == (2, "")
    assert err.endswith("\n") and err.count("\n") == 1, err
    return err.rstrip("\n")


def test_config_error_is_json_on_stderr_with_json(capsys) -> None:
    """tp=6 does not divide Llama-3-70B's 64 heads: a ConfigError, one JSON line, exit 2."""
    args = ("traffic", "train", "--model", "llama3-70b", "--tp", "6")
    line = _error(capsys, *args, "--json")
    data = json.loads(line)
    assert list(data) == ["error"] and "tp" in data["error"]
    assert _error(capsys, *args) == f"aifabric: error: {data['error']}"


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (("traffic", "train", "--bogus", "--json"), "No such option: --bogus"),
        (("collective", "all_reduce", "--json", "--ranks", "x"), "'--ranks'"),
        (("plan", "--gpus", "1.5", "--json"), "'--gpus'"),
    ],
)
def test_click_usage_error_is_json_on_stderr(capsys, args: tuple[str, ...], needle: str) -> None:
    """Click raises before --json is parsed (or never parses it): the raw argv decides."""
    data = json.loads(_error(capsys, *args))
    assert list(data) == ["error"] and needle in data["error"]
    text = _error(capsys, *[a for a in args if a != "--json"])
    assert text.startswith("aifabric: error: ") and needle in text


def test_json_before_the_command_is_a_json_usage_error(capsys) -> None:
    """The root has no --json option: Click refuses it, and the refusal is JSON too."""
    assert json.loads(_error(capsys, "--json", "plan")) == {"error": "No such option: --json"}


def test_wants_json_stops_at_the_option_terminator() -> None:
    assert wants_json(["plan", "--json"])
    assert not wants_json(["trace", "stats", "--", "--json"])
    assert not wants_json(["plan", "--json-ish"])


def test_emit_json_non_finite_becomes_null_with_a_note(capsys) -> None:
    """Issue 9 item 3: no NaN/Infinity text; null plus a notes entry naming the key."""
    import numpy as np

    emit_json({"x": math.nan, "rows": [{"y": math.inf}], "calls": np.int64(3), "t": 0.1 + 0.2})
    out = json.loads(capsys.readouterr().out)
    assert out["x"] is None and out["rows"][0]["y"] is None
    assert out["calls"] == 3 and isinstance(out["calls"], int)
    assert out["t"] == 0.3
    assert any("x is nan" in n for n in out["notes"])
    assert any("rows[0].y is inf" in n for n in out["notes"])


def test_python_dash_m_aifabric() -> None:
    ok = subprocess.run([sys.executable, "-m", "aifabric", "--help"], capture_output=True,
                        text=True, check=False)  # fmt: skip
    assert ok.returncode == 0, ok.stderr
    assert "Usage: aifabric" in ok.stdout and "traffic" in ok.stdout
    bad = subprocess.run([sys.executable, "-m", "aifabric", "traffic", "train", "--bogus",
                          "--json"], capture_output=True, text=True, check=False)  # fmt: skip
    assert bad.returncode == 2 and bad.stdout == ""
    assert "error" in json.loads(bad.stderr)


def _commands() -> list[tuple[list[str], Any]]:
    """Every command of the tree with the words that invoke it."""
    found: list[tuple[list[str], Any]] = []

    def visit(cmd: Any, path: list[str]) -> None:
        found.append((path, cmd))
        for name, sub in getattr(cmd, "commands", {}).items():
            visit(sub, [*path, name])

    visit(command(), [])
    return found


def test_every_option_of_every_command_has_help() -> None:
    root = command()
    assert len(_walk(root)) >= 15  # root, 6 groups, their commands, collective, seeds
    missing = [
        (cmd.name, param.opts)
        for cmd in _walk(root)
        for param in cmd.params
        if param.param_type_name == "option" and not (param.help or "").strip()
    ]
    assert missing == []


@pytest.mark.parametrize("path", [p for p, _ in _commands()], ids=" ".join)
def test_help_has_no_bool_metavar(capsys, path: list[str]) -> None:
    assert main([*path, "--help"]) == 0
    out = capsys.readouterr().out
    assert "Usage: aifabric" in out
    assert "<bool>" not in out and "<list[" not in out


def test_import_is_light() -> None:
    """``import aifabric.cli`` must not load numpy, Rich, pydantic or YAML (lazy in commands)."""
    code = ("import sys, aifabric.cli; "
            "print(sorted(m for m in ('numpy', 'rich', 'pydantic', 'yaml') if m in sys.modules))")  # fmt: skip
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          check=True)  # fmt: skip
    assert proc.stdout.strip() == "[]"


def test_no_command_module_imports_the_app_root() -> None:
    """Command modules import aifabric.cli.edges, never aifabric.cli (no import circle)."""
    offenders = []
    for path in sorted(CLI_DIR.glob("*.py")):
        if path.name == "__init__.py":
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and node.module == "aifabric.cli":
                offenders.append(path.name)
            if isinstance(node, ast.Import) and any(a.name == "aifabric.cli" for a in node.names):
                offenders.append(path.name)
    assert offenders == []
    assert (CLI_DIR / "edges.py").exists() and not (CLI_DIR.parent / "cli_plan.py").exists()


def test_collective_default_algorithm_is_never_blamed(capsys) -> None:
    """all_to_all has no ring (direct and hierarchical only): no flag means direct."""
    assert main(["collective", "all_to_all", "--ranks", "4", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert (data["algorithm"], data["algorithm_rule"]) == ("direct", "default")
    assert main(["collective", "all_reduce", "--ranks", "4", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["algorithm"] == "ring"
    line = _error(capsys, "collective", "all_to_all", "--algorithm", "ring")
    assert "algorithm 'ring' is not available for all_to_all" in line


def test_simulate_serve_help_names_the_builtin_example(capsys) -> None:
    assert main(["simulate", "serve", "--help"]) == 0
    out = " ".join(capsys.readouterr().out.replace("│", " ").split())
    assert "built-in example" in out
    assert "examples/serve/poisson-colocated.yaml" in out
