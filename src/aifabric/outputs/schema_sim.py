"""Output models of the simulators: ``simulate serve``, ``trace stats``, ``simulate
collective`` and ``simulate train`` (registered in ``aifabric.outputs.schema``)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from aifabric.outputs.schema_base import (
    Bytes,
    BytesPerS,
    Enum,
    Flop,
    FlopPerS,
    Joules,
    JoulesPerToken,
    MeanCount,
    Out,
    ParallelPlan,
    Percentiles,
    PerS,
    Ratio,
    Seconds,
    Usd,
    UsdPerMTokens,
    Watts,
)

# --- serving ---------------------------------------------------------------------------


class ServeScenarioOut(Out):
    model: str
    mode: Literal["colocated", "disaggregated"]
    instances: dict[Literal["colocated", "prefill", "decode"], int]
    batching: Enum
    routing: Enum
    workload: str = Field(description="'synthetic' or the trace's file name")
    kv_store: bool
    seed: int
    timing_model: str = Field(
        description="which iteration timing answered: 'profile: SOURCE MODEL GPU tpN' (a "
        "measured table), 'profile (decode): SOURCE MODEL GPU tpN + roofline (prefill)' (a "
        "decode-only table) or 'roofline (why)'; 'role: ...; role: ...' when the pools differ"
    )


class TierResult(Out):
    requests: int
    admitted: int = Field(description="arrivals not rejected")
    completed: int
    rejected: int
    slo_attainment: Ratio | None = Field(
        description="SLO met, over all arrivals (rejected miss); null for a tier no request drew"
    )
    slo_attainment_admitted: Ratio | None = Field(
        description="SLO met, over admitted requests; null when none was admitted"
    )
    ttft_target_s: Seconds
    tbt_target_s: Seconds
    ttft_s: Percentiles
    tbt_s: Percentiles
    tbt_max_s: Percentiles
    e2e_s: Percentiles


class Throughput(Out):
    requests_per_s: PerS
    output_tokens_per_s: PerS
    prompt_tokens_per_s: PerS


class QueueDepth(Out):
    mean: MeanCount
    max: int
    p99: MeanCount


class KvCache(Out):
    hit_ratio: Ratio
    hit_ratio_by_tier: dict[Literal["hbm", "dram", "ssd"], Ratio]
    fetches_skipped: int
    pool_blocks: int


class NetworkBytes(Out):
    kv_transfer: Bytes
    prefix_fetch: Bytes
    prefix_store: Bytes
    tp_allreduce: Bytes
    ep_all_to_all: Bytes = Field(
        0.0, description="MoE dispatch + combine bytes inside expert-parallel instances"
    )


class LayerUtilization(Out):
    mean_utilization: Ratio = Field(
        description="mean over the layer's directed links that carried traffic of bytes / "
        "(capacity x simulated_s)"
    )
    max_utilization: Ratio = Field(
        description="the busiest such link's bytes / (capacity x simulated_s)"
    )


FabricLayer = Literal["endpoint_leaf", "leaf_spine", "spine_core"]
Role = Literal["colocated", "prefill", "decode"]


class RoleUtilization(Out):
    """Capacity used by a role's GPUs over simulated_s (serving.economics, serving.work)."""

    gpus: int
    busy_fraction: Ratio = Field(description="GPU-time an iteration was running / GPU-time")
    compute_utilization: Ratio = Field(
        description="FLOP executed / (dense peak FLOP/s x GPUs x simulated_s)"
    )
    hbm_bandwidth_utilization: Ratio = Field(
        description="HBM bytes moved (weights, KV read, KV written) / (HBM bandwidth x GPUs x "
        "simulated_s)"
    )
    activity_fraction: Ratio = Field(
        description="time mean of each iteration's max(compute, HBM) use: the power model's load"
    )
    flop: Flop
    hbm_bytes: Bytes


class TierEconomics(Out):
    gpu_s: Seconds = Field(description="GPU-seconds of the iterations its requests were in")
    cost_usd: Usd
    energy_j: Joules
    output_tokens: int = Field(description="output tokens of the tier's completed requests")
    usd_per_million_output_tokens: UsdPerMTokens | None
    j_per_output_token: JoulesPerToken | None


class ServeEconomics(Out):
    """Cost and energy of the simulated interval (defined in serving.economics)."""

    gpus: int
    gpu_hour_usd: dict[str, Usd] = Field(description="capital price per GPU-hour, by GPU")
    cost_usd: Usd
    gpu_capital_usd: Usd
    network_capital_usd: Usd
    energy_cost_usd: Usd
    energy_j: Joules = Field(description="IT energy: GPUs + fabric (before PUE)")
    gpu_energy_j: Joules
    network_energy_j: Joules
    mean_power_w: Watts
    network_capex_usd: Usd | None = Field(description="with a fabric: its BOM cost (likely)")
    network_power_w: Watts | None = Field(description="with a fabric: its BOM power")
    usd_per_million_output_tokens: UsdPerMTokens | None
    j_per_output_token: JoulesPerToken | None
    tiers: dict[str, TierEconomics]


class AutoscalePool(Out):
    min_instances: int
    max_instances: int
    metric: Literal["utilization", "queue_delay"]
    target: float = Field(
        description="utilization: a share (1); queue_delay: seconds",
        json_schema_extra={"unit": "given by metric"},
    )
    model_load_s: Seconds
    initial: int
    final: int = Field(description="instances serving at the end")
    peak_held: int = Field(description="most instances held at once (loading/serving/draining)")
    mean_serving_instances: MeanCount
    instance_time_s: Seconds
    loading_time_s: Seconds
    scale_ups: int = Field(description="instances created")
    retired: int = Field(description="instances drained and retired")


class AutoscaleOut(Out):
    enabled: bool
    interval_s: Seconds
    pools: dict[Role, AutoscalePool]


class SpeculativeOut(Out):
    draft_tokens: int
    acceptance_ratio: Ratio = Field(description="compute.speculative.acceptance_rate")
    draft_cost: float | str = Field(
        description="draft step time / target decode step (1), or the draft model's name",
        json_schema_extra={"unit": "given by its type (a ratio, or a model name)"},
    )
    expected_step_tokens: MeanCount


class ServeOutput(Out):
    """``aifabric simulate serve``: latency, SLO attainment and throughput of a serving run."""

    scenario: ServeScenarioOut
    requests: int
    completed: int
    rejected: int
    rejected_by: dict[str, int]
    in_flight_at_end: int
    admitted: int = Field(description="arrivals not rejected")
    rejected_prefill_tokens: int = Field(
        description="prompt tokens prefilled for requests rejected afterwards"
    )
    ttft_s: Percentiles
    tbt_s: Percentiles
    tbt_max_s: Percentiles
    e2e_s: Percentiles
    queue_wait_s: Percentiles
    slo_attainment: Ratio = Field(description="SLO met, over all arrivals (rejected miss)")
    slo_attainment_admitted: Ratio = Field(description="SLO met, over admitted requests")
    tiers: dict[str, TierResult]
    throughput: Throughput
    goodput_requests_per_s: PerS
    queue_depth: QueueDepth
    utilization: dict[str, Ratio] = Field(description="busy time / simulated_s, per role")
    utilization_by_role: dict[Role, RoleUtilization]
    mean_decode_batch: dict[str, MeanCount]
    instance_time_s: dict[Role, Seconds] = Field(
        description="per pool: seconds its instances were held (for costing)"
    )
    preemptions: int
    kv_cache: KvCache
    network_bytes: NetworkBytes
    simulated_s: Seconds
    events: int
    economics: ServeEconomics
    network_bytes_by_tier: dict[FabricLayer, Bytes] | None = Field(
        None, description="with a fabric: bytes over each link layer, both directions counted"
    )
    network_utilization_by_tier: dict[FabricLayer, LayerUtilization] | None = Field(
        None, description="with a fabric: mean and max link utilization per layer"
    )
    autoscale: AutoscaleOut | None = Field(None, description="with autoscale.enabled")
    speculative: SpeculativeOut | None = Field(None, description="with compute.speculative.enabled")
    wall_s: Seconds
    notes: list[str] | None = None


class PrefixCache(Out):
    hit_ratio: Ratio | None
    capacity_tokens: int | None = None
    hit_requests: int | None = None
    block_tokens: int | None = None
    note: str | None = None


class TraceOutput(Out):
    """``aifabric trace stats``."""

    trace: str
    requests: int
    duration_s: Seconds
    mean_input_tokens: MeanCount
    mean_output_tokens: MeanCount
    p50_input_tokens: MeanCount
    p99_input_tokens: MeanCount
    arrival_rate_per_s: PerS
    interarrival_cv: Ratio
    distinct_arrival_times: int
    prefix_cache: PrefixCache


# --- network simulation ----------------------------------------------------------------


class LinkUse(Out):
    mean_utilization: Ratio
    max_utilization: Ratio


class HotLink(Out):
    link: str = Field(description="leaf3->spine5 (direction of the bytes), gpu4.nvlink_out")
    layer: Literal["scale_up", "endpoint_leaf", "leaf_spine", "spine_core"]
    utilization: Ratio
    bytes: Bytes
    flows: int = Field(description="flows crossing the link (a sprayed flow counts)")


class SizeResult(Out):
    size_bytes: Bytes
    time_s: Seconds
    algbw_bytes_per_s: BytesPerS | None
    busbw_bytes_per_s: BytesPerS | None
    analytic_time_s: Seconds = Field(description="alpha-beta time on the same link speeds")
    efficiency_ratio: Ratio | None = Field(description="analytic_time_s / time_s")
    tiers: dict[Literal["scale_up", "endpoint_leaf", "leaf_spine", "spine_core"], LinkUse]
    hot_links: list[HotLink]
    max_flows_per_link: int
    flows: int
    events: int
    mean_flow_throughput_ratio: Ratio | None = Field(
        default=None, description="patterns: mean flow throughput / NIC line rate"
    )
    min_flow_throughput_ratio: Ratio | None = Field(
        default=None, description="patterns: slowest flow's throughput / NIC line rate"
    )


class SimFabric(Out):
    design: str
    gpus: int
    tiers: int
    nic_speed_bytes_per_s: BytesPerS
    scale_up_bandwidth_bytes_per_s: BytesPerS
    failed_links: int
    degraded_links: int
    failed_switches: list[str]


class WallPhases(Out):
    setup: Seconds
    build: Seconds
    simulate: Seconds


class SimulateCollectiveOutput(Out):
    """``aifabric simulate collective``: a collective or pattern as flows on a fabric."""

    op: Enum
    algorithm: Enum
    routing: Literal["ecmp", "ecmp_qp", "spray", "adaptive"]
    qps: int
    channels: int
    ranks: int
    group: Enum
    seed: int
    fabric: SimFabric
    results: list[SizeResult]
    flows: int
    events: int
    wall_s: Seconds
    wall_by_phase_s: WallPhases


class StepFabric(Out):
    design: str
    gpus: int
    nic_speed_bytes_per_s: BytesPerS
    failed_links: int
    degraded_links: int


class StepMemory(Out):
    weights: Bytes
    gradients: Bytes
    optimizer: Bytes
    activations: Bytes
    total: Bytes


class TierBytes(Out):
    scale_up_bytes: Bytes
    leaf_bytes: Bytes
    spine_bytes: Bytes
    core_bytes: Bytes


class StepCost(Out):
    """One iteration's capital cost on the planned cluster (aifabric.training.report)."""

    gpus: int = Field(description="GPUs of the planned fabric, all charged")
    gpu_hour_usd: Usd | None = Field(description="catalog GPU price / amortization life")
    gpu_capital_usd: Usd | None = Field(description="GPUs x iteration time x gpu_hour_usd")
    network_capex_usd: Usd = Field(description="the fabric's bill of materials (likely)")
    network_capital_usd: Usd = Field(description="network capex / life x iteration time")
    total_usd: Usd | None = Field(description="per iteration: GPU + network capital")
    usd_per_token: Usd | None = Field(description="total_usd / tokens per iteration")
    to_train_usd: Usd | None = Field(None, description="with dataset_tokens: the whole run")


class SimulateTrainOutput(Out):
    """``aifabric simulate train``: one training step simulated on a planned fabric."""

    model: str
    gpu: str
    gpus: int
    parallel: ParallelPlan
    seq_len: int
    global_batch: int
    microbatches: int
    recompute: Literal["none", "selective", "full"]
    network: Literal["flow", "analytic"]
    routing: Literal["ecmp", "ecmp_qp", "spray", "adaptive"] | None
    calibration: str = Field(description="the compute.yaml entry that timed the kernels")
    iteration_time_s: Seconds
    mfu: Ratio = Field(description="model FLOP / (iteration time x GPUs x dense peak)")
    hfu: Ratio = Field(description="hardware FLOP (recompute included) / (time x GPUs x peak)")
    gpu_model_flop_per_s: FlopPerS
    model_flop: Flop
    compute_s: Seconds
    optimizer_s: Seconds
    bubble_fraction: Ratio
    exposed_comm_s: dict[str, Seconds]
    comm_s: dict[str, Seconds]
    memory_per_gpu_bytes: StepMemory
    hbm_bytes: Bytes
    fits_in_memory: bool
    tiers: dict[
        Literal["scale_up", "scale_out", "endpoint_leaf", "leaf_spine", "spine_core"], LinkUse
    ]
    comm_by_tier: dict[str, TierBytes] = Field(
        description="per dimension: bytes per iteration by the highest tier their pairs climb"
    )
    tokens_per_s: PerS
    straggler_cost_s: dict[Literal["jitter", "slow_gpus", "links"], Seconds]
    fabric: StepFabric
    cost_usd: StepCost
    wall_s: Seconds
    time_to_train_s: Seconds | None = None


# --- timing ----------------------------------------------------------------------------


class TimingOutput(Out):
    """``aifabric timing``: prefill and decode iteration times of one serving deployment."""

    model: str
    gpu: str
    tp: int
    batch: int
    context_tokens: int = Field(description="context (KV) tokens per decoding sequence")
    prompt_tokens: int
    timing: Literal["auto", "profile", "roofline"]
    weight_dtype: str
    prefill_s: Seconds = Field(description="one prefill iteration of prompt_tokens fresh tokens")
    decode_iteration_s: Seconds
    per_token_latency_s: Seconds = Field(
        description="time between a sequence's tokens (TBT): one decode iteration"
    )
    decode_tokens_per_s: PerS
    timing_model: str
