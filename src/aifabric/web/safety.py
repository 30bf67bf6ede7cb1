"""What the web server refuses, and why.

- **Binding.** The server listens on 127.0.0.1 unless ``--host`` names another address;
  then it warns that anyone who can reach that address can run simulations on this machine
  (there is no authentication). :func:`bind_address` decides.
- **Bodies.** A request body over :data:`MAX_BODY_BYTES` is refused with 413 before it is
  parsed; a body that is not a JSON object with 422.
- **Files.** Scenario keys that name files (:data:`PATH_KEYS`: serving ``workload.trace``,
  a cluster workload's ``file``, ``prices``) may name only files under the repository's
  shipped ``traces/`` and ``examples/`` folders (:func:`confine_paths`); relative names
  resolve against the command's examples folder, as they do for the shipped scenarios.
  Nothing the API does writes a file.
- **Work.** Every run keeps the simulators' own work limits (:mod:`aifabric.guards`:
  refused with the estimate before it starts) and a wall-clock limit per job
  (:data:`JOB_TIME_LIMIT_S`), past which its process is killed.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from aifabric.errors import ConfigError

__all__ = [
    "EXAMPLE_DIRS", "JOB_TIME_LIMIT_S", "LOOPBACK", "MAX_BODY_BYTES", "PATH_KEYS", "ROOT",
    "bind_address", "confine_paths",
]  # fmt: skip

LOOPBACK = "127.0.0.1"
MAX_BODY_BYTES = 1 << 20  # 1 MiB: the largest shipped scenario is a few kB
JOB_TIME_LIMIT_S = 600.0  # the CLI's own guards aim at runs under ~10 minutes
PATH_KEYS = ("trace", "file", "prices")
ROOT = Path(__file__).resolve().parents[3]  # the repository (an editable install)
#: The examples folder a command's relative file names resolve against.
EXAMPLE_DIRS = {"plan": "train", "traffic train": "train", "simulate collective": "train",
                "simulate train": "train", "simulate serve": "serve",
                "simulate cluster": "cluster"}  # fmt: skip


def bind_address(host: str | None) -> tuple[str, str | None]:
    """(address to bind, warning or None). No ``--host``: loopback, no warning. A given
    host is used as is, with a warning unless it is a loopback address."""
    if host is None:
        return LOOPBACK, None
    try:
        loopback = host == "localhost" or ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = False
    if loopback:
        return host, None
    return host, (f"warning: serving on {host}: anyone who can reach it can run simulations "
                  "on this machine (no authentication); omit --host to stay on 127.0.0.1")  # fmt: skip


def _allowed_roots() -> tuple[Path, ...]:
    return (ROOT / "traces").resolve(), (ROOT / "examples").resolve()


def confine_paths(command: str, scenario: Mapping[str, Any], where: str = "") -> dict[str, Any]:
    """``scenario`` with every file key resolved to an absolute path inside the shipped
    traces/ or examples/; ConfigError (one line) for any other path."""
    base = ROOT / "examples" / EXAMPLE_DIRS.get(command, "")
    out: dict[str, Any] = {}
    for key, value in scenario.items():
        name = f"{where}{key}"
        if isinstance(value, Mapping):
            out[key] = confine_paths(command, value, f"{name}.")
        elif isinstance(value, list):
            out[key] = [confine_paths(command, v, f"{name}[{i}].") if isinstance(v, Mapping)
                        else v for i, v in enumerate(value)]  # fmt: skip
        elif key in PATH_KEYS and value is not None:
            out[key] = str(_confined(name, value, base))
        else:
            out[key] = value
    return out


def _confined(name: str, value: Any, base: Path) -> Path:
    fix = "the web API reads only the shipped files under traces/ and examples/"
    if not isinstance(value, str) or not value or "\0" in value:
        raise ConfigError(f"scenario key {name}(={value!r}) must name a file; {fix}")
    path = Path(value)
    resolved = (path if path.is_absolute() else base / path).resolve()
    if not any(resolved.is_relative_to(r) for r in _allowed_roots()):
        raise ConfigError(f"scenario key {name}(={value!r}) is outside traces/ and examples/; "
                          f"{fix}")  # fmt: skip
    if not resolved.is_file():
        raise ConfigError(f"scenario key {name}(={value!r}): no such shipped file; {fix}")
    return resolved
