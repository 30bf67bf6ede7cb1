"""Accelerator and network-part specifications (values in base units)."""

from __future__ import annotations

from dataclasses import dataclass

from aifabric.errors import ConfigError


@dataclass(frozen=True, slots=True, kw_only=True)
class GpuSpec:
    """One accelerator.

    scaleup_bandwidth is the vendor's per-GPU total bidirectional figure in bytes/s;
    scaleup_bandwidth_per_direction is what one GPU can send (and, at once, receive).
    """

    name: str
    peak_bf16_flops: float  # FLOP/s, dense
    peak_fp8_flops: float | None  # FLOP/s, dense; None when the chip has no FP8 units
    hbm_bytes: float  # bytes
    hbm_bandwidth: float  # bytes/s
    scaleup: str
    scaleup_bandwidth: float  # bytes/s, bidirectional total per GPU
    scaleup_domain_size: int
    tdp: float  # W
    default_nic_speed: float  # bytes/s
    scaleup_switches_per_domain: int = 0
    source: str = ""

    def __post_init__(self) -> None:
        if self.scaleup_domain_size < 1:
            raise ConfigError(f"gpu {self.name}: scaleup_domain_size must be >= 1")
        for name in ("peak_bf16_flops", "hbm_bytes", "hbm_bandwidth", "scaleup_bandwidth"):
            if getattr(self, name) <= 0:
                raise ConfigError(f"gpu {self.name}: {name} must be > 0")

    @property
    def scaleup_bandwidth_per_direction(self) -> float:
        """Bytes/s one GPU can push into the scale-up fabric (half the bidirectional total)."""
        return self.scaleup_bandwidth / 2.0

    def peak_flops(self, dtype: str = "bf16") -> float:
        """Dense peak FLOP/s for a compute format (bf16/fp16 or fp8).

        Raises:
            ConfigError: the GPU has no units for that format.
        """
        if dtype in ("bf16", "fp16"):
            return self.peak_bf16_flops
        if dtype == "fp8":
            if self.peak_fp8_flops is None:
                raise ConfigError(f"gpu {self.name} has no FP8 tensor cores; use --dtype bf16")
            return self.peak_fp8_flops
        raise ConfigError(f"compute dtype {dtype!r} is not one of bf16, fp16, fp8")

    def summary(self) -> dict[str, object]:
        """The catalog entry in the JSON vocabulary (base-unit suffixes)."""
        return {
            "name": self.name,
            "peak_bf16_flop_per_s": self.peak_bf16_flops,
            "peak_fp8_flop_per_s": self.peak_fp8_flops,
            "hbm_bytes": self.hbm_bytes,
            "hbm_bandwidth_bytes_per_s": self.hbm_bandwidth,
            "scale_up_interconnect": self.scaleup,
            "scale_up_bandwidth_bytes_per_s": self.scaleup_bandwidth,
            "scale_up_bandwidth_per_direction_bytes_per_s": self.scaleup_bandwidth_per_direction,
            "scale_up_domain_size": self.scaleup_domain_size,
            "tdp_w": self.tdp,
            "default_nic_speed_bytes_per_s": self.default_nic_speed,
            "source": self.source,
        }


@dataclass(frozen=True, slots=True, kw_only=True)
class NicSpec:
    """A network interface card: line rate in bytes/s."""

    name: str
    speed: float  # bytes/s
    ports: int = 1
    source: str = ""

    def summary(self) -> dict[str, object]:
        """The catalog entry in the JSON vocabulary (bytes/s, and bits/s as vendors quote it)."""
        return {"name": self.name, "speed_bytes_per_s": self.speed,
                "speed_bits_per_s": self.speed * 8.0, "ports": self.ports,
                "source": self.source}  # fmt: skip


@dataclass(frozen=True, slots=True, kw_only=True)
class SwitchSpec:
    """A switch: radix, port rate and one-direction switching capacity (bytes/s)."""

    name: str
    ports: int
    port_speed: float  # bytes/s
    capacity: float  # bytes/s, one direction (= ports x port_speed for a full-rate ASIC)
    latency: float | None = None  # s, port to port
    buffer_bytes: float | None = None
    source: str = ""
    # (bytes/s, ports) for each port speed the switch runs (its breakouts), fastest first
    port_modes: tuple[tuple[float, int], ...] = ()
    cages: int | None = None  # transceiver cages on the front panel

    def summary(self) -> dict[str, object]:
        """The catalog entry in the JSON vocabulary (base-unit suffixes)."""
        return {
            "name": self.name, "ports": self.ports, "port_speed_bytes_per_s": self.port_speed,
            "port_speed_bits_per_s": self.port_speed * 8.0,
            "capacity_bytes_per_s": self.capacity, "capacity_bits_per_s": self.capacity * 8.0,
            "latency_s": self.latency, "buffer_bytes": self.buffer_bytes,
            "port_modes": [{"speed_bytes_per_s": s, "ports": n} for s, n in self.port_modes],
            "cages": self.cages, "source": self.source,
        }  # fmt: skip

    def ports_at(self, speed: float) -> int | None:
        """Ports the switch runs at ``speed`` (bytes/s), or None when it has no such mode."""
        for mode_speed, count in self.port_modes or ((self.port_speed, self.ports),):
            if abs(mode_speed - speed) <= 1e-9 * speed:
                return count
        return None
