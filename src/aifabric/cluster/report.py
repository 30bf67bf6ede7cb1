"""The ``simulate cluster`` JSON result: per workload alone / shared / slowdown, per tier and
traffic class, GPU utilisation, cost.

Figures (base units):

- training: ``steps`` done in the duration, ``step_time_s`` (mean, compute and exposed
  communication; stalls apart), ``iteration_time_s`` (the step simulator's alone step),
  ``mfu`` (the step simulator's MFU x alone step / mean step), ``tokens_per_s`` (steps x
  global batch x sequence length / duration), data and checkpoint stalls, storage bytes.
- serving: the serving simulator's own summary of the deployment's requests (TTFT and TBT
  percentiles, SLO attainment overall and per tier, completed requests) over the
  deployment's active interval (until its last request finishes or is rejected).
- ``slowdown``: shared / alone for times (step time, TTFT and TBT p50 / p99), shared -
  alone for SLO attainment, alone / shared for MFU and tokens per second (all >= 1 when
  sharing hurts).
- ``tiers``: per network and link layer, bytes that crossed its directed links by traffic
  class (counted when each flow or flow group is done; both directions count, as in
  ``simulate serve``), ``utilization`` = bytes / (the layer's capacity x duration) and each
  class's ``share`` of the bytes.
- ``gpu_utilization``: busy GPU-seconds / (the strategy's GPUs x duration): a training
  GPU is busy during its steps (not while stalled on data or a checkpoint), a serving GPU
  while an iteration runs (the serving simulator's busy time); ``compute_utilization``:
  model FLOP done (training steps x the step's model FLOP; serving iterations' FLOP) over
  the GPUs' dense BF16 peak x duration, which a busy decode at a small batch barely moves.
- ``cost_usd``: GPU capital (the catalog's price over the serving economics' amortization
  life, every GPU of the strategy for the duration) plus network capital (each network's
  bill of materials over the same life), and that per useful (busy) GPU-hour. Energy is not
  priced here.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from aifabric.cluster.run import KIND_CLASS, ClusterRun, Prepared
from aifabric.cluster.shared import BuiltFabric

LAYERS = {1: "endpoint_leaf", 2: "leaf_spine", 3: "spine_core"}
CLASSES = ("training", "inference", "storage")


def _train(run: ClusterRun, name: str, duration: float) -> dict[str, Any]:
    p = next(q for q in run.prepared if q.config.name == name)
    rec = run.train_records()[name]
    full = p.job.plan.world_size
    pieces = run.cache[f"{name}@{full}"]
    result, detail = pieces[0], pieces[1]
    alone_step = float(detail["schedule"].iteration)
    steps = len(rec.step_times)
    mean = float(np.mean(rec.step_times)) if steps else None
    busy = float(np.dot(rec.step_times, rec.step_gpus)) if steps else 0.0
    tokens = p.job.global_batch * p.job.seq_len
    mfu = result.get("mfu")
    out = {
        "steps": steps,
        "step_time_s": mean,
        "iteration_time_s": alone_step,
        # model FLOP done / (GPU-seconds in steps x peak): the full width's MFU scaled
        "mfu": None if not busy or mfu is None else float(mfu) * alone_step * full * steps / busy,
        "tokens_per_s": steps * tokens / duration,
        "data_stall_s": rec.data_stall_s,
        "checkpoint_stall_s": rec.checkpoint_stall_s,
        "checkpoints": rec.checkpoints,
        "checkpoint_bytes": rec.checkpoint_bytes,
        "dataset_bytes": rec.dataset_bytes,
        "busy_gpu_s": busy,
        "flop": steps * float(result["model_flop"]),
    }
    if run.tdm is not None:
        out["reconfigurations"] = run.tdm.moves
        out["loading_s"] = run.tdm.training_loading_s
    return out


def _serve(run: ClusterRun, name: str) -> dict[str, Any]:
    from aifabric.serving.metrics import summarize

    s = run.servers[name]
    s.horizon = s.last_activity()
    res = summarize(s)
    busy = sum(i.timing.tp * i.busy_time for i in s.instances)
    return {
        "requests": res["requests"],
        "completed": res["completed"],
        "ttft_s": res["ttft_s"],
        "tbt_s": res["tbt_s"],
        "slo_attainment": res["slo_attainment"],
        "slo_attainment_by_tier": {k: v["slo_attainment"] for k, v in res["tiers"].items()},
        "output_tokens_per_s": res["throughput"]["output_tokens_per_s"],
        "active_s": s.horizon,
        "busy_gpu_s": float(busy),
        "flop": float(sum(i.flop for i in s.instances)),
    }


def _ratio(a: float | None, b: float | None) -> float | None:
    if a is None or b is None or not b or a != a or b != b:
        return None
    return float(a) / float(b)


def _slowdown(kind: str, alone: dict[str, Any], shared: dict[str, Any]) -> dict[str, Any]:
    if kind == "train":
        return {"step_time_ratio": _ratio(shared["step_time_s"], alone["step_time_s"]),
                "mfu_ratio": _ratio(alone["mfu"], shared["mfu"]),
                "tokens_per_s_ratio": _ratio(alone["tokens_per_s"], shared["tokens_per_s"])}  # fmt: skip
    out: dict[str, Any] = {}
    for metric in ("ttft_s", "tbt_s"):
        for q in ("p50", "p99"):
            out[f"{metric.removesuffix('_s')}_{q}_ratio"] = _ratio(shared[metric][q],
                                                                   alone[metric][q])  # fmt: skip
    a, b = alone["slo_attainment"], shared["slo_attainment"]
    out["slo_attainment_change_fraction"] = None if a is None or b is None else b - a
    return out


def _fabrics(run: ClusterRun) -> list[BuiltFabric]:
    fabrics: list[BuiltFabric] = [run.shared.backend]
    if run.shared.frontend is not None:
        fabrics.append(run.shared.frontend)
    if run.inference is not None:
        fabrics.append(run.inference)
    return fabrics


def class_link_bytes(run: ClusterRun, fab: BuiltFabric) -> dict[str, np.ndarray]:
    """Bytes per directed link of ``fab`` by traffic class, so far."""
    net = run.shared.network
    by_kind = net.kind_link_bytes or {}
    n = len(fab.router.capacity)
    per_class = {c: np.zeros(n) for c in CLASSES}
    for kind, links in by_kind.items():  # single flows (serving)
        cls = per_class[KIND_CLASS[kind]]
        for link, moved in links.items():
            i = link - fab.link_base
            if 0 <= i < n:
                cls[i] += moved
    for kind, acc in net.group_link_bytes.items():  # flow groups (training, storage)
        part = acc[fab.link_base : fab.link_base + n]
        per_class[KIND_CLASS[kind]][: len(part)] += part
    return per_class


def moved_link_bytes(run: ClusterRun, fab: BuiltFabric) -> dict[str, np.ndarray]:
    """Bytes per directed link of ``fab`` by traffic class that have crossed it so far,
    flows in progress included (the engine's per-class progress counts; network link ids
    are the engine's)."""
    from aifabric.netsim.classes import DEFAULT_CLASS_NAMES

    by_class = run.shared.network.engine.link_bytes_by_class
    n = len(fab.router.capacity)
    out = {}
    for c in CLASSES:
        moved = by_class.get(DEFAULT_CLASS_NAMES[c])
        out[c] = np.zeros(n) if moved is None else moved[fab.link_base : fab.link_base + n]
    return out


def tier_class_bytes(run: ClusterRun) -> dict[tuple[str, str, str], float]:
    """(network, layer, class) -> bytes moved so far (in-flight flows' progress included,
    so that a sample interval holds the bytes moved in it, never more than capacity x
    interval; the completion counts of :func:`class_link_bytes` put a long flow's bytes
    all in the interval it ends in)."""
    out = {}
    for fab in _fabrics(run):
        per_class = moved_link_bytes(run, fab)
        for code, name in LAYERS.items():
            sel = fab.router.layer == code
            if sel.any():
                for c, v in per_class.items():
                    out[(fab.name, name, c)] = float(v[sel].sum())
    return out


def series_csv(run: ClusterRun) -> str:
    """One row per sample: per (network, layer, class) utilisation over the interval
    (bytes moved in it, by the engine's progress counts / (layer capacity x interval)),
    then per-workload progress (training steps done, serving requests completed), and
    under time division the pool's GPUs by use at that instant."""
    rows = run.series
    if not rows:
        return "t_s\n"
    caps = {}
    for fab in _fabrics(run):
        for code, name in LAYERS.items():
            sel = fab.router.layer == code
            if sel.any():
                caps[(fab.name, name)] = float(fab.router.capacity[sel].sum())
    keys = sorted(rows[0]["bytes"])
    names = list(rows[0]["progress"])
    uses = list(rows[0].get("gpus", {}))
    head = ["t_s", *(f"{n}.{layer}.{c}_utilization" for n, layer, c in keys),
            *(f"{n}.progress" for n in names), *(f"gpus_{u}" for u in uses)]  # fmt: skip
    lines = [",".join(head)]
    prev_t, prev = 0.0, dict.fromkeys(keys, 0.0)
    for row in rows:
        dt = row["t_s"] - prev_t
        cells = [f"{row['t_s']:.6g}"]
        for k in keys:
            moved = row["bytes"][k] - prev[k]
            cells.append(f"{moved / (caps[(k[0], k[1])] * dt) if dt > 0 else 0.0:.6g}")
        cells += [str(row["progress"][n]) for n in names]
        cells += [str(row["gpus"][u]) for u in uses]
        lines.append(",".join(cells))
        prev_t, prev = row["t_s"], row["bytes"]
    return "\n".join(lines) + "\n"


def _tiers(run: ClusterRun, duration: float) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for fab in _fabrics(run):
        r = fab.router
        per_class = class_link_bytes(run, fab)
        tiers: dict[str, Any] = {}
        for code, name in LAYERS.items():
            sel = r.layer == code
            if not sel.any():
                continue
            cap = float(r.capacity[sel].sum())
            moved = {c: float(v[sel].sum()) for c, v in per_class.items()}
            total = sum(moved.values())
            link_total = sum(v[sel] for v in per_class.values())
            tiers[name] = {
                "bytes": total,
                "bytes_by_class": moved,
                "utilization": total / (cap * duration) if cap > 0 else 0.0,
                "max_link_utilization": float(np.max(link_total / (r.capacity[sel] * duration))),
                "bytes_fraction_by_class": {
                    c: (v / total if total > 0 else 0.0) for c, v in moved.items()
                },
            }
        out[fab.name] = tiers
    return out


def _cost(cfg: Any, run: ClusterRun, prepared: list[Prepared], busy_gpu_s: float,
          duration: float) -> dict[str, Any]:  # fmt: skip
    from aifabric.fabric.bom import bill_of_materials
    from aifabric.fabric.radix import tier_models
    from aifabric.serving.config import Economics
    from aifabric.serving.economics import capital_cost

    net_capex = 0.0
    fabrics = [run.shared.backend, run.inference] if run.inference is not None else [
        run.shared.backend]  # fmt: skip
    if run.shared.frontend is not None:
        fabrics.append(run.shared.frontend)
    for fab in fabrics:
        bom = bill_of_materials(fab.topo, nic_speed=fab.spec.nic_speed,
                                switch_model=tier_models(fab.spec), gpu=None)  # fmt: skip
        net_capex += float(bom["cost"]["total_usd"])
    if cfg.strategy == "time_division":  # one pool
        gpus = max(p.gpus[1] for p in prepared) - min(p.gpus[0] for p in prepared)
    else:
        gpus = sum(p.gpus[1] - p.gpus[0] for p in prepared)
    gpu_name = str(cfg.fabric.get("gpu", "h100-sxm"))
    cost = capital_cost(Economics(), gpus, gpu_name, net_capex, duration)
    useful_h = busy_gpu_s / 3600.0  # GPU-hours
    return {
        **cost,
        "useful_gpu_s": busy_gpu_s,
        "usd_per_useful_gpu_hour": cost["total_usd"] / useful_h if useful_h > 0 else None,
    }


def _classes_out(classes: dict[str, Any]) -> dict[str, Any]:
    out = {k: v for k, v in classes.items() if k != "weights"}
    if "weights" in classes:
        total = sum(classes["weights"].values())
        out["weight_fraction"] = {k: v / total for k, v in classes["weights"].items()}
    return out


def cluster_result(cfg: Any, prepared: list[Prepared], alone: dict[str, ClusterRun],
                   shared: ClusterRun, wall: float) -> dict[str, Any]:  # fmt: skip
    duration = cfg.duration
    workloads: list[dict[str, Any]] = []
    busy = 0.0
    flop = 0.0
    by_workload: dict[str, float] = {}
    for p in prepared:
        name, kind = p.config.name, p.config.kind
        fig = _train if kind == "train" else (lambda r, n, d: _serve(r, n))
        a, s = fig(alone[name], name, duration), fig(shared, name, duration)
        gpus = p.gpus[1] - p.gpus[0]
        busy += s["busy_gpu_s"]
        flop += s["flop"]
        by_workload[name] = s["busy_gpu_s"] / (gpus * duration)
        workloads.append({"name": name, "kind": kind, "gpus": gpus,
                          "first_gpu": p.gpus[0], "network": p.network,
                          "alone": a, "shared": s, "slowdown": _slowdown(kind, a, s)})  # fmt: skip
    from aifabric.catalog import get_gpu

    peak = get_gpu(str(cfg.fabric.get("gpu", "h100-sxm"))).peak_flops("bf16")
    cost = _cost(cfg, shared, prepared, busy, duration)
    gpu_s = None if shared.tdm is None else shared.tdm.ledger.close(duration)
    return {
        "strategy": cfg.strategy,
        "duration_s": duration,
        "classes": _classes_out(cfg.classes),
        "workloads": workloads,
        "tiers": _tiers(shared, duration),
        "gpu_utilization": {
            "overall_utilization": busy / (cost["gpus"] * duration),
            "compute_utilization": flop / (cost["gpus"] * duration * peak),
            "utilization_by_workload": by_workload,
            "gpu_s": gpu_s,
        },
        "cost_usd": cost,
        "wall_s": wall,
    }
