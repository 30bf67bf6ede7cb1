"""Pydantic models of every ``--json`` result: the one source of ``aifabric schema COMMAND``,
of the tests that validate each command's output, and (next) of the REST API and report.

The producers build plain dicts (the library API); these models state what those dicts
are, field by field, with the unit of every number in the schema (``"unit"``). Models
forbid unknown keys, so a key added to an output without its model fails the tests. The
vocabulary is described in :mod:`aifabric.outputs`.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field

from aifabric.outputs.schema_base import (
    BitsPerS,
    Bytes,
    BytesPerS,
    Cost,
    Enum,
    Flop,
    FlopPerS,
    LinkLayer,
    MeanCount,
    Operation,
    Out,
    ParallelPlan,
    Phase,
    Power,
    Ratio,
    Scope,
    Seconds,
    Tier,
    Usd,
    Watts,
)
from aifabric.outputs.schema_cluster import ClusterOutput
from aifabric.outputs.schema_explore import (
    ReportOutput,
    ResultsParetoOutput,
    ResultsQueryOutput,
    ResultsTopOutput,
    SweepOutput,
)
from aifabric.outputs.schema_sim import (
    ServeOutput,
    SimulateCollectiveOutput,
    SimulateTrainOutput,
    TimingOutput,
    TraceOutput,
)

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
    "simulate cluster": ClusterOutput,
    "timing": TimingOutput,
    "sweep": SweepOutput,
    "results query": ResultsQueryOutput,
    "results pareto": ResultsParetoOutput,
    "results top": ResultsTopOutput,
    "report": ReportOutput,
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
