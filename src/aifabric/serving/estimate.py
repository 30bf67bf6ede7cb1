"""Up-front estimate of a serving simulation's work, for the resource guard (aifabric.guards).

Two figures, from the scenario and the instances' iteration timing only:

- events ~ requests x events per request: an arrival, a prefill iteration, the decode
  stretch it cuts and the one that ends with its last token (4, colocated); with PD also
  the KV transfer's flow and the decode instance's replanning (+3); with a KV store the
  prefix fetch and store flows (+2). Measured (README / benchmarks): 3.7 a request on
  poisson-colocated.yaml, 8.1 on the Mooncake PD trace with the pooled store.
- time-series samples = simulated seconds / metrics.sample_interval_s + 1, with the
  simulated seconds bounded from below by the larger of the arrival span and the busy time
  of the instances: requests x prefill_time(mean prompt) / entry instances (one computed
  token a request when a KV store may supply the rest of the prompt), plus (colocated) or
  at most alongside (PD) output tokens / (instances x max_batch_size) full decode steps.
  A lower bound never refuses a run that would have been short; pathological compute
  settings (``compute.prefill_mfu: 1e-9``) make it, and so the samples, explode.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from aifabric.guards import (
    MAX_SERVE_EVENTS,
    MAX_SERVE_INSTANCES,
    MAX_SERVE_SAMPLES,
    check_work,
    format_number,
    limit_for,
)
from aifabric.serving.compute import IterationTiming
from aifabric.serving.config import Lengths, ServeScenario

EVENTS_PER_REQUEST = {"colocated": 4.0, "disaggregated": 7.0}
KV_STORE_EVENTS_PER_REQUEST = 2.0


def mean_length(lengths: Lengths) -> float:
    """Mean of a token-length distribution, clipped to its [minimum, maximum] (tokens)."""
    if lengths.kind == "uniform":
        mean = (lengths.low + lengths.high) / 2
    elif lengths.kind == "pareto":
        alpha = lengths.alpha
        mean = lengths.low * alpha / (alpha - 1) if alpha > 1 else float(lengths.maximum)
    else:  # fixed, lognormal: the configured mean
        mean = lengths.mean
    return min(max(mean, float(lengths.minimum)), float(lengths.maximum))


def simulated_seconds(scenario: ServeScenario, entry: IterationTiming,
                      decode: IterationTiming | None, *, requests: int, span: float,
                      mean_prompt: float, mean_output: float) -> float:  # fmt: skip
    """A lower bound on the simulated seconds (see the module docstring), capped at
    ``max_sim_time_s`` when set."""
    cl = scenario.cluster
    colocated = cl.mode == "colocated"
    n_entry = cl.instances if colocated else cl.prefill_instances
    n_decode = cl.instances if colocated else cl.decode_instances
    computed = 1.0 if scenario.kv_store.enabled else max(1.0, mean_prompt)
    prefill = requests * entry.prefill_time(computed) / n_entry
    batch = scenario.batching.max_batch_size
    step = (decode or entry).iteration_time(decode_batch=batch, decode_context=0.0)
    decoding = requests * max(0.0, mean_output - 1) / (n_decode * batch) * step
    busy = prefill + decoding if colocated else max(prefill, decoding)
    duration = max(span, busy)
    cap = scenario.max_sim_time_s
    return duration if cap is None else min(duration, cap)


def serving_estimates(scenario: ServeScenario, entry: IterationTiming,
                      decode: IterationTiming | None, *, requests: int, span: float,
                      mean_prompt: float, mean_output: float) -> dict[str, float]:  # fmt: skip
    """``{"events": ..., "samples": ..., "simulated_s": ...}`` of a run."""
    per_request = EVENTS_PER_REQUEST[scenario.cluster.mode]
    if scenario.kv_store.enabled:
        per_request += KV_STORE_EVENTS_PER_REQUEST
    seconds = simulated_seconds(scenario, entry, decode, requests=requests, span=span,
                                mean_prompt=mean_prompt, mean_output=mean_output)  # fmt: skip
    interval = scenario.metrics.sample_interval_s
    return {
        "events": requests * per_request,
        "samples": max(seconds, interval) / interval + 1,
        "simulated_s": seconds,
    }


def synthetic_figures(scenario: ServeScenario) -> dict[str, Any]:
    """(requests, arrival span, mean prompt, mean output) of a synthetic workload, from its
    configuration alone (before any draw)."""
    wl = scenario.workload
    rate = wl.rate_rps if wl.rate_rps is not None else 1.0  # as serving.source draws them
    n = wl.num_requests
    span = (n - 1) / rate
    if wl.rate_schedule is not None:  # the clock at which n arrivals are expected
        from aifabric.serving.workload import schedule_clock

        durations = np.array([p.duration_s for p in wl.rate_schedule])
        rates = np.array([p.rate_rps for p in wl.rate_schedule])
        span = float(schedule_clock(durations, rates, np.array([float(n)]))[0])
    return {
        "requests": n,
        "span": span,
        "mean_prompt": mean_length(wl.input_tokens) + wl.system_prompt_tokens,
        "mean_output": mean_length(wl.output_tokens),
    }


def check_serving_work(scenario: ServeScenario, entry: IterationTiming,
                       decode: IterationTiming | None, figures: dict[str, Any],
                       max_work: float | None = None) -> dict[str, float]:  # fmt: skip
    """Estimate the run's work and refuse it past the limits; returns the estimates.

    Raises:
        WorkLimitError: events above MAX_SERVE_EVENTS or samples above MAX_SERVE_SAMPLES
            (or above ``max_work`` when given).
    """
    from aifabric.serving.autoscale import max_instances

    instances = max_instances(scenario)  # an elastic run: its pools at their largest
    check_work("simulate serve", instances, limit_for(MAX_SERVE_INSTANCES, max_work),
               "instances", basis="cluster instances")  # fmt: skip
    est = serving_estimates(scenario, entry, decode, **figures)
    check_work("simulate serve", est["events"], limit_for(MAX_SERVE_EVENTS, max_work),
               "events", basis=f"{figures['requests']:,} requests x events per request")  # fmt: skip
    interval = scenario.metrics.sample_interval_s
    check_work("simulate serve", est["samples"], limit_for(MAX_SERVE_SAMPLES, max_work),
               "time-series samples",
               basis=f"at least {format_number(est['simulated_s'])} simulated s / "
                     f"metrics.sample_interval_s {interval:g}")  # fmt: skip
    return est
