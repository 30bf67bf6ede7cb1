"""The command line's edges, in one home: JSON on stdout, errors on stderr, exit codes, files.

Every command module imports this module (never the app root, ``aifabric.cli``), so there is
one rule for each edge:

- success with ``--json``: one JSON object on stdout, strict JSON: a NaN or infinity becomes
  ``null`` with a ``notes`` entry naming it, never ``NaN`` text a JSON parser refuses;
- an input error: one line on stderr and exit status :data:`EXIT_INPUT_ERROR` (2, the status
  Click gives usage errors): ``aifabric: error: MESSAGE``, or with ``--json`` the JSON object
  ``{"error": "MESSAGE"}`` on one line;
- output files: checked before any work and written whole or not at all, by
  :mod:`aifabric.outputs` (re-exported here so a command needs one import).

Only ``typer`` (for the option declarations) and the standard library are imported at module
level, so ``import aifabric.cli`` stays light: numpy, Rich and pydantic load inside commands.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Annotated, Any

import typer

from aifabric.outputs import (
    check_output_path,
    check_output_paths,
    write_all_atomic,
    write_atomic,
)

__all__ = [
    "EXIT_INPUT_ERROR",
    "EXIT_OK",
    "JsonFlag",
    "MaxWork",
    "ScenarioFile",
    "check_output_path",
    "check_output_paths",
    "emit_json",
    "json_clean",
    "print_error",
    "wants_json",
    "write_all_atomic",
    "write_atomic",
]

EXIT_OK = 0
EXIT_INPUT_ERROR = 2  # Click's status for usage errors; ours for every input error

JsonFlag = Annotated[
    bool,
    typer.Option("--json", help="Print one JSON object (base units); errors as JSON on stderr."),
]
ScenarioFile = Annotated[Path | None, typer.Option("-f", "--file", help="Scenario YAML file.")]
MaxWork = Annotated[
    float | None,
    typer.Option(
        "--max-work",
        help="Lift the resource guard (aifabric.guards): the work this run may take, in the "
        "units a refusal names (events, samples, rank-rows, links).",
    ),
]


def emit_json(obj: Any) -> None:
    """Write ``obj`` to stdout as one indented JSON object, strict JSON.

    A non-finite number becomes ``null`` and the object's ``notes`` list says where and
    why; floats are written with 15 significant digits, so unit arithmetic's noise
    (0.30000000000000004) does not reach scripts; integral numpy scalars stay integers.
    """
    sys.stdout.write(json.dumps(json_clean(obj), indent=2, allow_nan=False) + "\n")


def json_clean(obj: Any) -> Any:
    """``obj`` as the plain, strict JSON value :func:`emit_json` prints (see there)."""
    notes: list[str] = []
    clean = _json_safe(obj, "", notes)
    if notes and isinstance(clean, dict):
        existing = clean.get("notes")
        clean["notes"] = (list(existing) if isinstance(existing, list) else []) + notes
    return clean


def _json_safe(value: Any, path: str, notes: list[str]) -> Any:
    """A copy of ``value`` with plain JSON types; see emit_json."""
    import math

    if isinstance(value, dict):
        return {
            k: _json_safe(v, f"{path}.{k}" if path else str(k), notes) for k, v in value.items()
        }
    if isinstance(value, list | tuple):
        return [_json_safe(v, f"{path}[{i}]", notes) for i, v in enumerate(value)]
    if isinstance(value, bool) or value is None or isinstance(value, str | int):
        return value
    if hasattr(value, "item") and callable(value.item):  # numpy scalar
        return _json_safe(value.item(), path, notes)
    if isinstance(value, float):
        if not math.isfinite(value):
            notes.append(f"{path} is {value} (not a finite number); reported as null")
            return None
        return float(f"{value:.15g}")
    return value


def wants_json(argv: Sequence[str]) -> bool:
    """Whether the command line asks for JSON (``--json`` before any ``--`` terminator).

    Read from the raw arguments, not the parsed options, so that a usage error found before
    Click reached ``--json`` (an unknown flag, a bad integer) is reported in JSON too.
    """
    for arg in argv:
        if arg == "--":
            return False
        if arg == "--json":
            return True
    return False


def print_error(message: str, *, as_json: bool) -> int:
    """Print one error line on stderr and return :data:`EXIT_INPUT_ERROR`.

    The message is folded to one line (Click wraps long usage errors over several).
    """
    line = " ".join(message.split())
    if as_json:
        sys.stderr.write(json.dumps({"error": line}) + "\n")
    else:
        sys.stderr.write(f"aifabric: error: {line}\n")
    return EXIT_INPUT_ERROR
