"""NCCL's algorithm choice: the tuning model of ``ncclTopoTuneModel``, simplified.

Source: NVIDIA/nccl, ``src/graph/tuning.cc`` (``ncclTopoTuneModel`` builds, per collective,
algorithm and protocol, a latency in us and a bandwidth in GB/s; ``ncclTopoGetAlgoTime``
turns them into ``time = latency + nBytes / (1000 x bandwidth)``) and ``src/enqueue.cc``
(``updateCollCostTable`` / ``topoGetAlgoInfo``: NCCL runs the (algorithm, protocol) pair of
least predicted time unless ``NCCL_ALGO`` / ``NCCL_PROTO`` restrict the set), read at commit
5067397 (2026). The constants below are that file's defaults for Hopper GPUs on an x86
Intel host (``ncclTunerConstantsDefaults``, ``getNetOverhead``).

The rule ``choose`` applies (``auto``):

- send/recv and all-to-all: ``direct`` (NCCL runs them as grouped point-to-point sends;
  no algorithm is tuned).
- all-gather, reduce-scatter, broadcast: ``ring``. tuning.cc offers AllGather and
  ReduceScatter only ring, PAT, NVLS and CollNet-Direct: PAT only with one GPU per node
  (``ncclPatEnable``), where it moves the ring's bytes; NVLS across nodes and CollNet only
  with a CollNet (SHARP) plug-in that implements them; neither is modeled here.
- all-reduce inside one scale-up domain: ``ring``. On one node NCCL's tree is a chain whose
  bandwidth is 0.92 x 1/2 of the bus bandwidth against the ring's n / 2(n-1); for n <= 8 the
  model below never prefers it (tests/test_nccl_choice.py), for 16- and 72-GPU domains it
  would in a band of sizes around 10 MB (tree LL128), which this rule does not follow. With
  in-network reduction: ``nvls`` when its predicted time is lower (above ~1 MB on 8 H100s).
- all-reduce across domains: ``ring`` or ``tree``, whichever the model predicts faster at
  this size, rank count and node count (``num_nodes`` = occupied scale-up domains): the
  ring pays 2(n-1) steps, 2(nodes-1) of them at network latency; the tree pays
  2 ((n/nodes - 1) x NVLink + log2(nodes) x network) latencies, and its bandwidth is
  0.92 x 1/2 of the bus bandwidth against the ring's n / 2(n-1). With in-network reduction
  across domains: ``nvls`` (NVLink SHARP inside, SHARP across; NCCL's NVLS algorithm on
  more than one node requires CollNet) or, with one rank per domain, ``sharp`` (CollNet).
  NCCL weighs their latency too, but their bandwidth terms come from the NVLS / CollNet
  graphs that only the topology search finds (``src/graph/search.cc``), so across domains
  they are taken whenever asked.

Simplifications (named inputs in ``NcclSystem``): both graphs reach the same bus bandwidth
per rank, the GPU's NIC rate across nodes and its NVLink rate per direction on one node
(NCCL uses the graph's bwIntra up to two nodes and may raise the tree's to twice bwInter
there); the network adds no latency of its own (``graph->latencyInter`` = 0); the tree graph
is balanced (no 0.85 pattern penalty); ``num_channels`` channels. NVLS on one node: the same
bus bandwidth times the NVLS efficiency (0.85 Hopper), times 2 (all-reduce pipelines two
operations) and (channels-1)/channels; latency 25 us.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

from aifabric.errors import ConfigError

if TYPE_CHECKING:
    from aifabric.spec.gpu import GpuSpec

PROTOCOLS = ("LL", "LL128", "Simple")
RULE = "nccl_tuning"

# tuning.cc ncclTunerConstantsDefaults, per protocol (LL, LL128, Simple); us.
BASE_LATENCY_US = {"tree": (6.8, 14.0, 8.4), "ring": (6.6, 14.0, 8.4)}
NVLINK_LATENCY_US = {"tree": (0.6, 1.25, 4.0), "ring": (0.6, 1.9, 3.4), "nvls": (0, 0, 25.0)}
NET_LATENCY_US = {"tree": (5.0, 8.5, 14.0), "ring": (2.7, 4.0, 14.0)}
NET_OVERHEAD_US = 1.0  # getNetOverhead, x86 Intel; x3 for Simple
# GB/s, indexed by nodes (1, 2, >=3): llMaxBws (Hopper row on one node, Intel row across),
# perChMaxRingLL128Bws, perChMaxTreeBws, perChMaxTreeLL128Bws (Hopper rows).
LL_MAX_BW = (141.0, 39.0, 20.4)
RING_LL128_MAX_BW_PER_CHANNEL = (36.7, 36.7, 36.7)
TREE_MAX_BW_PER_CHANNEL = (38.7, 41.4, 36.0)
TREE_LL128_MAX_BW_PER_CHANNEL = (36.7, 36.7, 29.0)
NVLS_EFFICIENCY = 0.85  # nvlsEfficiency, Hopper
RING_PLATEAU = 1.4  # ring Simple latency factor across nodes (compute capability >= 8.0)
# treeCorrectionFactor: tree all-reduce bandwidth factor by log2(bytes / 64), 64 B to 256 MB.
TREE_CORRECTION = {
    "LL": (1.0, 1.0, 1.0, 1.0, .9, .8, .7, .7, .7, .7, .6, .5, .4, .4, .5, .6, .7, .8, .9, 1.0,
           1.0, 1.0, 1.0, 1.0),
    "LL128": (1.0, 1.0, 1.0, 1.0, 1.0, .9, .8, .8, .8, .7, .6, .6, .6, .6, .6, .6, .8, .9, .9,
              .9, .9, 1.0, 1.0, 1.0),
    "Simple": (.9, .9, .9, .9, .9, .9, .9, .8, .7, .6, .6, .5, .5, .5, .5, .6, .7, .8, .7, .7,
               .8, .9, .9, .9),
}  # fmt: skip

REFERENCE_SCALE_UP_BANDWIDTH = 450e9  # bytes/s per direction: H100 NVLink 4 (900 GB/s total)
REFERENCE_SCALE_OUT_BANDWIDTH = 50e9  # bytes/s: one 400 Gb/s NIC per GPU


@dataclass(frozen=True, slots=True, kw_only=True)
class NcclSystem:
    """What the tuning model needs of the machine.

    scale_up_bandwidth: bytes/s one GPU sends into its scale-up domain (one direction);
    scale_out_bandwidth: bytes/s one GPU sends on the scale-out network (its NIC);
    num_channels: NCCL channels (the per-channel caps of tuning.cc scale with it).
    """

    scale_up_bandwidth: float = REFERENCE_SCALE_UP_BANDWIDTH
    scale_out_bandwidth: float = REFERENCE_SCALE_OUT_BANDWIDTH
    num_channels: int = 16

    def __post_init__(self) -> None:
        for name in ("scale_up_bandwidth", "scale_out_bandwidth"):
            if not getattr(self, name) > 0:
                raise ConfigError(f"{name}(={getattr(self, name)!r}) must be > 0 bytes/s")
        if self.num_channels < 2:
            raise ConfigError(f"num_channels(={self.num_channels}) must be >= 2")

    @classmethod
    def of_gpu(cls, gpu: GpuSpec | None) -> NcclSystem:
        """NVLink rate per direction and default NIC rate of a catalog GPU (None: H100)."""
        if gpu is None:
            return cls()
        return cls(
            scale_up_bandwidth=gpu.scaleup_bandwidth_per_direction,
            scale_out_bandwidth=gpu.default_nic_speed,
        )


def _log2i(x: int) -> int:
    return x.bit_length() - 1 if x > 0 else -1


def _latency_us(algorithm: str, p: int, n: int, nodes: int) -> float:
    """ncclTopoTuneModel's all-reduce latency of ring or tree for protocol index p, in us."""
    ppn = n / nodes
    intra = NVLINK_LATENCY_US[algorithm][p]
    # With one rank per node NCCL charges the tree's network latency to every algorithm.
    inter = NET_LATENCY_US["tree" if ppn == 1 else algorithm][p]
    base = BASE_LATENCY_US[algorithm][p]
    if algorithm == "tree":
        return base + 2 * ((n // nodes - 1) * intra + _log2i(nodes) * inter)
    overhead = 0.0 if nodes == 1 else NET_OVERHEAD_US * (3 if PROTOCOLS[p] == "Simple" else 1)
    steps, inter_steps = 2 * (n - 1), 2 * (nodes - 1)
    return base + (steps - inter_steps) * max(intra, overhead) + inter_steps * inter


def _bandwidth_gbs(algorithm: str, p: int, n: int, nodes: int, bus: float, ch: int) -> float:
    """ncclTopoTuneModel's all-reduce algorithm bandwidth in GB/s (bus: GB/s per rank)."""
    i = min(nodes, 3) - 1
    proto = PROTOCOLS[p]
    if algorithm == "ring":
        if proto == "LL":
            bus = min(LL_MAX_BW[i], bus * 0.5)
        elif proto == "LL128":
            bus = min(bus * 0.92, ch * RING_LL128_MAX_BW_PER_CHANNEL[i])
        return bus * n / (2 * (n - 1))
    bus = min(bus * 0.92, ch * TREE_MAX_BW_PER_CHANNEL[i])
    if proto == "LL":
        bus = min(bus / 3.8, LL_MAX_BW[i])
    elif proto == "LL128":
        factor = 7.0 / 9.0 if nodes == 1 else 120.0 / 128.0
        bus = min(bus * factor, ch * TREE_LL128_MAX_BW_PER_CHANNEL[i])
    return bus * 0.5


def predicted_time(
    algorithm: str,
    protocol: str,
    *,
    num_ranks: int,
    num_nodes: int,
    size: float,
    system: NcclSystem | None = None,
) -> float:
    """NCCL's predicted time in s of one all-reduce of ``size`` bytes (ring, tree or nvls).

    time = latency + size / bandwidth (ncclTopoGetAlgoTime), with the tree's bandwidth
    times treeCorrectionFactor for 64 B <= size < 512 MB and the ring's Simple latency
    times 1.4 across nodes once size / (channels x n) >= 64 B. ``nvls`` is one node only.

    Raises:
        ConfigError: unknown algorithm or protocol, or ranks / nodes out of range.
    """
    system = system or NcclSystem()
    if protocol not in PROTOCOLS:
        raise ConfigError(f"protocol(={protocol!r}) must be one of {', '.join(PROTOCOLS)}")
    if not 1 <= num_nodes <= num_ranks or num_ranks < 2:
        raise ConfigError(
            f"num_nodes(={num_nodes}) must be in 1..num_ranks(={num_ranks}), num_ranks >= 2"
        )
    n, nodes, p, ch = num_ranks, num_nodes, PROTOCOLS.index(protocol), system.num_channels
    bus_bytes = system.scale_up_bandwidth if nodes == 1 else system.scale_out_bandwidth
    bus = bus_bytes / 1e9  # GB/s, tuning.cc's unit
    if algorithm == "nvls":
        if nodes != 1 or protocol != "Simple":
            return math.inf
        latency = NVLINK_LATENCY_US["nvls"][p]
        bandwidth = bus * NVLS_EFFICIENCY * 2 * (ch - 1) / ch * n / (2 * (n - 1))
    elif algorithm in ("ring", "tree"):
        latency = _latency_us(algorithm, p, n, nodes)
        bandwidth = _bandwidth_gbs(algorithm, p, n, nodes, bus, ch)
        log_size = _log2i(int(size) >> 6)
        if algorithm == "tree" and 0 <= log_size < 23:
            bandwidth *= TREE_CORRECTION[protocol][log_size]
        if algorithm == "ring" and protocol == "Simple" and nodes > 1 and size / (ch * n) >= 64:
            latency *= RING_PLATEAU
    else:
        raise ConfigError(f"the tuning model covers ring, tree and nvls, not {algorithm!r}")
    return (latency + size / (1000.0 * bandwidth)) * 1e-6


def fastest(
    algorithms: tuple[str, ...],
    *,
    num_ranks: int,
    num_nodes: int,
    size: float,
    system: NcclSystem | None = None,
) -> tuple[str, str]:
    """(algorithm, protocol) of least predicted all-reduce time; ties go to the first."""
    best = min(
        (predicted_time(a, p, num_ranks=num_ranks, num_nodes=num_nodes, size=size,
                        system=system), i, a, p)
        for i, (a, p) in enumerate((a, p) for a in algorithms for p in PROTOCOLS)
    )  # fmt: skip
    return best[2], best[3]


def choose(
    operation: str,
    *,
    num_ranks: int,
    num_nodes: int,
    size: float,
    in_network_reduction: bool = False,
    system: NcclSystem | None = None,
) -> str:
    """The algorithm NCCL would run (module docstring), by the tuning model where it decides.

    Args:
        num_nodes: scale-up domains the group occupies (NCCL's nNodes).
        size: bytes of one call, NCCL-tests convention.
    """
    if operation in ("send_recv", "all_to_all"):
        return "direct"
    if operation != "all_reduce" or num_ranks < 2:
        return "ring"
    if num_nodes == 1:
        if not in_network_reduction:
            return "ring"
        return fastest(("ring", "nvls"), num_ranks=num_ranks, num_nodes=1, size=size,
                       system=system)[0]  # fmt: skip
    if in_network_reduction:
        return "sharp" if num_nodes == num_ranks else "nvls"
    return fastest(("ring", "tree"), num_ranks=num_ranks, num_nodes=num_nodes, size=size,
                   system=system)[0]  # fmt: skip
