"""Serving instances (one TP group each) and their batching policies.

An instance is ``colocated`` (prefill and decode), ``prefill`` or ``decode`` (the two PD
pools). It runs one batch iteration at a time; the iteration's length comes from the
roofline timing. Policies:

- ``static``: take up to max_batch_size waiting requests, prefill them together, decode
  until every one of them has finished; KV for prompt + output is reserved up front.
- ``continuous`` (Orca/vLLM): between iterations, admit waiting requests while their prompt
  KV fits; a prefill iteration pauses the decodes (so running sequences see a stall);
  otherwise every running sequence decodes one token. KV grows a token a step; when it
  runs out, the lowest-priority latest request is preempted and recomputed later.
- ``chunked`` (Sarathi-Serve): every iteration carries all decodes plus prompt chunks
  filling max_batch_tokens, so decodes never stall behind a long prompt.

Skip-ahead: a run of pure decode iterations is one event. Its k step times come from one
vectorized call; k ends at the first finish or when KV runs out. An arrival that could join
cuts the stretch at the boundary of the step in progress, so results equal stepping one
iteration at a time.

Waiting requests are served by (priority, arrival order); a preempted request keeps its
place.
"""

from __future__ import annotations

import bisect
import heapq
import itertools
import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from aifabric.serving.compute import IterationTiming
from aifabric.serving.decode_batch import DecodeBatch
from aifabric.serving.request import Request
from aifabric.serving.work import instance_work

if TYPE_CHECKING:
    from aifabric.serving.cluster import ServingSimulation
    from aifabric.serving.kvstore.flat import FlatPrefixCache

ROLES = ("colocated", "prefill", "decode")


@dataclass(slots=True, eq=False)
class _Run:
    """The iteration (or stretch of decode iterations) an instance is running: the step
    durations and their running sums as plain lists (a stretch is a few steps, where
    list indexing and bisect beat NumPy's per-call overhead; the running sums are the
    same sequential additions np.cumsum makes). ``span`` is cum[k - 1]: the run's length
    once cut to its first k steps."""

    start: float
    steps: list[float]
    cum: list[float]
    k: int
    items: list[tuple[Request, int, int]]  # prefill work: (request, from token, to token)
    decode: bool
    interruptible: bool
    span: float
    event: Any = None


class Instance:
    """One serving instance inside a ServingSimulation (``cluster``)."""

    def __init__(self, cluster: ServingSimulation, index: int, role: str, timing: IterationTiming, *,
                 policy: str, max_batch_size: int, max_batch_tokens: int,
                 kv_capacity: float, cache: FlatPrefixCache | None = None) -> None:  # fmt: skip
        self.cluster = cluster
        self.sim = cluster.sim
        self.index = index
        self.role = role
        self.name = f"{role}{index}"
        self.timing = timing
        self.policy = policy if role != "decode" else "continuous"
        self.max_batch_size = max_batch_size
        self.max_batch_tokens = max_batch_tokens
        self.kv_capacity = int(kv_capacity)
        self.cache = cache  # local HBM prefix cache (kv_store.enabled)
        self.grow = self.policy != "static"
        self.waiting: list[tuple[int, int, Request]] = []
        self.chunking: list[Request] = []
        self.incoming: list[Request] = []
        self.batch = DecodeBatch(tiers=len(cluster.scenario.slo.tiers))
        self.kv_used = 0
        self.promised = 0  # decode role: sequences reserved but not yet arrived
        # requests queued, chunking, decoding or promised: len(waiting) + len(chunking) +
        # batch.n + promised, kept as a count (routers read it on every arrival)
        self.outstanding = 0
        self.backlog: dict[int, float] = {}  # estimated prefill seconds queued, by priority
        self.queued: dict[int, int] = {}  # requests queued, by priority
        self._last_admit = math.nan
        self._admit_gap = math.nan  # EWMA of the time between admissions from the queue
        self._last_arrival: dict[int, float] = {}
        self._arrival_gap: dict[int, float] = {}  # EWMA of enqueue gaps, by priority
        # for admission control (serving.admission): new prompt tokens queued, and EWMAs
        # (weight 0.1) of a queued request's prefill seconds, FLOPs and new tokens
        self.queued_new_tokens = 0
        self.mean_prefill_time = 0.0
        self.mean_prefill_time_sq = 0.0  # of its square (the compound-Poisson spread)
        self.mean_prefill_flops = 0.0
        self.mean_prefill_tokens = 0.0
        self._prefill_samples = 0
        self.class_prefill: dict[int, float] = {}  # EWMA of est_prefill, by priority
        self.recent_gap = math.nan  # EWMA (per token, weight 0.02) of the realized token gap
        self.run: _Run | None = None
        self._planning = False
        self.busy_time = 0.0
        self.sequence_seconds = 0.0  # integral of the decode batch size over time
        self.tokens_processed = 0
        self.prefill_tokens = 0
        self.preemptions = 0
        # work done (serving.work) and GPU-seconds by SLO tier, for utilisation and cost
        self.work = instance_work(cluster, timing)
        self.flop = 0.0
        self.hbm_bytes = 0.0
        self.active_time = 0.0  # sum of iteration activity x duration (serving.work)
        self.tier_gpu_seconds = [0.0] * len(cluster.scenario.slo.tiers)
        # links (set by the cluster)
        self.egress = -1
        self.ingress = -1
        # elastic pools (serving.autoscale): loading -> active -> draining -> retired
        self.state = "active"
        self.created_at = 0.0
        self.active_at = 0.0
        self.retired_at = math.nan
        self.draining_since = math.nan
        self.inbound = 0  # prefix fetches on their way to this instance

    # ----- load figures -------------------------------------------------------------------
    def estimated_wait(self, priority: int | None = None) -> float:
        """Seconds before a request of ``priority`` enqueued now would start prefill: the
        queued prefill work it cannot overtake, plus the rest of a running prefill (an
        estimate for routing and admission control)."""
        busy = 0.0
        run = self.run
        if run is not None and (run.items or not run.interruptible):
            busy = max(0.0, run.start + run.span - self.sim.now)
        if priority is None:  # every class counts, none overtakes (lam = 0 below)
            work = sum(self.backlog.values())
            ahead = len(self.waiting)  # = sum(self.queued.values())
            if ahead and not math.isnan(self._admit_gap) and self._admit_gap > 0:
                return max(work + busy, ahead / (1.0 / self._admit_gap))
            return max(work + busy, 0.0)
        else:  # the sums over the classes p <= priority, in the dicts' order, from 0
            work = ahead = 0
            for p, v in self.backlog.items():
                if p <= priority:
                    work += v
            for p, n in self.queued.items():
                if p <= priority:
                    ahead += n
        # When KV memory, not prefill compute, holds the queue back, requests leave it at
        # the recent admission rate mu, while higher-priority arrivals (rate lam) keep
        # overtaking: the queue ahead drains at mu - lam.
        drain = 0.0
        if ahead and not math.isnan(self._admit_gap) and self._admit_gap > 0:
            mu = 1.0 / self._admit_gap
            lam = sum(1.0 / g for p, g in self._arrival_gap.items()
                      if g > 0 and (priority is not None and p < priority))  # fmt: skip
            drain = ahead / (mu - lam) if mu > lam else math.inf
        return max(work + busy, drain)

    def higher_priority_load(self, priority: int) -> float:
        """Prefill seconds per second that requests of higher priority than ``priority``
        (lower numbers) bring to this queue: recent enqueue rate x mean prefill."""
        load = 0.0
        for p, gap in self._arrival_gap.items():
            if p < priority and gap > 0:
                load += self.class_prefill.get(p, 0.0) / gap
        return load

    def committed_growth(self) -> int:
        """KV tokens the running iterations will still add to the batch (decode steps)."""
        run = self.run
        if run is None or not run.decode or not self.grow:
            return 0
        done = bisect.bisect_right(run.cum, self.sim.now - run.start, 0, run.k)
        return self.batch.n * max(0, run.k - done)

    # ----- inputs -------------------------------------------------------------------------
    def enqueue(self, req: Request) -> None:
        """A request needing prefill (prompt, or prompt + generated after a preemption)."""
        now = self.sim.now
        req.enqueued = now
        req.instance = self.index
        req.est_prefill = self.timing.prefill_time(req.prefill_len, req.cached)
        self.queued_new_tokens += req.prefill_len - req.cached
        if self.cluster.admission.enabled:
            self._prefill_statistics(req)
        prio = req.priority
        self.backlog[prio] = self.backlog.get(prio, 0.0) + req.est_prefill
        self.queued[prio] = self.queued.get(prio, 0) + 1
        if req.preemptions == 0:
            last = self._last_arrival.get(prio)
            if last is not None:
                gap = now - last
                old = self._arrival_gap.get(prio)
                self._arrival_gap[prio] = gap if old is None else 0.9 * old + 0.1 * gap
            self._last_arrival[prio] = now
        heapq.heappush(self.waiting, (prio, req.id, req))
        self.outstanding += 1
        self.cluster.queue_changed(+1)
        self.poke()

    def _prefill_statistics(self, req: Request) -> None:
        """EWMAs (weight 0.1) of a queued request's prefill seconds (and their square),
        FLOPs and new tokens, overall and by priority: admission control's inputs
        (serving.admission), kept only when it is on."""
        new = req.prefill_len - req.cached
        flops = self.timing.prefill_flops(req.prefill_len, req.cached)
        if self._prefill_samples == 0:
            self.mean_prefill_time, self.mean_prefill_flops = req.est_prefill, flops
            self.mean_prefill_time_sq = req.est_prefill**2
            self.mean_prefill_tokens = float(new)
        else:
            a = 0.1
            self.mean_prefill_time += a * (req.est_prefill - self.mean_prefill_time)
            self.mean_prefill_time_sq += a * (req.est_prefill**2 - self.mean_prefill_time_sq)
            self.mean_prefill_flops += a * (flops - self.mean_prefill_flops)
            self.mean_prefill_tokens += a * (new - self.mean_prefill_tokens)
        self._prefill_samples += 1
        old_p = self.class_prefill.get(req.priority)
        self.class_prefill[req.priority] = (
            req.est_prefill if old_p is None else old_p + 0.1 * (req.est_prefill - old_p)
        )

    def reserve(self, tokens: int) -> bool:
        """Decode role: hold KV room for an incoming transfer if it fits (and a batch slot)."""
        if self.kv_used + self.committed_growth() + tokens > self.kv_capacity:
            return False
        if self.batch.n + self.promised >= self.max_batch_size:
            return False
        self.kv_used += tokens
        self.promised += 1
        self.outstanding += 1
        return True

    def receive(self, req: Request) -> None:
        """Decode role: a request's KV has arrived; it joins the batch at the next boundary."""
        self.incoming.append(req)
        self.poke()

    def release(self, tokens: int) -> None:
        self.kv_used -= tokens

    def poke(self) -> None:
        """Something changed: plan if idle, or cut an interruptible decode stretch short."""
        if self._planning:
            return
        if self.run is None:
            self._plan()
        elif self.run.interruptible and self._could_admit():
            self._truncate()

    def _could_admit(self) -> bool:
        if self.role == "decode":
            return bool(self.incoming)
        if self.policy == "chunked":
            return bool(self.waiting) or bool(self.chunking)
        if not self.waiting:
            return False
        head = self.waiting[0][2]
        return self.kv_used + head.prefill_len <= self.kv_capacity

    # ----- planning -----------------------------------------------------------------------
    def _plan(self) -> None:
        self._planning = True
        try:
            self.run = None
            if self.role == "decode":
                for req in self.incoming:
                    self.promised -= 1
                    self.batch.add(req)
                    self.cluster.admission.joined(req)
                self.incoming.clear()
                if self.batch.n:
                    self._decode_stretch()
            elif self.policy == "chunked":
                self._plan_chunked()
            elif self.policy == "static" and self.batch.n:
                self._decode_stretch()
            else:
                items = self._admit_whole_prompts()
                if items:
                    self._start(items, decode=False)
                elif self.batch.n:
                    self._decode_stretch()
        finally:
            self._planning = False
        if self.state == "draining" and self.idle() and not self.running():
            self.cluster.retire(self)

    def running(self) -> bool:
        """An iteration is under way (read through a call: ``_plan`` sets ``self.run`` to
        None and the methods it calls may start one, which a type checker's narrowing of
        the attribute does not see; compiled by mypyc, a narrowed read is checked)."""
        return self.run is not None

    def idle(self) -> bool:
        """Holds no request, KV or inbound fetch (a draining instance may then retire)."""
        return (self.outstanding == 0 and not self.incoming and self.kv_used == 0
                and self.inbound == 0)  # fmt: skip

    def _pop_waiting(self, need: int) -> Request:
        _, _, req = heapq.heappop(self.waiting)
        self.outstanding -= 1
        self.cluster.queue_changed(-1)
        req.waited += self.sim.now - req.enqueued
        left = self.backlog.get(req.priority, 0.0) - req.est_prefill
        self.backlog[req.priority] = max(0.0, left)
        self.queued[req.priority] -= 1
        self.queued_new_tokens -= req.prefill_len - req.cached
        now = self.sim.now
        if not math.isnan(self._last_admit):
            gap = now - self._last_admit
            old = self._admit_gap
            self._admit_gap = gap if math.isnan(old) else 0.9 * old + 0.1 * gap
        self._last_admit = now
        self.kv_used += need
        req.held = need
        return req

    def _admit_whole_prompts(self) -> list[tuple[Request, int, int]]:
        items: list[tuple[Request, int, int]] = []
        tokens = 0
        slots = self.max_batch_size - self.batch.n
        while self.waiting and len(items) < slots:
            req = self.waiting[0][2]
            need = req.prefill_len
            if self.policy == "static" and self.role == "colocated":
                need += req.output - req.generated
            if self.kv_used + need > self.kv_capacity:
                break
            new = req.prefill_len - req.cached
            if items and tokens + new > self.max_batch_tokens:
                break
            self._pop_waiting(need)
            items.append((req, req.cached, req.prefill_len))
            tokens += new
        return items

    def _plan_chunked(self) -> None:
        # The decodes of this iteration need a token of KV each: make room first.
        while self.batch.n and self.kv_capacity - self.kv_used < self.batch.n:
            self._preempt()
        b = self.batch.n
        budget = self.max_batch_tokens - b
        items: list[tuple[Request, int, int]] = []
        for req in self.chunking:
            if budget <= 0:
                break
            take = min(budget, req.prefill_len - req.prefilled)
            items.append((req, req.prefilled, req.prefilled + take))
            budget -= take
        while budget > 0 and self.waiting and b + len(self.chunking) < self.max_batch_size:
            req = self.waiting[0][2]
            if self.kv_used + b + req.prefill_len > self.kv_capacity:
                break
            self._pop_waiting(req.prefill_len)
            req.prefilled = req.cached
            self.chunking.append(req)
            self.outstanding += 1
            take = min(budget, req.prefill_len - req.prefilled)
            items.append((req, req.prefilled, req.prefilled + take))
            budget -= take
        if items:
            self._start(items, decode=b > 0)
        elif b:
            self._decode_stretch()

    def _decode_stretch(self) -> None:
        batch = self.batch
        if self.grow:
            free = self.kv_capacity - self.kv_used
            while batch.n and free < batch.n:
                self._preempt()
                free = self.kv_capacity - self.kv_used
            if not batch.n:
                self.run = None
                if self.role != "decode":
                    items = self._admit_whole_prompts() if self.policy != "chunked" else []
                    if items:
                        self._start(items, decode=False)
                return
        b = batch.n
        k = batch.remaining_min()
        if self.grow:
            k = min(k, (self.kv_capacity - self.kv_used) // b)
        steps = self.timing.decode_step_list(b, float(batch.context_total), k)
        self._launch(steps, [], decode=True, interruptible=self.policy != "static")

    def _start(self, items: list[tuple[Request, int, int]], *, decode: bool) -> None:
        flops = 0.0
        tokens = 0
        for _req, lo, hi in items:
            flops += self.timing.prefill_flops(hi, lo)
            tokens += hi - lo
        b = self.batch.n if decode else 0
        context = float(self.batch.context_total) if b else 0.0
        t = self.timing.iteration_time(
            prefill_flops=flops, prefill_tokens=tokens, decode_batch=b, decode_context=context
        )
        self.prefill_tokens += tokens
        self.tokens_processed += tokens
        self._launch([t], items, decode=decode, interruptible=False)

    def _launch(self, steps: list[float], items: list[tuple[Request, int, int]], *,
                decode: bool, interruptible: bool) -> None:  # fmt: skip
        cum = steps if len(steps) == 1 else list(itertools.accumulate(steps))
        run = _Run(self.sim.now, steps, cum, len(steps), items, decode, interruptible, cum[-1])
        run.event = self.sim.schedule_at(run.start + cum[-1], self._end)
        self.run = run

    def _truncate(self) -> None:
        run = self.run
        assert run is not None
        elapsed = self.sim.now - run.start
        k = bisect.bisect_left(run.cum, elapsed) + 1
        if k >= run.k:
            return
        run.k = k
        run.span = run.cum[k - 1]
        run.event.cancel()
        end = max(self.sim.now, run.start + run.span)
        run.event = self.sim.schedule_at(end, self._end)

    # ----- iteration end ------------------------------------------------------------------
    def _end(self) -> None:
        run = self.run
        assert run is not None
        k = run.k
        self.busy_time += run.span
        self._count_work(run, k)
        if run.decode:
            self._advance(run, k)
        for req, _, hi in run.items:
            req.prefilled = hi
            if hi >= req.prefill_len:
                if self.policy == "chunked":
                    self.chunking.remove(req)
                    self.outstanding -= 1
                self._prefilled(req)
        self.run = None
        self._plan()

    def _count_work(self, run: _Run, k: int) -> None:
        """Add the ending iterations' FLOP, HBM bytes and activity (serving.work), and share
        their GPU-seconds (tp x duration) among the requests in them by tokens processed."""
        batch = self.batch
        b = batch.n if run.decode else 0
        span = run.span
        if run.items:  # one iteration: prefill chunks, and the batch's decodes if run.decode
            chunks = [(lo, hi) for _, lo, hi in run.items]
            w = self.work.iteration(chunks, b, float(batch.context_total) if b else 0.0, span)
            per_token = self.timing.tp * span / (sum(hi - lo for lo, hi in chunks) + b)
            for req, lo, hi in run.items:
                self.tier_gpu_seconds[req.tier] += per_token * (hi - lo)
        else:
            w = self.work.decode_stretch(b, float(batch.context_total), run.steps[:k])
            per_token = self.timing.tp * span / max(b, 1)
        if b:
            seconds = self.tier_gpu_seconds  # per tier, as an array expression would add
            for t, count in enumerate(batch.tier_n):
                seconds[t] += per_token * count
        self.flop += w[0]
        self.hbm_bytes += w[1]
        self.active_time += w[2]

    def _advance(self, run: _Run, k: int) -> None:
        """Every running sequence gains k tokens at the run's first k step ends."""
        batch = self.batch
        b = batch.n
        start = run.start
        span = run.span
        last = start + span
        self.sequence_seconds += b * span
        if self.cluster.admission.enabled:  # recent_gap is admission control's input
            self._track_gap(last, k)
        # a stretch's steps never shrink (the context grows), so the last is longest
        longest = run.steps[k - 1] if k > 1 else -math.inf
        batch.advance(k, start + run.cum[0], longest, last)
        if self.grow:
            self.kv_used += b * k
        self.tokens_processed += b * k
        if batch.remaining_min() > 0:
            return
        finished, maxgaps, freed = batch.pop_finished(self.grow)
        self.kv_used -= freed
        self.outstanding -= len(finished)
        for req, gap in zip(finished, maxgaps, strict=True):
            req.generated = req.output
            req.last_token = last
            req.max_gap = gap
            req.held = 0
            self.cluster.finished(req, self)

    def _track_gap(self, last: float, k: int) -> None:
        """``recent_gap``: EWMA (per token, weight 0.02) of the gap since the batch's
        earliest last token, over the k tokens ending at ``last``."""
        prev = self.batch.last_min()
        if self.batch.n and prev < last:
            gap = (last - prev) / k
            w = 1.0 - 0.98**k
            old = self.recent_gap
            self.recent_gap = gap if math.isnan(old) else old + w * (gap - old)

    def _prefilled(self, req: Request) -> None:
        now = self.sim.now
        if math.isnan(req.first_token):
            req.first_token = now
            req.generated = 1
        else:  # recomputed after a preemption: the prefill also yields the next token
            req.max_gap = max(req.max_gap, now - req.last_token)
            req.generated += 1
        req.last_token = now
        self.cluster.prefilled(req, self)
        if self.role != "colocated":
            return  # the cluster moves its KV to a decode instance (and releases it here)
        if req.generated >= req.output:
            self.kv_used -= req.held
            req.held = 0
            self.cluster.finished(req, self)
        elif not self.cluster.decode_gate(req, self):
            self.kv_used -= req.held  # refused at the decode stage: its prefill was wasted
            req.held = 0
        else:
            self.batch.add(req)
            self.outstanding += 1
            self.cluster.admission.joined(req)

    def _preempt(self) -> None:
        """Drop the lowest-priority, latest request from the batch; it is recomputed later."""
        batch = self.batch
        victim = max(range(batch.n), key=lambda i: (batch.reqs[i].priority, batch.reqs[i].id))
        req = batch.take_out(victim, self.grow)
        self.outstanding -= 1
        self.kv_used -= req.held
        req.held = 0
        req.preemptions += 1
        self.preemptions += 1
        req.prefill_len = req.prompt + req.generated
        req.cached = 0
        self.cluster.admission.left(req)
        if self.role == "decode":
            self.cluster.preempted(req, self)
        else:
            self.enqueue(req)
