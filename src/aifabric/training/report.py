"""The JSON result of a simulated training step (snake_case keys, base units).

MFU counts model FLOP (forward + backward of the model, attention included, causal:
``ModelSpec.training_flops_per_token``; no recomputation) over iteration time x GPUs x the
dense peak of the compute dtype; HFU counts what the kernels ran (recomputation and the
unfused attention's full score matrix included).

``comm_by_tier``: each dimension's bytes per iteration (``<tier>_bytes``) by the highest tier
their rank pairs climb on the planned fabric (scale_up, leaf, spine, core), rank r on GPU r as the step
simulator places them: the planner's split (aifabric.fabric.placement.traffic_by_tier, what
``aifabric plan`` reports as ``traffic_by_tier`` for the same job), with either network
model. It says which tier a dimension's exposed time is spent on.

``cost_usd`` prices the step on the planned cluster with the one capital-cost function of
``simulate cluster`` (aifabric.serving.economics.capital_cost, the serving economics'
defaults: catalog GPU price over 5 years, straight line): every GPU of the planned fabric
(``fabric.gpus``, which may exceed the job's) and the fabric's bill of materials (likely
prices, aifabric.fabric.bom, the figure ``aifabric plan`` reports as ``cost.total_usd``),
held for one iteration. ``usd_per_token`` divides by the step's tokens (global batch x
sequence length); ``to_train_usd`` multiplies by the dataset's steps when dataset_tokens is
given. Energy is not priced. A GPU without a catalog price (parts.yaml) gets null GPU
figures and totals; the network figures remain.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from aifabric.spec.jobs import TrainingJob
from aifabric.training.comm import CommItem
from aifabric.training.kernels import KernelModel
from aifabric.training.memory import memory_per_gpu


def _dimension(item: CommItem) -> str:
    return "dp" if item.dimension == "dp_expert" else item.dimension


def comm_by_dimension(items: list[CommItem]) -> dict[str, float]:
    """Seconds per iteration each dimension's collectives take on the busiest stage."""
    out: dict[str, np.ndarray] = {}
    for item in items:
        d = _dimension(item)
        out[d] = out.get(d, 0.0) + item.per_stage()
    return {d: float(np.max(v)) for d, v in sorted(out.items())}


def exposed_by_dimension(job: TrainingJob, sim: dict[str, Any]) -> dict[str, float]:
    """Exposed seconds per iteration per dimension, on the stage that ends the step."""
    sm, sched = sim["stage"], sim["schedule"]
    m = job.plan.num_microbatches(job.global_batch)
    s = int(np.argmax(sched.rank_end + sched.exposed_dp))
    out = {d: float(v[s].sum() * m) for d, v in sm.exposed.items()}
    dp = float(sched.exposed_dp[s] + sim["dp"].tail[s] + sched.exposed_gather[0])
    if dp > 0 or "dp" in out:
        out["dp"] = out.get("dp", 0.0) + dp
    if job.plan.pp > 1:
        hops = job.plan.pp * job.plan.virtual_stages - 1
        out["pp"] = float(sim["p2p"]) * 2 * (m + hops) / job.plan.pp
    return dict(sorted(out.items()))


def tiers(job: TrainingJob, net: Any, items: list[CommItem], iteration: float) -> dict[str, Any]:
    """Per tier mean and max link utilization over the step (flow), or per network scope
    from the rows' bytes (analytic)."""
    if iteration <= 0:
        return {}
    if net.kind == "flow":
        flow = net.flow
        total = np.zeros(len(flow.capacity))
        for item in items:
            if item.link_bytes is not None:
                total += item.link_bytes * item.calls
        util = np.zeros(len(flow.capacity))
        ok = flow.capacity > 0
        util[ok] = total[ok] / (flow.capacity[ok] * iteration)
        out = {}
        for name, sel in net.layers().items():
            if sel.any():
                out[name] = {"mean_utilization": float(util[sel].mean()),
                             "max_utilization": float(util[sel].max())}  # fmt: skip
        return out
    from aifabric.traffic.training import staged_rows

    per_gpu = {"scale_up": 0.0, "scale_out": 0.0}
    for row, _ in staged_rows(job):
        per_gpu[row.scope] = per_gpu.get(row.scope, 0.0) + row.bytes_per_gpu
    rates = {"scale_up": net.analytic.scale_up, "scale_out": net.analytic.scale_out}
    return {k: {"mean_utilization": per_gpu[k] / (rates[k] * iteration),
                "max_utilization": per_gpu[k] / (rates[k] * iteration)}
            for k in rates if per_gpu.get(k)}  # fmt: skip


def comm_by_tier(job: TrainingJob, net: Any) -> dict[str, dict[str, float]]:
    """Per dimension (dp_expert counted as dp), bytes per iteration by tier on the fabric:
    ``{"tp": {"scale_up_bytes": ..., "leaf_bytes": ..., "spine_bytes": ..., "core_bytes": ...}}``."""
    from aifabric.fabric.placement import TIERS, traffic_by_tier
    from aifabric.traffic.training import staged_rows

    rows = [row for row, _ in staged_rows(job)]
    out: dict[str, dict[str, float]] = {}
    for r in traffic_by_tier(rows, job.plan, net.topo)["rows"]:
        d = "dp" if r["dimension"] == "dp_expert" else str(r["dimension"])
        by = out.setdefault(d, {f"{t}_bytes": 0.0 for t in TIERS})
        by[f"{r['tier']}_bytes"] += float(r["bytes"])
    return dict(sorted(out.items()))


def step_result(job: TrainingJob, opts: Any, ks: KernelModel, net: Any, items: list[CommItem],
                sim: dict[str, Any], costs: dict[str, float], wall: float) -> dict[str, Any]:  # fmt: skip
    plan, model = job.plan, job.model
    sched, sm = sim["schedule"], sim["stage"]
    m = plan.num_microbatches(job.global_batch)
    t = sched.iteration
    tokens = float(job.global_batch * job.seq_len)
    peak = ks.peak
    model_flop = model.training_flops_per_token(job.seq_len) * tokens
    # HFU adds what recompute reruns, counted by the same kernels, to the model FLOP,
    # so HFU == MFU exactly without recompute.
    hardware = model_flop * sm.hardware_flop / max(sm.kernel_model_flop, 1e-30)
    mem = memory_per_gpu(model, plan, seq_len=job.seq_len, micro_batches=m,
                         recompute=job.recompute, hbm_bytes=job.gpu.hbm_bytes,
                         flash_attention=opts.flash_attention)  # fmt: skip
    compute = float(((sm.forward_compute + sm.backward_compute).sum(axis=1) * m).max())
    compute += sched.optimizer
    result: dict[str, Any] = {
        "model": model.name,
        "gpu": job.gpu.name,
        "gpus": plan.world_size,
        "parallel": plan.summary(),
        "seq_len": job.seq_len,
        "global_batch": job.global_batch,
        "microbatches": m,
        "recompute": job.recompute,
        "network": net.kind,
        "routing": net.routing if net.kind == "flow" else None,
        "calibration": ks.calibration.name,
        "iteration_time_s": t,
        "mfu": model_flop / (t * plan.world_size * peak),
        "hfu": hardware / (t * plan.world_size * peak),
        "gpu_model_flop_per_s": model_flop / (t * plan.world_size),
        "model_flop": model_flop,
        "compute_s": compute,
        "optimizer_s": sched.optimizer,
        "bubble_fraction": sched.timeline.bubble_fraction,
        "exposed_comm_s": exposed_by_dimension(job, sim),
        "comm_s": comm_by_dimension(items),
        "memory_per_gpu_bytes": {
            k.removesuffix("_bytes"): v for k, v in mem.items() if k.endswith("_bytes")
        },
        "hbm_bytes": job.gpu.hbm_bytes,
        "fits_in_memory": bool(mem["total_bytes"] <= job.gpu.hbm_bytes),
        "tiers": tiers(job, net, items, t),
        "comm_by_tier": comm_by_tier(job, net),
        "tokens_per_s": tokens / t,
        "straggler_cost_s": costs,
        "fabric": {
            "design": net.info.get("design") or net.info.get("preset") or "rail_optimized",
            "gpus": net.spec.num_gpus,
            "nic_speed_bytes_per_s": net.spec.nic_speed,
            "failed_links": net.failed_links,
            "degraded_links": net.degraded_links,
        },
        "wall_s": wall,
    }
    result["cost_usd"] = step_cost(job, net, t, tokens)
    if opts.dataset_tokens_given:
        result["time_to_train_s"] = job.dataset_tokens / (tokens / t)
        per = result["cost_usd"]["usd_per_token"]
        result["cost_usd"]["to_train_usd"] = None if per is None else per * job.dataset_tokens
    return result


def step_cost(job: TrainingJob, net: Any, iteration: float, tokens: float) -> dict[str, Any]:
    """Capital cost of one iteration on the planned cluster (see the module docstring)."""
    from aifabric.errors import ConfigError
    from aifabric.fabric.bom import bill_of_materials
    from aifabric.fabric.radix import tier_models
    from aifabric.serving.config import Economics
    from aifabric.serving.economics import capital_cost

    bom = bill_of_materials(net.topo, nic_speed=net.spec.nic_speed,
                            switch_model=tier_models(net.spec), gpu=None)  # fmt: skip
    capex = float(bom["cost"]["total_usd"])
    gpus = int(net.spec.num_gpus)
    try:
        cost: dict[str, Any] = capital_cost(Economics(), gpus, job.gpu.name, capex, iteration)
    except ConfigError:  # no GPU price: the network's figures only
        cost = capital_cost(Economics(gpu_hour_usd=0.0), gpus, job.gpu.name, capex, iteration)
        cost.update(gpu_hour_usd=None, gpu_capital_usd=None, total_usd=None)
    total = cost["total_usd"]
    cost["usd_per_token"] = None if total is None else total / tokens
    return cost
