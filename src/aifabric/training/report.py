"""The JSON result of a simulated training step (snake_case keys, base units).

MFU counts model FLOP (forward + backward of the model, attention included, causal:
``ModelSpec.training_flops_per_token``; no recomputation) over iteration time x GPUs x the
dense peak of the compute dtype; HFU counts what the kernels ran (recomputation and the
unfused attention's full score matrix included).
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
    if opts.dataset_tokens_given:
        result["time_to_train_s"] = job.dataset_tokens / (tokens / t)
    return result
