"""Consistent hashing of prefixes onto memory servers (seed 003: an elastic DRAM pool).

Each server owns ``vnodes`` points on a 64-bit ring (BLAKE2b of "server#i"); a prefix is
placed on the first point clockwise of the hash of its first ``key_blocks`` block ids, so
adding or removing a server moves only about 1/N of the prefixes (Karger et al. 1997).
"""

from __future__ import annotations

import bisect
import hashlib
from collections.abc import Sequence


def _h64(text: str) -> int:
    return int.from_bytes(hashlib.blake2b(text.encode(), digest_size=8).digest(), "big")


class ConsistentHashRing:
    """Servers on a hash ring with virtual nodes."""

    def __init__(self, servers: Sequence[str], *, vnodes: int = 64, key_blocks: int = 1) -> None:
        if not servers:
            raise ValueError("a hash ring needs at least one server")
        if vnodes < 1 or key_blocks < 1:
            raise ValueError("vnodes and key_blocks must be >= 1")
        self.key_blocks = key_blocks
        points = sorted((_h64(f"{s}#{i}"), s) for s in servers for i in range(vnodes))
        self._keys = [p for p, _ in points]
        self._owners = [s for _, s in points]

    def server_for(self, blocks: Sequence[int]) -> str:
        """The server holding a prefix, chosen by its first key_blocks block ids."""
        key = _h64(",".join(str(b) for b in blocks[: self.key_blocks]))
        i = bisect.bisect_right(self._keys, key) % len(self._keys)
        return self._owners[i]
