"""Output model of ``aifabric simulate cluster`` (registered in ``aifabric.outputs.schema``)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from aifabric.outputs.schema_base import (
    Bytes,
    Flop,
    Out,
    Percentiles,
    PerS,
    Ratio,
    Seconds,
    Usd,
)

TrafficClass = Literal["training", "inference", "storage"]
NetworkName = Literal["fabric", "frontend", "inference_fabric"]
ClusterLayer = Literal["endpoint_leaf", "leaf_spine", "spine_core"]


class TrainFigures(Out):
    steps: int = Field(description="steps completed within the duration")
    step_time_s: Seconds | None = Field(description="mean step (compute + exposed comm)")
    iteration_time_s: Seconds = Field(description="the step simulator's alone step")
    mfu: Ratio | None
    tokens_per_s: PerS
    data_stall_s: Seconds
    checkpoint_stall_s: Seconds
    checkpoints: int
    checkpoint_bytes: Bytes
    dataset_bytes: Bytes
    busy_gpu_s: Seconds = Field(description="GPU-seconds in steps")
    flop: Flop = Field(description="model FLOP of the steps done")
    reconfigurations: int | None = None
    loading_s: Seconds | None = Field(None, description="time division: reloads after moves")


class ServeFigures(Out):
    requests: int
    completed: int
    ttft_s: Percentiles
    tbt_s: Percentiles
    slo_attainment: Ratio | None
    slo_attainment_by_tier: dict[str, Ratio | None]
    output_tokens_per_s: PerS
    active_s: Seconds = Field(description="until the last request finished or was rejected")
    busy_gpu_s: Seconds = Field(description="GPU-seconds an iteration ran")
    flop: Flop = Field(description="FLOP of the iterations run")


class TrainSlowdown(Out):
    step_time_ratio: Ratio | None = Field(description="shared / alone")
    mfu_ratio: Ratio | None = Field(description="alone / shared")
    tokens_per_s_ratio: Ratio | None = Field(description="alone / shared")


class ServeSlowdown(Out):
    ttft_p50_ratio: Ratio | None = Field(description="shared / alone")
    ttft_p99_ratio: Ratio | None
    tbt_p50_ratio: Ratio | None
    tbt_p99_ratio: Ratio | None
    slo_attainment_change_fraction: Ratio | None = Field(description="shared - alone")


class WorkloadResult(Out):
    name: str
    kind: Literal["train", "serve"]
    gpus: int
    first_gpu: int
    network: NetworkName
    alone: TrainFigures | ServeFigures
    shared: TrainFigures | ServeFigures
    slowdown: TrainSlowdown | ServeSlowdown


class TierUse(Out):
    bytes: Bytes = Field(description="over the layer's directed links, both directions")
    bytes_by_class: dict[TrafficClass, Bytes]
    utilization: Ratio = Field(description="bytes / (layer capacity x duration)")
    max_link_utilization: Ratio
    bytes_fraction_by_class: dict[TrafficClass, Ratio] = Field(description="of the bytes")


class GpuUtilization(Out):
    overall_utilization: Ratio = Field(description="busy GPU-seconds / (GPUs x duration)")
    compute_utilization: Ratio = Field(description="model FLOP / (GPUs x duration x peak)")
    utilization_by_workload: dict[str, Ratio]
    gpu_s: dict[str, Seconds] | None = Field(
        None, description="time division: GPU-seconds by use (training, inference, loading)"
    )


class ClusterCost(Out):
    gpus: int
    gpu_hour_usd: Usd
    gpu_capital_usd: Usd
    network_capex_usd: Usd
    network_capital_usd: Usd
    total_usd: Usd
    useful_gpu_s: Seconds = Field(description="busy GPU-seconds")
    usd_per_useful_gpu_hour: Usd | None


class ClassesOut(Out):
    policy: Literal["fair", "strict_priority", "weighted"]
    order: list[TrafficClass] | None = None
    weight_fraction: dict[TrafficClass, Ratio] | None = Field(None, description="normalised")


class ClusterOutput(Out):
    """``aifabric simulate cluster``: workloads alone and together on one network."""

    strategy: Literal["converged", "separate_networks", "separate_clusters", "time_division"]
    duration_s: Seconds
    classes: ClassesOut
    workloads: list[WorkloadResult]
    tiers: dict[NetworkName, dict[ClusterLayer, TierUse]]
    gpu_utilization: GpuUtilization
    cost_usd: ClusterCost
    wall_s: Seconds
    notes: list[str] | None = None
