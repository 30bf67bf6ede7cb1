"""Budgeted search against the full grid: how much of the grid's Pareto front a search
finds with 10, 25 and 50 % of the points (aifabric.explore.search).

For each sweep, the full grid is run once; its front (both metrics minimised) and its
hypervolume against a reference point (the worst feasible value of each metric, pushed out
by 1 % of its range) are the truth. Each search (5 seeds per budget) reports the
hypervolume of the front it found over the grid front's (1 = the same front) and the share
of the grid front's points it found; beside it, the same for a uniform random sample of
the same size (the baseline a search must beat). Run: python benchmarks/bench_search.py
"""

from __future__ import annotations

import dataclasses
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from aifabric.explore.executor import run_sweep
from aifabric.explore.pareto import hypervolume_2d, pareto_mask
from aifabric.explore.search import SearchSpec, front_of, run_search
from aifabric.explore.store import ResultStore, column_name
from aifabric.explore.sweep import Sweep, load_sweep

ROOT = Path(__file__).resolve().parents[1]
CASES = [
    ("llama70b-fabrics.yaml", ("iteration_time_s", "cost_usd.usd_per_token")),
    ("llama70b-plans.yaml", ("iteration_time_s", "memory_per_gpu_bytes.total")),
]


def _values(store: Any, hashes: list[str], metrics: tuple[str, ...]) -> dict[str, Any]:
    cols = ", ".join(f'"{column_name(m)}"' for m in metrics)
    rows = store.con.execute(
        f"SELECT hash, {cols} FROM points WHERE status = 'ok' AND hash IN (SELECT unnest(?))",
        [hashes]).fetchall()  # fmt: skip
    return {str(r[0]): np.array(r[1:], float) for r in rows if None not in r[1:]}


def quality(sweep: Sweep, metrics: tuple[str, ...], budgets: list[float],
            seeds: int = 5) -> list[tuple[float, int, float, float, float, float]]:  # fmt: skip
    """(budget fraction, points run, mean hypervolume ratio, mean share of the front, mean
    hypervolume ratio and share of the front of a random sample of as many points)."""
    with tempfile.TemporaryDirectory() as tmp:
        store = ResultStore(str(Path(tmp) / "grid.duckdb"))
        run_sweep(sweep, store, workers=2)
        grid = _values(store, sorted(store.hashes()), metrics)
        store.close()
    hashes = sorted(grid)
    v = np.array([grid[h] for h in hashes])
    front = {h for h, k in zip(hashes, pareto_mask(v).tolist(), strict=True) if k}
    span = v.max(axis=0) - v.min(axis=0)
    ref = v.max(axis=0) + 0.01 * np.where(span > 0, span, 1.0)
    best = hypervolume_2d(v, ref)
    out = []
    points = sweep.points()
    for frac in budgets:
        ratios, shares, randoms, rshares, n = [], [], [], [], 0
        for seed in range(seeds):
            spec = SearchSpec(max(1, round(frac * len(sweep.points()))), seed, 0.3,
                              metrics, ())  # fmt: skip
            s = dataclasses.replace(sweep, search=spec)
            with tempfile.TemporaryDirectory() as tmp:
                store = ResultStore(str(Path(tmp) / "s.duckdb"))
                found = run_search(s, store, workers=2)
                got = front_of(store, sorted(store.hashes()), spec)
                vals = _values(store, got, metrics)
                store.close()
            n = found.evaluated
            ratios.append(hypervolume_2d(np.array(list(vals.values())), ref) / best)
            shares.append(len(front & set(got)) / len(front))
            rng = np.random.default_rng(seed)
            drawn = rng.choice(len(points), size=n, replace=False)
            sample = [points[i].hash for i in drawn.tolist() if points[i].hash in grid]
            sv = np.array([grid[h] for h in sample]) if sample else np.zeros((0, 2))
            randoms.append(hypervolume_2d(sv, ref) / best)
            rshares.append(len(front & set(sample)) / len(front))
        out.append((frac, n, float(np.mean(ratios)), float(np.mean(shares)),
                    float(np.mean(randoms)), float(np.mean(rshares))))  # fmt: skip
    return out


def main() -> None:
    for name, metrics in CASES:
        sweep = load_sweep(ROOT / "examples" / "sweep" / name)
        total = len(sweep.points())
        print(f"{name}: {total} points after input constraints; metrics {', '.join(metrics)}")
        print(f"  {'budget':>7} {'points':>7} {'hypervolume / grid':>19} {'front found':>12} "
              f"{'random: hypervolume':>20} {'front found':>12}")  # fmt: skip
        for frac, n, ratio, share, rand, rshare in quality(sweep, metrics, [0.1, 0.25, 0.5]):
            print(f"  {frac:7.0%} {n:7d} {ratio:19.3f} {share:12.0%} {rand:20.3f} {rshare:12.0%}")


if __name__ == "__main__":
    main()
