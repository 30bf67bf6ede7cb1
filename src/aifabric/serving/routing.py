"""Routing policies: which prefill (or colocated) instance takes a new request.

A registry, like the collectives: add a policy with ``@register("name")``.

- ``round_robin``: instances in turn.
- ``least_loaded``: fewest outstanding requests (queued + running), then least queued work.
- ``cache_aware``: Mooncake's Conductor idea: estimate each instance's time to first token
  as its queued prefill work plus the prefill of the part of the prompt that instance
  cannot reuse (its own HBM prefix cache, or the shared pool when that reaches further),
  and take the smallest; ties go to the least loaded.
- ``kv_aware``: the Conductor's full cost (Mooncake, FAST'25, section 5 / Algorithm 1:
  for each prefill instance, TTFT = queue time + KV transfer time + prefill time, and the
  request goes where it is smallest). Here, per instance: queue wait + the cheaper of
  (a) fetching the pool's longer prefix over the network (the nominal transfer time on
  the instance's path from the prefix's memory server, no sharing) and prefilling the
  rest, or (b) recomputing everything beyond the instance's own HBM match. The cluster's
  cache plan (ServingSimulation.reuse_choice) makes the same fetch-or-recompute choice
  for the chosen instance, so the request is served the way it was costed. Unlike
  ``cache_aware`` it never assumes a pool hit is free to use.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from aifabric.errors import ConfigError
from aifabric.serving.instance import Instance
from aifabric.serving.request import Request

if TYPE_CHECKING:
    from aifabric.serving.cluster import ServingSimulation

Router = Callable[[Any, Request], Instance]
ROUTERS: dict[str, Callable[[], Router]] = {}


def register(name: str) -> Callable[[Callable[[], Router]], Callable[[], Router]]:
    def wrap(factory: Callable[[], Router]) -> Callable[[], Router]:
        ROUTERS[name] = factory
        return factory

    return wrap


def make_router(name: str) -> Router:
    """A fresh router (it may keep state, such as the round-robin position)."""
    try:
        return ROUTERS[name]()
    except KeyError:
        raise ConfigError(
            f"routing.policy(={name!r}) must be one of {', '.join(sorted(ROUTERS))}"
        ) from None


@register("round_robin")
def _round_robin() -> Router:
    position = [0]

    def choose(cluster: ServingSimulation, req: Request) -> Instance:
        pool: list[Instance] = cluster.entry
        inst = pool[position[0] % len(pool)]
        position[0] += 1
        return inst

    return choose


@register("least_loaded")
def _least_loaded() -> Router:
    def choose(cluster: ServingSimulation, req: Request) -> Instance:
        # The key is (outstanding, estimated wait, index): the wait estimate is needed only
        # among the instances tied on the fewest outstanding requests (the same choice,
        # without estimating every instance's wait on every arrival). A wait is never
        # below 0 (estimated_wait is a max with 0), so once the tied instance of least
        # index is found to wait 0 nothing can beat it: the scan stops there (in the
        # usual index-ordered pool, at the first tied instance when it is idle).
        pool: list[Instance] = cluster.entry
        counts = [i.outstanding for i in pool]
        fewest = min(counts)
        tied = [i for i, c in zip(pool, counts, strict=True) if c == fewest]
        if len(tied) == 1:
            return tied[0]
        lowest = min([i.index for i in tied])
        best = (tied[0].estimated_wait(), tied[0].index)
        chosen = tied[0]
        if best[0] == 0.0 and best[1] == lowest:
            return chosen
        for inst in tied[1:]:  # min over (wait, index), without a key function
            key = (inst.estimated_wait(), inst.index)
            if key < best:
                best, chosen = key, inst
                if key[0] == 0.0 and key[1] == lowest:
                    break
        return chosen

    return choose


@register("cache_aware")
def _cache_aware() -> Router:
    def choose(cluster: ServingSimulation, req: Request) -> Instance:
        pool: list[Instance] = cluster.entry
        local = cluster.local_match_blocks(req)  # instance index -> matched blocks
        floor = cluster.pool_match_blocks(req)
        prefill_cost: dict[tuple[int, int], float] = {}  # (timing, blocks) -> seconds
        best: tuple[float, int, int] | None = None
        chosen = pool[0]
        for inst in pool:
            blocks = max(local.get(inst.index, 0), floor)
            memo = (id(inst.timing), blocks)
            cost = prefill_cost.get(memo)
            if cost is None:
                cached = cluster.cached_tokens(req, blocks)
                cost = prefill_cost[memo] = inst.timing.prefill_time(req.prefill_len, cached)
            key = (inst.estimated_wait(req.priority) + cost, inst.outstanding, inst.index)
            if best is None or key < best:
                best, chosen = key, inst
        return chosen

    return choose


@register("kv_aware")
def _kv_aware() -> Router:
    def choose(cluster: ServingSimulation, req: Request) -> Instance:
        pool: list[Instance] = cluster.entry
        local = cluster.local_match_blocks(req)  # instance index -> matched blocks
        store = cluster.pool
        match = (
            store.peek_match(req.blocks, cluster.sim.now)
            if store is not None and req.blocks
            else None
        )
        best: tuple[float, int, int] | None = None
        chosen = pool[0]
        for inst in pool:
            blocks, _, _, fetch = cluster.reuse_choice(req, inst, local.get(inst.index, 0), match)
            prefill = inst.timing.prefill_time(req.prefill_len, cluster.cached_tokens(req, blocks))
            key = (inst.estimated_wait(req.priority) + fetch + prefill, inst.outstanding,
                   inst.index)  # fmt: skip
            if best is None or key < best:
                best, chosen = key, inst
        return chosen

    return choose
