"""Synthetic workloads: arrival processes and prompt/output length distributions, seeded.

Arrivals: Poisson (exponential gaps) or Gamma renewal with a burstiness CV (CV = 1 is
Poisson; seed 003: inference arrivals are Poisson, service long-tailed). Lengths: fixed,
uniform, lognormal (given mean and CV) or Pareto (given minimum and tail index alpha).
Every draw comes from the caller's numpy Generator, so equal seeds give equal workloads.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from aifabric.errors import ConfigError

DISTRIBUTIONS = ("fixed", "uniform", "lognormal", "pareto")


def arrival_times(rng: np.random.Generator, *, rate_rps: float, num_requests: int,
                  burstiness_cv: float = 1.0) -> np.ndarray:  # fmt: skip
    """Arrival times (s) of a renewal process with mean rate ``rate_rps``.

    Gaps are Gamma(shape k = 1 / cv^2, scale = 1 / (rate k)): mean 1 / rate, CV = cv.

    Raises:
        ConfigError: rate <= 0, cv <= 0, num_requests < 1.
    """
    if not rate_rps > 0 or not math.isfinite(rate_rps):
        raise ConfigError(f"workload.rate_rps(={rate_rps}) must be a finite number > 0")
    if not burstiness_cv > 0 or not math.isfinite(burstiness_cv):
        raise ConfigError(f"workload.burstiness_cv(={burstiness_cv}) must be > 0 (1 = Poisson)")
    if num_requests < 1:
        raise ConfigError(f"workload.num_requests(={num_requests}) must be >= 1")
    shape = 1.0 / burstiness_cv**2
    gaps = rng.gamma(shape, 1.0 / (rate_rps * shape), size=num_requests)
    return np.cumsum(gaps)


def schedule_clock(durations: np.ndarray, rates: np.ndarray,
                   work: np.ndarray) -> np.ndarray:  # fmt: skip
    """Times (s) at which a piecewise-constant rate's integral reaches ``work`` (expected
    arrivals): the inverse of Lambda(t) = integral of rate. Phase j runs ``rates[j]`` for
    ``durations[j]`` seconds; after the last phase its rate continues."""
    ends = np.concatenate([[0.0], np.cumsum(durations)])
    lam = np.concatenate([[0.0], np.cumsum(durations * rates)])
    inside = np.interp(work, lam, ends)
    beyond = ends[-1] + (work - lam[-1]) / rates[-1]
    out: np.ndarray = np.where(work <= lam[-1], inside, beyond)
    return out


def schedule_times(rng: np.random.Generator, *, durations: np.ndarray, rates: np.ndarray,
                   num_requests: int, burstiness_cv: float = 1.0) -> np.ndarray:  # fmt: skip
    """Arrival times (s, from 0) of a renewal process whose rate follows a schedule.

    Time change (Cinlar, "Introduction to Stochastic Processes", 1975, sec. 4.7; the
    inversion method of Lewis & Shedler, Naval Res. Logist. Q. 26(3), 1979): unit-rate
    arrivals (Gamma gaps of mean 1 and CV ``burstiness_cv``) are mapped through the inverse
    of the cumulative rate, which for CV = 1 is exactly a non-homogeneous Poisson process
    with that rate. The draws are the same as ``arrival_times`` at rate 1.
    """
    unit = arrival_times(rng, rate_rps=1.0, num_requests=num_requests,
                         burstiness_cv=burstiness_cv)  # fmt: skip
    return schedule_clock(durations, rates, unit)


@dataclass(frozen=True, slots=True, kw_only=True)
class LengthDistribution:
    """Token-count distribution; draws are rounded and clipped to [minimum, maximum]."""

    kind: str = "fixed"
    mean: float = 1024.0
    cv: float = 1.0  # lognormal
    low: float = 1.0  # uniform lower bound, Pareto minimum
    high: float = 2048.0  # uniform upper bound
    alpha: float = 1.5  # Pareto tail index
    minimum: int = 1
    maximum: int = 1_000_000

    def __post_init__(self) -> None:
        if self.kind not in DISTRIBUTIONS:
            raise ConfigError(
                f"length kind(={self.kind!r}) must be one of {', '.join(DISTRIBUTIONS)}"
            )
        if self.mean <= 0 or self.cv <= 0 or self.alpha <= 0 or self.low <= 0:
            raise ConfigError("length mean, cv, alpha and low must be > 0")
        if self.kind == "uniform" and self.high < self.low:
            raise ConfigError(f"uniform lengths need high(={self.high}) >= low(={self.low})")
        if self.minimum < 0 or self.maximum < self.minimum:
            raise ConfigError("length bounds need 0 <= minimum <= maximum")

    def sample(self, rng: np.random.Generator, size: int) -> np.ndarray:
        """``size`` integer token counts."""
        if self.kind == "fixed":
            values = np.full(size, self.mean)
        elif self.kind == "uniform":
            values = rng.uniform(self.low, self.high, size)
        elif self.kind == "lognormal":
            sigma2 = math.log1p(self.cv**2)
            mu = math.log(self.mean) - sigma2 / 2
            values = rng.lognormal(mu, math.sqrt(sigma2), size)
        else:  # Pareto type I with minimum low: low * (1 + Lomax)
            values = self.low * (1.0 + rng.pareto(self.alpha, size))
        clipped: np.ndarray = np.clip(np.rint(values), self.minimum, self.maximum)
        return clipped.astype(np.int64)
