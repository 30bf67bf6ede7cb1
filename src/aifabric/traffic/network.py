"""Network requirement helpers: time through a link or switch, devices for a deadline.

Capacities are bytes/s inside aifabric; a vendor's "51.2T" switch is 51.2e12 *bits*/s =
6.4e12 bytes/s (parse it with aifabric.units.parse_bandwidth). Seed 002 reads 51.2T as
bytes/s, which is why its "20 days" and "20 switches" are 8x too small.
"""

from __future__ import annotations

import math

from aifabric.errors import ConfigError


def transfer_time(nbytes: float, capacity: float, *, utilization: float = 1.0) -> float:
    """Seconds to move ``nbytes`` through ``capacity`` bytes/s at a given utilization.

    Raises:
        ConfigError: capacity <= 0 or utilization outside (0, 1].
    """
    if capacity <= 0:
        raise ConfigError(f"capacity(={capacity}) must be > 0 bytes/s")
    if not 0 < utilization <= 1:
        raise ConfigError(f"utilization(={utilization}) must be in (0, 1]")
    return nbytes / (capacity * utilization)


def devices_for_deadline(
    nbytes: float, deadline: float, capacity: float, *, utilization: float = 1.0
) -> float:
    """Fractional number of devices of ``capacity`` bytes/s that move ``nbytes`` in ``deadline`` s.

    Round up (``math.ceil``) for a count of whole devices.
    """
    if deadline <= 0:
        raise ConfigError(f"deadline(={deadline}) must be > 0 s")
    return transfer_time(nbytes, capacity, utilization=utilization) / deadline


def whole_devices(fraction: float) -> int:
    """Whole devices for a fractional requirement (tolerates float noise just above an int).

    Raises:
        ConfigError: the requirement is not finite (a deadline or rate so small that the
            devices needed overflow), so no count can be given.
    """
    if not math.isfinite(fraction) or fraction > 1e18:
        raise ConfigError(
            f"the requirement ({fraction:.3g} devices) has no finite answer; give a longer "
            "deadline, a higher rate or fewer bytes"
        )
    return math.ceil(fraction - 1e-9)
