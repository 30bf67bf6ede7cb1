"""One sweep point -> the JSON object its CLI command prints with ``--json``, or a refusal.

Each runner calls the same function the command calls (one home for each command's logic):

- ``plan``: :func:`aifabric.cli.plan.plan_scenario`;
- ``traffic train``: :func:`aifabric.cli.traffic.traffic_train_result`;
- ``simulate train``: :func:`aifabric.training.scenario.training_inputs` then
  :func:`aifabric.training.step.simulate_step`;
- ``simulate serve``: :func:`aifabric.serving.config.parse_scenario` then
  :class:`aifabric.serving.cluster.ServingSimulation`;
- ``simulate collective``: :func:`aifabric.cli.simulate.collective_result`; the command's
  flags (``op``, ``size``, ``algorithm``, ``routing``, ``qps``, ``channels``, ``group``,
  ``fail``, ``degrade``, ``seed`` and the group's ``tp pp dp cp ep``) are scenario keys here;
- ``simulate cluster``: :func:`aifabric.cli.cluster.cluster_scenario_result` (workload files
  relative to the sweep file's folder, as to the scenario file's for the command);

and the result goes through :func:`aifabric.cli.edges.json_clean`, as ``--json`` output does.
A point the command refuses (ConfigError or CapacityError) is *infeasible*, with the
refusal's one-line message as its reason; any other exception is an *error* (type and
message), so one bad point never stops a sweep.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aifabric.explore.expr import EvaluationError, Expression
from aifabric.explore.sweep import flatten

__all__ = ["Outcome", "run_command", "run_point", "run_points"]

_COLLECTIVE_KEYS = ("op", "size", "algorithm", "routing", "qps", "channels", "group",
                    "fail", "degrade", "seed")  # fmt: skip
_GROUP_DEGREES = ("tp", "pp", "dp", "cp", "ep")


@dataclass(frozen=True)
class Outcome:
    """What one point gave: status (ok, infeasible or error), reason, result, wall time."""

    index: int
    hash: str
    status: str
    reason: str | None
    result: dict[str, Any] | None
    wall_s: float


def _plan(scenario: dict[str, Any], base_dir: Path | None) -> dict[str, Any]:
    from aifabric.cli.plan import plan_scenario

    s = dict(scenario)
    frontend, prices = s.pop("frontend_nic", None), s.pop("prices", None)
    return plan_scenario(s, frontend_nic=frontend, prices=prices)[0]


def _traffic_train(scenario: dict[str, Any], base_dir: Path | None) -> dict[str, Any]:
    from aifabric.cli.traffic import traffic_train_result

    return traffic_train_result(scenario)


def _simulate_train(scenario: dict[str, Any], base_dir: Path | None) -> dict[str, Any]:
    from aifabric.training.scenario import training_inputs
    from aifabric.training.step import simulate_step

    return simulate_step(*training_inputs(scenario))


def _simulate_serve(scenario: dict[str, Any], base_dir: Path | None) -> dict[str, Any]:
    from aifabric.serving.cluster import ServingSimulation
    from aifabric.serving.config import parse_scenario

    result: dict[str, Any] = ServingSimulation(parse_scenario(scenario, base_dir)).run()
    return result


def _simulate_collective(scenario: dict[str, Any], base_dir: Path | None) -> dict[str, Any]:
    from aifabric.cli.simulate import collective_result

    s = dict(scenario)
    run = {k: s.pop(k) for k in _COLLECTIVE_KEYS if k in s}
    degrees = {k: s.pop(k) for k in _GROUP_DEGREES if k in s and "model" not in s}
    return collective_result(s, parallel=degrees, **run)


def _simulate_cluster(scenario: dict[str, Any], base_dir: Path | None) -> dict[str, Any]:
    from aifabric.cli.cluster import cluster_scenario_result

    return cluster_scenario_result(scenario, base_dir)[0]


RUNNERS: dict[str, Callable[[dict[str, Any], Path | None], dict[str, Any]]] = {
    "plan": _plan,
    "traffic train": _traffic_train,
    "simulate train": _simulate_train,
    "simulate serve": _simulate_serve,
    "simulate collective": _simulate_collective,
    "simulate cluster": _simulate_cluster,
}


def run_command(command: str, scenario: dict[str, Any], base_dir: Path | None = None,
                progress: Callable[[int, int], None] | None = None) -> Any:  # fmt: skip
    """The ``--json`` object of ``aifabric COMMAND -f`` a file holding ``scenario``.

    ``progress(done, total)``: called as the run advances, by the commands that report it
    (``simulate serve``: requests arrived of the workload's; the result is the same)."""
    from aifabric.cli.edges import json_clean

    if progress is not None and command == "simulate serve":
        from aifabric.serving.cluster import ServingSimulation
        from aifabric.serving.config import parse_scenario

        sim = ServingSimulation(parse_scenario(scenario, base_dir), progress=progress)
        return json_clean(sim.run())
    return json_clean(RUNNERS[command](scenario, base_dir))


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split()) or type(exc).__name__


def run_point(
    command: str, index: int, point_hash: str, scenario: dict[str, Any],
    constraints: Sequence[Expression] = (), base_dir: Path | None = None,
) -> Outcome:  # fmt: skip
    """Run one point and check the output constraints; never raises for a bad point."""
    from aifabric.errors import CapacityError, ConfigError

    start = time.perf_counter()
    try:
        result = run_command(command, scenario, base_dir)
    except (ConfigError, CapacityError) as exc:
        wall = time.perf_counter() - start
        return Outcome(index, point_hash, "infeasible", _one_line(exc), None, wall)
    except Exception as exc:  # a bug at one point must not stop the sweep
        wall = time.perf_counter() - start
        why = f"{type(exc).__name__}: {_one_line(exc)}"
        return Outcome(index, point_hash, "error", why, None, wall)
    wall = time.perf_counter() - start
    status: str = "ok"
    reason: str | None = None
    if constraints:
        names = {**flatten(scenario), **flatten(result)}
        for c in constraints:
            try:
                if not c.evaluate(names):
                    status, reason = "infeasible", f"constraint {c.text!r} is false"
                    break
            except EvaluationError as exc:
                status, reason = "error", f"constraint {c.text!r}: {exc}"
                break
    return Outcome(index, point_hash, status, reason, result, wall)


def run_points(
    command: str, points: Sequence[tuple[int, str, dict[str, Any]]],
    constraints: Sequence[Expression] = (), base_dir: Path | None = None,
) -> list[Outcome]:  # fmt: skip
    """Run a chunk of (index, hash, scenario) points in order (a worker's unit of work)."""
    return [run_point(command, i, h, s, constraints, base_dir) for i, h, s in points]
