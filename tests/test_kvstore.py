"""KV-cache store: longest-prefix match, tiers with leaf-first LRU demotion, TTL, hashing."""

from __future__ import annotations

import math
from collections import Counter

import pytest
from hypothesis import given
from hypothesis import strategies as st

from aifabric.serving.kvstore import ConsistentHashRing, KVStore, Tier


def store(*caps: float, ttl: float = math.inf) -> KVStore:
    return KVStore([Tier(f"t{i}", c) for i, c in enumerate(caps)], ttl=ttl)


def test_longest_prefix_match():
    kv = store(100)
    kv.insert([1, 2, 3], now=0)
    assert kv.match([1, 2, 3, 4], now=1).blocks == 3
    assert kv.match([1, 2, 9], now=1).blocks == 2
    assert kv.match([2, 3], now=1).blocks == 0  # a block is found only through its prefix
    assert len(kv) == 3


def test_shared_prefixes_are_stored_once():
    kv = store(100)
    assert kv.insert([1, 2, 3], now=0) == 3
    assert kv.insert([1, 2, 4], now=1) == 1
    assert len(kv) == 4


def test_lru_demotes_leaf_first_and_keeps_prefixes_reachable():
    """HBM holds 3 blocks. [1,2,3] at t=0, [1,2,4] at t=1: block 3 (the older leaf) goes to
    DRAM; its prefix [1,2] stays in HBM and the whole of [1,2,3] still matches."""
    kv = store(3, 10)
    kv.insert([1, 2, 3], now=0)
    kv.insert([1, 2, 4], now=1)
    assert kv.blocks_in(0) == 3 and kv.blocks_in(1) == 1
    m = kv.match([1, 2, 3], now=2)
    assert m.blocks == 3 and m.per_tier == (2, 1)
    kv.check_invariants()


def test_last_tier_evicts_and_inserting_promotes():
    """Two tiers of 2 blocks. [1,2] (t=0) is demoted by [5,6] (t=1); matching it at t=2
    refreshes it; [7,8] (t=3) demotes [5,6], which enter DRAM as its least recent and are
    evicted from the store. Re-inserting [1,2] promotes both back to HBM."""
    kv = store(2, 2)
    kv.insert([1, 2], now=0)
    kv.insert([5, 6], now=1)
    assert kv.match([1, 2], now=2).per_tier == (0, 2)
    kv.insert([7, 8], now=3)
    assert kv.evicted_blocks == 2
    assert kv.match([5, 6], now=4).blocks == 0
    assert kv.match([1, 2], now=4).per_tier == (0, 2)
    kv.insert([1, 2], now=5)
    assert kv.match([1, 2], now=6).per_tier == (2, 0)
    assert kv.match([7, 8], now=6).per_tier == (0, 2)
    kv.check_invariants()


def test_ttl_expiry_prunes_idle_branches_only():
    kv = store(100, ttl=24 * 3600)
    kv.insert([1, 2, 3], now=0)
    kv.insert([1, 4], now=20 * 3600)  # touches 1 again
    assert kv.match([1, 2, 3], now=25 * 3600).blocks == 1  # 2 and 3 idle > 24 h: expired
    assert kv.expired_blocks == 2
    assert kv.match([1, 4], now=25 * 3600).blocks == 2
    kv.check_invariants()


@given(
    st.lists(st.lists(st.integers(0, 12), min_size=1, max_size=6), min_size=1, max_size=60),
    st.integers(1, 6),
    st.integers(1, 6),
)
def test_invariants_hold_under_any_workload(prefixes, hbm, dram):
    """Capacity never exceeded, every node reachable, child never faster than its parent."""
    kv = store(hbm, dram)
    for t, blocks in enumerate(prefixes):
        if t % 3 == 0:
            kv.match(blocks, now=t)
        kv.insert(blocks, now=t)
        kv.check_invariants()


def test_consistent_hashing_balances_and_moves_little():
    servers = [f"mem{i}" for i in range(8)]
    ring = ConsistentHashRing(servers, vnodes=128)
    keys = [[k] for k in range(20_000)]
    owners = [ring.server_for(k) for k in keys]
    counts = Counter(owners)
    assert max(counts.values()) / min(counts.values()) < 1.5
    grown = ConsistentHashRing([*servers, "mem8"], vnodes=128)
    moved = sum(a != grown.server_for(k) for a, k in zip(owners, keys, strict=True))
    assert moved / len(keys) == pytest.approx(1 / 9, abs=0.04)  # only the new server's share
    assert ring.server_for([3, 99]) == ring.server_for([3, 100])  # keyed by the first block


def _chained(paths: list[list[int]]) -> list[list[int]]:
    """Prefix-chained ids: a block's id names it and everything before it."""
    ids: dict[tuple[int, ...], int] = {}
    out = []
    for path in paths:
        chain = []
        for j in range(len(path)):
            chain.append(ids.setdefault(tuple(path[: j + 1]), len(ids)))
        out.append(chain)
    return out


@given(
    st.lists(st.lists(st.integers(0, 5), min_size=1, max_size=8), min_size=1, max_size=80),
    st.integers(1, 12),
    st.sampled_from([math.inf, 5.0]),
)
def test_flat_hbm_cache_answers_like_a_one_tier_trie(paths, capacity, ttl):
    """With prefix-chained ids the flat LRU is the one-tier trie: same matches, same size,
    same evictions, under any sequence of lookups and inserts (and with a TTL)."""
    from aifabric.serving.kvstore.flat import FlatPrefixCache

    trie = KVStore([Tier("hbm", capacity)], ttl=ttl, expire_interval=0.0)
    flat = FlatPrefixCache(Tier("hbm", capacity), ttl=ttl)
    for t, blocks in enumerate(_chained(paths)):
        now = float(t)
        assert flat.peek(blocks, now) == trie.peek(blocks, now)
        if t % 2:
            assert flat.match(blocks, now).blocks == trie.match(blocks, now).blocks
        assert flat.insert(blocks, now) == trie.insert(blocks, now)
        assert len(flat) == len(trie)
        flat.check_invariants()
        trie.check_invariants()


_OP = st.tuples(st.lists(st.integers(0, 4), min_size=1, max_size=6), st.floats(0.0, 4.0),
                st.booleans())  # fmt: skip


@given(
    st.lists(_OP, min_size=1, max_size=60),
    st.sampled_from([(2, 3), (3, 100), (100, 100)]),
    st.sampled_from([1.0, 3.0, 10.0]),
)
def test_skipped_sweeps_prune_what_full_scans_prune(ops, caps, ttl):
    """A sweep skips its scan when its deadline is not past the store's bound on the
    oldest access (KVStore.expire). Against a store that scans every node at every sweep
    (the bound reset before each call), any sequence of inserts and lookups (times rising
    by random steps, some long enough to expire things) leaves the same nodes, the same
    tiers and the same expired and evicted counts."""
    fast = KVStore([Tier("a", caps[0]), Tier("b", caps[1])], ttl=ttl, expire_interval=0.5)
    full = KVStore([Tier("a", caps[0]), Tier("b", caps[1])], ttl=ttl, expire_interval=0.5)
    now = 0.0
    for blocks, step, lookup in _chained_ops(ops):
        now += step
        full._oldest = -math.inf  # always scan
        if lookup:
            assert fast.match(blocks, now) == full.match(blocks, now)
        else:
            assert fast.insert(blocks, now) == full.insert(blocks, now)
        counts = (fast.expired_blocks, fast.evicted_blocks)
        assert counts == (full.expired_blocks, full.evicted_blocks)
        assert [len(lru) for lru in fast._lru] == [len(lru) for lru in full._lru]
        fast.check_invariants()


def _chained_ops(ops: list[tuple[list[int], float, bool]]) -> list[tuple[list[int], float, bool]]:
    chains = _chained([blocks for blocks, _, _ in ops])
    return [(c, step, lookup) for c, (_, step, lookup) in zip(chains, ops, strict=True)]
