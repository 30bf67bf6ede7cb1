"""Pipeline schedules (aifabric.training.schedule) against their closed forms.

With p equal stages of forward f and backward b per micro-batch and free transfers, 1F1B
over m micro-batches takes (m + p - 1)(f + b): the first micro-batch's forward ripples down
p - 1 stages before the last stage starts, and the last backward ripples back up (Narayanan
et al., SC'21, eq. 1: bubble fraction (p - 1)/(m + p - 1)). Interleaving v chunks per rank
(each f/v, b/v) shrinks the bubble by v: m(f + b) + (p - 1)(f + b)/v.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from aifabric.errors import ConfigError
from aifabric.training.schedule import schedule_order, simulate_pipeline


@pytest.mark.parametrize(("p", "m"), [(1, 4), (2, 1), (4, 8), (8, 64), (16, 128)])
def test_1f1b_makespan_and_bubble(p: int, m: int) -> None:
    f, b = 1.0, 2.0
    t = simulate_pipeline(np.full((p, 1), f), np.full((p, 1), b), m)
    assert t.makespan == pytest.approx((m + p - 1) * (f + b))
    assert t.bubble_fraction == pytest.approx((p - 1) / (m + p - 1))


@pytest.mark.parametrize(("p", "v", "m"), [(4, 2, 8), (4, 4, 8), (8, 2, 32), (2, 3, 4)])
def test_interleaved_1f1b_shrinks_the_bubble_by_v(p: int, v: int, m: int) -> None:
    f, b = 1.0, 2.0
    t = simulate_pipeline(np.full((p, v), f / v), np.full((p, v), b / v), m)
    assert t.makespan == pytest.approx(m * (f + b) + (p - 1) * (f + b) / v)


def test_warmup_counts_follow_megatron() -> None:
    """get_pp_rank_microbatches: rank s warms up with p - s - 1 forwards (no interleaving)
    and 2(p - s - 1) + (v - 1) p with v chunks."""
    p, m = 4, 8
    for s in range(p):
        order = schedule_order(p, s, m)
        warm = next(k for k, op in enumerate(order) if op[0] == "B") - 1
        assert warm == p - s - 1
        inter = schedule_order(p, s, m, v=2)
        first_b = next(k for k, op in enumerate(inter) if op[0] == "B")
        assert first_b == min(2 * (p - s - 1) + p, 2 * m) + 1
        assert len(order) == 2 * m and len(inter) == 4 * m


def test_transfers_add_to_the_critical_path() -> None:
    """A p2p time d per transfer: the first micro-batch's forward crosses p - 1 boundaries
    before the last stage starts, and its backward p - 1 on the way back, so 1F1B with
    m = 1 takes p(f + b) + 2(p - 1)d."""
    p, f, b, d = 4, 1.0, 2.0, 0.25
    t = simulate_pipeline(np.full((p, 1), f), np.full((p, 1), b), 1, p2p=d)
    assert t.makespan == pytest.approx(p * (f + b) + 2 * (p - 1) * d)


@settings(max_examples=40, deadline=None)
@given(p=st.integers(1, 6), m=st.integers(1, 12), seed=st.integers(0, 1000))
def test_uneven_stages_properties(p: int, m: int, seed: int) -> None:
    """Uneven stages: the makespan is at least the busiest rank's work and at least one
    micro-batch's trip through every stage; slowing one stage never shortens the step."""
    rng = np.random.default_rng(seed)
    f = rng.uniform(0.5, 2.0, (p, 1))
    b = 2 * f
    t = simulate_pipeline(f, b, m)
    assert t.makespan >= m * (f + b).sum(axis=1).max() - 1e-9
    assert t.makespan >= (f + b).sum() - 1e-9
    slow = f.copy()
    slow[rng.integers(p)] *= 1.5
    assert simulate_pipeline(slow, 2 * slow, m).makespan >= t.makespan - 1e-9


def test_bad_input() -> None:
    with pytest.raises(ConfigError, match="divisible"):
        simulate_pipeline(np.ones((4, 2)), np.ones((4, 2)), 6)
    with pytest.raises(ConfigError, match="micro-batches"):
        simulate_pipeline(np.ones((4, 1)), np.ones((4, 1)), 0)
