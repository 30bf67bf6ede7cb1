"""Traffic rows: one line per (parallel dimension, phase, collective, network scope).

``collective_rows`` is the single place that turns "this group does this collective this
many times" into wire bytes on the scale-up and scale-out networks, using the collectives
module. Training and inference both call it. Under ``auto`` the algorithm of each row is
the one NCCL's tuning model would run (traffic.nccl_tuning, rule ``nccl-tuning``); a named
algorithm is used wherever the collectives registry has it for the operation.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

from aifabric.errors import ConfigError
from aifabric.traffic import nccl_tuning
from aifabric.traffic.collectives import ALGORITHMS, DOMAIN_AWARE, SCALE_OUT, SCALE_UP, collective

if TYPE_CHECKING:
    from aifabric.spec.gpu import GpuSpec

ALGORITHM_CHOICES = (
    "auto", "ring", "tree", "halving_doubling", "direct", "hierarchical", "nvls", "sharp",
)  # fmt: skip


@dataclass(frozen=True, slots=True)
class TrafficRow:
    """Wire traffic of one collective pattern, per training iteration or per request.

    calls: collective calls per group; buffer_bytes: size of one call (NCCL convention);
    num_groups: groups doing the same; total_bytes: bytes sent over all GPUs of the job;
    bytes_per_gpu: total_bytes / job GPUs; scope: scale-up, scale-out (or mixed for the
    seed accounting, which does not split a group); note: what the row is when dimension,
    phase and collective do not say it (e.g. the SP weight-gradient re-gather); group: the
    ParallelPlan group whose members carry the row when the dimension label does not name
    it (expert-TP rows are labeled ep but run over the etp group), else "".
    For send_recv rows a "group" is one stage boundary (a pair of adjacent ranks) and calls
    are messages per boundary: one per micro-batch and direction (times virtual stages).
    """

    dimension: str
    phase: str
    collective: str
    algorithm: str
    group_size: int
    num_groups: int
    calls: float
    buffer_bytes: float
    total_bytes: float
    bytes_per_gpu: float
    scope: str
    note: str = ""
    group: str = ""

    def to_dict(self) -> dict[str, object]:
        """Fields as JSON values; ``calls`` is an integer when it is a whole count (a stage
        average, e.g. MoE layers over uneven stages, may be fractional)."""
        out = asdict(self)
        if float(self.calls).is_integer():
            out["calls"] = int(self.calls)
        return out


def check_algorithm(requested: str) -> None:
    """Raise ConfigError unless ``requested`` is one of ALGORITHM_CHOICES."""
    if requested not in ALGORITHM_CHOICES:
        raise ConfigError(
            f"algorithm(={requested!r}) must be one of {', '.join(ALGORITHM_CHOICES)}"
        )


def algorithm_rule(requested: str) -> str:
    """How the rows' algorithms were chosen: ``nccl_tuning`` under auto, else ``fixed``."""
    check_algorithm(requested)
    return nccl_tuning.RULE if requested == "auto" else "fixed"


def choose_algorithm(
    operation: str,
    requested: str,
    *,
    num_ranks: int,
    num_domains: int,
    size: float,
    in_network_reduction: bool = False,
    gpu: GpuSpec | None = None,
) -> str:
    """The algorithm to account a call with.

    ``auto``: what NCCL would run (nccl_tuning.choose: ring for all-gather/reduce-scatter,
    ring or tree for all-reduce by predicted time, NVLS / SHARP all-reduce only with
    ``in_network_reduction``; direct for all-to-all and send/recv). A named algorithm is
    used where the registry has it for the operation, else the operation's ring (direct for
    all-to-all and send/recv), as NCCL falls back when NCCL_ALGO names one it lacks.

    Args:
        num_domains: scale-up domains the group occupies; size: bytes of one call.
        gpu: NVLink and NIC rates for the tuning model (None: H100 with a 400G NIC).

    Raises:
        ConfigError: ``requested`` is not one of ALGORITHM_CHOICES.
    """
    check_algorithm(requested)
    if requested == "auto":
        return nccl_tuning.choose(
            operation, num_ranks=num_ranks, num_nodes=num_domains, size=size,
            in_network_reduction=in_network_reduction, system=nccl_tuning.NcclSystem.of_gpu(gpu),
        )  # fmt: skip
    if (operation, requested) in ALGORITHMS:
        return requested
    return "direct" if operation in ("all_to_all", "send_recv") else "ring"


class DomainLayout:
    """Which scale-up domain each member of each group sits in.

    ``domains`` is an int array (num_groups, group_size): row g lists the domain id of group
    g's members in ring order. All groups have the same size; they may split differently
    (e.g. 16 DP members over 72-GPU racks: 9 + 7 in some groups).
    """

    def __init__(self, domains: Any) -> None:
        import numpy as np

        self.domains = np.asarray(domains, dtype=np.int64)
        if self.domains.ndim != 2 or self.domains.shape[1] < 1:
            raise ValueError("domains must be a (num_groups, group_size) array")

    @classmethod
    def uniform(cls, group_size: int, ranks_per_domain: int) -> DomainLayout:
        """One group whose members fill domains of m consecutive members each."""
        import numpy as np

        m = max(1, min(ranks_per_domain, group_size))
        return cls((np.arange(group_size) // m)[None, :])

    @classmethod
    def of_ranks(cls, ranks: Any, domain_size: int) -> DomainLayout:
        """From global ranks (num_groups, n) and domains of domain_size consecutive ranks."""
        return cls(ranks // domain_size)

    @property
    def group_size(self) -> int:
        return int(self.domains.shape[1])

    def _counts(self) -> tuple[Any, Any]:
        """(members per occupied domain, the group each count belongs to)."""
        import numpy as np

        d = self.domains
        span = int(d.max()) + 1
        keys = np.sort(d + np.arange(d.shape[0])[:, None] * span, axis=1).ravel()
        uniq, counts = np.unique(keys, return_counts=True)
        return counts, uniq // span

    def uniform_members(self) -> int | None:
        """m when every occupied domain of every group holds exactly m members, else None."""
        counts, _ = self._counts()
        m = int(counts[0])
        return m if bool((counts == m).all()) else None

    def domains_per_group(self) -> Any:
        """Number of distinct domains each group occupies, an int array (num_groups,)."""
        _, group = self._counts()
        import numpy as np

        return np.bincount(group, minlength=self.domains.shape[0])

    def all_inside(self) -> bool:
        return bool((self.domains == self.domains[:, :1]).all())

    def all_apart(self) -> bool:
        counts, _ = self._counts()
        return bool((counts == 1).all())

    def inside_fraction(self, algorithm: str) -> float:
        """Mean share of a flat algorithm's bytes that stay inside domains.

        ring (and tree, approximated by its ring-ordered neighbors): a ring crosses a
        boundary on each edge whose ends sit in different domains. direct: each rank sends
        equal chunks to the n-1 others, inside for sum c(c-1) of the n(n-1) ordered pairs.
        halving_doubling (n a power of two, nearest partners first): step j sends s/2^j to
        rank i XOR 2^(j-1).
        """
        import numpy as np

        d, n = self.domains, self.group_size
        if n == 1:
            return 1.0
        if algorithm == "direct":
            counts, _ = self._counts()
            return float((counts * (counts - 1)).sum() / (d.shape[0] * n * (n - 1)))
        if algorithm == "halving_doubling" and n & (n - 1) == 0:
            idx = np.arange(n)
            inside = total = 0.0
            for j in range(1, n.bit_length()):
                chunk = 0.5**j
                inside += chunk * float((d == d[:, idx ^ (1 << (j - 1))]).mean())
                total += chunk
            return inside / total
        return float((d == np.roll(d, -1, axis=1)).mean())

    def chain_inside_hops(self) -> float:
        """Mean number of consecutive-member hops inside a domain, per group (pipelines)."""
        d = self.domains
        return float((d[:, 1:] == d[:, :-1]).sum(axis=1).mean())


def collective_rows(
    *,
    dimension: str,
    phase: str,
    operation: str,
    group_size: int,
    num_groups: int,
    calls: float,
    size: float,
    world_size: int,
    ranks_per_domain: int = 1,
    layout: DomainLayout | None = None,
    algorithm: str = "auto",
    in_network_reduction: bool = False,
    gpu: GpuSpec | None = None,
) -> list[TrafficRow]:
    """Rows for ``calls`` calls of ``operation`` by each of ``num_groups`` groups.

    ``layout`` says where the members sit (default: ``ranks_per_domain`` consecutive members
    per domain). The algorithm is ``choose_algorithm``'s for the group's size, the domains it
    occupies (the most any group does) and ``size``; ``in_network_reduction`` and ``gpu``
    feed that choice. A group inside one domain is one scale-up row, a group with one member
    per domain one scale-out row; a split group's bytes go where the algorithm sends them:
    hierarchical (needs the same count in every domain, else ring), tree, nvls and sharp by
    domain count (collectives module), the other flat algorithms by the share of their
    neighbor pairs inside domains.
    """
    if group_size <= 1 or calls <= 0:
        return []
    layout = layout or DomainLayout.uniform(group_size, ranks_per_domain)
    inside_all, apart_all = layout.all_inside(), layout.all_apart()
    split = not (inside_all or apart_all)
    domains = layout.domains_per_group()
    algo = choose_algorithm(
        operation, algorithm, num_ranks=group_size, num_domains=int(domains.max()), size=size,
        in_network_reduction=in_network_reduction, gpu=gpu,
    )  # fmt: skip
    m = layout.uniform_members() if split else None
    if algo == "hierarchical" and (m is None or group_size % m):
        algo = "direct" if operation == "all_to_all" else "ring"
    scope = SCALE_UP if inside_all else SCALE_OUT
    if algo == "hierarchical":
        assert m is not None
        cost = collective(operation, algo, num_ranks=group_size, size=size, ranks_per_domain=m)
        shares = {s: cost.bytes_per_rank_in(s) for s in (SCALE_UP, SCALE_OUT)}
    elif algo in DOMAIN_AWARE:
        shares = dict.fromkeys((SCALE_UP, SCALE_OUT), 0.0)
        counts, weights = _distinct(domains)
        for k, weight in zip(counts, weights, strict=True):
            where = SCALE_UP if k == 1 else SCALE_OUT  # a flat case's network
            cost = collective(
                operation, algo, num_ranks=group_size, size=size, num_domains=k, scope=where
            )
            for s in shares:
                shares[s] += weight * cost.bytes_per_rank_in(s)
    else:
        cost = collective(operation, algo, num_ranks=group_size, size=size, scope=scope)
        inside = 1.0 if inside_all else (0.0 if apart_all else layout.inside_fraction(algo))
        shares = {
            SCALE_UP: cost.bytes_per_rank * inside,
            SCALE_OUT: cost.bytes_per_rank * (1.0 - inside),
        }
    rows = []
    for where, per_rank in shares.items():
        if per_rank <= 0:
            continue
        total = per_rank * group_size * num_groups * calls
        rows.append(
            TrafficRow(
                dimension,
                phase,
                operation,
                algo,
                group_size,
                num_groups,
                calls,
                size,
                total,
                total / world_size,
                where,
            )
        )
    return rows


def _distinct(values: Any) -> tuple[list[int], list[float]]:
    """Distinct values of an int array and the share of entries holding each."""
    import numpy as np

    uniq, counts = np.unique(values, return_counts=True)
    return [int(u) for u in uniq], [float(c) / len(values) for c in counts]


def p2p_rows(
    *,
    dimension: str,
    phase: str,
    chain_length: int,
    num_chains: int,
    calls_per_hop: float,
    size: float,
    world_size: int,
    ranks_per_domain: int = 1,
    layout: DomainLayout | None = None,
) -> list[TrafficRow]:
    """Rows for point-to-point sends along chains (pipeline stages) of ``chain_length`` ranks.

    Each of the chain_length - 1 hops carries ``calls_per_hop`` messages of ``size`` bytes;
    a hop between members in the same domain stays on scale-up. Rows count one group per
    hop (stage boundary) of that scope over all chains, with ``calls_per_hop`` calls each.
    """
    hops = chain_length - 1
    if hops <= 0 or calls_per_hop <= 0:
        return []
    layout = layout or DomainLayout.uniform(chain_length, ranks_per_domain)
    inside_hops = layout.chain_inside_hops()
    rows = []
    for scope, count in ((SCALE_UP, inside_hops), (SCALE_OUT, hops - inside_hops)):
        if count <= 0:
            continue
        total = count * calls_per_hop * size * num_chains
        rows.append(
            TrafficRow(
                dimension,
                phase,
                "send_recv",
                "direct",
                2,
                round(count * num_chains),
                calls_per_hop,
                size,
                total,
                total / world_size,
                scope,
            )
        )
    return rows


def sum_rows(rows: list[TrafficRow], scope: str | None = None) -> float:
    """Total bytes of rows, optionally of one scope."""
    return sum(r.total_bytes for r in rows if scope is None or r.scope == scope)
