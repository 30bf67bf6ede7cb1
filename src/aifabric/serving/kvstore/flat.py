"""A one-tier prefix cache as a flat LRU, for the per-instance HBM caches (the hot path).

Same answers as a one-tier KVStore when block ids are prefix-chained, i.e. an id names a
block *and* everything before it (Mooncake's hash_ids, vLLM's block hashes and
aifabric's synthetic ids all are): then "these leading blocks are cached" is a run of
dictionary hits, and no tree is needed. Every walk touches its blocks deepest first, so a
prefix is always more recent than its tail and popping the least recent block is exactly
the trie's leaf-first eviction. Idle blocks past the TTL never match and are swept from the
LRU end.
"""

from __future__ import annotations

import math
from collections import OrderedDict
from collections.abc import Sequence
from itertools import pairwise

from aifabric.serving.kvstore.trie import Match, Tier


class FlatPrefixCache:
    """LRU of prefix-chained block ids with a capacity in blocks and a TTL."""

    def __init__(self, tier: Tier, *, ttl: float = 24 * 3600.0) -> None:
        self.tiers = [tier]
        self.capacity = tier.capacity_blocks
        self.ttl = ttl
        self._lru: OrderedDict[int, float] = OrderedDict()  # block -> last access
        self.evicted_blocks = 0
        self.expired_blocks = 0

    def __len__(self) -> int:
        return len(self._lru)

    def blocks_in(self, tier: int) -> int:
        return len(self._lru) if tier == 0 else 0

    def peek(self, blocks: Sequence[int], now: float) -> int:
        """Leading blocks cached and alive, without touching them."""
        lru = self._lru
        deadline = now - self.ttl
        count = 0
        for block in blocks:
            seen = lru.get(block)
            if seen is None or seen < deadline:
                break
            count += 1
        return count

    def match(self, blocks: Sequence[int], now: float) -> Match:
        """Longest cached prefix; touches it (deepest first)."""
        count = self.peek(blocks, now)
        lru = self._lru
        for block in reversed(blocks[:count]):
            lru[block] = now
            lru.move_to_end(block)
        return Match(count, (count,))

    def insert(self, blocks: Sequence[int], now: float, tier: int = 0) -> int:
        """Cache a prefix (touching it deepest first); returns the blocks that were new."""
        self.expire(now)
        lru = self._lru
        added = 0
        for block in reversed(blocks):
            if block in lru:
                lru.move_to_end(block)
            else:
                added += 1
            lru[block] = now
        while len(lru) > self.capacity:
            lru.popitem(last=False)
            self.evicted_blocks += 1
        return added

    def expire(self, now: float) -> None:
        """Drop blocks idle for longer than the TTL (they sit at the LRU end)."""
        if math.isinf(self.ttl):
            return
        lru = self._lru
        deadline = now - self.ttl
        while lru:
            block, seen = next(iter(lru.items()))
            if seen >= deadline:
                break
            del lru[block]
            self.expired_blocks += 1

    def check_invariants(self) -> None:
        assert len(self._lru) <= self.capacity
        times = list(self._lru.values())
        assert all(a <= b for a, b in pairwise(times))
