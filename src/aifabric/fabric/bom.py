"""Bill of materials, power and cost of a built fabric.

Counts come from the topology's arrays: switches per tier, NICs (one per NIC port of a
server; planes share a NIC), links per tier and reach class. A copper link is one DAC; an
optical link is one fibre plus a transceiver at each end. Prices and power per part come
from the editable catalog ``catalog/data/parts.yaml`` (dated low/likely/high USD).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from aifabric.errors import ConfigError
from aifabric.fabric.topology import LINK_TIER_NAMES, TIER_NAMES, Topology

PRICE_POINTS = ("low", "likely", "high")


def load_parts(path: str | None = None) -> dict[str, Any]:
    """The parts catalog (shipped, or a user's file of the same shape)."""
    import yaml

    if path is None:
        from importlib import resources

        text = resources.files("aifabric.catalog").joinpath("data", "parts.yaml").read_text("utf-8")
    else:
        try:
            with open(path, encoding="utf-8") as f:
                text = f.read()
        except OSError as exc:
            raise ConfigError(f"cannot read price catalog {path!r}: {exc.strerror}") from None
    data: dict[str, Any] = yaml.safe_load(text)
    for key in ("switches", "nics", "transceivers", "cables"):
        if not isinstance(data, dict) or key not in data:
            raise ConfigError(f"price catalog must have a {key!r} section")
    return data


def _rate_key(table: dict[str, Any], speed: float, what: str) -> str:
    gbps = speed * 8 / 1e9
    keys = sorted(table, key=float)
    for key in keys:
        if float(key) >= gbps - 1e-6:
            return key
    raise ConfigError(f"no {what} in the price catalog for {gbps:g} Gb/s; add one")


def bill_of_materials(topo: Topology, *, nic_speed: float, switch_model: str = "generic",
                      gpu: str | None = None, parts: dict[str, Any] | None = None,
                      include_gpus: bool = False) -> dict[str, Any]:  # fmt: skip
    """Counts, power (W) and cost (USD low/likely/high) of the fabric's parts."""
    parts = parts or load_parts()
    lines: list[dict[str, Any]] = []

    def add(category: str, item: str, tier: str, count: int, entry: dict[str, Any]) -> None:
        if count <= 0:
            return
        price = entry.get("price", {})
        lines.append({
            "category": category, "item": item, "tier": tier, "count": count,
            "power_w": count * float(entry.get("power_w", 0.0)),
            "cost_usd": {p: count * float(price.get(p, 0.0)) for p in PRICE_POINTS},
            "source": entry.get("source", ""),
        })  # fmt: skip

    switch_entry = parts["switches"].get(switch_model) or parts["switches"]["generic"]
    for tier, count in topo.switches_by_tier().items():
        add("switch", switch_model, tier, count, switch_entry)
    nics = topo.num_nodes * topo.nics_per_node
    nic_key = _rate_key(parts["nics"], nic_speed, "NIC")
    add("nic", f"{nic_key}G NIC", "endpoint", nics, parts["nics"][nic_key])

    for t, tier_name in LINK_TIER_NAMES.items():
        mask = topo.link_tier == t
        if not mask.any():
            continue
        speed = float(topo.link_capacity[mask][0])
        reach_counts = np.bincount(topo.link_reach[mask], minlength=3)
        for code, reach in enumerate(topo.REACHES):
            count = int(reach_counts[code])
            if count == 0:
                continue
            add("cable", f"{reach} cable", tier_name, count, parts["cables"][reach])
            if reach != "copper":
                table = parts["transceivers"][reach]
                key = _rate_key(table, speed, f"{reach} transceiver")
                add("transceiver", f"{key}G {reach}", tier_name, 2 * count, table[key])
    if include_gpus and gpu is not None:
        add("gpu", gpu, "compute", topo.num_gpus, parts.get("gpus", {}).get(gpu, {}))
    return _summarise(topo, lines, parts, gpu)


def _summarise(topo: Topology, lines: list[dict[str, Any]], parts: dict[str, Any],
               gpu: str | None) -> dict[str, Any]:  # fmt: skip
    network = [ln for ln in lines if ln["category"] != "gpu"]
    total = {p: sum(ln["cost_usd"][p] for ln in network) for p in PRICE_POINTS}
    power = sum(ln["power_w"] for ln in network)
    used = topo.ports_used()
    ports = {}
    for t, name in TIER_NAMES.items():
        mask = topo.switch_tier == t
        if mask.any():
            cap = int(topo.switch_ports[mask].sum())
            ports[name] = {"total": cap, "used": int(used[mask].sum()),
                           "free": cap - int(used[mask].sum())}  # fmt: skip

    def count(category: str) -> dict[str, int]:
        out: dict[str, int] = {}
        for ln in lines:
            if ln["category"] == category:
                out[ln["tier"]] = out.get(ln["tier"], 0) + ln["count"]
        return out

    cost: dict[str, Any] = {
        "total_usd": total["likely"],
        "low_usd": total["low"],
        "high_usd": total["high"],
        "per_gpu_usd": total["likely"] / topo.num_gpus,
        "price_date": parts.get("date"),
    }
    gpu_price = parts.get("gpus", {}).get(gpu or "", {}).get("price", {}).get("likely")
    if gpu_price:
        cost["gpu_cost_usd"] = gpu_price * topo.num_gpus
        cost["network_share_of_gpu_cost"] = total["likely"] / cost["gpu_cost_usd"]
    return {
        "lines": lines,
        "nics": sum(ln["count"] for ln in lines if ln["category"] == "nic"),
        "ports": ports,
        "cables": count("cable"),
        "transceivers": count("transceiver"),
        "power": {"total_w": power, "per_gpu_w": power / topo.num_gpus},
        "cost": cost,
    }
