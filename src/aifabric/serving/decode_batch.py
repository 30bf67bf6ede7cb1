"""The running sequences of one serving instance's decode batch (a continuous or chunked
batch, or a static one), updated in O(1) per stretch of decode iterations; see
:class:`DecodeBatch` and :mod:`aifabric.serving.instance`, which drives it."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from aifabric.serving.request import Request

__all__ = ["DecodeBatch"]


class DecodeBatch:
    """Running sequences as parallel lists, one entry per sequence in the order they joined.

    ``held`` is the KV each sequence has reserved: its context when KV grows a token a step,
    or the prompt + output reserved up front (static batching). ``context_total`` is kept
    as a running sum so a stretch needs no reduction over the batch.

    Every running sequence gains the same tokens at the same step ends, so a stretch of k
    steps costs O(1), plus O(1) for each sequence that joined since the last stretch
    (``advance``); nothing is updated per sequence:

    - ``step`` counts the tokens decoded since the batch began; a sequence stores
      ``due`` = remaining + step and ``base`` = context - step, so its remaining tokens are
      due - step and its context base + step (``due_min``: the batch's smallest due);
    - after a stretch every sequence's last token came at the stretch's end
      (``last_all``); only the ``fresh`` sequences added since then (always the last rows:
      rows keep their order) have their own ``last`` time;
    - a stretch's gap for every sequence that was already decoding is one number (the
      first step's end minus ``last_all``, or the longest step), appended to ``gaps``; a
      sequence's max gap is the largest of its own (before it settled, in ``own``) and
      of ``gaps[since:]``, the stretches since (``max_gap``).

    Plain lists, not arrays: a batch is tens of sequences, where NumPy's per-call overhead
    outweighs its loops; the only scans (``min`` of the dues, the finishing rows) run in C.
    """

    TRIM_AT = 4096  # gaps kept before dropping those no running sequence needs

    def __init__(self, tiers: int = 1) -> None:
        self.reqs: list[Request] = []
        self.n = 0
        self.tier_n = [0] * tiers  # running sequences per SLO tier
        self.context_total = 0
        self.step = 0
        self.due_min = 0
        self.fresh = 0
        self.last_all = math.nan
        self.due: list[int] = []
        self.base: list[int] = []
        self.held: list[int] = []
        self.last: list[float] = []
        self.own: list[float] = []
        self.since: list[int] = []
        self.start: list[float] = []  # when each began decoding here (admission control)
        self.gaps: list[float] = []
        self._trim_at = self.TRIM_AT

    def _rows(self) -> tuple[list[Any], ...]:
        return (self.reqs, self.due, self.base, self.held, self.last, self.own, self.since,
                self.start)  # fmt: skip

    def add(self, req: Request) -> None:
        due = req.output - req.generated + self.step
        self.due_min = due if self.n == 0 else min(self.due_min, due)
        self.reqs.append(req)
        self.due.append(due)
        self.base.append(req.prefill_len - self.step)
        self.held.append(req.held)
        self.last.append(req.last_token)
        self.own.append(req.max_gap)
        self.since.append(len(self.gaps))
        self.start.append(req.last_token if math.isnan(req.kv_ready) else req.kv_ready)
        self.n += 1
        self.fresh += 1
        self.tier_n[req.tier] += 1
        self.context_total += req.prefill_len

    # ----- per-sequence state -------------------------------------------------------------
    def contexts(self) -> np.ndarray:
        """Each running sequence's KV context."""
        return np.array(self.base, np.int64) + self.step

    def starts(self) -> np.ndarray:
        """When each running sequence began decoding here."""
        return np.array(self.start, np.float64)

    def max_gap(self, i: int) -> float:
        """Sequence i's longest gap between tokens so far."""
        since = self.since[i]
        own = self.own[i]
        if since >= len(self.gaps):
            return own
        return max(own, max(self.gaps[since:]))

    def last_min(self) -> float:
        """The earliest last-token time in the batch (inf when empty)."""
        settled = self.n - self.fresh
        fresh = min(self.last[settled:]) if self.fresh else math.inf
        return min(self.last_all, fresh) if settled else fresh

    def remaining_min(self) -> int:
        """Fewest tokens any running sequence has left to generate."""
        return self.due_min - self.step

    def take_out(self, i: int, grow: bool) -> Request:
        """Remove sequence i, writing its progress back to its Request."""
        req = self.reqs[i]
        req.generated = req.output - (self.due[i] - self.step)
        req.last_token = self.last[i] if i >= self.n - self.fresh else self.last_all
        req.max_gap = self.max_gap(i)
        req.held = self.base[i] + self.step if grow else self.held[i]
        self._remove(i)
        return req

    # ----- batch updates ------------------------------------------------------------------
    def advance(self, k: int, first_end: float, longest: float, end: float) -> None:
        """Every sequence decodes k tokens: the first at ``first_end``, the last at ``end``;
        ``longest`` is the longest step's duration (-inf when k = 1: the first gap covers
        it). A sequence's max gap takes the gap to its first token here and ``longest``."""
        n = self.n
        settled = n - self.fresh
        if settled:
            gap = first_end - self.last_all
            self.gaps.append(gap if gap > longest else longest)
        if self.fresh:
            own, last, since, after = self.own, self.last, self.since, len(self.gaps)
            for i in range(settled, n):
                gap = first_end - last[i]
                best = own[i]
                if gap > best:
                    best = gap
                if longest > best:
                    best = longest
                own[i] = best
                since[i] = after
        self.last_all = end
        self.fresh = 0
        self.step += k
        self.context_total += n * k
        if len(self.gaps) > self._trim_at:
            self._trim()

    def _trim(self) -> None:
        """Drop the gaps no running sequence needs any more (all before the oldest since)."""
        cut = min(self.since) if self.n else len(self.gaps)
        if cut:
            del self.gaps[:cut]
            self.since = [s - cut for s in self.since]
        self._trim_at = max(self.TRIM_AT, 2 * len(self.gaps))

    def pop_finished(self, grow: bool) -> tuple[list[Request], list[float], int]:
        """Remove the sequences with nothing left to generate: (their requests, their max
        gaps, the KV tokens they held)."""
        step = self.step
        if self.due.count(step) == 1:  # the common case
            i = self.due.index(step)
            req = self.reqs[i]
            freed = self.base[i] + step if grow else self.held[i]
            gap = self.max_gap(i)
            self._remove(i)
            return [req], [gap], freed
        rows = [i for i, due in enumerate(self.due) if due == step]
        finished = [self.reqs[i] for i in rows]
        if grow:
            freed = sum(self.base[i] for i in rows) + step * len(rows)
        else:
            freed = sum(self.held[i] for i in rows)
        maxgaps = [self.max_gap(i) for i in rows]
        for i in reversed(rows):
            self._remove(i)
        return finished, maxgaps, freed

    def _remove(self, i: int) -> None:
        """Remove row i, keeping the others' order."""
        n = self.n
        self.context_total -= self.base[i] + self.step
        self.tier_n[self.reqs[i].tier] -= 1
        if i >= n - self.fresh:
            self.fresh -= 1
        for row in self._rows():
            del row[i]
        self.n = n - 1
        if n > 1:
            self.due_min = min(self.due)
        else:
            self.due_min = 0
            self.gaps.clear()  # no sequence needs them
            self.since.clear()
