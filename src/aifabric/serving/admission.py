"""SLO admission control: predicted TTFT and TBT, and Mooncake-style early rejection.

A request is admitted (at arrival, ``slo.admission_control``) only if

1. its predicted TTFT (``Admission.ttft``: prefix fetch + queue wait + prefill on the
   instance the router chose) is within ``admission_slack`` x its tier's ``ttft_s``; and
2. the token gap predicted for the decode stage it will join, with it there, is within
   ``admission_slack`` x the strictest TBT target among its own tier and the tiers already
   admitted to that stage (the same instance when colocated, the decode pool with PD): a
   bigger batch slows every running request, so admitting it must not push any of them
   past its target either. Rejections: ``slo`` (TTFT), ``slo_tbt`` (TBT at arrival),
   ``slo_decode`` (TBT at the decode stage, below).

When the TBT check runs and on which load (``slo.early_rejection``), after Mooncake (Qin et
al., FAST'25, section 6 "Overload-oriented Scheduling"):

- ``none``: no TBT check at arrival. It runs when the request reaches the decode stage,
  after its prefill (colocated: when it would join the batch; PD: when its KV would leave
  the prefill instance), on the load then; a request refused there has spent its prefill
  for nothing (``rejected_prefill_tokens``). The baseline of section 6.2.
- ``current``: at arrival, on the decode stage's load now: running sequences plus those
  already prefilled and on their way (PD: waiting for decode memory, in transfer, arrived
  but not batched), plus this one. Section 6.2 ("Early Rejection"): reject before
  prefill. Section 6.3 shows that deciding on a load the request will not meet makes
  prefill and decode load swing in anti-phase.
- ``predicted`` (default): at arrival, on the load predicted for when the request reaches
  the decode stage (now + its predicted TTFT): running sequences plus every admitted
  request not yet decoding (queued, fetching, prefilling, in transfer: all of them will
  be there first) plus this one. Section 6.4 ("Early Rejection Based on Prediction")
  also takes running requests older than a uniform decode time t_d as finished by then;
  that part is implemented (``subtract_finished``, t_d = EWMA of completed requests'
  decode durations) but off: measured at 10x overload it let the batch overshoot,
  because the completions seen early are the short answers and bias t_d low, while the
  slots they free are refilled by the admitted requests counted anyway.

Token gap on a decode stage of B sequences holding C tokens of KV (the instance's own
timing model, ``IterationTiming.iteration_time``; KV growth while decoding is not added,
finished requests free theirs). PD decode instances prefill nothing: the gap is one decode
step of the pool's load spread evenly over its instances (the cluster places KV where
most memory is free, which balances them). Colocated instances also prefill, which
interferes with the decodes (approximate model):

- Steady state: with a mean answer of L tokens, B / L sequences finish per decode step
  and as many prompts are prefilled to replace them. ``continuous`` batching pauses the
  decodes for a prefill (Orca/vLLM, prefill-first), so the gap is t_step + (B / L) x P,
  P the instance's mean prefill seconds per request (EWMA of its queued requests');
  ``chunked`` (Sarathi-Serve) puts the prompt tokens in the decode iterations, so P is
  what a mean prompt adds to a decode iteration's time; ``static`` never mixes them. The
  prefills a request meets over its L steps are compound Poisson (mean L r P, variance
  L r E[P^2], r = B / L), and the prediction is the upper 95 % quantile (Z_QUANTILE
  standard deviations above the mean): admissions keep the stage at the limit, so a mean
  prediction would leave about half the admitted requests above it.
- Bursts (the first seconds of an overload, or after a lull): admitted prefill seconds go
  into a leaky bucket that drains at the steady prefill share; a short answer (the 5th
  percentile of answer lengths, T = its steps x the limit) must keep its decode steps
  within T, so the bucket holds T (1 - t_step / limit - share). Without it, the first
  admissions are prefilled back to back and the early answers stall (measured: 85 % of
  admitted gold in target at 2,000 req/s on examples/serve/poisson-colocated.yaml).
- Priorities: a request leaves room in the bucket for the prefill seconds that higher-
  priority arrivals (offered, admitted or not) bring over T; otherwise a flood of bronze
  fills it and gold is refused.
- Feedback: when the gaps measured on the stage (EWMA over tokens, weight 0.02) already
  exceed the limit, nothing is admitted until they recover.

L is the workload's mean answer length as a prior (what an operator knows from history),
then the EWMA of completed answers; the short answer's length is the prior's 5th
percentile. For ``slo.tbt_metric: max`` (worst stall) the prediction is the stall the
running decodes are already in, plus the rest of a prefill iteration in progress, plus
every queued prefill and this one (continuous: prefill-first runs them back to back), plus
a decode step; chunked: a decode step with a full max_batch_tokens budget of prompt tokens.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from aifabric.serving.instance import Instance
    from aifabric.serving.request import Request

POOL = -1  # the group key of the PD decode pool (colocated groups: the instance index)
EWMA = 0.1  # weight of the newest sample in the running means below
# The TBT prediction is an upper quantile, not the mean: admitted requests keep the stage
# at the limit, so a mean prediction would leave half of them above it. 1.645: the 95th
# percentile of a normal variate (the share of admitted requests meant to meet the target).
Z_QUANTILE = 1.645


class DecodeLoad:
    """Per decode stage ("group"): admitted requests not yet decoding, and tier members.

    ``inbound`` counts requests admitted to the group and not in a decode batch (queued,
    fetching, prefilling, waiting for decode memory, in transfer); ``members`` counts the
    admitted, unfinished requests per tier (for the strictest TBT target present).
    """

    def __init__(self, tiers: int) -> None:
        self.inbound = 0
        self.inbound_tokens = 0
        self.members = np.zeros(tiers, np.int64)


class Admission:
    """Admission decisions and the bookkeeping behind them, for one ServingSimulation."""

    def __init__(self, cluster: Any) -> None:
        self.cluster = cluster
        sc = cluster.scenario
        self.enabled: bool = sc.slo.admission_control
        self.mode: str = sc.slo.early_rejection
        self.slack: float = sc.slo.admission_slack
        self.metric: str = sc.slo.tbt_metric
        self.tbt_targets = np.array([t.tbt_s for t in sc.slo.tiers])
        self.groups: dict[int, DecodeLoad] = {}
        outputs = cluster.workload.outputs
        self.mean_output = float(outputs.mean()) if outputs.shape[0] else 1.0
        # the 5th percentile of answer lengths (prior: the workload's; an operator's history)
        self.short_output = max(2.0, float(np.quantile(outputs, 0.05))) if outputs.shape[0] else 2.0
        self.decode_time = math.nan  # t_d: EWMA of completed requests' decode durations
        self.rejected_prefill_tokens = 0
        # Mooncake's section 6.4 also takes running requests older than t_d as finished by
        # t*; measured here, that let the batch overshoot (the completions seen so far are
        # the short answers, so t_d is biased low), so it is off: requests finishing are
        # replaced by the admitted ones counted anyway.
        self.subtract_finished = False
        self._cost: tuple[int, float] = (-1, 0.0)  # (request, prefill cost) of the last check
        # offered prefill seconds by priority, decaying over the horizon of a short answer
        self.horizon = self.short_output * float(self.tbt_targets.min())
        self._offered: dict[int, dict[int, tuple[float, float]]] = {}
        self._bucket: dict[int, tuple[float, float, float]] = {}  # key: (t, level, rate)

    def offer(self, req: Request, inst: Instance) -> None:
        """Count an arrival's prefill seconds (before the decision) for its priority."""
        key = POOL if self.cluster.decoders else inst.index
        now = self.cluster.sim.now
        per = self._offered.setdefault(key, {})
        t, total = per.get(req.priority, (now, 0.0))
        decay = math.exp(-(now - t) / self.horizon)
        per[req.priority] = (now, total * decay + inst.timing.prefill_time(req.prefill_len))

    def offered_above(self, key: int, priority: int) -> float:
        """Prefill seconds per second offered lately by priorities above ``priority``."""
        now = self.cluster.sim.now
        total = 0.0
        for p, (t, amount) in self._offered.get(key, {}).items():
            if p < priority:
                total += amount * math.exp(-(now - t) / self.horizon)
        return total / self.horizon

    def bucket_level(self, key: int, rate: float) -> float:
        """Prefill seconds in ``key``'s bucket now, draining at ``rate`` since the last
        update (the rate is remembered for the next admission's update)."""
        now: float = self.cluster.sim.now
        t, level, _ = self._bucket.get(key, (0.0, 0.0, rate))
        level = max(0.0, level - rate * (now - t))
        self._bucket[key] = (now, level, rate)
        return level

    def _fill(self, key: int, seconds: float) -> None:
        t, level, rate = self._bucket.get(key, (0.0, 0.0, 0.0))
        now = self.cluster.sim.now
        self._bucket[key] = (now, max(0.0, level - rate * (now - t)) + seconds, rate)

    def group(self, key: int) -> DecodeLoad:
        load = self.groups.get(key)
        if load is None:
            load = self.groups[key] = DecodeLoad(self.tbt_targets.shape[0])
        return load

    # ----- bookkeeping (called by the cluster and instances) ------------------------------
    def commit(self, req: Request, key: int) -> None:
        """``req`` was admitted to decode group ``key``. The bookkeeping here and in
        joined/left/done feeds only the admission decisions: without admission control
        it is skipped (a hot path: once per request)."""
        req.group = key
        if not self.enabled:
            return
        inst = self.cluster.instances[key] if key >= 0 else None
        if inst is not None:
            rid, cost = self._cost
            if rid != req.id:
                cost = inst.timing.prefill_time(req.prefill_len, req.cached)
            self._fill(key, cost)
        load = self.group(key)
        load.members[req.tier] += 1
        self._inbound(req, load)

    def _inbound(self, req: Request, load: DecodeLoad) -> None:
        req.inbound = max(1, req.prefill_len)
        load.inbound += 1
        load.inbound_tokens += req.inbound

    def joined(self, req: Request) -> None:
        """``req`` entered a decode batch."""
        if not self.enabled:
            return
        if req.inbound and req.group in self.groups:
            load = self.groups[req.group]
            load.inbound -= 1
            load.inbound_tokens -= req.inbound
        req.inbound = 0

    def left(self, req: Request) -> None:
        """``req`` was preempted out of a decode batch: it will come back."""
        if not self.enabled:
            return
        if req.group in self.groups and not req.inbound:
            self._inbound(req, self.groups[req.group])

    def done(self, req: Request, decode_start: float | None = None) -> None:
        """``req`` finished or was rejected after admission."""
        if not self.enabled:
            req.group = -2
            return
        self.joined(req)
        if req.group in self.groups:
            self.groups[req.group].members[req.tier] -= 1
        req.group = -2
        n = req.output
        if n > 1:
            old = self.mean_output
            self.mean_output = (1 - EWMA) * old + EWMA * n
        if decode_start is not None and not math.isnan(decode_start):
            span = req.finish - decode_start
            if span >= 0:
                old_t = self.decode_time
                self.decode_time = span if math.isnan(old_t) else (1 - EWMA) * old_t + EWMA * span

    # ----- predictions --------------------------------------------------------------------
    def strictest(self, req: Request, key: int) -> float:
        """The tightest TBT target among ``req``'s tier and the tiers admitted to ``key``."""
        load = self.groups.get(key)
        own = float(self.tbt_targets[req.tier])
        if load is None or not load.members.any():
            return own
        return min(own, float(self.tbt_targets[load.members > 0].min()))

    def _running(self, inst: Instance, until: float | None) -> tuple[int, float]:
        """Sequences of ``inst``'s batch (and their KV) still decoding at ``until``."""
        batch = inst.batch
        n = batch.n
        t_d = self.decode_time if self.subtract_finished else math.nan
        if until is None or math.isnan(t_d) or n == 0:
            return n, float(batch.context_total)
        alive = batch.starts() + t_d > until
        return int(alive.sum()), float(batch.contexts()[alive].sum())

    def predicted_tbt(self, req: Request, inst: Instance, mode: str, ttft: float,
                      limit: float) -> float:  # fmt: skip
        """Predicted TBT (per ``slo.tbt_metric``) on the decode stage ``req`` would join,
        with ``req`` in it; ``inst`` is its routed (colocated) or prefill (PD) instance."""
        cl = self.cluster
        until = cl.sim.now + ttft if mode == "predicted" else None
        if not cl.decoders:  # colocated: the same instance
            b, ctx = self._running(inst, until)
            if mode == "predicted":
                load = self.groups.get(inst.index)
                if load is not None:
                    mine = req.inbound if req.group == inst.index else 0
                    b += load.inbound - (1 if mine else 0)
                    ctx += load.inbound_tokens - mine
            b += 1
            ctx += req.prefill_len
            return self._colocated_tbt(inst, b, ctx, req, limit, mode != "gate")
        decoders: list[Instance] = cl.decoders
        b_total, ctx_total = 0.0, 0.0
        for d in decoders:
            b, ctx = self._running(d, until)
            b_total += b
            ctx_total += ctx
        if mode == "predicted":
            load = self.groups.get(POOL)
            if load is not None:
                mine = req.inbound if req.group == POOL else 0
                b_total += load.inbound - (1 if mine else 0)
                ctx_total += load.inbound_tokens - mine
        else:  # prefilled and on the way: reserved on a decoder, or waiting for memory
            for d in decoders:
                b_total += d.promised
                ctx_total += max(0, d.kv_used - int(d.batch.context_total))
            for other in cl.pending:
                if other is not req:
                    b_total += 1
                    ctx_total += other.prefill_len
        b_total += 1
        ctx_total += req.prefill_len
        n = len(decoders)
        dec = decoders[0]
        return dec.timing.iteration_time(
            decode_batch=max(1, math.ceil(b_total / n)), decode_context=ctx_total / n
        )

    def _colocated_tbt(self, inst: Instance, b: int, ctx: float, req: Request,
                       limit: float, burst: bool) -> float:  # fmt: skip
        """Predicted gap on a colocated instance with ``b`` sequences (``ctx`` KV tokens)."""
        timing = inst.timing
        step = timing.iteration_time(decode_batch=b, decode_context=ctx)
        policy = inst.policy
        if policy == "static":
            return step
        chunked = policy == "chunked"
        own_new = req.prefill_len - req.cached
        own_flops = timing.prefill_flops(req.prefill_len, req.cached)
        if self.metric == "max":  # a decode step plus the longest prefill iteration met
            if chunked:
                full = max(0, inst.max_batch_tokens - b)
                per_token = inst.mean_prefill_flops / max(inst.mean_prefill_tokens, 1.0)
                return timing.iteration_time(
                    prefill_flops=full * per_token, prefill_tokens=full,
                    decode_batch=b, decode_context=ctx,
                )  # fmt: skip
            # Continuous is prefill-first: the running decodes wait until the whole queue
            # is prefilled, on top of the stall they are already in (since their last
            # token, including the rest of a prefill iteration running now).
            now = self.cluster.sim.now
            n = inst.batch.n
            stalled = now - inst.batch.last_min() if n else 0.0
            run = inst.run
            rest = 0.0
            if run is not None and run.items:
                rest = max(0.0, run.start + run.span - now)
            queued = sum(inst.backlog.values())
            own = timing.prefill_time(req.prefill_len, req.cached)
            return max(0.0, stalled) + rest + queued + own + step
        # Prefill seconds a decode step pays per prompt: the whole prefill (continuous: it
        # pauses the decodes), or what its tokens add to a decode iteration (chunked).
        if chunked:
            mean_cost = (
                timing.iteration_time(
                    prefill_flops=inst.mean_prefill_flops,
                    prefill_tokens=inst.mean_prefill_tokens, decode_batch=b,
                    decode_context=ctx,
                ) - step
            )  # fmt: skip
            cost = (
                timing.iteration_time(prefill_flops=own_flops, prefill_tokens=own_new,
                                      decode_batch=b, decode_context=ctx) - step
            )  # fmt: skip
            mean_sq = (
                mean_cost**2 * inst.mean_prefill_time_sq / max(inst.mean_prefill_time**2, 1e-30)
            )
        else:
            mean_cost = inst.mean_prefill_time
            cost = timing.prefill_time(req.prefill_len, req.cached)
            mean_sq = inst.mean_prefill_time_sq
        self._cost = (req.id, cost)
        # Steady state: b / L prompts replace finished answers per decode step (L: mean
        # answer). Over a life of L steps the prefills met are compound Poisson (mean
        # L r P, variance L r E[P^2]): the prediction is the upper quantile.
        per_step = b / max(self.mean_output, 1.0)
        spread = Z_QUANTILE * math.sqrt(per_step * mean_sq / max(self.mean_output, 1.0))
        steady = per_step * mean_cost + spread
        if burst:
            # Leaky bucket of admitted prefill seconds, draining at the steady share of
            # time spent prefilling; over the life of a short answer (T = short_output x
            # limit) what it lets through, depth + rate x T, must leave that answer its
            # decode steps: depth = T (1 - step / limit - rate).
            rate = steady / (step + steady) if steady > 0 else 0.0
            depth = self.short_output * limit * (1.0 - step / limit - rate)
            # Priorities: a request leaves room for the prefill that higher-priority
            # arrivals (offered, admitted or not) bring over that life.
            depth -= self.offered_above(inst.index, req.priority) * self.short_output * limit
            if self.bucket_level(inst.index, rate) + cost > depth:
                return math.inf
        return step + steady

    # ----- decisions ----------------------------------------------------------------------
    def ttft(self, req: Request, inst: Instance, fetch: float) -> float:
        """Predicted TTFT: prefix fetch + queue wait (with chunked prefill, also the rest of
        the prompts being chunked, which go first) + prefill. Requests of higher priority
        keep arriving while it waits and go first: with their prefill load rho_h (seconds
        of prefill per second) the work ahead W drains in W / (1 - rho_h) (the waiting time
        of a priority class under higher-priority arrivals; Kleinrock, Queueing Systems
        vol. 2, 1976, ch. 3 "Priority Queueing")."""
        wait = inst.estimated_wait(req.priority)
        # chunked: prompts already being chunked keep the budget first (FIFO)
        for other in inst.chunking:
            wait += inst.timing.prefill_time(other.prefill_len, max(other.prefilled, other.cached))
        rho = inst.higher_priority_load(req.priority)
        wait = wait / (1.0 - rho) if rho < 1.0 else math.inf
        return fetch + wait + inst.timing.prefill_time(req.prefill_len, req.cached)

    def tbt_ok(self, req: Request, inst: Instance, mode: str, ttft: float = 0.0) -> bool:
        cl = self.cluster
        key = POOL if cl.decoders else inst.index
        limit = self.slack * self.strictest(req, key)
        stage = cl.decoders if cl.decoders else [inst]
        seen = [d.recent_gap for d in stage if not math.isnan(d.recent_gap)]
        # PD: the least loaded decoder (an idle one has no measured gap yet: no verdict)
        if len(seen) == len(stage) and min(seen) > limit:
            return False  # measured gaps already miss the target: let the stage drain
        return self.predicted_tbt(req, inst, mode, ttft, limit) <= limit
