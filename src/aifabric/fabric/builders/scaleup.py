"""Scale-up domains: the NVLink/NVSwitch (or Infinity Fabric) islands inside the cluster.

A domain is scaleup_domain_size consecutive GPUs (an 8-GPU HGX board, a 72-GPU NVL72
rack). Its bandwidth is the GPU catalog's per-GPU scale-up figure; switch chips per domain
come from the catalog (HGX H100: 4 NVSwitch chips; NVL72: 18 NVLink-switch chips).
"""

from __future__ import annotations

from typing import Any

from aifabric.errors import ConfigError
from aifabric.spec.gpu import GpuSpec


def scaleup_summary(num_gpus: int, gpu: GpuSpec, domain_size: int | None = None) -> dict[str, Any]:
    """Domains, switch chips and bandwidth of the scale-up tier (bytes/s, per direction)."""
    size = domain_size or gpu.scaleup_domain_size
    if num_gpus % size:
        raise ConfigError(f"gpus(={num_gpus}) must be a multiple of the scale-up domain ({size})")
    domains = num_gpus // size
    return {
        "domain_size": size,
        "domains": domains,
        "interconnect": gpu.scaleup,
        "switch_chips": domains * gpu.scaleup_switches_per_domain,
        "bandwidth_per_gpu_bytes_per_s": gpu.scaleup_bandwidth_per_direction,
        "bandwidth_total_bytes_per_s": gpu.scaleup_bandwidth_per_direction * num_gpus,
    }
