"""``simulate train``'s ``cost_usd``: one iteration's capital on the planned cluster.

Truth: the parts catalog's prices summed by hand over a fabric small enough to count
(16 H100 rail-optimized), the straight-line amortization written out, ``aifabric plan``'s
cost of the same fabric, and invariance (the price per second of the cluster does not
depend on the network model that times the step).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from aifabric.cli.plan import plan_scenario
from aifabric.explore.runners import run_command

from .cli_helpers import run_json

JOB = {"model": "llama3-8b", "gpus": 16, "tp": 8, "dp": 2, "seq_len": 2048,
       "global_batch": 32}  # fmt: skip
LIFE_H = 5 * 365.25 * 24  # serving.config.Economics.amortization_years = 5, in hours
H100_USD = 28_000  # parts.yaml gpus.h100-sxm.price.likely


def _train(capsys: pytest.CaptureFixture[str], tmp_path: Path, **keys: Any) -> dict[str, Any]:
    path = tmp_path / "t.yaml"
    path.write_text(yaml.safe_dump({**JOB, **keys}))
    return run_json(capsys, "simulate", "train", "-f", str(path), "--json")


def test_sixteen_gpus_cost_the_hand_counted_bill_of_materials_over_five_years(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """2 servers x 8 NICs, rail-optimized, one leaf (parts.yaml, likely prices):
    1 QM9700 switch 32,000 + 16 x 400G NIC 2,200 = 35,200 + 16 multimode cables 80 = 1,280
    + 16 server-end 400G modules 750 = 12,000 + 8 leaf-end twin-port 800G modules 1,300 =
    10,400 (16 links, two per module): 90,880 USD. An iteration of t seconds costs
    16 x t / 3600 x 28,000 / 43,830 h (GPUs) + 90,880 x t / (43,830 x 3600 s) (network)."""
    r = _train(capsys, tmp_path, network="analytic")
    c, t = r["cost_usd"], r["iteration_time_s"]
    assert c["network_capex_usd"] == 90_880.0
    assert c["gpus"] == 16
    assert c["gpu_hour_usd"] == pytest.approx(H100_USD / LIFE_H, rel=1e-12)
    assert c["gpu_capital_usd"] == pytest.approx(16 * t / 3600 * H100_USD / LIFE_H, rel=1e-12)
    assert c["network_capital_usd"] == pytest.approx(90_880 * t / (LIFE_H * 3600), rel=1e-12)
    assert c["total_usd"] == pytest.approx(c["gpu_capital_usd"] + c["network_capital_usd"],
                                           rel=1e-12)  # fmt: skip
    assert c["usd_per_token"] == pytest.approx(c["total_usd"] / (32 * 2048), rel=1e-12)
    assert "to_train_usd" not in c
    # the same fabric planned: its BOM lines add up to the same capex
    plan = plan_scenario({"gpus": 16})[0]
    assert plan["cost"]["total_usd"] == 90_880.0
    assert sum(line["cost_usd"]["likely"] for line in plan["bom"]) == 90_880.0


@pytest.mark.parametrize("fabric", [{"design": "clos", "oversubscription": 2},
                                    {"design": "spine_leaf", "oversubscription": 4},
                                    {"design": "rail_optimized", "tiers": 3}])  # fmt: skip
def test_network_capex_is_plans_cost_of_the_same_fabric_and_independent_of_the_network_model(
    fabric: dict[str, Any],
) -> None:
    scenario = {**JOB, "gpus": 64, "dp": 8, "global_batch": 64, **fabric}
    plan = plan_scenario({k: v for k, v in scenario.items()
                          if k in ("gpus", "design", "oversubscription", "tiers")})[0]  # fmt: skip
    by_net = {net: run_command("simulate train", {**scenario, "network": net})
              for net in ("analytic", "flow")}  # fmt: skip
    for r in by_net.values():
        assert r["cost_usd"]["network_capex_usd"] == plan["cost"]["total_usd"]
        assert r["cost_usd"]["gpus"] == plan["gpus"] == 64
    # different step times, one price per second of the cluster
    a, f = by_net["analytic"], by_net["flow"]
    assert a["iteration_time_s"] != f["iteration_time_s"]
    assert a["cost_usd"]["total_usd"] / a["iteration_time_s"] == pytest.approx(
        f["cost_usd"]["total_usd"] / f["iteration_time_s"], rel=1e-12)  # fmt: skip


def test_to_train_is_per_token_cost_times_the_dataset_and_unpriced_gpus_give_nulls(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    r = _train(capsys, tmp_path, network="analytic", dataset_tokens="1e9")
    c = r["cost_usd"]
    assert c["to_train_usd"] == pytest.approx(c["usd_per_token"] * 1e9, rel=1e-12)
    # ... which is also total per step x steps (time to train / iteration time)
    steps = r["time_to_train_s"] / r["iteration_time_s"]
    assert c["to_train_usd"] == pytest.approx(c["total_usd"] * steps, rel=1e-9)
    # a100-40g has no price in parts.yaml: GPU figures and totals are null, the network stays
    r = _train(capsys, tmp_path, network="analytic", gpu="a100-40g")
    c = r["cost_usd"]
    assert c["gpu_hour_usd"] is c["gpu_capital_usd"] is c["total_usd"] is None
    assert c["usd_per_token"] is None
    assert c["network_capex_usd"] > 0 and c["network_capital_usd"] > 0
