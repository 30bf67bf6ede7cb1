"""Pipeline schedules as timelines: 1F1B and interleaved 1F1B, as Megatron-Core runs them.

The order of work on each pipeline rank follows Megatron-Core
(``megatron/core/pipeline_parallel/schedules.py``): ``get_pp_rank_microbatches`` gives the
warm-up forwards of rank s, p - s - 1 without interleaving and 2(p - s - 1) + (v - 1) g
with v model chunks (g = ``microbatch_group_size_per_vp_stage``, default p), capped at the
total; then one forward and one backward alternate (steady 1F1B); then the cool-down
backwards. With chunks, ``get_schedule_table`` orders the (micro-batch, chunk) pairs in
groups of g micro-batches, chunk by chunk; backwards walk the chunks in reverse.

Dependencies are the data's: the forward of a micro-batch on model chunk c of rank s needs
its forward on the previous virtual stage (c, s - 1), or (c - 1, p - 1) at s = 0, plus the
point-to-point transfer; a backward needs the next virtual stage's backward, and the last
virtual stage's backward its own forward. Each rank runs its list in order, so the warm-up
and cool-down bubbles come out of the schedule; nothing is a pasted formula. With equal
stages and free transfers the makespan is (m + p - 1)(f + b) without interleaving and
m(f + b) + (p - 1)(f + b)/v with it (Narayanan et al., SC'21, section 2.2), which the tests
check.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from aifabric.errors import ConfigError


@dataclass(frozen=True, slots=True)
class Op:
    kind: str  # "F" or "B"
    microbatch: int
    chunk: int
    start: float
    end: float


@dataclass(frozen=True, slots=True)
class Timeline:
    """Each pipeline rank's ops in time order, and the step's makespan (s)."""

    ranks: tuple[tuple[Op, ...], ...]
    makespan: float

    def busy(self) -> np.ndarray:
        """Compute time of each rank (s)."""
        return np.array([sum(o.end - o.start for o in ops) for ops in self.ranks])

    @property
    def bubble_fraction(self) -> float:
        """Pipeline idle share of the busiest rank: 1 - busy / (makespan - first start).

        Time before the first op (an exposed parameter all-gather) is not pipeline bubble;
        it is reported as exposed DP communication."""
        first = min((ops[0].start for ops in self.ranks if ops), default=0.0)
        span = self.makespan - first
        if span <= 0:
            return 0.0
        return max(0.0, float(1.0 - self.busy().max() / span))


def schedule_order(p: int, s: int, m: int, v: int = 1,
                   group: int | None = None) -> list[tuple[str, int, int]]:  # fmt: skip
    """Rank s's ops, (kind, micro-batch, chunk), in Megatron-Core's order."""
    total = m * v
    if v == 1:
        table = [(i, 0) for i in range(m)]
        warm = p - s - 1
    else:
        g = p if group is None else group
        table = []
        for lo in range(0, m, g):
            hi = m if lo + g >= m else lo + g
            table += [(i, c) for c in range(v) for i in range(lo, hi)]
        warm = 2 * (p - s - 1) + (v - 1) * g
    warm = min(warm, total)
    fwd = [("F", i, c) for i, c in table]
    bwd = [("B", i, v - 1 - c) for i, c in table]
    order = fwd[:warm]
    for j in range(total - warm):
        order += [fwd[warm + j], bwd[j]]
    order += bwd[total - warm :]
    return order


def simulate_pipeline(forward: np.ndarray, backward: np.ndarray, m: int, *,
                      p2p: float = 0.0, group: int | None = None,
                      start: np.ndarray | None = None) -> Timeline:  # fmt: skip
    """Timeline of one step: ``forward[s, c]`` and ``backward[s, c]`` are the times (s) of
    one micro-batch through model chunk c on rank s (shape p x v, or p x v x m for a time
    per micro-batch), ``p2p`` the time of one activation or gradient transfer between
    virtual stages, ``start[s]`` when rank s may begin (default 0)."""
    forward, backward = np.asarray(forward, float), np.asarray(backward, float)
    if forward.ndim == 1:
        forward, backward = forward[:, None], backward[:, None]
    if forward.ndim == 2:
        forward = np.repeat(forward[:, :, None], m, axis=2)
        backward = np.repeat(np.atleast_2d(backward)[:, :, None], m, axis=2)
    p, v = forward.shape[:2]
    if backward.shape != (p, v, m) or forward.shape != (p, v, m):
        raise ConfigError("forward and backward times need the same (stages, chunks) shape")
    if m < 1:
        raise ConfigError(f"micro-batches(={m}) must be >= 1")
    if v > 1 and m % (group or p):
        raise ConfigError(f"interleaved 1F1B needs micro-batches(={m}) divisible by "
                          f"{group or p} (Megatron-Core's requirement)")  # fmt: skip
    orders = [schedule_order(p, s, m, v, group) for s in range(p)]
    done: dict[tuple[str, int, int, int], float] = {}  # (kind, mb, chunk, rank) -> end
    free = [0.0] * p if start is None else [float(x) for x in start]
    pos = [0] * p
    ops: list[list[Op]] = [[] for _ in range(p)]
    last = v * p - 1

    def dep(kind: str, i: int, c: int, s: int) -> tuple[str, int, int, int] | None:
        g = c * p + s  # virtual stage
        if kind == "F":
            if g == 0:
                return None
            return ("F", i, (g - 1) // p, (g - 1) % p)
        if g == last:
            return ("F", i, c, s)
        return ("B", i, (g + 1) // p, (g + 1) % p)

    remaining = sum(len(o) for o in orders)
    while remaining:
        progressed = False
        for s in range(p):
            while pos[s] < len(orders[s]):
                kind, i, c = orders[s][pos[s]]
                d = dep(kind, i, c, s)
                if d is not None and d not in done:
                    break
                # A dependency on another rank waits for its transfer; the last virtual
                # stage turns its forward around into the backward in place.
                ready = 0.0 if d is None else done[d] + (p2p if d[3] != s else 0.0)
                begin = max(free[s], ready)
                end = begin + float(forward[s, c, i] if kind == "F" else backward[s, c, i])
                done[(kind, i, c, s)] = end
                free[s] = end
                ops[s].append(Op(kind, i, c, begin, end))
                pos[s] += 1
                remaining -= 1
                progressed = True
        if not progressed:  # pragma: no cover - Megatron's orders never deadlock
            raise RuntimeError("pipeline schedule deadlocked")
    return Timeline(tuple(tuple(o) for o in ops), max(free))
