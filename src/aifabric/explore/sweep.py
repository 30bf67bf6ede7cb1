"""Sweep files: a command, a base scenario, axes to vary, constraints -> a list of points.

A sweep file is a YAML mapping::

    command: simulate train        # plan | traffic train | simulate collective|train|serve|cluster
    base: {model: llama3-70b, network: analytic, seq_len: 8192}   # the command's -f keys
    axes:                          # key (dotted for nested keys) -> values
      tp: [1, 2, 4, 8]
      micro_batch: {range: [1, 4, 1]}       # a, a+step, ... up to b inclusive
    zip:                           # lists of equal length varied together (one axis);
      design: [clos, rail_optimized]        # a list of such mappings gives several
      oversubscription: [1, 2]
    sample: {n: 100, seed: 0}      # n seeded random points instead of the full grid
    constraints: ["tp * pp * dp == gpus", fits_in_memory]

The points are the Cartesian product of the axes (each ``zip`` group counts as one axis),
in a fixed order: the first axis varies slowest, as in :func:`itertools.product`. A
constraint naming only scenario keys (inputs) removes points before anything runs; one that
names an output key is checked after the point ran, and a point failing it is stored as
infeasible. ``sample`` draws ``n`` points without replacement, with NumPy's seeded
Generator, from the points the input constraints keep, and runs them in grid order, so the
same file always gives the same points.

Each point is identified by a content hash: SHA-256 of the canonical JSON (sorted keys, no
spaces) of ``{"command": ..., "scenario": merged}``, where ``merged`` is the base with the
point's values set; the store uses it for ``--resume``.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import math
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aifabric.errors import ConfigError
from aifabric.explore.expr import EvaluationError, Expression, parse_expression

__all__ = [
    "COMMANDS",
    "MAX_POINTS",
    "Point",
    "Sweep",
    "flatten",
    "load_sweep",
    "parse_sweep",
    "point_hash",
]

#: The commands a sweep can run (aifabric.explore.runners has one runner each).
COMMANDS = ("plan", "traffic train", "simulate collective", "simulate train", "simulate serve",
            "simulate cluster")  # fmt: skip
#: Most points a sweep file may describe before constraints (a guard on a typo'd range).
MAX_POINTS = 2_000_000
_TOP_KEYS = {"command", "base", "axes", "zip", "sample", "constraints", "name", "search"}


@dataclass(frozen=True)
class Point:
    """One point of a sweep: its index in grid order, values, merged scenario and hash."""

    index: int
    values: dict[str, Any]  # axis key (dotted) -> value
    scenario: dict[str, Any]  # the base with the values set
    hash: str


@dataclass(frozen=True)
class Sweep:
    """A parsed sweep file."""

    command: str
    base: dict[str, Any]
    axes: list[tuple[tuple[str, ...], list[tuple[Any, ...]]]]  # (keys, value tuples) per axis
    sample: tuple[int, int] | None  # (n, seed)
    input_constraints: list[Expression]
    output_constraints: list[Expression]
    base_dir: Path | None = None
    name: str | None = None
    search: Any = None  # aifabric.explore.search.SearchSpec, or None for the grid

    @property
    def keys(self) -> list[str]:
        """Every axis key, in axis order."""
        return [k for keys, _ in self.axes for k in keys]

    @property
    def grid_size(self) -> int:
        """Points of the full grid, before constraints and sampling."""
        return math.prod(len(values) for _, values in self.axes)

    def points(self) -> list[Point]:
        """The points to run: the grid, filtered by the input constraints, maybe sampled."""
        kept = [p for p in self._grid() if self._inputs_ok(p)]
        if self.sample is not None:
            import numpy as np

            n, seed = self.sample
            if n < len(kept):
                rng = np.random.default_rng(seed)
                chosen = np.sort(rng.choice(len(kept), size=n, replace=False))
                kept = [kept[i] for i in chosen.tolist()]
        return kept

    def _grid(self) -> Iterator[Point]:
        for index, combo in enumerate(itertools.product(*(v for _, v in self.axes))):
            values: dict[str, Any] = {}
            for (keys, _), tup in zip(self.axes, combo, strict=True):
                values.update(zip(keys, tup, strict=True))
            scenario = merge(self.base, values)
            yield Point(index, values, scenario, point_hash(self.command, scenario))

    def _inputs_ok(self, point: Point) -> bool:
        if not self.input_constraints:
            return True
        names = flatten(point.scenario)
        for c in self.input_constraints:
            try:
                if not c.evaluate(names):
                    return False
            except EvaluationError as exc:
                raise ConfigError(f"constraints: {c.text!r} on {point.values}: {exc}") from None
        return True


def merge(base: Mapping[str, Any], values: Mapping[str, Any]) -> dict[str, Any]:
    """A deep copy of ``base`` with each dotted key of ``values`` set (nested mappings made)."""
    merged: dict[str, Any] = json.loads(json.dumps(base))
    for key, value in values.items():
        node = merged
        parts = key.split(".")
        for part in parts[:-1]:
            child = node.get(part)
            if not isinstance(child, dict):
                child = node[part] = {}
            node = child
        node[parts[-1]] = value
    return merged


def flatten(data: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """Scalar leaves of a nested mapping by dotted key; lists are left out."""
    flat: dict[str, Any] = {}
    for key, value in data.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            flat.update(flatten(value, f"{name}."))
        elif value is None or isinstance(value, bool | int | float | str):
            flat[name] = value
    return flat


def point_hash(command: str, scenario: Mapping[str, Any]) -> str:
    """SHA-256 (hex) of the canonical JSON of the command and its merged scenario."""
    text = json.dumps({"command": command, "scenario": scenario}, sort_keys=True,
                      separators=(",", ":"), ensure_ascii=True)  # fmt: skip
    return hashlib.sha256(text.encode()).hexdigest()


def load_sweep(path: str | Path) -> Sweep:
    """Read and parse a sweep YAML file (relative paths in it resolve from its folder)."""
    from aifabric.spec.scenario import load_scenario

    p = Path(path)
    return parse_sweep(load_scenario(p), base_dir=p.resolve().parent)


def parse_sweep(data: Mapping[str, Any], *, base_dir: Path | None = None) -> Sweep:
    """Validate a sweep mapping; every problem is a one-line ConfigError naming the key."""
    if not isinstance(data, Mapping):
        raise ConfigError("sweep file must be a mapping with command, base and axes")
    unknown = sorted(set(data) - _TOP_KEYS)
    if unknown:
        raise ConfigError(f"sweep: unknown key {unknown[0]!r}; expected {sorted(_TOP_KEYS)}")
    command = data.get("command")
    if command not in COMMANDS:
        raise ConfigError(f"command(={command!r}) must be one of {', '.join(COMMANDS)}")
    base = data.get("base") or {}
    if not isinstance(base, Mapping):
        raise ConfigError(f"base must be a mapping of scenario keys, got {type(base).__name__}")
    axes = _axes(data.get("axes"))
    axes += _zips(data.get("zip"))
    keys = [k for ks, _ in axes for k in ks]
    dupes = sorted({k for k in keys if keys.count(k) > 1})
    if dupes:
        raise ConfigError(f"axes: key {dupes[0]!r} is varied twice (in axes and zip?)")
    size = math.prod(len(v) for _, v in axes)
    if size > MAX_POINTS:
        raise ConfigError(f"axes: the grid has {size:,} points; at most {MAX_POINTS:,}")
    sample = _sample(data.get("sample"))
    inputs, outputs = _constraints(data.get("constraints"), set(flatten(merge(base, {
        k: 0 for k in keys}))))  # fmt: skip
    name = data.get("name")
    search = None
    if data.get("search") is not None:
        from aifabric.explore.search import parse_search

        if sample is not None:
            raise ConfigError("sweep: give sample: or search:, not both")
        search = parse_search(data["search"])
    return Sweep(str(command), dict(base), axes, sample, inputs, outputs, base_dir,
                 None if name is None else str(name), search)  # fmt: skip


def _values(key: str, spec: Any) -> list[Any]:
    if isinstance(spec, Mapping):
        if set(spec) != {"range"}:
            raise ConfigError(f"axes.{key}: a mapping must be {{range: [a, b, step]}}")
        return _range(key, spec["range"])
    if not isinstance(spec, list) or not spec:
        raise ConfigError(f"axes.{key}: expected a non-empty list or {{range: [a, b, step]}}")
    for v in spec:
        if isinstance(v, float) and not math.isfinite(v):
            raise ConfigError(f"axes.{key}: {v!r} is not a finite number")
    return list(spec)


def _range(key: str, spec: Any) -> list[Any]:
    """a, a+step, ... up to b inclusive (integers stay integers; floats are a + i*step)."""
    ok = isinstance(spec, list) and len(spec) == 3
    if ok and all(isinstance(v, int | float) and not isinstance(v, bool) for v in spec):
        a, b, step = spec
        if not all(math.isfinite(v) for v in spec):
            ok = False
    else:
        ok = False
    if not ok:
        raise ConfigError(f"axes.{key}.range(={spec!r}) must be [a, b, step], three numbers")
    if step <= 0 or b < a:
        raise ConfigError(f"axes.{key}.range(={spec!r}) needs step > 0 and b >= a")
    count = math.floor((b - a) / step + 1e-9) + 1
    if count > MAX_POINTS:
        raise ConfigError(
            f"axes.{key}.range(={spec!r}) has {count:,} values; at most {MAX_POINTS:,}"
        )
    if all(isinstance(v, int) for v in spec):
        return list(range(a, b + 1, step))
    return [float(f"{a + i * step:.12g}") for i in range(count)]


def _check_key(where: str, key: Any) -> str:
    if not isinstance(key, str) or not key or any(not p for p in key.split(".")):
        raise ConfigError(f"{where}: key {key!r} must be a scenario key (dotted for nested)")
    return key


def _axes(spec: Any) -> list[tuple[tuple[str, ...], list[tuple[Any, ...]]]]:
    if spec is None:
        return []
    if not isinstance(spec, Mapping):
        raise ConfigError("axes must be a mapping of scenario key -> list of values")
    return [((_check_key("axes", k),), [(v,) for v in _values(k, s)]) for k, s in spec.items()]


def _zips(spec: Any) -> list[tuple[tuple[str, ...], list[tuple[Any, ...]]]]:
    if spec is None:
        return []
    groups = spec if isinstance(spec, list) else [spec]
    found = []
    for i, group in enumerate(groups):
        where = "zip" if not isinstance(spec, list) else f"zip[{i}]"
        if not isinstance(group, Mapping) or not group:
            raise ConfigError(f"{where} must be a mapping of key -> list (lists of equal length)")
        columns = {_check_key(where, k): _values(k, v) for k, v in group.items()}
        lengths = {k: len(v) for k, v in columns.items()}
        if len(set(lengths.values())) > 1:
            raise ConfigError(f"{where}: lists must have equal lengths, got {lengths}")
        found.append((tuple(columns), list(zip(*columns.values(), strict=True))))
    return found


def _sample(spec: Any) -> tuple[int, int] | None:
    if spec is None:
        return None
    if not isinstance(spec, Mapping) or set(spec) - {"n", "seed"} or "n" not in spec:
        raise ConfigError(f"sample(={spec!r}) must be {{n: COUNT, seed: INT}}")
    n, seed = spec["n"], spec.get("seed", 0)
    for key, v, low in (("n", n, 1), ("seed", seed, 0)):
        if isinstance(v, bool) or not isinstance(v, int) or v < low:
            raise ConfigError(f"sample.{key}(={v!r}) must be an integer >= {low}")
    return int(n), int(seed)


def _constraints(spec: Any, input_names: set[str]) -> tuple[list[Expression], list[Expression]]:
    if spec is None:
        return [], []
    items = [spec] if isinstance(spec, str) else spec
    if not isinstance(items, list):
        raise ConfigError("constraints must be a list of expressions")
    inputs: list[Expression] = []
    outputs: list[Expression] = []
    for i, text in enumerate(items):
        expr = parse_expression(text, where=f"constraints[{i}]")
        (inputs if expr.names <= input_names else outputs).append(expr)
    return inputs, outputs
