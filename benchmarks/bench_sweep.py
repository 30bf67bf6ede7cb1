"""Benchmark: ``aifabric sweep`` throughput, local processes and Ray (issue "Design
exploration at scale").

10,000 distinct ``traffic train`` points (analytic, about a millisecond each: Llama-3-8B over
5 TP x 5 PP x 10 DP x 5 sequence lengths x 4 ZeRO stages x 2 micro-batches) are swept into
a fresh DuckDB file, first on the local backend with 2 worker processes (target: at least
200 points/s on 2 cores, worker start-up, point expansion and storing included), then on a
local Ray with 2 CPUs (started once beforehand and timed apart, as a cluster would be
running already). The Ray overhead per point is (Ray wall - local wall) / points. Prints a
table; ``--json FILE`` also writes the numbers. Exits 1 if the local target is missed.
Usage: python benchmarks/bench_sweep.py [--points N] [--workers N] [--no-ray] [--json FILE]
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

TARGET_PPS = 200.0
GRID = {
    "command": "traffic train",
    "name": "bench-sweep",
    "base": {"model": "llama3-8b", "global_batch": 1024},
    "axes": {
        "tp": [1, 2, 4, 8, 16],
        "pp": [1, 2, 4, 8, 16],
        "dp": [1, 2, 4, 8, 16, 32, 64, 128, 256, 512],
        "seq_len": [1024, 2048, 4096, 8192, 16384],
        "zero": [0, 1, 2, 3],
        "micro_batch": [1, 2],
    },
}  # 10,000 points


def sweep_once(points: int, workers: int, backend: str, db: Path) -> dict[str, Any]:
    """Run the benchmark sweep once into ``db``; its summary as a mapping."""
    from aifabric.explore.executor import run_sweep
    from aifabric.explore.store import ResultStore
    from aifabric.explore.sweep import parse_sweep

    spec: dict[str, Any] = dict(GRID)
    if points < 10_000:
        spec["sample"] = {"n": points, "seed": 0}
    sweep = parse_sweep(spec)
    store = ResultStore(str(db))
    try:
        start = time.perf_counter()
        summary = run_sweep(sweep, store, workers=workers, backend=backend)
        wall = time.perf_counter() - start
        stored = sum(store.counts().values())
    finally:
        store.close()
    assert summary.ran == points == stored, (summary.ran, points, stored)
    return {"backend": backend, "points": points, "workers": workers, "wall_s": wall,
            "points_per_s": points / wall, "statuses": summary.statuses}  # fmt: skip


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--points", type=int, default=10_000, help="at most 10,000")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--no-ray", action="store_true", help="skip the Ray backend")
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args()
    points = max(1, min(10_000, args.points))
    runs: list[dict[str, Any]] = []
    extra: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as tmp:
        runs.append(sweep_once(points, args.workers, "local", Path(tmp) / "local.duckdb"))
        ray: Any = None
        if not args.no_ray:
            try:
                import ray
            except ImportError:
                print("ray is not installed (pip install 'aifabric[ray]'): Ray row skipped")
        if ray is not None:
            start = time.perf_counter()
            ray.init(address="local", num_cpus=args.workers, include_dashboard=False,
                     log_to_driver=False, logging_level=logging.ERROR,
                     object_store_memory=128 * 2**20)  # fmt: skip
            extra["ray_start_s"] = time.perf_counter() - start
            try:
                runs.append(sweep_once(points, args.workers, "ray", Path(tmp) / "ray.duckdb"))
            finally:
                ray.shutdown()
    local = runs[0]
    if len(runs) > 1:
        extra["ray_overhead_per_point_s"] = (runs[1]["wall_s"] - local["wall_s"]) / points
    ok = local["points_per_s"] >= TARGET_PPS
    print(f"sweep of {points:,} traffic train points (analytic), {args.workers} workers")
    print(f"{'backend':8s} {'wall s':>8s} {'points/s':>9s}  note")
    for r in runs:
        note = (f"target >= {TARGET_PPS:g} points/s {'ok' if ok else 'MISSED'}"
                if r["backend"] == "local" else
                f"+{extra['ray_overhead_per_point_s'] * 1e3:.2f} ms/point vs local; Ray start "
                f"{extra['ray_start_s']:.1f} s (not in wall)")  # fmt: skip
        print(f"{r['backend']:8s} {r['wall_s']:8.2f} {r['points_per_s']:9,.0f}  {note}")
    if args.json is not None:
        args.json.write_text(json.dumps({"runs": runs, **extra}, indent=2) + "\n")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
