"""Where requests come from: synthetic arrivals, multi-turn sessions, or a trace replay.

Every random draw is made here, up front, from the simulation's generator, so a run is
the same whatever order its events happen in.

- Synthetic: Gamma-renewal arrivals (rate, burstiness CV; or a piecewise-constant
  ``rate_schedule`` through a time change, serving.workload.schedule_times) with prompt and output lengths
  from their distributions. A ``system_prompt_tokens`` prefix is shared by all requests.
- Sessions: conversations with a geometric number of turns (mean ``turns_mean``); turn t's
  prompt is the previous turn's prompt + answer + a new user message, and it is sent an
  exponential think time after the previous answer finished (closed loop). New sessions
  start at rate_rps / turns_mean, so the long-run request rate is about rate_rps.
- Trace: arrival times, lengths and prefix-block hashes from the file. Timestamps can be
  rescaled to a target rate, and spread by a seeded uniform jitter over [t, t + jitter)
  (the Mooncake release rounds timestamps, so many requests share one; a jitter of one
  rounding step spreads them as a real arrival process would).

Prefix blocks of synthetic requests are ids made from (session, block index), so two turns
of one conversation share their common prefix and the system prompt is shared by all.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from aifabric.serving.config import ServeScenario
from aifabric.serving.config import Workload as WorkloadConfig
from aifabric.serving.workload import LengthDistribution, arrival_times, schedule_times

_SYSTEM_BLOCK = 1 << 60  # block ids of the shared system prompt: _SYSTEM_BLOCK + j
_SESSION_SHIFT = 24  # session block id: ((session + 1) << 24) | j


@dataclass(slots=True, eq=False)
class SessionPlan:
    inputs: np.ndarray  # new user tokens per turn
    outputs: np.ndarray
    thinks: np.ndarray  # s from the previous answer to this turn (index 0 unused)


@dataclass(slots=True, eq=False)
class Workload:
    """First arrivals in time order, and the follow-up turns of sessions."""

    times: np.ndarray
    prompts: np.ndarray
    outputs: np.ndarray
    tiers: np.ndarray
    sessions: np.ndarray  # session id of each first arrival (-1: none)
    total: int  # requests including follow-up turns
    block_tokens: int
    system_tokens: int = 0
    trace_blocks: list[list[int]] | None = None
    plans: dict[int, SessionPlan] = field(default_factory=dict)
    name: str = "synthetic"

    def blocks_for(self, index: int, session: int, turn: int, prompt: int) -> list[int] | None:
        """Prefix-block ids of a request (the trace's, or synthetic session blocks)."""
        if self.trace_blocks is not None:
            return self.trace_blocks[index] if index >= 0 else None
        full = prompt // self.block_tokens
        if full == 0:
            return []
        shared = min(self.system_tokens // self.block_tokens, full)
        base = (session + 1) << _SESSION_SHIFT
        return [_SYSTEM_BLOCK + j for j in range(shared)] + [base | j for j in range(shared, full)]

    def turn(self, session: int, turn: int, prev_prompt: int, prev_output: int) -> tuple[int, int, float] | None:  # fmt: skip
        """(prompt, output, think time) of a session's next turn, or None when it ends."""
        plan = self.plans.get(session)
        if plan is None or turn >= plan.inputs.shape[0]:
            return None
        prompt = prev_prompt + prev_output + int(plan.inputs[turn])
        return prompt, int(plan.outputs[turn]), float(plan.thinks[turn])


def _arrivals(rng: np.random.Generator, wl: WorkloadConfig, rate: float, n: int,
              scale: float) -> np.ndarray:  # fmt: skip
    """First-arrival times: a renewal process at rate x scale shifted to start at 0, or, with
    ``rate_schedule``, the scheduled rates x scale on the absolute clock (phases from 0)."""
    if wl.rate_schedule is None:
        times = arrival_times(rng, rate_rps=rate * scale, num_requests=n,
                              burstiness_cv=wl.burstiness_cv)  # fmt: skip
        shifted: np.ndarray = times - times[0]
        return shifted
    durations = np.array([p.duration_s for p in wl.rate_schedule])
    rates = np.array([p.rate_rps for p in wl.rate_schedule]) * scale
    return schedule_times(rng, durations=durations, rates=rates, num_requests=n,
                          burstiness_cv=wl.burstiness_cv)  # fmt: skip


def _lengths(cfg: object) -> LengthDistribution:
    return LengthDistribution(**cfg.model_dump())  # type: ignore[attr-defined]


def build_workload(scenario: ServeScenario, rng: np.random.Generator) -> Workload:
    """All requests' draws for a scenario (see the module docstring)."""
    wl = scenario.workload
    tiers = scenario.slo.tiers
    shares = np.array([t.share for t in tiers], dtype=np.float64)
    shares /= shares.sum()
    if wl.source == "trace":
        return _trace_workload(scenario, rng, shares)
    inputs, outputs = _lengths(wl.input_tokens), _lengths(wl.output_tokens)
    rate = wl.rate_rps if wl.rate_rps is not None else 1.0
    sys_tokens = wl.system_prompt_tokens
    block = scenario.kv_store.block_tokens
    if not wl.sessions.enabled:
        n = wl.num_requests
        times = _arrivals(rng, wl, rate, n, 1.0)
        prompts = inputs.sample(rng, n) + sys_tokens
        outs = outputs.sample(rng, n)
        tier = rng.choice(len(tiers), size=n, p=shares)
        return Workload(times, prompts, outs, tier, np.arange(n), n, block, sys_tokens)
    # Sessions: draw turn counts until they cover num_requests, then every turn's lengths.
    p = 1.0 / wl.sessions.turns_mean
    counts: list[int] = []
    total = 0
    while total < wl.num_requests:
        c = int(min(rng.geometric(p), wl.num_requests - total))
        counts.append(c)
        total += c
    s = len(counts)
    times = _arrivals(rng, wl, rate, s, 1.0 / wl.sessions.turns_mean)
    tier = rng.choice(len(tiers), size=s, p=shares)
    plans: dict[int, SessionPlan] = {}
    firsts_in = np.zeros(s, np.int64)
    firsts_out = np.zeros(s, np.int64)
    for i, c in enumerate(counts):
        ins = inputs.sample(rng, c)
        outs = outputs.sample(rng, c)
        thinks = rng.exponential(wl.sessions.think_time_s, size=c) if wl.sessions.think_time_s > 0 else np.zeros(c)  # fmt: skip
        plans[i] = SessionPlan(ins, outs, thinks)
        firsts_in[i] = ins[0] + sys_tokens
        firsts_out[i] = outs[0]
    return Workload(times, firsts_in, firsts_out, tier, np.arange(s), total, block, sys_tokens,
                    plans=plans)  # fmt: skip


def _trace_workload(scenario: ServeScenario, rng: np.random.Generator,
                    shares: np.ndarray) -> Workload:  # fmt: skip
    from aifabric.errors import ConfigError
    from aifabric.serving.trace import read_trace

    wl = scenario.workload
    assert wl.trace is not None
    try:
        trace = read_trace(wl.trace, wl.trace_format)
    except ConfigError as exc:
        raise ConfigError(f"scenario key workload.trace: {exc}") from None
    n = trace.num_requests if wl.max_requests is None else min(wl.max_requests, trace.num_requests)
    times = trace.arrival[:n].astype(np.float64).copy()
    prompts = trace.input_tokens[:n].copy()
    outs = np.maximum(trace.output_tokens[:n], 1)
    blocks = None if trace.block_hashes is None else trace.block_hashes[:n]
    if wl.rate_rps is not None and n > 1 and times[-1] > 0:
        times *= (n / times[-1]) / wl.rate_rps
    if wl.trace_jitter_s > 0:
        times = times + rng.uniform(0.0, wl.trace_jitter_s, size=n)
        order = np.argsort(times, kind="stable")
        times, prompts, outs = times[order], prompts[order], outs[order]
        if blocks is not None:
            blocks = [blocks[i] for i in order.tolist()]
        times -= times[0]
    tier = rng.choice(len(shares), size=n, p=shares)
    return Workload(times, prompts, outs, tier, np.full(n, -1), n, trace.block_tokens,
                    trace_blocks=blocks, name=trace.name)  # fmt: skip


def load_workload(sc: ServeScenario, rng: np.random.Generator) -> Workload:
    """``build_workload``, with a length error named by its scenario keys."""
    from aifabric.errors import ConfigError

    try:
        return build_workload(sc, rng)
    except ConfigError as exc:
        text = str(exc)
        if text.startswith(("length", "uniform")):
            text = f"scenario key workload.input_tokens/output_tokens: {text}"
        raise ConfigError(text) from None


def trace_figures(wl: Workload) -> dict[str, Any]:
    """Requests, arrival span and mean lengths of a read trace (first turns only)."""
    n = wl.total
    return {
        "requests": n,
        "span": float(wl.times[-1] - wl.times[0]) if wl.times.shape[0] else 0.0,
        "mean_prompt": float(wl.prompts.mean()) if n else 0.0,
        "mean_output": float(wl.outputs.mean()) if n else 0.0,
    }
