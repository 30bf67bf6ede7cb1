"""Benchmark: ``simulate cluster`` on its example, one hour of a shared 1,024-GPU fabric.

examples/cluster/converged.yaml: a rail-optimised 1,024-GPU H100 fabric carrying
Llama-3-70B pre-training on 768 GPUs (TP8 x PP4 x DP24, interleaved), the Mooncake
conversation trace served by Llama-3-70B PD pools with a pooled KV store, and 4 storage
servers, for one simulated hour, strict-priority traffic classes. The wall time covers the
whole command's work: the reference step, each workload alone and all together (four
simulations). Target (issue 13): under 60 s wall on this 2-core machine. Also reports the
peak resident set. The line says ok or MISS; exits 1 on a miss.
Usage: python benchmarks/bench_cluster.py [--duration 1h]
"""

from __future__ import annotations

import argparse
import resource
import sys
import time
from pathlib import Path

from aifabric.cluster.config import parse_cluster
from aifabric.cluster.run import simulate_cluster
from aifabric.serving.config import apply_sets
from aifabric.spec.scenario import load_scenario

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples/cluster/converged.yaml"
TARGET_S = 60.0  # issue 13, for one simulated hour


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", default="1h")
    args = parser.parse_args()
    data = apply_sets(load_scenario(EXAMPLE), [f"duration={args.duration}"])
    cfg = parse_cluster(data, EXAMPLE.parent)
    start = time.perf_counter()
    result, _ = simulate_cluster(cfg)
    wall = time.perf_counter() - start
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # MiB (Linux: KiB)
    train, serve = result["workloads"]
    ok = wall < TARGET_S or args.duration != "1h"
    print(f"simulate cluster, {EXAMPLE.name}: {cfg.duration:,.0f} simulated s, "
          f"{train['shared']['steps']:,} training steps, {serve['shared']['completed']:,} "
          f"requests: {wall:.1f} s wall (target {TARGET_S:g} s for 1 h: "
          f"{'ok' if ok else 'MISS'}), peak RSS {rss:,.0f} MiB")  # fmt: skip
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
