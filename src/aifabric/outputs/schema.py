"""Pydantic models of every ``--json`` result: the one source of ``aifabric schema COMMAND``,
of the tests that validate each command's output, and (next) of the REST API and report.

The producers build plain dicts (the library API); these models state what those dicts
are, field by field, with the unit of every number in the schema (``"unit"``). Models
forbid unknown keys, so a key added to an output without its model fails the tests. The
vocabulary is described in :mod:`aifabric.outputs`.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field


class Out(BaseModel):
    """Base of the output models: unknown keys are errors."""

    model_config = ConfigDict(extra="forbid")


def _q(unit: str, description: str = "") -> Any:
    extra: dict[str, Any] = {"unit": unit}
    return Field(description=description or None, json_schema_extra=extra)


# Quantities by base unit (the "unit" of the generated schema).
Bytes = Annotated[float, _q("bytes")]
Seconds = Annotated[float, _q("s")]
BytesPerS = Annotated[float, _q("bytes/s")]
BitsPerS = Annotated[float, _q("bits/s")]
Flop = Annotated[float, _q("FLOP")]
FlopPerS = Annotated[float, _q("FLOP/s")]
Usd = Annotated[float, _q("USD")]
Watts = Annotated[float, _q("W")]
PerS = Annotated[float, _q("1/s", "a count per second")]
Ratio = Annotated[float, _q("1", "dimensionless")]
MeanCount = Annotated[float, _q("count", "a mean or percentile of a count")]
# An enumerated value: snake_case.
Enum = Annotated[str, Field(pattern=r"^[a-z][a-z0-9_]*$")]

Scope = Literal["scale_up", "scale_out", "mixed"]
Tier = Literal["scale_up", "leaf", "spine", "core"]
LinkLayer = Literal["scale_up", "endpoint_leaf", "leaf_spine", "spine_core"]
Phase = Literal["forward", "backward", "optimizer"]
Operation = Literal[
    "all_reduce", "reduce_scatter", "all_gather", "all_to_all", "broadcast", "send_recv"
]


# --- shared pieces ---------------------------------------------------------------------


class Cost(Out):
    total_usd: Usd
    low_usd: Usd
    high_usd: Usd
    per_gpu_usd: Usd
    price_date: str = Field(description="date of the price catalog, YYYY-MM")
    gpu_cost_usd: Usd
    network_to_gpu_cost_ratio: Ratio
    nics_usd: Usd | None = None
    switches_usd: Usd | None = None
    optics_usd: Usd | None = None


class Power(Out):
    total_w: Watts
    per_gpu_w: Watts


class Percentiles(Out):
    """Distribution of a time over requests."""

    p50: Seconds
    p95: Seconds
    p99: Seconds
    mean: Seconds


class ParallelPlan(Out):
    tp: int
    pp: int
    dp: int
    cp: int
    ep: int
    expert_tp: int
    zero: int
    sequence_parallel: bool
    micro_batch_size: int
    virtual_stages: int
    pipeline_layers: list[int] | None
    grad_dtype: Enum
    param_dtype: Enum
    world_size: int


# --- seeds, collective, net ------------------------------------------------------------


class SeedExample(Out):
    id: str
    seed_file: str
    quantity: str
    value: float = Field(json_schema_extra={"unit": "given by the unit field"})
    unit: Literal["1", "B", "B/s", "USD", "s"]
    display: str
    seed_value: float | None = Field(json_schema_extra={"unit": "given by seed_unit"})
    seed_unit: str | None
    agrees: bool | None
    note: str


class SeedsOutput(Out):
    """``aifabric seeds``: every worked example of the seeds, recomputed."""

    examples: list[SeedExample]


class CollectiveOutput(Out):
    """``aifabric collective OP``: one collective call."""

    operation: Operation
    algorithm: Enum
    algorithm_rule: Enum
    num_ranks: int
    size_bytes: Bytes
    steps: int
    bytes_per_rank: Bytes
    total_bytes: Bytes
    scale_up_bytes_per_rank: Bytes
    scale_out_bytes_per_rank: Bytes
    time_s: Seconds
    algbw_bytes_per_s: BytesPerS | None = Field(
        description="null (with a notes entry) when the call takes no time: one rank, 0 bytes"
    )
    busbw_bytes_per_s: BytesPerS | None = Field(description="as algbw_bytes_per_s")
    lower_bound_time_s: Seconds


class NetTimeOutput(Out):
    """``aifabric net time``."""

    bytes: Bytes
    capacity_bytes_per_s: BytesPerS
    capacity_bits_per_s: BitsPerS
    utilization: Ratio
    time_s: Seconds


class NetSwitchesOutput(Out):
    """``aifabric net switches``."""

    bytes: Bytes
    deadline_s: Seconds
    capacity_bytes_per_s: BytesPerS
    capacity_bits_per_s: BitsPerS
    utilization: Ratio
    fractional_switches: MeanCount
    whole_switches: int


# --- catalog ---------------------------------------------------------------------------


class ModelEntry(Out):
    name: str
    num_params: int
    num_active_params: int
    published_params: int | None
    num_layers: int
    hidden_size: int
    num_attention_heads: int
    num_kv_heads: int
    head_dim: int
    attention: Literal["mha", "gqa", "mla"]
    vocab_size: int
    num_experts: int
    experts_per_token: int
    max_nodes_per_token: int
    kv_bf16_bytes_per_token: Bytes
    forward_flop_per_token: Flop
    source: str


class CatalogModelsOutput(Out):
    models: list[ModelEntry]


class GpuEntry(Out):
    name: str
    peak_bf16_flop_per_s: FlopPerS
    peak_fp8_flop_per_s: FlopPerS | None
    hbm_bytes: Bytes
    hbm_bandwidth_bytes_per_s: BytesPerS
    scale_up_interconnect: str
    scale_up_bandwidth_bytes_per_s: BytesPerS
    scale_up_bandwidth_per_direction_bytes_per_s: BytesPerS
    scale_up_domain_size: int
    tdp_w: Watts
    default_nic_speed_bytes_per_s: BytesPerS
    source: str


class CatalogGpusOutput(Out):
    gpus: list[GpuEntry]


class NicEntry(Out):
    name: str
    speed_bytes_per_s: BytesPerS
    speed_bits_per_s: BitsPerS
    ports: int
    source: str


class CatalogNicsOutput(Out):
    nics: list[NicEntry]


class PortMode(Out):
    speed_bytes_per_s: BytesPerS
    ports: int


class SwitchEntry(Out):
    name: str
    ports: int
    port_speed_bytes_per_s: BytesPerS
    port_speed_bits_per_s: BitsPerS
    capacity_bytes_per_s: BytesPerS
    capacity_bits_per_s: BitsPerS
    latency_s: Seconds | None
    buffer_bytes: Bytes | None
    port_modes: list[PortMode]
    cages: int | None
    source: str


class CatalogSwitchesOutput(Out):
    switches: list[SwitchEntry]


# --- traffic ---------------------------------------------------------------------------


class TrafficRowOut(Out):
    """One collective pattern of an iteration (aifabric.traffic.rows.TrafficRow)."""

    dimension: Enum
    phase: Phase
    collective: Operation
    algorithm: Enum
    group_size: int
    num_groups: int
    calls: float = Field(
        json_schema_extra={"unit": "count"},
        description="calls per group: an integer when whole; a mean over uneven stages, "
        "or the seed accounting's T/N, may be fractional",
    )
    buffer_bytes: Bytes
    total_bytes: Bytes
    bytes_per_gpu: Bytes
    scope: Scope
    note: str
    group: str


class PerStage(Out):
    layers: list[int]
    bytes_per_gpu: list[Bytes]
    scale_out_bytes_per_gpu: list[Bytes]
    busiest_stage: int
    busiest_bytes_per_gpu: Bytes
    mean_bytes_per_gpu: Bytes


class PerIteration(Out):
    tokens: int
    total_bytes: Bytes
    bytes_per_gpu: Bytes
    scale_up_bytes: Bytes
    scale_out_bytes: Bytes
    scale_out_bytes_per_gpu: Bytes
    bytes_by_dimension: dict[str, Bytes]
    compute_time_s: Seconds
    required_scale_out_bytes_per_s_per_gpu: BytesPerS
    rows: list[TrafficRowOut]


class PerEpoch(Out):
    iterations: int
    tokens: int
    total_bytes: Bytes
    bytes_per_gpu: Bytes
    scale_out_bytes: Bytes
    compute_time_s: Seconds


class Storage(Out):
    dataset_bytes_per_epoch: Bytes
    dataset_bytes_per_iteration: Bytes
    dataset_read_bytes_per_s: BytesPerS
    checkpoint_bytes: Bytes
    checkpoint_bytes_per_param: Bytes
    checkpoint_stall_s: Seconds
    checkpoint_write_bytes_per_s: BytesPerS
    checkpoint_write_bytes_per_s_per_gpu: BytesPerS


class TrainingOutput(Out):
    """``aifabric traffic train``: bytes of one training job by dimension and scope."""

    model: str
    gpu: str
    plan: ParallelPlan
    accounting: Literal["algorithmic", "seed"]
    grad_reduce_dtype: Enum | None
    algorithm: Enum
    algorithm_rule: Enum | None
    in_network_reduction: bool
    recompute: Literal["none", "selective", "full"]
    scale_up_domain_size: int
    notes: list[str]
    per_stage: PerStage | None
    per_iteration: PerIteration
    per_epoch: PerEpoch
    storage: Storage


class RequiredRates(Out):
    kv_transfer: BytesPerS
    allreduce_per_gpu_per_user: BytesPerS
    aggregate_peak: BytesPerS
    aggregate_sustained: BytesPerS


class InferenceOutput(Out):
    """``aifabric traffic infer``: bytes and bandwidth of serving a user population."""

    model: str
    gpu: str
    accounting: Literal["algorithmic", "seed"]
    algorithm_rule: Enum
    in_network_reduction: bool
    tp_algorithm: Enum | None
    tp: int
    ep: int
    users: int
    prompt_tokens: int
    output_tokens: int
    pd: bool
    kv_dtype: Enum
    kv_bytes_per_token: Bytes
    kv_bytes_per_request: Bytes
    allreduce_bytes_per_token: Bytes
    allreduce_bytes_per_token_per_gpu: Bytes
    alltoall_bytes_per_token: Bytes
    activation_bytes_per_request: Bytes
    bytes_per_request: Bytes
    total_bytes: Bytes
    total_kv_bytes: Bytes
    total_activation_bytes: Bytes
    token_time_budget_s: Seconds
    communication_budget_s: Seconds
    kv_deadline_s: Seconds
    kv_transfer_time_one_nic_s: Seconds
    nic_speed_bytes_per_s: BytesPerS
    kv_transfer_nics: int
    required_bytes_per_s: RequiredRates


# --- plan ------------------------------------------------------------------------------


class PortCount(Out):
    total: int
    used: int
    free: int


class CostRange(Out):
    low: Usd
    likely: Usd
    high: Usd


class BomLine(Out):
    category: Literal["switch", "nic", "transceiver", "cable", "gpu"]
    item: str
    tier: Enum
    count: int
    power_w: Watts
    cost_usd: CostRange
    source: str
    links_per_module: int | None = None
    end: Enum | None = None
    ports: int | None = None


class ScaleUp(Out):
    domain_size: int
    domains: int
    interconnect: str
    switch_chips: int
    bandwidth_per_gpu_bytes_per_s: BytesPerS
    bandwidth_total_bytes_per_s: BytesPerS


class Published(Out):
    """Counts of a published reference design, to compare with the built ones."""

    leaf: int | None = None
    spine: int | None = None
    core: int | None = None
    nodes: int
    gpus: int
    cables: dict[LinkLayer, int] | None = None
    racks: int | None = None
    gpus_per_node: int | None = None
    scale_up_domain_size: int | None = None
    nics: int | None = None
    nvlink_switch_trays: int | None = None
    nvlink_switch_chips: int | None = None


class JobOnFabric(Out):
    model: str
    plan: ParallelPlan
    accounting: Literal["algorithmic", "seed"]
    iteration_bytes: Bytes
    compute_time_s: Seconds


class TierBytes(Out):
    dimension: Enum
    tier: Tier
    bytes: Bytes


class LayerBandwidth(Out):
    layer: LinkLayer
    bytes: Bytes
    available_bytes_per_s: BytesPerS
    required_bytes_per_s: BytesPerS
    min_time_s: Seconds


class Frontend(Out):
    nic_speed_bytes_per_s: BytesPerS
    switches: dict[str, int]
    links: dict[LinkLayer, int]
    transceivers: dict[LinkLayer, int]
    cables: dict[LinkLayer, int]
    cost: Cost
    power: Power


Design = Literal["rail_optimized", "clos", "spine_leaf"]


class PlanOutput(Out):
    """``aifabric plan``: a fabric's counts, bill of materials, cost, power and, with a
    job, where its bytes cross the tiers."""

    design: Design | None = None
    preset: str | None = None
    source: str | None = None
    published: Published | None = None
    preset_notes: str | None = None
    gpu: str
    gpus: int
    nodes: int
    nics: int
    nic_speed_bytes_per_s: BytesPerS
    planes: int
    tiers: int
    switch_model: str
    switch_models: dict[str, str]
    switch_radix: int
    switches: dict[str, int]
    links: dict[LinkLayer, int]
    ports: dict[str, PortCount]
    transceivers: dict[LinkLayer, int]
    transceiver_ports: dict[LinkLayer, int]
    cables: dict[LinkLayer, int]
    cost: Cost
    power: Power
    bom: list[BomLine]
    bisection_bandwidth_bytes_per_s: BytesPerS
    bisection_ratio: Ratio
    oversubscription: dict[str, Ratio]
    max_endpoints_nonblocking: int
    scale_up: ScaleUp
    management_ports: int
    bandwidth_per_gpu_bytes_per_s: BytesPerS
    warnings: list[str]
    frontend: Frontend | None = None
    placement: Literal["contiguous", "random"] | None = None
    job: JobOnFabric | None = None
    traffic_by_tier: list[TierBytes] | None = None
    bytes_by_tier: dict[Tier, Bytes] | None = None
    tier_bandwidth: list[LayerBandwidth] | None = None
    min_communication_time_s: Seconds | None = None
    graphml: str | None = Field(default=None, description="path of the GraphML file written")
    export: str | None = Field(default=None, description="path of the topology JSON written")
    matrix: str | None = Field(default=None, description="path of the traffic matrix written")
    svg: str | None = Field(default=None, description="path of the SVG written")


class FabricSummary(Out):
    design: Design
    nic_speed_bytes_per_s: BytesPerS
    nics: int
    switches: dict[str, int]
    transceivers: int
    cost: Cost
    power: Power
    bandwidth_per_gpu_bytes_per_s: BytesPerS
    bisection_bandwidth_bytes_per_s: BytesPerS
    oversubscription: dict[str, Ratio]


class Strategy(Out):
    strategy: Literal["separate_clusters", "time_division", "separate_networks"]
    gpus: int
    network_cost_usd: Usd
    gpu_cost_usd: Usd
    capex_usd: Usd
    utilization: dict[Literal["low", "high"], Ratio] | None
    capex_per_utilized_gpu_usd: Usd | None


class CompareOutput(Out):
    """``aifabric plan compare``: training vs inference fabric and hybrid strategies."""

    gpus: int
    gpu: str
    training: FabricSummary
    inference: FabricSummary
    training_to_inference_cost_ratio: Ratio
    strategies: list[Strategy]


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


class TierResult(Out):
    requests: int
    completed: int
    rejected: int
    slo_attainment: Ratio
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


class LayerUtilization(Out):
    mean_utilization: Ratio = Field(
        description="mean over the layer's directed links that carried traffic of bytes / "
        "(capacity x simulated_s)"
    )
    max_utilization: Ratio = Field(
        description="the busiest such link's bytes / (capacity x simulated_s)"
    )


FabricLayer = Literal["endpoint_leaf", "leaf_spine", "spine_core"]


class ServeOutput(Out):
    """``aifabric simulate serve``: latency, SLO attainment and throughput of a serving run."""

    scenario: ServeScenarioOut
    requests: int
    completed: int
    rejected: int
    rejected_by: dict[str, int]
    in_flight_at_end: int
    ttft_s: Percentiles
    tbt_s: Percentiles
    tbt_max_s: Percentiles
    e2e_s: Percentiles
    queue_wait_s: Percentiles
    slo_attainment: Ratio
    tiers: dict[str, TierResult]
    throughput: Throughput
    goodput_requests_per_s: PerS
    queue_depth: QueueDepth
    utilization: dict[str, Ratio]
    mean_decode_batch: dict[str, MeanCount]
    preemptions: int
    kv_cache: KvCache
    network_bytes: NetworkBytes
    simulated_s: Seconds
    events: int
    network_bytes_by_tier: dict[FabricLayer, Bytes] | None = Field(
        None, description="with a fabric: bytes over each link layer, both directions counted"
    )
    network_utilization_by_tier: dict[FabricLayer, LayerUtilization] | None = Field(
        None, description="with a fabric: mean and max link utilization per layer"
    )
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
    tokens_per_s: PerS
    straggler_cost_s: dict[Literal["jitter", "slow_gpus", "links"], Seconds]
    fabric: StepFabric
    wall_s: Seconds
    time_to_train_s: Seconds | None = None


# --- registry --------------------------------------------------------------------------

#: The model of each ``--json`` command, by its command path.
COMMANDS: dict[str, type[Out]] = {
    "seeds": SeedsOutput,
    "collective": CollectiveOutput,
    "traffic train": TrainingOutput,
    "traffic infer": InferenceOutput,
    "catalog models": CatalogModelsOutput,
    "catalog gpus": CatalogGpusOutput,
    "catalog nics": CatalogNicsOutput,
    "catalog switches": CatalogSwitchesOutput,
    "net time": NetTimeOutput,
    "net switches": NetSwitchesOutput,
    "trace stats": TraceOutput,
    "plan": PlanOutput,
    "plan compare": CompareOutput,
    "simulate serve": ServeOutput,
    "simulate collective": SimulateCollectiveOutput,
    "simulate train": SimulateTrainOutput,
}

#: Every JSON output may carry ``notes`` when a non-finite number became null
#: (aifabric.cli.edges.emit_json); models without their own ``notes`` accept it here.
_NOTES_NOTE = "notes: non-finite numbers written as null, and why"


def json_schema(command: str) -> dict[str, Any]:
    """The JSON Schema (draft 2020-12) of ``aifabric COMMAND --json``'s stdout."""
    model = COMMANDS[command]
    schema = model.model_json_schema()
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["$id"] = f"https://aifabric.dev/schema/{command.replace(' ', '-')}.json"
    props = schema.setdefault("properties", {})
    if "notes" not in props:
        props["notes"] = {"type": "array", "items": {"type": "string"},
                          "description": _NOTES_NOTE}  # fmt: skip
    return schema
