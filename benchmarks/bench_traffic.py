"""Benchmark: `aifabric traffic train` and `traffic infer` wall time, process start included.

Target (issue 2): each answers in under 0.5 s for a 16,384-GPU plan. Runs each command
several times as a fresh process and reports min / median / max; exits 1 if the median
misses the target. Usage: python benchmarks/bench_traffic.py [--runs N]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

TARGET_S = 0.5
CLI = shutil.which("aifabric", path=str(Path(sys.executable).parent)) or "aifabric"
COMMANDS = {
    # Llama-3.1-405B on 16,384 GPUs as Meta trained it: TP8 x PP16 x DP128 (arXiv:2407.21783).
    "train 405B, 16,384 GPUs": [
        CLI, "traffic", "train", "--model", "llama3-405b", "--tp", "8", "--pp", "16",
        "--dp", "128", "--gpus", "16384", "--seq-len", "8192", "--global-batch", "2048",
        "--dataset-tokens", "15.6T", "--zero", "1", "--sp", "--json",
    ],
    "train DeepSeek-V3 MoE, 16,384 GPUs": [
        CLI, "traffic", "train", "--model", "deepseek-v3", "--pp", "16", "--dp", "1024",
        "--ep", "64", "--gpus", "16384", "--seq-len", "4096", "--global-batch", "16384",
        "--dataset-tokens", "14.8T", "--zero", "1", "--json",
    ],
    "infer 405B TP8, 16,384 users": [
        CLI, "traffic", "infer", "--model", "llama3-405b", "--tp", "8", "--users", "16384",
        "--prompt-tokens", "4096", "--output-tokens", "1024", "--json",
    ],
}  # fmt: skip


def time_command(argv: list[str], runs: int) -> list[float]:
    """Wall seconds of each run of argv as a new process (output discarded)."""
    times = []
    env = dict(os.environ, PYTHONDONTWRITEBYTECODE="0")
    subprocess.run(argv, check=True, capture_output=True, env=env)  # warm the page cache
    for _ in range(runs):
        start = time.perf_counter()
        subprocess.run(argv, check=True, capture_output=True, env=env)
        times.append(time.perf_counter() - start)
    return times


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=7)
    args = parser.parse_args()
    ok = True
    print(f"{'command':38s} {'min':>8s} {'median':>8s} {'max':>8s}  target {TARGET_S} s")
    for name, argv in COMMANDS.items():
        times = time_command(argv, args.runs)
        median = statistics.median(times)
        ok &= median < TARGET_S
        flag = "ok" if median < TARGET_S else "SLOW"
        print(f"{name:38s} {min(times):8.3f} {median:8.3f} {max(times):8.3f}  {flag}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
