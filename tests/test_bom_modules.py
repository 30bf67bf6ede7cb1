"""BOM as it is bought: transceiver modules, per-tier switch models, oversubscription warnings.

Truth:
- NVIDIA MMA4Z00-NS (twin-port 800G OSFP, 2 x 400G SR4 through two MPO-12, 15 W in every
  configuration) is the cage module of the QM9700 / SN5600; the QM9700 runs 64 x 400G on
  32 cages, so 2 links per switch-side module; DGX H100 brings its 8 ConnectX-7 out on 4
  OSFP cages (DGX H100 user guide, Network Modules: OSFP1P1..OSFP4P2), 2 links per
  module; a PCIe ConnectX-7 takes one single-port 400G module (MMA4Z00-NS400);
- the Quantum-X800 Q3400 has 144 x 800G ports on 72 twin-port cages: 2 x 800G = 1.6T
  per module;
- conservation: modules serve every optical link end (2 per link) and no more than
  per-module x modules; a copper link has no module;
- whole ports: radix 64 at 2:1 splits 42 down + 22 up (42/22 = 1.91, 43/21 = 2.05 > 2);
  --su-nodes 4 on top-of-rack leaves puts 4 x 8 = 32 NIC ports on a leaf, which at 10:1
  need ceil(32 / 10) = 4 uplinks: 32 / 4 = 8:1 built, not 10:1.
"""

from __future__ import annotations

import pytest

from aifabric.cli import main
from aifabric.errors import ConfigError
from aifabric.fabric.bom import bill_of_materials, load_parts
from aifabric.fabric.builders.clos import build_clos
from aifabric.fabric.plan import plan_fabric
from aifabric.fabric.spec import FabricSpec

from .cli_helpers import run_json

GBPS = 1e9 / 8


def optics(result: dict, tier: str) -> dict[str, dict]:
    """Transceiver lines of one link tier, by the end they sit at."""
    return {ln["end"]: ln for ln in result["bom"]
            if ln["category"] == "transceiver" and ln["tier"] == tier}  # fmt: skip


def test_dgx_h100_uses_twin_port_osfps():
    """SuperPOD 4 SU: each DGX H100's 8 NICs on 4 twin-port 800G modules (127 x 4 = 508),
    each QM9700 leaf 16 twin-port modules down and 16 up, each spine 32 (64 / 2)."""
    result, _, _ = plan_fabric({"preset": "dgx-superpod-h100", "scalable_units": 4})
    down = optics(result, "endpoint_leaf")
    assert down["server"]["count"] == result["nodes"] * 4
    assert down["server"]["links_per_module"] == 2
    assert down["server"]["item"].startswith("800G multimode module (2 x 400G)")
    assert down["leaf"]["count"] == 32 * 16 and down["leaf"]["links_per_module"] == 2
    up = optics(result, "leaf_spine")
    assert (up["leaf"]["count"], up["spine"]["count"]) == (32 * 16, 16 * 32)


def test_generic_server_has_one_module_per_nic():
    """An HGX server of PCIe ConnectX-7 (the default plan): 1,024 single-port 400G modules
    at the servers, twin-port 800G OSFPs at the QM9700s (32 leaves x 16 down)."""
    result, _, _ = plan_fabric({"gpus": 1024})
    down = optics(result, "endpoint_leaf")
    assert (down["server"]["count"], down["server"]["links_per_module"]) == (1024, 1)
    assert down["server"]["item"].startswith("400G multimode module (1 x 400G)")
    assert down["leaf"]["count"] == 512
    assert result["transceivers"] == {"endpoint_leaf": 1024 + 512, "leaf_spine": 512 + 512}


@pytest.mark.parametrize("args", [{"gpus": 1024}, {"preset": "dgx-superpod-h100"},
                                  {"preset": "alibaba-hpn"}, {"preset": "meta-llama3-24k"},
                                  {"gpus": 2056, "design": "clos"}])  # fmt: skip
def test_modules_serve_every_link_end(args):
    """Per tier: ports served = 2 x optical links; modules x links-per-module >= ports,
    and each line wastes less than one module per device."""
    result, topo, _ = plan_fabric(args)
    for t, tier in ((1, "endpoint_leaf"), (2, "leaf_spine"), (3, "spine_core")):
        optical = int(((topo.link_tier == t) & (topo.link_reach > 0)).sum())
        assert result["transceiver_ports"].get(tier, 0) == 2 * optical
        for ln in optics(result, tier).values():
            assert ln["count"] * ln["links_per_module"] >= ln["ports"]
            assert ln["count"] <= ln["ports"]


def test_q3400_modules_carry_two_800g_links(capsys):
    """144 x 800G on 72 cages: the switch-side module is a 1.6T twin-port OSFP."""
    data = run_json(capsys, "plan", "--gpus", "1024", "--nic", "800G", "--switch",
                    "quantum-x800-q3400", "--json")  # fmt: skip
    down = optics(data, "endpoint_leaf")
    assert down["leaf"]["links_per_module"] == 2
    assert down["leaf"]["item"].startswith("1600G multimode module (2 x 800G)")


def test_link_rate_without_a_module_is_refused():
    """400G over 3 planes is 133.3 Gb/s a link: no module of that rate exists, so the BOM
    refuses instead of pricing a 200G optic (as it did)."""
    spec = FabricSpec(num_gpus=64, nic_speed=400 * GBPS, planes=3)
    with pytest.raises(ConfigError, match=r"no multimode transceiver module of 133.333 Gb/s"):
        bill_of_materials(build_clos(spec), nic_speed=spec.nic_speed)


def test_meta_tiers_are_priced_as_their_switches():
    """Llama 3 sec. 3.3.1: Minipack2 ToRs, Arista 7800 cluster and aggregation switches;
    each tier's line is its own catalog entry, count x unit price."""
    parts = load_parts()
    result, _, _ = plan_fabric({"preset": "meta-llama3-24k"})
    lines = {ln["tier"]: ln for ln in result["bom"] if ln["category"] == "switch"}
    assert {t: ln["item"] for t, ln in lines.items()} == {
        "leaf": "minipack2",
        "spine": "arista-7808r3",
        "core": "arista-7808r3",
    }
    for tier, ln in lines.items():
        unit = parts["switches"][ln["item"]]
        assert ln["count"] == result["switches"][tier]
        assert ln["cost_usd"]["likely"] == pytest.approx(ln["count"] * unit["price"]["likely"])
        assert ln["power_w"] == pytest.approx(ln["count"] * unit["power_w"])


def test_power_is_switches_plus_nics_plus_modules():
    """Switch power is without optics, so the total is switch + NIC + module lines, each
    count x unit watts (cables draw nothing); no optic is counted twice."""
    parts = load_parts()
    result, _, _ = plan_fabric({"preset": "dgx-superpod-h100"})
    by = {c: sum(ln["power_w"] for ln in result["bom"] if ln["category"] == c)
          for c in ("switch", "nic", "transceiver", "cable")}  # fmt: skip
    assert by["cable"] == 0
    assert by["switch"] == pytest.approx(48 * parts["switches"]["quantum-2-qm9700"]["power_w"])
    assert result["power"]["total_w"] == pytest.approx(by["switch"] + by["nic"] + by["transceiver"])


def test_oversubscription_warning(capsys):
    """--oversubscription 10 with --su-nodes 4 (ToR): 8:1 built, said in the JSON and the
    table; a plan that builds what it asks warns of nothing."""
    args = ("plan", "--gpus", "1024", "--design", "spine_leaf", "--oversubscription", "10",
            "--su-nodes", "4")  # fmt: skip
    data = run_json(capsys, *args, "--json")
    assert data["oversubscription"]["leaf"] == pytest.approx(8.0)
    assert data["warnings"] == [
        "leaf oversubscription built 8:1, not the 10:1 asked (whole ports per switch)"
    ]
    assert main(list(args)) == 0
    assert "warning: leaf oversubscription built 8:1" in capsys.readouterr().out
    assert run_json(capsys, "plan", "--gpus", "1024", "--json")["warnings"] == []


def test_whole_port_split_warns():
    """Radix 64 at 2:1: 42 down + 22 up = 1.91:1 on every full leaf."""
    result, _, _ = plan_fabric({"gpus": 1024, "oversubscription": 2.0})
    assert result["warnings"] == [
        f"leaf oversubscription built {42 / 22:.3g}:1, not the 2:1 asked (whole ports per switch)"
    ]
