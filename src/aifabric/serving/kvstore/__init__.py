"""KV-cache store: prefix trie over block hashes, tiers with LRU demotion, TTL, hashing."""

from aifabric.serving.kvstore.hashing import ConsistentHashRing
from aifabric.serving.kvstore.trie import KVStore, Tier

__all__ = ["ConsistentHashRing", "KVStore", "Tier"]
