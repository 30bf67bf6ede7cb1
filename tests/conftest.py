"""Shared test configuration: a deterministic, modest hypothesis profile and catalog fixtures."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, settings

from aifabric.catalog import get_gpu, get_model
from aifabric.spec.gpu import GpuSpec
from aifabric.spec.model import ModelSpec

settings.register_profile(
    "aifabric",
    max_examples=200,
    derandomize=True,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.load_profile("aifabric")


@pytest.fixture(scope="session")
def h100() -> GpuSpec:
    return get_gpu("h100-sxm")


@pytest.fixture(scope="session")
def llama8b() -> ModelSpec:
    return get_model("llama3-8b")


@pytest.fixture(scope="session")
def llama70b() -> ModelSpec:
    return get_model("llama3-70b")


@pytest.fixture(scope="session")
def mixtral() -> ModelSpec:
    return get_model("mixtral-8x7b")
