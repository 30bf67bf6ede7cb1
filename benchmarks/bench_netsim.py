"""Benchmark: ``aifabric simulate collective`` at scale (issue 10).

A 1 GiB ring all-reduce over 16,384 GPUs on a 3-tier rail-optimized fabric with per-flow
ECMP (target: under 2 s wall on this 2-core machine; moonshot 0.5 s), and over 100,000 GPUs
(target: under 10 s); plus ECMP permutations on a 2-tier and a 3-tier fabric. Prints flows,
events and wall time per phase (library call, process start excluded; best of 3).
Exits 1 if a target is missed. Usage: python benchmarks/bench_netsim.py
"""

from __future__ import annotations

import sys
import time

from aifabric.netsim.run import simulate_collective

CASES = [
    ("ring all_reduce 1 GiB, 16,384 GPUs, 3 tiers, ecmp", {"gpus": 16384, "tiers": 3},
     {"op": "all_reduce", "sizes": [2**30]}, 2.0),
    ("ring all_reduce 1 GiB, 100,000 GPUs, 3 tiers, ecmp",
     {"gpus": 100000, "tiers": 3, "switch": "tomahawk-5", "switch_radix": 128},
     {"op": "all_reduce", "sizes": [2**30]}, 10.0),
    ("permutation 64 MiB, 1,024 GPUs, 2 tiers, ecmp", {"gpus": 1024},
     {"op": "permutation", "sizes": [2**26]}, None),
    ("permutation 64 MiB, 16,384 GPUs, 3 tiers, ecmp", {"gpus": 16384, "tiers": 3},
     {"op": "permutation", "sizes": [2**26]}, None),
]  # fmt: skip


def main() -> int:
    failed = False
    for name, fabric, call, target in CASES:
        best, result = float("inf"), None
        for _ in range(3):
            start = time.perf_counter()
            result = simulate_collective(fabric, routing="ecmp", **call)  # type: ignore[arg-type]
            best = min(best, time.perf_counter() - start)
        assert result is not None
        r = result["results"][0]
        phases = ", ".join(f"{k} {v:.2f} s" for k, v in result["wall_by_phase_s"].items())
        extra = ""
        if "mean_flow_throughput_ratio" in r:
            extra = (f"; flow throughput mean {r['mean_flow_throughput_ratio']:.1%}, min "
                     f"{r['min_flow_throughput_ratio']:.1%} of line rate")  # fmt: skip
        verdict = "" if target is None else (" OK" if best < target else f" MISSED {target} s")
        print(f"{name}: {best:.2f} s ({phases}); {r['flows']:,} flows, {r['events']} events, "
              f"efficiency {r['efficiency_ratio']:.1%}{extra}{verdict}")  # fmt: skip
        failed |= target is not None and best >= target
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
