"""The shared flow engine (netsim.engine): max-min rates against their defining property,
hand-derived event timelines, component isolation, conservation of bytes per link."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from aifabric.netsim.engine import FlowEngine
from aifabric.netsim.fairshare import fill_small, max_min_rates, run_batch

TOL = 1e-9


def _csr(rows: list[list[int]], weights: list[list[float]] | None = None):
    indptr = np.concatenate([[0], np.cumsum([len(r) for r in rows])]).astype(np.int64)
    links = np.array([ln for r in rows for ln in r], np.int64)
    w = None if weights is None else np.array([x for r in weights for x in r], float)
    return indptr, links, w


# ----- max_min_rates: a weighted hand case, and the bottleneck property -----------------------
def test_weighted_two_level_hand_case():
    """Link 0 (cap 3) carries A (weight 1) and half of B (weight 0.5); link 1 (cap 2) carries
    the other half of B (0.5), C and D (1 each). Rates rise together as r: link 1 fills at
    2.5 r = 2, r = 0.8, freezing B, C, D; link 0 then holds 3 - 1.5 * 0.8 = 1.8 more for A
    alone: A = 0.8 + 1.8 = 2.6. Check: link 0 2.6 + 0.4 = 3, link 1 0.4 + 0.8 + 0.8 = 2."""
    rows = [[0], [0, 1], [1], [1]]
    weights = [[1.0], [0.5, 0.5], [1.0], [1.0]]
    cap = np.array([3.0, 2.0])
    expected = [2.6, 0.8, 0.8, 0.8]
    assert max_min_rates(*_csr(rows, weights), cap) == pytest.approx(expected, rel=TOL)
    assert fill_small(rows, weights, cap) == pytest.approx(expected, rel=TOL)
    engine = FlowEngine(cap)
    ids = engine.start_many([np.array(r) for r in rows], [1.0] * 4, [np.array(w) for w in weights])
    assert [engine.rate(f) for f in ids] == pytest.approx(expected, rel=TOL)


@st.composite
def problems(draw, weighted: bool):
    n_links = draw(st.integers(1, 5))
    finite = st.floats(0.1, 100.0)
    cap = [draw(finite | st.just(math.inf)) if i else draw(finite) for i in range(n_links)]
    row = st.lists(st.integers(0, n_links - 1), min_size=1, max_size=3, unique=True)
    rows = draw(st.lists(row, max_size=8))
    w = st.sampled_from([0.25, 0.5, 1.0, 2.0]) if weighted else st.just(1.0)
    weights = [[draw(w) for _ in r] for r in rows]
    return rows, weights, np.array(cap)


def _check_max_min(rows, weights, cap, rates):
    """Feasible, and every flow has a bottleneck: a link of finite capacity that is full
    (weighted load = capacity) on which no flow gets a higher rate (Bertsekas & Gallager
    6.5.2, with link use weighted). A flow on no finite link is unconstrained (inf)."""
    load = np.zeros(len(cap))
    for r, ws, x in zip(rows, weights, rates, strict=True):
        for ln, w in zip(r, ws, strict=True):
            if math.isfinite(cap[ln]):
                load[ln] += w * x
    assert np.all(load <= cap * (1 + TOL))
    for f, (r, x) in enumerate(zip(rows, rates, strict=True)):
        finite = [ln for ln in r if math.isfinite(cap[ln])]
        if not finite:
            assert x == math.inf
            continue
        assert 0 < x < math.inf
        on = {ln: [rates[g] for g, rg in enumerate(rows) if ln in rg] for ln in finite}
        bottlenecks = [
            ln for ln in finite
            if load[ln] >= cap[ln] * (1 - TOL) and x >= max(on[ln]) * (1 - TOL)
        ]  # fmt: skip
        assert bottlenecks, (f, r, x)


@given(problems(weighted=False))
def test_max_min_rates_meet_the_bottleneck_property(p):
    rows, weights, cap = p
    rates = max_min_rates(*_csr(rows), cap)
    _check_max_min(rows, weights, cap, rates.tolist())


@given(problems(weighted=True))
def test_weighted_rates_meet_the_bottleneck_property_on_both_solvers(p):
    """The NumPy solver and the plain-Python one the engine uses for small components."""
    rows, weights, cap = p
    rates = max_min_rates(*_csr(rows, weights), cap).tolist()
    _check_max_min(rows, weights, cap, rates)
    finite = [[ln for ln in r if math.isfinite(cap[ln])] for r in rows]
    fw = [[w for ln, w in zip(r, ws, strict=True) if math.isfinite(cap[ln])]
          for r, ws in zip(rows, weights, strict=True)]  # fmt: skip
    assert fill_small(finite, fw, cap) == pytest.approx(rates, rel=TOL)


# ----- FlowEngine: hand-derived timelines ---------------------------------------------------
def test_two_flows_sharing_a_link():
    """Link of 10 B/s; A 10 B and B 20 B start at 0: 5 B/s each, A is done at 10 / 5 = 2
    with B at 10 B left, which then has the link alone: 2 + 10 / 10 = 3."""
    engine = FlowEngine([10.0])
    a = engine.start([0], 10.0)
    b = engine.start([0], 20.0)
    assert (engine.rate(a), engine.rate(b)) == (5.0, 5.0)
    assert engine.next_time() == 2.0
    assert engine.advance(2.0) == [a]
    assert engine.rate(b) == 10.0 and engine.remaining(b) == pytest.approx(10.0)
    assert engine.run() == {b: pytest.approx(3.0)}
    assert engine.active == 0


def test_flow_joining_mid_transfer():
    """A (30 B) alone on 10 B/s until t = 1 (20 B left); B (10 B) joins: 5 B/s each. B is
    done at 1 + 10 / 5 = 3, A then has 20 - 10 = 10 B left at 10 B/s: done at 4."""
    engine = FlowEngine([10.0])
    a = engine.start([0], 30.0)
    assert engine.advance(1.0) == []
    assert engine.remaining(a) == pytest.approx(20.0)
    b = engine.start([0], 10.0)
    assert engine.rate(a) == engine.rate(b) == 5.0
    assert engine.run() == {b: pytest.approx(3.0), a: pytest.approx(4.0)}


def test_component_isolation():
    """A (4 B) on link 0 (1 B/s) and B (2 B) on link 1 (2 B/s) share nothing: B runs at 2
    and is done at 1. C (1 B) joins A at 0.5: only A and C are re-solved (0.5 B/s each), B
    keeps its rate and its finish, to the bit. C is done at 0.5 + 1 / 0.5 = 2.5; A had
    3.5 B left at 0.5, 2.5 at 2.5, then 1 B/s alone: done at 5. Solves: one per start (3)
    and one when C leaves (A alone); B's and A's last bytes leave nobody to re-solve."""
    engine = FlowEngine([1.0, 2.0])
    a = engine.start([0], 4.0)
    b = engine.start([1], 2.0)
    assert engine.next_time() == 1.0
    engine.advance(0.5)
    before = engine.solved_flows
    c = engine.start([0], 1.0)
    assert engine.solved_flows - before == 2  # A and C, not B
    assert engine.rate(b) == 2.0 and engine.rate(a) == engine.rate(c) == 0.5
    finish = engine.run()
    assert finish[b] == 1.0  # exact: B's event was never re-timed
    assert finish[c] == pytest.approx(2.5) and finish[a] == pytest.approx(5.0)
    assert engine.solves == 4


def test_link_bytes_conserved_with_spraying():
    """X sprays half its bytes over links 0-1 and half over 0-2: link 0 (on both paths)
    takes weight 0.5 + 0.5 = 1, links 1 and 2 weight 0.5. Y crosses link 1, Z links 2 and 3.
    After the run each link has carried sum(size x weight) of its flows; mid-run, a lone
    flow's link has carried rate x time."""
    engine = FlowEngine([4.0, 1.0, 2.0, 3.0])
    engine.start_many(
        [np.array([0, 1, 0, 2]), np.array([1]), np.array([2, 3])],
        [8.0, 3.0, 5.0],
        [np.array([0.5, 0.5, 0.5, 0.5]), np.array([1.0]), np.array([1.0, 1.0])],
    )
    engine.run()
    expected = [8.0, 0.5 * 8 + 3, 0.5 * 8 + 5, 5.0]
    assert engine.link_bytes == pytest.approx(expected, rel=TOL)
    lone = FlowEngine([2.0])
    lone.start([0], 10.0)
    lone.advance(1.5)
    assert lone.link_bytes == pytest.approx([3.0])


def test_unconstrained_and_empty_flows_finish_at_once():
    """A flow on infinite links only, and a zero-byte flow, are done when they start; the
    bytes still count on the links they name."""
    engine = FlowEngine([math.inf, 5.0])
    engine.advance(2.0)
    inf_flow = engine.start([0], 7.0)
    empty = engine.start([1], 0.0)
    assert engine.rate(inf_flow) == math.inf
    assert engine.next_time() == 2.0
    assert engine.advance(2.0) == sorted([inf_flow, empty])
    assert engine.link_bytes == pytest.approx([7.0, 0.0])


def test_flow_shorter_than_the_clock_resolution_finishes():
    """At t = 1e6 the clock's step is 1.2e-10 s; 1 B at 1e12 B/s lasts 1e-12 s, so
    now + remaining / rate rounds to now. The engine still finishes it there (its event
    is what next_time returned) instead of waiting forever for bytes to move."""
    engine = FlowEngine([1e12])
    engine.advance(1e6)
    f = engine.start([0], 1.0)
    assert engine.run() == {f: 1e6}
    assert engine.link_bytes == pytest.approx([1.0])


def test_finishes_equal_to_rounding_are_one_step():
    """A: 0.3 B at 0.1 B/s ends at 0.3 / 0.1 = 2.9999999999999996; B: 3 B at 1 B/s at 3.0.
    Both are done in one advance (B's rest is within EPS), so D, which shares link 2 with
    both, is re-solved once for the two (solves: the start, then this one)."""
    engine = FlowEngine([0.1, 1.0, 100.0])
    a, b, d = engine.start_many([np.array([0, 2]), np.array([1, 2]), np.array([2])],
                                [0.3, 3.0, 1000.0])  # fmt: skip
    t = engine.next_time()
    assert t < 3.0
    assert engine.advance(t) == sorted([a, b])
    assert engine.solves == 2
    assert engine.rate(d) == 100.0


def test_advance_past_several_finishes_takes_them_in_order():
    """A (1 B) and B (2 B) share 1 B/s: A is done at 2 (0.5 B/s each), B then has 1 B left
    at 1 B/s: done at 3. advance(10) takes both, each at its own time."""
    engine = FlowEngine([1.0])
    a, b = engine.start_many([np.array([0]), np.array([0])], [1.0, 2.0])
    assert engine.advance(10.0) == [a, b]
    assert engine.now == 10.0 and engine.active == 0
    assert engine.link_bytes == pytest.approx([3.0])


# ----- FlowEngine: properties -----------------------------------------------------------------
flows_st = st.lists(
    st.tuples(
        st.floats(0.0, 3.0),  # start time
        st.just(0.0) | st.floats(0.01, 20.0),  # size (below 1 B, EPS is 1e-9 B, not relative)
        st.lists(st.integers(0, 3), min_size=1, max_size=3),  # links, repeats allowed
        st.sampled_from([0.5, 1.0]),  # weight on each
    ),
    max_size=10,
)
CAP = [1.0, 3.0, 7.0, 2.5]


@given(flows_st)
def test_bytes_conserved_and_nothing_beats_its_nominal_time(flows):
    """Flows start at random times; after the run each link has carried sum(size x weight)
    (a link named twice on a flow carries twice its weight), and no flow is done before
    size / (capacity / weight) of its tightest link past its start, its time alone."""
    engine = FlowEngine(CAP)
    live: dict[int, int] = {}  # engine id -> flow index (ids are reused)
    finish = [math.nan] * len(flows)

    def take(t: float, fids: list[int]) -> None:
        for fid in fids:
            finish[live.pop(fid)] = t

    for i in sorted(range(len(flows)), key=lambda i: flows[i][0]):
        start, size, links, w = flows[i]
        while engine.next_time() <= start:
            t = engine.next_time()
            take(t, engine.advance(t))
        take(start, engine.advance(start))
        live[engine.start(links, size, [w] * len(links))] = i
    while live:
        t = engine.next_time()
        take(t, engine.advance(t))
    expected = np.zeros(len(CAP))
    for _, size, links, w in flows:
        for ln in links:
            expected[ln] += size * w
    assert engine.link_bytes == pytest.approx(expected, rel=1e-9, abs=1e-9)
    for (start, size, links, w), t in zip(flows, finish, strict=True):
        alone = size / min(CAP[ln] / (links.count(ln) * w) for ln in links)
        assert t >= (start + alone) * (1 - 1e-9)


@settings(max_examples=60)
@given(st.lists(st.tuples(st.floats(0.0, 20.0), st.lists(st.integers(0, 3), min_size=1,
                                                           max_size=3, unique=True)),
                min_size=1, max_size=12))  # fmt: skip
def test_engine_agrees_with_run_batch(flows):
    """Flows that all start at 0: the event engine (route classes, components, lazy
    progress) and the vectorised batch run finish every flow at the same time."""
    rows = [links for _, links in flows]
    sizes = np.array([size for size, _ in flows])
    indptr, links, _ = _csr(rows)
    batch, batch_bytes, _ = run_batch(indptr, links, None, sizes, np.array(CAP))
    engine = FlowEngine(CAP)
    ids = engine.start_many([np.array(r) for r in rows], sizes)
    done = engine.run()
    assert [done[f] for f in ids] == pytest.approx(batch.tolist(), rel=1e-9, abs=1e-12)
    assert engine.link_bytes == pytest.approx(batch_bytes, rel=1e-9, abs=1e-9)


# ----- the serving simulator's network on the engine -------------------------------------------
def test_serving_network_keeps_one_pending_event():
    """100 flows of k = 1..100 B on one 10 B/s link (processor sharing): the one with the
    k-th smallest size leaves at T_k = T_(k-1) + (n - k + 1) x 1 B / C (each step moves the
    k-th flow's last byte while n - k + 1 flows share), T_k = sum_(i<=k) (n - i + 1) / C,
    and arrives a latency later. However many are in flight, the network holds one event
    (the next last byte) plus the arrivals in their latency."""
    from aifabric.des import Simulator
    from aifabric.serving.network import FlowNetwork

    n, cap, lat = 100, 10.0, 0.5
    sim = Simulator()
    net = FlowNetwork(sim, latency=lat)
    link = net.add_link("l", cap)
    arrived: dict[int, float] = {}
    for k in range(n, 0, -1):
        net.start((link,), float(k), "kv_transfer", lambda k=k: arrived.__setitem__(k, sim.now))
    assert len(sim) == 1 and net.in_flight == n
    sim.run()
    for k in (1, 2, 50, 100):
        t_k = sum(n - i + 1 for i in range(1, k + 1)) / cap
        assert arrived[k] == pytest.approx(t_k + lat, rel=1e-12)
    assert net.in_flight == 0 and net.link_bytes[link] == n * (n + 1) / 2
