"""Max-min fair rates of flows over shared links (progressive filling).

Every flow crosses a set of links; rates rise together until a link saturates, the flows
on it are frozen at its fair share, and the rest go on rising (Bertsekas & Gallager, Data
Networks, 6.5.2). The result is the unique max-min fair allocation: no flow can get more
without taking from a flow that has no more than it.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence


def max_min_rates(paths: Sequence[Sequence[int]], capacity: Mapping[int, float]) -> list[float]:
    """Rate (bytes/s) of each flow; ``paths[f]`` lists the links flow f crosses.

    A flow that crosses no finite link gets inf. Links absent from ``capacity`` are
    unconstrained.
    """
    users: dict[int, list[int]] = {}
    for f, path in enumerate(paths):
        for link in path:
            if link in capacity:
                fs = users.setdefault(link, [])
                if not fs or fs[-1] != f:  # a link listed twice on a path counts once
                    fs.append(f)
    if all(len(fs) == 1 for fs in users.values()):  # no link shared: each flow alone
        return [min((capacity[ln] for ln in path if ln in capacity), default=math.inf)
                for path in paths]  # fmt: skip
    rates = [math.inf] * len(paths)
    left = {link: capacity[link] for link in users}
    sets = {link: set(fs) for link, fs in users.items()}
    while sets:
        # The tightest link sets the next frozen level.
        link, share = min(
            ((ln, left[ln] / len(fs)) for ln, fs in sets.items()),
            key=lambda item: (item[1], item[0]),
        )
        for f in sets.pop(link):
            rates[f] = share
            for other in dict.fromkeys(paths[f]):
                on = sets.get(other)
                if on is not None:
                    on.discard(f)
                    left[other] -= share
                    if not on:
                        del sets[other]
    return rates
