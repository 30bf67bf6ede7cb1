"""The simulator's fast paths give the same numbers as the paths they shortcut.

Short decode stretches are timed in plain floats (``SMALL_STRETCH``), and a one-flow
component of the flow engine is filled in one round; both do the same IEEE operations as
the array path / the general progressive filling, so the results must be equal exactly
(``==``, not approximately): the serving simulation's output is bit-identical with and
without them.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from aifabric.catalog import get_gpu, get_model, serving_profiles
from aifabric.netsim import fairshare
from aifabric.serving import compute, profile
from aifabric.serving.compute import RooflineTiming
from aifabric.serving.profile import ProfileTiming

ROOFLINES = [
    RooflineTiming(model=get_model("llama3-8b"), gpu=get_gpu("h100-sxm"), tp=1),
    RooflineTiming(
        model=get_model("llama3-70b"),
        gpu=get_gpu("h100-sxm"),
        tp=8,
        iteration_overhead=0.004,
        sequence_overhead=1e-5,
    ),
    RooflineTiming(  # per-layer overheads: both paths must add the same fixed seconds
        model=get_model("llama3-8b"),
        gpu=get_gpu("h100-sxm"),
        tp=2,
        iteration_overhead=0.001,
        layer_overhead=3e-5,
        layer_sequence_overhead=2e-7,
    ),
]


def _profiled(which: int) -> ProfileTiming:
    p = sorted(serving_profiles().values(), key=lambda q: q.key)[which % len(serving_profiles())]
    roof = RooflineTiming(model=get_model(p.model), gpu=get_gpu(p.gpu), tp=p.tp)
    return ProfileTiming(profile=p, roofline=roof)


@settings(max_examples=200, deadline=None)
@given(which=st.integers(0, 40), batch=st.integers(1, 512),
       context=st.floats(0.0, 5e6, allow_nan=False), steps=st.integers(1, 12))  # fmt: skip
def test_short_stretch_floats_equal_the_array_path(
    which: int, batch: int, context: float, steps: int
) -> None:
    timing: RooflineTiming | ProfileTiming = (
        ROOFLINES[which % len(ROOFLINES)] if which < 20 else _profiled(which)
    )
    fast = timing.decode_step_times(batch, context, steps)
    with pytest.MonkeyPatch.context() as mp:  # the array expression for every length
        mp.setattr(compute, "SMALL_STRETCH", 0)
        mp.setattr(profile, "SMALL_STRETCH", 0)
        array = timing.decode_step_times(batch, context, steps)
    assert fast.dtype == array.dtype == np.float64
    assert fast.tolist() == array.tolist()
    assert timing.decode_step_list(batch, context, steps) == array.tolist()  # what runs keep
    # and each step is the one-step time at its context (to rounding: a different formula)
    one = [timing.decode_step_time(batch, context + batch * j) for j in range(steps)]
    np.testing.assert_allclose(fast, one, rtol=1e-12)


@settings(max_examples=300, deadline=None)
@given(
    links=st.lists(st.integers(0, 5), min_size=1, max_size=6),
    weights=st.lists(st.floats(0.01, 4.0), min_size=6, max_size=6),
    caps=st.lists(st.floats(1e-3, 1e12), min_size=6, max_size=6),
)
def test_one_flow_fill_equals_the_rounds(
    links: list[int], weights: list[float], caps: list[float]
) -> None:
    """One flow alone: the one-round answer equals the general progressive filling (run by
    adding a second flow on no link, which takes the general path and gets inf) and the
    NumPy solver, exactly; a link listed twice counts both weights."""
    capacity = np.array(caps)
    ws = weights[: len(links)]
    fast = fairshare.fill_small([links], [ws], capacity)
    general = fairshare.fill_small([links, []], [ws, []], capacity)
    assert general[1] == np.inf
    assert fast[0] == general[0]
    solver = fairshare.max_min_rates(
        np.array([0, len(links)]), np.array(links), np.array(ws), capacity
    )
    assert fast[0] == pytest.approx(float(solver[0]), rel=1e-12)
    # hand check: the least capacity / (summed) weight of its links
    use: dict[int, float] = {}
    for ln, w in zip(links, ws, strict=True):
        use[ln] = use.get(ln, 0.0) + w
    assert fast[0] == pytest.approx(min(caps[ln] / x for ln, x in use.items()), rel=1e-15)


def test_one_flow_on_no_link_is_unconstrained() -> None:
    assert fairshare.fill_small([[]], [[]], np.zeros(0)) == [np.inf]
