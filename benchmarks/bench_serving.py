"""Benchmark: the serving simulator on the whole Mooncake conversation trace, and its speed
on 1,000,000 synthetic requests.

Targets: examples/serve/mooncake-conversation-pd.yaml (12,031 requests, about
1 h of traffic, Llama-3-70B TP8 PD pools, pooled KV store with SSD tier, cache-aware
routing, three SLO tiers) simulated in under 5 s wall on this 2-core machine, trace reading
included (issue 4, hard), and in under 1.5 s (issue 12, hard). Then the same trace with 1 Gbit/s per GPU NICs (``network.nic_bandwidth=1G``), where
hundreds of KV flows queue on the prefill NICs; target (issue 10): within 2x of the normal run
(a start or finish re-solves only the flows it shares links with, in the shared flow engine).
Then reports simulated seconds per wall second and peak memory (resident set, and the
Python heap's peak by tracemalloc on a separate, slower pass only with ``--tracemalloc``)
for 1,000,000 synthetic Poisson requests on colocated continuous-batching instances
(``--requests N`` to change the count; ``--quick`` skips it); target (issue 12, hard) for
1,000,000 requests: under 45 s wall. Each line says ok or MISS; exits 1 on a miss of a
hard target.

The first line names the build that ran: pure Python (the editable install) or compiled by
mypyc (``make compiled``, then ``PYTHONPATH=build/compiled``; setup.py). Issue 12's two
speed targets are the compiled build's: on the pure build they are reported, not enforced.
``make bench`` runs this file on both. The second line times a fixed pure-Python loop, a
yardstick of the machine's single-core speed for comparing figures across machines.
Usage: python benchmarks/bench_serving.py [--quick] [--requests N] [--tracemalloc]
"""

from __future__ import annotations

import argparse
import resource
import sys
import time
import tracemalloc
from pathlib import Path

from aifabric.serving.cluster import ServingSimulation
from aifabric.serving.config import load_serve_scenario

ROOT = Path(__file__).resolve().parents[1]
TARGET_S = 5.0  # issue 4
FAST_TARGET_S = 1.5  # issue 12
SYNTHETIC_TARGET_S = 45.0  # issue 12, for 1,000,000 requests
SYNTHETIC_TARGET_N = 1_000_000
SLOW_NIC = "network.nic_bandwidth=1G"
SLOW_RATIO = 2.0  # slow-NIC wall within this factor of the normal run's


def mooncake(runs: int = 5, sets: tuple[str, ...] = (), target: str = "") -> float:
    best = float("inf")
    for _ in range(runs):
        start = time.perf_counter()
        scenario = load_serve_scenario(
            ROOT / "examples/serve/mooncake-conversation-pd.yaml", list(sets)
        )
        result = ServingSimulation(scenario).run()
        best = min(best, time.perf_counter() - start)
    print(
        f"Mooncake conversation trace{' with ' + ', '.join(sets) if sets else ''}, "
        f"{result['requests']:,} requests, "
        f"{result['simulated_s']:,.0f} simulated s, {result['events']:,} events: "
        f"{best:.2f} s wall ({target or f'targets {FAST_TARGET_S:g} s, {TARGET_S:g} s'}); "
        f"TTFT p99 {result['ttft_s']['p99']:.2f} s, "
        f"SLO met {result['slo_attainment']:.1%}, KV hit {result['kv_cache']['hit_ratio']:.1%}"
    )
    return best


def reference_loop_s(runs: int = 3) -> float:
    """Best-of-``runs`` wall time of a fixed pure-Python loop (the sum of 10**7 squares):
    a yardstick of this machine's single-core speed, printed so that figures measured on
    different machines (they vary here by 2x and more) can be compared."""
    best = float("inf")
    for _ in range(runs):
        start = time.perf_counter()
        sum(i * i for i in range(10**7))
        best = min(best, time.perf_counter() - start)
    return best


def _mark(ok: bool) -> str:
    return "ok" if ok else "MISS"


def compiled() -> bool:
    """The serving simulator's modules are mypyc's C extensions (not .py sources)."""
    from aifabric.serving import instance

    return not instance.__file__.endswith(".py")


def _peak_rss_bytes() -> int:
    """The process's peak resident set so far (ru_maxrss: KiB on Linux, bytes on macOS)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return int(peak if sys.platform == "darwin" else peak * 1024)


def synthetic(requests: int, trace_memory: bool = False) -> bool:
    """Run the synthetic workload; True unless it misses the 1,000,000-request target."""
    sets = [
        f"workload.num_requests={requests}",
        "workload.rate_rps=160",
        "cluster.instances=32",
    ]
    scenario = load_serve_scenario(ROOT / "examples/serve/poisson-colocated.yaml", sets)
    start = time.perf_counter()
    result = ServingSimulation(scenario).run()
    wall = time.perf_counter() - start
    sim = result["simulated_s"]
    hard = requests == SYNTHETIC_TARGET_N and compiled()
    ok = wall < SYNTHETIC_TARGET_S
    target = (
        f"target {SYNTHETIC_TARGET_S:g} s: {_mark(ok)}"
        if hard
        else f"target {SYNTHETIC_TARGET_S:g} s: the compiled build's, not enforced here"
        if requests == SYNTHETIC_TARGET_N
        else f"the {SYNTHETIC_TARGET_S:g} s target is for {SYNTHETIC_TARGET_N:,} requests"
    )
    print(
        f"{requests:,} synthetic Poisson requests (Llama-3-8B, 32 colocated H100 instances, "
        f"160 req/s): {sim:,.0f} simulated s in {wall:.1f} s wall ({target}) = "
        f"{sim / wall:,.0f} simulated s per wall s ({requests / wall:,.0f} requests/s, "
        f"{result['events']:,} events); peak RSS {_peak_rss_bytes() / 2**20:,.0f} MiB"
    )
    if trace_memory:
        tracemalloc.start()
        ServingSimulation(load_serve_scenario(ROOT / "examples/serve/poisson-colocated.yaml",
                                              sets)).run()  # fmt: skip
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        print(f"  Python heap peak (tracemalloc, second run): {peak / 2**20:,.0f} MiB")
    return ok or not hard


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="skip the 1M-request run")
    parser.add_argument("--requests", type=int, default=SYNTHETIC_TARGET_N)
    parser.add_argument("--tracemalloc", action="store_true",
                        help="also measure the synthetic run's Python heap peak (a second run)")  # fmt: skip
    args = parser.parse_args()
    built = compiled()
    print("build: " + ("compiled by mypyc (setup.py, make compiled)" if built else
                       "pure Python (issue 12's targets are the compiled build's)"))  # fmt: skip
    print(f"machine yardstick: a pure-Python loop (sum of 10**7 squares) takes "
          f"{reference_loop_s():.2f} s")  # fmt: skip
    best = mooncake()
    fast = best < FAST_TARGET_S
    print(f"  issue 4 target {TARGET_S:g} s: {_mark(best < TARGET_S)}; "
          f"issue 12 target {FAST_TARGET_S:g} s: {_mark(fast)}"
          f"{'' if built else ' (compiled build: not enforced here)'}")  # fmt: skip
    slow = mooncake(3, (SLOW_NIC,), f"target under {SLOW_RATIO:g}x the normal run")
    print(f"  1G NICs / normal: {slow / best:.2f}x wall (target under {SLOW_RATIO:g}x): "
          f"{_mark(slow < SLOW_RATIO * best)}")  # fmt: skip
    ok = best < TARGET_S and (fast or not built) and slow < SLOW_RATIO * best
    if not args.quick:
        ok = synthetic(args.requests, args.tracemalloc) and ok
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
