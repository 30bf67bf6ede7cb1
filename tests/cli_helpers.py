"""Run the CLI in-process: JSON on success, or the one-line error with exit status 2.

Every JSON output read through these helpers is validated against the command's published
schema (``aifabric schema COMMAND``), so each CLI test also tests the schema."""

from __future__ import annotations

import json
from functools import cache
from typing import Any

import pytest

from aifabric.cli import main


@cache
def _validator(command: str) -> Any:
    from jsonschema import Draft202012Validator

    from aifabric.outputs.schema import json_schema

    schema = json_schema(command)
    Draft202012Validator.check_schema(schema)
    return Draft202012Validator(schema)


def command_of(args: list[str] | tuple[str, ...]) -> str | None:
    """The command path (``traffic train``) of a command line, if it has a JSON schema."""
    from aifabric.outputs.schema import COMMANDS

    words = [a for a in args[:2] if not a.startswith("-")]
    for n in (2, 1):
        name = " ".join(words[:n])
        if len(words) >= n and name in COMMANDS:
            return name
    return None


def check_schema(args: list[str] | tuple[str, ...], data: Any) -> None:
    """Assert that ``data``, the JSON stdout of ``aifabric ARGS``, fits its command's schema."""
    command = command_of(list(args))
    if command is None:
        return
    errors = sorted(_validator(command).iter_errors(data), key=lambda e: list(e.path))
    assert not errors, f"aifabric {' '.join(args)}: output does not fit `aifabric schema " + (
        f"{command}`: " + "; ".join(f"{list(e.path)}: {e.message[:200]}" for e in errors[:5])
    )


def run_json(capsys: pytest.CaptureFixture[str], *args: str) -> dict[str, Any]:
    code = main(list(args))
    out, err = capsys.readouterr()
    assert code == 0, err
    data: dict[str, Any] = json.loads(out)
    check_schema(args, data)
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


def deep_merge(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    """``base`` with ``extra``'s keys laid over it, nested sections merged key by key (the
    serving tests build scenarios as a base plus per-test sections)."""
    out = dict(base)
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = deep_merge(out[key], value)
        else:
            out[key] = value
    return out


#: The serving roofline without the fitted overheads of config.Compute (RooflineTiming's own
#: defaults), for tests whose hand derivations are of the pure roofline.
UNFITTED_ROOFLINE = {"timing": "roofline", "prefill_mfu": 0.5, "iteration_overhead_s": 0.0,
                     "sequence_overhead_s": 0.0, "layer_overhead_s": 0.0,
                     "layer_sequence_overhead_s": 0.0, "scaleup_latency_s": 2e-6,
                     "scaleup_bandwidth_efficiency": 1.0}  # fmt: skip


def shortened_cluster_sets(path: Any, duration_s: float = 300.0) -> list[str]:
    """``--set`` arguments that run a ``simulate cluster`` scenario file for ``duration_s``
    simulated seconds, a time-division schedule's windows squeezed into that time in the
    same order (window k at k x duration / (windows + 1)), so every move still happens."""
    from pathlib import Path

    import yaml

    data = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    sets = ["--set", f"duration={duration_s:g}s"]
    schedule = (data.get("time_division") or {}).get("schedule")
    if schedule:
        step = duration_s / (len(schedule) + 1)
        windows = ", ".join(f"{{at: {k * step:g}s, training_gpus: {w['training_gpus']}}}"
                            for k, w in enumerate(schedule))  # fmt: skip
        sets += ["--set", f"time_division.schedule=[{windows}]"]
    return sets
