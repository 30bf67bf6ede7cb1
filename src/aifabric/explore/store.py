"""Sweep results in an embedded DuckDB file: one row per point, written as points finish.

Table ``points`` has fixed columns

    hash, sweep, command, point_index, status (ok | infeasible | error), reason, wall_s,
    aifabric_version, catalog_hash, inputs_json, result_json, bottleneck

(``bottleneck``: what limits the point, aifabric.explore.bottleneck, from its result; null
without a result or a rule for the command)
and one column per flattened key: every scalar leaf of the merged scenario (the inputs)
and of the command's ``--json`` object (the outputs), nested keys joined by ``__``
(``memory_per_gpu_bytes.total`` -> ``memory_per_gpu_bytes__total``). An output whose name is
already an input or fixed column gets the prefix ``out__`` (simulate train reports ``gpus``
too). The result's own top-level ``wall_s`` is not a column (the row's ``wall_s`` is the
point's); ``result_json`` keeps the whole object, lists included. Columns appear as keys
first appear, typed BOOLEAN, BIGINT, DOUBLE or VARCHAR and widened along that order when a
later value needs it. Table ``point_columns`` maps each column to its key and kind.

Each batch of rows is one transaction, so a killed sweep loses at most the points in flight;
``--resume`` skips points whose hash is stored. Without it, a point already stored is
replaced. DuckDB (https://duckdb.org/docs/) is imported only here, inside the commands.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from aifabric.errors import ConfigError
from aifabric.explore.runners import Outcome
from aifabric.explore.sweep import flatten

__all__ = ["FIXED", "ResultStore", "catalog_hash", "column_name", "open_readonly"]

FIXED: dict[str, str] = {
    "hash": "VARCHAR", "sweep": "VARCHAR", "command": "VARCHAR", "point_index": "BIGINT",
    "status": "VARCHAR", "reason": "VARCHAR", "wall_s": "DOUBLE",
    "aifabric_version": "VARCHAR", "catalog_hash": "VARCHAR", "inputs_json": "VARCHAR",
    "result_json": "VARCHAR", "bottleneck": "VARCHAR",
}  # fmt: skip
_ORDER = ["BOOLEAN", "BIGINT", "DOUBLE", "VARCHAR"]
_INT64 = 2**63 - 1


def column_name(key: str) -> str:
    """The column of a dotted key: dots become ``__``."""
    return key.replace(".", "__")


def _type(value: Any) -> str:
    if isinstance(value, bool):
        return "BOOLEAN"
    if isinstance(value, int):
        return "BIGINT" if abs(value) <= _INT64 else "DOUBLE"
    if isinstance(value, float):
        return "DOUBLE"
    return "VARCHAR"


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def catalog_hash() -> str:
    """SHA-256 (first 16 hex digits) of the shipped catalog data files, paths and bytes."""
    root = Path(__file__).resolve().parents[1] / "catalog" / "data"
    digest = hashlib.sha256()
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        digest.update(path.relative_to(root).as_posix().encode() + b"\0")
        digest.update(path.read_bytes())
    return digest.hexdigest()[:16]


def _connect(path: str, *, read_only: bool) -> Any:
    import duckdb

    try:
        return duckdb.connect(path, read_only=read_only)
    except duckdb.Error as exc:
        raise ConfigError(f"--db {path!r}: {' '.join(str(exc).split())}") from None


def open_readonly(path: str) -> Any:
    """A read-only connection to an existing results file (``:memory:`` gives an empty one)."""
    if path != ":memory:" and not Path(path).is_file():
        raise ConfigError(f"--db {path!r}: no results database there (run aifabric sweep)")
    return _connect(path, read_only=path != ":memory:")


class ResultStore:
    """The writer of one sweep's rows (one connection, one process)."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.con = _connect(path, read_only=False)
        self.con.execute(
            "CREATE TABLE IF NOT EXISTS points ("
            + ", ".join(f"{_quote(c)} {t}" for c, t in FIXED.items()) + ")"
        )  # fmt: skip
        self.con.execute("CREATE TABLE IF NOT EXISTS point_columns "
                         "(name VARCHAR, key VARCHAR, kind VARCHAR)")  # fmt: skip
        rows = self.con.execute(
            "SELECT column_name, data_type FROM information_schema.columns "
            "WHERE table_name = 'points'"
        ).fetchall()
        self.types: dict[str, str] = {str(c): str(t) for c, t in rows}
        for name, kind in FIXED.items():  # a file written before a fixed column existed
            if name not in self.types:
                self.con.execute(f"ALTER TABLE points ADD COLUMN {_quote(name)} {kind}")
                self.types[name] = kind
        self._kinds: dict[str, tuple[str, str]] = {}  # column -> (kind, key), for new columns

    def close(self) -> None:
        self.con.close()

    def hashes(self) -> set[str]:
        """Hashes of the points stored so far."""
        return {str(h) for (h,) in self.con.execute("SELECT hash FROM points").fetchall()}

    def counts(self) -> dict[str, int]:
        rows = self.con.execute("SELECT status, count(*) FROM points GROUP BY status").fetchall()
        return {str(s): int(n) for s, n in rows}

    def row(
        self, outcome: Outcome, scenario: dict[str, Any], meta: dict[str, Any]
    ) -> dict[str, Any]:
        """The column -> value mapping of one point (meta: sweep, command, version, catalog)."""
        inputs = {column_name(k): v for k, v in flatten(scenario).items()}
        row: dict[str, Any] = {**meta, "hash": outcome.hash, "point_index": outcome.index,
                               "status": outcome.status, "reason": outcome.reason,
                               "wall_s": outcome.wall_s,
                               "inputs_json": json.dumps(scenario, sort_keys=True),
                               "result_json": None if outcome.result is None
                               else json.dumps(outcome.result, sort_keys=True)}  # fmt: skip
        row.update(inputs)
        for key in inputs:
            self._kinds.setdefault(key, ("input", key))
        if outcome.result is not None:
            from aifabric.explore.bottleneck import bottleneck

            row["bottleneck"] = bottleneck(str(meta.get("command", "")), outcome.result)
            result = {k: v for k, v in outcome.result.items() if k != "wall_s"}
            for key, value in flatten(result).items():
                name = column_name(key)
                if name in row or name in FIXED:
                    name = "out__" + name
                row[name] = value
                self._kinds.setdefault(name, ("output", key))
        return row

    def write(self, rows: Sequence[dict[str, Any]], *, replace: bool) -> None:
        """Insert ``rows`` in one transaction (replacing stored rows of the same hash)."""
        if not rows:
            return
        self.con.execute("BEGIN TRANSACTION")
        try:
            self._columns(rows)
            if replace:
                hashes = [r["hash"] for r in rows]
                self.con.execute("DELETE FROM points WHERE hash IN (SELECT unnest(?))", [hashes])
            self._insert(rows)
        except BaseException:  # SIGTERM in a sweep raises here too: nothing half-written
            self.con.execute("ROLLBACK")
            raise
        self.con.execute("COMMIT")  # outside the try: an exception after it must not roll back

    def _insert(self, rows: Sequence[dict[str, Any]]) -> None:
        """One INSERT of all ``rows``: each column's values as one list parameter, unnested.

        A list per column binds in one conversion, where one parameter per value (a
        multi-row VALUES) cost about 12x more per row (the parent's bottleneck of a sweep
        of millisecond points, benchmarks/bench_sweep.py). Parallel ``unnest`` calls in
        one SELECT zip their lists (https://duckdb.org/docs/sql/query_syntax/unnest);
        a key a row lacks (or holds None) is NULL, as when omitted from the column list.
        """
        cols = list(dict.fromkeys(k for r in rows for k, v in r.items() if v is not None))
        values = [[None if (v := r.get(c)) is None else self._cast(c, v) for r in rows]
                  for c in cols]  # fmt: skip
        names = ", ".join(_quote(c) for c in cols)
        lists = ", ".join(f"unnest(?::{self.types[c]}[])" for c in cols)
        self.con.execute(f"INSERT INTO points ({names}) SELECT {lists}", values)

    def _cast(self, column: str, value: Any) -> Any:
        kind = self.types[column]
        if kind == "VARCHAR" and not isinstance(value, str):
            return json.dumps(value)
        if kind == "DOUBLE" and isinstance(value, int):
            return float(value)
        return value

    def _columns(self, rows: Iterable[dict[str, Any]]) -> None:
        """Add new columns and widen existing ones so every value of ``rows`` fits."""
        needed: dict[str, str] = {}
        for r in rows:
            for k, v in r.items():
                if v is None or k in FIXED:
                    continue
                t = _type(v)
                prev = needed.get(k, self.types.get(k, t))
                needed[k] = _ORDER[max(_ORDER.index(prev), _ORDER.index(t))]
        for name, t in needed.items():
            old = self.types.get(name)
            if old is None:
                self.con.execute(f"ALTER TABLE points ADD COLUMN {_quote(name)} {t}")
                kind, key = self._kinds.get(name, ("output", name))
                self.con.execute("INSERT INTO point_columns VALUES (?, ?, ?)", [name, key, kind])
            elif old != t:
                self.con.execute(f"ALTER TABLE points ALTER COLUMN {_quote(name)} TYPE {t}")
            self.types[name] = t
