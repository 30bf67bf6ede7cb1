"""Elastic serving pools (serving.autoscale), scheduled arrival rates and speculative decoding
(serving.speculative).

Truths used: the time change of a piecewise-constant rate (hand-integrated); the instance
life cycle rules of serving.autoscale (a new instance serves exactly model_load_s after the
decision; a draining instance gets no new work; held instances stay within the bounds);
request conservation (every arrived request completes); Leviathan et al. (ICML 2023) for the
expected tokens per verification step; the roofline decode step of a dense model, which is
memory bound at batch 1, so verifying k + 1 tokens costs what one token costs.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from aifabric.catalog import get_gpu, get_model
from aifabric.errors import ConfigError
from aifabric.serving.cluster import ServingSimulation
from aifabric.serving.compute import RooflineTiming
from aifabric.serving.config import parse_scenario
from aifabric.serving.instance import Instance
from aifabric.serving.speculative import SpeculativeTiming, expected_tokens
from aifabric.serving.workload import schedule_clock

from .cli_helpers import UNFITTED_ROOFLINE, deep_merge

MODEL, GPU = "llama3-8b", "h100-sxm"
ONE_TIER = [{"name": "all", "share": 1.0, "ttft_s": 1000.0, "tbt_s": 1000.0, "priority": 0}]
LOAD_S = 30.0
INTERVAL = 10.0
STEP_AT = 200.0  # the load steps up here ...
DROP_AT = 400.0  # ... and back down here


def stepped(**sections: Any) -> dict[str, Any]:
    """Colocated llama3-8b, 1024-token prompts, 64-token answers: 0.5 req/s for 200 s (one
    instance is about 19% busy), 16 req/s for 200 s (it would be saturated), then 0.5 req/s
    again; elastic between 1 and 6 instances on utilization target 0.6."""
    base: dict[str, Any] = {
        "seed": 3,
        "model": MODEL,
        "gpu": GPU,
        "workload": {
            "num_requests": 3400,
            "rate_schedule": [
                {"duration_s": STEP_AT, "rate_rps": 0.5},
                {"duration_s": DROP_AT - STEP_AT, "rate_rps": 16.0},
                {"duration_s": 1.0, "rate_rps": 0.5},
            ],
            "input_tokens": {"kind": "fixed", "mean": 1024},
            "output_tokens": {"kind": "fixed", "mean": 64},
        },
        "cluster": {"mode": "colocated", "instances": 1},
        "slo": {"tiers": ONE_TIER},
        "autoscale": {
            "enabled": True,
            "interval_s": INTERVAL,
            "target": 0.6,
            "min_instances": 1,
            "max_instances": 6,
            "model_load_s": LOAD_S,
            "scale_down_cooldown_s": 30.0,
        },
    }
    return deep_merge(base, sections)


def run(data: dict[str, Any]) -> tuple[ServingSimulation, dict[str, Any]]:
    sim = ServingSimulation(parse_scenario(data))
    return sim, sim.run()


def serving_at(sim: ServingSimulation, role: str, t: float) -> int:
    """Serving instances of a pool just after time t (from its trace)."""
    trace = sim.autoscaler.pools[role].trace
    return [c for time, c, *_ in trace if time <= t][-1]


def _watch(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, str, int]]:
    """Record (what, instance state, preemptions) of every enqueue and decode reservation."""
    seen: list[tuple[str, str, int]] = []
    enqueue, reserve = Instance.enqueue, Instance.reserve

    def watched_enqueue(self: Instance, req: Any) -> None:
        seen.append(("enqueue", self.state, req.preemptions))
        enqueue(self, req)

    def watched_reserve(self: Instance, tokens: int) -> bool:
        seen.append(("reserve", self.state, 0))
        return reserve(self, tokens)

    monkeypatch.setattr(Instance, "enqueue", watched_enqueue)
    monkeypatch.setattr(Instance, "reserve", watched_reserve)
    return seen


# ----- the arrival-rate schedule -------------------------------------------------------------
def test_schedule_clock_inverts_the_integrated_rate() -> None:
    """Rates 1/s for 10 s then 5/s for 10 s (then 5/s on): Lambda(10) = 10, Lambda(20) = 60,
    so 5 expected arrivals are reached at 5 s, 35 at 10 + 25/5 = 15 s, 65 at 20 + 5/5 = 21 s."""
    work = np.array([0.0, 5.0, 10.0, 35.0, 60.0, 65.0])
    got = schedule_clock(np.array([10.0, 10.0]), np.array([1.0, 5.0]), work)
    assert got.tolist() == pytest.approx([0.0, 5.0, 10.0, 15.0, 20.0, 21.0], abs=1e-12)


def test_scheduled_arrivals_follow_each_phase_rate() -> None:
    """Poisson counts per phase: mean rate x duration, sd sqrt(mean); 5 sd bounds."""
    sc = parse_scenario(stepped(autoscale={"enabled": False}))
    sim = ServingSimulation(sc)
    times = sim.workload.times
    low = int((times < STEP_AT).sum())
    high = int(((times >= STEP_AT) & (times < DROP_AT)).sum())
    assert abs(low - 100) < 5 * math.sqrt(100)
    assert abs(high - 3200) < 5 * math.sqrt(3200)
    assert times.shape[0] == 3400 and np.all(np.diff(times) >= 0)


def test_rate_schedule_config_errors() -> None:
    with pytest.raises(ConfigError, match="set rate_rps or rate_schedule, not both"):
        parse_scenario(stepped(workload={"rate_rps": 1.0}))
    with pytest.raises(ConfigError, match="rate_schedule needs at least one phase"):
        parse_scenario(stepped(workload={"rate_schedule": []}))


# ----- elastic pools ---------------------------------------------------------------------------
@pytest.fixture(scope="module")
def step_run() -> tuple[ServingSimulation, dict[str, Any]]:
    return run(stepped())


def test_instance_count_follows_a_load_step(step_run: tuple[ServingSimulation, Any]) -> None:
    sim, res = step_run
    pool = sim.autoscaler.pools["colocated"]
    new = [i for i in pool.members if i.index >= pool.initial]
    assert new, "the load step created no instance"
    # Nothing before the step: one instance at 19% busy is below the target band.
    assert all(serving_at(sim, "colocated", t) == 1 for t in np.arange(0, STEP_AT, 1.0))
    first = min(new, key=lambda i: i.created_at)
    assert STEP_AT <= first.created_at <= STEP_AT + 2 * INTERVAL
    assert first.created_at / INTERVAL == pytest.approx(round(first.created_at / INTERVAL))
    # Grows during the high phase, back to min_instances after it (plus cooldown).
    assert max(serving_at(sim, "colocated", t) for t in np.arange(STEP_AT, DROP_AT, 1.0)) >= 3
    assert serving_at(sim, "colocated", DROP_AT + 150.0) == 1
    summary = res["autoscale"]["pools"]["colocated"]
    assert summary["scale_ups"] == len(new) and summary["retired"] >= len(new)
    assert summary["model_load_s"] == LOAD_S


def test_new_instances_serve_only_after_loading(step_run: tuple[ServingSimulation, Any]) -> None:
    sim, _ = step_run
    pool = sim.autoscaler.pools["colocated"]
    new = [i for i in pool.members if i.index >= pool.initial]
    for inst in new:
        assert inst.active_at == pytest.approx(inst.created_at + LOAD_S, abs=1e-9)
    starts = {i.index: i.active_at for i in sim.instances}
    for req in sim.records:  # colocated: a request is served where it was last enqueued
        assert req.enqueued >= starts[req.instance] - 1e-12


def test_instance_time_s_and_bounds(step_run: tuple[ServingSimulation, Any]) -> None:
    """Held instances stay in [min, max]; instance-seconds = the held spans summed."""
    sim, res = step_run
    for _, serving, loading, draining in sim.autoscaler.pools["colocated"].trace:
        assert serving >= 1 and serving + loading + draining <= 6
    spans = sum(
        (i.retired_at if not math.isnan(i.retired_at) else res["simulated_s"]) - i.created_at
        for i in sim.instances
    )
    assert res["instance_time_s"]["colocated"] == pytest.approx(spans, rel=1e-12)
    assert res["autoscale"]["pools"]["colocated"]["peak_held"] <= 6


@pytest.mark.parametrize("mode", ["colocated", "disaggregated"])
def test_scale_down_loses_no_request(mode: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Start large with a 2 s burst of long prompts and answers (prefill queues of seconds,
    about 10 s of decoding each), then a trickle. A utilization target of 10 (busy shares
    are <= 1) makes the first decision, at 1 s, drain the pools to their minimum while their
    queues, batches and KV transfers are still under way. Every request completes,
    a drained instance retires only after finishing what it held, and no new request (only
    a preempted one on its own colocated instance) reaches an instance that is not serving."""
    seen = _watch(monkeypatch)
    pools = {"colocated": {"instances": 5}, "disaggregated": {"prefill_instances": 4,
                                                             "decode_instances": 4}}[mode]  # fmt: skip
    data = stepped(
        cluster={"mode": mode, **pools},
        workload={"rate_schedule": [{"duration_s": 2.0, "rate_rps": 30.0},
                                    {"duration_s": 1.0, "rate_rps": 0.5}],
                  "num_requests": 200, "input_tokens": {"kind": "fixed", "mean": 8192},
                  "output_tokens": {"kind": "fixed", "mean": 1500}},
        autoscale={"scale_down_cooldown_s": 0.0, "interval_s": 1.0, "target": 10.0},
        kv_store={"enabled": True, "block_tokens": 256},
    )  # fmt: skip
    data["workload"]["sessions"] = {"enabled": True, "turns_mean": 2, "think_time_s": 5.0}
    sim, res = run(data)
    assert res["completed"] == res["requests"] == 200
    assert res["in_flight_at_end"] == 0 and res["rejected"] == 0
    for role in sim.autoscaler.pools:
        retired = [i for i in sim.instances if i.state == "retired" and i.role == role]
        assert retired, f"nothing was scaled down in the {role} pool"
        assert max(i.retired_at - i.draining_since for i in retired) > 0.0, role  # it drained
    by_index = {i.index: i for i in sim.instances}
    for req in sim.records:  # PD: a prefill instance retires after its KV has moved on
        inst = by_index[req.instance]
        if inst.role == "prefill" and inst.state == "retired":
            assert req.kv_ready <= inst.retired_at
    for inst in sim.instances:
        assert inst.kv_used == 0 and inst.outstanding == 0 and inst.inbound == 0
    for what, state, preemptions in seen:
        assert state == "active" or (what == "enqueue" and preemptions > 0), (what, state)
    for role, pool in sim.autoscaler.pools.items():
        policy = pool.policy
        for _, serving, loading, draining in pool.trace:
            assert serving >= policy.min_instances, role
            assert serving + loading + draining <= policy.max_instances, role


def test_max_bound_under_overload() -> None:
    data = stepped(
        workload={"rate_schedule": [{"duration_s": 1.0, "rate_rps": 40.0}], "num_requests": 3000},
        autoscale={"max_instances": 3, "metric": "queue_delay", "target": 0.5},
    )
    sim, res = run(data)
    pool = sim.autoscaler.pools["colocated"]
    assert res["autoscale"]["pools"]["colocated"]["peak_held"] == 3
    assert all(s + lo + d <= 3 for _, s, lo, d in pool.trace)
    assert res["completed"] == 3000


def test_deterministic_per_seed() -> None:
    data = stepped(workload={"num_requests": 1500})
    a = run(data)
    b = run(data)
    c = run(deep_merge(data, {"seed": 4}))
    for res in (a[1], b[1], c[1]):
        res.pop("wall_s")
    assert a[1] == b[1]
    assert a[0].autoscaler.pools["colocated"].trace == b[0].autoscaler.pools["colocated"].trace
    assert a[1] != c[1]


def test_timeseries_has_instance_counts(step_run: tuple[ServingSimulation, Any]) -> None:
    from aifabric.cli.simulate import _timeseries_csv

    sim, _ = step_run
    lines = _timeseries_csv(sim).splitlines()
    assert lines[0] == "t_s,queue_depth,mean_wait_s,instances_colocated,held_colocated"
    rows = [line.split(",") for line in lines[1:]]
    for row in rows:
        t, serving = float(row[0]), int(row[3])
        assert serving == serving_at(sim, "colocated", t)
        assert int(row[4]) >= serving


def test_autoscale_config_errors() -> None:
    with pytest.raises(ConfigError, match=r"cluster.instances: 7 starting instances is outside"):
        parse_scenario(stepped(cluster={"instances": 7}))
    with pytest.raises(ConfigError, match=r"autoscale.colocated: min_instances\(=4\) must be <="):
        parse_scenario(stepped(autoscale={"colocated": {"min_instances": 4, "max_instances": 2}}))
    fabric = {"design": "spine_leaf", "gpus": 128, "nic": "400G", "placement": "separate_leaves",
              "routing": "spray"}  # fmt: skip
    data = stepped(cluster={"mode": "disaggregated", "tp": 8}, fabric=fabric)
    with pytest.raises(ConfigError) as info:
        parse_scenario(data)
    text = str(info.value)
    assert text.startswith("scenario key autoscale.enabled: elastic pools are not supported")
    assert "\n" not in text


def test_schema_accepts_the_output(step_run: tuple[ServingSimulation, Any]) -> None:
    from aifabric.outputs.schema_sim import ServeOutput

    _, res = step_run
    ServeOutput.model_validate(res)


# ----- speculative decoding --------------------------------------------------------------------
def test_expected_step_tokens() -> None:
    """(1 - a^(k+1)) / (1 - a): 1 at a = 0, k + 1 at a = 1 (and continuous there);
    k = 3, a = 0.5: (1 - 1/16) / (1/2) = 1.875."""
    assert expected_tokens(4, 0.0) == 1.0
    assert expected_tokens(4, 1.0) == 5.0
    assert expected_tokens(4, 1 - 1e-9) == pytest.approx(5.0, rel=1e-6)
    assert expected_tokens(3, 0.5) == pytest.approx(1.875, rel=1e-15)


def _timing() -> RooflineTiming:
    return RooflineTiming(model=get_model(MODEL), gpu=get_gpu(GPU))


@settings(max_examples=40, deadline=None)
@given(batch=st.integers(1, 64), context=st.integers(0, 200_000), steps=st.integers(1, 40),
       k=st.integers(1, 8), cost=st.floats(0.0, 1.0))  # fmt: skip
def test_vectorised_steps_equal_the_scalar_definition(batch: int, context: int, steps: int,
                                                      k: int, cost: float) -> None:  # fmt: skip
    """T_i = k x cost x t(b, C + i b) + iteration_time((k + 1) b tokens, context C + i b)."""
    base = _timing()
    spec = SpeculativeTiming(base=base, draft_tokens=k, acceptance_rate=0.6, draft_cost=cost)
    got = spec.step_times(batch, float(context), steps)
    want = [
        k * cost * base.iteration_time(decode_batch=batch, decode_context=context + i * batch)
        + base.iteration_time(decode_batch=(k + 1) * batch, decode_context=context + i * batch)
        for i in range(steps)
    ]
    assert got.tolist() == pytest.approx(want, rel=1e-12)


PROMPT, OUTPUT = 1024, 129
#: The unfitted roofline (no iteration / sequence overheads): the hand derivations below
#: are of the pure memory-bound step, and the speculative arithmetic is their subject (the
#: fitted overheads of config.Compute are checked in tests/test_serving_timing.py).
UNFITTED = UNFITTED_ROOFLINE


def lone(spec: dict[str, Any] | None) -> dict[str, Any]:
    data: dict[str, Any] = {
        "seed": 0, "model": MODEL, "gpu": GPU, "slo": {"tiers": ONE_TIER}, "compute": UNFITTED,
        "workload": {"rate_rps": 1.0, "num_requests": 1,
                     "input_tokens": {"kind": "fixed", "mean": PROMPT},
                     "output_tokens": {"kind": "fixed", "mean": OUTPUT}},
    }  # fmt: skip
    if spec is not None:
        data["compute"] = {**UNFITTED, "speculative": {"enabled": True, **spec}}
    return run(data)[1]


def hand_tbt() -> float:
    """Llama-3-8B on one H100 at batch 1 is memory bound: a decode step reads the weights
    (2 bytes x params) and the context's KV at 0.8 x HBM bandwidth; the TBT of one request is
    the mean step over contexts PROMPT .. PROMPT + OUTPUT - 2."""
    model, gpu = get_model(MODEL), get_gpu(GPU)
    kv = model.kv_bytes_per_token("bf16")
    contexts = PROMPT + np.arange(OUTPUT - 1)
    return float(np.mean((2 * model.num_params + contexts * kv) / (0.8 * gpu.hbm_bandwidth)))


@pytest.mark.parametrize(("k", "alpha", "cost"), [(4, 0.0, 0.1), (4, 1.0, 0.1), (3, 0.5, 0.05),
                                                  (5, 0.8, 0.0)])  # fmt: skip
def test_speculative_tbt_is_the_hand_derivation(k: int, alpha: float, cost: float) -> None:
    """Memory bound, verifying k + 1 tokens costs one step t: TBT = (1 + k c) t / E. At
    alpha = 0 (E = 1) only the draft cost remains (a slow-down); alpha = 1: E = k + 1."""
    plain = lone(None)["tbt_s"]["mean"]
    assert plain == pytest.approx(hand_tbt(), rel=1e-9)
    res = lone({"draft_tokens": k, "acceptance_rate": alpha, "draft_cost": cost})
    from aifabric.outputs.schema_sim import ServeOutput

    ServeOutput.model_validate(res)
    e = expected_tokens(k, alpha)
    assert res["speculative"]["expected_step_tokens"] == pytest.approx(e, rel=1e-15)
    assert res["tbt_s"]["mean"] == pytest.approx((1 + k * cost) * hand_tbt() / e, rel=1e-9)
    if alpha == 0.0:
        assert res["tbt_s"]["mean"] > plain
    if alpha == 1.0:
        assert e == k + 1


def test_speculative_with_a_draft_model() -> None:
    """A catalog draft (llama3-8b drafting for itself here) costs its own decode step: with
    alpha = 0 the TBT is (1 + k) t; its weights and KV shrink the target's KV room."""
    res = lone({"draft_tokens": 2, "acceptance_rate": 0.0, "draft_cost": MODEL})
    assert res["tbt_s"]["mean"] == pytest.approx(3 * hand_tbt(), rel=1e-9)
    base = _timing()
    spec = SpeculativeTiming(base=base, draft_tokens=2, acceptance_rate=0.0, draft=base)
    kv = base.kv_bytes_per_token
    want = (base.kv_tokens(0.9) * kv - base.weight_bytes) / (2 * kv)
    assert spec.kv_tokens(0.9) == pytest.approx(want, rel=1e-12)
    with pytest.raises(ConfigError, match=r"compute\.speculative\.draft_cost"):
        lone({"draft_cost": "no-such-model"})


def test_speculative_raises_decode_throughput() -> None:
    """Under load the same work finishes sooner with alpha = 0.8, k = 4 (E = 3.36)."""

    def busy(spec: dict[str, Any] | None) -> dict[str, Any]:
        data: dict[str, Any] = {
            "seed": 0, "model": MODEL, "gpu": GPU, "slo": {"tiers": ONE_TIER},
            "compute": UNFITTED,
            "workload": {"rate_rps": 50.0, "num_requests": 300,
                         "input_tokens": {"kind": "fixed", "mean": 256},
                         "output_tokens": {"kind": "fixed", "mean": 512}},
        }  # fmt: skip
        if spec is not None:
            data["compute"] = {**UNFITTED, "speculative": {"enabled": True, **spec}}
        return run(data)[1]

    plain = busy(None)
    fast = busy({"draft_tokens": 4, "acceptance_rate": 0.8, "draft_cost": 0.05})
    assert fast["tbt_s"]["mean"] < plain["tbt_s"]["mean"]
    assert fast["throughput"]["output_tokens_per_s"] > plain["throughput"]["output_tokens_per_s"]
    assert fast["completed"] == plain["completed"] == 300


def test_default_model_load_is_weights_over_the_load_bandwidth() -> None:
    """Unset model_load_s: bf16 weights (2 bytes x params) / 1.55 GB/s (130 GB in 84 s,
    ServerlessLLM, OSDI 2024); about 10.4 s for Llama-3-8B."""
    data = stepped()
    del data["autoscale"]["model_load_s"]
    sim = ServingSimulation(parse_scenario(data))
    want = 2 * get_model(MODEL).num_params / (130e9 / 84)
    assert sim.autoscaler.pools["colocated"].load_s == pytest.approx(want, rel=1e-12)
    assert 9.0 < want < 12.0


def test_elastic_gpu_capital_counts_the_seconds_each_instance_was_held(
    step_run: tuple[ServingSimulation, Any],
) -> None:
    """Cost follows the instances' lifetimes: GPU capital = (GPU-seconds held, i.e. the
    pool's instance_time_s x tp) / 3600 x the GPU-hour price (economics.gpu_hour_price),
    not the peak pool for the whole run."""
    from aifabric.serving.economics import gpu_hour_price

    sim, res = step_run
    sc = sim.scenario
    rate = gpu_hour_price(sc.economics, sc.gpu)
    gpu_seconds = res["instance_time_s"]["colocated"] * sc.cluster.tp
    assert res["economics"]["gpu_capital_usd"] == pytest.approx(gpu_seconds / 3600 * rate)
    peak = res["autoscale"]["pools"]["colocated"]["peak_held"] * res["simulated_s"]
    assert gpu_seconds < peak * sc.cluster.tp


def test_speculative_verification_charges_the_sequence_overhead_per_sequence() -> None:
    """A verification step of b sequences x (k + 1) tokens samples b sequences: adding a
    per-sequence overhead s to the roofline adds b s to the verification and k x c x b s to
    the k draft steps (each c x a one-token decode step of b sequences), not (k + 1) b s."""
    from aifabric.catalog import get_gpu, get_model
    from aifabric.serving.compute import RooflineTiming
    from aifabric.serving.speculative import SpeculativeTiming

    model, gpu = get_model(MODEL), get_gpu(GPU)
    b, k, c, s = 16, 4, 0.1, 1e-3
    times = []
    for overhead in (0.0, s):
        base = RooflineTiming(model=model, gpu=gpu, sequence_overhead=overhead)
        spec = SpeculativeTiming(base=base, draft_tokens=k, acceptance_rate=0.5, draft_cost=c)
        times.append(spec.step_times(b, 4096.0, 3))
    assert times[1] - times[0] == pytest.approx([b * s * (1 + k * c)] * 3, rel=1e-9)
