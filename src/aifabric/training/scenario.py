"""A training scenario (the ``simulate train`` keys) turned into the job and the step options.

One home for the conversion, used by ``aifabric simulate train`` and by the training jobs
of ``aifabric simulate cluster``: job and fabric keys (:mod:`aifabric.spec.scenario`), then
the simulation keys of :data:`SIM_KEYS`.
"""

from __future__ import annotations

from typing import Any

from aifabric.errors import ConfigError

SIM_KEYS = ("network", "routing", "seed", "flash_attention", "tp_comm_overlap",
            "overlap_grad_reduce", "overlap_param_gather", "expert_load_imbalance", "jitter",
            "slow_gpu", "slow_node", "fail", "degrade", "require_fit")  # fmt: skip


def pairs(values: list[str] | None, what: str) -> tuple[tuple[int, float], ...]:
    """INDEX:FACTOR strings (``slow_gpu``, ``slow_node``) as (int, float) pairs."""
    out = []
    for text in values or []:
        try:
            index, factor = str(text).split(":")
            out.append((int(index), float(factor)))
        except ValueError:
            raise ConfigError(f"{what} {text!r}: expected INDEX:FACTOR, e.g. 3:1.5") from None
    return tuple(out)


def as_list(value: Any) -> list[str]:
    if value is None:
        return []
    return [str(v) for v in value] if isinstance(value, list) else [str(value)]


def training_inputs(scenario: dict[str, Any], flags: dict[str, Any] | None = None,
                    sim_flags: dict[str, Any] | None = None) -> tuple[Any, Any]:  # fmt: skip
    """(TrainingJob, StepOptions) of a flat training scenario; ``flags`` override job and
    fabric keys, ``sim_flags`` simulation keys (None values are not given). The scenario
    mapping is not modified.

    Raises:
        ConfigError: an unknown key, a bad value, or no model.
    """
    from aifabric.catalog import get_gpu
    from aifabric.spec.scenario import split_plan_options, training_job
    from aifabric.training.step import StepOptions

    scenario = dict(scenario)
    sim = {k: scenario.pop(k) for k in list(scenario) if k in SIM_KEYS}
    fabric_opts, job_opts = split_plan_options(scenario, flags or {})
    if job_opts is None:
        raise ConfigError("model is required: give --model NAME or 'model:' in the scenario")
    sim.update({k: v for k, v in (sim_flags or {}).items() if v is not None})
    if fabric_opts.get("gpu"):
        job_opts["gpu"] = get_gpu(str(fabric_opts["gpu"]))
    gpus_needed = fabric_opts.pop("gpus", None)
    job = training_job({k: v for k, v in job_opts.items() if v is not None})
    if gpus_needed is not None:
        fabric_opts["gpus"] = gpus_needed
    fabric_opts.setdefault("gpu", job.gpu.name)
    given = sim_flags or {}
    opts = StepOptions(
        network=sim.get("network"), fabric=fabric_opts, routing=str(sim.get("routing", "ecmp")),
        seed=int(sim.get("seed", 0)), flash_attention=bool(sim.get("flash_attention", True)),
        tp_comm_overlap=bool(sim.get("tp_comm_overlap", False)),
        overlap_grad_reduce=bool(sim.get("overlap_grad_reduce", True)),
        overlap_param_gather=bool(sim.get("overlap_param_gather", True)),
        expert_load_imbalance=float(sim.get("expert_load_imbalance", 1.0)),
        jitter=float(sim.get("jitter", 0.0)),
        slow_gpus=pairs(given.get("slow_gpu") or as_list(sim.get("slow_gpu")), "slow_gpu"),
        slow_nodes=pairs(given.get("slow_node") or as_list(sim.get("slow_node")), "slow_node"),
        fail=tuple(given.get("fail") or as_list(sim.get("fail"))),
        degrade=tuple(given.get("degrade") or as_list(sim.get("degrade"))),
        require_fit=bool(sim.get("require_fit", False)),
        dataset_tokens_given="dataset_tokens" in job_opts,
    )  # fmt: skip
    if opts.seed < 0:
        raise ConfigError(f"seed(={opts.seed}) must be >= 0")
    return job, opts
