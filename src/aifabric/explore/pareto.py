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

__all__ = ["hypervolume_2d", "pareto_mask"]

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


def hypervolume_2d(values: Any, reference: Any, maximize: Any = None) -> float:
    """The area dominated by a set of 2-metric points and bounded by ``reference`` (the
    hypervolume indicator, Zitzler & Thiele 1998, in two dimensions, exact).

    Every metric is turned into one to minimise (a maximised one is negated, its
    reference too); points not strictly better than the reference in both metrics add
    nothing. Sorted by the first metric, each point of the front adds the rectangle between
    it, the next point's first metric (or the reference) and the reference's second.
    """
    import numpy as np

    v = np.asarray(values, dtype=float).reshape(-1, 2)
    ref = np.asarray(reference, dtype=float).reshape(2)
    if maximize is not None:
        flip = np.asarray(maximize, dtype=bool)
        v, ref = np.where(flip, -v, v), np.where(flip, -ref, ref)
    v = v[np.all(v < ref, axis=1)]
    if len(v) == 0:
        return 0.0
    v = v[pareto_mask(v)]
    v = v[np.lexsort((v[:, 1], v[:, 0]))]
    area, best_y = 0.0, float(ref[1])
    for i in range(len(v)):
        x, y = float(v[i, 0]), float(v[i, 1])
        if y >= best_y:
            continue
        area += (float(ref[0]) - x) * (best_y - y)
        best_y = y
    return area
