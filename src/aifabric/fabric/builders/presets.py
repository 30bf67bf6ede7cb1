"""Published reference designs, each with its source and the counts the source states.

``PRESETS[name](size)`` returns a FabricSpec and a dict of published figures that the tests
pin against the built topology. Where a source leaves a number out (Meta's CTSW and ATSW
counts), the builder derives it from the stated structure and the preset says so.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from aifabric.errors import ConfigError
from aifabric.fabric.spec import FabricSpec
from aifabric.units import parse_bandwidth


@dataclass(frozen=True, slots=True)
class Preset:
    spec: FabricSpec
    gpu: str
    source: str
    published: dict[str, Any] = field(default_factory=dict)
    notes: str = ""


PresetFn = Callable[[int | None], Preset]
PRESETS: dict[str, PresetFn] = {}


def register(name: str) -> Callable[[PresetFn], PresetFn]:
    def wrap(fn: PresetFn) -> PresetFn:
        PRESETS[name] = fn
        return fn

    return wrap


def get_preset(name: str, size: int | None = None) -> Preset:
    """A preset by name; ``size`` is scalable units (SuperPOD) or pods (HPN, Meta).

    Raises:
        ConfigError: unknown name, or a size below 1.
    """
    if size is not None and (not isinstance(size, int) or size < 1):
        raise ConfigError(f"preset size (scalable units / pods)(={size!r}) must be >= 1")
    try:
        fn = PRESETS[name]
    except KeyError:
        raise ConfigError(f"unknown preset {name!r}; known: {', '.join(sorted(PRESETS))}") from None
    return fn(size)


# NVIDIA DGX SuperPOD H100, RA-11333-001 Table 4 (1-4 SU) and Table 3 (4-64 SU):
# (leaf, spine, core) QM9700 switches of the compute fabric.
SUPERPOD_H100_COUNTS = {
    1: (8, 4, 0), 2: (16, 8, 0), 3: (24, 16, 0), 4: (32, 16, 0), 8: (64, 32, 0),
    16: (128, 128, 64), 32: (256, 256, 128), 64: (512, 512, 256),
}  # fmt: skip


@register("dgx-superpod-h100")
def dgx_superpod_h100(scalable_units: int | None) -> Preset:
    su = 4 if scalable_units is None else scalable_units
    if not 1 <= su <= 64:
        raise ConfigError(f"scalable_units(={su}) must be 1..64 for dgx-superpod-h100")
    spec = FabricSpec(
        name=f"dgx-superpod-h100-{su}su", num_gpus=su * 32 * 8, gpus_per_node=8,
        nics_per_node=8, nic_speed=parse_bandwidth("400G"), switch_radix=64, grouping="rail",
        su_nodes=32, scaleup_domain_size=8, switch_model="quantum-2-qm9700",
        endpoint_links_per_module=2,  # DGX H100: 8 ConnectX-7 behind 4 twin-port OSFP cages
    )  # fmt: skip
    published: dict[str, Any] = {"gpus": su * 256}
    if su in SUPERPOD_H100_COUNTS:
        leaf, spine, core = SUPERPOD_H100_COUNTS[su]
        published |= {"leaf": leaf, "spine": spine, "core": core}
    return Preset(
        spec, "h100-sxm",
        "NVIDIA DGX SuperPOD Reference Architecture, DGX H100 (RA-11333-001 V11, 2023), "
        "Tables 3 and 4: 32 DGX H100 per SU, 8 x ConnectX-7 NDR 400G, QM9700, rail-optimised "
        "full fat tree",
        published,
        "Table 4 removes one DGX per 4 SUs for UFM (127 nodes); switch counts are the same. "
        "4 SU also has 16 storage-fabric QM9700 and 8 in-band SN4600C (Table 7), not built here.",
    )  # fmt: skip


@register("meta-llama3-24k")
def meta_llama3_24k(pods: int | None) -> Preset:
    count = 8 if pods is None else pods
    spec = FabricSpec(
        name=f"meta-llama3-{count * 3}k", num_gpus=count * 3072, gpus_per_node=8,
        nics_per_node=8, nic_speed=parse_bandwidth("400G"), switch_radix=64, grouping="tor",
        su_nodes=2, leaf_down_ports=16, leaf_up_ports=16, spine_radix=256,
        spine_oversubscription=7.0, core_radix=256, leaves_per_pod=192,
        tiers=3 if count > 1 else 2, scaleup_domain_size=8,
        reach=("copper", "singlemode", "singlemode"), switch_model="minipack2",
        spine_switch_model="arista-7808r3",  # Llama 3 sec. 3.3.1: Minipack2 ToR, Arista 7800
    )  # fmt: skip
    return Preset(
        spec, "h100-sxm",
        "Llama 3 Herd of Models (arXiv:2407.21783) sec. 3.3.1: 16 GPUs (2 servers) per rack on "
        "one Minipack2 ToR, 192 racks per 3,072-GPU pod at full bisection, 8 pods joined by "
        "aggregation switches at 1:7; Meta 'Building Meta's GenAI Infrastructure' (2024): "
        "24,576 GPUs, 400 Gb/s endpoints; Gangidi et al., SIGCOMM 2024 (RTSW/CTSW/ATSW)",
        {"gpus": count * 3072, "nodes": count * 384, "leaf": count * 192, "pods": count,
         "gpus_per_pod": 3072, "spine_oversubscription": 7.0},
        "CTSW and ATSW counts are not published: they are derived from 16 x 400G uplinks per "
        "RTSW (full bisection in a pod) and an assumed 256-port spine/aggregation radix.",
    )  # fmt: skip


@register("alibaba-hpn")
def alibaba_hpn(pods: int | None) -> Preset:
    count = 1 if pods is None else pods
    spec = FabricSpec(
        name=f"alibaba-hpn-{count}pod", num_gpus=count * 15360, gpus_per_node=8,
        nics_per_node=8, planes=2, nic_speed=parse_bandwidth("400G"), switch_radix=188,
        leaf_down_ports=128, leaf_up_ports=60, port_speed=parse_bandwidth("400G"),
        spine_radix=128, spine_oversubscription=15.0, grouping="rail", su_nodes=128,
        scaleup_domain_size=8, switch_model="tomahawk-5",
    )  # fmt: skip
    return Preset(
        spec, "h100-sxm",
        "Qian et al., Alibaba HPN, SIGCOMM 2024: 8 GPUs and 8 x 2x200G backend NICs per host, "
        "dual-ToR dual-plane, 51.2T ToR with 128 x 200G down and 60 x 400G up (1.067:1), 16 "
        "ToRs per 1,024-GPU segment, 15,360 GPUs per pod, 60 aggregation switches per plane, "
        "15:1 aggregation-core",
        {"gpus": count * 15360, "leaf": count * 240, "spine": count * 120,
         "segments": count * 15},
        "The 8 backup ToR ports and hosts of each segment are not built; core switches "
        "(counts not published) appear only with pods > 1.",
    )  # fmt: skip
