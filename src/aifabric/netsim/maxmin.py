"""Max-min fair rates of flows given as link lists (the serving simulator's form): a thin
adapter over the vectorised solver of :mod:`aifabric.netsim.fairshare`, the one home of the
mechanism (progressive filling, Bertsekas & Gallager, Data Networks, 6.5.2)."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np

from aifabric.netsim.fairshare import max_min_rates as _solve


def max_min_rates(paths: Sequence[Sequence[int]], capacity: Mapping[int, float]) -> list[float]:
    """Rate (bytes/s) of each flow; ``paths[f]`` lists the links flow f crosses.

    A flow that crosses no finite link gets inf. Links absent from ``capacity`` are
    unconstrained; a link listed twice on one path counts once.
    """
    ids = sorted(capacity)
    index = {link: i for i, link in enumerate(ids)}
    cap = np.array([capacity[link] for link in ids] + [math.inf], float)
    none = len(ids)  # the unconstrained link
    rows = [sorted({index.get(link, none) for link in path}) for path in paths]
    indptr = np.concatenate([[0], np.cumsum([len(r) for r in rows])]).astype(np.int64)
    links = np.array([x for r in rows for x in r], np.int64)
    return [float(r) for r in _solve(indptr, links, None, cap)]
