"""Collective communication: the one home for what each collective puts on the wire.

For every (operation, algorithm) pair this module gives the bytes each rank sends, the
number of sequential steps, and an alpha-beta time (steps x latency + bytes / bandwidth) on
given links. Operations and algorithms are plug-ins in ``ALGORITHMS`` (``@register``).

Buffer-size convention (NCCL-tests' "size", PERFORMANCE.md): ``size`` is the per-rank
buffer of all-reduce and broadcast, the *full* (gathered) buffer of all-gather and
reduce-scatter, the whole send buffer of all-to-all (including the chunk a rank keeps), and
the message of send/recv.

Algorithms:
- ``ring``: bandwidth-optimal ring (Patarasuk & Yuan 2009); all-reduce = reduce-scatter +
  all-gather, 2(n-1) steps, 2(n-1)/n x size sent per rank.
- ``tree``: NCCL's double binary tree (Sanders et al. 2009; NCCL 2.4): each half of the
  buffer reduced up one tree and broadcast down the other; 2 log2(n) latency steps, every
  rank interior in one tree, so a rank sends up to 2 x size.
- ``halving_doubling``: Rabenseifner's recursive halving reduce-scatter + recursive
  doubling all-gather (Thakur et al. 2005); non-powers of two fold the extra ranks in
  first (2 more steps of the whole buffer).
- ``direct``: every rank sends to every other at once. For all-reduce this is the seeds'
  accounting ("each GPU sends its whole buffer to the G-1 others", the one-shot all-reduce
  used for small messages); for all-gather, reduce-scatter and all-to-all it is the
  pairwise exchange of chunks.
- ``hierarchical``: inside the scale-up domain first, then across domains on the
  scale-out network, then inside again (Jia et al. 2018; NCCL's NVLS/tree over rails).
  Needs ``ranks_per_domain`` m dividing n.
- ``tree`` over k > 1 domains of m = n/k ranks (NCCL's tree, src/graph/tuning.cc latency
  2((n/k - 1) x intra + log2(k) x inter)): a chain inside each domain, a double binary tree
  across them; each chain edge and each tree edge carries S/2 up and S/2 down per tree, so
  2(n-k) S on the scale-up and 2(k-1) S on the scale-out in all (the flat ring's 2(n-1) S).
- ``nvls`` (all-reduce; NVLink SHARP, NCCL's NVLS algorithm): the NVLink switch reduces.
  Each GPU's buffer is read once by the switch (S sent), its reduced shard multicast once
  (S/m): (m+1)/m x S per rank on the scale-up instead of 2(m-1)/m x S. Across k > 1
  domains the shards are reduced by SHARP switches (NCCL: NVLS needs CollNet on more than
  one node): each domain sends its partial sum up once, S per domain, S/m per rank.
- ``sharp`` (all-reduce; NCCL's CollNet-Direct on InfiniBand SHARP): reduce-scatter inside
  each domain by direct sends ((m-1)/m S), each rank's shard reduced in the network (S/m
  per rank, S per domain), all-gather inside ((m-1)/m S).

In-network algorithms (``IN_NETWORK``) count what the GPUs send; the switches add and copy,
so the ring's lower bound 2(n-1)/n x S per rank does not bind them.

``ranks_per_domain`` (m, dividing n) or ``num_domains`` (k) places the group for the
domain-aware algorithms (``DOMAIN_AWARE``); k = n (the default) or k = 1 is flat.

Bus bandwidth: busbw = algbw x factor with algbw = size / time and factor from NCCL-tests
PERFORMANCE.md: all-reduce 2(n-1)/n; reduce-scatter, all-gather, all-to-all (n-1)/n;
broadcast, send/recv 1.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

from aifabric.errors import ConfigError

OPERATIONS = ("all_reduce", "reduce_scatter", "all_gather", "all_to_all", "broadcast", "send_recv")
SCALE_UP, SCALE_OUT = "scale_up", "scale_out"
MAX_RANKS = 10**9  # ranks in one collective group: far beyond any machine
DOMAIN_AWARE = frozenset({"hierarchical", "tree", "nvls", "sharp"})
IN_NETWORK = frozenset({"nvls", "sharp"})


@dataclass(frozen=True, slots=True)
class Link:
    """A per-rank link: bandwidth in bytes/s per direction and latency (alpha) in s."""

    bandwidth: float
    latency: float = 0.0

    def __post_init__(self) -> None:
        if not self.bandwidth > 0:
            raise ConfigError(f"link bandwidth(={self.bandwidth}) must be > 0 bytes/s")
        if self.latency < 0:
            raise ConfigError(f"link latency(={self.latency}) must be >= 0 s")


@dataclass(frozen=True, slots=True)
class Phase:
    """A stretch of a collective on one network scope.

    bytes_per_rank is the mean a rank sends in the phase (sum over ranks / n, so totals
    conserve bytes: sent = received); max_bytes_per_rank is the busiest rank's, which sets
    the bandwidth term of the time.
    """

    scope: str
    steps: int
    bytes_per_rank: float
    max_bytes_per_rank: float


@dataclass(frozen=True, slots=True)
class CollectiveCost:
    """What one call of a collective costs on the wire."""

    operation: str
    algorithm: str
    num_ranks: int
    size: float  # bytes, NCCL-tests convention
    phases: tuple[Phase, ...]

    @property
    def steps(self) -> int:
        return sum(p.steps for p in self.phases)

    @property
    def bytes_per_rank(self) -> float:
        """Mean bytes one rank sends (= receives) in one call."""
        return sum(p.bytes_per_rank for p in self.phases)

    @property
    def total_bytes(self) -> float:
        """Bytes on the wire summed over all ranks of the group."""
        return self.bytes_per_rank * self.num_ranks

    def bytes_per_rank_in(self, scope: str) -> float:
        """Mean bytes a rank sends on one scope (scale-up or scale-out)."""
        return sum(p.bytes_per_rank for p in self.phases if p.scope == scope)

    def time(self, link: Link, scaleout: Link | None = None) -> float:
        """Alpha-beta time in s: each phase costs steps x latency + max bytes / bandwidth.

        ``link`` serves phases on the scale-up scope (and every phase of a flat algorithm);
        ``scaleout`` (default: ``link``) the scale-out phases of a hierarchical one.
        """
        total = 0.0
        for phase in self.phases:
            chosen = scaleout if (phase.scope == SCALE_OUT and scaleout is not None) else link
            total += phase.steps * chosen.latency + phase.max_bytes_per_rank / chosen.bandwidth
        return total

    def algbw(self, link: Link, scaleout: Link | None = None) -> float:
        """NCCL algorithm bandwidth: size / time, bytes/s."""
        t = self.time(link, scaleout)
        return math.inf if t == 0 else self.size / t

    def busbw(self, link: Link, scaleout: Link | None = None) -> float:
        """NCCL bus bandwidth: algbw x bus_factor(operation, n), bytes/s."""
        return self.algbw(link, scaleout) * bus_factor(self.operation, self.num_ranks)


def bus_factor(operation: str, num_ranks: int) -> float:
    """NCCL-tests busbw / algbw factor for an operation on n ranks (PERFORMANCE.md)."""
    n = num_ranks
    factors = {
        "all_reduce": 2.0 * (n - 1) / n,
        "reduce_scatter": (n - 1) / n,
        "all_gather": (n - 1) / n,
        "all_to_all": (n - 1) / n,
        "broadcast": 1.0,
        "send_recv": 1.0,
    }
    try:
        return factors[operation]
    except KeyError:
        raise ConfigError(
            f"unknown collective {operation!r}; use one of {', '.join(OPERATIONS)}"
        ) from None


# (n ranks, size, k occupied domains, scope of a flat algorithm) -> phases
AlgorithmFn = Callable[[int, float, int, str], tuple[Phase, ...]]
ALGORITHMS: dict[tuple[str, str], AlgorithmFn] = {}


def register(operation: str, algorithm: str) -> Callable[[AlgorithmFn], AlgorithmFn]:
    """Decorator adding an algorithm for an operation to ``ALGORITHMS``."""

    def wrap(fn: AlgorithmFn) -> AlgorithmFn:
        ALGORITHMS[(operation, algorithm)] = fn
        return fn

    return wrap


def algorithms_for(operation: str) -> list[str]:
    """Algorithm names registered for an operation."""
    return [a for (op, a) in ALGORITHMS if op == operation]


def collective(
    operation: str,
    algorithm: str,
    *,
    num_ranks: int,
    size: float,
    ranks_per_domain: int = 1,
    num_domains: int | None = None,
    scope: str = SCALE_OUT,
) -> CollectiveCost:
    """Cost of one call of ``operation`` with ``algorithm`` over ``num_ranks`` ranks.

    Args:
        size: bytes, NCCL-tests convention (see module docstring).
        ranks_per_domain: group members per scale-up domain (domain-aware algorithms).
        num_domains: scale-up domains the group occupies, instead of ranks_per_domain (the
            mean m = n / k then need not be whole, except for hierarchical).
        scope: the network a flat algorithm runs on (scale-up or scale-out).

    Raises:
        ConfigError: unknown operation/algorithm, n < 1, size < 0, bad domain split.
    """
    if not isinstance(num_ranks, int) or not 1 <= num_ranks <= MAX_RANKS:
        shown = num_ranks if not isinstance(num_ranks, int) or num_ranks < 10**18 else "huge"
        raise ConfigError(f"num_ranks(={shown!r}) must be an integer in 1..{MAX_RANKS:.0e}")
    if not size >= 0:
        raise ConfigError(f"size(={size!r}) must be >= 0 bytes")
    bus_factor(operation, num_ranks)
    fn = ALGORITHMS.get((operation, algorithm))
    if fn is None:
        known = ", ".join(algorithms_for(operation))
        raise ConfigError(
            f"algorithm {algorithm!r} is not available for {operation}; use one of: {known}"
        )
    if operation == "send_recv" and num_ranks != 2:
        raise ConfigError(f"send_recv is between 2 ranks, not {num_ranks}")
    if num_ranks == 1:
        return CollectiveCost(operation, algorithm, 1, size, ())
    k = num_ranks
    if algorithm in DOMAIN_AWARE:
        k = _domains(num_ranks, ranks_per_domain, num_domains, algorithm == "hierarchical")
    return CollectiveCost(operation, algorithm, num_ranks, size, fn(num_ranks, size, k, scope))


def _domains(n: int, ranks_per_domain: int, num_domains: int | None, whole: bool) -> int:
    """Occupied domains k from m or k; ``whole``: m = n / k must be an integer."""
    if num_domains is None:
        if ranks_per_domain < 1 or n % ranks_per_domain:
            raise ConfigError(f"ranks_per_domain(={ranks_per_domain}) must divide num_ranks(={n})")
        return n // ranks_per_domain
    if not 1 <= num_domains <= n or (whole and n % num_domains):
        rule = "divide" if whole else "be in 1..num_ranks"
        raise ConfigError(f"num_domains(={num_domains}) must {rule} (num_ranks={n})")
    return num_domains


def _even(scope: str, steps: int, per_rank: float) -> Phase:
    return Phase(scope, steps, per_rank, per_rank)


def _log2_ceil(n: int) -> int:
    return max(1, math.ceil(math.log2(n)))


# ----- all-reduce -------------------------------------------------------------------------
@register("all_reduce", "ring")
def _ar_ring(n: int, s: float, k: int, scope: str) -> tuple[Phase, ...]:
    return (_even(scope, 2 * (n - 1), 2.0 * (n - 1) / n * s),)


@register("all_reduce", "tree")
def _ar_tree(n: int, s: float, k: int, scope: str) -> tuple[Phase, ...]:
    # Two trees, each edge carries s/2 up (reduce) and s/2 down (broadcast): 2(n-1)s in all.
    if k in (1, n):
        busiest = s if n == 2 else 2.0 * s
        return (Phase(scope, 2 * _log2_ceil(n), 2.0 * (n - 1) / n * s, busiest),)
    # Chains of m = n/k inside the domains (2(n-k)s), a tree over the k domains (2(k-1)s)
    # whose edges NCCL's channels spread over the m ranks of a domain.
    m = n / k
    chain_busiest = s if m <= 2 else 2.0 * s
    tree_busiest = (s if k == 2 else 2.0 * s) / m
    return (
        Phase(SCALE_UP, 2 * (math.ceil(m) - 1), 2.0 * (n - k) / n * s, chain_busiest),
        Phase(SCALE_OUT, 2 * _log2_ceil(k), 2.0 * (k - 1) / n * s, tree_busiest),
    )


@register("all_reduce", "nvls")
def _ar_nvls(n: int, s: float, k: int, scope: str) -> tuple[Phase, ...]:
    phases = []
    if k < n:  # the switch reads every buffer once: s per rank
        phases.append(_even(SCALE_UP, 1, s))
    if k > 1:  # SHARP: each domain's partial sum (s over its n/k ranks) up once
        phases.append(_even(SCALE_OUT, 2, k / n * s))
    if k < n:  # each rank multicasts its reduced shard s/m once
        phases.append(_even(SCALE_UP, 1, k / n * s))
    return tuple(phases)


@register("all_reduce", "sharp")
def _ar_sharp(n: int, s: float, k: int, scope: str) -> tuple[Phase, ...]:
    phases = []
    if k < n:  # direct reduce-scatter to the domain's network heads: (m-1)/m s
        phases.append(_even(SCALE_UP, 1, (n - k) / n * s))
    if k > 1:
        phases.append(_even(SCALE_OUT, 2, k / n * s))
    if k < n:  # all-gather of the reduced shards inside
        phases.append(_even(SCALE_UP, 1, (n - k) / n * s))
    return tuple(phases)


@register("all_reduce", "halving_doubling")
def _ar_hd(n: int, s: float, k: int, scope: str) -> tuple[Phase, ...]:
    p = 1 << (n.bit_length() - 1)
    extra = n - p
    core_total = 2.0 * (p - 1) * s  # p ranks x 2(p-1)/p x s
    fold_total = 2.0 * extra * s  # extra ranks send s in, partners send s back
    steps = 2 * int(math.log2(p)) + (2 if extra else 0)
    busiest = 2.0 * (p - 1) / p * s + (s if extra else 0.0)
    return (Phase(scope, steps, (core_total + fold_total) / n, busiest),)


@register("all_reduce", "direct")
def _ar_direct(n: int, s: float, k: int, scope: str) -> tuple[Phase, ...]:
    return (_even(scope, 1, (n - 1) * s),)


@register("all_reduce", "hierarchical")
def _ar_hier(n: int, s: float, k: int, scope: str) -> tuple[Phase, ...]:
    m = n // k
    phases = []
    if m > 1:
        phases.append(_even(SCALE_UP, m - 1, (m - 1) / m * s))  # reduce-scatter inside
    if k > 1:
        phases.append(_even(SCALE_OUT, 2 * (k - 1), 2.0 * (k - 1) / k * s / m))
    if m > 1:
        phases.append(_even(SCALE_UP, m - 1, (m - 1) / m * s))  # all-gather inside
    return tuple(phases)


# ----- reduce-scatter and all-gather -----------------------------------------------------
def _chunked(n: int, s: float, steps: int, scope: str) -> tuple[Phase, ...]:
    return (_even(scope, steps, (n - 1) / n * s),)


def _hier_chunked(n: int, s: float, k: int) -> tuple[Phase, ...]:
    m = n // k
    phases = []
    if m > 1:
        phases.append(_even(SCALE_UP, m - 1, (m - 1) / m * s))
    if k > 1:
        phases.append(_even(SCALE_OUT, k - 1, (k - 1) / k * s / m))
    return tuple(phases)


for _op in ("reduce_scatter", "all_gather"):
    register(_op, "ring")(lambda n, s, k, scope: _chunked(n, s, n - 1, scope))
    register(_op, "halving_doubling")(lambda n, s, k, scope: _chunked(n, s, _log2_ceil(n), scope))
    register(_op, "direct")(lambda n, s, k, scope: _chunked(n, s, 1, scope))
    register(_op, "hierarchical")(lambda n, s, k, scope: _hier_chunked(n, s, k))


# ----- all-to-all ---------------------------------------------------------------------------
@register("all_to_all", "direct")
def _a2a_direct(n: int, s: float, k: int, scope: str) -> tuple[Phase, ...]:
    return (_even(scope, n - 1, (n - 1) / n * s),)


@register("all_to_all", "hierarchical")
def _a2a_hier(n: int, s: float, k: int, scope: str) -> tuple[Phase, ...]:
    # Chunks for the m-1 peers in the domain stay on scale-up; the n-m others cross out.
    m = n // k
    phases = []
    if m > 1:
        phases.append(_even(SCALE_UP, m - 1, (m - 1) / n * s))
    if n > m:
        phases.append(_even(SCALE_OUT, n // m - 1, (n - m) / n * s))
    return tuple(phases)


# ----- broadcast and point-to-point --------------------------------------------------------
@register("broadcast", "ring")
def _bc_ring(n: int, s: float, k: int, scope: str) -> tuple[Phase, ...]:
    # Pipelined chain: every rank but the last forwards the whole buffer once.
    return (Phase(scope, n - 1, (n - 1) / n * s, s),)


@register("broadcast", "tree")
def _bc_tree(n: int, s: float, k: int, scope: str) -> tuple[Phase, ...]:
    return (Phase(scope, _log2_ceil(n), (n - 1) / n * s, (2.0 if n > 2 else 1.0) * s),)


@register("broadcast", "direct")
def _bc_direct(n: int, s: float, k: int, scope: str) -> tuple[Phase, ...]:
    return (Phase(scope, 1, (n - 1) / n * s, (n - 1) * s),)


@register("send_recv", "direct")
def _p2p(n: int, s: float, k: int, scope: str) -> tuple[Phase, ...]:
    # One sender, one receiver: the pair's mean is s / 2 per rank, the sender's is s.
    return (Phase(scope, 1, s / 2.0, s),)


def lower_bound_time(operation: str, num_ranks: int, size: float, bandwidth: float) -> float:
    """Bandwidth lower bound in s for any algorithm: bus_factor x size / per-rank bandwidth.

    For all-reduce this is the classic 2(n-1)/n x S / B (Patarasuk & Yuan 2009).
    """
    return bus_factor(operation, num_ranks) * size / bandwidth
