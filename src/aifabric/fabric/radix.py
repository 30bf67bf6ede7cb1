"""Switch radix as the hardware allows: ports per switch at a port speed, and the check.

A switch of one-direction capacity C runs at most C / s ports of speed s, and only at the
speeds its cages break out to (the catalog's ``port_modes``, catalog/data/network.yaml):
a 51.2 Tb/s Tomahawk 5 or SN5600 is 64 x 800G or 128 x 400G; a QM9700 (25.6 Tb/s one way,
NVIDIA's 51.2 Tb/s counts both directions) is 64 x 400G or 128 x 200G, never 64 x 800G.
A leaf whose down and up ports run at different speeds (Alibaba HPN: 128 x 200G down,
60 x 400G up on a 51.2T ToR) must fit the sum: sum(ports x speed) <= C.
"""

from __future__ import annotations

from aifabric.errors import ConfigError
from aifabric.fabric.spec import FabricSpec
from aifabric.spec.gpu import SwitchSpec

TIERS = ("leaf", "spine", "core")


def _gbps(speed: float) -> str:
    return f"{speed * 8 / 1e9:g}"


def _modes(switch: SwitchSpec) -> str:
    modes = switch.port_modes or ((switch.port_speed, switch.ports),)
    listed = ", ".join(f"{count} x {_gbps(speed)}G" for speed, count in modes)
    return f"{listed}; {switch.capacity * 8 / 1e12:g} Tb/s per direction"


def radix_at(switch: SwitchSpec, speed: float, *, what: str | None = None) -> int:
    """Ports ``switch`` runs at ``speed`` (bytes/s): its breakout at that speed. ``what``
    names the speed in the error ("nic 800 Gb/s"; default "port speed N Gb/s").

    Raises:
        ConfigError: the switch has no port of that speed (too fast, or no optic/breakout).
    """
    ports = switch.ports_at(speed)
    if ports is None:
        raise ConfigError(
            f"{what or f'port speed {_gbps(speed)} Gb/s'} is not a port speed of {switch.name} "
            f"({_modes(switch)}); choose another --switch, --nic or --planes"
        )
    return ports


def check_ports(switch: SwitchSpec, ports: list[tuple[int, float]], tier: str) -> None:
    """Refuse a switch whose ports, as (count, bytes/s) pairs, exceed what it runs.

    Each speed must be one of the switch's port modes with at most that mode's ports, and
    sum(count x speed) must not exceed the one-direction capacity.

    Raises:
        ConfigError: naming the tier, the ports asked for and the switch's limit.
    """
    by_speed: dict[float, int] = {}
    for count, speed in ports:
        if count > 0:
            by_speed[speed] = by_speed.get(speed, 0) + count
    used = [(n, s) for s, n in by_speed.items()]
    for count, speed in used:
        limit = radix_at(switch, speed, what=f"{tier} port speed {_gbps(speed)} Gb/s")
        if count > limit:
            raise ConfigError(
                f"{tier} switch_radix(={count}) x {_gbps(speed)} Gb/s = "
                f"{count * speed * 8 / 1e12:g} Tb/s exceeds {switch.name} ({_modes(switch)}):"
                f" at most {limit} ports of {_gbps(speed)} Gb/s"
            )
    total = sum(n * s for n, s in used)
    if total > switch.capacity * (1 + 1e-9):
        asked = " + ".join(f"{n} x {_gbps(s)}G" for n, s in used)
        raise ConfigError(
            f"{tier} ports {asked} = {total * 8 / 1e12:g} Tb/s exceed {switch.name}'s "
            f"capacity of {switch.capacity * 8 / 1e12:g} Tb/s per direction"
        )


def tier_models(spec: FabricSpec) -> dict[str, str]:
    """Switch model of each tier (leaf, spine, core)."""
    spine = spec.spine_switch_model or spec.switch_model
    return {"leaf": spec.switch_model, "spine": spine, "core": spec.core_switch_model or spine}


def check_fabric(spec: FabricSpec, catalog: dict[str, SwitchSpec]) -> None:
    """Check every tier's ports against its catalog switch (models not in it: unchecked).

    Raises:
        ConfigError: a tier asks more ports x speed than its switch runs.
    """
    down, up = spec.leaf_ports()
    ports = {
        "leaf": [(down, spec.link_speed), (up, spec.switch_port_speed)],
        "spine": [(spec.spine_k, spec.switch_port_speed)],
        "core": [(spec.core_k, spec.switch_port_speed)],
    }
    for tier, model in tier_models(spec).items():
        if model in catalog:
            check_ports(catalog[model], ports[tier], tier)
