"""What a user asks the planner for: a fabric specification (validated, frozen)."""

from __future__ import annotations

import math
from dataclasses import dataclass

from aifabric.errors import ConfigError

GROUPINGS = ("rail", "tor")
REACHES = ("copper", "multimode", "singlemode")
RAIL_BY = ("nic", "slot")


@dataclass(frozen=True, slots=True, kw_only=True)
class FabricSpec:
    """A scale-out fabric to build.

    nic_speed is the line rate of one NIC (bytes/s); with planes > 1 each NIC port is split
    into that many links of nic_speed / planes, each to its own plane of switches.
    switch_radix (spine_radix, core_radix) counts ports at the speed they run: a
    51.2 Tb/s switch is radix 64 at 800G or 128 at 400G (fabric/radix.py checks it against
    the catalog). oversubscription is leaf down : up bandwidth (1 = non-blocking); spine_oversubscription
    is spine down : up in a 3-tier fabric (between pods and core). Both are finite numbers
    >= 1; a switch split by them keeps at least one up port (split_ports), so a radix-k
    switch builds at most (k - 1):1 and any larger ratio (1000, 1e18, 1e308) builds that,
    which the plan reports as a warning. A leaf below spines needs an up port, so
    leaf_up_ports=0 is refused unless one switch per plane takes every endpoint. grouping "rail" puts NIC
    i of every server of a scalable unit on the same leaf (rail-optimized); "tor" puts all
    NICs of consecutive servers on one leaf (top of rack). tiers: None picks the fewest.

    gpus_per_node counts the GPUs of one server (a DGX H100: 8; a GB200 compute tray: 4);
    scaleup_domain_size the GPUs of one NVLink domain (8; 72 for an NVL72 rack of 18
    trays), which may span servers. rail_by "nic" makes NIC i of a server rail i (DGX
    SuperPOD H100); "slot" makes the server's position in its multi-server scale-up domain
    the rail, all of that server's NICs on the rail's leaf (one leaf per tray slot of a
    scalable unit's racks). management_ports: fabric ports of non-GPU appliances (UFM)
    taking free leaf ports of the last scalable unit, one per leaf in rail order.

    endpoint_links_per_module: links one server-side transceiver module carries. Default
    (None): planes, one module per NIC whose port is split over the planes (a 400G module
    carrying 4 x 100G at planes=4, as NVIDIA's multi-plane ConnectX-8 designs break one
    OSFP cage out to several planes). 2 for DGX H100, whose twin-port OSFP cages each hold
    two ConnectX-7 ports; 1 for a NIC with a cage per plane (Alibaba HPN's 2 x 200G
    dual-port NICs, one port to each ToR).
    """

    name: str = "fabric"
    num_gpus: int
    gpus_per_node: int = 8
    nics_per_node: int = 8
    planes: int = 1
    nic_speed: float  # bytes/s per NIC
    switch_radix: int = 64
    spine_radix: int | None = None  # default switch_radix
    core_radix: int | None = None  # default spine radix
    leaf_down_ports: int | None = None  # override the oversubscription split of a leaf
    leaf_up_ports: int | None = None
    leaves_per_pod: int | None = None  # 3 tiers: pod size in leaves (default: spine down ports)
    port_speed: float | None = None  # bytes/s per inter-switch port; default nic_speed / planes
    oversubscription: float = 1.0
    spine_oversubscription: float = 1.0
    tiers: int | None = None
    grouping: str = "rail"
    su_nodes: int | None = None
    scaleup_domain_size: int = 8
    reach: tuple[str, str, str] = ("multimode", "multimode", "singlemode")
    switch_model: str = "generic"  # leaf model; spine and core default to it
    spine_switch_model: str | None = None
    core_switch_model: str | None = None  # default: the spine model
    # links one server-side transceiver module carries (None: planes, one module per NIC)
    endpoint_links_per_module: int | None = None
    rail_by: str = "nic"
    management_ports: int = 0

    def __post_init__(self) -> None:
        for name in ("num_gpus", "gpus_per_node", "nics_per_node", "planes", "switch_radix",
                     "endpoint_links_per_module"):  # fmt: skip
            value = getattr(self, name)
            if name == "endpoint_links_per_module" and value is None:
                continue
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ConfigError(f"{name}(={value!r}) must be an integer >= 1")
        if self.num_gpus % self.gpus_per_node:
            raise ConfigError(
                f"gpus(={self.num_gpus}) must be a multiple of gpus_per_node(={self.gpus_per_node})"
            )
        if self.gpus_per_node % self.nics_per_node:
            raise ConfigError(
                f"nics_per_node(={self.nics_per_node}) must divide gpus_per_node(={self.gpus_per_node})"
            )
        for name in ("switch_radix", "spine_radix", "core_radix"):
            value = getattr(self, name)
            if value is not None and (not isinstance(value, int) or value < 4 or value % 2):
                raise ConfigError(f"{name}(={value!r}) must be an even number >= 4")
        if (self.leaf_down_ports is None) != (self.leaf_up_ports is None):
            raise ConfigError("leaf_down_ports and leaf_up_ports go together")
        if self.leaf_down_ports is not None and self.leaf_up_ports is not None:
            if self.leaf_down_ports < 1 or self.leaf_up_ports < 0:
                raise ConfigError("leaf_down_ports must be >= 1 and leaf_up_ports >= 0")
            if self.leaf_down_ports + self.leaf_up_ports > self.switch_radix:
                raise ConfigError(
                    f"leaf_down_ports + leaf_up_ports(={self.leaf_down_ports + self.leaf_up_ports})"
                    f" exceed switch_radix(={self.switch_radix})"
                )
        ratios = (self.oversubscription, self.spine_oversubscription)
        if not all(math.isfinite(r) for r in ratios):
            raise ConfigError(
                f"oversubscription(={self.oversubscription}) and spine_oversubscription"
                f"(={self.spine_oversubscription}) must be finite numbers >= 1"
            )
        if self.oversubscription < 1 or self.spine_oversubscription < 1:
            raise ConfigError(
                f"oversubscription(={self.oversubscription}) and spine_oversubscription"
                f"(={self.spine_oversubscription}) must be >= 1 (1 = non-blocking)"
            )
        if self.nic_speed <= 0:
            raise ConfigError(f"nic_speed(={self.nic_speed}) must be > 0")
        if self.tiers is not None and self.tiers not in (1, 2, 3):
            raise ConfigError(f"tiers(={self.tiers}) must be 1, 2 or 3")
        if self.grouping not in GROUPINGS:
            raise ConfigError(f"grouping(={self.grouping!r}) must be rail or tor")
        if any(r not in REACHES for r in self.reach):
            raise ConfigError(f"reach {self.reach} must use {', '.join(REACHES)}")
        for name in ("su_nodes", "leaves_per_pod"):
            value = getattr(self, name)
            if value is not None and (not isinstance(value, int) or value < 1):
                raise ConfigError(f"{name}(={value!r}) must be an integer >= 1")
        if self.scaleup_domain_size < 1:
            raise ConfigError("scaleup_domain_size must be >= 1")
        if self.rail_by not in RAIL_BY:
            raise ConfigError(f"rail_by(={self.rail_by!r}) must be one of {', '.join(RAIL_BY)}")
        if self.rail_by == "slot":
            self._check_slot_rails()
        if not isinstance(self.management_ports, int) or self.management_ports < 0:
            raise ConfigError(
                f"management_ports(={self.management_ports!r}) must be an integer >= 0"
            )
        if self.leaf_up_ports == 0 and not self.single_switch():
            ports = self.num_nodes * self.nics_per_node + self.management_ports
            raise ConfigError(
                f"leaf_up_ports(=0) must be >= 1 unless one switch per plane takes every port"
                f" ({ports} ports per plane, switch_radix(={self.switch_radix}), tiers"
                f"(={self.tiers})): a leaf without up ports reaches no other leaf"
            )

    def _check_slot_rails(self) -> None:
        """Slot rails need whole multi-server domains, in whole scalable units."""
        size, per = self.scaleup_domain_size, self.gpus_per_node
        if self.grouping != "rail" or size <= per or size % per:
            raise ConfigError(
                f"rail_by='slot' needs rail grouping and a scale-up domain(={size}) that is a"
                f" multiple (> 1) of gpus_per_node(={per})"
            )
        if self.num_gpus % size:
            raise ConfigError(f"gpus(={self.num_gpus}) must fill whole scale-up domains of {size}")
        if not self.su_nodes or self.su_nodes % (size // per):
            raise ConfigError(
                f"rail_by='slot': su_nodes(={self.su_nodes}) must be whole scale-up domains of"
                f" {size // per} servers"
            )

    @property
    def nodes_per_domain(self) -> int:
        """Servers in one scale-up domain: 1 for an 8-GPU board, 18 trays for an NVL72."""
        return max(1, self.scaleup_domain_size // self.gpus_per_node)

    @property
    def num_nodes(self) -> int:
        return self.num_gpus // self.gpus_per_node

    @property
    def link_speed(self) -> float:
        """Bytes/s of one endpoint link (a NIC's share in one plane)."""
        return self.nic_speed / self.planes

    @property
    def switch_port_speed(self) -> float:
        return self.port_speed or self.link_speed

    @property
    def spine_k(self) -> int:
        return self.spine_radix or self.switch_radix

    @property
    def core_k(self) -> int:
        return self.core_radix or self.spine_k

    def single_switch(self) -> bool:
        """One switch per plane takes every endpoint on all its ports (1 tier, no uplinks)."""
        ports = self.num_nodes * self.nics_per_node + self.management_ports
        return self.tiers in (None, 1) and ports <= self.switch_radix

    def leaf_ports(self) -> tuple[int, int]:
        """(down, up) ports of a leaf: given, or split so that down/up = oversubscription."""
        if self.single_switch():
            return self.switch_radix, 0
        if self.leaf_down_ports is not None and self.leaf_up_ports is not None:
            return self.leaf_down_ports, self.leaf_up_ports
        return split_ports(self.switch_radix, self.oversubscription)

    def spine_ports(self) -> tuple[int, int]:
        return split_ports(self.spine_k, self.spine_oversubscription)

    @property
    def leaf_oversubscription(self) -> float:
        """Down capacity / up capacity of a leaf (endpoint links vs inter-switch ports)."""
        down, up = self.leaf_ports()
        return math.inf if up == 0 else down * self.link_speed / (up * self.switch_port_speed)


def split_ports(radix: int, ratio: float) -> tuple[int, int]:
    """Down and up ports of a radix-k switch with down:up = ratio >= 1.

    down = floor(k r / (1 + r)), at most k - 1: a switch that is split has something above
    it, so it keeps one up port. k r / (1 + r) >= k - 1 exactly when r >= k - 1, so such
    ratios take (k - 1, 1) directly; that also keeps huge r out of floating point, where
    1 + r == r (r = 1e18 gave k down, 0 up) and k r overflows (r = 1e308 gave NaN).
    """
    if ratio >= radix - 1:
        return radix - 1, 1
    down = int(radix * ratio // (1 + ratio))
    return down, radix - down
