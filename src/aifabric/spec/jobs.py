"""Jobs: a training run or a serving deployment, as the traffic models consume them."""

from __future__ import annotations

from dataclasses import dataclass

from aifabric.errors import ConfigError
from aifabric.spec.gpu import GpuSpec
from aifabric.spec.model import ModelSpec, dtype_bytes
from aifabric.spec.parallel import ParallelPlan

ACCOUNTINGS = ("algorithmic", "seed")
RECOMPUTE_CHOICES = ("none", "selective", "full")
MAX_SEQ_LEN = 100_000_000  # tokens; the trace readers use the same sanity bound


def check_accounting(accounting: str) -> None:
    if accounting not in ACCOUNTINGS:
        raise ConfigError(f"accounting(={accounting!r}) must be one of {', '.join(ACCOUNTINGS)}")


@dataclass(frozen=True, slots=True, kw_only=True)
class TrainingJob:
    """One training run.

    samples: sequences per epoch; when None, dataset_tokens / seq_len (packed sequences).
    The seeds' formulas take dataset_tokens (T) and the mini-batch count independently, as
    their C4 example does (156e9 tokens, 364.6e6 samples).
    drop_last: iterations per epoch = floor(samples / global_batch) (else ceil).
    token_bytes: bytes per stored token id (None: 2 if the vocabulary fits 16 bits, else 4).
    checkpoint_bytes_per_param: 14 for BF16 weights + FP32 master copy + Adam m and v.
    mfu: model FLOPs utilization used to estimate the compute time of an iteration (model
    FLOPs exclude recomputation, so recompute lowers MFU rather than adding FLOPs here).
    recompute: activation recomputation as Megatron-Core names it (--recompute-granularity):
    "selective" recomputes core attention only, which has no collective; "full" reruns each
    layer's forward inside the backward, repeating its forward TP / CP / EP collectives.
    algorithm: collective algorithm, "auto" = what NCCL's tuning model picks (traffic.rows);
    in_network_reduction: auto may use NVLS (NVLink SHARP) and SHARP switches for all-reduce.
    """

    model: ModelSpec
    plan: ParallelPlan
    gpu: GpuSpec
    seq_len: int = 4096
    global_batch: int = 1024
    dataset_tokens: float = 1e12
    samples: float | None = None
    drop_last: bool = True
    accounting: str = "algorithmic"
    algorithm: str = "auto"
    in_network_reduction: bool = False
    scaleup_domain_size: int | None = None
    token_bytes: float | None = None
    dataset_bytes: float | None = None
    checkpoint_bytes_per_param: float = 14.0
    checkpoint_stall: float = 60.0  # s
    mfu: float = 0.4
    compute_dtype: str = "bf16"
    recompute: str = "none"

    def __post_init__(self) -> None:
        check_accounting(self.accounting)
        if self.recompute not in RECOMPUTE_CHOICES:
            raise ConfigError(
                f"recompute(={self.recompute!r}) must be one of {', '.join(RECOMPUTE_CHOICES)}"
            )
        if not 1 <= self.seq_len <= MAX_SEQ_LEN:
            raise ConfigError(
                f"seq_len(={self.seq_len}) must be in [1, {MAX_SEQ_LEN:,}] tokens (10 x the "
                "longest published context window)"
            )
        if self.dataset_tokens <= 0:
            raise ConfigError(f"dataset_tokens(={self.dataset_tokens}) must be > 0")
        if self.samples is not None and self.samples <= 0:
            raise ConfigError(f"samples(={self.samples}) must be > 0")
        if not 0 < self.mfu <= 1:
            raise ConfigError(f"mfu(={self.mfu}) must be in (0, 1]")
        if self.checkpoint_stall <= 0:
            raise ConfigError(f"checkpoint_stall(={self.checkpoint_stall}) must be > 0 s")
        if self.scaleup_domain_size is not None and self.scaleup_domain_size < 1:
            raise ConfigError("scaleup_domain_size must be >= 1")
        self.plan.validate_for(self.model, seq_len=self.seq_len)
        self.plan.num_microbatches(self.global_batch)
        dtype_bytes(self.compute_dtype)

    @property
    def domain_size(self) -> int:
        return self.scaleup_domain_size or self.gpu.scaleup_domain_size

    @property
    def num_samples(self) -> float:
        return self.samples if self.samples is not None else self.dataset_tokens / self.seq_len

    @property
    def iterations_per_epoch(self) -> int:
        import math

        ratio = self.num_samples / self.global_batch
        return max(1, math.floor(ratio) if self.drop_last else math.ceil(ratio))

    @property
    def bytes_per_token_id(self) -> float:
        if self.token_bytes is not None:
            return self.token_bytes
        return 2.0 if self.model.vocab_size <= 2**16 else 4.0


@dataclass(frozen=True, slots=True, kw_only=True)
class InferenceJob:
    """A serving deployment under a steady load of concurrent users.

    users: concurrent requests U; prompt_tokens S_in and output_tokens S_out per request;
    tp and ep per model instance; pd: prefill/decode disaggregation (KV shipped once per
    request); tokens_per_s: per-user decode speed target; parallel_efficiency: the share of
    each token's time spent computing (the seed's 90 %), the rest is the communication
    budget; kv_deadline: time allowed to ship one request's KV (seed: ~10 ms).
    algorithm / in_network_reduction: as for TrainingJob (the TP all-reduce's algorithm).
    """

    model: ModelSpec
    gpu: GpuSpec
    tp: int = 1
    ep: int = 1
    users: int = 1
    prompt_tokens: int = 1024
    output_tokens: int = 256
    kv_dtype: str = "bf16"
    activation_dtype: str = "bf16"
    pd: bool = True
    tokens_per_s: float = 100.0
    parallel_efficiency: float = 0.9
    kv_deadline: float = 0.010
    nic_speed: float | None = None  # bytes/s per GPU NIC; None: the GPU's default
    accounting: str = "algorithmic"
    algorithm: str = "auto"
    in_network_reduction: bool = False
    scaleup_domain_size: int | None = None

    def __post_init__(self) -> None:
        check_accounting(self.accounting)
        for name in ("tp", "ep", "users"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                raise ConfigError(f"{name}(={value!r}) must be an integer >= 1")
        if self.prompt_tokens < 1 or self.output_tokens < 0:
            raise ConfigError("prompt_tokens must be >= 1 and output_tokens >= 0")
        if self.tokens_per_s <= 0:
            raise ConfigError(f"tokens_per_s(={self.tokens_per_s}) must be > 0")
        if not 0 < self.parallel_efficiency < 1:
            raise ConfigError(f"parallel_efficiency(={self.parallel_efficiency}) must be in (0, 1)")
        if self.kv_deadline <= 0:
            raise ConfigError(f"kv_deadline(={self.kv_deadline}) must be > 0 s")
        dtype_bytes(self.kv_dtype)
        dtype_bytes(self.activation_dtype)
        ParallelPlan(tp=self.tp, dp=self.ep, ep=self.ep).validate_for(self.model)

    @property
    def domain_size(self) -> int:
        return self.scaleup_domain_size or self.gpu.scaleup_domain_size
