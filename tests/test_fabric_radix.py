"""Port speed is bounded by the switch: radix from the catalog's capacity and breakouts.

Truth:
- a switch of one-direction capacity C runs at most C / s ports of speed s: 51.2 Tb/s is
  64 x 800G or 128 x 400G (Broadcom Tomahawk 5 brief; NVIDIA SN5600 datasheet: 64 x
  800GbE, 128 x 400GbE); the QM9700 is 64 x NDR 400G or 128 x NDR200 on 32 twin-port OSFP
  cages, "51.2 Tb/s bidirectional" = 25.6 Tb/s per direction (QM9700 datasheet), never
  64 x 800G;
- a leaf with ports at two speeds must fit their sum (Alibaba HPN, SIGCOMM 2024: 128 x
  200G + 60 x 400G = 49.6 Tb/s on a 51.2T ToR);
- a 3-tier non-blocking Clos of radix k holds k^3/4 endpoints (Al-Fares 2008): 100,000
  400G NIC ports need k^3/4 >= 100,000, so k = 64 (65,536) does not and k = 128 (524,288)
  does;
- non-blocking bisection = N b / 2: 1,024 x 800 Gb/s / 2 = 409.6 Tb/s.
"""

from __future__ import annotations

import pytest

from aifabric.catalog import get_switch, switches
from aifabric.errors import ConfigError
from aifabric.fabric.builders.presets import get_preset
from aifabric.fabric.plan import plan_fabric
from aifabric.fabric.radix import check_fabric, check_ports, radix_at
from aifabric.fabric.spec import FabricSpec

from .cli_helpers import run_error, run_json

GBPS = 1e9 / 8  # bytes/s per Gb/s


@pytest.mark.parametrize("switch", sorted(switches()))
def test_every_breakout_fits_the_capacity(switch):
    """Catalog invariant: ports x speed <= one-direction capacity for every port mode,
    and the switch's nominal ports x port_speed is one of its modes."""
    sw = get_switch(switch)
    assert sw.port_modes, switch
    for speed, count in sw.port_modes:
        assert count * speed <= sw.capacity * (1 + 1e-12)
    assert sw.ports_at(sw.port_speed) == sw.ports


@pytest.mark.parametrize(
    ("switch", "gbps", "ports"),
    [
        ("tomahawk-5", 800, 64), ("tomahawk-5", 400, 128), ("spectrum-4-sn5600", 800, 64),
        ("spectrum-4-sn5600", 400, 128), ("quantum-2-qm9700", 400, 64),
        ("quantum-2-qm9700", 200, 128),
    ],
)  # fmt: skip
def test_radix_is_the_breakout_at_the_speed(switch, gbps, ports):
    """51.2 Tb/s / 800G = 64 and / 400G = 128; QM9700 25.6 Tb/s / 400G = 64, / 200G = 128."""
    sw = get_switch(switch)
    assert radix_at(sw, gbps * GBPS) == ports
    assert ports * gbps * GBPS <= sw.capacity * (1 + 1e-12)


def test_qm9700_capacity_is_one_direction():
    """NVIDIA's 51.2 Tb/s for the QM9700 counts both directions: 64 x 400G = 25.6 Tb/s."""
    assert get_switch("quantum-2-qm9700").capacity == pytest.approx(64 * 400 * GBPS)


def test_800g_nic_on_qm9700_is_refused(capsys):
    """Before: 1,024 GPUs at 800G on radix-64 QM9700s reported 409.6 Tb/s of bisection,
    twice what a QM9700 can carry. Now one line naming the limit, exit 2."""
    msg = run_error(capsys, "plan", "--gpus", "1024", "--nic", "800G", "--json")
    assert "nic 800 Gb/s is not a port speed of quantum-2-qm9700" in msg
    assert "64 x 400G" in msg and "25.6 Tb/s per direction" in msg


def test_800g_on_a_51t_switch_is_64_ports(capsys):
    """The same 1,024 x 800G on SN5600s (64 x 800G): 32 leaves + 16 spines, 409.6 Tb/s."""
    data = run_json(capsys, "plan", "--gpus", "1024", "--nic", "800G", "--switch",
                    "spectrum-4-sn5600", "--json")  # fmt: skip
    assert data["switch_radix"] == 64
    assert data["switches"] == {"leaf": 32, "spine": 16, "core": 0, "total": 48}
    assert data["bisection_bandwidth_bytes_per_s"] * 8 / 1e12 == pytest.approx(409.6)


def test_sn5600_runs_128_x_400g_for_100k_gpus(capsys):
    """Before: refused (radix 64: 98 pods > 64). At 400G an SN5600 is radix 128: 100,000
    NIC ports <= 128^3 / 4 = 524,288, so 3 tiers hold them non-blocking."""
    data = run_json(capsys, "plan", "--gpus", "100000", "--switch", "spectrum-4-sn5600",
                    "--tiers", "3", "--json")  # fmt: skip
    assert data["switch_radix"] == 128 and data["tiers"] == 3
    assert data["max_endpoints_nonblocking"] == 128**3 // 4
    assert data["bisection_bandwidth_bytes_per_s"] == pytest.approx(100000 * 400 * GBPS / 2)
    assert 64**3 // 4 < 100000 <= 128**3 // 4


def test_given_radix_above_capacity_is_refused(capsys):
    """--switch-radix 128 at 400G on a QM9700: 128 x 400G = 51.2 Tb/s > 25.6 Tb/s."""
    msg = run_error(capsys, "plan", "--gpus", "1024", "--switch-radix", "128", "--json")
    assert "switch_radix(=128) x 400 Gb/s = 51.2 Tb/s exceeds quantum-2-qm9700" in msg
    assert "at most 64 ports of 400 Gb/s" in msg


def test_given_radix_within_capacity_is_kept(capsys):
    """--switch-radix 32 uses fewer ports than the switch has: allowed, and used."""
    data = run_json(capsys, "plan", "--gpus", "256", "--switch-radix", "32", "--json")
    assert data["switch_radix"] == 32


def test_planes_need_a_port_speed_the_switch_has(capsys):
    """400G / 3 planes = 133.3 Gb/s: no port mode (or optic) of that speed; 400G / 2 =
    200G is NDR200, 128 ports on a QM9700."""
    msg = run_error(capsys, "plan", "--gpus", "1024", "--planes", "3", "--json")
    assert "link speed 133.333 Gb/s (nic 400 Gb/s / planes(=3))" in msg
    data = run_json(capsys, "plan", "--gpus", "1024", "--planes", "2", "--json")
    assert data["switch_radix"] == 128
    assert data["bisection_bandwidth_bytes_per_s"] == pytest.approx(1024 * 400 * GBPS / 2)


def test_frontend_radix_follows_its_speed(capsys):
    """The 12.8T front-end switch runs 64 x 200G; at 400G it has 32 ports, not 64."""
    assert radix_at(get_switch("eth-12.8t"), 200 * GBPS) == 64
    assert radix_at(get_switch("eth-12.8t"), 400 * GBPS) == 32
    data = run_json(capsys, "plan", "--gpus", "1024", "--frontend-nic", "400G", "--json")
    assert data["frontend"]["links"]["endpoint_leaf"] == 128


def test_mixed_speed_leaf_must_fit_the_sum():
    """HPN ToR: 128 x 200G + 60 x 400G = 49.6 <= 51.2 Tb/s fits; 128 x 200G + 70 x 400G
    = 53.6 Tb/s does not, although each speed alone is within its breakout."""
    th5 = get_switch("tomahawk-5")
    check_ports(th5, [(128, 200 * GBPS), (60, 400 * GBPS)], "leaf")
    with pytest.raises(ConfigError, match=r"128 x 200G \+ 70 x 400G = 53.6 Tb/s exceed"):
        check_ports(th5, [(128, 200 * GBPS), (70, 400 * GBPS)], "leaf")


@pytest.mark.parametrize("name", ["dgx-superpod-h100", "meta-llama3-24k", "alibaba-hpn"])
def test_presets_fit_their_switches(name):
    """Every tier of every preset runs within its published switch."""
    check_fabric(get_preset(name).spec, switches())
    result, _, _ = plan_fabric({"preset": name})
    assert result["gpus"] > 0


def test_meta_aggregation_is_not_a_51t_box():
    """Meta's 256-port spine at 400G is 102.4 Tb/s: more than a 51.2T Tomahawk 5 (so the
    preset prices it as the Arista 7800 the Llama 3 paper names)."""
    from dataclasses import replace

    spec = get_preset("meta-llama3-24k").spec
    assert spec.spine_switch_model == "arista-7808r3"
    with pytest.raises(ConfigError, match=r"spine switch_radix\(=256\) x 400 Gb/s"):
        check_fabric(replace(spec, spine_switch_model="tomahawk-5"), switches())


def test_unknown_models_are_unchecked():
    """A builder-level spec of the placeholder model has no catalog limits to check."""
    check_fabric(FabricSpec(num_gpus=64, nic_speed=1600 * GBPS), switches())
