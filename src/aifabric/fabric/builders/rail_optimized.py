"""Rail-optimized multi-plane Clos, built from scalable units (NVIDIA DGX SuperPOD style).

NIC i of every server in a scalable unit (SU) plugs into leaf i of that SU ("rail" i), so
traffic between same-rank GPUs of different servers in one SU crosses a single leaf;
spines are shared by all SUs, and a core tier appears when the spines run out of ports.
Reference: NVIDIA DGX SuperPOD Reference Architecture, DGX H100 (RA-11333-001), Tables 3-4.
"""

from __future__ import annotations

from dataclasses import replace

from aifabric.fabric.builders.clos import build_clos
from aifabric.fabric.spec import FabricSpec
from aifabric.fabric.topology import Topology


def build_rail_optimized(spec: FabricSpec) -> Topology:
    """A rail-optimized Clos: ``spec`` with grouping forced to "rail"."""
    return build_clos(replace(spec, grouping="rail"))
