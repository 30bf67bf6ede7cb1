"""Where a token's MoE dispatch goes: expected copies per token under top-k routing.

An expert-parallel (EP) group of ``ep`` ranks spans N scale-up domains ("nodes") of m ranks
each; its E routed experts sit e = E / ep per rank in contiguous blocks (Megatron-Core's
local_expert_indices), g = m e per node. A token picks k distinct experts.

Routing model: every k-subset of the experts is equally likely (uniform top-k, what a
perfectly balanced router does on average), restricted under node-limited routing to the
subsets whose experts lie on at most M nodes (DeepSeek-V3, arXiv:2412.19437 sec. 2.1.2:
"each token will be sent to at most M nodes", M = 4; its config.json writes this as
n_group = 8 expert groups, topk_group = 4, one group per node of its 8-node EP group, as
Megatron-Core's group_limited_topk recommends: moe_router_num_groups = nodes of the EP
group). Restricting the uniform distribution (rather than capping each token's node count
afterwards) keeps a well-defined distribution over expert sets, so node and GPU counts
come from one model.

Counting (k-subsets of the experts of j given nodes that touch all j of them, by
inclusion-exclusion over the nodes missed):
    a_j = sum_i (-1)^i C(j, i) C((j - i) g, k),
so P(D = j) = C(N, j) a_j / F with F = sum_{j <= M} C(N, j) a_j. Without a limit this gives
the closed form E[D] = N (1 - C(E - g, k) / C(E, k)) of k draws without replacement. A rank
u on a touched node is missed by b_j of the a_j subsets:
    b_j = sum_i (-1)^i C(j - 1, i) [C(g - e + (j - 1 - i) g, k) - C((j - 1 - i) g, k)],
so E[distinct GPUs] = sum_j C(N, j) j m (a_j - b_j) / F.

Node-aware dispatch (DeepSeek-V3 sec. 3.2.2; DeepEP's internode "normal" kernels,
github.com/deepseek-ai/DeepEP docs/legacy.md, "forwarding data from NVLink domain to RDMA
domain"): a token crosses the scale-out network once per remote destination node, to the
GPU with the same in-node index, which forwards it over NVLink to each destination GPU of
that node other than itself; destinations on the source's own node get it over NVLink
directly. A GPU receives one copy however many of its experts the token picked (DeepEP's
is_token_in_rank). The source is uniform over the group, so a touched node is remote with
probability (N - 1) / N and a destination GPU is the landing GPU with probability 1 / m:
    remote nodes = E[D] (N - 1) / N,   NVLink copies = E[distinct GPUs] (m - 1) / m.
FP8 dispatch carries one fp32 scale per 128 channels as well (+3 % at hidden 7168); that
overhead is not counted.
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction
from math import comb

from aifabric.errors import ConfigError


@dataclass(frozen=True, slots=True)
class DispatchFanout:
    """Expected copies of one token in one dispatch (the combine returns the same ones).

    nodes: distinct destination nodes (the source's own included when it holds a target);
    remote_nodes: scale-out copies, one per remote destination node; gpus: distinct
    destination GPUs; nvlink_copies: in-node sends (destinations other than the GPU a copy
    lands on); expert_inputs: the token-expert pairs delivered, k whatever the routing.
    """

    nodes: float
    remote_nodes: float
    gpus: float
    nvlink_copies: float
    expert_inputs: int


def _touching_all(j: int, g: int, k: int) -> int:
    """k-subsets of j nodes' experts (g each) touching every one of the j nodes."""
    return sum((-1) ** i * comb(j, i) * comb((j - i) * g, k) for i in range(j + 1))


def _touching_all_missing_one_rank(j: int, g: int, e: int, k: int) -> int:
    """As ``_touching_all``, but avoiding the e experts of one given rank of node 1."""
    total = 0
    for i in range(j):
        rest = (j - 1 - i) * g
        total += (-1) ** i * comb(j - 1, i) * (comb(g - e + rest, k) - comb(rest, k))
    return total


def node_count_distribution(
    *, num_nodes: int, experts_per_node: int, experts_per_token: int, max_nodes: int = 0
) -> list[Fraction]:
    """P(D = j) for j = 0..N: the number of distinct nodes a token's experts lie on.

    Args:
        num_nodes: N nodes of the EP group, experts_per_node g experts on each.
        experts_per_token: k; max_nodes: M (0 = no node limit).

    Raises:
        ConfigError: k > N g, or no expert set fits in M nodes (M g < k).
    """
    n, g, k = num_nodes, experts_per_node, experts_per_token
    if min(n, g, k) < 1 or max_nodes < 0:
        raise ConfigError(
            f"num_nodes(={n}), experts_per_node(={g}), experts_per_token(={k}) must be >= 1"
        )
    if k > n * g:
        raise ConfigError(f"experts_per_token(={k}) exceeds the group's {n * g} experts")
    limit = n if max_nodes == 0 else min(max_nodes, n)
    if limit * g < k:
        raise ConfigError(
            f"max_nodes_per_token(={max_nodes}) x experts per node(={g}) is below "
            f"experts_per_token(={k}): no expert set fits"
        )
    counts = [comb(n, j) * _touching_all(j, g, k) if j <= limit else 0 for j in range(n + 1)]
    feasible = sum(counts)
    return [Fraction(c, feasible) for c in counts]


def expected_nodes_uniform(*, num_experts: int, experts_per_node: int, k: int) -> float:
    """E[D] without a node limit: N (1 - C(E - g, k) / C(E, k)), N = E / g."""
    n = num_experts // experts_per_node
    return float(n * (1 - Fraction(comb(num_experts - experts_per_node, k), comb(num_experts, k))))


def dispatch_fanout(
    *,
    num_experts: int,
    experts_per_token: int,
    num_nodes: int,
    ranks_per_node: int,
    max_nodes: int = 0,
) -> DispatchFanout:
    """Expected copies per token of a node-aware dispatch; see the module docstring.

    Args:
        num_experts: E routed experts over the group's N x m ranks (m = ranks_per_node).
        experts_per_token: k; max_nodes: M, node-limited routing (0 = none).

    Raises:
        ConfigError: E not a multiple of the ranks, or no routing fits (see
            node_count_distribution).
    """
    n, m, k = num_nodes, ranks_per_node, experts_per_token
    ranks = n * m
    if m < 1 or num_experts % ranks:
        raise ConfigError(f"num_experts(={num_experts}) must be a multiple of ep(={ranks})")
    e = num_experts // ranks
    g = m * e
    dist = node_count_distribution(
        num_nodes=n, experts_per_node=g, experts_per_token=k, max_nodes=max_nodes
    )
    nodes = sum(j * p for j, p in enumerate(dist))
    gpus = Fraction(0)
    for j, p in enumerate(dist):
        if p:
            a = _touching_all(j, g, k)
            gpus += p * j * m * Fraction(a - _touching_all_missing_one_rank(j, g, e, k), a)
    return DispatchFanout(
        nodes=float(nodes),
        remote_nodes=float(nodes * Fraction(n - 1, n)),
        gpus=float(gpus),
        nvlink_copies=float(gpus * Fraction(m - 1, m)),
        expert_inputs=k,
    )
