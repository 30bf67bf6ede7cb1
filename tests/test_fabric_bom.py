"""Bill of materials, cost and power of built fabrics.

Truth:
- part counting: an optical link is one fibre plus a transceiver end at each side (2 link
  ends + 1 cable), a copper link is one DAC (1 cable, no optics); the ends are bought as
  modules carrying one or more links (tests/test_bom_modules.py pins those counts); one
  NIC per NIC port of a server, shared by all planes (nodes x nics_per_node NICs);
- the DGX SuperPOD H100 4-SU compute fabric (RA-11333-001 Table 4): 32 leaf + 16 spine
  QM9700, 1,024 ConnectX-7 400G NICs, 1,024 node-leaf + 1,024 leaf-spine optical links,
  so 2,048 cables and 4,096 400G transceivers, priced and powered by hand from the
  shipped catalog file (catalog/data/parts.yaml) read directly with PyYAML;
- arithmetic of a bill: total = sum of its lines (each line = count x unit price),
  low <= likely <= high, per-GPU = total / GPUs, power = sum of count x unit watts;
  prices enter linearly, so doubling every switch price doubles the switch lines exactly.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml

from aifabric.errors import ConfigError
from aifabric.fabric.bom import PRICE_POINTS, bill_of_materials, load_parts
from aifabric.fabric.builders.clos import build_clos
from aifabric.fabric.builders.presets import get_preset
from aifabric.fabric.builders.spine_leaf import build_spine_leaf
from aifabric.fabric.compare import compare_training_inference
from aifabric.fabric.plan import plan_fabric
from aifabric.fabric.spec import FabricSpec
from aifabric.fabric.topology import Topology

GBPS = 1e9 / 8


def shipped_parts() -> dict[str, Any]:
    """The shipped catalog, read straight from the package data with PyYAML."""
    text = resources.files("aifabric.catalog").joinpath("data", "parts.yaml").read_text("utf-8")
    data: dict[str, Any] = yaml.safe_load(text)
    return data


def write_parts(path: Path, data: dict[str, Any]) -> Path:
    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    return path


CASES: dict[str, tuple[FabricSpec, str]] = {
    "superpod-2su": (get_preset("dgx-superpod-h100", 2).spec, "clos"),
    "superpod-16su": (get_preset("dgx-superpod-h100", 16).spec, "clos"),
    "hpn": (get_preset("alibaba-hpn").spec, "clos"),
    "tor-spine-leaf": (FabricSpec(num_gpus=512, nic_speed=400 * GBPS, oversubscription=3.0,
                                  switch_radix=32), "spine_leaf"),
    "two-planes-3-tier": (FabricSpec(num_gpus=1024, nic_speed=800 * GBPS, planes=2,
                                     switch_radix=16, grouping="tor"), "clos"),
    "inference-2x100g": (FabricSpec(num_gpus=256, nics_per_node=2, nic_speed=100 * GBPS,
                                    switch_radix=128, oversubscription=4.0, su_nodes=4),
                         "spine_leaf"),
}  # fmt: skip


def build(case: str) -> tuple[Topology, FabricSpec]:
    spec, builder = CASES[case]
    topo = build_spine_leaf(spec) if builder == "spine_leaf" else build_clos(spec)
    return topo, spec


def lines_of(bom: dict[str, Any], category: str) -> list[dict[str, Any]]:
    return [ln for ln in bom["lines"] if ln["category"] == category]


@pytest.mark.parametrize("case", sorted(CASES))
def test_optics_and_cables_per_link(case):
    """Each link is one cable; each optical link adds two transceivers, copper none."""
    topo, spec = build(case)
    bom = bill_of_materials(topo, nic_speed=spec.nic_speed, switch_model=spec.switch_model)
    links = topo.links_by_tier()
    for t, name in ((1, "endpoint_leaf"), (2, "leaf_spine"), (3, "spine_core")):
        mask = topo.link_tier == t
        copper = int((topo.link_reach[mask] == 0).sum())
        optical = int(mask.sum()) - copper
        assert bom["cables"].get(name, 0) == links[name]
        assert bom["transceiver_ports"].get(name, 0) == 2 * optical  # every end served
        assert bom["transceivers"].get(name, 0) <= 2 * optical  # a module carries >= 1
        copper_lines = [ln for ln in lines_of(bom, "cable")
                        if ln["tier"] == name and ln["item"] == "copper cable"]  # fmt: skip
        assert sum(ln["count"] for ln in copper_lines) == copper
    # NICs: one per NIC port of a server, shared by the planes
    assert bom["nics"] == spec.num_nodes * spec.nics_per_node
    # ports: used = both ends of every switch-side link; total = radix x switches
    used = 2 * int((topo.link_tier >= 2).sum()) + int((topo.link_tier == 1).sum())
    assert sum(p["used"] for p in bom["ports"].values()) == used
    assert sum(p["total"] for p in bom["ports"].values()) == int(topo.switch_ports.sum())
    assert all(p["free"] >= 0 for p in bom["ports"].values())


def test_spine_leaf_endpoint_links_are_copper():
    """A ToR spine-leaf (servers in the rack) cables its servers with DACs: the endpoint
    tier has cables but no transceivers; the leaf-spine tier is optical."""
    topo, spec = build("tor-spine-leaf")
    assert bool((topo.link_reach[topo.link_tier == 1] == 0).all())
    bom = bill_of_materials(topo, nic_speed=spec.nic_speed)
    assert bom["cables"]["endpoint_leaf"] == 512
    assert "endpoint_leaf" not in bom["transceivers"]
    assert bom["transceivers"]["leaf_spine"] == 2 * bom["cables"]["leaf_spine"]
    items = {ln["item"] for ln in lines_of(bom, "cable") if ln["tier"] == "endpoint_leaf"}
    assert items == {"copper cable"}


@pytest.mark.parametrize("case", sorted(CASES))
def test_cost_and_power_arithmetic(case):
    """Totals are sums of lines; each line is count x unit; low <= likely <= high."""
    topo, spec = build(case)
    parts = shipped_parts()
    bom = bill_of_materials(topo, nic_speed=spec.nic_speed, switch_model=spec.switch_model,
                            parts=parts)  # fmt: skip
    lines = bom["lines"]
    for p, key in (("likely", "total_usd"), ("low", "low_usd"), ("high", "high_usd")):
        assert bom["cost"][key] == pytest.approx(sum(ln["cost_usd"][p] for ln in lines))
    assert bom["cost"]["low_usd"] <= bom["cost"]["total_usd"] <= bom["cost"]["high_usd"]
    for ln in lines:
        assert ln["cost_usd"]["low"] <= ln["cost_usd"]["likely"] <= ln["cost_usd"]["high"]
        assert ln["count"] > 0
    assert bom["cost"]["per_gpu_usd"] == pytest.approx(bom["cost"]["total_usd"] / topo.num_gpus)
    assert bom["power"]["total_w"] == pytest.approx(sum(ln["power_w"] for ln in lines))
    assert bom["power"]["per_gpu_w"] == pytest.approx(bom["power"]["total_w"] / topo.num_gpus)
    # switch lines: one per tier with switches, priced at the model's catalog entry
    entry = parts["switches"].get(spec.switch_model) or parts["switches"]["generic"]
    counts = topo.switches_by_tier()
    for ln in lines_of(bom, "switch"):
        assert ln["count"] == counts[ln["tier"]]
        assert ln["cost_usd"]["likely"] == pytest.approx(ln["count"] * entry["price"]["likely"])
        assert ln["power_w"] == pytest.approx(ln["count"] * entry["power_w"])
    assert sum(ln["count"] for ln in lines_of(bom, "switch")) == topo.num_switches


def test_superpod_4su_bill_by_hand():
    """RA-11333-001 4 SU (Table 4): 48 QM9700, 127 DGX H100 (one removed for UFM) = 1,016
    x 400G NICs, 1,020 node/UFM-leaf + 1,024 leaf-spine multimode links = 2,044 MPO
    cables. Modules: each DGX H100 brings its 8 NICs out on 4 twin-port 800G OSFPs
    (127 x 4 = 508); each UFM port one 400G single-port module (4); each QM9700 cage is a
    twin-port 800G OSFP (64 ports / 32 cages), so a leaf needs ceil(31 or 32 / 2) = 16 down
    + 16 up modules and a spine 64 / 2 = 32: 32 x 32 + 16 x 32 = 1,536. 800G: 508 +
    1,536 = 2,044; 400G: 4. Priced from parts.yaml; switch power there is without optics."""
    parts = shipped_parts()
    sw, nic = parts["switches"]["quantum-2-qm9700"], parts["nics"]["400"]
    mm = parts["transceivers"]["multimode"]
    twin, single, cable = mm["800"], mm["400"], parts["cables"]["multimode"]
    result, _, _ = plan_fabric({"preset": "dgx-superpod-h100", "scalable_units": 4})
    for p, key in (("likely", "total_usd"), ("low", "low_usd"), ("high", "high_usd")):
        expected = (48 * sw["price"][p] + 1016 * nic["price"][p] + 2044 * twin["price"][p]
                    + 4 * single["price"][p] + 2044 * cable["price"][p])  # fmt: skip
        assert result["cost"][key] == pytest.approx(expected)
    assert result["cost"]["total_usd"] == pytest.approx(6_594_920)  # with the 2025-06 prices
    assert result["cost"]["per_gpu_usd"] == pytest.approx(result["cost"]["total_usd"] / 1016)
    power = (
        48 * sw["power_w"] + 1016 * nic["power_w"] + 2044 * twin["power_w"] + 4 * single["power_w"]
    )
    assert result["power"]["total_w"] == pytest.approx(power)
    assert result["nics"] == 1016
    assert result["cables"] == {"endpoint_leaf": 1020, "leaf_spine": 1024}
    assert result["transceivers"] == {"endpoint_leaf": 508 + 4 + 512, "leaf_spine": 512 + 512}
    assert result["transceiver_ports"] == {"endpoint_leaf": 2 * 1020, "leaf_spine": 2 * 1024}
    gpu_price = parts["gpus"]["h100-sxm"]["price"]["likely"]
    assert result["cost"]["gpu_cost_usd"] == pytest.approx(1016 * gpu_price)
    assert result["cost"]["network_to_gpu_cost_ratio"] == pytest.approx(
        result["cost"]["total_usd"] / (1016 * gpu_price)
    )


def test_hpn_nics_are_not_doubled_by_planes():
    """HPN hosts: 8 dual-port 2 x 200G NICs; the two planes share each NIC (15,360 NICs for
    1,920 hosts), while each port is its own 200G link with its own optics."""
    topo, spec = build("hpn")
    bom = bill_of_materials(topo, nic_speed=spec.nic_speed, switch_model=spec.switch_model)
    assert bom["nics"] == 1920 * 8
    assert bom["cables"]["endpoint_leaf"] == 2 * 15360
    optics = [ln for ln in lines_of(bom, "transceiver") if ln["tier"] == "endpoint_leaf"]
    by_end = {ln["end"]: ln for ln in optics}
    assert set(by_end) == {"server", "leaf"}
    # one 200G module per NIC port; the 51.2T ToR runs 200G as 4 per 800G cage (256 / 64)
    assert by_end["server"]["count"] == 2 * 15360 and by_end["server"]["links_per_module"] == 1
    assert by_end["leaf"]["links_per_module"] == 4
    assert by_end["leaf"]["count"] == 240 * 128 // 4


def test_doubling_switch_prices_doubles_switch_lines(tmp_path):
    """Prices are linear: a catalog with every switch price doubled doubles exactly the
    switch lines and raises the total by exactly their original cost."""
    parts = shipped_parts()
    doubled = yaml.safe_load(yaml.safe_dump(parts))
    for entry in doubled["switches"].values():
        entry["price"] = {p: 2 * v for p, v in entry["price"].items()}
    path = write_parts(tmp_path / "prices.yaml", doubled)
    loaded = load_parts(str(path))
    topo, spec = build("superpod-16su")
    base = bill_of_materials(topo, nic_speed=spec.nic_speed, switch_model=spec.switch_model,
                             parts=parts)  # fmt: skip
    twice = bill_of_materials(topo, nic_speed=spec.nic_speed, switch_model=spec.switch_model,
                              parts=loaded)  # fmt: skip
    assert len(base["lines"]) == len(twice["lines"])
    switch_cost = {p: 0.0 for p in PRICE_POINTS}
    for a, b in zip(base["lines"], twice["lines"], strict=True):
        assert (a["category"], a["tier"], a["count"]) == (b["category"], b["tier"], b["count"])
        factor = 2 if a["category"] == "switch" else 1
        for p in PRICE_POINTS:
            assert b["cost_usd"][p] == pytest.approx(factor * a["cost_usd"][p])
            if a["category"] == "switch":
                switch_cost[p] += a["cost_usd"][p]
    assert twice["cost"]["total_usd"] == pytest.approx(
        base["cost"]["total_usd"] + switch_cost["likely"]
    )
    assert twice["power"] == base["power"]
    # the planner reads the same file through prices=
    via_plan, _, _ = plan_fabric({"preset": "dgx-superpod-h100", "scalable_units": 16},
                                 prices=str(path))  # fmt: skip
    assert via_plan["cost"]["total_usd"] == pytest.approx(twice["cost"]["total_usd"])


def test_price_scaling_is_linear_for_every_part(tmp_path):
    """Tripling every price in the catalog triples every total (low, likely, high)."""
    parts = shipped_parts()
    tripled = yaml.safe_load(yaml.safe_dump(parts))

    def scale(node: Any) -> None:
        if isinstance(node, dict):
            if "price" in node:
                node["price"] = {p: 3 * v for p, v in node["price"].items()}
            for value in node.values():
                scale(value)

    scale(tripled)
    path = write_parts(tmp_path / "x3.yaml", tripled)
    base, _, _ = plan_fabric({"preset": "meta-llama3-24k", "pods": 2})
    x3, _, _ = plan_fabric({"preset": "meta-llama3-24k", "pods": 2}, prices=str(path))
    for key in ("total_usd", "low_usd", "high_usd", "per_gpu_usd"):
        assert x3["cost"][key] == pytest.approx(3 * base["cost"][key])


def test_missing_price_catalog_is_config_error(tmp_path):
    with pytest.raises(ConfigError, match="cannot read price catalog"):
        load_parts(str(tmp_path / "missing.yaml"))
    with pytest.raises(ConfigError, match="cannot read price catalog"):
        plan_fabric({"gpus": 64}, prices=str(tmp_path / "missing.yaml"))


def test_price_catalog_without_a_section_is_config_error(tmp_path):
    parts = shipped_parts()
    del parts["transceivers"]
    path = write_parts(tmp_path / "partial.yaml", parts)
    with pytest.raises(ConfigError, match="'transceivers' section"):
        load_parts(str(path))
    path.write_text("- just\n- a list\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="section"):
        load_parts(str(path))


def test_nic_rate_missing_from_catalog_is_config_error():
    """A 1.6T NIC has no catalog price: the error names the rate (1600 Gb/s)."""
    spec = FabricSpec(num_gpus=64, nic_speed=1600 * GBPS)
    topo = build_clos(spec)
    with pytest.raises(ConfigError, match="no NIC in the price catalog for 1600 Gb/s"):
        bill_of_materials(topo, nic_speed=spec.nic_speed)


def test_unknown_switch_model_priced_as_generic():
    topo, spec = build("superpod-2su")
    parts = shipped_parts()
    bom = bill_of_materials(topo, nic_speed=spec.nic_speed, switch_model="no-such-switch",
                            parts=parts)  # fmt: skip
    generic = parts["switches"]["generic"]["price"]["likely"]
    assert sum(ln["cost_usd"]["likely"] for ln in lines_of(bom, "switch")) == pytest.approx(
        topo.num_switches * generic
    )


def test_gpu_line_is_outside_the_network_totals():
    """include_gpus adds a GPU line for reference; network cost and power exclude it."""
    topo, spec = build("superpod-2su")
    without = bill_of_materials(topo, nic_speed=spec.nic_speed, gpu="h100-sxm")
    with_gpus = bill_of_materials(topo, nic_speed=spec.nic_speed, gpu="h100-sxm",
                                  include_gpus=True)  # fmt: skip
    gpu_lines = lines_of(with_gpus, "gpu")
    assert len(gpu_lines) == 1 and gpu_lines[0]["count"] == 504  # 63 DGX (Table 4, 2 SU)
    assert with_gpus["cost"]["total_usd"] == pytest.approx(without["cost"]["total_usd"])
    assert with_gpus["power"] == without["power"]


def test_training_vs_inference_fabric_bills():
    """Seed 004's comparison for 1,024 H100: training = 8 x 400G per server on a
    rail-optimized non-blocking Clos (1,024 NICs, optics at every link); inference = 2 x
    100G per server on ToR copper with 4:1 at the leaves (256 NICs, optics only above the
    ToRs). 4 servers x 2 NICs per ToR at 4:1 need ceil(8 / 4) = 2 uplinks per ToR.
    Modules: training, one 400G module per NIC (1,024) and twin-port 800G OSFPs on the
    QM9700s: 32 leaves x (16 down + 16 up) + 16 spines x 64 / 2 = 1,536; inference, the
    12.8T switch runs 100G as 4 per 400G cage (128 ports / 32 cages): one module per ToR
    for its 2 uplinks (32) and ceil(64 / 4) = 16 on the one spine that takes all 64."""
    out = compare_training_inference(gpus=1024, gpu="h100-sxm")
    train, infer = out["training"], out["inference"]
    assert train["nics"] == 1024 and infer["nics"] == 256
    assert infer["switches"]["leaf"] == 128 // 4
    assert infer["switches"]["spine"] == 1
    assert infer["transceivers"] == 32 + 16
    assert train["transceivers"] == 1024 + 1536
    assert train["cost"]["total_usd"] > infer["cost"]["total_usd"]
    assert out["training_to_inference_cost_ratio"] == pytest.approx(
        train["cost"]["total_usd"] / infer["cost"]["total_usd"]
    )
    for side in (train, infer):
        split = side["cost"]["nics_usd"] + side["cost"]["switches_usd"] + side["cost"]["optics_usd"]
        assert split == pytest.approx(side["cost"]["total_usd"])
    assert np.isclose(infer["bandwidth_per_gpu_bytes_per_s"], 2 * 100 * GBPS / 8)
