"""Traffic rows: one line per (parallel dimension, phase, collective, network scope).

``collective_rows`` is the single place that turns "this group does this collective this
many times" into wire bytes on the scale-up and scale-out networks, using the collectives
module. Training and inference both call it.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

from aifabric.errors import ConfigError
from aifabric.traffic.collectives import SCALE_OUT, SCALE_UP, collective

ALGORITHM_CHOICES = ("auto", "ring", "tree", "halving_doubling", "direct")


@dataclass(frozen=True, slots=True)
class TrafficRow:
    """Wire traffic of one collective pattern, per training iteration or per request.

    calls: collective calls per group; buffer_bytes: size of one call (NCCL convention);
    num_groups: groups doing the same; total_bytes: bytes sent over all GPUs of the job;
    bytes_per_gpu: total_bytes / job GPUs; scope: scale-up, scale-out (or mixed for the
    seed accounting, which does not split a group).
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

    def to_dict(self) -> dict[str, object]:
        return asdict(self)


def choose_algorithm(operation: str, requested: str, split: bool) -> str:
    """The algorithm to account with: hierarchical when a group spans domains under auto."""
    if requested not in ALGORITHM_CHOICES:
        raise ConfigError(
            f"algorithm(={requested!r}) must be one of {', '.join(ALGORITHM_CHOICES)}"
        )
    if operation == "send_recv":
        return "direct"
    if requested == "auto":
        if split:
            return "hierarchical"
        return "direct" if operation == "all_to_all" else "ring"
    if operation == "all_to_all":
        return "direct"
    if requested == "tree" and operation != "all_reduce":
        return "ring"
    return requested


def inside_fraction(algorithm: str, n: int, m: int) -> float:
    """Share of a flat algorithm's bytes that stay inside scale-up domains of m members.

    Ranks are numbered so that domain members are consecutive. A ring then crosses a domain
    boundary on n/m of its n edges: (m-1)/m stays inside. Direct (all pairs) keeps the m-1
    of n-1 peers inside. Halving-doubling, pairing the nearest partners for the largest
    chunks, keeps s(1 - 1/m) of s(1 - 1/n) inside.
    """
    if m >= n:
        return 1.0
    if algorithm == "direct":
        return (m - 1) / (n - 1)
    if algorithm == "halving_doubling":
        return (1 - 1 / m) / (1 - 1 / n)
    return (m - 1) / m


def collective_rows(
    *,
    dimension: str,
    phase: str,
    operation: str,
    group_size: int,
    num_groups: int,
    calls: float,
    size: float,
    ranks_per_domain: int,
    world_size: int,
    algorithm: str = "auto",
) -> list[TrafficRow]:
    """Rows for ``calls`` calls of ``operation`` by each of ``num_groups`` groups.

    A group whose members all sit in one scale-up domain is one scale-up row; one with a
    single member per domain is one scale-out row; one with several members per domain is
    split (hierarchical under ``auto``) into a scale-up and a scale-out row.
    """
    if group_size <= 1 or calls <= 0:
        return []
    m = max(1, min(ranks_per_domain, group_size))
    split = 1 < m < group_size
    algo = choose_algorithm(operation, algorithm, split)
    if algo == "hierarchical" and group_size % m:
        algo = "direct" if operation == "all_to_all" else "ring"
    if algo == "hierarchical":
        cost = collective(operation, algo, num_ranks=group_size, size=size, ranks_per_domain=m)
        scopes = [SCALE_UP, SCALE_OUT]
    else:
        scope = SCALE_UP if m == group_size else SCALE_OUT
        cost = collective(operation, algo, num_ranks=group_size, size=size, scope=scope)
        scopes = [scope] if not split else [SCALE_UP, SCALE_OUT]
    rows = []
    for scope in scopes:
        if algo == "hierarchical" or not split:
            per_rank = cost.bytes_per_rank_in(scope)
        else:
            inside = inside_fraction(algo, group_size, m)
            per_rank = cost.bytes_per_rank * (inside if scope == SCALE_UP else 1.0 - inside)
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
                scope,
            )
        )
    return rows


def p2p_rows(
    *,
    dimension: str,
    phase: str,
    chain_length: int,
    num_chains: int,
    calls_per_hop: float,
    size: float,
    ranks_per_domain: int,
    world_size: int,
) -> list[TrafficRow]:
    """Rows for point-to-point sends along chains (pipeline stages) of ``chain_length`` ranks.

    Each of the chain_length - 1 hops carries ``calls_per_hop`` messages of ``size`` bytes.
    With m consecutive stages per domain, (chain_length / m) x (m - 1) hops stay inside.
    """
    hops = chain_length - 1
    if hops <= 0 or calls_per_hop <= 0:
        return []
    m = max(1, min(ranks_per_domain, chain_length))
    inside_hops = (chain_length // m) * (m - 1)
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
                num_chains * count,
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
