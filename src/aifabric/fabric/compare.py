"""Training vs inference fabrics for the same GPUs, and seed 004's hybrid strategies.

Training: rail-optimized non-blocking Clos, one 400G-class NIC per GPU (seed 004: DGX H100,
8 x 400G). Inference: ToR spine-leaf with 2 x 100G per 8-GPU server and 4:1
oversubscription (seed 004: 25 Gb/s per GPU, 4:1 to 10:1), one ToR per rack of 4 servers. Utilization ranges of the
strategies are seed 004's (separate clusters 50-60 %, time-division multiplexing 80-90 %).
"""

from __future__ import annotations

from typing import Any

from aifabric.fabric.plan import plan_fabric

RACK_SERVERS = 4  # 8-GPU servers per rack (~10 kW each): one ToR per rack
UTILIZATION = {"separate_clusters": (0.50, 0.60), "time_division": (0.80, 0.90),
               "separate_networks": None}  # fmt: skip


def _split_cost(result: dict[str, Any]) -> dict[str, float]:
    split = {"nics_usd": 0.0, "switches_usd": 0.0, "optics_usd": 0.0}
    for line in result["bom"]:
        key = {"nic": "nics_usd", "switch": "switches_usd"}.get(line["category"], "optics_usd")
        split[key] += line["cost_usd"]["likely"]
    return split


def _summary(result: dict[str, Any]) -> dict[str, Any]:
    return {
        "design": result.get("design"),
        "nic_speed_bytes_per_s": result["nic_speed_bytes_per_s"],
        "nics": result["nics"],
        "switches": result["switches"],
        "transceivers": sum(result["transceivers"].values()),
        "cost": {**result["cost"], **_split_cost(result)},
        "power": result["power"],
        "bandwidth_per_gpu_bytes_per_s": result["bandwidth_per_gpu_bytes_per_s"],
        "bisection_bandwidth_bytes_per_s": result["bisection_bandwidth_bytes_per_s"],
        "oversubscription": result["oversubscription"],
    }


def compare_training_inference(
    *, gpus: int, gpu: str, max_work: float | None = None
) -> dict[str, Any]:
    """Side-by-side fabrics and hybrid strategies for ``gpus`` GPUs of type ``gpu``
    (``max_work``: as for plan_fabric's resource guard)."""
    train, _, _ = plan_fabric({"gpus": gpus, "gpu": gpu, "design": "rail_optimized",
                               "switch": "quantum-2-qm9700"}, max_work=max_work)  # fmt: skip
    infer, _, _ = plan_fabric({"gpus": gpus, "gpu": gpu, "design": "spine_leaf",
                               "nic": "100G", "nics_per_node": 2, "switch": "eth-12.8t",
                               "switch_radix": 128, "oversubscription": 4.0,
                               "su_nodes": RACK_SERVERS}, max_work=max_work)  # fmt: skip
    t_cost, i_cost = train["cost"]["total_usd"], infer["cost"]["total_usd"]
    gpu_cost = train["cost"].get("gpu_cost_usd", 0.0)
    strategies = []
    for name, n_gpus, network in (
        ("separate_clusters", 2 * gpus, t_cost + i_cost),
        ("time_division", gpus, t_cost),
        ("separate_networks", gpus, t_cost + i_cost),
    ):
        gpu_bill = gpu_cost * n_gpus / gpus
        util = UTILIZATION[name]
        capex = gpu_bill + network
        strategies.append({
            "strategy": name, "gpus": n_gpus, "network_cost_usd": network,
            "gpu_cost_usd": gpu_bill, "capex_usd": capex,
            "utilization": None if util is None else {"low": util[0], "high": util[1]},
            "capex_per_utilized_gpu_usd": None if util is None
            else capex / (n_gpus * (util[0] + util[1]) / 2),
        })  # fmt: skip
    return {
        "gpus": gpus,
        "gpu": gpu,
        "training": _summary(train),
        "inference": _summary(infer),
        "training_to_inference_cost_ratio": t_cost / i_cost if i_cost else None,
        "strategies": strategies,
    }
