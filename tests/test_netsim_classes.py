"""Traffic classes in the shared flow engine (netsim.classes): strict priority and weighted
fair sharing against hand-derived rates and finish times, the defining bottleneck property
of each policy on random topologies, reduction to plain max-min with one class, bytes
conserved per class per link, and the scenario parser's one-line errors."""

from __future__ import annotations

import functools
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from aifabric.errors import ConfigError
from aifabric.netsim.classes import (
    ClassPolicy,
    parse_class_policy,
    strict_priority_rates,
    weighted_rates,
)
from aifabric.netsim.engine import FlowEngine
from aifabric.netsim.fairshare import max_min_rates

TOL = 1e-9
INF, STO, TRN = 0, 1, 2  # inference, storage, training (the default class names)


def _rates(engine: FlowEngine, ids: list[int]) -> list[float]:
    return [engine.rate(f) for f in ids]


# ----- strict priority: hand cases --------------------------------------------------------
def test_strict_priority_high_flow_gets_its_alone_rate_and_finish():
    """Link A 10 B/s, link B 4 B/s. High (inference) flow h, 8 B, on A and B: alone its
    rate is min(10, 4) = 4, finish 8 / 4 = 2 s, and priority keeps it so. Two training flows
    of 12 B on A only share what h leaves on A: (10 - 4) / 2 = 3 B/s each; at t = 2 they
    have 12 - 6 = 6 B left and A to themselves, 5 B/s each: done at 2 + 6 / 5 = 3.2 s."""
    engine = FlowEngine([10.0, 4.0], policy=ClassPolicy.strict([INF, STO, TRN]))
    (h,) = engine.start_many([np.array([0, 1])], [8.0], classes=[INF])
    lows = engine.start_many([np.array([0]), np.array([0])], [12.0, 12.0], classes=[TRN, TRN])
    assert _rates(engine, [h, *lows]) == pytest.approx([4.0, 3.0, 3.0], rel=TOL)
    done = engine.run()
    assert done[h] == pytest.approx(2.0, rel=TOL)
    assert [done[f] for f in lows] == pytest.approx([3.2, 3.2], rel=TOL)


def test_strict_priority_low_class_waits_on_a_saturated_link():
    """One 10 B/s link, high flow 20 B and a low flow 10 B: the high one has it all
    (10 B/s, done at 2 s), the low one gets 10 - 10 = 0 until then and 10 B/s after:
    done at 2 + 10 / 10 = 3 s. A later high flow preempts it again."""
    engine = FlowEngine([10.0], policy=ClassPolicy.strict([INF, TRN]))
    h = engine.start([0], 20.0, traffic_class=INF)
    low = engine.start([0], 10.0, traffic_class=TRN)
    assert (engine.rate(h), engine.rate(low)) == (10.0, 0.0)
    assert engine.advance(engine.next_time()) == [h] and engine.now == pytest.approx(2.0)
    assert engine.rate(low) == 10.0
    engine.advance(2.5)  # low has moved 5 B; a 10 B high flow takes the link for 1 s
    h2 = engine.start([0], 10.0, traffic_class=INF)
    assert engine.rate(low) == 0.0 and engine.remaining(low) == pytest.approx(5.0)
    done = engine.run()
    assert done[h2] == pytest.approx(3.5) and done[low] == pytest.approx(4.0)


def test_strict_priority_two_links_by_hand_and_order_matters():
    """L0 10 B/s, L1 6 B/s. High class: h1 on L0+L1, h2 on L1; low class: l1 on L0, l2 on
    L0+L1. High first: max-min of h1, h2 alone: L1 splits 3 / 3; then the low class on
    what is left, L0 10 - 3 = 7, L1 6 - 6 = 0: l2 = 0 (L1 full), l1 = 7 (L0).
    Low first: l1, l2 rise together, L0 fills at 5 / 5 (L1 at 5 < 6); then the high
    class on L0 0, L1 1: h1 = 0, h2 = 1."""
    rows = [[0, 1], [1], [0], [0, 1]]
    w = [[1.0] * len(r) for r in rows]
    tc = [INF, INF, TRN, TRN]
    cap = np.array([10.0, 6.0])
    high_first = strict_priority_rates(rows, w, tc, cap, [INF, TRN])
    low_first = strict_priority_rates(rows, w, tc, cap, [TRN, INF])
    assert high_first == pytest.approx([3.0, 3.0, 7.0, 0.0], rel=TOL)
    assert low_first == pytest.approx([0.0, 1.0, 5.0, 5.0], rel=TOL)
    engine = FlowEngine(cap, policy=ClassPolicy.strict([INF, TRN]))
    ids = engine.start_many([np.array(r) for r in rows], [1.0] * 4, classes=tc)
    assert _rates(engine, ids) == pytest.approx(high_first, rel=TOL)


# ----- weighted fair sharing: hand cases --------------------------------------------------
def test_weighted_splits_a_saturated_link_by_weight():
    """One 10 B/s link, weights 7 : 3 (given unnormalised): class 0 (three flows of 7 B)
    gets 7 B/s, 7/3 each; class 2 (one flow of 3 B) gets 3 B/s, done at 1 s. Then class 0
    has the link (work conserving): each of its flows has 7 - 7/3 = 14/3 B left at 10/3
    B/s, done at 1 + 1.4 = 2.4 s = 24 B / 10 B/s, the link never idle."""
    engine = FlowEngine([10.0], policy=ClassPolicy.weighted({INF: 7.0, TRN: 3.0}))
    a = engine.start_many([np.array([0])] * 3, [7.0] * 3, classes=[INF] * 3)
    (b,) = engine.start_many([np.array([0])], [3.0], classes=[TRN])
    assert _rates(engine, [*a, b]) == pytest.approx([7 / 3] * 3 + [3.0], rel=TOL)
    done = engine.run()
    assert done[b] == pytest.approx(1.0, rel=TOL)
    assert [done[f] for f in a] == pytest.approx([2.4] * 3, rel=TOL)


def test_weighted_is_work_conserving_when_a_class_is_bottlenecked_elsewhere():
    """Equal weights; link A 10 B/s carries x (class 0) and y (class 1); y also crosses B
    at 2 B/s. GPS would give each class 5 on A, but y can use only 2: x gets 10 - 2 = 8."""
    engine = FlowEngine([10.0, 2.0], policy=ClassPolicy.weighted({0: 0.5, 1: 0.5}))
    ids = engine.start_many([np.array([0]), np.array([0, 1])], [1.0, 1.0], classes=[0, 1])
    assert _rates(engine, ids) == pytest.approx([8.0, 2.0], rel=TOL)


@pytest.mark.parametrize(
    ("w0", "expected"),
    [
        (0.5, [5.0, 1.0, 6.0, 1.0]),
        (0.75, [7.5, 1.5, 3.0, 0.5]),
    ],
)
def test_weighted_two_links_by_hand(w0, expected):
    """A 12 B/s: class 0 flows a1 (A) and a2 (A and B), class 1 flow b1 (A); B 2 B/s: a2
    and class 1 flow b2 (B). On B both classes are backlogged: a2 = 2 w0, b2 = 2 (1 - w0).
    On A both are backlogged too: class 0 gets 12 w0, of which a2 (held at B) uses 2 w0,
    so a1 = 12 w0 - 2 w0 = 10 w0 (max-min in the class); b1 = 12 (1 - w0).
    w0 = 0.5: 5, 1, 6, 1. w0 = 0.75: 7.5, 1.5, 3, 0.5."""
    rows = [[0], [0, 1], [0], [1]]
    w = [[1.0] * len(r) for r in rows]
    rates = weighted_rates(rows, w, [0, 0, 1, 1], np.array([12.0, 2.0]), {0: w0, 1: 1 - w0})
    assert rates == pytest.approx(expected, rel=TOL)


def test_weighted_gives_a_class_limited_elsewhere_its_use_only():
    """As above with w0 = 0.75, and b1 also crossing C at 1 B/s: b1 = 1 < its GPS share
    12 x 0.25 = 3 on A, so class 0 gets 12 - 1 = 11 there: a1 = 11 - 1.5 = 9.5; on B
    a2 = 1.5, b2 = 0.5 as before."""
    rows = [[0], [0, 1], [0, 2], [1]]
    w = [[1.0] * len(r) for r in rows]
    cap = np.array([12.0, 2.0, 1.0])
    rates = weighted_rates(rows, w, [0, 0, 1, 1], cap, {0: 0.75, 1: 0.25})
    assert rates == pytest.approx([9.5, 1.5, 1.0, 0.5], rel=TOL)


# ----- random topologies: the defining property of each policy ------------------------------
@st.composite
def class_problems(draw):
    n_links = draw(st.integers(1, 4))
    cap = [draw(st.floats(0.5, 50.0)) for _ in range(n_links)]
    row = st.lists(st.integers(0, n_links - 1), min_size=1, max_size=3, unique=True)
    n = draw(st.integers(1, 8))
    rows = [draw(row) for _ in range(n)]
    weights = [[draw(st.sampled_from([0.5, 1.0, 2.0])) for _ in r] for r in rows]
    tc = [draw(st.integers(0, 2)) for _ in range(n)]
    sizes = [draw(st.floats(0.1, 20.0)) for _ in range(n)]
    kind = draw(st.sampled_from(["none", "strict", "weighted"]))
    if kind == "strict":
        policy: ClassPolicy | None = ClassPolicy.strict(draw(st.permutations([0, 1, 2])))
    elif kind == "weighted":
        policy = ClassPolicy.weighted({c: draw(st.floats(0.05, 1.0)) for c in range(3)})
    else:
        policy = None
    return rows, weights, tc, sizes, np.array(cap), policy


def _check_policy_property(rows, weights, tc, cap, rates, policy):
    """Feasible (no link over capacity) and work conserving: every flow has a full link on
    which it is among the flows the policy serves last-to-be-limited:
    - no policy: it has the largest rate there (max-min, Bertsekas & Gallager 6.5.2);
    - strict: no flow of a lower class gets anything there and it has the largest rate of
      its class there (lexicographic max-min; a starved flow's full link is one the classes
      above it fill);
    - weighted: its class has the largest load / weight of the classes there (GPS: the
      backlogged classes share by weight, the others are limited elsewhere) and it has the
      largest rate of its class there."""
    load = np.zeros(len(cap))
    by_class: dict[int, np.ndarray] = {c: np.zeros(len(cap)) for c in set(tc)}
    for r, ws, x, c in zip(rows, weights, rates, tc, strict=True):
        for ln, w in zip(r, ws, strict=True):
            load[ln] += w * x
            by_class[c][ln] += w * x
    assert np.all(load <= cap * (1 + 1e-7))
    for f, (r, x, c) in enumerate(zip(rows, rates, tc, strict=True)):
        ok = []
        for ln in r:
            if load[ln] < cap[ln] * (1 - 1e-7):
                continue
            same = [rates[g] for g, rg in enumerate(rows) if ln in rg and tc[g] == c]
            anyone = [rates[g] for g, rg in enumerate(rows) if ln in rg]
            if policy is None:
                ok.append(x >= max(anyone) * (1 - 1e-7))
                continue
            top = x >= max(same) * (1 - 1e-7)
            if policy.kind == "strict_priority":
                rank = policy.order.index
                lower = [by_class[d][ln] for d in by_class if rank(d) > rank(c)]
                ok.append(top and all(u <= 1e-7 * cap[ln] for u in lower))
            else:
                share = {d: by_class[d][ln] / policy.weights[d] for d in by_class
                         if any(ln in rg and tc[g] == d for g, rg in enumerate(rows))}  # fmt: skip
                ok.append(top and share[c] >= max(share.values()) * (1 - 1e-6))
        assert any(ok), (f, r, x, c)


@settings(max_examples=300, deadline=None)
@given(class_problems())
def test_every_policy_is_feasible_work_conserving_and_conserves_bytes(p):
    """Rates from the engine meet the policy's bottleneck property; after run() each link
    has carried, per class, the sum of size x weight of that class's flows on it."""
    rows, weights, tc, sizes, cap, policy = p
    engine = FlowEngine(cap, policy=policy)
    ids = engine.start_many([np.array(r) for r in rows], sizes,
                            [np.array(w) for w in weights], classes=tc)  # fmt: skip
    _check_policy_property(rows, weights, tc, cap, _rates(engine, ids), policy)
    engine.run()
    expected = {c: np.zeros(len(cap)) for c in (0, *tc)}
    for r, ws, size, c in zip(rows, weights, sizes, tc, strict=True):
        for ln, w in zip(r, ws, strict=True):
            expected[c][ln] += size * w
    got = engine.link_bytes_by_class
    assert set(got) == set(expected)
    for c in expected:
        assert got[c] == pytest.approx(expected[c], rel=1e-9, abs=1e-9)
    assert engine.link_bytes == pytest.approx(sum(expected.values()), rel=1e-9, abs=1e-9)


@settings(max_examples=200, deadline=None)
@given(class_problems())
def test_one_class_is_plain_max_min(p):
    """All flows in one class: both policies give the old solver's rates, through the
    engine (which then skips the policy) and through the policy solvers themselves."""
    rows, weights, _, _, cap, _ = p
    indptr = np.concatenate([[0], np.cumsum([len(r) for r in rows])]).astype(np.int64)
    links = np.array([ln for r in rows for ln in r], np.int64)
    ws = np.array([x for r in weights for x in r], float)
    old = max_min_rates(indptr, links, ws, cap).tolist()
    one = [TRN] * len(rows)
    assert strict_priority_rates(rows, weights, one, cap, [INF, TRN]) == old
    assert weighted_rates(rows, weights, one, cap, {TRN: 0.4, INF: 0.6}) == old
    for policy in (ClassPolicy.strict([TRN]), ClassPolicy.weighted({TRN: 1.0, INF: 2.0})):
        engine = FlowEngine(cap, policy=policy)
        ids = engine.start_many([np.array(r) for r in rows], [1.0] * len(rows),
                                [np.array(w) for w in weights], classes=one)  # fmt: skip
        plain = FlowEngine(cap)
        ref = plain.start_many([np.array(r) for r in rows], [1.0] * len(rows),
                               [np.array(w) for w in weights])  # fmt: skip
        assert _rates(engine, ids) == _rates(plain, ref)


@settings(max_examples=100, deadline=None)
@given(class_problems())
def test_weighted_classes_on_disjoint_links_are_independent(p):
    """Class c's flows moved onto links of their own (link id + c x n): no link is
    shared between classes, so each class gets plain max-min on its links whatever the
    weights (GPS with one class present gives it the whole link)."""
    rows, weights, tc, _, cap, _ = p
    n = len(cap)
    moved = [[ln + c * n for ln in r] for r, c in zip(rows, tc, strict=True)]
    cap3 = np.tile(cap, 3)
    rates = weighted_rates(moved, weights, tc, cap3, {0: 0.2, 1: 0.3, 2: 0.5})
    for c in set(tc):
        idx = [f for f in range(len(rows)) if tc[f] == c]
        alone = weighted_rates([moved[f] for f in idx], [weights[f] for f in idx], [c] * len(idx),
                               cap3, {c: 1.0})  # fmt: skip
        assert [rates[f] for f in idx] == pytest.approx(alone, rel=1e-9)


@st.composite
def timed_flows(draw):
    n_links = draw(st.integers(1, 4))
    cap = [draw(st.floats(0.5, 20.0)) for _ in range(n_links)]
    row = st.lists(st.integers(0, n_links - 1), min_size=1, max_size=3, unique=True)
    flows = draw(st.lists(st.tuples(st.floats(0.0, 5.0), st.floats(0.1, 20.0), row,
                                    st.integers(0, 2)), min_size=1, max_size=10))  # fmt: skip
    return np.array(cap), flows


def _run_timed(cap, flows, policy, keep=None):
    """Flows (start, size, links, class) started at their times; finish time of each (nan
    for those not in ``keep``, the classes run) and the engine after the run."""
    engine = FlowEngine(cap, policy=policy)
    live: dict[int, int] = {}
    finish = [math.nan] * len(flows)
    for i in sorted(range(len(flows)), key=lambda i: flows[i][0]):
        start, size, links, c = flows[i]
        if keep is not None and c not in keep:
            continue
        while engine.next_time() <= start:
            t = engine.next_time()
            for fid in engine.advance(t):
                finish[live.pop(fid)] = t
        for fid in engine.advance(start):
            finish[live.pop(fid)] = start
        live[engine.start(links, size, traffic_class=c)] = i
    for fid, t in engine.run().items():
        finish[live.pop(fid)] = t
    return finish, engine


@settings(max_examples=150, deadline=None)
@given(timed_flows(), st.permutations([0, 1, 2]))
def test_strict_priority_classes_above_never_see_the_ones_below(p, order):
    """Lexicographic: the classes in order[:j] get exactly the rates they would get if the
    classes below did not exist, so their finish times with staggered starts are those of
    a run without the lower classes (independent of the lower classes entirely); and bytes
    are conserved per class per link."""
    cap, flows = p
    policy = ClassPolicy.strict(order)
    finish, engine = _run_timed(cap, flows, policy)
    for j in (1, 2):
        alone, _ = _run_timed(cap, flows, policy, keep=set(order[:j]))
        for i, (_, _, _, c) in enumerate(flows):
            if c in order[:j]:
                assert finish[i] == pytest.approx(alone[i], rel=1e-9, abs=1e-12)
    by = engine.link_bytes_by_class
    for c in {f[3] for f in flows}:
        expected = np.zeros(len(cap))
        for _, size, links, k in flows:
            if k == c:
                expected[links] += size
        assert by[c] == pytest.approx(expected, rel=1e-9, abs=1e-9)


@settings(max_examples=150, deadline=None)
@given(timed_flows(), st.sampled_from([None, "weighted"]))
def test_staggered_starts_conserve_bytes_and_nothing_beats_its_alone_time(p, kind):
    """Weighted (or no) policy with flows starting at their own times: each class's bytes
    per link are its flows' sizes, and no flow ends before start + size / its narrowest
    link (its time alone on the fabric)."""
    cap, flows = p
    policy = ClassPolicy.weighted({0: 0.5, 1: 0.2, 2: 0.3}) if kind else None
    finish, engine = _run_timed(cap, flows, policy)
    by = engine.link_bytes_by_class
    for c in {f[3] for f in flows}:
        expected = np.zeros(len(cap))
        for _, size, links, k in flows:
            if k == c:
                expected[links] += size
        assert by[c] == pytest.approx(expected, rel=1e-9, abs=1e-9)
    for (start, size, links, _), t in zip(flows, finish, strict=True):
        assert t >= (start + size / min(cap[links])) * (1 - 1e-9)


def test_weighted_converges_on_larger_random_components():
    """200 seeded random components (up to 9 links, 40 route classes with weights up to 6,
    3 classes, random class weights): the fixed point is reached (no RuntimeError) and
    meets the weighted bottleneck property."""
    rng = np.random.default_rng(7)
    for _ in range(200):
        n_links, n = int(rng.integers(1, 10)), int(rng.integers(1, 41))
        cap = rng.uniform(0.5, 50.0, n_links)
        rows = [sorted(rng.choice(n_links, size=int(rng.integers(1, min(n_links, 4) + 1)),
                                  replace=False).tolist()) for _ in range(n)]  # fmt: skip
        w = [[float(rng.choice([0.5, 1.0, 2.0])) * int(rng.integers(1, 4)) for _ in r]
             for r in rows]  # fmt: skip
        tc = rng.integers(0, 3, n).tolist()
        policy = ClassPolicy.weighted({c: float(rng.uniform(0.05, 1.0)) for c in range(3)})
        _check_policy_property(rows, w, tc, cap, policy.solve(rows, w, tc, cap), policy)


def test_weighted_fallback_is_feasible_and_work_conserving(monkeypatch):
    """Cut the fixed point short (MAX_ROUNDS = 1, so most of these components fall back):
    the rates still keep every link within capacity and give every flow a full link
    (work conserving), the guarantee the fallback documents."""
    import aifabric.netsim.classes as classes

    monkeypatch.setattr(classes, "MAX_ROUNDS", 1)
    rng = np.random.default_rng(3)
    for _ in range(100):
        n_links, n = int(rng.integers(1, 8)), int(rng.integers(1, 25))
        cap = rng.uniform(0.5, 50.0, n_links)
        rows = [sorted(rng.choice(n_links, size=int(rng.integers(1, min(n_links, 3) + 1)),
                                  replace=False).tolist()) for _ in range(n)]  # fmt: skip
        w = [[1.0] * len(r) for r in rows]
        tc = rng.integers(0, 3, n).tolist()
        rates = weighted_rates(rows, w, tc, cap, {0: 0.5, 1: 0.3, 2: 0.2})
        load = np.zeros(n_links)
        for r, x in zip(rows, rates, strict=True):
            load[r] += x
        assert np.all(load <= cap * (1 + 1e-9))
        full = load >= cap * (1 - 1e-7)
        assert all(full[r].any() for r in rows)


def test_engine_refuses_a_class_its_policy_does_not_name():
    engine = FlowEngine([1.0], policy=ClassPolicy.strict([INF, TRN]))
    with pytest.raises(ValueError, match="traffic class 1"):
        engine.start([0], 1.0, traffic_class=STO)


def _note(arrived: dict[int, float], sim, k: int) -> None:
    arrived[k] = sim.now


def test_serving_network_passes_the_class_through():
    """FlowNetwork with strict priority: a storage flow (10 B) and an inference flow (10 B)
    on one 10 B/s link with inference first: inference arrives at 1 s, storage at 2 s; with
    no policy both share, 5 B/s each, and arrive together at 2 s."""
    from aifabric.des import Simulator
    from aifabric.serving.network import FlowNetwork

    for policy, expected in ((ClassPolicy.strict([INF, STO]), {INF: 1.0, STO: 2.0}),
                             (None, {INF: 2.0, STO: 2.0})):  # fmt: skip
        sim = Simulator()
        net = FlowNetwork(sim, policy=policy)
        link = net.add_link("l", 10.0)
        arrived: dict[int, float] = {}
        for k in (STO, INF):
            done = functools.partial(_note, arrived, sim, k)
            net.start((link,), 10.0, "kv_transfer", done, traffic_class=k)
        sim.run()
        assert arrived == pytest.approx(expected)
        by = net.engine.link_bytes_by_class
        assert by[INF][link] == 10.0 and by[STO][link] == 10.0


def test_serving_network_group_passes_the_class_through():
    """A training group (two flows of 10 B) and an inference flow (10 B) on one 10 B/s link,
    inference first: the inference flow has the link alone, arriving at 1 s; the group
    gets nothing until then and 10 B/s after: its 20 B are done at 1 + 20 / 10 = 3 s."""
    from aifabric.des import Simulator
    from aifabric.serving.network import FlowNetwork

    sim = Simulator()
    net = FlowNetwork(sim, policy=ClassPolicy.strict([INF, TRN]))
    link = net.add_link("l", 10.0)
    got: dict[str, float] = {}
    indptr = np.array([0, 1, 2], np.int64)
    net.start_group(indptr, np.array([link, link], np.int64), np.ones(2), np.array([10.0, 10.0]),
                    "training", lambda d: got.__setitem__("group", d), traffic_class=TRN)  # fmt: skip
    net.start((link,), 10.0, "kv_transfer", lambda: got.__setitem__("kv", sim.now))
    sim.run()
    assert got == pytest.approx({"kv": 1.0, "group": 3.0})
    assert net.engine.link_bytes_by_class[TRN][link] == 20.0


# ----- the scenario edge ----------------------------------------------------------------------
def test_parse_both_policies():
    strict = parse_class_policy({"policy": "strict_priority",
                                 "order": ["inference", "storage", "training"]})  # fmt: skip
    assert strict == ClassPolicy.strict([0, 1, 2])
    weighted = parse_class_policy(
        {"policy": "weighted", "weights": {"inference": 5, "training": 3, "storage": 2}}
    )
    assert weighted is not None and weighted.kind == "weighted"
    assert weighted.weights == pytest.approx({0: 0.5, 1: 0.2, 2: 0.3})
    assert math.fsum(weighted.weights.values()) == pytest.approx(1.0)
    custom = parse_class_policy({"policy": "strict_priority", "order": ["gold", 7]}, {"gold": 3})
    assert custom is not None and custom.order == (3, 7)
    assert parse_class_policy({"policy": "fair"}) is None


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("fast", "traffic_classes: expected a mapping"),
        ({"policy": "fifo"}, "traffic_classes.policy: 'fifo' is not one of"),
        ({"policy": "fair", "order": ["storage"]},
         "traffic_classes.order: not a key of policy fair"),
        ({"policy": "strict_priority", "order": []}, "traffic_classes.order: [] must be"),
        ({"policy": "strict_priority", "order": ["inference", "video"]},
         "traffic_classes.order: 'video' is not a traffic class"),
        ({"policy": "strict_priority", "order": ["storage", 1]},
         "traffic_classes.order: 1 is listed twice"),
        ({"policy": "strict_priority", "order": ["storage"], "weights": {}},
         "traffic_classes.weights: not a key of policy strict_priority"),
        ({"policy": "weighted", "weights": {"inference": 0}},
         "traffic_classes.weights.inference: 0 must be a positive number"),
        ({"policy": "weighted", "weights": {"training": "high"}},
         "traffic_classes.weights.training: 'high' must be a positive number"),
        ({"policy": "weighted", "weights": []}, "traffic_classes.weights: [] must be"),
    ],
)  # fmt: skip
def test_parse_errors_are_one_line_naming_key_value_rule(spec, message):
    with pytest.raises(ConfigError) as err:
        parse_class_policy(spec)
    assert str(err.value).startswith(message) and "\n" not in str(err.value)
