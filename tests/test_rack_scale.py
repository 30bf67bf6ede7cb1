"""Rack-scale NVLink domains: the DGX SuperPOD GB200 preset and placement on NVL72 racks.

Truth:
- NVIDIA DGX SuperPOD RA, DGX GB200 (docs.nvidia.com/dgx-superpod/reference-architecture-
  scalable-infrastructure-gb200): "each SU contains 8 DGX GB200 systems" (abstract); "Each
  DGX GB200 rack is built with 18 compute trays and 9 NVLink switch trays. Each NVLink
  switch tray is equipped with 2 NVLink switch chips ... full-mesh connectivity between
  all 72 GPUs", 18 NVL5 links per GPU, one to each chip, 1.8 TB/s (Network Fabrics);
  NDR 400 Gb/s InfiniBand compute fabric (abstract); "up to and beyond 128 racks with
  9216 GPUs" (DGX SuperPOD Architecture);
- NVIDIA DGX GB200 user guide, Hardware: a compute tray is 2 Grace CPUs and 4 Blackwell
  GPUs with 4 x ConnectX-7 single-port 400G OSFP for the cluster network;
- so one SU = 8 racks x 18 trays x 4 GPUs = 576 GPUs and 576 NDR ports; a QM9700 leaf of
  32 down ports takes one tray slot of each of the SU's 8 racks (8 x 4 = 32), 18 leaves
  per SU (derived: the RA's switch counts were not available to check);
- Megatron rank order (tp fastest, then cp, ep/dp, pp): a TP or EP group of 8 contiguous
  ranks sits in 2 trays of one rack (72 / 8 = 9 groups per rack), inside the NVLink domain
  although it spans servers.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from aifabric.catalog import get_gpu
from aifabric.errors import ConfigError
from aifabric.fabric.builders.clos import build_clos
from aifabric.fabric.builders.presets import get_preset
from aifabric.fabric.capacity import bisection_bandwidth
from aifabric.fabric.placement import index_fabric, placement_permutation, placement_unit
from aifabric.fabric.plan import plan_fabric
from aifabric.fabric.spec import FabricSpec
from aifabric.spec.scenario import TRAIN_KEYS, merge_options, training_job

GBPS = 1e9 / 8


def gb200_job(**kw: Any) -> Any:
    flags = {"seq_len": 4096, "gpu": "gb200-nvl72", **kw}
    flags.setdefault("global_batch", flags.get("dp", 1) * 8)
    return training_job(merge_options(TRAIN_KEYS, {}, flags))


def by_dim_tier(result: dict[str, Any]) -> dict[tuple[str, str], float]:
    out: dict[tuple[str, str], float] = {}
    for r in result["traffic_by_tier"]:
        out[(r["dimension"], r["tier"])] = out.get((r["dimension"], r["tier"]), 0.0) + r["bytes"]
    return out


@pytest.mark.parametrize("su", [1, 2, 16])
def test_gb200_preset_published_counts(su: int) -> None:
    """GB200 RA: 8 racks per SU, 18 trays of 4 GPUs per rack (576 GPUs per SU), 72-GPU
    NVLink domains, 9 NVLink switch trays x 2 chips per rack, 4 x 400G NICs per tray;
    16 SU = 128 racks = 9,216 GPUs."""
    preset = get_preset("dgx-superpod-gb200", su)
    topo = build_clos(preset.spec)
    assert topo.num_gpus == 576 * su
    assert topo.num_nodes == 144 * su  # compute trays
    assert topo.gpus_per_node == 4 and topo.nics_per_node == 4
    assert topo.scaleup_domain_size == 72
    assert topo.links_by_tier()["endpoint_leaf"] == 576 * su
    assert float(topo.link_capacity[topo.link_tier == 1][0]) == pytest.approx(400 * GBPS)
    pub = preset.published
    assert pub["racks"] == 8 * su
    assert pub["nvlink_switch_trays"] == 72 * su and pub["nvlink_switch_chips"] == 144 * su
    if su == 16:
        assert (pub["racks"], pub["gpus"]) == (128, 9216)


def test_gb200_scale_up_tier_is_the_rack() -> None:
    """The plan's scale-up block counts NVL72 racks, not trays: 8 domains of 72 GPUs per
    SU, 18 NVLink switch chips each (catalog: 9 trays x 2), 1.8 TB/s bidirectional per
    GPU = 900 GB/s per direction."""
    result, _, _ = plan_fabric({"preset": "dgx-superpod-gb200"})
    up = result["scale_up"]
    assert (up["domain_size"], up["domains"], up["switch_chips"]) == (72, 8, 144)
    assert up["bandwidth_per_gpu_bytes_per_s"] == pytest.approx(900e9)
    assert result["gpu"] == "gb200-nvl72"
    assert (result["gpus"], result["nodes"]) == (576, 144)
    assert result["bandwidth_per_gpu_bytes_per_s"] == pytest.approx(400 * GBPS)


def test_gb200_slot_rails_wiring() -> None:
    """Leaf t of SU s takes all 4 NICs of tray slot t in each of the SU's 8 racks: 32
    ports from 8 racks, one tray each; 18 leaves per SU; each rack's 72 NICs reach all 18
    of its SU's leaves, 4 on each. Non-blocking (32 down, 32 up): bisection = 576 x
    400G / 2 per SU."""
    topo = build_clos(get_preset("dgx-superpod-gb200", 2).spec)
    e = topo.num_endpoints
    t1 = topo.link_tier == 1
    leaf = np.empty(e, np.int64)
    leaf[topo.link_src[t1]] = topo.link_dst[t1] - e
    tray = topo.endpoint_node
    rack, slot, su = tray // 18, tray % 18, tray // 144
    assert topo.switches_by_tier()["leaf"] == 36
    assert np.array_equal(leaf, su * 18 + slot)
    for sw in range(36):
        on = leaf == sw
        assert on.sum() == 32
        assert len(np.unique(rack[on])) == 8 and len(np.unique(tray[on])) == 8
    for r in range(16):
        counts = np.bincount(leaf[rack == r], minlength=36)
        assert sorted(set(counts[counts > 0].tolist())) == [4]
        assert int((counts > 0).sum()) == 18
    assert bisection_bandwidth(topo) == pytest.approx(2 * 576 * 400 * GBPS / 2)


@pytest.mark.parametrize(
    ("kw", "match"),
    [
        ({"scaleup_domain_size": 4}, r"rail_by='slot' needs .* domain\(=4\)"),
        ({"scaleup_domain_size": 70}, r"domain\(=70\) .* gpus_per_node\(=4\)"),
        ({"su_nodes": 140}, r"su_nodes\(=140\) must be whole scale-up domains of 18"),
        ({"num_gpus": 576 + 4}, r"gpus\(=580\) must fill whole scale-up domains of 72"),
        ({"grouping": "tor"}, r"rail_by='slot' needs rail grouping"),
        ({"rail_by": "rack"}, r"rail_by\(='rack'\) must be one of nic, slot"),
        ({"management_ports": -1}, r"management_ports\(=-1\)"),
    ],
)
def test_rack_scale_spec_refusals(kw: dict[str, Any], match: str) -> None:
    base: dict[str, Any] = {
        "num_gpus": 576, "gpus_per_node": 4, "nics_per_node": 4, "nic_speed": 400 * GBPS,
        "grouping": "rail", "rail_by": "slot", "su_nodes": 144, "scaleup_domain_size": 72,
    }  # fmt: skip
    with pytest.raises(ConfigError, match=match):
        FabricSpec(**{**base, **kw})


def test_random_placement_moves_whole_nvlink_domains() -> None:
    """Random placement shuffles racks on an NVL72 fabric (72 GPUs move together), servers
    on an HGX fabric (8): every 72 consecutive ranks still share one rack, so the rows the
    traffic model puts on NVLink stay there."""
    gb200 = build_clos(get_preset("dgx-superpod-gb200", 2).spec)
    h100 = build_clos(get_preset("dgx-superpod-h100", 1).spec)
    assert placement_unit(gb200) == 72 and placement_unit(h100) == 8
    perm = placement_permutation(gb200.num_gpus, placement_unit(gb200), "random", seed=3)
    assert perm is not None and not np.array_equal(perm, np.arange(gb200.num_gpus))
    domain = index_fabric(gb200, perm).gpu_domain.reshape(-1, 72)
    assert bool((domain == domain[:, :1]).all())


@pytest.mark.parametrize("placement", ["contiguous", "random"])
def test_gb200_tp8_stays_on_nvlink_across_trays(placement: str) -> None:
    """llama3-70b, tp=8 pp=4 dp=16 (512 of 576 GPUs): each TP group is 2 trays of one rack,
    so every TP byte is on the scale-up tier and none on the InfiniBand fabric, under both
    placements; the same bytes as the job's own TP rows (conservation)."""
    job = gb200_job(model="llama3-70b", tp=8, pp=4, dp=16)
    result, _, _ = plan_fabric({"preset": "dgx-superpod-gb200", "placement": placement}, job)
    dims = by_dim_tier(result)
    tp_up = dims.get(("tp", "scale_up"), 0.0)
    assert tp_up > 0
    assert all(dims.get(("tp", t), 0.0) == 0.0 for t in ("leaf", "spine", "core"))
    from aifabric.traffic.training import training_traffic

    tp_total = sum(r.total_bytes for r in training_traffic(job).rows if r.dimension == "tp")
    assert tp_up == pytest.approx(tp_total)


def test_gb200_domain_is_not_the_tray() -> None:
    """The control: the same fabric and job with the scale-up domain taken to be the 4-GPU
    tray (what assuming gpus_per_node = domain gives) send TP=8 over InfiniBand; the
    72-GPU NVL72 domain keeps every TP byte on NVLink."""
    from dataclasses import replace

    from aifabric.fabric.placement import traffic_by_tier
    from aifabric.traffic.training import training_traffic

    job = gb200_job(model="llama3-70b", tp=8, pp=4, dp=16)
    topo = build_clos(get_preset("dgx-superpod-gb200").spec)

    def tp_on_fabric(domain: int) -> float:
        j = replace(job, scaleup_domain_size=domain)
        placed = traffic_by_tier(list(training_traffic(j).rows), j.plan,
                                 replace(topo, scaleup_domain_size=domain))  # fmt: skip
        return sum(r["bytes"] for r in placed["rows"]
                   if r["dimension"] == "tp" and r["tier"] != "scale_up")  # fmt: skip

    assert tp_on_fabric(4) > 0
    assert tp_on_fabric(72) == 0.0


def test_gb200_expert_parallel_fits_the_rack() -> None:
    """mixtral-8x7b, ep=8 (tp=1, dp=72 over 576 GPUs): an EP group is 8 contiguous ranks
    = 2 trays of one rack, so the token all-to-all never reaches the InfiniBand fabric."""
    job = gb200_job(model="mixtral-8x7b", tp=1, ep=8, dp=72)
    result, _, _ = plan_fabric({"preset": "dgx-superpod-gb200"}, job)
    dims = by_dim_tier(result)
    assert dims.get(("ep", "scale_up"), 0.0) > 0
    assert all(dims.get(("ep", t), 0.0) == 0.0 for t in ("leaf", "spine", "core"))


def test_gb200_catalog_nic_is_connectx7_400g() -> None:
    """DGX GB200 user guide: 4 x ConnectX-7 400G per compute tray, one per GPU."""
    assert get_gpu("gb200-nvl72").default_nic_speed == pytest.approx(400 * GBPS)
