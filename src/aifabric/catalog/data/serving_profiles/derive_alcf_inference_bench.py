"""Derive ``alcf_inference_bench.yaml`` (decode-only tables) from Argonne's LLM-Inference-Bench.

Source: https://github.com/argonne-lcf/LLM-Inference-Bench (commit 4211f5d), files
``Plots/All_results.csv`` and ``Plots/Fig_22/all_results_TTFT_ITL.csv``; BSD-3-Clause licence,
Copyright (c) 2024, UChicago Argonne, LLC (text in LICENSE-alcf-inference-bench). Chitty-Venkata
et al., "LLM-Inference-Bench: Inference Benchmarking of Large Language Models on AI
Accelerators", arXiv:2411.00136 (SC24 workshops). The runs used here: vLLM, Meta-Llama-3-8B,
fp16, on JLSE's H100 80GB HBM3 (SXM, ``nvidia-smi`` in the repo's llama.cpp/H100/README.MD;
catalog ``h100-sxm``) at tensor parallelism 1, 2 and 4, driven by vLLM's
``benchmarks/benchmark_latency.py`` (vLLM/H100/run-throughput-bench.sh): ``batch`` prompts of
``L`` dummy tokens each generate ``L`` tokens (input = output = L, 128..2048), and
``Latency`` is the wall time of the whole batch, end to end (``Throughput`` =
batch x 2L / Latency, checked below).

What is measured and what is not: the end-to-end time of a batch is one prefill phase of
``batch x L`` tokens followed by ``L - 1`` decode iterations of ``batch`` sequences (the
prefill yields the first token). The only prefill measurement is one TTFT point per
deployment (all_results_TTFT_ITL.csv: batch 16, 1,024-token prompts, TP1: 0.4257 s on
H100, 1.0420 s on A100; that
file's ``end_latency`` equals All_results' 1024/16 latency, so its "Output Length 1" is the
TTFT run's, and the TTFT is the prefill of all 16 prompts). So no prefill table can be
derived; the shipped tables are decode only (the profile timing then takes prefill from the
roofline, aifabric.serving.profile).

Derivation (run ``python derive_alcf_inference_bench.py All_results.csv
all_results_TTFT_ITL.csv > alcf_inference_bench.yaml`` with aifabric installed; it uses the
catalog's model arithmetic for FLOPs):

1. Keep vLLM, meta-llama/Meta-Llama-3-8B, one GPU: "Nvidia H100 GPU" (catalog h100-sxm)
   and "Nvidia A100 GPU" (ALCF Polaris' A100 HGX, 40 GiB HBM2 at ~1.6 TB/s each per the
   ALCF Polaris hardware overview: catalog a100-40g). Dropped: A100 batch 64 at 2,048
   tokens (its 64 x 4,096-token KV, 34 GB, does not fit beside 16 GB of weights in 40 GiB:
   the run takes 1.9x batch 32's time, vLLM preempting). Not shipped: TP2/TP4 (their
   decode times grow with context 1.6x / 2.7x faster than the KV read at the roofline's
   HBM rate, 2 KV heads a GPU at TP4, so one-context tables plus that term miss the other
   contexts by up to 20 %); TensorRT-LLM (another engine; its H100 TP1 decode times
   derived the same way are 0-25 % below vLLM's, a cross-check); 70B at TP4 (Llama-2/3-70B
   have SplitwiseSim's measured prefill, which a decode-only table would shadow).
2. Prefill estimate P(batch, L): the TTFT point scaled by prefill FLOPs,
   P = TTFT x F(batch, L) / F(16, 1024), F = batch x prefill_flops(L) (causal attention
   included), i.e. the same achieved FLOP rate as the measured point (62 % of H100's, 81 %
   of A100's dense bf16 peak). P is 0.3-12 % of the end-to-end time over the grid, so a
   50 % error in it moves a decode time by at most 6 % (batch 64 at 128 tokens), typically
   < 2 %.
3. Mean decode iteration: (Latency - P) / (L - 1), at the sequences' mean context
   L + (L - 1) / 2 tokens (the KV a step reads grows by one token per sequence a step and a
   step's time is affine in it, so the mean step is the step at the mean context).
4. Decode table: the batch sweep (1, 16, 32, 64) at L = 1,024 (context 1,535.5, the middle
   of the grid's 191.5..3,071.5), made non-decreasing by pool-adjacent-violators (a no-op
   on these rows). The whole grid (5 contexts x 4 batches) is kept as ``decode_grid``
   (validation: the table plus the roofline's KV-read term must reproduce the other
   contexts, tests/test_serving_timing.py).
"""

from __future__ import annotations

import csv
import sys

from aifabric.catalog import get_model

HARDWARE = {"Nvidia H100 GPU": "h100-sxm", "Nvidia A100 GPU": "a100-40g"}
#: (gpu, batch, L) runs left out: A100 40 GB, batch 64 x 2,048 + 2,048 tokens needs 34 GB of
#: KV beside 16 GB of weights (vLLM preempts; the run takes 1.9x batch 32's time).
DROP = {("a100-40g", 64, 2048)}
MODELS = {"meta-llama/Meta-Llama-3-8B": "llama3-8b"}
FRAMEWORK = "vLLM"
TPS = (1,)
REF_L = 1024  # decode table context: L + (L - 1) / 2
TTFT_BATCH, TTFT_L = 16, 1024


def isotonic(values: list[float]) -> list[float]:
    """Pool-adjacent-violators: the least-squares non-decreasing fit of ``values``."""
    blocks: list[list[float]] = []
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


def prefill_flops(model: str, batch: int, length: int) -> float:
    """FLOPs of ``batch`` fresh prompts of ``length`` tokens (causal attention included)."""
    spec = get_model(model)
    return (
        batch
        * length
        * (
            spec.forward_flops_per_token(0.0)
            + (spec.forward_flops_per_token(1.0) - spec.forward_flops_per_token(0.0)) * length / 2
        )
    )


def main(results: str, ttft_file: str) -> None:
    ttft: dict[tuple[str, str], float] = {}
    with open(ttft_file, newline="") as fh:
        for row in csv.DictReader(fh):
            hw, model = row.get("Hardware", ""), row.get("Model", "")
            if hw in HARDWARE and model in MODELS and row["Framework"] == FRAMEWORK:
                assert int(row["Input Length"]) == TTFT_L and int(row["Batch Size"]) == TTFT_BATCH
                assert int(row["Num of Hardware"]) == 1
                ttft[(HARDWARE[hw], MODELS[model])] = float(row["TTFT Latency"])
    grid: dict[tuple[str, str, int], dict[tuple[int, int], float]] = {}
    with open(results, newline="") as fh:
        for row in csv.DictReader(fh):
            hw, model, tp = row["Hardware"], row["Model"], int(row["Num of Hardware"])
            if hw not in HARDWARE or model not in MODELS or row["Framework"] != FRAMEWORK:
                continue
            if tp not in TPS:
                continue
            b, n, lat = (
                int(row["Batch Size"]),
                int(row["Input Output Length"]),
                float(row["Latency"]),
            )
            assert abs(float(row["Throughput"]) * lat / (b * 2 * n) - 1) < 1e-6
            if (HARDWARE[hw], b, n) in DROP:
                continue
            grid.setdefault((MODELS[model], HARDWARE[hw], tp), {})[(b, n)] = lat
    out = sys.stdout
    out.write(
        "# Measured decode iteration times (s), derived from Argonne's LLM-Inference-Bench\n"
        "# Plots/All_results.csv and Plots/Fig_22/all_results_TTFT_ITL.csv\n"
        "# (https://github.com/argonne-lcf/LLM-Inference-Bench, commit 4211f5d; BSD-3-Clause,\n"
        "# Copyright (c) 2024, UChicago Argonne, LLC; licence text in\n"
        "# LICENSE-alcf-inference-bench). Generated by derive_alcf_inference_bench.py (its\n"
        "# docstring says how: decode = (end-to-end - FLOP-scaled TTFT) / (L - 1)); do not edit.\n"
        "# No prefill table (one TTFT point per deployment): prefill comes from the roofline.\n"
        "# decode: [batch, mean context tokens per sequence, s]; decode_grid: the same for\n"
        "# every (batch, L) run, validation only.\n"
    )
    out.write("source: alcf-inference-bench\n")
    out.write('reference: "Chitty-Venkata et al., LLM-Inference-Bench, arXiv:2411.00136; '
              'argonne-lcf/LLM-Inference-Bench Plots/All_results.csv (vLLM)"\n')  # fmt: skip
    out.write("profiles:\n")
    for key in sorted(grid):
        model, gpu, tp = key
        anchor = ttft[(gpu, model)] / prefill_flops(model, TTFT_BATCH, TTFT_L)  # TP1 only
        points = {}
        for (b, n), lat in sorted(grid[key].items()):
            pre = anchor * prefill_flops(model, b, n)
            points[(b, n)] = ((lat - pre) / (n - 1), n + (n - 1) / 2)
        out.write(f"  - model: {model}\n    gpu: {gpu}\n    tp: {tp}\n    weight_dtype: fp16\n")
        out.write("    prefill: []\n    decode:\n")
        batches = sorted(b for b, n in points if n == REF_L)
        dec = isotonic([points[(b, REF_L)][0] for b in batches])
        for b, s in zip(batches, dec, strict=True):
            out.write(f"      - [{b}, {points[(b, REF_L)][1]}, {sig(s)}]\n")
        out.write("    decode_grid:\n")
        for (b, _n), (s, ctx) in sorted(points.items()):
            out.write(f"      - [{b}, {ctx}, {sig(s)}]\n")


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
