"""Workload generators: rates, burstiness and length distributions against their theory."""

from __future__ import annotations

import numpy as np
import pytest

from aifabric.errors import ConfigError
from aifabric.serving.workload import LengthDistribution, arrival_times


@pytest.mark.parametrize("cv", [0.5, 1.0, 2.0, 4.0])
def test_arrivals_have_the_requested_rate_and_cv(cv):
    rng = np.random.default_rng(1)
    t = arrival_times(rng, rate_rps=10.0, num_requests=200_000, burstiness_cv=cv)
    gaps = np.diff(t)
    assert 1 / gaps.mean() == pytest.approx(10.0, rel=0.03)
    assert gaps.std() / gaps.mean() == pytest.approx(cv, rel=0.05)


def test_same_seed_same_workload():
    a = arrival_times(np.random.default_rng(5), rate_rps=3, num_requests=100, burstiness_cv=2)
    b = arrival_times(np.random.default_rng(5), rate_rps=3, num_requests=100, burstiness_cv=2)
    assert np.array_equal(a, b)


def test_lognormal_mean_and_cv():
    d = LengthDistribution(kind="lognormal", mean=1000, cv=0.8, maximum=10**9)
    x = d.sample(np.random.default_rng(2), 400_000)
    assert x.mean() == pytest.approx(1000, rel=0.02)
    assert x.std() / x.mean() == pytest.approx(0.8, rel=0.05)


def test_pareto_minimum_and_mean():
    """Pareto type I with x_m = 100, alpha = 3: mean alpha x_m / (alpha - 1) = 150."""
    d = LengthDistribution(kind="pareto", low=100, alpha=3.0, maximum=10**9)
    x = d.sample(np.random.default_rng(3), 400_000)
    assert x.min() >= 100
    assert x.mean() == pytest.approx(150, rel=0.02)


def test_fixed_uniform_and_clipping():
    rng = np.random.default_rng(4)
    assert set(LengthDistribution(kind="fixed", mean=256).sample(rng, 10).tolist()) == {256}
    u = LengthDistribution(kind="uniform", low=10, high=20).sample(rng, 1000)
    assert u.min() >= 10 and u.max() <= 20
    c = LengthDistribution(kind="pareto", low=100, alpha=0.5, maximum=500).sample(rng, 1000)
    assert c.max() <= 500


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"rate_rps": 0, "num_requests": 5}, "rate_rps"),
        ({"rate_rps": 1, "num_requests": 5, "burstiness_cv": 0}, "burstiness_cv"),
        ({"rate_rps": 1, "num_requests": 0}, "num_requests"),
    ],
)
def test_bad_arrival_parameters(kwargs, match):
    with pytest.raises(ConfigError, match=match):
        arrival_times(np.random.default_rng(0), **kwargs)


def test_bad_length_parameters():
    with pytest.raises(ConfigError, match="length kind"):
        LengthDistribution(kind="zipf")
    with pytest.raises(ConfigError, match="high"):
        LengthDistribution(kind="uniform", low=10, high=5)
