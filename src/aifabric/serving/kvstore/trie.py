"""Prefix trie of KV-cache blocks across storage tiers (seed 003; Mooncake, FAST'25).

A node is one block of ``block_tokens`` tokens, identified by its hash id and reached only
through its prefix, so a longest-prefix match walks the trie from the root. Each node
lives in one tier (GPU HBM -> pooled CPU DRAM -> SSD), and a block is never in a faster
tier than its prefix (child.tier >= parent.tier): inserting under a slower prefix promotes
the prefix. When a tier is full, its least-recently-used node with no child in that tier
moves down one tier (entering it as its least recent block), or leaves the store from the
last tier; so eviction is leaf-first and
a cached block's prefix always stays reachable. Nodes idle for longer than ``ttl`` (24 h
by default) expire, pruning leaves upward.
"""

from __future__ import annotations

import math
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, field


@dataclass(frozen=True, slots=True)
class Tier:
    """A storage tier: capacity in blocks and read bandwidth (bytes/s) for fetches."""

    name: str
    capacity_blocks: float
    read_bandwidth: float = math.inf


@dataclass(slots=True, eq=False)
class _Node:
    block: int
    parent: _Node | None
    tier: int = 0
    last_access: float = 0.0
    children: dict[int, _Node] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Match:
    """Longest cached prefix: blocks matched, and how many of them sit in each tier."""

    blocks: int
    per_tier: tuple[int, ...]


class KVStore:
    """Trie + tiers + LRU demotion + TTL expiry. Times are simulation seconds."""

    def __init__(self, tiers: Sequence[Tier], *, ttl: float = 24 * 3600.0) -> None:
        if not tiers:
            raise ValueError("a KV store needs at least one tier")
        self.tiers = list(tiers)
        self.ttl = ttl
        self.root = _Node(block=-1, parent=None, tier=-1)
        self._lru: list[OrderedDict[int, _Node]] = [OrderedDict() for _ in tiers]
        self.evicted_blocks = 0
        self.expired_blocks = 0

    # ----- queries ------------------------------------------------------------------------
    def match(self, blocks: Sequence[int], now: float) -> Match:
        """Longest prefix of ``blocks`` in the store; touches the matched nodes."""
        self.expire(now)
        node, per_tier, count = self.root, [0] * len(self.tiers), 0
        for block in blocks:
            child = node.children.get(block)
            if child is None:
                break
            self._touch(child, now)
            per_tier[child.tier] += 1
            node, count = child, count + 1
        return Match(count, tuple(per_tier))

    def blocks_in(self, tier: int) -> int:
        return len(self._lru[tier])

    def __len__(self) -> int:
        return sum(len(lru) for lru in self._lru)

    # ----- updates ------------------------------------------------------------------------
    def insert(self, blocks: Sequence[int], now: float, tier: int = 0) -> int:
        """Cache a prefix in ``tier``, promoting slower prefix blocks to it; new blocks."""
        self.expire(now)
        node, added = self.root, 0
        for block in blocks:
            child = node.children.get(block)
            if child is None:
                child = _Node(block, node, tier, now)
                node.children[block] = child
                self._lru[tier][id(child)] = child
                added += 1
            elif child.tier > tier:
                self._move(child, tier)
            self._touch(child, now)
            node = child
        self._enforce_capacity()
        return added

    def expire(self, now: float) -> None:
        """Drop nodes idle for longer than the TTL, leaves first (a prefix outlives its tail)."""
        if math.isinf(self.ttl):
            return
        deadline = now - self.ttl
        for lru in self._lru:
            stale = [n for n in lru.values() if n.last_access < deadline]
            for node in stale:
                self._prune(node, deadline)

    def _prune(self, node: _Node, deadline: float) -> None:
        while node is not self.root and node.last_access < deadline and not node.children:
            parent = node.parent
            assert parent is not None
            self._remove(node)
            self.expired_blocks += 1
            node = parent

    def _touch(self, node: _Node, now: float) -> None:
        node.last_access = now
        self._lru[node.tier].move_to_end(id(node))

    def _remove(self, node: _Node) -> None:
        assert node.parent is not None and not node.children
        del node.parent.children[node.block]
        del self._lru[node.tier][id(node)]

    def _move(self, node: _Node, tier: int) -> None:
        del self._lru[node.tier][id(node)]
        node.tier = tier
        self._lru[tier][id(node)] = node

    def _enforce_capacity(self) -> None:
        for t, tier in enumerate(self.tiers):
            lru = self._lru[t]
            while len(lru) > tier.capacity_blocks:
                # Least recently used node with no child in this tier (one always exists:
                # children are never faster than their parent).
                victim = next(n for n in lru.values()
                              if all(c.tier > t for c in n.children.values()))  # fmt: skip
                if t + 1 < len(self.tiers):
                    self._move(victim, t + 1)
                    self._lru[t + 1].move_to_end(id(victim), last=False)
                else:
                    self._remove(victim)
                    self.evicted_blocks += 1

    def check_invariants(self) -> None:
        """Every tier within capacity; every node reachable from the root; counts agree."""
        seen = 0
        stack = [self.root]
        while stack:
            node = stack.pop()
            for child in node.children.values():
                assert child.parent is node
                assert child.tier >= node.tier
                assert id(child) in self._lru[child.tier]
                stack.append(child)
                seen += 1
        assert seen == len(self)
        for t, tier in enumerate(self.tiers):
            assert len(self._lru[t]) <= tier.capacity_blocks
