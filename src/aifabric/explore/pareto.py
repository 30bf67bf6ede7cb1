"""The non-dominated (Pareto) set of points over any number of metrics.

With every metric turned into one to minimise (a maximised metric is negated), point ``j``
dominates point ``i`` when ``j`` is no worse in every metric and strictly better in at
least one (Deb, *Multi-Objective Optimization using Evolutionary Algorithms*, 2001,
definition 2.5). The Pareto set is the points no other point dominates; equal points do not
dominate each other, so duplicates are all kept. The test is vectorised over blocks of
points, O(n^2 m) comparisons in NumPy, which is seconds at most for 10^5 points.
"""

from __future__ import annotations

from typing import Any

__all__ = ["pareto_mask"]

_BLOCK = 512


def pareto_mask(values: Any, maximize: Any = None) -> Any:
    """Boolean mask of the non-dominated rows of ``values`` (n points x m metrics).

    ``maximize`` is a length-m boolean sequence (default: minimise every metric).
    """
    import numpy as np

    v = np.asarray(values, dtype=float)
    if v.ndim != 2:
        raise ValueError("values must be a 2-D array: points x metrics")
    if maximize is not None:
        v = np.where(np.asarray(maximize, dtype=bool), -v, v)
    n = v.shape[0]
    keep = np.ones(n, dtype=bool)
    for start in range(0, n, _BLOCK):
        block = v[start : start + _BLOCK]  # (b, m): is each of these dominated by any row?
        no_worse = np.all(v[None, :, :] <= block[:, None, :], axis=2)  # (b, n)
        better = np.any(v[None, :, :] < block[:, None, :], axis=2)
        keep[start : start + _BLOCK] = ~np.any(no_worse & better, axis=1)
    return keep
