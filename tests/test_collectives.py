"""Collectives: bytes on the wire, alpha-beta times and NCCL bus bandwidth.

Truth:
- the bandwidth lower bound of all-reduce, 2(n-1)/n x S / B per rank (Patarasuk & Yuan
  2009), met exactly by the ring; for the other operations bus_factor x S / B;
- conservation: every algorithm that moves the same data puts the same bytes on the wire
  (ring all-reduce = reduce-scatter + all-gather; hierarchical = flat);
- NCCL-tests PERFORMANCE.md bus-bandwidth factors.
"""

from __future__ import annotations

import math

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from aifabric.errors import ConfigError
from aifabric.traffic.collectives import (
    ALGORITHMS,
    IN_NETWORK,
    OPERATIONS,
    SCALE_OUT,
    SCALE_UP,
    Link,
    algorithms_for,
    bus_factor,
    collective,
    lower_bound_time,
)

ranks = st.integers(min_value=2, max_value=1024)
sizes = st.floats(min_value=1.0, max_value=1e12, allow_nan=False)
bandwidths = st.floats(min_value=1e6, max_value=1e13, allow_nan=False)
REL = 1e-9


def _divisors(n: int) -> list[int]:
    return [d for d in range(1, n + 1) if n % d == 0]


@st.composite
def n_and_domain(draw: st.DrawFn) -> tuple[int, int]:
    n = draw(ranks)
    m = draw(st.sampled_from(_divisors(n)))
    return n, m


# ----- registry ------------------------------------------------------------------------------


def test_all_reduce_algorithms_registered() -> None:
    assert set(algorithms_for("all_reduce")) == {
        "ring",
        "tree",
        "halving_doubling",
        "direct",
        "hierarchical",
        "nvls",
        "sharp",
    }
    for op in OPERATIONS:
        assert algorithms_for(op), op


# ----- the ring lower bound ------------------------------------------------------------------


@given(nm=n_and_domain(), size=sizes, bw=bandwidths)
def test_every_all_reduce_algorithm_respects_ring_lower_bound(
    nm: tuple[int, int], size: float, bw: float
) -> None:
    n, m = nm
    bound = 2 * (n - 1) / n * size / bw
    link = Link(bw, 0.0)
    for algo in algorithms_for("all_reduce"):
        if algo in IN_NETWORK:  # switches reduce: the bound is for reductions on the GPUs
            continue
        cost = collective("all_reduce", algo, num_ranks=n, size=size, ranks_per_domain=m)
        assert cost.time(link) >= bound * (1 - REL), algo


@given(n=ranks, size=sizes, bw=bandwidths)
def test_ring_all_reduce_meets_the_bound_exactly(n: int, size: float, bw: float) -> None:
    cost = collective("all_reduce", "ring", num_ranks=n, size=size)
    assert cost.time(Link(bw, 0.0)) == pytest.approx(2 * (n - 1) / n * size / bw, rel=REL)


@given(nm=n_and_domain(), size=sizes, bw=bandwidths)
def test_every_operation_respects_its_lower_bound(
    nm: tuple[int, int], size: float, bw: float
) -> None:
    n, m = nm
    link = Link(bw, 0.0)
    for (op, algo), _fn in ALGORITHMS.items():
        if (op == "send_recv" and n != 2) or algo in IN_NETWORK:
            continue
        cost = collective(op, algo, num_ranks=n, size=size, ranks_per_domain=m)
        bound = lower_bound_time(op, n, size, bw)
        assert cost.time(link) >= bound * (1 - REL), (op, algo)


@given(nm=n_and_domain(), size=sizes)
def test_busiest_rank_sends_at_least_the_mean(nm: tuple[int, int], size: float) -> None:
    n, m = nm
    for (op, algo), _fn in ALGORITHMS.items():
        if op == "send_recv" and n != 2:
            continue
        cost = collective(op, algo, num_ranks=n, size=size, ranks_per_domain=m)
        for phase in cost.phases:
            assert phase.max_bytes_per_rank >= phase.bytes_per_rank * (1 - REL)
            assert phase.steps >= 1


# ----- conservation ------------------------------------------------------------------------


@given(n=ranks, size=sizes)
def test_ring_all_reduce_total_is_2_n_minus_1_size(n: int, size: float) -> None:
    """Each of the n ranks sends 2(n-1) chunks of S/n: 2(n-1) S in all."""
    cost = collective("all_reduce", "ring", num_ranks=n, size=size)
    assert cost.total_bytes == pytest.approx(2 * (n - 1) * size, rel=REL)
    assert cost.total_bytes == pytest.approx(n * cost.bytes_per_rank, rel=REL)
    assert cost.steps == 2 * (n - 1)


@given(n=ranks, size=sizes)
def test_tree_and_halving_doubling_move_ring_bytes(n: int, size: float) -> None:
    """Bandwidth-optimal all-reduces all move 2(n-1)/n S per rank on average."""
    ring = collective("all_reduce", "ring", num_ranks=n, size=size).total_bytes
    for algo in ("tree", "halving_doubling"):
        total = collective("all_reduce", algo, num_ranks=n, size=size).total_bytes
        assert total == pytest.approx(ring, rel=REL), algo


@given(n=ranks, size=sizes)
def test_direct_all_reduce_is_the_seeds_accounting(n: int, size: float) -> None:
    """Every rank sends its whole buffer to the n-1 others: n (n-1) S on the wire."""
    cost = collective("all_reduce", "direct", num_ranks=n, size=size)
    assert cost.bytes_per_rank == pytest.approx((n - 1) * size, rel=REL)
    assert cost.total_bytes == pytest.approx(n * (n - 1) * size, rel=REL)


@given(n=ranks, size=sizes)
def test_reduce_scatter_plus_all_gather_is_all_reduce(n: int, size: float) -> None:
    rs = collective("reduce_scatter", "ring", num_ranks=n, size=size)
    ag = collective("all_gather", "ring", num_ranks=n, size=size)
    ar = collective("all_reduce", "ring", num_ranks=n, size=size)
    assert rs.total_bytes + ag.total_bytes == pytest.approx(ar.total_bytes, rel=REL)
    assert rs.steps + ag.steps == ar.steps


@given(nm=n_and_domain(), size=sizes)
def test_hierarchical_moves_the_same_bytes_as_flat(nm: tuple[int, int], size: float) -> None:
    """Scale-up + scale-out bytes of the hierarchical algorithm equal the flat algorithm's."""
    n, m = nm
    flat_algo = {
        "all_reduce": "ring",
        "all_gather": "ring",
        "reduce_scatter": "ring",
        "all_to_all": "direct",
    }
    for op, flat in flat_algo.items():
        hier = collective(op, "hierarchical", num_ranks=n, size=size, ranks_per_domain=m)
        ref = collective(op, flat, num_ranks=n, size=size)
        up, out = hier.bytes_per_rank_in(SCALE_UP), hier.bytes_per_rank_in(SCALE_OUT)
        assert up + out == pytest.approx(ref.bytes_per_rank, rel=REL), op
        if m == 1:
            assert up == 0
        if m == n:
            assert out == 0


def test_hierarchical_all_reduce_split_by_hand() -> None:
    """n = 16, m = 8, S = 1 GB: reduce-scatter + all-gather inside (2 x 7/8 S) and a ring
    all-reduce of the S/8 shard across the 2 domains (2 x 1/2 x S/8)."""
    cost = collective("all_reduce", "hierarchical", num_ranks=16, size=1e9, ranks_per_domain=8)
    assert cost.bytes_per_rank_in(SCALE_UP) == pytest.approx(2 * 7 / 8 * 1e9)
    assert cost.bytes_per_rank_in(SCALE_OUT) == pytest.approx(2 * 1 / 2 * 1e9 / 8)
    # NVLink 450 GB/s one way, 400G NIC = 50 GB/s: inside 1.75e9/450e9, outside 0.125e9/50e9.
    t = cost.time(Link(450e9), Link(50e9))
    assert t == pytest.approx(1.75e9 / 450e9 + 0.125e9 / 50e9, rel=1e-12)


@given(n=ranks, size=sizes)
def test_all_to_all_direct_per_rank(n: int, size: float) -> None:
    """A rank keeps 1/n of its send buffer and sends (n-1)/n S."""
    cost = collective("all_to_all", "direct", num_ranks=n, size=size)
    assert cost.bytes_per_rank == pytest.approx((n - 1) / n * size, rel=REL)


@given(n=ranks, size=sizes)
def test_broadcast_every_algorithm_delivers_n_minus_1_copies(n: int, size: float) -> None:
    """n-1 ranks each receive S: (n-1) S on the wire whatever the algorithm."""
    for algo in algorithms_for("broadcast"):
        cost = collective("broadcast", algo, num_ranks=n, size=size)
        assert cost.total_bytes == pytest.approx((n - 1) * size, rel=REL), algo


def test_send_recv() -> None:
    cost = collective("send_recv", "direct", num_ranks=2, size=1e6)
    assert cost.total_bytes == 1e6
    assert cost.time(Link(1e9, 1e-6)) == pytest.approx(1e-6 + 1e-3)


@pytest.mark.parametrize("op", [op for op in OPERATIONS if op != "send_recv"])
def test_one_rank_costs_nothing(op: str) -> None:
    for algo in algorithms_for(op):
        cost = collective(op, algo, num_ranks=1, size=1e9)
        assert cost.total_bytes == 0
        assert cost.steps == 0
        assert cost.time(Link(1e9, 1e-5)) == 0


def test_zero_size_costs_latency_only() -> None:
    cost = collective("all_reduce", "ring", num_ranks=8, size=0.0)
    assert cost.total_bytes == 0
    assert cost.time(Link(1e9, 2e-6)) == pytest.approx(14 * 2e-6)


# ----- alpha-beta time ---------------------------------------------------------------------


def test_ring_all_reduce_alpha_beta_by_hand() -> None:
    """n = 8, S = 1 GiB, B = 50 GB/s, alpha = 5 us: 14 alpha + 2 x 7/8 x S / B."""
    s = 2.0**30
    cost = collective("all_reduce", "ring", num_ranks=8, size=s)
    assert cost.time(Link(50e9, 5e-6)) == pytest.approx(14 * 5e-6 + 1.75 * s / 50e9, rel=1e-12)


@given(n=st.integers(2, 1024), size=sizes, bw=bandwidths, lat=st.floats(0, 1e-3))
def test_latency_adds_steps_times_alpha(n: int, size: float, bw: float, lat: float) -> None:
    for algo in algorithms_for("all_reduce"):
        if algo == "hierarchical":
            continue
        cost = collective("all_reduce", algo, num_ranks=n, size=size)
        beta = sum(p.max_bytes_per_rank for p in cost.phases) / bw
        assert cost.time(Link(bw, lat)) == pytest.approx(cost.steps * lat + beta, rel=1e-12)


def test_tree_has_logarithmic_steps() -> None:
    assert collective("all_reduce", "tree", num_ranks=1024, size=1).steps == 2 * 10
    assert collective("all_reduce", "halving_doubling", num_ranks=1024, size=1).steps == 20
    # non-power of two folds in the extra ranks: 2 more steps
    assert collective("all_reduce", "halving_doubling", num_ranks=12, size=1).steps == 2 * 3 + 2


# ----- NCCL bus bandwidth ------------------------------------------------------------------


@given(n=ranks)
def test_bus_factors_as_nccl_tests(n: int) -> None:
    """NCCL-tests PERFORMANCE.md."""
    assert bus_factor("all_reduce", n) == pytest.approx(2 * (n - 1) / n)
    for op in ("reduce_scatter", "all_gather", "all_to_all"):
        assert bus_factor(op, n) == pytest.approx((n - 1) / n)
    assert bus_factor("broadcast", n) == 1
    assert bus_factor("send_recv", n) == 1


@given(n=ranks, size=sizes, bw=bandwidths)
def test_ring_busbw_equals_link_bandwidth(n: int, size: float, bw: float) -> None:
    cost = collective("all_reduce", "ring", num_ranks=n, size=size)
    assert cost.busbw(Link(bw, 0.0)) == pytest.approx(bw, rel=REL)
    assert cost.algbw(Link(bw, 0.0)) == pytest.approx(bw * n / (2 * (n - 1)), rel=REL)


@given(nm=n_and_domain(), size=sizes, bw=bandwidths)
def test_busbw_never_exceeds_link_bandwidth(nm: tuple[int, int], size: float, bw: float) -> None:
    n, m = nm
    for (op, algo), _fn in ALGORITHMS.items():
        if (op == "send_recv" and n != 2) or algo in IN_NETWORK:
            continue
        cost = collective(op, algo, num_ranks=n, size=size, ranks_per_domain=m)
        assert cost.busbw(Link(bw, 0.0)) <= bw * (1 + REL), (op, algo)


def test_algbw_infinite_for_free_collective() -> None:
    cost = collective("all_reduce", "ring", num_ranks=1, size=1e9)
    assert math.isinf(cost.algbw(Link(1e9)))


# ----- errors ----------------------------------------------------------------------------


def test_unknown_operation() -> None:
    with pytest.raises(ConfigError, match=r"unknown collective 'all_sum'"):
        collective("all_sum", "ring", num_ranks=4, size=1)
    with pytest.raises(ConfigError, match=r"unknown collective"):
        bus_factor("scan", 4)


def test_unknown_algorithm_lists_known() -> None:
    with pytest.raises(ConfigError, match=r"algorithm 'butterfly' is not available.*ring"):
        collective("all_reduce", "butterfly", num_ranks=4, size=1)
    with pytest.raises(ConfigError, match=r"not available for all_to_all"):
        collective("all_to_all", "ring", num_ranks=4, size=1)


@given(n=st.integers(2, 1024), m=st.integers(2, 1024))
def test_hierarchical_needs_domain_dividing_n(n: int, m: int) -> None:
    assume(n % m)
    with pytest.raises(ConfigError, match=rf"ranks_per_domain\(={m}\) must divide"):
        collective("all_reduce", "hierarchical", num_ranks=n, size=1, ranks_per_domain=m)


def test_hierarchical_bad_domain_message() -> None:
    with pytest.raises(ConfigError, match=r"ranks_per_domain\(=3\) must divide num_ranks\(=8\)"):
        collective("all_gather", "hierarchical", num_ranks=8, size=1, ranks_per_domain=3)


@pytest.mark.parametrize(
    ("kw", "pattern"),
    [
        ({"num_ranks": 0, "size": 1}, r"num_ranks\(=0\) must be an integer in 1\.\."),
        ({"num_ranks": 2.0, "size": 1}, r"num_ranks"),
        ({"num_ranks": 4, "size": -1}, r"size\(=-1\) must be >= 0"),
        ({"num_ranks": 4, "size": math.nan}, r"size"),
    ],
)
def test_bad_arguments(kw: dict[str, object], pattern: str) -> None:
    with pytest.raises(ConfigError, match=pattern):
        collective("all_reduce", "ring", **kw)  # type: ignore[arg-type]


def test_send_recv_needs_two_ranks() -> None:
    with pytest.raises(ConfigError, match=r"send_recv is between 2 ranks, not 4"):
        collective("send_recv", "direct", num_ranks=4, size=1)


def test_link_validation() -> None:
    with pytest.raises(ConfigError, match=r"bandwidth\(=0\) must be > 0"):
        Link(0)
    with pytest.raises(ConfigError, match=r"latency\(=-1e-06\) must be >= 0"):
        Link(1e9, -1e-6)
