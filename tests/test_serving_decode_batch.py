"""DecodeBatch's O(1) stretch update equals updating every sequence one by one.

The batch keeps a shared step counter (a sequence's remaining tokens are ``due - step``, its
context ``base + step``) and one last-token time for every sequence that has decoded since
it joined; the reference model below keeps each sequence's remaining tokens, context, last
token time and max gap explicitly and applies a stretch to each, as the simulator did
before (``maxgap = max(maxgap, first_end - last)``, then ``max(maxgap, longest step)`` for a
stretch of more than one step). Every figure must agree exactly (``==``): max, integer
sums and the same float subtractions are exact, so the serving output stays bit-identical.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from aifabric.serving.decode_batch import DecodeBatch
from aifabric.serving.request import Request

TIERS = 3


@dataclass
class _Seq:
    req: Request
    remaining: int
    context: int
    held: int
    last: float
    maxgap: float


def _request(rid: int, output: int, generated: int, context: int, tier: int,
             last: float, maxgap: float) -> Request:  # fmt: skip
    req = Request(rid, 0.0, max(1, context - generated), output, tier, tier)
    req.generated = generated
    req.prefill_len = context
    req.held = context + 7 * rid % 5
    req.last_token = last
    req.max_gap = maxgap
    return req


ops = st.lists(
    st.one_of(
        st.tuples(
            st.just("add"),
            st.integers(1, 40),
            st.integers(0, 5),
            st.integers(1, 3000),
            st.integers(0, TIERS - 1),
            st.floats(0, 1),
            st.floats(0, 0.5),
        ),
        st.tuples(
            st.just("advance"), st.integers(1, 60), st.floats(0.001, 0.2), st.floats(0.001, 0.3)
        ),
        st.tuples(st.just("take_out"), st.integers(0, 10_000), st.booleans()),
    ),
    min_size=1,
    max_size=60,
)


@settings(max_examples=300, deadline=None)
@given(ops=ops, grow=st.booleans(), trim=st.sampled_from([1, 3, DecodeBatch.TRIM_AT]))
def test_lazy_batch_equals_per_sequence_updates(ops: list[tuple], grow: bool, trim: int) -> None:
    with pytest.MonkeyPatch.context() as mp:  # a small TRIM_AT: old gaps are dropped often
        mp.setattr(DecodeBatch, "TRIM_AT", trim)
        _run(ops, grow)


def _run(ops: list[tuple], grow: bool) -> None:
    batch = DecodeBatch(tiers=TIERS)
    ref: list[_Seq] = []
    now = 1.0
    rid = 0
    for op in ops:
        if op[0] == "add":
            _, output, generated, context, tier, lag, maxgap = op
            generated = min(generated, output - 1)
            req = _request(rid, output, generated, context, tier, now - lag, maxgap)
            rid += 1
            batch.add(req)
            ref.append(_Seq(req, output - generated, context, req.held, req.last_token, maxgap))
        elif op[0] == "advance" and ref:
            _, k, first, step = op
            k = min(k, min(s.remaining for s in ref))  # a stretch ends at the first finish
            first_end = now + first
            longest = step if k > 1 else -math.inf
            end = first_end + (k - 1) * step
            batch.advance(k, first_end, longest, end)
            for s in ref:
                s.maxgap = max(s.maxgap, first_end - s.last)
                if k > 1:
                    s.maxgap = max(s.maxgap, step)
                s.last = end
                s.remaining -= k
                s.context += k
            now = end
            if batch.remaining_min() == 0:
                finished, maxgaps, freed = batch.pop_finished(grow)
                done = [s for s in ref if s.remaining == 0]
                assert [r.id for r in finished] == [s.req.id for s in done]
                assert maxgaps == [s.maxgap for s in done]
                assert freed == sum(s.context if grow else s.held for s in done)
                ref = [s for s in ref if s.remaining > 0]
        elif op[0] == "take_out" and ref:
            i = op[1] % len(ref)
            s = ref.pop(i)
            req = batch.take_out(i, grow)
            assert req is s.req
            assert req.generated == req.output - s.remaining
            assert req.last_token == s.last
            assert req.max_gap == s.maxgap
            assert req.held == (s.context if grow else s.held)
        _check(batch, ref)


def _check(batch: DecodeBatch, ref: list[_Seq]) -> None:
    assert batch.n == len(ref)
    assert [r.id for r in batch.reqs] == [s.req.id for s in ref]
    assert batch.contexts().tolist() == [s.context for s in ref]
    assert batch.context_total == sum(s.context for s in ref)
    assert batch.tier_n == [sum(1 for s in ref if s.req.tier == t) for t in range(TIERS)]
    if ref:
        assert batch.remaining_min() == min(s.remaining for s in ref)
        assert batch.last_min() == min(s.last for s in ref)
        assert [batch.max_gap(i) for i in range(batch.n)] == [s.maxgap for s in ref]
