"""Prefix trie of KV-cache blocks across storage tiers (seed 003; Mooncake, FAST'25).

A node is one block of ``block_tokens`` tokens, identified by its hash id and reached only
through its prefix, so a longest-prefix match walks the trie from the root. Each node
lives in one tier (GPU HBM -> pooled CPU DRAM -> SSD), and a block is never in a faster
tier than its prefix (child.tier >= parent.tier): inserting under a slower prefix promotes
the prefix. When a tier is full, its least-recently-used node with no child in that tier
moves down one tier (entering it as its least recent block), or leaves the store from the
last tier; so eviction is leaf-first and
a cached block's prefix always stays reachable. A walk touches its nodes deepest first,
so a prefix is always more recent than its tail and the LRU end of a tier is a leaf.
Nodes idle for longer than ``ttl`` (24 h by default) expire: a lookup never matches one,
and a sweep every ``ttl / 100`` (``expire_interval``) prunes them, leaves upward.
"""

from __future__ import annotations

import math
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Tier:
    """A storage tier: capacity in blocks and read bandwidth (bytes/s) for fetches."""

    name: str
    capacity_blocks: float
    read_bandwidth: float = math.inf


class _Node:
    """One cached block (hashable by identity)."""

    __slots__ = ("block", "children", "last_access", "parent", "tier")

    def __init__(self, block: int, parent: _Node | None, tier: int = 0,
                 last_access: float = 0.0) -> None:  # fmt: skip
        self.block = block
        self.parent = parent
        self.tier = tier
        self.last_access = last_access
        self.children: dict[int, _Node] = {}


def _child_in(node: _Node, tier: int) -> bool:
    """``node`` has a child in ``tier`` or a faster one (so it cannot leave ``tier`` yet;
    children are never faster than their parent, so in ``tier`` itself)."""
    return any(c.tier <= tier for c in node.children.values())


@dataclass(frozen=True, slots=True)
class Match:
    """Longest cached prefix: blocks matched, and how many of them sit in each tier."""

    blocks: int
    per_tier: tuple[int, ...]


class KVStore:
    """Trie + tiers + LRU demotion + TTL expiry. Times are simulation seconds."""

    def __init__(self, tiers: Sequence[Tier], *, ttl: float = 24 * 3600.0,
                 expire_interval: float | None = None) -> None:  # fmt: skip
        if not tiers:
            raise ValueError("a KV store needs at least one tier")
        self.tiers = list(tiers)
        self.ttl = ttl
        self.expire_interval = ttl / 100 if expire_interval is None else expire_interval
        self._next_sweep = -math.inf
        # No node has been accessed before this (a lower bound on every last_access): a
        # sweep whose deadline is not past it has nothing to prune and skips its scan.
        self._oldest = -math.inf
        self.root = _Node(block=-1, parent=None, tier=-1)
        self._lru: list[OrderedDict[_Node, None]] = [OrderedDict() for _ in tiers]
        self.evicted_blocks = 0
        self.expired_blocks = 0

    # ----- queries ------------------------------------------------------------------------
    def match(self, blocks: Sequence[int], now: float) -> Match:
        """Longest prefix of ``blocks`` in the store; touches the matched nodes."""
        self._maybe_sweep(now)
        node, per_tier, path = self.root, [0] * len(self.tiers), []
        deadline = now - self.ttl
        for block in blocks:
            child = node.children.get(block)
            if child is None or child.last_access < deadline:
                break
            path.append(child)
            per_tier[child.tier] += 1
            node = child
        if path:
            self._oldest = min(self._oldest, now)
        for child in reversed(path):
            self._touch(child, now)
        return Match(len(path), tuple(per_tier))

    def peek(self, blocks: Sequence[int], now: float) -> int:
        """Length of the longest live cached prefix, without touching anything."""
        node, count = self.root, 0
        deadline = now - self.ttl
        for block in blocks:
            child = node.children.get(block)
            if child is None or child.last_access < deadline:
                break
            node, count = child, count + 1
        return count

    def peek_match(self, blocks: Sequence[int], now: float) -> Match:
        """``match`` without touching anything (for routers comparing instances)."""
        node, per_tier, count = self.root, [0] * len(self.tiers), 0
        deadline = now - self.ttl
        for block in blocks:
            child = node.children.get(block)
            if child is None or child.last_access < deadline:
                break
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
        self._maybe_sweep(now)
        self._oldest = min(self._oldest, now)  # nodes it makes or touches are accessed now
        node, path = self.root, []
        lru = self._lru[tier]
        i, n = 0, len(blocks)
        while i < n:  # the part already cached
            child = node.children.get(blocks[i])
            if child is None:
                break
            if child.tier != tier:
                if child.tier > tier:  # promote into this tier
                    del self._lru[child.tier][child]
                    child.tier = tier
                else:  # already faster: just touch it where it is
                    child.last_access = now
                    self._lru[child.tier].move_to_end(child)
                    node = child
                    i += 1
                    continue
            path.append(child)
            node = child
            i += 1
        new = []
        for block in blocks[i:]:  # the new tail: one fresh chain
            child = _Node(block, node, tier, now)
            node.children[block] = child
            new.append(child)
            node = child
        added = len(new)
        # Touch deepest first, so a prefix ends up more recent than its tail. New nodes are
        # always the deepest part of the path.
        for child in reversed(new):
            lru[child] = None
        for child in reversed(path):
            child.last_access = now
            if child in lru:
                lru.move_to_end(child)
            else:
                lru[child] = None
        self._enforce_capacity()
        return added

    def _maybe_sweep(self, now: float) -> None:
        if now >= self._next_sweep:
            self._next_sweep = now + self.expire_interval
            self.expire(now)

    def expire(self, now: float) -> None:
        """Drop nodes idle for longer than the TTL, leaves first (a prefix outlives its tail).

        The scan is skipped when the deadline is not past ``_oldest``, a lower bound on every
        node's last access: the oldest survivor of the last scan, lowered by any access at
        an earlier time. Nothing can be stale then, so the result is the full scan's (a
        24 h TTL over an hour's trace never scans a second time)."""
        if math.isinf(self.ttl):
            return
        deadline = now - self.ttl
        if self._oldest >= deadline:
            return  # every node was accessed at or after the bound: none is stale
        oldest = math.inf
        for lru in self._lru:
            stale = []
            for n in lru:
                if n.last_access < deadline:
                    stale.append(n)
                elif n.last_access < oldest:
                    oldest = n.last_access
            for node in stale:
                self._prune(node, deadline)
            for node in stale:  # one kept for a live child still bounds the oldest
                if node.parent is not None and node.parent.children.get(node.block) is node:
                    oldest = min(oldest, node.last_access)
        self._oldest = oldest

    def _prune(self, node: _Node, deadline: float) -> None:
        if node.parent is None or node.parent.children.get(node.block) is not node:
            return  # already pruned as part of a deeper node's branch
        while node is not self.root and node.last_access < deadline and not node.children:
            parent = node.parent
            assert parent is not None
            self._remove(node)
            self.expired_blocks += 1
            node = parent

    def _touch(self, node: _Node, now: float) -> None:
        node.last_access = now
        self._lru[node.tier].move_to_end(node)

    def _remove(self, node: _Node) -> None:
        assert node.parent is not None and not node.children
        del node.parent.children[node.block]
        del self._lru[node.tier][node]

    def _enforce_capacity(self) -> None:
        last = len(self.tiers) - 1
        for t, tier in enumerate(self.tiers):
            lru = self._lru[t]
            if len(lru) <= tier.capacity_blocks:
                continue
            below = self._lru[t + 1] if t < last else None
            demoted: list[_Node] = []
            cap = tier.capacity_blocks
            while len(lru) > cap:
                # The least recently used node with no child in this tier (one exists:
                # children are never faster than their parent). Walks touch deepest first,
                # so this is almost always the very first node (a leaf of this tier, its
                # children all in slower ones: taken at once, popped off the LRU end in
                # one call; the search below would find it first too).
                victim = lru.popitem(last=False)[0]
                if _child_in(victim, t):  # put back in its place and look further
                    lru[victim] = None
                    lru.move_to_end(victim, last=False)
                    for victim in lru:
                        children = victim.children
                        if not children:
                            break
                        for c in children.values():
                            if c.tier <= t:
                                break
                        else:
                            break
                    del lru[victim]
                if below is None:
                    assert victim.parent is not None and not victim.children
                    del victim.parent.children[victim.block]  # _remove, off the LRU already
                    self.evicted_blocks += 1
                else:
                    victim.tier = t + 1
                    demoted.append(victim)
            if below is not None:  # enter the next tier as its least recent, in LRU order
                for victim in reversed(demoted):
                    below[victim] = None
                    below.move_to_end(victim, last=False)

    def check_invariants(self) -> None:
        """Every tier within capacity; every node reachable from the root; counts agree."""
        seen = 0
        stack = [self.root]
        while stack:
            node = stack.pop()
            for child in node.children.values():
                assert child.parent is node
                assert child.tier >= node.tier
                assert child in self._lru[child.tier]
                stack.append(child)
                seen += 1
        assert seen == len(self)
        for t, tier in enumerate(self.tiers):
            assert len(self._lru[t]) <= tier.capacity_blocks
