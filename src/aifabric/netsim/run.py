"""``simulate collective`` as a library call: build the fabric, route, simulate each size.

The CLI, and the REST API to come, call :func:`simulate_collective` with the options of a
``plan`` scenario plus the collective's; it returns the JSON result (base units).
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np

from aifabric.errors import ConfigError
from aifabric.netsim.collectives import PATTERNS, SIMULATED

ROUTINGS = ("ecmp", "ecmp_qp", "spray", "adaptive")
GROUPS = ("all", "tp", "cp", "dp", "pp", "ep")


def step_flows(op: str, algorithm: str, n: int, channels: int, qps: int) -> float:
    """Flows in the largest step (the guard's estimate)."""
    if op == "all_to_all":  # the collective and the pattern: every ordered pair
        flows = float(n) * (n - 1)
    elif op in PATTERNS:
        flows = float(n)
    elif algorithm == "ring":
        flows = float(n) * channels
    else:
        flows = float(n)
    return flows * max(qps, 1)


def simulate_collective(fabric: dict[str, Any], *, op: str, sizes: list[float],
                        algorithm: str | None = None, routing: str = "ecmp", qps: int = 1,
                        channels: int | None = None, group: str = "all",
                        parallel: dict[str, int] | None = None, fail: list[str] | None = None,
                        degrade: list[str] | None = None, seed: int = 0,
                        max_work: float | None = None) -> dict[str, Any]:  # fmt: skip
    """Simulate ``op`` at each of ``sizes`` bytes on the fabric of ``fabric`` options."""
    from aifabric.catalog import get_gpu, get_switch
    from aifabric.fabric.plan import build, fabric_spec
    from aifabric.fabric.routing import Router, apply_impairments, parse_impairment, switch_names
    from aifabric.guards import MAX_NETSIM_FLOWS, MAX_NETSIM_SPRAY_ENTRIES, check_work, limit_for
    from aifabric.netsim.collectives import NetworkModel, simulate, summarize

    wall0 = time.perf_counter()
    if routing not in ROUTINGS:
        raise ConfigError(f"routing(={routing!r}) must be one of {', '.join(ROUTINGS)}")
    if op not in SIMULATED and op not in PATTERNS:
        raise ConfigError(f"op(={op!r}) must be a collective ({', '.join(SIMULATED)}) or a "
                          f"pattern ({', '.join(PATTERNS)})")  # fmt: skip
    if op in PATTERNS:
        if algorithm not in (None, "direct"):
            raise ConfigError(f"a pattern ({op}) has no algorithm; drop --algorithm")
        algorithm = "direct"
    else:
        algorithm = algorithm or SIMULATED[op][0]
        if algorithm not in SIMULATED[op]:
            raise ConfigError(f"algorithm {algorithm!r} is not simulated for {op}; "
                              f"use {', '.join(SIMULATED[op])}")  # fmt: skip
    if not 1 <= qps <= 64:
        raise ConfigError(f"qps(={qps}) must be in 1..64")
    if qps > 1 and routing != "ecmp_qp":
        raise ConfigError("--qps splits connections for --routing ecmp_qp; add it or drop --qps")
    if not sizes or any(not (s >= 1) or s > 1e15 for s in sizes):
        raise ConfigError("--size must be one or more sizes in 1 B .. 1 PB, e.g. 1MiB,1GiB")
    spec, gpu_name, info = fabric_spec(fabric)
    topo = build(spec, info.get("design"))
    gpu = get_gpu(gpu_name)
    ranks = _group(group, parallel or {}, topo.num_gpus)
    n = len(ranks)
    if n < 2:
        raise ConfigError(f"the group has {n} GPU; a collective needs 2 or more")
    domain = spec.scaleup_domain_size
    per_domain = len(np.unique(ranks // domain))
    ch = channels if channels is not None else max(1, min(n // per_domain, topo.nics_per_node))
    if not 1 <= ch <= 64:
        raise ConfigError(f"channels(={ch}) must be in 1..64")
    if algorithm not in ("ring", "tree"):  # channels are rings and trees; others send direct
        if channels not in (None, 1):
            raise ConfigError(f"--channels is for ring and tree; {algorithm} sends direct")
        ch = 1
    check_work("simulate collective", step_flows(op, algorithm, n, ch, qps),
               limit_for(MAX_NETSIM_FLOWS, max_work), "flows",
               basis=f"{n:,} ranks, {op}, {ch} channel(s), {qps} QP(s)")  # fmt: skip
    items = [parse_impairment(x) for x in fail or []]
    items += [parse_impairment(x, degrade=True) for x in degrade or []]
    state = apply_impairments(topo, items, seed) if items else None
    router = Router(topo, state)
    try:
        sw_latency = get_switch(spec.switch_model).latency or 0.0
    except ConfigError:
        sw_latency = 0.0
    net = NetworkModel(router, topo.num_gpus, domain, gpu.scaleup_bandwidth_per_direction,
                       sw_latency, limit_for(MAX_NETSIM_SPRAY_ENTRIES, max_work))  # fmt: skip
    setup = time.perf_counter() - wall0
    names = switch_names(topo)
    results, walls = [], []
    for size in sizes:
        run = simulate(net, op, ranks, size, algorithm=algorithm, mode=routing, seed=seed,
                       qps=qps, channels=ch, line_rate=spec.nic_speed)  # fmt: skip
        results.append(summarize(net, run, op, n, names))
        walls.append(run.wall)
    return {
        "op": op,
        "algorithm": algorithm,
        "routing": routing,
        "qps": qps,
        "channels": ch,
        "ranks": n,
        "group": group,
        "seed": seed,
        "fabric": {
            "design": info.get("design") or info.get("preset"),
            "gpus": topo.num_gpus,
            "tiers": topo.num_tiers,
            "nic_speed_bytes_per_s": spec.nic_speed,
            "scale_up_bandwidth_bytes_per_s": gpu.scaleup_bandwidth_per_direction,
            "failed_links": state.failed_links if state else 0,
            "degraded_links": state.degraded_links if state else 0,
            "failed_switches": state.failed_switches if state else [],
        },
        "results": results,
        "flows": sum(int(r["flows"]) for r in results),  # type: ignore[call-overload]
        "events": sum(int(r["events"]) for r in results),  # type: ignore[call-overload]
        "wall_s": time.perf_counter() - wall0,
        "wall_by_phase_s": {
            "setup": setup,
            "build": sum(w["build_s"] for w in walls),
            "simulate": sum(w["simulate_s"] for w in walls),
        },
    }


def _group(group: str, parallel: dict[str, int], gpus: int) -> np.ndarray:
    """GPU ids of the group: all GPUs, or rank 0's group of one parallel dimension."""
    if group not in GROUPS:
        raise ConfigError(f"group(={group!r}) must be one of {', '.join(GROUPS)}")
    if group == "all":
        if parallel:
            raise ConfigError("--tp/--pp/--dp/--cp/--ep choose a group: add --group DIM")
        return np.arange(gpus)
    from aifabric.spec.parallel import ParallelPlan

    plan = ParallelPlan(**parallel)  # type: ignore[arg-type]
    if plan.world_size != gpus:
        raise ConfigError(f"tp*cp*dp*pp(={plan.world_size}) must equal the fabric's {gpus} "
                          "GPUs; adjust --dp")  # fmt: skip
    dim = {"dp": "dp_cp" if plan.cp > 1 else "dp"}.get(group, group)
    members: np.ndarray = np.asarray(plan.group_ranks(dim)[0], np.int64)
    return members
