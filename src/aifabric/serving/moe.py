"""Expert-parallel (EP) serving instances: routed experts over EP ranks, attention in DP.

The layout is DeepSeek's published inference system (deepseek-ai/open-infra-index,
202502OpenSourceWeek/day_6_one_more_thing_deepseekV3R1_inference_system_overview.md,
"Day 6: One More Thing, DeepSeek-V3/R1 Inference System Overview", Feb 2025): prefill
"Routed Expert EP32, MLA/Shared Expert DP32", 4 nodes, "32 redundant routed experts, where
each GPU handles 9 routed experts and 1 shared expert"; decode "Routed Expert EP144,
MLA/Shared Expert DP144", 18 nodes, 32 redundant experts, 2 routed + 1 shared per GPU.
(The DeepSeek-V3 technical report, arXiv:2412.19437 sec. 3.4, describes an earlier layout:
attention TP4 + SP with DP8 and EP32 for prefill, EP320 for decode; not modelled here.)

One instance spans ``ep`` GPUs. Every GPU holds a full copy of the non-routed weights
(attention, dense layers, shared experts, router, embeddings: attention DP with tp = 1)
and ``(num_experts + redundant) / ep`` routed-expert slots. Redundant slots replicate the
first ``redundant`` experts (which experts are hot is workload-dependent; DeepSeek's EPLB
picks them from observed load, github.com/deepseek-ai/EPLB).

Per iteration, with T tokens in the batch (prefill and decode together), on the busiest GPU:

- attention part (its DP rank's T / ep tokens; DeepSeek's DP load balancers equalise
  tokens and KV per GPU, Day 6 "Prefill/Decode Load Balancer"): max(compute, memory) with
  compute = matmul FLOPs of the non-routed weights at ``compute_dtype`` peak plus core
  attention FLOPs at ``attention_dtype`` peak (Day 6: "matrix multiplications and dispatch
  transmissions adopt the FP8 format ..., while core MLA computations and combine
  transmissions use the BF16 format"), and memory = the replicated weights once plus the
  rank's KV (ModelSpec.kv_bytes_per_token, MLA latent + rope key). Decode attention of an
  MLA model runs absorbed on the latent, as FlashMLA does: 2 h (d_k + d_v) FLOPs per head
  and context token with d_k = kv_lora_rank + qk_rope_head_dim (576) and d_v =
  kv_lora_rank (512) (github.com/deepseek-ai/FlashMLA docs/20250422-new-kernel-deep-dive.md,
  "2 h_q s_q s_k (d_k + d_v)"); prefill attention uses the decompressed heads
  (ModelSpec.attention_flops_per_token).
- MoE part: the busiest GPU receives ``expert_load_imbalance`` x the mean T k / ep
  token-expert pairs (1 = perfectly balanced; Day 6 "Expert-Parallel Load Balancer":
  "minimize the maximum dispatch receive load across all GPUs"); max(its expert FLOPs,
  its slots' weights touched: min(1, T k / slots) of them, RooflineTiming's rule).
- per MoE layer a dispatch (``moe_dispatch_dtype``, FP8 for DeepSeek-V3) and a combine
  (``moe_combine_dtype``, BF16): bytes per GPU from traffic.moe_dispatch.dispatch_fanout,
  the same node-aware fan-out the analytic training traffic rows use
  (traffic.training_moe._node_limited_rows, DeepEP's internode kernels): T / ep tokens x
  hidden x dtype x remote nodes on the NIC, x NVLink copies on the scale-up link.
  Node-limited routing (ModelSpec.max_nodes_per_token, M = 4 for DeepSeek-V3) is applied
  to the instance's nodes as the training rows apply it to the EP group's (an assumption
  for EP144 over 18 nodes, where the model's 8 expert groups no longer map one per node).
  Timed by default (cluster.ep_network = analytic) alpha-beta: latency + max(NIC bytes /
  NIC bandwidth per GPU, NVLink bytes / NVLink bandwidth per direction), the two legs
  pipelined as DeepEP forwards RDMA chunks to NVLink; with ep_network = flow the rate
  comes from the flow-level network engine (netsim, on a fabric of the instance's GPUs;
  see flow_dispatch_seconds_per_byte): routing and contention on that fabric.

Two all-to-all kernels, as DeepEP ships them (github.com/deepseek-ai/DeepEP,
docs/legacy.md "Performance"): an iteration that prefills (any prefill tokens) uses the
*normal* kernels above (node-aware, NVLink forwarding, near line rate: 43-58 GB/s RDMA
"bottleneck bandwidth" at EP16-64 on a ~50 GB/s CX7); a decode-only iteration uses, with
``decode_kernel = "low_latency"`` (default), the *low-latency* kernels "with pure RDMA":
one message per token and selected expert (no node dedup), so k x T / ep tokens x hidden x
dtype per GPU per call on the NIC, at ``low_latency_bandwidth_efficiency`` x the NIC rate
(default 0.78: DeepEP's table gives 39 GB/s for dispatch and combine at EP128, 128 tokens,
top-8, on the ~50 GB/s NIC; 128 x 8 x 7,168 B / 192 us = 38 GB/s reproduces its dispatch
row) plus the per-call latency. With ep_network = flow that time is further scaled by the
flow engine's slowdown of the node-aware pattern over its alpha-beta bound (contention).

Overlap (``overlap``, default on), from DeepSeek's profile-data figures
(github.com/deepseek-ai/profile-data, assets/prefill.jpg and assets/decode.jpg, the two
micro-batch schedules of the EP32 prefill and EP128 decode profiles):

- prefill: every computation block (ATTN, SHARED, MLP of one micro-batch) runs over a
  dispatch or combine of the other, so the iteration takes max(compute, communication);
  the communication kernels hold 24 of H800's 132 SMs meanwhile ("Computation 108 SMs,
  Communication 24 SMs"), so the compute parts run at (1 - ``prefill_comm_sm_share``)
  (default 24 / 132) of the GPU's rate.
- decode: a 5-stage pipeline where the dispatch hides under SHARED + ATTN-0 and the
  combine under ATTN-1 of the other micro-batch, while the routed-expert MLP stage has no
  communication under it; the all-to-all "does not occupy GPU SMs" (profile-data README;
  decode.jpg "Communication 0 SMs", ``decode_comm_sm_share`` = 0). The step takes
  max(attention part, all-to-all) + MoE part (a lower bound of the stage-wise
  max(SHARED + ATTN-0, dispatch) + MLP + max(ATTN-1, combine), which needs the split of
  the attention part between the stages).

Without overlap, every part is serial and computation has all SMs.

Every iteration also pays ``iteration_overhead`` outside the layers (scheduling, launches,
embedding, output head, sampling; the scenario's compute.iteration_overhead_s, 0 by
default since the roofline's overheads became per layer, and 8 ms in
examples/serve/deepseek-v3-ep.yaml). DeepSeek's decode profile shows a cost of that size:
a reading of profile-data's decode.json (zdszero.github.io, Computer/Artificial_Intelligence/
deepseek_profile.html, column "h800 ds prof") gives 96 ms end to end of which 87.32 ms in
the 61 layers. compute.sequence_overhead_s is not applied: at its 0.3 ms per sequence the
profile's 128 sequences per GPU would cost 38 ms, more than the profile leaves outside the
layers.

Multi-token prediction (DeepSeek-V3 sec. 2.2 / 5.4.3: one MTP module, the second token
accepted 85-90 % of the time) is compute.speculative with draft_tokens = 1 (see
serving.speculative); its verification steps carry two query positions per sequence, and
``decode_step_times(..., queries_per_sequence=2)`` counts the absorbed attention FLOPs per
query (FlashMLA's 2 h s_q s_k (d_k + d_v)) while the KV is read once.

Not modelled: micro-batch granularity, the DP-rank granularity of single long prompts (the
batch is split evenly over the ranks), the all-to-all bytes of the low-latency kernels in
``ep_all_to_all_bytes`` (it reports the node-aware bytes), and which experts are hot:
redundant slots replicate the first experts and the imbalance is one given factor (EPLB's
placement from observed load is not simulated).

Expert-load imbalance slows the all-to-all too: DeepSeek's DP load balancers equalise the
tokens each GPU sends (Day 6: "Equalize input token counts per GPU (dispatch send load
balancing)") while the EP balancer can only "minimize the maximum dispatch receive load",
so the busiest GPU receives (dispatch) and sends back (combine) ``expert_load_imbalance``
x the mean bytes; the transfer (bandwidth) terms scale by that factor, the per-call
latency does not.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING

import numpy as np

from aifabric.errors import ConfigError
from aifabric.serving.compute import IterationShortcuts
from aifabric.spec.gpu import GpuSpec
from aifabric.spec.model import ModelSpec, dtype_bytes
from aifabric.traffic.collectives import Link

if TYPE_CHECKING:
    from aifabric.serving.config import ServeScenario


@dataclass(frozen=True, slots=True, kw_only=True)
class EpLayout:
    """Where the routed experts of one EP instance sit: ``ep`` ranks, ``gpus_per_node`` per
    scale-up domain, ``num_experts`` logical experts plus ``redundant`` replica slots, in
    contiguous blocks of ``slots_per_gpu`` (Megatron-Core's local_expert_indices order)."""

    ep: int
    gpus_per_node: int
    num_experts: int
    redundant: int = 0

    def __post_init__(self) -> None:
        if self.ep < 1 or self.num_experts < 1 or self.redundant < 0:
            raise ConfigError(
                f"ep(={self.ep}) and num_experts(={self.num_experts}) must be >= 1 and "
                f"redundant_experts(={self.redundant}) >= 0"
            )
        if (self.num_experts + self.redundant) % self.ep:
            raise ConfigError(
                f"ep(={self.ep}) must divide num_experts + redundant_experts"
                f"(={self.num_experts} + {self.redundant})"
            )
        if self.ep > self.gpus_per_node and self.ep % self.gpus_per_node:
            raise ConfigError(
                f"ep(={self.ep}) must be a multiple of the {self.gpus_per_node} GPUs per node "
                "when it spans nodes"
            )

    @property
    def slots(self) -> int:
        return self.num_experts + self.redundant

    @property
    def slots_per_gpu(self) -> int:
        return self.slots // self.ep

    @property
    def ranks_per_node(self) -> int:
        return min(self.ep, self.gpus_per_node)

    @property
    def nodes(self) -> int:
        return self.ep // self.ranks_per_node

    def slot_rank(self) -> np.ndarray:
        """EP rank of every physical expert slot."""
        return np.arange(self.slots) // self.slots_per_gpu

    def slot_expert(self) -> np.ndarray:
        """Logical expert held in every slot (slots past num_experts are replicas)."""
        return np.arange(self.slots) % self.num_experts


@dataclass(frozen=True, slots=True)
class A2aBytes:
    """Bytes one GPU sends in one MoE layer, per direction and link scope."""

    dispatch_scale_out: float
    dispatch_scale_up: float
    combine_scale_out: float
    combine_scale_up: float


@dataclass(frozen=True, slots=True, kw_only=True)
class EpTiming(IterationShortcuts):
    """Iteration times (s) of one EP instance: ``ep`` GPUs of ``gpu``, attention DP = ep."""

    model: ModelSpec
    gpu: GpuSpec
    ep: int
    redundant_experts: int = 0
    expert_load_imbalance: float = 1.0
    nic_bandwidth: float = 50e9  # bytes/s per GPU per direction
    nic_latency: float = 10e-6  # s per dispatch / combine call over the network
    scaleup_latency: float = 2e-6
    overlap: bool = True
    # Flow-level rate of one dispatch / combine (flow_dispatch_seconds_per_byte); None: the
    # alpha-beta max(NIC bytes / NIC rate, NVLink bytes / NVLink rate).
    dispatch_seconds_per_byte: float | None = None
    weight_dtype: str = "bf16"
    kv_dtype: str = "bf16"
    compute_dtype: str = "bf16"  # matmuls
    attention_dtype: str = "bf16"  # core attention
    prefill_mfu: float = 0.5
    decode_bandwidth_efficiency: float = 0.8
    decode_mfu: float = 0.5
    # Module docstring: SMs the all-to-all kernels hold while overlapping (profile-data
    # figures: 24 of 132 in prefill, 0 in decode) and the decode kernel (DeepEP).
    prefill_comm_sm_share: float = 24 / 132
    decode_comm_sm_share: float = 0.0
    decode_kernel: str = "low_latency"  # or "normal" (the node-aware prefill kernels)
    low_latency_bandwidth_efficiency: float = 0.78  # DeepEP: 39 GB/s of ~50 GB/s at EP128
    iteration_overhead: float = 0.0  # s per iteration outside the layers (module docstring)
    _c: dict[str, float] = field(init=False, repr=False, compare=False, default_factory=dict)
    layout: EpLayout = field(init=False, repr=False, compare=False)

    @property
    def name(self) -> str:
        """Which timing model this is (the serve output's ``timing_model``)."""
        return f"expert-parallel roofline (ep{self.ep}; no measured profile)"

    def __post_init__(self) -> None:
        for name in ("prefill_mfu", "decode_bandwidth_efficiency", "decode_mfu"):
            value = getattr(self, name)
            if not 0 < value <= 1:
                raise ConfigError(f"compute.{name}(={value}) must be in (0, 1]")
        for name in ("prefill_comm_sm_share", "decode_comm_sm_share"):
            value = getattr(self, name)
            if not 0 <= value < 1:
                raise ConfigError(f"cluster.ep_{name}(={value}) must be in [0, 1)")
        if not 0 <= self.iteration_overhead < 10:
            raise ConfigError(
                f"compute.iteration_overhead_s(={self.iteration_overhead}) must be in [0, 10) s"
            )
        if not 0 < self.low_latency_bandwidth_efficiency <= 1:
            raise ConfigError(
                "cluster.ep_low_latency_bandwidth_efficiency"
                f"(={self.low_latency_bandwidth_efficiency}) must be in (0, 1]"
            )
        if self.decode_kernel not in ("low_latency", "normal"):
            raise ConfigError(
                f"cluster.ep_decode_kernel(={self.decode_kernel!r}) must be low_latency or normal"
            )
        if not self.model.is_moe:
            raise ConfigError(f"expert parallelism needs an MoE model; {self.model.name} is dense")
        if not 1 <= self.expert_load_imbalance <= self.ep:
            raise ConfigError(
                f"expert_load_imbalance(={self.expert_load_imbalance}) must be in 1..ep(={self.ep})"
                " (busiest GPU's tokens / the mean)"
            )
        layout = EpLayout(
            ep=self.ep,
            gpus_per_node=self.gpu.scaleup_domain_size,
            num_experts=self.model.num_experts,
            redundant=self.redundant_experts,
        )
        object.__setattr__(self, "layout", layout)  # frozen: set once here
        per_gpu = self.weight_bytes_per_gpu
        if per_gpu > self.gpu.hbm_bytes:
            raise ConfigError(
                f"{self.model.name} needs {per_gpu / 1e9:.0f} GB of weights per GPU at ep="
                f"{self.ep}, more than {self.gpu.name}'s {self.gpu.hbm_bytes / 1e9:.0f} GB; raise ep"
            )
        self._derive()

    def _derive(self) -> None:
        from aifabric.traffic.moe_dispatch import dispatch_fanout

        m, c, lay = self.model, self._c, self.layout
        c["kv"] = m.kv_bytes_per_token(self.kv_dtype)
        c["flops0"] = m.forward_flops_per_token(0.0)
        c["slope"] = m.forward_flops_per_token(1.0) - c["flops0"]
        c["slope_dec"] = c["slope"]
        if m.attention == "mla":  # absorbed decode attention (module docstring)
            d_k, d_v = m.kv_lora_rank + m.qk_rope_head_dim, m.kv_lora_rank
            c["slope_dec"] = 2.0 * m.num_attention_heads * (d_k + d_v) * m.num_layers
        c["expert"] = m.num_moe_layers * m.ffn_params(m.moe_intermediate_size)  # per slot
        c["routed_flops"] = 2.0 * c["expert"]  # per token-expert pair, all MoE layers
        c["dense_flops"] = c["flops0"] - m.experts_per_token * c["routed_flops"]
        c["peak_mm"] = self.gpu.peak_flops(self.compute_dtype)
        c["peak_attn"] = self.gpu.peak_flops(self.attention_dtype)
        c["hbm"] = self.gpu.hbm_bandwidth * self.decode_bandwidth_efficiency
        w = dtype_bytes(self.weight_dtype)
        c["replicated_w"] = (m.num_params - m.expert_params()) * w
        c["slot_w"] = c["expert"] * w
        fan = dispatch_fanout(
            num_experts=lay.slots, experts_per_token=m.experts_per_token,
            num_nodes=lay.nodes, ranks_per_node=lay.ranks_per_node,
            max_nodes=m.max_nodes_per_token,
        )  # fmt: skip
        c["remote_nodes"], c["nvlink_copies"] = fan.remote_nodes, fan.nvlink_copies
        # alpha-beta seconds per payload byte of the node-aware pattern (its flow-engine
        # rate over this is the contention the low-latency kernels also see)
        c["ab_rate"] = max(
            fan.remote_nodes / self.nic_bandwidth,
            fan.nvlink_copies / self.gpu.scaleup_bandwidth_per_direction,
        )

    # ----- sizes --------------------------------------------------------------------------
    @property
    def tp(self) -> int:
        """GPUs of the instance (the protocol's name; here attention tp = 1, dp = ep)."""
        return self.ep

    @property
    def dp(self) -> int:
        return self.ep

    @property
    def weight_bytes_per_gpu(self) -> float:
        """Replicated non-routed weights plus this GPU's routed-expert slots."""
        m = self.model
        w = dtype_bytes(self.weight_dtype)
        expert = m.num_moe_layers * m.ffn_params(m.moe_intermediate_size) * w
        return (m.num_params - m.expert_params()) * w + self.layout.slots_per_gpu * expert

    @property
    def weight_bytes(self) -> float:
        """Weights the instance's GPUs hold together (replicas and redundant slots counted)."""
        return self.ep * self.weight_bytes_per_gpu

    @property
    def kv_bytes_per_token(self) -> float:
        return self._c["kv"]

    def kv_tokens(self, memory_utilization: float) -> float:
        """KV tokens the ep GPUs hold after their weights (may be < 0)."""
        usable = self.ep * self.gpu.hbm_bytes * memory_utilization
        return (usable - self.weight_bytes) / self.kv_bytes_per_token

    def tp_allreduce_bytes(self, tokens: float) -> float:
        """No tensor parallelism: attention runs tp = 1 on every DP rank."""
        return 0.0

    def a2a_bytes_per_layer(self, tokens: float) -> A2aBytes:
        """Bytes one GPU sends in one MoE layer's dispatch and combine, the batch holding
        ``tokens`` tokens over the instance (module docstring)."""
        m, c = self.model, self._c
        per_rank = tokens / self.ep
        out = []
        for dtype in (m.moe_dispatch_dtype, m.moe_combine_dtype):
            size = per_rank * m.hidden_bytes_per_token(dtype or self.compute_dtype)
            out += [size * c["remote_nodes"], size * c["nvlink_copies"]]
        return A2aBytes(*out)

    def ep_all_to_all_bytes(self, tokens: float) -> float:
        """Bytes all the instance's GPUs send in the dispatches and combines (both scopes)
        of ``tokens`` tokens' iterations; linear in tokens, so a run's sum is exact."""
        if self.ep == 1 or tokens <= 0:
            return 0.0
        b = self.a2a_bytes_per_layer(tokens)
        per_layer = b.dispatch_scale_out + b.dispatch_scale_up + b.combine_scale_out
        return self.ep * self.model.num_moe_layers * (per_layer + b.combine_scale_up)

    # ----- times --------------------------------------------------------------------------
    def prefill_flops(self, prompt_tokens: float, cached_tokens: float = 0.0) -> float:
        """FLOPs to compute tokens [cached, prompt) attending causally to all before them."""
        new = max(0.0, prompt_tokens - cached_tokens)
        return new * (self._c["flops0"] + self._c["slope"] * (cached_tokens + new / 2.0))

    def parts(self, *, prefill_flops: float = 0.0, prefill_tokens: float = 0.0,
              decode_batch: int = 0, decode_context: float | np.ndarray = 0.0,
              queries_per_sequence: float = 1.0,
              ) -> dict[str, float | np.ndarray]:  # fmt: skip
        """Seconds of the attention part, MoE part and all-to-all of one iteration.

        ``decode_batch`` counts decode tokens; ``queries_per_sequence`` of them belong to
        one sequence (2 in an MTP verification step), whose absorbed attention FLOPs over
        its context are paid per query (FlashMLA 2 h s_q s_k (d_k + d_v)), its KV read once.
        """
        c, m = self._c, self.model
        n = self.ep
        context = np.asarray(decode_context, dtype=np.float64)
        tokens = prefill_tokens + decode_batch
        decode_only = prefill_tokens <= 0
        # SMs left to computation while the all-to-all kernels overlap (module docstring)
        comm_sms = self.decode_comm_sm_share if decode_only else self.prefill_comm_sm_share
        sm = 1.0 - comm_sms if self.overlap else 1.0
        attn_pre = max(0.0, prefill_flops - prefill_tokens * c["flops0"])
        attn_dec = c["slope_dec"] * context * queries_per_sequence
        compute = (
            c["dense_flops"] * (prefill_tokens / self.prefill_mfu + decode_batch / self.decode_mfu)
            / (n * c["peak_mm"])
            + (attn_pre / self.prefill_mfu + attn_dec / self.decode_mfu) / (n * c["peak_attn"])
        ) / sm  # fmt: skip
        memory = (c["replicated_w"] + context / n * c["kv"]) / c["hbm"]
        attention = np.maximum(compute, memory)
        k, lay = m.experts_per_token, self.layout
        pairs = self.expert_load_imbalance * tokens * k / n  # busiest GPU
        mfu = (
            (prefill_tokens * self.prefill_mfu + decode_batch * self.decode_mfu) / tokens
            if tokens > 0
            else 1.0
        )
        moe_compute = pairs * c["routed_flops"] / (c["peak_mm"] * mfu * sm)
        touched = min(1.0, tokens * k / lay.slots)
        moe_memory = touched * lay.slots_per_gpu * c["slot_w"] / c["hbm"]
        moe = max(moe_compute, moe_memory)
        comm = 0.0
        if n > 1 and tokens > 0:
            if decode_only and self.decode_kernel == "low_latency":
                comm = self._low_latency_seconds(tokens)
            else:
                comm = self._normal_seconds(tokens)
        return {"attention": attention, "moe": moe, "all_to_all": comm}

    def _normal_seconds(self, tokens: float) -> float:
        """Dispatch + combine of all MoE layers with the node-aware (normal) kernels."""
        m, lay = self.model, self.layout
        a2a = self.a2a_bytes_per_layer(tokens)
        nic = Link(self.nic_bandwidth, self.nic_latency)
        nvl = Link(self.gpu.scaleup_bandwidth_per_direction, self.scaleup_latency)
        lat = nic.latency if lay.nodes > 1 else nvl.latency
        rate = self.dispatch_seconds_per_byte
        comm = 0.0
        for dtype, out_b, up_b in (
            (m.moe_dispatch_dtype, a2a.dispatch_scale_out, a2a.dispatch_scale_up),
            (m.moe_combine_dtype, a2a.combine_scale_out, a2a.combine_scale_up),
        ):
            if rate is None:
                transfer = max(out_b / nic.bandwidth, up_b / nvl.bandwidth)
            else:
                payload = tokens / self.ep * m.hidden_bytes_per_token(dtype or self.compute_dtype)
                transfer = rate * payload
            comm += lat + self.expert_load_imbalance * transfer  # busiest receiver
        return comm * m.num_moe_layers

    def _low_latency_seconds(self, tokens: float) -> float:
        """Dispatch + combine of all MoE layers with DeepEP's low-latency kernels: one RDMA
        message per token and selected expert at low_latency_bandwidth_efficiency x the NIC
        rate, plus the per-call latency; with a flow-engine rate, scaled by its contention
        over the alpha-beta bound of the same fabric (module docstring)."""
        m, c = self.model, self._c
        bandwidth = self.nic_bandwidth * self.low_latency_bandwidth_efficiency
        contention = 1.0
        if self.dispatch_seconds_per_byte is not None and c["ab_rate"] > 0:
            contention = max(1.0, self.dispatch_seconds_per_byte / c["ab_rate"])
        pairs = self.expert_load_imbalance * tokens / self.ep * m.experts_per_token  # busiest
        comm = 0.0
        for dtype in (m.moe_dispatch_dtype, m.moe_combine_dtype):
            size = pairs * m.hidden_bytes_per_token(dtype or self.compute_dtype)
            comm += self.nic_latency + contention * size / bandwidth
        return comm * m.num_moe_layers

    def _total(self, p: dict[str, float | np.ndarray], decode_only: bool) -> float | np.ndarray:
        """Overlap rule of the module docstring: prefill max(compute, comm); decode
        max(attention, comm) + MoE (the routed MLP stage has no communication under it)."""
        if not self.overlap:
            return p["attention"] + p["moe"] + p["all_to_all"]
        if decode_only:
            return np.maximum(p["attention"], p["all_to_all"]) + p["moe"]
        return np.maximum(p["attention"] + p["moe"], p["all_to_all"])

    def iteration_time(self, *, prefill_flops: float = 0.0, prefill_tokens: float = 0.0,
                       decode_batch: int = 0, decode_context: float = 0.0) -> float:  # fmt: skip
        if prefill_tokens + decode_batch <= 0:
            return 0.0
        p = self.parts(prefill_flops=prefill_flops, prefill_tokens=prefill_tokens,
                       decode_batch=decode_batch, decode_context=decode_context)  # fmt: skip
        return float(self._total(p, prefill_tokens <= 0)) + self.iteration_overhead

    def decode_step_times(self, batch: int, context_tokens: float, steps: int,
                          queries_per_sequence: int = 1) -> np.ndarray:  # fmt: skip
        """Times of ``steps`` decode steps of ``batch`` tokens, the context growing by
        ``batch`` a step; ``queries_per_sequence`` tokens per sequence (see ``parts``)."""
        if batch <= 0 or steps <= 0:
            return np.zeros(max(steps, 0))
        context = context_tokens + batch * np.arange(steps, dtype=np.float64)
        p = self.parts(decode_batch=batch, decode_context=context,
                       queries_per_sequence=queries_per_sequence)  # fmt: skip
        total = self._total(p, True) + self.iteration_overhead
        return np.broadcast_to(total, (steps,)).astype(np.float64)


def scenario_ep_timing(sc: ServeScenario, model: ModelSpec, gpu: GpuSpec, ep: int) -> EpTiming:
    """The EP timing of a serving scenario's instance of ``ep`` GPUs (cluster.*ep keys);
    NIC bandwidth per GPU is network.nic_bandwidth, as for TP instances."""
    cl, co = sc.cluster, sc.compute
    timing = EpTiming(
        model=model, gpu=gpu, ep=ep, redundant_experts=cl.redundant_experts,
        expert_load_imbalance=cl.expert_load_imbalance, nic_bandwidth=sc.network.nic_bandwidth,
        nic_latency=sc.network.latency_s, overlap=cl.ep_overlap,
        weight_dtype=co.weight_dtype, kv_dtype=co.kv_dtype, compute_dtype=cl.ep_compute_dtype,
        prefill_mfu=co.prefill_mfu, decode_mfu=co.decode_mfu,
        decode_bandwidth_efficiency=co.decode_bandwidth_efficiency,
        prefill_comm_sm_share=cl.ep_prefill_comm_sm_share,
        decode_comm_sm_share=cl.ep_decode_comm_sm_share, decode_kernel=cl.ep_decode_kernel,
        low_latency_bandwidth_efficiency=cl.ep_low_latency_bandwidth_efficiency,
        iteration_overhead=co.iteration_overhead_s,
    )  # fmt: skip
    if cl.ep_network == "analytic":
        return timing
    rate = flow_dispatch_seconds_per_byte(timing, routing=cl.ep_routing, seed=sc.seed,
                                          design=cl.ep_fabric_design)  # fmt: skip
    return replace(timing, dispatch_seconds_per_byte=rate)


def flow_dispatch_seconds_per_byte(
    timing: EpTiming, *, routing: str = "ecmp", seed: int = 0, design: str = "rail_optimized"
) -> float:
    """Seconds per byte of a rank's token payload (T / ep tokens x hidden x dtype) for one
    node-aware dispatch (or combine) of the EP instance, on the flow-level network engine.

    The instance's ep GPUs get their own fabric (aifabric.fabric.plan, ``design``, the
    GPU's NIC at ``timing.nic_bandwidth``), routed by ``routing`` (netsim). One step carries
    the expected flows of traffic.moe_dispatch: every GPU sends remote_nodes / (N - 1) of
    its payload to the GPU with its in-node index on each other node (rail-aligned, DeepEP
    internode), and nvlink_copies / (m - 1) to each other GPU of its node (NVLink
    forwarding); both legs run at once, as DeepEP pipelines them. The engine's max-min
    fair rates make the step time proportional to the payload, so one 64 MiB solve gives
    the rate; the per-call latency is added by the caller.
    """
    from aifabric.catalog import get_switch
    from aifabric.fabric.plan import build, fabric_spec
    from aifabric.fabric.routing import Router
    from aifabric.netsim.collectives import NetworkModel, Step, run_step

    lay, c = timing.layout, timing._c
    n, m = lay.nodes, lay.ranks_per_node
    nic = f"{timing.nic_bandwidth * 8 / 1e9:g}G"
    spec, _, info = fabric_spec(
        {"gpus": max(timing.ep, timing.gpu.scaleup_domain_size), "gpu": timing.gpu.name,
         "design": design, "nic": nic}
    )  # fmt: skip
    topo = build(spec, info.get("design"))
    try:
        sw_latency = get_switch(spec.switch_model).latency or 0.0
    except ConfigError:
        sw_latency = 0.0
    net = NetworkModel(Router(topo), topo.num_gpus, spec.scaleup_domain_size,
                       timing.gpu.scaleup_bandwidth_per_direction, sw_latency)  # fmt: skip
    payload = 64.0 * 2**20
    gpus = np.arange(timing.ep)
    node, local = gpus // m, gpus % m
    src, dst, size = [], [], []
    if n > 1:
        for shift in range(1, n):  # every GPU to its rail peer on each other node
            src.append(gpus)
            dst.append(((node + shift) % n) * m + local)
            size.append(np.full(timing.ep, payload * c["remote_nodes"] / (n - 1)))
    if m > 1:
        for shift in range(1, m):  # NVLink forwarding inside the node
            src.append(gpus)
            dst.append(node * m + (local + shift) % m)
            size.append(np.full(timing.ep, payload * c["nvlink_copies"] / (m - 1)))
    if not src:
        return 0.0
    step = Step(np.concatenate(src), np.concatenate(dst), np.concatenate(size))
    result = run_step(net, step, routing, seed, 1)
    return result.time / payload
