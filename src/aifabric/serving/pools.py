"""The iteration timing of each serving pool of a scenario: the colocated pool, or the
prefill and decode pools of a PD deployment, with their scenario keys for error messages.

Each pool's timing is chosen by :func:`aifabric.serving.profile.select_timing` (a measured
profile where one matches, else the roofline), or is the expert-parallel timing of
:mod:`aifabric.serving.moe` when the pool sets ``ep``; the decode side is wrapped in
:class:`aifabric.serving.speculative.SpeculativeTiming` when ``compute.speculative`` is on.
"""

from __future__ import annotations

from typing import Any

from aifabric.errors import ConfigError
from aifabric.serving.compute import IterationTiming
from aifabric.serving.config import ServeScenario

__all__ = ["pool_keys", "pool_timings"]


def pool_keys(sc: ServeScenario) -> tuple[str, str, str]:
    """The scenario keys that size the colocated, prefill and decode instances."""
    cl = sc.cluster
    return (
        "cluster.tp" if cl.ep is None else "cluster.ep",
        "cluster.prefill_tp" if cl.prefill_ep is None else "cluster.prefill_ep",
        "cluster.decode_tp" if cl.decode_ep is None else "cluster.decode_ep",
    )


def _timing(sc: ServeScenario, deployed: Any, gpu_name: str, tp: int, key: str,
            ep: int | None = None, model: Any = None) -> IterationTiming:  # fmt: skip
    """One instance's timing; ``model`` is a draft model (else the deployed one)."""
    from aifabric.catalog import get_gpu
    from aifabric.serving.profile import roofline_options, select_timing

    comp = sc.compute
    # A draft model (speculative decoding) takes a measured profile when one exists but
    # does not require one: compute.timing=profile is about the deployment.
    choice = comp.timing if model is None or comp.timing == "roofline" else "auto"
    try:
        if ep is not None:  # expert-parallel instance (routed experts EP, attention DP)
            from aifabric.serving.moe import scenario_ep_timing

            timing: IterationTiming = scenario_ep_timing(sc, deployed, get_gpu(gpu_name), ep)
            return timing
        timing = select_timing(
            model=deployed if model is None else model, gpu=get_gpu(gpu_name), tp=tp,
            timing=choice, weight_dtype=comp.weight_dtype, kv_dtype=comp.kv_dtype,
            **roofline_options(comp),
        )  # fmt: skip
        return timing
    except ConfigError as exc:
        raise ConfigError(f"scenario key {key}: {exc}") from None


def _speculate(sc: ServeScenario, deployed: Any, base: IterationTiming,
               gpu_name: str) -> IterationTiming:  # fmt: skip
    """The decode side's timing: speculative when compute.speculative is on."""
    from aifabric.serving.speculative import SpeculativeTiming
    from aifabric.spec.scenario import _model

    spec = sc.compute.speculative
    if not spec.enabled:
        return base
    draft = None
    cost = 0.0
    if isinstance(spec.draft_cost, str):
        try:
            model = _model(spec.draft_cost)
        except ConfigError as exc:
            raise ConfigError(f"scenario key compute.speculative.draft_cost: {exc}") from None
        draft = _timing(sc, deployed, gpu_name, base.tp, "compute.speculative.draft_cost",
                        model=model)  # fmt: skip
    else:
        cost = float(spec.draft_cost)
    return SpeculativeTiming(base=base, draft_tokens=spec.draft_tokens,
                             acceptance_rate=spec.acceptance_rate, draft_cost=cost,
                             draft=draft)  # fmt: skip


def pool_timings(
    sc: ServeScenario, deployed: Any
) -> tuple[IterationTiming, IterationTiming | None]:
    """(colocated or prefill timing, decode timing or None when colocated)."""
    cl = sc.cluster
    key_c, key_p, key_d = pool_keys(sc)
    if cl.mode == "colocated":
        base = _timing(sc, deployed, sc.gpu, cl.tp, key_c, cl.ep)
        return _speculate(sc, deployed, base, sc.gpu), None
    prefill = _timing(sc, deployed, cl.prefill_gpu or sc.gpu, cl.prefill_tp or cl.tp, key_p,
                      cl.prefill_ep)  # fmt: skip
    gpu_d = cl.decode_gpu or sc.gpu
    decode = _timing(sc, deployed, gpu_d, cl.decode_tp or cl.tp, key_d, cl.decode_ep)
    return prefill, _speculate(sc, deployed, decode, gpu_d)
