"""The expert-parallel timing (serving.moe) against a second, controlled measurement:
SGLang's DeepSeek-V3 deployment on 12 H100 nodes (LMSYS blog, "Deploying DeepSeek with PD
Disaggregation and Large-scale Expert Parallelism on 96 H100 GPUs", 2025-05-05,
lmsys.org/blog/2025-05-05-large-scale-ep; source text github.com/lm-sys/lm-sys.github.io
blog/2025-05-05-large-scale-ep.md; reproduction commands github.com/sgl-project/sglang
issue #6017).

Published setting (blog, "Evaluation" and "Profile Results"): DeepSeek-V3 on 8x H100 nodes
over InfiniBand, PD-disaggregated, DP attention + DeepEP + DeepGEMM + two-batch overlap;
each phase measured alone with the other given unlimited resources. Prefill: 4 nodes,
EP32; decode: 9 nodes, EP72. EPLB with 32 redundant experts (blog: "288 experts ...
parallelism sizes of 12 or 72"; issue #6017's decode command: --ep-num-redundant-experts
32, --max-running-requests 18432 = 72 x 256, --cuda-graph-bs 256). Measured, per node:

- prefill at 16,384 tokens per device, input 4,096 (profile table): 50,302 input tokens/s
  with the default (in-distribution EPLB) expert placement, 59,337 with "simulated perfect
  EPLB (random expert selection following group-limited routing semantics)"; end to end
  (same EP32 unit): 57,674 / 54,543 / 50,302 at 1K / 2K / 4K prompts (the 4K figure equals
  the table's default column, the same run at 16,384 tokens per device);
- decode at 256 sequences per device, KV length 2,000, no MTP (table "SGLang (Default)"):
  22,282 output tokens/s (the TBO ablation: 22,310 at 256 tokens per device);
- headline: "52.3k input tokens per second and 22.3k output tokens per second per node for
  2000-token input sequences" (the blog does not state the 52.3k run's batch; its own
  evaluation gives 54,543 at 2K).

The blog defines balancedness as mean / max (of per-GPU tokens, and per-expert tokens in
its case study) and plots it, but states no number in its text, so no sourced value of
``expert_load_imbalance`` comes from it.

Model inputs: the DeepSeek-V3 example (examples/serve/deepseek-v3-ep.yaml: FP8 weights and
matmuls, BF16 KV, 8 ms per iteration outside the layers, 32 redundant experts, the EP overhead defaults, one 400 Gb/s NIC per GPU
as on DGX H100 (catalog h100-sxm default_nic_speed)) with the stated changes only: GPU
h100-sxm, prefill_ep 32, decode_ep 72, MTP off (SGLang's runs have none: "SGLang supports
MTP but lacks full integration with DP attention"), no prefix cache hits (random 2K
inputs, --disable-radix-cache), and the balanced-expert case (expert_load_imbalance 1) as
the one the simulated-perfect-EPLB run measures. Nothing is fitted here.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from aifabric.serving.config import load_serve_scenario
from aifabric.serving.moe import EpTiming

if TYPE_CHECKING:
    from aifabric.serving.cluster import ServingSimulation

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "serve" / "deepseek-v3-ep.yaml"
SGLANG = [
    "workload.num_requests=10",
    "gpu=h100-sxm",
    "cluster.prefill_ep=32",
    "cluster.decode_ep=72",
    "compute.speculative.enabled=false",
    "workload.system_prompt_tokens=0",
    "kv_store.enabled=false",
]
PREFILL_NODES, DECODE_NODES = 4, 9
TOKENS_PER_DEVICE = 16384  # prefill batch per GPU (profile table)
PREFILL_PERFECT_EPLB_4K = 59_337.0
PREFILL_DEFAULT = {1000: 57_674.0, 2000: 54_543.0, 4096: 50_302.0}
DECODE_BATCH, DECODE_KV = 256, 2000  # sequences per GPU, KV tokens per sequence
DECODE_DEFAULT = 22_282.0
HEADLINE_PREFILL_2K = 52_300.0


def _sim() -> ServingSimulation:
    from aifabric.serving.cluster import ServingSimulation

    return ServingSimulation(load_serve_scenario(EXAMPLE, SGLANG))


def prefill_per_node(prompt: int, tokens_per_device: int = TOKENS_PER_DEVICE) -> float:
    """Input tokens/s per node of the EP32 prefill unit: one iteration over 32 x
    ``tokens_per_device`` new tokens in prompts of ``prompt`` tokens (no cache hits)."""
    pre = _sim().entry[0].timing
    assert isinstance(pre, EpTiming)
    requests = pre.ep * tokens_per_device / prompt
    t = pre.iteration_time(
        prefill_flops=requests * pre.prefill_flops(prompt, 0.0),
        prefill_tokens=requests * prompt,
    )
    return float(requests * prompt / t / PREFILL_NODES)


def decode_per_node(batch_per_gpu: int = DECODE_BATCH, kv: float = DECODE_KV) -> float:
    """Output tokens/s per node of the EP72 decode unit: 72 x ``batch_per_gpu`` sequences,
    each holding ``kv`` KV tokens, one token per sequence per step (no MTP)."""
    dec = _sim().decoders[0].timing
    assert isinstance(dec, EpTiming)
    batch = dec.ep * batch_per_gpu
    step = float(dec.decode_step_times(batch, batch * kv, 1)[0])
    return batch / step / DECODE_NODES


def test_sglang_layout_is_the_published_one() -> None:
    """EP32 over 4 nodes with 288 / 32 = 9 routed experts per GPU, EP72 over 9 nodes with
    288 / 72 = 4; no MTP; the 256 x 2,000-token decode batch fits the decode unit's KV
    memory (the blog ran it, so the model must hold it)."""
    sim = _sim()
    pre, dec = sim.entry[0].timing, sim.decoders[0].timing
    assert isinstance(pre, EpTiming) and isinstance(dec, EpTiming)
    assert (pre.ep, dec.ep) == (32, 72)
    assert pre.gpu.name == dec.gpu.name == "h100-sxm"
    assert pre.layout.slots_per_gpu == 9 and dec.layout.slots_per_gpu == 4
    assert pre.expert_load_imbalance == dec.expert_load_imbalance == 1.0
    assert pre.ep // 8 == PREFILL_NODES and dec.ep // 8 == DECODE_NODES
    assert sim.decoders[0].kv_capacity >= dec.ep * DECODE_BATCH * DECODE_KV


def test_prefill_balanced_within_30_percent_of_simulated_perfect_eplb() -> None:
    """The like-for-like prefill check: SGLang's "simulated perfect EPLB" run (balanced
    experts, as the model's expert_load_imbalance = 1) at 16,384 tokens per device and
    4,096-token prompts, 59,337 input tokens/s per node. (Measured today: 62.0k, 1.04x.)"""
    assert prefill_per_node(4096) == pytest.approx(PREFILL_PERFECT_EPLB_4K, rel=0.3)


@pytest.mark.parametrize("prompt", sorted(PREFILL_DEFAULT))
def test_prefill_balanced_bounds_default_eplb_runs(prompt: int) -> None:
    """SGLang's default-EPLB prefill runs (some expert imbalance left) at 1K / 2K / 4K:
    the balanced model is an upper bound of each and within 30 % of it (measured today:
    74.2k / 69.7k / 62.0k vs 57.7k / 54.5k / 50.3k, 1.29x / 1.28x / 1.23x). The batch is
    16,384 tokens per device for all three (stated for 4K; assumed for 1K and 2K, the
    blog gives no other)."""
    got, published = prefill_per_node(prompt), PREFILL_DEFAULT[prompt]
    assert published < got
    assert got == pytest.approx(published, rel=0.3)


def test_prefill_per_node_falls_with_prompt_length_as_measured() -> None:
    """Attention grows with the prompt: per-node throughput falls from 1K to 4K prompts in
    both the measurement (57.7k > 54.5k > 50.3k) and the model, and the model's relative
    drop 1K -> 4K is within a factor 2 of the measured 12.8 % (measured today: 16.4 %)."""
    got = [prefill_per_node(p) for p in sorted(PREFILL_DEFAULT)]
    assert got[0] > got[1] > got[2]
    measured_drop = 1 - PREFILL_DEFAULT[4096] / PREFILL_DEFAULT[1000]
    drop = 1 - got[2] / got[0]
    assert measured_drop / 2 < drop < 2 * measured_drop


def test_decode_within_30_percent_of_published() -> None:
    """Decode on 9 nodes (EP72), 256 sequences per GPU with 2,000 KV tokens each, no MTP:
    22,282 output tokens/s per node (profile table "SGLang (Default)"). Its EPLB placement
    matches the input data but is not perfect, so the balanced model may only exceed it.
    (Measured today: 24.0k, 1.08x.)"""
    got = decode_per_node()
    assert got > DECODE_DEFAULT
    assert got == pytest.approx(DECODE_DEFAULT, rel=0.3)


@pytest.mark.xfail(strict=True, reason="simulated 1.33x the headline 52.3k (no batch stated)")
def test_prefill_within_30_percent_of_the_headline() -> None:
    """The blog's headline 52.3k input tokens/s per node at 2,000-token inputs, taken at the
    16,384 tokens per device of its stated prefill runs: the model gives 69.7k (1.33x). The
    headline's own batch and expert placement are not stated, and the blog's evaluation
    reports 54,543 at 2K (which the model meets within 30 %, test above); strict xfail so
    the gap is recorded and starts failing loudly if it closes."""
    assert prefill_per_node(2000) == pytest.approx(HEADLINE_PREFILL_2K, rel=0.3)


def test_prefill_on_h800_within_30_percent_of_deepseek_profile_reading() -> None:
    """The blog's reading of DeepSeek's own prefill profile (profile table, "DeepSeek
    Profile" column, from github.com/deepseek-ai/profile-data): 62,713 input tokens/s per
    node at 16,384 tokens per device and 4,096-token inputs, EP32 on 4 H800 nodes, routing
    "absolutely balanced" (profile-data README). The example's own prefill unit (h800,
    EP32) at that point, no cache hits. (Measured today: 62.0k, 0.99x; the same figure as
    on H100: the catalog's h800 differs from h100-sxm only in NVLink bandwidth, which this
    compute-bound iteration does not feel.)
    """
    from aifabric.serving.cluster import ServingSimulation

    overrides = ["workload.num_requests=10", "workload.system_prompt_tokens=0"]
    sim = ServingSimulation(load_serve_scenario(EXAMPLE, [*overrides, "kv_store.enabled=false"]))
    pre = sim.entry[0].timing
    assert isinstance(pre, EpTiming) and pre.gpu.name == "h800" and pre.ep == 32
    requests = 32 * TOKENS_PER_DEVICE / 4096
    t = pre.iteration_time(
        prefill_flops=requests * pre.prefill_flops(4096, 0.0), prefill_tokens=requests * 4096
    )
    assert requests * 4096 / t / PREFILL_NODES == pytest.approx(62_713, rel=0.3)
