"""The shared vocabulary of the output models (``aifabric.outputs.schema``): the strict
base model, quantities by base unit, enumerations and pieces several outputs share."""

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
Joules = Annotated[float, _q("J")]
JoulesPerToken = Annotated[float, _q("J/token", "joules per output token")]
UsdPerMTokens = Annotated[float, _q("USD/1M tokens", "USD per million output tokens")]
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
    """Distribution of a time over requests; null when no request completed."""

    p50: Seconds | None
    p95: Seconds | None
    p99: Seconds | None
    mean: Seconds | None


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
