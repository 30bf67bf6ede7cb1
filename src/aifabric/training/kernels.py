"""Kernel times on one GPU: GEMMs, attention, memory-bound operations (the one home).

A GEMM's time is the larger of its compute time and its memory time (a roofline per
kernel):

- compute: ``2 m n k`` FLOP at the dense peak times ``gemm_peak_efficiency`` (what the
  best cuBLAS kernels reach on large, well-shaped GEMMs), times the *tile and wave
  quantization* of the output (NVIDIA, *Matrix Multiplication Background User's Guide*,
  sections "Tile Quantization" and "Wave Quantization": the output is cut into tiles of a
  fixed shape, one thread block each, run in waves of one block per SM; a partial tile or
  a partial last wave costs as much as a full one), times ``k / (k + gemm_k_overhead)``
  (each block's main loop fills and drains its pipeline and writes its epilogue once,
  about one k-block of work). cuBLAS picks among several tile shapes; the model takes the
  fastest of ``gemm_tiles``, each with its relative throughput (smaller tiles reuse less
  data per load).
- memory: the operands and the result read or written once from HBM at
  ``hbm_bandwidth x hbm_efficiency``.

Attention: flash attention (Dao 2023; Shah et al. 2024) at a measured fraction of peak for
the forward and the backward (the backward does 2.5 x the forward's FLOP: it recomputes
the scores); without flash attention (Megatron-LM before 2023) the score and value
products are batched GEMMs and the softmax and dropout read and write the b a s^2 scores.

Memory-bound operations (norms, residual adds, dropout, activation functions, rotary
embedding, optimizer step): bytes moved / (HBM bandwidth x ``hbm_efficiency``).

Every constant is a field of :class:`ComputeCalibration`, read from the catalog's
``compute.yaml`` with its source; a GPU without an entry uses the ``default`` entry and
the output says so. Measured per-kernel tables can replace these functions later
(``KernelModel`` is the seam).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from aifabric.errors import ConfigError
from aifabric.spec.gpu import GpuSpec


@dataclass(frozen=True, slots=True, kw_only=True)
class ComputeCalibration:
    """Per-GPU constants of the kernel model (dimensionless unless named)."""

    name: str
    num_sms: int
    gemm_peak_efficiency: float
    gemm_tiles: tuple[tuple[int, int, float], ...]  # (rows, cols, relative throughput)
    gemm_k_overhead: float  # elements of k per block's fill, drain and epilogue
    hbm_efficiency: float
    attention_forward_efficiency: float
    attention_backward_efficiency: float
    overlap_compute_slowdown: float  # compute slows by this share while comm overlaps it
    source: str = ""
    fitted: str = ""  # the published point the fitted fields come from, if any

    def __post_init__(self) -> None:
        if self.num_sms < 1:
            raise ConfigError(f"compute calibration {self.name}: num_sms must be >= 1")
        for key in ("gemm_peak_efficiency", "hbm_efficiency", "attention_forward_efficiency",
                    "attention_backward_efficiency"):  # fmt: skip
            value = getattr(self, key)
            if not 0 < value <= 1:
                raise ConfigError(
                    f"compute calibration {self.name}: {key}(={value}) must be in (0, 1]"
                )
        if not 0 <= self.overlap_compute_slowdown < 1:
            raise ConfigError(
                f"compute calibration {self.name}: overlap_compute_slowdown must be in [0, 1)"
            )
        if not self.gemm_tiles or any(
            r < 1 or c < 1 or not 0 < e <= 1 for r, c, e in self.gemm_tiles
        ):
            raise ConfigError(f"compute calibration {self.name}: gemm_tiles need rows, cols >= 1 "
                              "and a relative throughput in (0, 1]")  # fmt: skip
        if self.gemm_k_overhead < 0:
            raise ConfigError(f"compute calibration {self.name}: gemm_k_overhead must be >= 0")


@dataclass(frozen=True, slots=True)
class KernelModel:
    """A GPU, its compute format and its calibration: times of kernels in s."""

    gpu: GpuSpec
    calibration: ComputeCalibration
    dtype: str = "bf16"

    @property
    def peak(self) -> float:
        return self.gpu.peak_flops(self.dtype)

    @property
    def memory_bandwidth(self) -> float:
        """Achievable HBM bytes/s."""
        return self.gpu.hbm_bandwidth * self.calibration.hbm_efficiency

    def gemm_efficiency(self, m: float, n: float, k: float, batch: float = 1.0) -> float:
        """Share of dense peak a (batch of) m x k by k x n GEMM(s) reaches when compute bound."""
        cal = self.calibration
        if min(m, n, k, batch) <= 0:
            return cal.gemm_peak_efficiency
        best = 0.0
        for rows, cols, relative in cal.gemm_tiles:
            tiles = math.ceil(m / rows) * math.ceil(n / cols) * math.ceil(batch)
            waves = math.ceil(tiles / cal.num_sms)
            quantization = m * n * batch / (waves * cal.num_sms * rows * cols)
            best = max(best, relative * quantization)
        return cal.gemm_peak_efficiency * best * k / (k + cal.gemm_k_overhead)

    def gemm(self, m: float, n: float, k: float, *, batch: float = 1.0,
             element_bytes: float = 2.0) -> float:  # fmt: skip
        """Time of ``batch`` GEMMs [m x k] @ [k x n]: max(compute, memory)."""
        if min(m, n, k, batch) <= 0:
            return 0.0
        flops = 2.0 * m * n * k * batch
        compute = flops / (self.peak * self.gemm_efficiency(m, n, k, batch))
        memory = (m * k + k * n + m * n) * batch * element_bytes / self.memory_bandwidth
        return max(compute, memory)

    def memory_bound(self, num_bytes: float) -> float:
        """Time to move ``num_bytes`` through HBM."""
        return max(num_bytes, 0.0) / self.memory_bandwidth

    def flash_attention(self, flops: float, *, backward: bool = False) -> float:
        """Time of flash attention doing ``flops`` (forward FLOP; the backward does 2.5 x)."""
        cal = self.calibration
        if backward:
            return 2.5 * flops / (self.peak * cal.attention_backward_efficiency)
        return flops / (self.peak * cal.attention_forward_efficiency)
