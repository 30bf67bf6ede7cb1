"""Max-min fair rates (netsim.maxmin) and the flow network built on them (serving.network)."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from aifabric.des import Simulator
from aifabric.netsim.maxmin import max_min_rates
from aifabric.serving.network import KINDS, FlowNetwork

TOL = 1e-9


# ----- max_min_rates: hand-derived allocations -------------------------------------------------
def test_one_link_two_flows_halves():
    assert max_min_rates([[0], [0]], {0: 10.0}) == pytest.approx([5.0, 5.0])


def test_one_link_n_flows_equal_shares():
    assert max_min_rates([[7]] * 4, {7: 8.0}) == pytest.approx([2.0] * 4)


def test_classic_three_flow_example():
    # A crosses links 1 and 2, B only 1, C only 2; capacities 1 and 2.
    # Link 1 saturates first at 1/2 each (A, B); C then takes what A leaves on link 2.
    rates = max_min_rates([[1, 2], [1], [2]], {1: 1.0, 2: 2.0})
    assert rates == pytest.approx([0.5, 0.5, 1.5])


def test_parking_lot():
    # A long flow over links 0,1,2 and one short flow per link, all links capacity 1:
    # every link carries 2 flows, so everyone gets 1/2.
    rates = max_min_rates([[0, 1, 2], [0], [1], [2]], {0: 1.0, 1: 1.0, 2: 1.0})
    assert rates == pytest.approx([0.5, 0.5, 0.5, 0.5])


def test_bottleneck_elsewhere_frees_capacity():
    # Link 0 (cap 10) shared by A and B; A also crosses link 1 (cap 1), which limits it
    # to 1, so B gets the remaining 9 on link 0.
    rates = max_min_rates([[0, 1], [0]], {0: 10.0, 1: 1.0})
    assert rates == pytest.approx([1.0, 9.0])


def test_unconstrained_flows_get_inf():
    # Link 5 is absent from capacity (unconstrained); an empty path crosses nothing.
    rates = max_min_rates([[5], [], [0], [0, 5]], {0: 4.0})
    assert rates[0] == math.inf
    assert rates[1] == math.inf
    assert rates[2:] == pytest.approx([2.0, 2.0])


def test_unconstrained_flows_get_inf_fast_path():
    rates = max_min_rates([[5], [], [0]], {0: 4.0})
    assert rates == [math.inf, math.inf, 4.0]


def test_no_flows():
    assert max_min_rates([], {0: 1.0}) == []


def test_unshared_fast_path_is_min_capacity_on_path():
    capacity = {0: 3.0, 1: 2.0, 2: 5.0, 3: 7.0}
    rates = max_min_rates([[0, 1], [2, 3], [9]], capacity)
    assert rates == [2.0, 5.0, math.inf]


# ----- max_min_rates: properties ---------------------------------------------------------------
@st.composite
def networks(draw):
    n_links = draw(st.integers(1, 6))
    capacity = {
        link: draw(st.floats(0.1, 100.0, allow_nan=False, allow_infinity=False))
        for link in range(n_links)
        if draw(st.booleans()) or link == 0
    }
    # Link ids up to n_links: some are absent from capacity (unconstrained).
    path = st.lists(st.integers(0, n_links), unique=True, max_size=4)
    paths = draw(st.lists(path, max_size=8))
    return paths, capacity


def _on_link(paths, link):
    return [f for f, p in enumerate(paths) if link in p]


@given(networks())
def test_feasible(net):
    paths, capacity = net
    rates = max_min_rates(paths, capacity)
    assert len(rates) == len(paths)
    for r in rates:
        assert r > 0
    for link, cap in capacity.items():
        flows = _on_link(paths, link)
        assert sum(rates[f] for f in flows) <= cap * (1 + TOL)


@given(networks())
def test_every_flow_has_a_bottleneck(net):
    """Max-min fairness: each flow has a saturated link where no flow gets more than it."""
    paths, capacity = net
    rates = max_min_rates(paths, capacity)
    for f, (path, rate) in enumerate(zip(paths, rates, strict=True)):
        constrained = [ln for ln in path if ln in capacity]
        if not constrained:
            assert rate == math.inf
            continue
        assert math.isfinite(rate)
        bottlenecks = []
        for link in constrained:
            flows = _on_link(paths, link)
            load = sum(rates[g] for g in flows)
            saturated = load >= capacity[link] * (1 - TOL)
            largest = rate >= max(rates[g] for g in flows) * (1 - TOL)
            if saturated and largest:
                bottlenecks.append(link)
        assert bottlenecks, (f, path, rate)


@given(networks())
def test_order_of_flows_does_not_matter(net):
    paths, capacity = net
    rates = max_min_rates(paths, capacity)
    reversed_rates = max_min_rates(paths[::-1], capacity)[::-1]
    assert reversed_rates == pytest.approx(rates, rel=1e-9)


# ----- FlowNetwork in a Simulator --------------------------------------------------------------
S = 4.0  # bytes
C = 2.0  # bytes/s
LAT = 0.25  # s


def _net(latency: float = LAT) -> tuple[Simulator, FlowNetwork]:
    sim = Simulator()
    return sim, FlowNetwork(sim, latency=latency)


def _recorder(sim: Simulator, log: dict[str, float], name: str):
    def done() -> None:
        log[name] = sim.now

    return done


def test_single_flow_arrives_after_size_over_capacity_plus_latency():
    sim, net = _net()
    link = net.add_link("l", C)
    log: dict[str, float] = {}
    net.start((link,), S, "kv_transfer", _recorder(sim, log, "a"))
    assert net.in_flight == 1
    sim.run()
    assert log["a"] == pytest.approx(S / C + LAT)
    assert net.in_flight == 0
    assert net.nominal_time((link,), S) == pytest.approx(S / C + LAT)


def test_two_flows_together_share_the_link():
    sim, net = _net()
    link = net.add_link("l", C)
    log: dict[str, float] = {}
    net.start((link,), S, "kv_transfer", _recorder(sim, log, "a"))
    net.start((link,), S, "kv_transfer", _recorder(sim, log, "b"))
    sim.run()
    assert log["a"] == pytest.approx(2 * S / C + LAT)
    assert log["b"] == pytest.approx(2 * S / C + LAT)


def test_flow_joining_halfway():
    # A starts at 0 alone at C; at S/(2C) it has S/2 left when B joins. Both run at C/2:
    # A needs (S/2)/(C/2) = S/C more, finishing at 1.5 S/C; B has moved S/2 by then and
    # finishes its last S/2 alone at C, at 2 S/C.
    sim, net = _net()
    link = net.add_link("l", C)
    log: dict[str, float] = {}
    net.start((link,), S, "kv_transfer", _recorder(sim, log, "a"))
    sim.schedule(S / (2 * C), lambda: net.start((link,), S, "prefix_fetch",
                                                 _recorder(sim, log, "b")))  # fmt: skip
    sim.run()
    assert log["a"] == pytest.approx(1.5 * S / C + LAT)
    assert log["b"] == pytest.approx(2 * S / C + LAT)
    assert net.bytes_done["kv_transfer"] == S
    assert net.bytes_done["prefix_fetch"] == S


def test_three_flow_example_in_time():
    # Links 1 (cap 1) and 2 (cap 2); A over both, B on 1, C on 2; 1 byte each.
    # Rates 0.5 / 0.5 / 1.5: C is done at 2/3, A and B have 2/3 left and keep 0.5
    # (link 1 still shared), so they finish at 2/3 + 4/3 = 2.
    sim, net = _net()
    l1 = net.add_link("l1", 1.0)
    l2 = net.add_link("l2", 2.0)
    log: dict[str, float] = {}
    net.start((l1, l2), 1.0, "kv_transfer", _recorder(sim, log, "a"))
    net.start((l1,), 1.0, "kv_transfer", _recorder(sim, log, "b"))
    net.start((l2,), 1.0, "kv_transfer", _recorder(sim, log, "c"))
    sim.run()
    assert log["c"] == pytest.approx(2 / 3 + LAT)
    assert log["a"] == pytest.approx(2.0 + LAT)
    assert log["b"] == pytest.approx(2.0 + LAT)


def test_zero_size_flow_arrives_after_latency_only():
    sim, net = _net()
    link = net.add_link("l", C)
    log: dict[str, float] = {}
    net.start((link,), 0.0, "prefix_store", _recorder(sim, log, "z"))
    sim.run()
    assert log["z"] == pytest.approx(LAT)
    assert net.bytes_done["prefix_store"] == 0.0


def test_zero_size_flow_does_not_slow_others():
    sim, net = _net()
    link = net.add_link("l", C)
    log: dict[str, float] = {}
    net.start((link,), S, "kv_transfer", _recorder(sim, log, "a"))
    net.start((link,), 0.0, "kv_transfer", _recorder(sim, log, "z"))
    sim.run()
    assert log["z"] == pytest.approx(LAT)
    assert log["a"] == pytest.approx(S / C + LAT)


def test_unconstrained_link_is_latency_only():
    sim, net = _net()
    link = net.add_link("fat", math.inf)
    log: dict[str, float] = {}
    net.start((link,), 1e12, "kv_transfer", _recorder(sim, log, "a"))
    sim.run()
    assert log["a"] == pytest.approx(LAT)
    assert net.link_bytes[link] == 1e12


def test_no_latency_default():
    sim, net = _net(latency=0.0)
    link = net.add_link("l", C)
    log: dict[str, float] = {}
    net.start((link,), S, "kv_transfer", _recorder(sim, log, "a"))
    sim.run()
    assert log["a"] == pytest.approx(S / C)


@given(
    st.lists(
        st.tuples(
            st.floats(0.0, 5.0),  # start time
            st.floats(0.0, 50.0),  # size
            st.sampled_from(KINDS),
            st.lists(st.integers(0, 3), min_size=1, max_size=3, unique=True),
        ),
        max_size=10,
    )
)
def test_bytes_conserved(flows):
    sim, net = _net(latency=0.01)
    links = [net.add_link(f"l{i}", cap) for i, cap in enumerate((1.0, 3.0, 7.0, 2.5))]
    arrived: list[float] = []
    for start, size, kind, path in flows:
        p = tuple(links[i] for i in path)

        def go(p=p, size=size, kind=kind) -> None:
            net.start(p, size, kind, lambda: arrived.append(sim.now))

        sim.schedule(start, go)
    sim.run()
    assert len(arrived) == len(flows)
    assert net.in_flight == 0
    for kind in KINDS:
        expected = sum(size for _, size, k, _ in flows if k == kind)
        assert net.bytes_done[kind] == pytest.approx(expected)
        assert net.bytes_started[kind] == pytest.approx(expected)
    for i, link in enumerate(links):
        expected = sum(size for _, size, _, path in flows if i in path)
        assert net.link_bytes[link] == pytest.approx(expected)
    # Nothing beats its own nominal time: each flow is done no earlier than it could be alone.
    total_time = sim.now
    lower = max((s + size / min((1.0, 3.0, 7.0, 2.5)[i] for i in path) + 0.01
                 for s, size, _, path in flows), default=0.0)  # fmt: skip
    assert total_time >= lower * (1 - 1e-9)
