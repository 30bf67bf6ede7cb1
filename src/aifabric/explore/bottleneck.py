"""What limits a sweep point: one label per row, read from the command's own ``--json`` result.

The label is derived from the breakdown the simulator already reports; nothing is
re-simulated. ``aifabric sweep`` stores it in the column ``bottleneck`` (aifabric.explore.store)
and ``results top`` / ``results pareto`` show it. Vocabulary and rule per command:

``simulate train`` (aifabric.training.report): ``hbm_capacity``, ``compute``,
``pipeline_bubble``, ``scale_up``, ``leaf``, ``spine``, ``core``.

1. ``fits_in_memory`` false: ``hbm_capacity`` (the step's time means nothing then).
2. Otherwise each part of the step is a candidate, in seconds per iteration:
   ``compute`` = ``compute_s`` (the busiest stage's kernels and the optimizer);
   ``pipeline_bubble`` = ``bubble_fraction`` x ``iteration_time_s``; and each tier T gets
   the exposed communication of the dimensions whose traffic climbs highest to T:
   sum of ``exposed_comm_s[d]`` over d with top tier T, the top tier of d being the highest
   tier with bytes in ``comm_by_tier[d]`` (``<tier>_bytes``; scale_up < leaf < spine < core: a collective
   is as slow as its slowest hop, which on a non-blocking fabric is the highest tier it
   crosses, and on an oversubscribed one the oversubscribed uplink above the leaf). A
   dimension without a tier entry counts for scale_up.
   The label is the largest candidate; ties go to the earlier in the order above.

   Memory bandwidth is not separated for training: ``compute_s`` is kernel time, roofline
   or calibrated, and the result does not split it into FLOP-bound and HBM-bound parts.

``simulate serve`` (aifabric.serving.metrics, serving.economics): ``hbm_capacity``,
``leaf``, ``spine``, ``core``, ``compute``, ``memory_bandwidth``.

1. ``preemptions`` > 0 or any ``too_long`` rejection: ``hbm_capacity`` (the KV cache
   overflowed, or a prompt does not fit an instance).
2. A fabric layer whose busiest link (``network_utilization_by_tier.*.max_utilization``)
   is at least :data:`SATURATED` (0.9): that layer's switch tier (endpoint_leaf -> leaf,
   leaf_spine -> spine, spine_core -> core), the busiest layer if several.
3. Otherwise the role with the highest ``busy_fraction`` (``utilization_by_role``): its
   ``compute_utilization`` against its ``hbm_bandwidth_utilization`` (both against datasheet
   peaks): ``compute`` if the former is at least the latter, else ``memory_bandwidth``
   (decode at small batch reads weights and KV far faster than it computes).

``simulate collective``: ``scale_up``, ``leaf``, ``spine``, ``core``: the layer with the
highest ``max_utilization`` in the largest size's ``tiers`` (the last of ``results``),
mapped as above (scale_up stays). None without tiers.

``simulate cluster``: the busiest network tier, as for collectives, over
``tiers.<network>.<layer>.max_link_utilization`` of every network.

``plan`` with a job: the largest of ``compute`` = ``job.compute_time_s`` and each layer's
``tier_bandwidth[*].min_time_s`` (its bytes at full link rate), layers mapped as above.
Without a job: the tier of the largest ``oversubscription`` above 1, else None.

Any other command (``traffic train``), or a result without the keys a rule needs: None.
"""

from __future__ import annotations

from typing import Any

__all__ = ["LABELS", "SATURATED", "bottleneck"]

TIERS = ("scale_up", "leaf", "spine", "core")
LABELS = ("compute", "memory_bandwidth", "hbm_capacity", "pipeline_bubble", *TIERS)
SATURATED = 0.9  # busiest-link utilization at which a serving fabric layer is the limit
LAYER_TIER = {"scale_up": "scale_up", "endpoint_leaf": "leaf", "leaf_spine": "spine",
              "spine_core": "core", "leaf": "leaf", "spine": "spine", "core": "core"}  # fmt: skip


def _num(value: Any) -> float:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else 0.0


def _largest(candidates: list[tuple[str, float]]) -> str | None:
    """The label of the largest value; the first on ties; None when there is none."""
    best: tuple[str, float] | None = None
    for label, value in candidates:
        if best is None or value > best[1]:
            best = (label, value)
    return None if best is None else best[0]


def _train(r: dict[str, Any]) -> str | None:
    if r.get("fits_in_memory") is False:
        return "hbm_capacity"
    if "compute_s" not in r:
        return None
    parts = {"compute": _num(r.get("compute_s")),
             "pipeline_bubble": _num(r.get("bubble_fraction")) * _num(r.get("iteration_time_s"))}  # fmt: skip
    per_tier = dict.fromkeys(TIERS, 0.0)
    by_tier = r.get("comm_by_tier") or {}
    for dim, exposed in (r.get("exposed_comm_s") or {}).items():
        got = by_tier.get(dim) or {}
        crossed = [t for t in TIERS if _num(got.get(f"{t}_bytes")) > 0]
        top = max(crossed, key=TIERS.index) if crossed else "scale_up"
        per_tier[top] += _num(exposed)
    return _largest([*parts.items(), *per_tier.items()])


def _serve(r: dict[str, Any]) -> str | None:
    if _num(r.get("preemptions")) > 0 or _num((r.get("rejected_by") or {}).get("too_long")) > 0:
        return "hbm_capacity"
    layers = [(LAYER_TIER[k], _num(v.get("max_utilization")))
              for k, v in (r.get("network_utilization_by_tier") or {}).items()
              if k in LAYER_TIER and isinstance(v, dict)]  # fmt: skip
    hot = [(t, u) for t, u in layers if u >= SATURATED]
    if hot:
        return _largest(hot)
    roles = r.get("utilization_by_role") or {}
    if not roles:
        return None
    busiest = _largest([(k, _num(v.get("busy_fraction"))) for k, v in roles.items()])
    role = roles[busiest]
    compute = _num(role.get("compute_utilization"))
    return "compute" if compute >= _num(role.get("hbm_bandwidth_utilization")) else (
        "memory_bandwidth")  # fmt: skip


def _collective(r: dict[str, Any]) -> str | None:
    results = r.get("results") or []
    if not results:
        return None
    tiers = results[-1].get("tiers") or {}
    return _largest([(LAYER_TIER[k], _num(v.get("max_utilization"))) for k, v in tiers.items()
                     if k in LAYER_TIER])  # fmt: skip


def _cluster(r: dict[str, Any]) -> str | None:
    return _largest([(LAYER_TIER[k], _num(v.get("max_link_utilization")))
                     for net in (r.get("tiers") or {}).values() for k, v in net.items()
                     if k in LAYER_TIER])  # fmt: skip


def _plan(r: dict[str, Any]) -> str | None:
    job = r.get("job")
    if isinstance(job, dict) and r.get("tier_bandwidth") is not None:
        layers = [(LAYER_TIER[x["layer"]], _num(x.get("min_time_s")))
                  for x in r["tier_bandwidth"] if x.get("layer") in LAYER_TIER]  # fmt: skip
        return _largest([("compute", _num(job.get("compute_time_s"))), *layers])
    over = [(LAYER_TIER[k], _num(v)) for k, v in (r.get("oversubscription") or {}).items()
            if k in LAYER_TIER and _num(v) > 1]  # fmt: skip
    return _largest(over)


_RULES = {"simulate train": _train, "simulate serve": _serve,
          "simulate collective": _collective, "simulate cluster": _cluster, "plan": _plan}  # fmt: skip


def bottleneck(command: str, result: dict[str, Any] | None) -> str | None:
    """The bottleneck label of ``command``'s ``--json`` result (see the module docstring)."""
    rule = _RULES.get(command)
    if rule is None or not isinstance(result, dict):
        return None
    return rule(result)
