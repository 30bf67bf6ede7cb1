"""Bill of materials, power and cost of a built fabric.

Counts come from the topology's arrays: switches per tier (each tier its own model),
NICs (one per NIC port of a server; planes share a NIC), links per tier and reach class.
A copper link is one DAC; an optical link is one fibre plus a transceiver end at each
side, bought as modules that carry one or more links (NVIDIA's twin-port 800G OSFP,
MMA4Z00-NS, carries two 400G links through two MPO-12 connectors; DGX H100 exposes its
eight ConnectX-7 through four such OSFP cages; a NIC whose port is split over planes takes
one module for its links in every plane, a 400G module carrying 4 x 100G at 4 planes, as
NVIDIA's multi-plane designs break one cage out to several planes). Prices and power per part come from the
editable catalog ``catalog/data/parts.yaml`` (dated low/likely/high USD); switch power
there is without optics, since the modules are counted and powered here.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np

from aifabric.errors import ConfigError
from aifabric.fabric.topology import LINK_TIER_NAMES, TIER_NAMES, Topology

PRICE_POINTS = ("low", "likely", "high")


def load_parts(path: str | None = None) -> dict[str, Any]:
    """The parts catalog (shipped, or a user's file of the same shape), checked whole.

    Rate tables (``nics``, each ``transceivers`` reach) are keyed by Gb/s; their keys come
    back as text ("400"), however the file wrote them.

    Raises:
        ConfigError: an unreadable or malformed file (see aifabric.yaml_input), a missing
            section, a rate that is not a positive number, or a price or power that is not a
            finite number >= 0; one line naming the file and the entry.
    """
    from aifabric.yaml_input import load_file, load_text

    if path is None:
        from importlib import resources

        what = "shipped price catalog parts.yaml"
        text = resources.files("aifabric.catalog").joinpath("data", "parts.yaml").read_text("utf-8")
        data = load_text(text, what)
    else:
        what = f"price catalog {path!r}"
        data = load_file(path, what)
    return _checked_parts(data, what)


_SECTIONS = ("switches", "nics", "transceivers", "cables")


def _checked_parts(data: Any, what: str) -> dict[str, Any]:
    if not isinstance(data, dict):
        raise ConfigError(
            f"{what} must be a mapping with sections {', '.join(_SECTIONS)}; "
            "copy the shape of the shipped catalog/data/parts.yaml"
        )
    out = dict(data)
    for key in _SECTIONS:
        if not isinstance(data.get(key), dict) or not data[key]:
            raise ConfigError(f"{what} must have a non-empty {key!r} section (a mapping)")
    if "generic" not in data["switches"]:
        raise ConfigError(f"{what}: switches needs a 'generic' entry (used for unlisted models)")
    for reach in Topology.REACHES:
        if reach not in data["cables"]:
            raise ConfigError(f"{what}: cables needs a {reach!r} entry")
    for reach in Topology.REACHES[1:]:  # optical reaches take transceiver modules
        if not isinstance(data["transceivers"].get(reach), dict):
            raise ConfigError(f"{what}: transceivers needs a {reach!r} table of module rates")
    for name, entry in data["switches"].items():
        _check_entry(entry, f"{what}: switches.{name}")
    for name, entry in data["cables"].items():
        _check_entry(entry, f"{what}: cables.{name}")
    out["nics"] = _rate_table(data["nics"], f"{what}: nics")
    out["transceivers"] = {
        reach: _rate_table(table, f"{what}: transceivers.{reach}")
        if isinstance(table, dict) else table
        for reach, table in data["transceivers"].items()
    }  # fmt: skip
    gpus = data.get("gpus", {})
    if gpus is None or not isinstance(gpus, dict):
        raise ConfigError(f"{what}: gpus must be a mapping of GPU names to prices")
    for name, entry in gpus.items():
        _check_entry(entry, f"{what}: gpus.{name}")
    out["gpus"] = gpus
    return out


def _rate_table(table: dict[Any, Any], where: str) -> dict[str, Any]:
    if not table:
        raise ConfigError(f"{where} is empty; list at least one rate in Gb/s")
    out: dict[str, Any] = {}
    for key, entry in table.items():
        try:
            rate = float(key)
        except (TypeError, ValueError):
            rate = math.nan
        if isinstance(key, bool) or not math.isfinite(rate) or rate <= 0:
            raise ConfigError(f'{where}: key {key!r} must be a line rate in Gb/s (e.g. "400")')
        _check_entry(entry, f"{where}.{key}")
        out[str(key)] = entry
    return out


def _check_entry(entry: Any, where: str) -> None:
    if not isinstance(entry, dict):
        raise ConfigError(f"{where} must be a mapping (source, power_w, price)")
    _check_amount(entry.get("power_w", 0), f"{where}.power_w")
    price = entry.get("price", {})
    if not isinstance(price, dict):
        raise ConfigError(f"{where}.price must be a mapping {{low, likely, high}} in USD")
    for point in PRICE_POINTS:
        _check_amount(price.get(point, 0), f"{where}.price.{point}")


def _check_amount(value: Any, where: str) -> None:
    ok = isinstance(value, int | float) and not isinstance(value, bool)
    if not ok or not math.isfinite(value) or value < 0:
        raise ConfigError(f"{where}(={value!r}) must be a finite number >= 0")


def _rate_key(table: dict[str, Any], speed: float, what: str) -> str:
    gbps = speed * 8 / 1e9
    keys = sorted(table, key=float)
    for key in keys:
        if float(key) >= gbps - 1e-6:
            return key
    raise ConfigError(f"no {what} in the price catalog for {gbps:g} Gb/s; add one")


def _module_key(table: dict[str, Any], rate: float, what: str) -> str:
    """The catalog entry of a module of exactly ``rate`` bytes/s (no optic runs between
    rates: a 133 Gb/s link has no module, so it is refused rather than priced as 200G)."""
    gbps = rate * 8 / 1e9
    for key in table:
        if abs(float(key) - gbps) <= 1e-6 * gbps:
            return str(key)
    rates = ", ".join(sorted(table, key=float))
    raise ConfigError(f"no {what} of {gbps:g} Gb/s in the price catalog (it has {rates}); add one")


def links_per_module(model: str, speed: float) -> int:
    """Links one switch-side module carries at ``speed``: the switch's ports at that speed
    over its cages (QM9700: 64 x 400G on 32 twin-port OSFP cages = 2); 1 when unknown."""
    from aifabric.catalog import switches

    switch = switches().get(model)
    ports = switch.ports_at(speed) if switch is not None else None
    if switch is None or ports is None or not switch.cages:
        return 1
    return max(1, ports // switch.cages)


def _tier_models(switch_model: str | Mapping[str, str]) -> dict[str, str]:
    if isinstance(switch_model, str):
        return dict.fromkeys(TIER_NAMES.values(), switch_model)
    return dict(switch_model)


def _link_ends(topo: Topology, tier: int, mask: np.ndarray, speed: float,
               models: dict[str, str]) -> list[tuple[str, np.ndarray, int]]:  # fmt: skip
    """(end, links per device, links per module) for both ends of the masked links.

    Server ends group by server (endpoint_links_per_module links per module, e.g. DGX
    H100's twin-port OSFPs; unset: the planes, one module per NIC carrying its link in
    every plane); ports of no server (management) take a module each; switch ends group
    by switch (their cages' breakout at the link speed).
    """
    e, s = topo.num_endpoints, topo.num_switches
    src, dst = topo.link_src[mask], topo.link_dst[mask]
    ends: list[tuple[str, np.ndarray, int]] = []
    if tier == 1:
        node = topo.endpoint_node[src]
        servers = np.bincount(node[node >= 0], minlength=topo.num_nodes)
        per_module = topo.meta.get("endpoint_links_per_module") or topo.planes
        ends.append(("server", servers, int(per_module)))
        if (node < 0).any():
            ends.append(("appliance", np.ones(int((node < 0).sum()), np.int64), 1))
    else:
        lower = TIER_NAMES[tier - 1]
        counts = np.bincount(src - e, minlength=s)[topo.switch_tier == tier - 1]
        ends.append((lower, counts, links_per_module(models[lower], speed)))
    upper = TIER_NAMES[tier]
    counts = np.bincount(dst - e, minlength=s)[topo.switch_tier == tier]
    ends.append((upper, counts, links_per_module(models[upper], speed)))
    return ends


def bill_of_materials(topo: Topology, *, nic_speed: float,
                      switch_model: str | Mapping[str, str] = "generic",
                      gpu: str | None = None, parts: dict[str, Any] | None = None,
                      include_gpus: bool = False) -> dict[str, Any]:  # fmt: skip
    """Counts, power (W) and cost (USD low/likely/high) of the fabric's parts.

    switch_model: one catalog model for every tier, or a model per tier ({"leaf": ...,
    "spine": ..., "core": ...}). Transceivers are counted as the modules bought: at each
    end of an optical link a module carries links_per_module links (a twin-port 800G OSFP
    carries two 400G links), counted per server or switch as ceil(links / per module) and
    priced at the module's rate (per module x link rate). Switch power excludes optics,
    which are counted here.
    """
    parts = parts or load_parts()
    models = _tier_models(switch_model)
    lines: list[dict[str, Any]] = []

    def add(category: str, item: str, tier: str, count: int, entry: dict[str, Any],
            **extra: Any) -> None:  # fmt: skip
        if count <= 0:
            return
        price = entry.get("price", {})
        lines.append({
            "category": category, "item": item, "tier": tier, "count": count,
            "power_w": count * float(entry.get("power_w", 0.0)),
            "cost_usd": {p: count * float(price.get(p, 0.0)) for p in PRICE_POINTS},
            "source": entry.get("source", ""), **extra,
        })  # fmt: skip

    for tier, count in topo.switches_by_tier().items():
        entry = parts["switches"].get(models[tier]) or parts["switches"]["generic"]
        add("switch", models[tier], tier, count, entry)
    nics = topo.num_nodes * topo.nics_per_node
    nic_key = _rate_key(parts["nics"], nic_speed, "NIC")
    add("nic", f"{nic_key}G NIC", "endpoint", nics, parts["nics"][nic_key])

    for t, tier_name in LINK_TIER_NAMES.items():
        in_tier = topo.link_tier == t
        if not in_tier.any():
            continue
        speed = float(topo.link_capacity[in_tier][0])
        for code, reach in enumerate(topo.REACHES):
            mask = in_tier & (topo.link_reach == code)
            count = int(mask.sum())
            if count == 0:
                continue
            add("cable", f"{reach} cable", tier_name, count, parts["cables"][reach])
            if reach == "copper":
                continue
            table = parts["transceivers"][reach]
            for end, per_device, per_module in _link_ends(topo, t, mask, speed, models):
                key = _module_key(table, per_module * speed, f"{reach} transceiver module")
                link = f"{speed * 8 / 1e9:g}G"
                item = f"{key}G {reach} module ({per_module} x {link}), {end} end"
                add("transceiver", item, tier_name, int((-(-per_device // per_module)).sum()),
                    table[key], links_per_module=per_module, end=end,
                    ports=int(per_device.sum()))  # fmt: skip
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

    def count(category: str, key: str = "count") -> dict[str, int]:
        out: dict[str, int] = {}
        for ln in lines:
            if ln["category"] == category:
                out[ln["tier"]] = out.get(ln["tier"], 0) + ln[key]
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
        cost["network_to_gpu_cost_ratio"] = total["likely"] / cost["gpu_cost_usd"]
    return {
        "lines": lines,
        "nics": sum(ln["count"] for ln in lines if ln["category"] == "nic"),
        "ports": ports,
        "cables": count("cable"),
        "transceivers": count("transceiver"),
        "transceiver_ports": count("transceiver", "ports"),  # link ends the modules serve
        "power": {"total_w": power, "per_gpu_w": power / topo.num_gpus},
        "cost": cost,
    }
