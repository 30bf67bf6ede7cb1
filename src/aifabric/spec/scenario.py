"""Scenario files and flag merging: YAML (or flags) -> validated job specs.

A scenario is a YAML mapping whose keys are the CLI flags' names with underscores
(``seq_len``, ``global_batch``, ...). Flags given on the command line override the file.
Unknown keys and wrong types are ConfigErrors naming the key. Quantities accept units:
``dataset_tokens: 156B``, ``kv_deadline: 10ms``, ``nic_speed: 400G``, ``checkpoint_stall: 2min``.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

from aifabric.errors import ConfigError
from aifabric.spec.jobs import InferenceJob, TrainingJob
from aifabric.spec.model import ModelSpec
from aifabric.spec.parallel import ParallelPlan
from aifabric.units import parse_bandwidth, parse_bytes, parse_count, parse_duration


def load_scenario(path: str | Path) -> dict[str, Any]:
    """Read a YAML scenario file into a mapping.

    Raises:
        ConfigError: missing, binary or non-UTF-8 file, YAML syntax error, a document
            past the size, depth or alias limits of aifabric.yaml_input, or not a mapping.
    """
    from aifabric.yaml_input import load_file

    p = Path(path)
    data = load_file(p, f"scenario {str(p)!r}")
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"scenario {str(p)!r} must be a mapping of keys to values")
    return data


MAX_INTEGER = 10**15  # above any count a plan or scenario means (GPUs, tokens, batch)


def _int(key: str) -> Callable[[Any], int]:
    def convert(value: Any) -> int:
        number = _any_int(value)
        if abs(number) > MAX_INTEGER:
            raise ConfigError(
                f"{key}: {_short(number)} is too large; give at most {MAX_INTEGER:.0e}"
            )
        return number

    def _any_int(value: Any) -> int:
        if isinstance(value, bool):
            raise ConfigError(f"{key}: expected an integer, got {value!r}")
        if isinstance(value, int):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
        if isinstance(value, str):
            number = parse_count(value, what=key)
            if number.is_integer():
                return int(number)
        raise ConfigError(f"{key}: expected an integer, got {value!r}")

    return convert


def _short(number: int) -> str:
    """A huge integer for a message: its digit count, not its digits."""
    digits = len(str(abs(number))) if abs(number) < 10**4000 else 4000
    return f"an integer of {digits:,} digits" if digits > 18 else str(number)


def _int_list(key: str) -> Callable[[Any], tuple[int, ...]]:
    """A list of integers, from YAML or a comma-separated flag ("4,4,3")."""

    def convert(value: Any) -> tuple[int, ...]:
        items = value.split(",") if isinstance(value, str) else value
        if not isinstance(items, list | tuple) or not items:
            raise ConfigError(f"{key}: expected a list of integers, got {value!r}")
        one = _int(key)
        return tuple(one(v.strip() if isinstance(v, str) else v) for v in items)

    return convert


def _float(key: str, *, minimum: float | None = None,
           strict: bool = False) -> Callable[[Any], float]:  # fmt: skip
    """A finite number ("nan", "inf" and "1e400" refused), optionally bounded below
    (``strict``: above) at the edge for keys whose job object does not check them."""

    def convert(value: Any) -> float:
        if isinstance(value, bool) or not isinstance(value, int | float | str):
            raise ConfigError(f"{key}: expected a number, got {value!r}")
        try:
            number = float(value)
        except (ValueError, OverflowError):
            raise ConfigError(f"{key}: expected a number, got {value!r}") from None
        if not math.isfinite(number):
            raise ConfigError(f"{key}: {value!r} is not a finite number; give a finite value")
        if minimum is not None and (number <= minimum if strict else number < minimum):
            rule = f"> {minimum:g}" if strict else f">= {minimum:g}"
            raise ConfigError(f"{key}(={value!r}) must be {rule}")
        return number

    return convert


def _bool(key: str) -> Callable[[Any], bool]:
    def convert(value: Any) -> bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "false", "yes", "no"):
            return value.lower() in ("true", "yes")
        raise ConfigError(f"{key}: expected true or false, got {value!r}")

    return convert


def _str(key: str) -> Callable[[Any], str]:
    def convert(value: Any) -> str:
        if not isinstance(value, str):
            raise ConfigError(f"{key}: expected a string, got {value!r}")
        return value

    return convert


def _dtype(key: str) -> Callable[[Any], str]:
    """A numeric format name, lower-cased ("BF16" -> "bf16")."""
    as_str = _str(key)
    return lambda value: as_str(value).lower()


def _quantity(parse: Callable[..., float], key: str,
              positive: bool = False) -> Callable[[Any], float]:  # fmt: skip
    """A unit-bearing quantity (finite and >= 0 by the parser); ``positive``: also > 0."""

    def convert(value: Any) -> float:
        number = parse(value, what=key)
        if positive and number <= 0:
            raise ConfigError(f"{key}(={value!r}) must be > 0")
        return number

    return convert


def _model(value: Any) -> ModelSpec:
    from aifabric.catalog import get_model, model_from_mapping

    if isinstance(value, ModelSpec):
        return value
    if isinstance(value, str):
        return get_model(value)
    if isinstance(value, dict):
        raw = dict(value)
        name = raw.pop("name", "custom")
        return model_from_mapping(str(name), raw)
    raise ConfigError(f"model: expected a catalog name or a mapping of fields, got {value!r}")


def _gpu(value: Any) -> Any:
    from aifabric.catalog import get_gpu

    if not isinstance(value, str):
        raise ConfigError(f"gpu: expected a catalog name, got {value!r}")
    return get_gpu(value)


_PLAN_KEYS = {
    "tp": _int("tp"), "pp": _int("pp"), "dp": _int("dp"), "cp": _int("cp"), "ep": _int("ep"),
    "zero": _int("zero"), "sequence_parallel": _bool("sequence_parallel"),
    "micro_batch": _int("micro_batch"), "grad_dtype": _dtype("grad_dtype"),
    "virtual_stages": _int("virtual_stages"), "pipeline_layers": _int_list("pipeline_layers"),
    "param_dtype": _dtype("param_dtype"), "activation_dtype": _dtype("activation_dtype"),
    "expert_tp": _int("expert_tp"),
}  # fmt: skip
TRAIN_KEYS: dict[str, Callable[[Any], Any]] = {
    **_PLAN_KEYS,
    "model": _model, "gpu": _gpu, "gpus": _int("gpus"), "fsdp": _bool("fsdp"),
    "seq_len": _int("seq_len"), "global_batch": _int("global_batch"),
    "dataset_tokens": _quantity(parse_count, "dataset_tokens"),
    "samples": _quantity(parse_count, "samples"), "drop_last": _bool("drop_last"),
    "accounting": _str("accounting"), "algorithm": _str("algorithm"),
    "in_network_reduction": _bool("in_network_reduction"),
    "scaleup_domain_size": _int("scaleup_domain_size"),
    "token_bytes": _float("token_bytes", minimum=0, strict=True),
    "dataset_bytes": _quantity(parse_bytes, "dataset_bytes"),
    "checkpoint_bytes_per_param": _float("checkpoint_bytes_per_param", minimum=0),
    "checkpoint_stall": _quantity(parse_duration, "checkpoint_stall"),
    "mfu": _float("mfu"), "compute_dtype": _str("compute_dtype"),
    "recompute": _str("recompute"),
}  # fmt: skip
INFER_KEYS: dict[str, Callable[[Any], Any]] = {
    "model": _model, "gpu": _gpu, "tp": _int("tp"), "ep": _int("ep"), "users": _int("users"),
    "prompt_tokens": _int("prompt_tokens"), "output_tokens": _int("output_tokens"),
    "kv_dtype": _str("kv_dtype"), "activation_dtype": _str("activation_dtype"),
    "pd": _bool("pd"), "tokens_per_s": _float("tokens_per_s"),
    "parallel_efficiency": _float("parallel_efficiency"),
    "kv_deadline": _quantity(parse_duration, "kv_deadline"),
    "nic_speed": _quantity(parse_bandwidth, "nic_speed", positive=True), "accounting": _str("accounting"),
    "algorithm": _str("algorithm"), "scaleup_domain_size": _int("scaleup_domain_size"),
    "in_network_reduction": _bool("in_network_reduction"),
}  # fmt: skip


def merge_options(
    keys: dict[str, Callable[[Any], Any]], scenario: dict[str, Any], flags: dict[str, Any]
) -> dict[str, Any]:
    """Scenario values overridden by the flags that were given (not None), all converted.

    Raises:
        ConfigError: a key that is not known, or a value of the wrong type.
    """
    merged: dict[str, Any] = {}
    for key, value in scenario.items():
        if key not in keys:
            known = ", ".join(sorted(keys))
            raise ConfigError(f"unknown scenario key {key!r}; known keys: {known}")
        merged[key] = value
    merged.update({k: v for k, v in flags.items() if v is not None})
    return {key: keys[key](value) for key, value in merged.items() if value is not None}


def training_job(options: dict[str, Any]) -> TrainingJob:
    """A TrainingJob from merged options (model required; gpu defaults to h100-sxm)."""
    opts = dict(options)
    if "model" not in opts:
        raise ConfigError("model is required: give --model NAME or 'model:' in the scenario")
    gpu = opts.pop("gpu", None) or _gpu("h100-sxm")
    zero = opts.pop("zero", 0)
    if opts.pop("fsdp", False):
        zero = 3
    plan = ParallelPlan(
        tp=opts.pop("tp", 1), pp=opts.pop("pp", 1), dp=opts.pop("dp", 1), cp=opts.pop("cp", 1),
        ep=opts.pop("ep", 1), zero=zero, sequence_parallel=opts.pop("sequence_parallel", False),
        micro_batch_size=opts.pop("micro_batch", 1), grad_dtype=opts.pop("grad_dtype", "fp32"),
        virtual_stages=opts.pop("virtual_stages", 1), pipeline_layers=opts.pop("pipeline_layers", None),
        param_dtype=opts.pop("param_dtype", "bf16"),
        activation_dtype=opts.pop("activation_dtype", "bf16"),
        expert_tp=opts.pop("expert_tp", None),
    )  # fmt: skip
    gpus = opts.pop("gpus", None)
    if gpus is not None and gpus != plan.world_size:
        raise ConfigError(
            f"gpus(={gpus}) must equal tp*cp*dp*pp(={plan.world_size}); adjust --dp or --gpus"
        )
    return TrainingJob(model=opts.pop("model"), plan=plan, gpu=gpu, **opts)


def inference_job(options: dict[str, Any]) -> InferenceJob:
    """An InferenceJob from merged options (model required; gpu defaults to h100-sxm)."""
    opts = dict(options)
    if "model" not in opts:
        raise ConfigError("model is required: give --model NAME or 'model:' in the scenario")
    gpu = opts.pop("gpu", None) or _gpu("h100-sxm")
    return InferenceJob(model=opts.pop("model"), gpu=gpu, **opts)


PLAN_KEYS: dict[str, Callable[[Any], Any]] = {
    "preset": _str("preset"), "scalable_units": _int("scalable_units"), "pods": _int("pods"),
    "gpus": _int("gpus"), "gpu": _str("gpu"), "gpus_per_node": _int("gpus_per_node"),
    "nic": _str("nic"), "nics_per_node": _int("nics_per_node"), "switch": _str("switch"),
    "switch_radix": _int("switch_radix"), "design": _str("design"), "tiers": _int("tiers"),
    "oversubscription": _float("oversubscription"),
    "spine_oversubscription": _float("spine_oversubscription"), "planes": _int("planes"),
    "su_nodes": _int("su_nodes"), "placement": _str("placement"),
    "frontend_nic": _str("frontend_nic"),
}  # fmt: skip
JOB_KEYS = {k: v for k, v in TRAIN_KEYS.items() if k not in ("gpu", "gpus")}


def split_plan_options(
    scenario: dict[str, Any], flags: dict[str, Any]
) -> tuple[dict[str, Any], dict[str, Any] | None]:
    """(fabric options, training-job options or None) from a flat scenario and flags.

    Raises:
        ConfigError: a key that is neither a fabric nor a job key.
    """
    both = {**PLAN_KEYS, **JOB_KEYS}
    merged = merge_options(both, scenario, flags)
    fabric = {k: v for k, v in merged.items() if k in PLAN_KEYS}
    job = {k: v for k, v in merged.items() if k in JOB_KEYS and k not in PLAN_KEYS}
    if not job:
        return fabric, None
    if "model" not in job:
        raise ConfigError(f"job keys {sorted(job)} need a model: add --model NAME")
    return fabric, job
