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
    """A preset by name; ``size`` is scalable units (SuperPODs) or pods (HPN, Meta).

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
# Table 4 ("Compute fabric component count"), footnote 1: "This is a 32 node per SU design,
# however a DGX system must be removed to accommodate for UFM connectivity." One DGX per
# SuperPOD, not per SU (31, 63, 95, 127 nodes), and the "Compute and UFM" cables are the
# 8 x nodes GPU links plus 4 UFM links (252, 508, 764, 1020); the "Spine-Leaf" cables are
# those of full SUs (256 per SU): the fabric is built for 32 nodes per SU (RA "Network
# Fabrics": design the full SU's leaves and leaf-spine cables, leave the unused ports).
SUPERPOD_H100_TABLE4 = {1: (31, 248, 252, 256), 2: (63, 504, 508, 512),
                        3: (95, 760, 764, 768), 4: (127, 1016, 1020, 1024)}  # fmt: skip
SUPERPOD_REMOVED_NODES = 1
SUPERPOD_UFM_PORTS = 4


@register("dgx-superpod-h100")
def dgx_superpod_h100(scalable_units: int | None) -> Preset:
    su = 4 if scalable_units is None else scalable_units
    if not 1 <= su <= 64:
        raise ConfigError(f"scalable_units(={su}) must be 1..64 for dgx-superpod-h100")
    nodes = su * 32 - SUPERPOD_REMOVED_NODES
    spec = FabricSpec(
        name=f"dgx-superpod-h100-{su}su", num_gpus=nodes * 8, gpus_per_node=8,
        nics_per_node=8, nic_speed=parse_bandwidth("400G"), switch_radix=64, grouping="rail",
        su_nodes=32, scaleup_domain_size=8, switch_model="quantum-2-qm9700",
        management_ports=SUPERPOD_UFM_PORTS,
        endpoint_links_per_module=2,  # DGX H100: 8 ConnectX-7 behind 4 twin-port OSFP cages
    )  # fmt: skip
    published: dict[str, Any] = {}
    if su in SUPERPOD_H100_COUNTS:
        leaf, spine, core = SUPERPOD_H100_COUNTS[su]
        published |= {"leaf": leaf, "spine": spine, "core": core}
    if su in SUPERPOD_H100_TABLE4:
        n, gpus, compute_ufm, spine_leaf = SUPERPOD_H100_TABLE4[su]
        published |= {"nodes": n, "gpus": gpus,
                      "cables": {"endpoint_leaf": compute_ufm, "leaf_spine": spine_leaf}}  # fmt: skip
    return Preset(
        spec, "h100-sxm",
        "NVIDIA DGX SuperPOD Reference Architecture, DGX H100 (RA-11333-001 V11, 2023), "
        "Tables 3 and 4: 32 DGX H100 per SU, 8 x ConnectX-7 NDR 400G, QM9700, rail-optimized "
        "full fat tree; one DGX removed for UFM connectivity (Table 4 footnote 1)",
        published,
        f"{nodes} DGX H100 = 32 x {su} SU - {SUPERPOD_REMOVED_NODES} removed for UFM; the "
        f"full SUs' leaves and leaf-spine cables are built, and {SUPERPOD_UFM_PORTS} UFM "
        "appliance ports take free ports of the last SU's leaves (Table 4's 'Compute and "
        "UFM' cables). 4 SU also has 16 storage-fabric QM9700 and 8 in-band SN4600C "
        "(Table 7), not built here.",
    )  # fmt: skip


# NVIDIA DGX SuperPOD GB200 RA (docs.nvidia.com/dgx-superpod/reference-architecture-
# scalable-infrastructure-gb200): an SU is 8 DGX GB200 racks; each rack 18 compute trays
# of 2 Grace + 4 Blackwell GPUs and 9 NVLink switch trays of 2 NVLink switch chips, one
# NVL5 link from every GPU to each of the 18 chips (1.8 TB/s): a 72-GPU NVLink domain.
# DGX GB200 user guide ("Hardware"): 4 x ConnectX-7 single-port 400G OSFP per tray for the
# compute (east-west) InfiniBand fabric. The RA scales "up to and beyond 128 racks with
# 9216 GPUs" (16 SU).
GB200_TRAYS_PER_RACK = 18
GB200_GPUS_PER_TRAY = 4
GB200_RACKS_PER_SU = 8
GB200_NVLINK_SWITCH_TRAYS = 9
GB200_NVLINK_CHIPS_PER_TRAY = 2


@register("dgx-superpod-gb200")
def dgx_superpod_gb200(scalable_units: int | None) -> Preset:
    su = 1 if scalable_units is None else scalable_units
    if not 1 <= su <= 16:
        raise ConfigError(f"scalable_units(={su}) must be 1..16 for dgx-superpod-gb200")
    racks = su * GB200_RACKS_PER_SU
    trays = racks * GB200_TRAYS_PER_RACK
    domain = GB200_TRAYS_PER_RACK * GB200_GPUS_PER_TRAY
    spec = FabricSpec(
        name=f"dgx-superpod-gb200-{su}su", num_gpus=trays * GB200_GPUS_PER_TRAY,
        gpus_per_node=GB200_GPUS_PER_TRAY, nics_per_node=GB200_GPUS_PER_TRAY,
        nic_speed=parse_bandwidth("400G"), switch_radix=64, grouping="rail", rail_by="slot",
        su_nodes=GB200_RACKS_PER_SU * GB200_TRAYS_PER_RACK, leaves_per_pod=GB200_TRAYS_PER_RACK,
        scaleup_domain_size=domain, switch_model="quantum-2-qm9700",
    )  # fmt: skip
    published = {
        "gpus": trays * GB200_GPUS_PER_TRAY, "racks": racks, "nodes": trays,
        "gpus_per_node": GB200_GPUS_PER_TRAY, "scale_up_domain_size": domain,
        "nics": trays * GB200_GPUS_PER_TRAY,
        "nvlink_switch_trays": racks * GB200_NVLINK_SWITCH_TRAYS,
        "nvlink_switch_chips": racks * GB200_NVLINK_SWITCH_TRAYS * GB200_NVLINK_CHIPS_PER_TRAY,
    }  # fmt: skip
    return Preset(
        spec, "gb200-nvl72",
        "NVIDIA DGX SuperPOD Reference Architecture, DGX GB200 (docs.nvidia.com, 2025): SU = 8 "
        "DGX GB200 NVL72 racks (576 GPUs), NDR 400 Gb/s InfiniBand compute fabric; each rack 18 "
        "compute trays (4 GPUs) and 9 NVLink switch trays (2 chips); DGX GB200 user guide: 4 x "
        "ConnectX-7 400G per tray",
        published,
        "The RA's compute-fabric switch and cable counts were not available to check: leaves "
        "and spines are derived from the stated structure (576 x 400G ports per SU, QM9700 32 "
        "down + 32 up, one leaf per tray slot of the SU's 8 racks = 18 leaves per SU, full "
        "fat tree, pods of one SU above 3 SU). The NVLink switch trays are the scale-up tier, "
        "not built as switches here.",
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
        endpoint_links_per_module=1,  # dual-port NIC: a 200G cage per port, one per plane
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
