"""Reviewer's fabric defects: huge oversubscription (D1, D2) and multi-plane modules (D6).

Truth (derived by hand):
- split_ports(k, r): the most down ports d with d / (k - d) <= r and at least one up port,
  i.e. the largest d in [1, k - 1] with d <= r (k - d), computed here in exact fractions;
  for r >= k - 1 that is (k - 1, 1): radix 64 builds at most 63:1.
- 1,024 GPUs on 128 HGX servers (8 x 400G NICs), QM9700 radix 64, rail-optimized: at
  63:1 a leaf takes 63 of a rail's 128 NICs, so ceil(128 / 63) = 3 leaves per rail, 24
  leaves, each with 1 uplink: 24 leaf-spine links, bisection 24 x 400G / 2 = 4.8 Tb/s =
  24 / 1024 of the full 1,024 x 400G / 2.
- the same at 3 tiers with spine oversubscription 1e308: leaves at 1:1 (32 down + 32 up),
  1,024 / 32 = 32 leaves in one pod (a spine's 63 down ports hold it), 32 pod spines each
  with 32 down and 1 up (32:1), 32 spine-core links: bisection 32 x 400G / 2 = 6.4 Tb/s.
- 4 planes of a 400G NIC are 4 x 100G links; the QM9700 runs 128 x 100G on 32 cages, so 4
  links per leaf-side module and radix 128 (64 down + 64 up). Per plane 1,024 links / 64 =
  16 leaves, 64 in all; the server end buys one 400G module per NIC carrying its 4 plane
  links (1,024), the leaf end 64 x 64 / 4 = 1,024 modules of 4 x 100G.
"""

from __future__ import annotations

import dataclasses
from fractions import Fraction

import pytest

from aifabric.errors import ConfigError
from aifabric.fabric.bom import bill_of_materials
from aifabric.fabric.builders.clos import build_clos
from aifabric.fabric.capacity import bisection_bandwidth, capacity_summary
from aifabric.fabric.spec import FabricSpec, split_ports

from .cli_helpers import run_json

GBPS = 1e9 / 8
B400 = 400 * GBPS


def best_split(radix: int, ratio: float) -> tuple[int, int]:
    """Largest d in [1, k - 1] with d <= r (k - d), in exact arithmetic."""
    r = Fraction(ratio)
    down = max(d for d in range(1, radix) if d <= r * (radix - d))
    return down, radix - down


@pytest.mark.parametrize("radix", [4, 64, 128, 188])
@pytest.mark.parametrize("ratio", [1.0, 1.5, 2.0, 3.0, 7.0, 15.0, 62.0, 62.5, 63.0, 64.0,
                                   187.0, 1000.0, 1e18, 1e300, 1e308])  # fmt: skip
def test_split_keeps_an_uplink_and_the_most_down_ports(radix, ratio):
    """Every finite ratio >= 1 splits into whole ports with >= 1 up port, the most down
    ports the ratio allows; 1e18 (1 + r == r in floats) and 1e308 (k r overflows) too."""
    down, up = split_ports(radix, ratio)
    assert (down, up) == best_split(radix, ratio)
    assert up >= 1 and down + up == radix


def test_huge_leaf_oversubscription_builds_63_to_1(capsys):
    """--oversubscription 1e18 and 1e308 build what 1000 builds (24 leaves, 24 uplinks,
    4.8 Tb/s = 24/1024 of full) and warn; before, 1e18 built no uplinks and reported 100%
    bisection, 1e308 raised ValueError (NaN)."""
    base = run_json(capsys, "plan", "--gpus", "1024", "--oversubscription", "1000", "--json")
    for asked in ("1e18", "1e308"):
        data = run_json(capsys, "plan", "--gpus", "1024", "--oversubscription", asked, "--json")
        assert data["switches"] == {"leaf": 24, "spine": 1, "core": 0, "total": 25}
        assert data["links"]["leaf_spine"] == 24
        assert data["bisection_bandwidth_bytes_per_s"] == pytest.approx(24 * B400 / 2)
        assert data["bisection_ratio"] == pytest.approx(24 / 1024)
        assert data["warnings"] == [
            f"leaf oversubscription built 63:1, not the {float(asked):g}:1 asked"
            " (whole ports per switch)"
        ]
        assert {k: v for k, v in data.items() if k != "warnings"} == {
            k: v for k, v in base.items() if k != "warnings"
        }


def test_huge_spine_oversubscription_builds_one_uplink_per_spine(capsys):
    """--spine-oversubscription 1e308 --tiers 3: 32 pod spines with 1 uplink each (32:1
    built, warned), 32 spine-core links, bisection 6.4 Tb/s; before: ValueError (NaN)."""
    data = run_json(capsys, "plan", "--gpus", "1024", "--spine-oversubscription", "1e308",
                    "--tiers", "3", "--json")  # fmt: skip
    assert data["switches"] == {"leaf": 32, "spine": 32, "core": 1, "total": 65}
    assert data["links"]["spine_core"] == 32
    assert data["bisection_bandwidth_bytes_per_s"] == pytest.approx(32 * B400 / 2)
    assert data["warnings"] == [
        "spine oversubscription built 32:1, not the 1e+308:1 asked (whole ports per switch)"
    ]


def test_fabric_without_uplinks_has_no_bisection():
    """Leaves under spines with every leaf-spine link removed: the leaf-spine layer cuts
    to 0, so bisection is 0 and its ratio 0, not the full 1,024 x 400G / 2 it reported
    when empty layers were skipped."""
    topo = build_clos(FabricSpec(num_gpus=1024, nic_speed=B400, switch_radix=64))
    assert bisection_bandwidth(topo) == pytest.approx(1024 * B400 / 2)
    keep = topo.link_tier != 2
    cut = dataclasses.replace(
        topo, **{name: getattr(topo, name)[keep] for name in (
            "link_src", "link_dst", "link_tier", "link_capacity", "link_latency",
            "link_reach")},
    )  # fmt: skip
    assert int((cut.switch_tier == 2).sum()) > 0 and not (cut.link_tier == 2).any()
    assert bisection_bandwidth(cut) == 0.0
    assert capacity_summary(cut)["bisection_ratio"] == 0.0


def test_zero_leaf_uplinks_refused_unless_one_switch():
    """leaf_up_ports=0 leaves 1,024 ports per plane on 16 unconnected leaves: refused,
    naming the field and the rule. 64 ports on one radix-64 switch need no uplinks: built,
    full bisection 64 x 400G / 2."""
    with pytest.raises(ConfigError, match=r"leaf_up_ports\(=0\) must be >= 1 unless one switch"):
        FabricSpec(num_gpus=1024, nic_speed=B400, leaf_down_ports=64, leaf_up_ports=0)
    one = build_clos(FabricSpec(num_gpus=64, nic_speed=B400, leaf_down_ports=64,
                                leaf_up_ports=0))  # fmt: skip
    assert one.num_switches == 1
    assert bisection_bandwidth(one) == pytest.approx(64 * B400 / 2)


def test_multi_plane_nic_buys_one_module_per_nic(capsys):
    """--nic 400G --planes 4: 1,024 server-end 400G modules of 4 x 100G (was 4,096 x 100G),
    1,024 leaf-end 400G modules of 4 x 100G (the QM9700's 4 x 100G per cage); every one of
    the 2 x 4,096 optical link ends is served."""
    data = run_json(capsys, "plan", "--gpus", "1024", "--nic", "400G", "--planes", "4", "--json")
    ends = {ln["end"]: ln for ln in data["bom"]
            if ln["category"] == "transceiver" and ln["tier"] == "endpoint_leaf"}  # fmt: skip
    assert data["switches"]["leaf"] == 64 and data["nics"] == 1024
    server, leaf = ends["server"], ends["leaf"]
    assert server["item"] == "400G multimode module (4 x 100G), server end"
    assert (server["count"], server["links_per_module"], server["ports"]) == (1024, 4, 4096)
    assert leaf["item"] == "400G multimode module (4 x 100G), leaf end"
    assert (leaf["count"], leaf["links_per_module"], leaf["ports"]) == (1024, 4, 4096)
    assert data["transceiver_ports"]["endpoint_leaf"] == 2 * 4096


def test_nic_with_a_cage_per_plane_buys_a_module_per_link():
    """64 GPUs, 400G NICs over 2 planes (generic switch, 1 link per module): by default one
    400G module of 2 x 200G per NIC (64); endpoint_links_per_module=1 (a dual-port 2 x 200G
    NIC, Alibaba HPN) one 200G module per port (128)."""

    def server_end(**extra: int) -> tuple[str, int]:
        spec = FabricSpec(num_gpus=64, nic_speed=B400, planes=2, **extra)
        bom = bill_of_materials(build_clos(spec), nic_speed=spec.nic_speed)
        (line,) = [ln for ln in bom["lines"] if ln.get("end") == "server"]
        return line["item"], line["count"]

    assert server_end() == ("400G multimode module (2 x 200G), server end", 64)
    assert server_end(endpoint_links_per_module=1) == (
        "200G multimode module (1 x 200G), server end", 128)  # fmt: skip
    with pytest.raises(ConfigError, match=r"endpoint_links_per_module\(=0\) must be an integer"):
        FabricSpec(num_gpus=64, nic_speed=B400, endpoint_links_per_module=0)
