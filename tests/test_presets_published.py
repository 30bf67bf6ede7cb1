"""Every count a preset's source publishes, pinned against the built topology.

Truth (each test names its table or section):
- NVIDIA DGX SuperPOD Reference Architecture, DGX H100 (RA-11333-001 V11, 2023),
  docs.nvidia.com/dgx-superpod/reference-architecture-scalable-infrastructure-h100:
  Table 4 "Compute fabric component count" (1-4 SU: nodes, GPUs, leaf and spine QM9700,
  "Compute and UFM" and "Spine-Leaf" cables; footnote 1: "This is a 32 node per SU design,
  however a DGX system must be removed to accommodate for UFM connectivity") and Table 3
  (larger SuperPODs: leaf, spine and core switches at 8, 16, 32 and 64 SU);
- NVIDIA DGX SuperPOD RA, DGX B200, Table 3: the same QM9700 rail-optimized fabric of 32
  8-NIC DGX per SU, with leaf-spine and spine-core cables of 256 per SU at 8-64 SU;
- Imbue, "From bare metal to a 70B model" (2024): a 16-SU-class H100 cluster of 511 hosts
  and 4,088 GPUs, one host's ports kept for the UFM nodes;
- Llama 3 Herd of Models (arXiv:2407.21783) sec. 3.3.1: 24K GPUs, 2 servers (16 GPUs) per
  rack on one ToR, 192 racks per 3,072-GPU pod at full bisection, 8 pods;
- Alibaba HPN (Qian et al., SIGCOMM 2024) sec. 4-5: 8 GPUs and 8 x 2 x 200G NICs per
  host, dual-plane, 16 ToRs per 1,024-GPU segment, 15 segments (15,360 GPUs) per pod,
  ToR 128 x 200G down and 60 x 400G up, 60 aggregation switches per plane.
"""

from __future__ import annotations

import numpy as np
import pytest

from aifabric.errors import CapacityError
from aifabric.fabric.builders.clos import build_clos
from aifabric.fabric.builders.presets import get_preset
from aifabric.fabric.plan import plan_fabric
from aifabric.fabric.spec import FabricSpec

GBPS = 1e9 / 8

# RA-11333-001 Table 4: SU -> (nodes, GPUs, leaf, spine, Compute and UFM cables, Spine-Leaf)
H100_TABLE_4 = {
    1: (31, 248, 8, 4, 252, 256),
    2: (63, 504, 16, 8, 508, 512),
    3: (95, 760, 24, 16, 764, 768),
    4: (127, 1016, 32, 16, 1020, 1024),
}
# RA-11333-001 Table 3: SU -> (leaf, spine, core); B200 RA Table 3: leaf-spine and
# spine-core cables of the same fabric (256 per SU; no core below 16 SU).
H100_TABLE_3 = {
    8: (64, 32, 0, 2048, 0),
    16: (128, 128, 64, 4096, 4096),
    32: (256, 256, 128, 8192, 8192),
    64: (512, 512, 256, 16384, 16384),
}


@pytest.mark.parametrize("su", sorted(H100_TABLE_4))
def test_superpod_h100_table4_every_count(su: int) -> None:
    """RA-11333-001 Table 4, 1-4 SU: nodes and GPUs are 32 x SU - 1 DGX (one removed for
    UFM connectivity, footnote 1; 8 GPUs each), the leaf and spine QM9700 those of full
    SUs, the 'Compute and UFM' cables the 8 x nodes GPU links plus 4 UFM ports, and the
    'Spine-Leaf' cables 256 per SU: a 31-node SU still has 32 uplinks on each of its 8
    leaves."""
    nodes, gpus, leaf, spine, compute_ufm, spine_leaf = H100_TABLE_4[su]
    topo = build_clos(get_preset("dgx-superpod-h100", su).spec)
    assert topo.num_nodes == nodes
    assert topo.num_gpus == gpus
    assert topo.switches_by_tier() == {"leaf": leaf, "spine": spine, "core": 0}
    links = topo.links_by_tier()
    assert links["endpoint_leaf"] == compute_ufm
    assert links["leaf_spine"] == spine_leaf
    assert links["spine_core"] == 0
    assert topo.num_management_endpoints == compute_ufm - gpus == 4


@pytest.mark.parametrize("su", sorted(H100_TABLE_3))
def test_superpod_h100_table3_switches_and_cables(su: int) -> None:
    """RA-11333-001 Table 3 (8-64 SU): leaf, spine and core QM9700; leaf-spine and
    spine-core cables of the full SUs (B200 RA Table 3, same fabric: 256 per SU). The
    nodes follow Table 4's rule (one DGX for UFM): 32 x SU - 1."""
    leaf, spine, core, leaf_spine, spine_core = H100_TABLE_3[su]
    topo = build_clos(get_preset("dgx-superpod-h100", su).spec)
    assert topo.switches_by_tier() == {"leaf": leaf, "spine": spine, "core": core}
    links = topo.links_by_tier()
    assert links["leaf_spine"] == leaf_spine
    assert links["spine_core"] == spine_core
    assert topo.num_nodes == 32 * su - 1
    assert links["endpoint_leaf"] == 8 * (32 * su - 1) + 4


def test_superpod_h100_16su_matches_a_built_cluster() -> None:
    """Imbue (2024): 4,088 H100 on 511 hosts, 'some connections needed to be reserved for
    the Unified Fabric Manager nodes' - the 16-SU preset's node and GPU counts."""
    topo = build_clos(get_preset("dgx-superpod-h100", 16).spec)
    assert (topo.num_nodes, topo.num_gpus) == (511, 4088)


def test_superpod_h100_ufm_ports_sit_where_the_removed_dgx_was() -> None:
    """Table 4 footnote 1: the UFM takes the place of the removed DGX, so its 4 ports are
    on the last SU's rail leaves (one each, rails 0-3), which have one free port each; no
    leaf exceeds its 32 down ports, and the UFM ports are no server's."""
    topo = build_clos(get_preset("dgx-superpod-h100", 4).spec)
    e = topo.num_endpoints
    t1 = topo.link_tier == 1
    leaf_of = np.full(e, -1)
    leaf_of[topo.link_src[t1]] = topo.link_dst[t1] - e
    ufm = np.flatnonzero(topo.endpoint_node < 0)
    assert ufm.size == 4 and bool((ufm >= e - 4).all())  # after every server port
    assert sorted(leaf_of[ufm].tolist()) == [24, 25, 26, 27]  # SU 3, rails 0..3
    assert topo.endpoint_rail[ufm].tolist() == [0, 1, 2, 3]
    per_leaf = np.bincount(leaf_of, minlength=32)
    assert per_leaf.tolist() == [32] * 24 + [32] * 4 + [31] * 4


def test_superpod_h100_plan_reports_published_and_built_alike() -> None:
    """The plan's 'published' block (Table 4, 4 SU) equals what it built, and the scale-out
    bandwidth per GPU counts the GPUs' 400G links only (not the UFM ports)."""
    result, _, _ = plan_fabric({"preset": "dgx-superpod-h100", "scalable_units": 4})
    pub = result["published"]
    assert (pub["nodes"], pub["gpus"]) == (result["nodes"], result["gpus"]) == (127, 1016)
    assert {t: pub[t] for t in ("leaf", "spine", "core")} == {
        t: result["switches"][t] for t in ("leaf", "spine", "core")
    }
    assert pub["cables"] == {"endpoint_leaf": 1020, "leaf_spine": 1024}
    assert result["links"]["endpoint_leaf"] == 1020
    assert result["management_ports"] == 4
    assert result["bandwidth_per_gpu_bytes_per_s"] == pytest.approx(400 * GBPS)


def test_management_ports_without_room_are_refused() -> None:
    """A full SU has no free leaf port: 32 DGX x 8 rails fill the 8 leaves' 32 down ports,
    so a UFM port cannot be placed (the RA removes a DGX for it)."""
    spec = FabricSpec(num_gpus=256, nic_speed=400 * GBPS, su_nodes=32, management_ports=1)
    with pytest.raises(CapacityError, match=r"management_ports\(=1\) exceed the 0 free"):
        build_clos(spec)


def test_meta_llama3_24k_published_counts() -> None:
    """Llama 3 sec. 3.3.1: 24,576 GPUs = 3,072 servers of 8; two servers (16 GPUs) per rack
    ToR, so 1,536 ToRs; 8 pods of 192 racks (3,072 GPUs). Node-ToR cables = GPUs (one
    400G NIC each); a pod at full bisection gives each ToR 16 uplinks: 16 x 1,536 = 24,576
    ToR-cluster cables. The cluster and aggregation switch counts are not published."""
    preset = get_preset("meta-llama3-24k")
    topo = build_clos(preset.spec)
    assert (topo.num_gpus, topo.num_nodes) == (24576, 3072)
    assert topo.switches_by_tier()["leaf"] == 1536
    assert topo.links_by_tier()["endpoint_leaf"] == 24576
    assert topo.links_by_tier()["leaf_spine"] == 16 * 1536
    pub = preset.published
    assert (pub["gpus"], pub["nodes"], pub["leaf"], pub["pods"]) == (24576, 3072, 1536, 8)
    assert "spine" not in pub and "core" not in pub


def test_alibaba_hpn_published_counts() -> None:
    """HPN (SIGCOMM'24): one pod = 15 segments x 1,024 GPUs = 15,360 GPUs on 1,920 hosts;
    8 NICs x 2 ports (one per plane) per host = 30,720 host-ToR cables; 16 ToRs per
    segment = 240 ToRs, each 60 x 400G up = 14,400 ToR-aggregation cables into 60
    aggregation switches per plane (120)."""
    preset = get_preset("alibaba-hpn")
    topo = build_clos(preset.spec)
    assert (topo.num_gpus, topo.num_nodes) == (15360, 1920)
    assert topo.switches_by_tier() == {"leaf": 240, "spine": 120, "core": 0}
    assert topo.links_by_tier()["endpoint_leaf"] == 1920 * 8 * 2
    assert topo.links_by_tier()["leaf_spine"] == 240 * 60
    pub = preset.published
    assert (pub["gpus"], pub["leaf"], pub["spine"], pub["segments"]) == (15360, 240, 120, 15)


@pytest.mark.parametrize(
    ("name", "size"),
    [("dgx-superpod-h100", su) for su in (*H100_TABLE_4, *H100_TABLE_3)]
    + [("meta-llama3-24k", None), ("alibaba-hpn", None), ("dgx-superpod-gb200", 1)],
)
def test_every_published_count_is_what_is_built(name: str, size: int | None) -> None:
    """Whatever a preset lists as published (nodes, GPUs, switches per tier, cables per
    tier) the built topology has: the preset cannot drift from its own source."""
    preset = get_preset(name, size)
    topo = build_clos(preset.spec)
    pub = preset.published
    built = {"gpus": topo.num_gpus, "nodes": topo.num_nodes, **topo.switches_by_tier()}
    for key in ("gpus", "nodes", "leaf", "spine", "core"):
        if key in pub:
            assert pub[key] == built[key], key
    for tier, count in pub.get("cables", {}).items():
        assert topo.links_by_tier()[tier] == count, tier
