"""The planner: options -> fabric -> BOM, cost, power, capacity, and a job's traffic per tier.

``plan_fabric`` is what ``aifabric plan`` runs; ``compare_training_inference`` is
``aifabric plan compare`` (seed 004: training vs inference fabrics and hybrid strategies).
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from aifabric.catalog import get_gpu, get_switch, nics, switches
from aifabric.errors import ConfigError
from aifabric.fabric.bom import bill_of_materials, load_parts
from aifabric.fabric.builders.clos import build_clos
from aifabric.fabric.builders.presets import get_preset
from aifabric.fabric.builders.rail_optimized import build_rail_optimized
from aifabric.fabric.builders.scaleup import scaleup_summary
from aifabric.fabric.builders.spine_leaf import build_spine_leaf
from aifabric.fabric.capacity import capacity_summary, worst_oversubscription
from aifabric.fabric.radix import check_fabric, radix_at, tier_models
from aifabric.fabric.spec import FabricSpec
from aifabric.fabric.topology import Topology
from aifabric.units import parse_bandwidth

DESIGNS = {"rail_optimized": build_rail_optimized, "clos": build_clos,
           "spine_leaf": build_spine_leaf}  # fmt: skip


def nic_speed_of(value: str) -> float:
    """A catalog NIC name ("cx7-400g") or a line rate ("400G") -> bytes/s."""
    table = nics()
    if value in table:
        return table[value].speed
    return parse_bandwidth(value, what="nic")


def fabric_spec(options: dict[str, Any]) -> tuple[FabricSpec, str, dict[str, Any]]:
    """FabricSpec, GPU name and preset info from merged plan options."""
    placement = options.get("placement", "contiguous")
    if placement not in ("contiguous", "random"):
        raise ConfigError(f"placement(={placement!r}) must be contiguous or random")
    if options.get("preset"):
        size = options.get("scalable_units")
        size = options.get("pods") if size is None else size
        preset = get_preset(options["preset"], size)
        fixed = ("gpus", "design", "nic", "switch_radix", "tiers", "planes", "su_nodes")
        clash = [k for k in fixed if k in options]
        if clash:
            raise ConfigError(
                f"--preset fixes the fabric; drop {', '.join('--' + k.replace('_', '-') for k in clash)}"
                " or build without --preset"
            )
        info = {"preset": options["preset"], "source": preset.source,
                "published": preset.published, "preset_notes": preset.notes}  # fmt: skip
        check_fabric(preset.spec, switches())
        return preset.spec, options.get("gpu") or preset.gpu, info
    sized = [k for k in ("scalable_units", "pods") if k in options]
    if sized:
        raise ConfigError(
            f"--{sized[0].replace('_', '-')} sizes a preset: use it with --preset NAME, or drop it with --gpus"
        )
    if "gpus" not in options:
        raise ConfigError("gpus is required: give --gpus N or --preset NAME")
    gpu = get_gpu(options.get("gpu", "h100-sxm"))
    # Enumerated values are snake_case; the hyphenated spelling users often type is accepted.
    design = str(options.get("design", "rail_optimized")).replace("-", "_")
    if design not in DESIGNS:
        raise ConfigError(f"design(={design!r}) must be one of {', '.join(DESIGNS)}")
    switch_model = options.get("switch", "quantum-2-qm9700")
    switch = get_switch(switch_model)
    nic = nic_speed_of(options["nic"]) if options.get("nic") else gpu.default_nic_speed
    planes = options.get("planes", 1)
    radix = options.get("switch_radix")
    if radix is None and isinstance(planes, int) and planes >= 1:
        # The catalog's breakout at the link rate: a 51.2T switch is 64 x 800G, 128 x 400G.
        gbps = f"{nic * 8 / 1e9:g} Gb/s"
        what = (
            f"nic {gbps}"
            if planes == 1
            else (f"link speed {nic / planes * 8 / 1e9:g} Gb/s (nic {gbps} / planes(={planes}))")
        )
        radix = radix_at(switch, nic / planes, what=what)
    spec = FabricSpec(
        name=options.get("name", design), num_gpus=options["gpus"],
        gpus_per_node=options.get("gpus_per_node", 8),
        nics_per_node=options.get("nics_per_node", 8), planes=planes,
        nic_speed=nic, switch_radix=radix if radix is not None else switch.ports,
        oversubscription=options.get("oversubscription", 1.0),
        spine_oversubscription=options.get("spine_oversubscription", 1.0),
        tiers=options.get("tiers"), grouping="rail" if design == "rail_optimized" else "tor",
        su_nodes=options.get("su_nodes"), scaleup_domain_size=gpu.scaleup_domain_size,
        switch_model=switch_model,
    )  # fmt: skip
    check_fabric(spec, switches())
    return spec, gpu.name, {"design": design}


def build(spec: FabricSpec, design: str | None = None) -> Topology:
    """Build with the design's builder (presets: by their grouping)."""
    if design is None:
        return build_rail_optimized(spec) if spec.grouping == "rail" else build_clos(spec)
    return DESIGNS[design](spec)


def plan_fabric(options: dict[str, Any], job: Any | None = None, *, matrix: bool = False,
                prices: str | None = None,
                max_work: float | None = None) -> tuple[dict[str, Any], Topology, Any]:  # fmt: skip
    """Build and describe a fabric; with a training job, place it and split its traffic.

    Raises:
        WorkLimitError: the fabric's estimated links (``estimated_links``) above
            aifabric.guards.MAX_PLAN_LINKS, or the job's rank-rows above its limit
            (see training_traffic); ``max_work`` replaces both limits.
    """
    from aifabric.guards import MAX_PLAN_LINKS, check_work, limit_for

    spec, gpu_name, info = fabric_spec(options)
    check_work("plan", estimated_links(spec), limit_for(MAX_PLAN_LINKS, max_work), "links",
               basis=f"{spec.num_gpus:,} GPUs x NIC links per GPU x {spec.tiers or 3} tiers")  # fmt: skip
    topo = build(spec, info.get("design"))
    gpu = get_gpu(gpu_name)
    parts = load_parts(prices)
    bom = bill_of_materials(topo, nic_speed=spec.nic_speed, switch_model=tier_models(spec),
                            gpu=gpu_name, parts=parts)  # fmt: skip
    cap = capacity_summary(topo)
    result: dict[str, Any] = {
        **info,
        "gpu": gpu_name,
        "gpus": topo.num_gpus,
        "nodes": topo.num_nodes,
        "nics": bom["nics"],
        "nic_speed_bytes_per_s": spec.nic_speed,
        "planes": spec.planes,
        "tiers": topo.meta["tiers"],
        "switch_model": spec.switch_model,
        "switch_models": tier_models(spec),
        "switch_radix": spec.switch_radix,
        "switches": {**topo.switches_by_tier(), "total": topo.num_switches},
        "links": topo.links_by_tier(),
        "ports": bom["ports"],
        "transceivers": bom["transceivers"],  # modules bought, per link tier
        "transceiver_ports": bom["transceiver_ports"],  # link ends those modules serve
        "cables": bom["cables"],
        "cost": bom["cost"],
        "power": bom["power"],
        "bom": bom["lines"],
        "bisection_bandwidth_bytes_per_s": cap["bisection_bandwidth_bytes_per_s"],
        "bisection_ratio": cap["bisection_ratio"],
        "oversubscription": cap["oversubscription"],
        "max_endpoints_nonblocking": cap["max_endpoints_nonblocking"],
        "scale_up": scaleup_summary(topo.num_gpus, gpu, spec.scaleup_domain_size),
        "management_ports": topo.num_management_endpoints,
        "bandwidth_per_gpu_bytes_per_s": _server_link_capacity(topo) / topo.num_gpus,
        "warnings": oversubscription_warnings(spec, worst_oversubscription(topo)),
    }
    if options.get("frontend_nic"):
        result["frontend"] = _frontend(topo, options["frontend_nic"], gpu_name, parts)
    matrix_out = None
    if job is not None:
        placement = options.get("placement", "contiguous")
        matrix_out = _job_on_fabric(result, job, topo, gpu, matrix, placement, max_work)
    return result, topo, matrix_out


def estimated_links(spec: FabricSpec) -> float:
    """Links a fabric will have, before building it: endpoint links (servers x NICs x
    planes) once per tier, as a non-blocking Clos has about as many links in each tier
    (tiers None: 3, the most a planner picks). A 30,000-GPU rail-optimized H100 fabric:
    90,000 estimated, 90,416 built."""
    endpoint_links = spec.num_gpus / spec.gpus_per_node * spec.nics_per_node * spec.planes
    return endpoint_links * (spec.tiers or 3)


def oversubscription_warnings(spec: FabricSpec, built: dict[str, float]) -> list[str]:
    """One line per tier whose built down:up ratio (its fullest switch) differs from the
    one asked for.

    Whole ports make the ratio a fraction of the radix (radix 64 at 2:1 splits 42 down +
    22 up = 1.91:1) and a partly filled leaf gets only the uplinks its ports need
    (--su-nodes); a tier whose ports were given (leaf_down_ports) asks for nothing.
    """
    asked = {"spine": spec.spine_oversubscription}
    if spec.leaf_down_ports is None:
        asked["leaf"] = spec.oversubscription
    out = []
    for tier in ("leaf", "spine"):
        if tier in asked and tier in built and abs(built[tier] - asked[tier]) > 1e-9 * asked[tier]:
            out.append(f"{tier} oversubscription built {built[tier]:.3g}:1, not the "
                       f"{asked[tier]:g}:1 asked (whole ports per switch)")  # fmt: skip
    return out


def _server_link_capacity(topo: Topology) -> float:
    """Bytes/s of the servers' endpoint links, without management (UFM) ports."""
    tier1 = topo.link_tier == 1
    servers = topo.endpoint_node[topo.link_src[tier1]] >= 0
    return float(topo.link_capacity[tier1][servers].sum())


def _frontend(topo: Topology, nic: str, gpu_name: str, parts: dict[str, Any]) -> dict[str, Any]:
    """A ToR front-end network, one NIC per server, and its bill of materials."""
    from aifabric.fabric.builders.frontend import build_frontend

    speed = nic_speed_of(nic)
    radix = radix_at(get_switch("eth-12.8t"), speed, what=f"frontend_nic {nic}")
    front = build_frontend(num_gpus=topo.num_gpus, gpus_per_node=topo.gpus_per_node,
                           nic_speed=speed, switch_radix=radix)  # fmt: skip
    bom = bill_of_materials(front, nic_speed=speed, switch_model="eth-12.8t", gpu=gpu_name,
                            parts=parts)  # fmt: skip
    return {"nic_speed_bytes_per_s": speed, "switches": {**front.switches_by_tier(), "total": front.num_switches},
            "links": front.links_by_tier(), "transceivers": bom["transceivers"],
            "cables": bom["cables"], "cost": bom["cost"], "power": bom["power"]}  # fmt: skip


def _job_on_fabric(result: dict[str, Any], job: Any, topo: Topology, gpu: Any,
                   matrix: bool, placement: str, max_work: float | None = None) -> Any:  # fmt: skip
    from aifabric.fabric.placement import tier_requirements, traffic_by_tier
    from aifabric.traffic.training import training_traffic

    if job.gpu.name != gpu.name:  # a preset's GPU (GB200 NVL72) when --gpu was not given
        job = replace(job, gpu=gpu)
    if job.domain_size != topo.scaleup_domain_size:
        job = replace(job, scaleup_domain_size=topo.scaleup_domain_size)
    traffic = training_traffic(job, max_work=max_work)
    placed = traffic_by_tier(list(traffic.rows), job.plan, topo, matrix=matrix, placement=placement,
                             stage_weights=traffic.stage_weights or None)  # fmt: skip
    result["placement"] = placement
    result["job"] = {"model": job.model.name, "plan": job.plan.summary(),
                     "accounting": job.accounting,
                     "iteration_bytes": traffic.total_bytes,
                     "compute_time_s": traffic.compute_time}  # fmt: skip
    result["traffic_by_tier"] = placed["rows"]
    result["bytes_by_tier"] = placed["by_tier"]
    layers = tier_requirements(placed["by_tier"], topo, step_time=traffic.compute_time,
                               scaleup_bandwidth_per_gpu=gpu.scaleup_bandwidth_per_direction)  # fmt: skip
    result["tier_bandwidth"] = layers
    result["min_communication_time_s"] = max((x["min_time_s"] for x in layers), default=0.0)
    return placed.get("node_matrix")
