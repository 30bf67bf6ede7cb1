"""Derive ``splitwise_sim.yaml`` from SplitwiseSim's ``data/perf_model.csv``.

Source: https://github.com/Mutinifni/splitwise-sim (commit 8f99e7d), ``data/perf_model.csv``,
MIT licence, Copyright (c) 2024 Pratyush Patel. The CSV holds measured runs (Patel et al.,
"Splitwise: Efficient Generative LLM Inference Using Phase Splitting", ISCA 2024) of
Llama-2-70B and BLOOM-176B on DGX-A100 / DGX-H100 at tensor parallelism 2, 4 and 8: five
repeats per point of ``prompt_time`` (ms, the whole prompt phase of ``batch_size`` prompts
of ``prompt_size`` tokens) and ``token_time`` (ms, the mean decode iteration while those
sequences generate ``token_size`` tokens). The grid is three one-dimensional sweeps through
(prompt 512, batch 1, tokens 128): prompt 128..8192 at batch 1, batch 1..64 at prompt 512,
and tokens 128..8192 at batch 1 and prompt 512.

Derivation (run ``python derive_splitwise_sim.py perf_model.csv > splitwise_sim.yaml``):

1. Keep llama2-70b on ``a100-80gb`` (catalog ``a100-80g``) and ``h100-80gb`` (catalog
   ``h100-sxm``: the CSV's DGX-H100 SKU is SXM). Dropped: ``h100-80gb-pcap`` (a power-capped
   H100 with no catalog GPU) and bloom-176b (not in the model catalog).
2. Drop the batch-64 point at TP2 on both GPUs: its prompt time (794 ms A100, 361 ms H100
   for 32,768 tokens) is below the batch-32 point's (6,633 / 2,398 ms for 16,384 tokens) and
   its token time below batch 32's, which a compute-bound prefill of twice the tokens cannot
   do; at TP2 the 64 x 640-token KV (13.4 GB) meets the ~10 GB per GPU left after 69 GB of
   weights, so the run most likely did not hold 64 sequences.
3. Median of the repeats per point (as SplitwiseSim's DatabasePerformanceModel does).
4. Prefill table: key = batched tokens (prompt_size x batch_size); points with equal keys
   from the two sweeps (e.g. 1 x 4096 and 8 x 512) are pooled and their median taken, as
   SplitwiseSim groups by ``batch_tokens``.
5. Decode table: the batch sweep at prompt 512, tokens 128; the sequences' mean context over
   the 128 steps is 512 + 127/2 = 575.5 tokens each. The token sweep (batch 1, context
   512 + (T-1)/2) is kept separately as ``decode_context`` (used for validation only).
6. Both tables are made non-decreasing (more tokens / a larger batch never faster) by
   pool-adjacent-violators isotonic regression (equal weights): a violating run of points
   is replaced by its mean. This touches points within measurement noise (e.g. H100 TP8
   prefill 128 -> 256 tokens: 58.2 -> 51.7 ms becomes 54.9, 54.9).
"""

from __future__ import annotations

import csv
import statistics
import sys
from collections import defaultdict

HARDWARE = {"a100-80gb": "a100-80g", "h100-80gb": "h100-sxm"}
MODELS = {"llama2-70b": "llama2-70b"}
DROP = {("a100-80gb", 2, 512, 64), ("h100-80gb", 2, 512, 64)}  # (hw, tp, prompt, batch)
REF_PROMPT, REF_TOKENS = 512, 128


def isotonic(values: list[float]) -> list[float]:
    """Pool-adjacent-violators: the least-squares non-decreasing fit of ``values``."""
    blocks: list[list[float]] = []  # [mean, count]
    for v in values:
        blocks.append([v, 1.0])
        while len(blocks) > 1 and blocks[-2][0] > blocks[-1][0]:
            m2, n2 = blocks.pop()
            m1, n1 = blocks.pop()
            blocks.append([(m1 * n1 + m2 * n2) / (n1 + n2), n1 + n2])
    out: list[float] = []
    for mean, count in blocks:
        out.extend([mean] * int(count))
    return out


def sig(x: float) -> float:
    return float(f"{x:.5g}")


def main(path: str) -> None:
    prefill: dict[tuple[str, str, int], dict[int, list[float]]] = defaultdict(
        lambda: defaultdict(list)
    )
    decode: dict[tuple[str, str, int], dict[int, list[float]]] = defaultdict(
        lambda: defaultdict(list)
    )
    context: dict[tuple[str, str, int], dict[float, list[float]]] = defaultdict(
        lambda: defaultdict(list)
    )
    with open(path, newline="") as fh:
        for row in csv.DictReader(fh):
            hw, model = row["hardware"], row["model"]
            if hw not in HARDWARE or model not in MODELS:
                continue
            tp, p = int(row["tensor_parallel"]), int(row["prompt_size"])
            b, t = int(row["batch_size"]), int(row["token_size"])
            if (hw, tp, p, b) in DROP:
                continue
            key = (MODELS[model], HARDWARE[hw], tp)
            prefill[key][p * b].append(float(row["prompt_time"]) / 1e3)
            if p == REF_PROMPT and t == REF_TOKENS:
                decode[key][b].append(float(row["token_time"]) / 1e3)
            if p == REF_PROMPT and b == 1:
                context[key][p + (t - 1) / 2].append(float(row["token_time"]) / 1e3)
    out = sys.stdout
    out.write(
        "# Measured serving iteration times (s), derived from SplitwiseSim data/perf_model.csv\n"
        "# (https://github.com/Mutinifni/splitwise-sim, commit 8f99e7d; MIT licence,\n"
        "# Copyright (c) 2024 Pratyush Patel; licence text in LICENSE-splitwise-sim).\n"
        "# Generated by derive_splitwise_sim.py (its docstring says how); do not edit by hand.\n"
        "# prefill: [batched tokens, s]; decode: [batch, mean context tokens per sequence, s];\n"
        "# decode_context: batch-1 points [context tokens, s], validation only.\n"
    )
    out.write("source: splitwise-sim\n")
    out.write('reference: "Patel et al., Splitwise, ISCA 2024; SplitwiseSim data/perf_model.csv"\n')
    out.write("profiles:\n")
    for key in sorted(prefill):
        model, gpu, tp = key
        out.write(f"  - model: {model}\n    gpu: {gpu}\n    tp: {tp}\n    weight_dtype: fp16\n")
        toks = sorted(prefill[key])
        pre = isotonic([statistics.median(prefill[key][n]) for n in toks])
        out.write("    prefill:\n")
        for n, s in zip(toks, pre, strict=True):
            out.write(f"      - [{n}, {sig(s)}]\n")
        batches = sorted(decode[key])
        dec = isotonic([statistics.median(decode[key][b]) for b in batches])
        out.write("    decode:\n")
        for b, s in zip(batches, dec, strict=True):
            out.write(f"      - [{b}, {REF_PROMPT + (REF_TOKENS - 1) / 2}, {sig(s)}]\n")
        out.write("    decode_context:\n")
        for c in sorted(context[key]):
            out.write(f"      - [{c}, {sig(statistics.median(context[key][c]))}]\n")


if __name__ == "__main__":
    main(sys.argv[1])
