"""Serving scenarios: a nested YAML mapping validated by pydantic, with dotted overrides.

Every field below is a scenario key (``workload.rate_rps``, ``batching.policy``, ...);
``--set dotted.key=value`` overrides one (the value is read as YAML, so ``true``, ``2.5``
and ``[1, 2]`` keep their types). Unknown keys, wrong types and impossible values are
ConfigErrors naming the dotted key. Quantities accept units: ``nic_bandwidth: 400G``
(bits/s), ``capacity_per_server: 512GB``, ``ttl: 24h``. An optional ``fabric:`` section
places the cluster on a planned fabric (the plan loader's fabric keys plus routing, qps and
placement; see aifabric.serving.fabric). The ``economics:`` section prices GPU-hours,
energy and the fabric and sets the power model behind cost and energy per output token
(see aifabric.serving.economics).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    model_validator,
)

from aifabric.errors import ConfigError
from aifabric.units import parse_bandwidth, parse_bytes, parse_duration


def _units(parse: Any) -> BeforeValidator:
    def convert(value: Any) -> Any:
        if isinstance(value, bool):
            raise ValueError(f"expected a quantity, got {value!r}")
        try:
            return parse(value, what="@")
        except ConfigError as exc:
            raise ValueError(str(exc).removeprefix("@: ")) from None

    return BeforeValidator(convert)


Bandwidth = Annotated[float, _units(parse_bandwidth), Field(gt=0)]  # bytes/s
Bytes = Annotated[float, _units(parse_bytes), Field(ge=0)]
Seconds = Annotated[float, _units(parse_duration), Field(ge=0)]
Fraction = Annotated[float, Field(gt=0, le=1)]
Positive = Annotated[float, Field(gt=0)]


class _Section(BaseModel):
    # allow_inf_nan=False: NaN and infinity are refused for every float key
    model_config = ConfigDict(extra="forbid", frozen=True, strict=False, allow_inf_nan=False)


class Lengths(_Section):
    """A token-count distribution (see serving.workload.LengthDistribution)."""

    kind: Literal["fixed", "uniform", "lognormal", "pareto"] = "fixed"
    mean: Positive = 1024.0
    cv: Positive = 1.0
    low: Positive = 1.0
    high: Positive = 2048.0
    alpha: Positive = 1.5
    minimum: Annotated[int, Field(ge=1)] = 1
    maximum: Annotated[int, Field(ge=1)] = 1_000_000


class Sessions(_Section):
    """Multi-turn conversations: each turn's prompt extends the previous turn's context."""

    enabled: bool = False
    turns_mean: Annotated[float, Field(ge=1)] = 4.0  # geometric number of turns
    think_time_s: Seconds = 30.0  # mean (exponential) gap from an answer to the next turn


class RatePhase(_Section):
    """One phase of ``workload.rate_schedule``: ``rate_rps`` for ``duration_s`` seconds."""

    duration_s: Positive
    rate_rps: Positive


class Workload(_Section):
    source: Literal["synthetic", "trace"] = "synthetic"
    trace: str | None = None
    trace_format: Literal["mooncake", "azure"] | None = None
    trace_jitter_s: Seconds = 0.0  # spread requests uniformly over [t, t + jitter)
    max_requests: Annotated[int, Field(ge=1)] | None = None
    rate_rps: Positive | None = None  # synthetic: arrival rate; trace: rescale to this rate
    burstiness_cv: Positive = 1.0  # CV of inter-arrival gaps; 1 = Poisson
    num_requests: Annotated[int, Field(ge=1)] = 1000
    input_tokens: Lengths = Lengths(kind="lognormal", mean=1024, cv=1.0, maximum=32768)
    output_tokens: Lengths = Lengths(kind="lognormal", mean=256, cv=1.0, maximum=4096)
    system_prompt_tokens: Annotated[int, Field(ge=0)] = 0  # shared prefix of every request
    sessions: Sessions = Sessions()
    # Synthetic: a piecewise-constant arrival rate instead of rate_rps (phases in order; the
    # last one lasts until num_requests have arrived); see serving.workload.schedule_times
    rate_schedule: tuple[RatePhase, ...] | None = None

    @model_validator(mode="after")
    def _trace_given(self) -> Workload:
        if self.source == "trace" and not self.trace:
            raise ValueError("source is 'trace' but workload.trace (a file path) is not set")
        if self.rate_schedule is not None:
            if self.source != "synthetic":
                raise ValueError("rate_schedule needs source 'synthetic'")
            if not self.rate_schedule:
                raise ValueError("rate_schedule needs at least one phase")
            if self.rate_rps is not None:
                raise ValueError("set rate_rps or rate_schedule, not both")
        return self


class Cluster(_Section):
    mode: Literal["colocated", "disaggregated"] = "colocated"
    instances: Annotated[int, Field(ge=1)] = 1  # colocated
    prefill_instances: Annotated[int, Field(ge=1)] = 1  # disaggregated (M)
    decode_instances: Annotated[int, Field(ge=1)] = 1  # disaggregated (N)
    tp: Annotated[int, Field(ge=1)] = 1
    prefill_tp: Annotated[int, Field(ge=1)] | None = None  # default: tp
    decode_tp: Annotated[int, Field(ge=1)] | None = None
    prefill_gpu: str | None = None  # default: the scenario's gpu (seed 003: H800 / H20)
    decode_gpu: str | None = None
    gpu_memory_utilization: Fraction = 0.9  # share of HBM for weights + KV (vLLM default)
    # Expert parallelism (serving.moe): an instance of ep GPUs, routed experts over EP ranks,
    # attention + shared experts data-parallel on every GPU (tp = 1); None = TP instances.
    ep: Annotated[int, Field(ge=1)] | None = None  # colocated
    prefill_ep: Annotated[int, Field(ge=1)] | None = None  # disaggregated (DeepSeek: 32)
    decode_ep: Annotated[int, Field(ge=1)] | None = None  # (DeepSeek: 144)
    dp_attention: Annotated[int, Field(ge=1)] | None = None  # default / only value: ep
    prefill_dp_attention: Annotated[int, Field(ge=1)] | None = None
    decode_dp_attention: Annotated[int, Field(ge=1)] | None = None
    redundant_experts: Annotated[int, Field(ge=0)] = 0  # replica slots per instance (DeepSeek 32)
    expert_load_imbalance: Annotated[float, Field(ge=1)] = 1.0  # busiest GPU's tokens / mean
    ep_overlap: bool = True  # all-to-all hidden behind compute (dual micro-batch / pipeline)
    ep_compute_dtype: str = "bf16"  # EP matmul format (DeepSeek: fp8); core attention bf16
    # dispatch / combine timing: alpha-beta on NIC + NVLink, or the flow-level engine on a
    # fabric of the instance's GPUs (design as for `aifabric plan`, routing as for netsim)
    ep_network: Literal["analytic", "flow"] = "analytic"
    ep_fabric_design: Literal["rail_optimized", "clos", "spine_leaf"] = "rail_optimized"
    ep_routing: Literal["ecmp", "ecmp_qp", "spray", "adaptive"] = "ecmp"
    # Overheads of the EP timing (serving.moe docstring has the sources): the SM share the
    # all-to-all kernels hold while overlapping (DeepSeek profile-data figures: 24 of 132 SMs
    # in prefill, 0 in decode), the decode all-to-all kernel (DeepEP low-latency: pure RDMA,
    # one message per token and expert) and its share of the NIC rate (DeepEP: 39 GB/s of
    # ~50 GB/s at EP128).
    ep_prefill_comm_sm_share: Annotated[float, Field(ge=0, lt=1)] = 24 / 132
    ep_decode_comm_sm_share: Annotated[float, Field(ge=0, lt=1)] = 0.0
    ep_decode_kernel: Literal["low_latency", "normal"] = "low_latency"
    ep_low_latency_bandwidth_efficiency: Fraction = 0.78

    @model_validator(mode="after")
    def _ep_layout(self) -> Cluster:
        for pre in ("", "prefill_", "decode_"):
            ep, dp = getattr(self, f"{pre}ep"), getattr(self, f"{pre}dp_attention")
            tp = getattr(self, f"{pre}tp") if pre else self.tp
            if dp is not None and dp != ep:
                raise ValueError(
                    f"{pre}dp_attention(={dp}) must equal {pre}ep(={ep}): EP instances run "
                    "attention data-parallel with tp = 1 on every GPU"
                )
            if ep is not None and tp not in (None, 1):
                raise ValueError(f"{pre}tp(={tp}) must be 1 (or unset) with {pre}ep(={ep})")
        return self


class Speculative(_Section):
    """Speculative decoding on decode iterations (see serving.speculative): a draft proposes
    ``draft_tokens`` (k) tokens, the target verifies k + 1 per sequence in one iteration and
    accepts each with probability ``acceptance_rate`` (alpha, i.i.d., taken at its mean).
    ``draft_cost``: the draft's forward time relative to a target decode step (a number), or
    a catalog model name (timed on the same GPUs)."""

    enabled: bool = False
    draft_tokens: Annotated[int, Field(ge=1, le=64)] = 4
    acceptance_rate: Annotated[float, Field(ge=0, le=1)] = 0.7
    draft_cost: Annotated[float, Field(ge=0)] | str = 0.05


class Compute(_Section):
    """How an instance's iterations are timed (aifabric.serving.compute / .profile).

    ``timing``: ``profile`` answers from a measured table for the deployment's (model, gpu,
    tp, weight dtype) (catalog ``data/serving_profiles/``; ConfigError if none), ``roofline``
    from the roofline below, ``auto`` (default) the profile when one exists, else the
    roofline. The roofline defaults are FITTED (grid search minimising the mean of the two
    sets' mean relative errors, every 70B decode point within 30 % and every 8B one within
    15 %; tests/test_serving_timing.py pins the result) on SplitwiseSim's measured
    Llama-2-70B on DGX-A100/DGX-H100 at TP4 and TP8 (64 points) and Argonne's
    LLM-Inference-Bench Llama-3-8B decode on one H100 at 1,535.5 tokens of context (4
    points); validated on the rest: 70B at TP2 (28 points), 8B H100 at the other contexts
    (16), 8B on one A100 40 GB (19, another GPU) and the two measured 8B TTFTs.

    Overheads (aifabric.serving.compute): the measured cost above the weight read grows
    with the layers and with TP, not per iteration: batch-1 decode costs 1.9 ms over its
    weight read for 32-layer 8B at TP1 (vLLM 2024, CUDA graphs), 11-13 ms for 80-layer 70B
    at TP2, 17-24 ms at TP4 and 23-34 ms at TP8 (SplitwiseSim 2023). Fitted:
    layer_overhead_s 55 us per layer (launches of ~10-15 kernels a layer: 1.8 ms for 8B,
    4.4 ms for 70B); scaleup_latency_s 12 us per ring step of the 2 x layers TP all-reduces
    (zero at TP1; 160 all-reduces of 14 steps = 27 ms at TP8: more than NCCL's ~1-2 us per
    NVLink hop, so an effective TP-synchronisation cost of the 2023 stack, not a link
    latency); layer_sequence_overhead_s 2.25 us per layer per decoding sequence (paged
    attention and per-row work: 72 us a sequence for 8B, 180 us for 70B; the measured batch
    1 -> 64 slopes are ~50 us for 8B and 320-440 us for 70B, the stacks differ);
    iteration_overhead_s and sequence_overhead_s 0 (costs outside the layers, kept as
    knobs); prefill_mfu 0.45. decode_bandwidth_efficiency 0.8 and decode_mfu 0.5 are not
    fitted.

    Prefill and TP (scaleup_bandwidth_efficiency: the TP all-reduces' share of the GPU's
    per-direction scale-up rate, default 1). The 70B tables' per-token prefill time falls
    less than 1/TP (H100: 146, 107, 90 us a token at TP2/4/8; A100: 405, 334, 231), which
    T = c x 2(t-1)/t + b/t fits with b = 218 us (64 % of H100 peak; 70 % on A100) and
    c = 37 us: the 2 x 80 all-reduces' 2.6 MB a token, not overlapped, at ~71 GB/s (H100;
    ~30 GB/s A100), 16 % / 10 % of NVLink's per-direction rate and far below the ~370-480
    GB/s bus bandwidth nccl-tests reach on an 8-GPU NVSwitch board. Quadratic attention is
    not it: 8 x 512-token prompts take as long per token as one 4,096-token prompt
    (SplitwiseSim, TP8). Fitted that way (prefill_mfu 0.75, scaleup_bandwidth_efficiency
    0.175, layer_sequence_overhead_s 2 us, the rest as above; tests/test_serving_timing.py
    ``TP_COMM_PREFILL``) the held-out 70B TP2 prefills improve from 23 % to 11 % mean error
    and the one-GPU 8B TTFTs from +33 % / +71 % to -20 % / +3 %, but the TP8 tables' fast
    512-2,048-token prompts are then up to 48 % slow (the measured time jumps 2.8x from
    2,048 to 4,096 tokens, a regime change a linear all-reduce term lacks). It is not the
    default because prefill_mfu is also the expert-parallel timing's (serving.moe, no TP
    all-reduce), whose prefill capacity 0.75 would raise 1.67x.
    """

    timing: Literal["auto", "profile", "roofline"] = "auto"
    prefill_mfu: Fraction = 0.45
    decode_bandwidth_efficiency: Fraction = 0.8
    decode_mfu: Fraction = 0.5
    iteration_overhead_s: Annotated[float, _units(parse_duration), Field(ge=0, lt=10)] = 0.0
    sequence_overhead_s: Annotated[float, _units(parse_duration), Field(ge=0, lt=10)] = 0.0
    layer_overhead_s: Annotated[float, _units(parse_duration), Field(ge=0, lt=1)] = 55e-6
    layer_sequence_overhead_s: Annotated[float, _units(parse_duration), Field(ge=0, lt=1)] = 2.25e-6
    scaleup_latency_s: Annotated[float, _units(parse_duration), Field(ge=0, lt=1)] = 12e-6
    scaleup_bandwidth_efficiency: Fraction = 1.0
    weight_dtype: str = "bf16"
    kv_dtype: str = "bf16"
    speculative: Speculative = Speculative()


class Batching(_Section):
    """Colocated instances follow the policy. With PD it applies to the prefill pool (static
    and continuous both prefill whole prompts in batches of max_batch_tokens; chunked splits
    them); decode instances always batch continuously."""

    policy: Literal["static", "continuous", "chunked"] = "continuous"
    max_batch_size: Annotated[int, Field(ge=1)] = 256  # sequences per iteration
    max_batch_tokens: Annotated[int, Field(ge=1)] = 8192  # tokens per iteration (chunk budget)


class Routing(_Section):
    policy: str = "round_robin"  # see serving.routing.ROUTERS


class Network(_Section):
    nic_bandwidth: Bandwidth = 50e9  # per GPU; 400G
    latency_s: Seconds = 10e-6  # per transfer (RDMA setup + propagation)
    oversubscription: Annotated[float, Field(ge=1)] = 1.0  # core = sum of NICs / this


class DramTier(_Section):
    servers: Annotated[int, Field(ge=1)] = 8
    capacity_per_server: Bytes = 512e9
    nic_bandwidth: Bandwidth = 50e9


class SsdTier(_Section):
    enabled: bool = True
    capacity_per_server: Bytes = 8e12
    read_bandwidth: Bandwidth = 6e9  # per server


class KVStoreConfig(_Section):
    enabled: bool = False
    block_tokens: Annotated[int, Field(ge=1)] = 512  # synthetic workloads; traces bring theirs
    hbm_cache_fraction: Annotated[float, Field(ge=0, lt=1)] = 0.2  # of each instance's KV HBM
    ttl: Seconds = 24 * 3600.0
    dram: DramTier = DramTier()
    ssd: SsdTier = SsdTier()


class SloTier(_Section):
    name: str
    share: Annotated[float, Field(ge=0)]
    ttft_s: Positive
    tbt_s: Positive
    priority: int = 0  # lower runs first


DEFAULT_TIERS = (
    SloTier(name="gold", share=0.2, ttft_s=2.0, tbt_s=0.05, priority=0),
    SloTier(name="silver", share=0.3, ttft_s=5.0, tbt_s=0.1, priority=1),
    SloTier(name="bronze", share=0.5, ttft_s=15.0, tbt_s=0.2, priority=2),
)


class Slo(_Section):
    tiers: tuple[SloTier, ...] = DEFAULT_TIERS
    tbt_metric: Literal["mean", "max"] = "mean"  # per request: mean gap (TPOT) or worst stall
    # Admission control (serving.admission): reject a request at arrival when its predicted
    # TTFT misses its tier's target, or, per early_rejection, when its predicted TBT on the
    # decode stage would miss it or push a running request's tier past its TBT target.
    admission_control: bool = False
    admission_slack: Positive = 1.0  # reject when estimate > slack x target (TTFT and TBT)
    # When the TBT check runs (Mooncake, FAST'25, section 6 "Overload-oriented Scheduling"):
    # none: only when the request reaches the decode stage, after its prefill (wasted);
    # current: at arrival, on the decode stage's load now (running + committed);
    # predicted: at arrival, on the load predicted for when it reaches the decode stage.
    early_rejection: Literal["none", "current", "predicted"] = "predicted"

    @model_validator(mode="after")
    def _tiers_valid(self) -> Slo:
        if not self.tiers:
            raise ValueError("at least one tier is needed")
        names = [t.name for t in self.tiers]
        if len(set(names)) != len(names):
            raise ValueError(f"tier names must be distinct, got {names}")
        if sum(t.share for t in self.tiers) <= 0:
            raise ValueError("tier shares must add up to more than 0")
        return self


class PoolScale(_Section):
    """One pool's autoscaling policy; an unset key takes the ``autoscale`` section's value."""

    metric: Literal["utilization", "queue_delay"] | None = None
    target: Positive | None = None
    min_instances: Annotated[int, Field(ge=1)] | None = None
    max_instances: Annotated[int, Field(ge=1)] | None = None
    scale_down_cooldown_s: Seconds | None = None


class Autoscale(_Section):
    """Elastic pools (see serving.autoscale): every ``interval_s`` each pool's metric is
    compared with its target (Kubernetes HPA rule). ``model_load_s``: seconds before a new
    instance serves (unset: weight bytes / ``load_bandwidth``)."""

    enabled: bool = False
    interval_s: Positive = 10.0
    metric: Literal["utilization", "queue_delay"] = "utilization"
    target: Positive = 0.7  # utilization: busy share; queue_delay: seconds
    min_instances: Annotated[int, Field(ge=1)] = 1
    max_instances: Annotated[int, Field(ge=1)] = 8
    model_load_s: Seconds | None = None
    load_bandwidth: Bandwidth = 130e9 / 84  # bytes/s; see serving.autoscale.LOAD_BANDWIDTH
    scale_down_cooldown_s: Seconds = 60.0
    colocated: PoolScale = PoolScale()
    prefill: PoolScale = PoolScale()
    decode: PoolScale = PoolScale()


class Metrics(_Section):
    sample_interval_s: Positive = 1.0  # queue depth / waiting time series


class Economics(_Section):
    """Prices and the power model behind cost and energy per token (serving.economics).

    Defaults are stated assumptions, each with its basis; replace them with your own.
    """

    # USD per GPU-hour of capital, every GPU of the cluster. None: the GPU's catalog price
    # (gpu_capex_usd, else parts.yaml gpus.<gpu>.price.likely) over amortization_years. A
    # cloud rental price includes power and hosting: give it here and set
    # energy_usd_per_kwh to 0 so that energy is not paid twice.
    gpu_hour_usd: Annotated[float, Field(ge=0)] | None = None
    gpu_capex_usd: Annotated[float, Field(ge=0)] | None = None  # per GPU; None: parts.yaml
    # Straight-line life of GPUs and fabric. 5 years: an assumption inside the server
    # lives the hyperscalers' filings state: Amazon 5 (a subset, from 6, effective 2025,
    # 10-K for 2024), Meta 5.5 (from 2025), Microsoft and Alphabet 6 (from 2022-23).
    amortization_years: Positive = 5.0
    # USD per kWh of facility energy. 0.08: about the US average industrial price of
    # 2023-24 (EIA Electric Power Monthly, tables 5.6.A/B: 7-9 cents/kWh in most regions).
    energy_usd_per_kwh: Annotated[float, Field(ge=0)] = 0.08
    # Facility energy / IT energy (cooling, power conversion). 1.3: an assumption between
    # hyperscale fleets (~1.1, Google's reported fleet average) and the industry average
    # (1.56 in the Uptime Institute Global Data Center Survey 2024; 1.58 in 2023); Uptime
    # reports new large facilities at 1.3 or better.
    pue: Annotated[float, Field(ge=1)] = 1.3
    # GPU power P = TDP x (idle + (full - idle) x activity), activity per iteration = the
    # busier of compute and HBM bandwidth at datasheet peak (serving.work). An idle GPU
    # holding a CUDA context draws ~10% of an H100's 700 W TDP (nvidia-smi readings of
    # 60-80 W are common; an assumption); full = 1: TDP at full activity.
    idle_power_fraction: Annotated[float, Field(ge=0, le=1)] = 0.1
    full_power_fraction: Fraction = 1.0

    @model_validator(mode="after")
    def _power_order(self) -> Economics:
        if self.idle_power_fraction > self.full_power_fraction:
            raise ValueError(
                f"idle_power_fraction ({self.idle_power_fraction}) must not exceed "
                f"full_power_fraction ({self.full_power_fraction})"
            )
        return self


class ServeScenario(_Section):
    seed: Annotated[int, Field(ge=0)] = 0  # NumPy's generators take non-negative seeds
    model: str | dict[str, Any] = "llama3-8b"
    gpu: str = "h100-sxm"
    max_sim_time_s: Positive | None = None  # stop the clock here; unfinished work is counted
    workload: Workload = Workload()
    cluster: Cluster = Cluster()
    compute: Compute = Compute()
    batching: Batching = Batching()
    routing: Routing = Routing()
    network: Network = Network()
    kv_store: KVStoreConfig = KVStoreConfig()
    slo: Slo = Slo()
    metrics: Metrics = Metrics()
    autoscale: Autoscale = Autoscale()
    economics: Economics = Economics()
    # KV traffic on a planned fabric: plan's fabric keys + routing, qps, placement; checked
    # by aifabric.serving.fabric.scenario_fabric (parse_scenario calls it)
    fabric: dict[str, Any] | None = None


def apply_sets(data: dict[str, Any], sets: list[str]) -> dict[str, Any]:
    """Apply ``dotted.key=value`` overrides (values read as YAML) to a nested mapping."""
    import yaml

    from aifabric.yaml_input import load_text

    out: dict[str, Any] = _deep_copy(data)
    for item in sets:
        key, sep, raw = item.partition("=")
        key = key.strip()
        if not sep or not key:
            raise ConfigError(f"--set {item!r}: expected dotted.key=value")
        try:
            value = load_text(raw, f"--set {key}") if raw.strip() else ""
        except ConfigError:  # past the size, depth or alias limits
            raise
        except (yaml.YAMLError, ValueError, OverflowError):  # not YAML: the text itself
            value = raw
        node = out
        parts = key.split(".")
        for i, part in enumerate(parts[:-1]):
            child = node.get(part)
            if child is None:
                child = node[part] = {}
            if not isinstance(child, dict):
                raise ConfigError(f"--set {key}: {'.'.join(parts[: i + 1])} is not a section")
            node = child
        node[parts[-1]] = value
    return out


def _deep_copy(data: Any) -> Any:
    if isinstance(data, dict):
        return {k: _deep_copy(v) for k, v in data.items()}
    if isinstance(data, list):
        return [_deep_copy(v) for v in data]
    return data


def parse_scenario(data: dict[str, Any], base: Path | None = None) -> ServeScenario:
    """Validate a scenario mapping; trace paths resolve against ``base`` (the file's folder).

    Raises:
        ConfigError: one line naming the first offending key.
    """
    try:
        scenario = ServeScenario.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(_first_error(exc)) from None
    from aifabric.serving.autoscale import check_autoscale
    from aifabric.serving.fabric import scenario_fabric

    fabric = scenario_fabric(scenario)
    if fabric is not None:
        scenario = scenario.model_copy(update={"fabric": fabric})
    check_autoscale(scenario)
    trace = scenario.workload.trace
    if trace and base is not None and not Path(trace).is_absolute():
        candidate = base / trace
        if not Path(trace).exists() and candidate.exists():
            workload = scenario.workload.model_copy(update={"trace": str(candidate)})
            scenario = scenario.model_copy(update={"workload": workload})
    return scenario


def _first_error(exc: ValidationError) -> str:
    err = exc.errors()[0]
    loc = ".".join(str(p) for p in err["loc"]) or "scenario"
    if err["type"] == "extra_forbidden":
        return f"unknown scenario key {loc!r}; see aifabric.serving.config for the known keys"
    msg = str(err["msg"]).removeprefix("Value error, ")
    got = err.get("input")
    shown = "" if isinstance(got, dict | list) else f" (got {got!r})"
    return f"scenario key {loc}: {msg}{shown}"


def load_serve_scenario(path: str | Path | None, sets: list[str] | None = None,
                        seed: int | None = None) -> ServeScenario:  # fmt: skip
    """Read a YAML scenario, apply overrides and the seed flag, validate."""
    from aifabric.spec.scenario import load_scenario

    data: dict[str, Any] = load_scenario(path) if path is not None else {}
    data = apply_sets(data, sets or [])
    if seed is not None:
        data["seed"] = seed
    return parse_scenario(data, Path(path).parent if path is not None else None)
