"""Serving metrics: latency percentiles overall and per SLO tier, throughput, goodput,
queue depth over time, utilization, KV-cache reuse and network bytes by class.

Definitions (per request):

- TTFT: first token time - arrival (includes routing, prefix fetch, queueing, prefill;
  with PD the first token comes out of the prefill instance).
- TBT: mean gap between consecutive tokens, (last - first) / (output - 1) (DistServe's
  TPOT); ``tbt_max_s`` is each request's worst gap (a stall behind a prefill, a KV
  transfer, a preemption). ``slo.tbt_metric`` picks which one the TBT target checks.
  One-token answers have no TBT and meet any TBT target.
- E2E: last token - arrival.
- SLO attainment of a tier: share of its arrived requests that completed meeting both
  targets (rejected and unfinished requests miss): ``slo_attainment`` (all arrivals).
  ``slo_attainment_admitted``: the same count over the requests admitted (arrivals minus
  every rejection; unfinished ones still miss), so it is >= the all-arrival figure.
  Goodput: such requests per simulated second. ``rejected_prefill_tokens``: prompt tokens
  prefilled for requests rejected afterwards (slo.early_rejection: none).
- ``utilization`` / ``mean_decode_batch`` per pool: busy (sequence) seconds over the
  pool's ``instance_time_s``, the seconds its instances were held (count x simulated_s
  for fixed pools; with autoscale, loading and draining included: serving.autoscale).
- ``simulated_s``: clock at the end (the last completion, or max_sim_time_s).
- ``utilization_by_role`` and ``economics``: capacity utilisation (FLOP and HBM bytes over
  peak x GPUs x time), cost, energy and their per-output-token figures, overall and per SLO
  tier (defined in serving.economics and serving.work).
- With a fabric: ``network_bytes_by_tier`` and ``network_utilization_by_tier`` per link
  layer (both directions counted; defined in serving.fabric).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from aifabric.serving.economics import economics, role_utilization
from aifabric.serving.network import SERVING_KINDS

PERCENTILES = (50, 95, 99)


def _pcts(values: np.ndarray) -> dict[str, float | None]:
    values = values[~np.isnan(values)]
    if values.size == 0:
        empty: dict[str, float | None] = {f"p{p}": None for p in PERCENTILES}
        empty["mean"] = None
        return empty
    qs = np.percentile(values, PERCENTILES)
    out: dict[str, float | None] = {f"p{p}": float(q) for p, q in zip(PERCENTILES, qs, strict=True)}
    out["mean"] = float(values.mean())
    return out


def request_table(cluster: Any) -> dict[str, np.ndarray]:
    """Per completed request arrays (in completion order)."""
    recs = cluster.records
    n = len(recs)
    arrival = np.fromiter((r.arrival for r in recs), np.float64, n)
    first = np.fromiter((r.first_token for r in recs), np.float64, n)
    finish = np.fromiter((r.finish for r in recs), np.float64, n)
    output = np.fromiter((r.output for r in recs), np.int64, n)
    with np.errstate(invalid="ignore", divide="ignore"):
        tbt = np.where(output > 1, (finish - first) / (output - 1), np.nan)
    maxgap = np.where(output > 1, np.fromiter((r.max_gap for r in recs), np.float64, n), np.nan)
    return {
        "id": np.fromiter((r.id for r in recs), np.int64, n),
        "tier": np.fromiter((r.tier for r in recs), np.int64, n),
        "arrival": arrival,
        "ttft": first - arrival,
        "tbt": tbt,
        "tbt_max": maxgap,
        "e2e": finish - arrival,
        "prompt": np.fromiter((r.prompt for r in recs), np.int64, n),
        "output": output,
        "cached": np.fromiter((r.cached for r in recs), np.int64, n),
        "waited": np.fromiter((r.waited for r in recs), np.float64, n),
        "finish": finish,
    }


def queue_series(cluster: Any, interval: float, end: float) -> tuple[np.ndarray, np.ndarray]:
    """Queue depth (requests waiting for prefill) sampled every ``interval`` s."""
    times = np.array(cluster.queue_times, np.float64)
    depth = np.array(cluster.queue_depths, np.int64)
    grid = np.arange(0.0, max(end, interval) + interval / 2, interval)
    idx = np.searchsorted(times, grid, side="right") - 1
    return grid, depth[np.clip(idx, 0, None)]


def wait_series(cluster: Any, grid: np.ndarray) -> np.ndarray:
    """Mean prefill-queue wait (s) of the requests completed that arrived in each interval
    [grid[i], grid[i+1]) (NaN where none did)."""
    table = request_table(cluster)
    interval = float(grid[1] - grid[0]) if grid.size > 1 else 1.0
    slot = np.clip((table["arrival"] // interval).astype(np.int64), 0, grid.size - 1)
    total = np.bincount(slot, weights=table["waited"], minlength=grid.size)
    count = np.bincount(slot, minlength=grid.size)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(count > 0, total / count, np.nan)


def summarize(cluster: Any) -> dict[str, Any]:
    sc = cluster.scenario
    sim_time = float(cluster.sim.now if cluster.horizon is None else cluster.horizon)
    table = request_table(cluster)
    tiers = sc.slo.tiers
    tbt_key = "tbt" if sc.slo.tbt_metric == "mean" else "tbt_max"
    ttft_ok = table["ttft"] <= np.array([t.ttft_s for t in tiers])[table["tier"]]
    tbt_target = np.array([t.tbt_s for t in tiers])[table["tier"]]
    tbt_ok = np.isnan(table[tbt_key]) | (table[tbt_key] <= tbt_target)
    good = ttft_ok & tbt_ok
    rejected_by_tier = np.zeros(len(tiers), np.int64)
    for r in cluster.rejected_reqs:
        rejected_by_tier[r.tier] += 1
    completed = int(table["id"].shape[0])
    in_flight = cluster.arrived - completed - cluster.rejected
    arrived_tiers = _arrived_per_tier(cluster, len(tiers))
    tier_out: dict[str, Any] = {}
    for t, tier in enumerate(tiers):
        mask = table["tier"] == t
        n_arr = int(arrived_tiers[t])
        n_adm = n_arr - int(rejected_by_tier[t])
        met = float(good[mask].sum())
        tier_out[tier.name] = {
            "requests": n_arr,
            "admitted": n_adm,
            "completed": int(mask.sum()),
            "rejected": int(rejected_by_tier[t]),
            "slo_attainment": (met / n_arr if n_arr else None),
            "slo_attainment_admitted": (met / n_adm if n_adm else None),
            "ttft_target_s": tier.ttft_s,
            "tbt_target_s": tier.tbt_s,
            "ttft_s": _pcts(table["ttft"][mask]),
            "tbt_s": _pcts(table["tbt"][mask]),
            "tbt_max_s": _pcts(table["tbt_max"][mask]),
            "e2e_s": _pcts(table["e2e"][mask]),
        }
    out_tokens = int(table["output"].sum())
    _, depth = queue_series(cluster, sc.metrics.sample_interval_s, sim_time)
    tp_bytes = sum(i.timing.tp_allreduce_bytes(i.tokens_processed) for i in cluster.instances)
    ep_bytes = sum(  # expert-parallel instances only (serving.moe)
        getattr(i.timing, "ep_all_to_all_bytes", lambda _: 0.0)(i.tokens_processed)
        for i in cluster.instances
    )
    net = cluster.network
    prompt = max(cluster.prompt_tokens, 1)
    hit_tokens = sum(cluster.hits.values())
    # Per pool: busy and sequence seconds over the instance-seconds held (the configured
    # count x simulated_s for fixed pools; loading and draining time count for elastic ones).
    busy: dict[str, float] = {}
    seqs: dict[str, float] = {}
    held: dict[str, float] = {}
    for inst in cluster.instances:
        stop = inst.retired_at if inst.retired_at == inst.retired_at else sim_time
        held[inst.role] = held.get(inst.role, 0.0) + max(0.0, stop - inst.created_at)
        busy[inst.role] = busy.get(inst.role, 0.0) + inst.busy_time
        seqs[inst.role] = seqs.get(inst.role, 0.0) + inst.sequence_seconds
    utilization = {r: busy[r] / held[r] if held[r] > 0 else 0.0 for r in held}
    mean_batch = {r: seqs[r] / held[r] if held[r] > 0 else 0.0 for r in held if r != "prefill"}
    scaler = cluster.autoscaler
    out: dict[str, Any] = {
        "scenario": {
            "model": cluster.model.name,
            "mode": sc.cluster.mode,
            "instances": {role: pool.initial for role, pool in scaler.pools.items()},
            "batching": sc.batching.policy,
            "routing": sc.routing.policy,
            "workload": cluster.workload.name,
            "kv_store": sc.kv_store.enabled,
            "seed": sc.seed,
            "timing_model": timing_model(cluster),
        },
        "requests": cluster.arrived,
        "completed": completed,
        "rejected": cluster.rejected,
        "rejected_by": dict(sorted(cluster.rejected_by.items())),
        "in_flight_at_end": in_flight,
        "ttft_s": _pcts(table["ttft"]),
        "tbt_s": _pcts(table["tbt"]),
        "tbt_max_s": _pcts(table["tbt_max"]),
        "e2e_s": _pcts(table["e2e"]),
        "queue_wait_s": _pcts(table["waited"]),
        "admitted": cluster.arrived - cluster.rejected,
        "rejected_prefill_tokens": cluster.admission.rejected_prefill_tokens,
        "slo_attainment": float(good.sum() / cluster.arrived) if cluster.arrived else None,
        "slo_attainment_admitted": (
            float(good.sum() / (cluster.arrived - cluster.rejected))
            if cluster.arrived > cluster.rejected
            else None
        ),
        "tiers": tier_out,
        "throughput": {
            "requests_per_s": completed / sim_time if sim_time > 0 else None,
            "output_tokens_per_s": out_tokens / sim_time if sim_time > 0 else None,
            "prompt_tokens_per_s": float(table["prompt"].sum()) / sim_time
            if sim_time > 0
            else None,
        },
        "goodput_requests_per_s": float(good.sum()) / sim_time if sim_time > 0 else None,
        "queue_depth": {
            "mean": float(depth.mean()) if depth.size else 0.0,
            "max": int(max(cluster.queue_depths)),
            "p99": float(np.percentile(depth, 99)) if depth.size else 0.0,
        },
        "utilization": utilization,
        "mean_decode_batch": mean_batch,
        "instance_time_s": held,
        "utilization_by_role": role_utilization(cluster, sim_time),
        "preemptions": sum(i.preemptions for i in cluster.instances),
        "kv_cache": {
            "hit_ratio": hit_tokens / prompt,
            "hit_ratio_by_tier": {k: v / prompt for k, v in cluster.hits.items()},
            "fetches_skipped": cluster.fetch_skipped,
            "pool_blocks": len(cluster.pool) if cluster.pool is not None else 0,
        },
        "network_bytes": {
            **{kind: net.bytes_done[kind] for kind in SERVING_KINDS},
            "tp_allreduce": tp_bytes,
            "ep_all_to_all": ep_bytes,
        },
        "simulated_s": sim_time,
        "events": cluster.sim.events_run,
    }
    if sc.autoscale.enabled:
        out["autoscale"] = scaler.summary(sim_time)
    spec = sc.compute.speculative
    if spec.enabled:
        from aifabric.serving.speculative import expected_tokens

        out["speculative"] = {
            "draft_tokens": spec.draft_tokens,
            "acceptance_ratio": spec.acceptance_rate,
            "draft_cost": spec.draft_cost,
            "expected_step_tokens": expected_tokens(spec.draft_tokens, spec.acceptance_rate),
        }
    tier_tokens = np.bincount(table["tier"], weights=table["output"], minlength=len(tiers))
    out["economics"] = economics(cluster, sim_time, tier_tokens.astype(np.int64))
    if cluster.fabric is not None:  # see serving.fabric for what these count
        by_bytes, by_util = cluster.fabric.tier_figures(sim_time)
        out["network_bytes_by_tier"] = by_bytes
        out["network_utilization_by_tier"] = by_util
    return out


def _arrived_per_tier(cluster: Any, n: int) -> np.ndarray:
    counts = np.zeros(n, np.int64)
    for tier, c in cluster.tier_arrivals.items():
        counts[tier] = c
    return counts


def timing_model(cluster: Any) -> str:
    """Which timing model answered: one name, or ``role: name`` per pool when they differ."""
    names: dict[str, str] = {}
    for inst in cluster.instances:
        names.setdefault(inst.role, inst.timing.name)
    if len(set(names.values())) == 1:
        return next(iter(names.values()))
    return "; ".join(f"{role}: {name}" for role, name in names.items())
