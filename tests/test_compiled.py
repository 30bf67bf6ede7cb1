"""The compiled build (setup.py: mypyc) against the pure-Python one: same outputs.

Opt-in: ``make test-compiled`` builds ``build/compiled`` and runs this file with
``AIFABRIC_COMPILED`` naming it (skipped otherwise). Each case runs the CLI twice, once on
the editable pure-Python package and once with the compiled package first on
``PYTHONPATH``, and the JSON outputs must be equal, every number bit for bit; only wall
times are dropped. mypyc keeps Python's semantics (the same float operations in the same
order), so any difference is a defect of the build, not a tolerance. A narrowed type that
is wrong at run time is an error under mypyc (it checks what it unboxes), which these
examples also exercise.
"""

from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[1]
BUILD = os.environ.get("AIFABRIC_COMPILED", "")
pytestmark = pytest.mark.skipif(not BUILD, reason="make test-compiled runs these")

_MOONCAKE = "examples/serve/mooncake-conversation-pd.yaml"
_POISSON = "examples/serve/poisson-colocated.yaml"
CASES = {
    "mooncake": ["simulate", "serve", "-f", _MOONCAKE],
    "mooncake-1G-NICs": ["simulate", "serve", "-f", _MOONCAKE, "--set", "network.nic_bandwidth=1G"],
    "poisson": ["simulate", "serve", "-f", _POISSON],
    "poisson-admission-overload": [
        *("simulate", "serve", "-f", _POISSON, "--set", "slo.admission_control=true"),
        *("--set", "workload.rate_rps=2000"),
    ],
    "deepseek-ep": ["simulate", "serve", "-f", "examples/serve/deepseek-v3-ep.yaml"],
    "fabric": ["simulate", "serve", "-f", "examples/serve/mooncake-pd-fabric.yaml"],
    "elastic": ["simulate", "serve", "-f", "examples/serve/elastic-pd-step.yaml"],
    "cluster": [
        *("simulate", "cluster", "-f", "examples/cluster/converged.yaml"),
        *("--set", "duration=10min"),
    ],
}


def _compiled_modules() -> list[str]:
    """setup.py's COMPILED list (read, not imported: importing it would run setup())."""
    tree = ast.parse((ROOT / "setup.py").read_text())
    for node in tree.body:
        if isinstance(node, ast.Assign) and getattr(node.targets[0], "id", "") == "COMPILED":
            paths = ast.literal_eval(node.value)
            return [p.removesuffix(".py").removesuffix("/__init__").replace("/", ".")
                    for p in paths]  # fmt: skip
    raise AssertionError("setup.py has no COMPILED list")


def _run(args: list[str], compiled: bool) -> dict[str, Any]:
    env = dict(os.environ)
    env.pop("PYTHONPATH", None)
    if compiled:
        env["PYTHONPATH"] = str(Path(BUILD).resolve())
    cmd = [sys.executable, "-m", "aifabric", *args, "--json"]
    done = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    out: dict[str, Any] = json.loads(done.stdout)
    return out


def _without_wall(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _without_wall(v) for k, v in value.items() if "wall" not in k}
    if isinstance(value, list):
        return [_without_wall(v) for v in value]
    return value


def test_every_listed_module_is_compiled() -> None:
    """The build holds a C extension for each module setup.py lists, and an import with the
    build first on the path loads it (not the .py next to it)."""
    modules = _compiled_modules()
    code = (
        "import importlib, json, sys; "
        f"print(json.dumps({{m: importlib.import_module(m).__file__ for m in {modules!r}}}))"
    )
    env = dict(os.environ, PYTHONPATH=str(Path(BUILD).resolve()))
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                          text=True, check=True)  # fmt: skip
    files = json.loads(done.stdout)
    assert sorted(files) == sorted(modules)
    for module, path in files.items():
        assert path.endswith(".so") or path.endswith(".pyd"), (module, path)
        assert str(Path(BUILD).resolve()) in path, (module, path)


@pytest.mark.parametrize("case", sorted(CASES))
def test_compiled_output_equals_pure(case: str) -> None:
    pure = _without_wall(_run(CASES[case], compiled=False))
    fast = _without_wall(_run(CASES[case], compiled=True))
    assert fast == pure
