"""The shipped catalog: models, GPUs, NICs and switches, read from YAML data files.

The data live in ``catalog/data/*.yaml`` (with a source per entry); this module turns them
into spec objects. Files are read once per process, on first use.
"""

from __future__ import annotations

from functools import cache
from importlib import resources
from typing import Any

from aifabric.errors import ConfigError
from aifabric.spec.gpu import GpuSpec, NicSpec, SwitchSpec
from aifabric.spec.model import ModelSpec
from aifabric.units import parse_bandwidth, parse_bytes, parse_duration


def _load_yaml(name: str) -> dict[str, Any]:
    from aifabric.yaml_input import load_text

    text = resources.files("aifabric.catalog").joinpath("data", name).read_text("utf-8")
    data = load_text(text, f"catalog file {name}")
    if not isinstance(data, dict):
        raise ConfigError(f"catalog file {name} is not a mapping")
    return data


def _model_from(name: str, raw: dict[str, Any]) -> ModelSpec:
    raw = dict(raw)
    for key in ("published_params", "published_active_params"):
        # YAML 1.1 reads "8.03e9" (no dot, unsigned exponent) as text.
        if isinstance(raw.get(key), str):
            raw[key] = float(raw[key])
    try:
        return ModelSpec(name=name, **raw)
    except TypeError as exc:
        raise ConfigError(f"model {name}: {exc}") from None


def model_from_mapping(name: str, raw: dict[str, Any]) -> ModelSpec:
    """Build a ModelSpec from a mapping (catalog entry or a scenario's inline model)."""
    return _model_from(name, dict(raw))


@cache
def models() -> dict[str, ModelSpec]:
    """All catalog models by name."""
    return {name: _model_from(name, raw) for name, raw in _load_yaml("models.yaml").items()}


def _gpu_from(name: str, raw: dict[str, Any]) -> GpuSpec:
    fp8 = raw.get("peak_fp8_flops")
    return GpuSpec(
        name=name,
        peak_bf16_flops=float(raw["peak_bf16_flops"]),
        peak_fp8_flops=None if fp8 is None else float(fp8),
        hbm_bytes=parse_bytes(raw["hbm"], what=f"gpu {name} hbm"),
        hbm_bandwidth=parse_bandwidth(raw["hbm_bandwidth"], what=f"gpu {name} hbm_bandwidth"),
        scaleup=str(raw["scaleup"]),
        scaleup_bandwidth=parse_bandwidth(raw["scaleup_bandwidth"], what=f"gpu {name} scaleup"),
        scaleup_domain_size=int(raw["scaleup_domain_size"]),
        tdp=float(raw["tdp"]),
        default_nic_speed=parse_bandwidth(raw["default_nic_speed"], what=f"gpu {name} nic"),
        scaleup_switches_per_domain=int(raw.get("scaleup_switches_per_domain", 0)),
        source=str(raw.get("source", "")),
    )


@cache
def gpus() -> dict[str, GpuSpec]:
    """All catalog GPUs by name."""
    return {name: _gpu_from(name, raw) for name, raw in _load_yaml("gpus.yaml").items()}


@cache
def nics() -> dict[str, NicSpec]:
    """All catalog NICs by name."""
    raw = _load_yaml("network.yaml")["nics"]
    return {
        name: NicSpec(
            name=name,
            speed=parse_bandwidth(v["speed"]),
            ports=int(v.get("ports", 1)),
            source=str(v.get("source", "")),
        )
        for name, v in raw.items()
    }


@cache
def switches() -> dict[str, SwitchSpec]:
    """All catalog switches by name."""
    raw = _load_yaml("network.yaml")["switches"]
    out: dict[str, SwitchSpec] = {}
    for name, v in raw.items():
        capacity = parse_bandwidth(v["capacity"])
        modes = tuple(sorted(((parse_bandwidth(speed), int(count))
                              for speed, count in v.get("port_modes", {}).items()),
                             reverse=True))  # fmt: skip
        for speed, count in modes:
            if count * speed > capacity * (1 + 1e-9):
                raise ConfigError(
                    f"switch {name}: {count} ports x {speed * 8 / 1e9:g} Gb/s exceed its "
                    f"capacity {capacity * 8 / 1e12:g} Tb/s"
                )
        out[name] = SwitchSpec(
            name=name,
            ports=int(v["ports"]),
            port_speed=parse_bandwidth(v["port_speed"]),
            capacity=capacity,
            latency=parse_duration(v["latency"]) if "latency" in v else None,
            buffer_bytes=parse_bytes(v["buffer"]) if "buffer" in v else None,
            source=str(v.get("source", "")),
            port_modes=modes,
            cages=int(v["cages"]) if "cages" in v else None,
        )
    return out


def _lookup(kind: str, table: dict[str, Any], name: str) -> Any:
    try:
        return table[name]
    except KeyError:
        known = ", ".join(sorted(table))
        raise ConfigError(f"unknown {kind} {name!r}; known: {known}") from None


def get_model(name: str) -> ModelSpec:
    """A catalog model by name. Raises ConfigError listing the known names."""
    return _lookup("model", models(), name)  # type: ignore[no-any-return]


def get_gpu(name: str) -> GpuSpec:
    """A catalog GPU by name. Raises ConfigError listing the known names."""
    return _lookup("gpu", gpus(), name)  # type: ignore[no-any-return]


def get_switch(name: str) -> SwitchSpec:
    """A catalog switch by name. Raises ConfigError listing the known names."""
    return _lookup("switch", switches(), name)  # type: ignore[no-any-return]


@cache
def compute_calibrations() -> dict[str, Any]:
    """Kernel-model calibrations by GPU name (``compute.yaml``), ``default`` included."""
    from aifabric.training.kernels import ComputeCalibration

    out: dict[str, Any] = {}
    for name, raw in _load_yaml("compute.yaml").items():
        raw = dict(raw)
        tiles = tuple((int(r), int(c), float(e)) for r, c, e in raw.pop("gemm_tiles"))
        try:
            out[name] = ComputeCalibration(name=name, gemm_tiles=tiles, **raw)
        except TypeError as exc:
            raise ConfigError(f"compute calibration {name}: {exc}") from None
    return out


def get_compute_calibration(gpu_name: str) -> Any:
    """The GPU's calibration, or ``default`` (whose ``name`` then says so)."""
    from dataclasses import replace

    table = compute_calibrations()
    if gpu_name in table:
        return table[gpu_name]
    return replace(table["default"], name=f"default (no calibration for {gpu_name})")


SERVING_PROFILE_FILES = ("splitwise_sim.yaml", "alcf_inference_bench.yaml")


@cache
def serving_profiles() -> dict[tuple[str, str, int, str], Any]:
    """Measured serving iteration tables (``data/serving_profiles/``) by (model, gpu, tp,
    weight dtype class): aifabric.serving.profile.ServingProfile values."""
    from aifabric.serving.profile import ServingProfile

    out: dict[tuple[str, str, int, str], Any] = {}
    for name in SERVING_PROFILE_FILES:
        data = _load_yaml(f"serving_profiles/{name}")
        for raw in data["profiles"]:
            decode = [(float(b), float(s)) for b, _c, s in raw["decode"]]
            contexts = {float(c) for _b, c, _s in raw["decode"]}
            if len(contexts) != 1:
                raise ConfigError(f"serving profile file {name}: one decode context per table")
            profile = ServingProfile(
                source=str(data["source"]), model=str(raw["model"]), gpu=str(raw["gpu"]),
                tp=int(raw["tp"]), weight_dtype=str(raw["weight_dtype"]),
                prefill=tuple((float(n), float(s)) for n, s in raw["prefill"]),
                decode=tuple(decode), decode_context=contexts.pop(),
                decode_context_points=tuple(
                    (float(c), float(s)) for c, s in raw.get("decode_context", ())
                ),
                decode_points=tuple(
                    (float(b), float(c), float(s)) for b, c, s in raw.get("decode_grid", ())
                ),
            )  # fmt: skip
            out[profile.key] = profile
    return out


def serving_profile_siblings() -> dict[str, str]:
    """Model -> the sibling whose measured serving tables it borrows (siblings.yaml)."""
    raw = _load_yaml("serving_profiles/siblings.yaml") or {}
    return {str(k): str(v["profile_of"]) for k, v in raw.items()}


def find_serving_profile(model: str, gpu: str, tp: int, weight_dtype: str) -> Any:
    """The measured table for a deployment, else its sibling's (``siblings.yaml``), or None
    (fp16 and bf16 share a table)."""
    from aifabric.serving.profile import dtype_class

    tables = serving_profiles()
    found = tables.get((model, gpu, tp, dtype_class(weight_dtype)))
    sibling = serving_profile_siblings().get(model)
    if found is None and sibling is not None:
        found = tables.get((sibling, gpu, tp, dtype_class(weight_dtype)))
    return found
