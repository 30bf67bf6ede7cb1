"""``aifabric simulate cluster``: each workload alone is its own simulator, strict priority
isolates the top class, bytes are conserved, time division accounts every GPU-second and
never serves on a training GPU, bad scenarios are refused in one line, runs repeat.

Scenarios are small (a 32- or 128-GPU H100 spine-leaf fabric, Llama-3-8B, a few hundred
synthetic requests, tens of simulated seconds), so the whole file runs in seconds.
"""

from __future__ import annotations

import itertools
import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from .cli_helpers import run_error, run_json, shortened_cluster_sets

ROOT = Path(__file__).resolve().parents[1]

# 128 H100 in a 2-tier spine-leaf fabric at 2:1 (leaf 0 holds servers 0-5, leaf 1 servers
# 6-10, leaf 2 servers 11-15; 8 x 400G NICs per server).
FABRIC = {"gpus": 128, "gpu": "h100-sxm", "design": "spine_leaf", "oversubscription": 2,
          "nic": "400G", "routing": "ecmp"}  # fmt: skip
JOB = {"model": "llama3-8b", "tp": 8, "pp": 2, "dp": 4, "seq_len": 4096, "global_batch": 64,
       "zero": 1}  # fmt: skip
SERVE = {
    "seed": 1,
    "model": "llama3-8b",
    "workload": {"source": "synthetic", "rate_rps": 20, "num_requests": 300,
                 "input_tokens": {"kind": "lognormal", "mean": 2048, "cv": 1.0, "maximum": 8192},
                 "output_tokens": {"kind": "lognormal", "mean": 64, "cv": 1.0, "maximum": 256}},
    "cluster": {"mode": "disaggregated", "prefill_instances": 3, "decode_instances": 1, "tp": 8},
}  # fmt: skip
PCTS = ("p50", "p95", "p99")


def _write(tmp_path: Path, data: Any, name: str = "cluster.yaml") -> Path:
    path = tmp_path / name
    path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    return path


def _cluster(tmp_path: Path, capsys: pytest.CaptureFixture[str], data: dict[str, Any],
             *sets: str) -> dict[str, Any]:  # fmt: skip
    args = ["simulate", "cluster", "-f", str(_write(tmp_path, data)), "--json"]
    for s in sets:
        args += ["--set", s]
    return run_json(capsys, *args)


def _shared_run(data: dict[str, Any]) -> Any:
    """The shared run of a scenario (every workload together), run to its duration, with
    phase baselines of 1 (the run is its own reference): the objects, for invariants the
    JSON does not show."""
    from aifabric.cluster.config import parse_cluster
    from aifabric.cluster.run import ClusterRun, prepare

    cfg = parse_cluster(data)
    prepared = prepare(cfg)
    run = ClusterRun(cfg, prepared, [p.config.name for p in prepared], None, {})
    run.run()
    return run


# ----- 1. alone is the workload's own simulator ---------------------------------------------
def test_training_alone_is_the_step_simulator(tmp_path: Path, capsys: pytest.CaptureFixture[str]
                                              ) -> None:  # fmt: skip
    """A training job with no storage and nothing else on the fabric runs back-to-back
    steps of exactly ``aifabric simulate train``'s iteration (same job keys, the cluster's
    fabric keys, flow network, same routing and seed), at its MFU: the phases' durations
    are their own reference, so every slowdown factor is 1 and the step is the step
    simulator's (:mod:`aifabric.cluster.train`). Steps in the duration: floor(duration /
    iteration); tokens/s: steps x global batch x sequence length / duration."""
    duration = 10.0
    data = {"duration": duration, "seed": 0, "fabric": FABRIC,
            "workloads": [{"name": "train", "kind": "train", "job": JOB}]}  # fmt: skip
    got = _cluster(tmp_path, capsys, data)["workloads"][0]
    train = {**JOB, **{k: v for k, v in FABRIC.items()}, "network": "flow", "seed": 0}
    ref = run_json(capsys, "simulate", "train", "-f", str(_write(tmp_path, train, "t.yaml")),
                   "--json")  # fmt: skip
    it, mfu = ref["iteration_time_s"], ref["mfu"]
    for run in ("alone", "shared"):
        fig = got[run]
        assert fig["step_time_s"] == pytest.approx(it, rel=1e-12)
        assert fig["iteration_time_s"] == pytest.approx(it, rel=1e-12)
        assert fig["mfu"] == pytest.approx(mfu, rel=1e-9)
        assert fig["steps"] == math.floor(duration / it)
        assert fig["tokens_per_s"] == pytest.approx(fig["steps"] * 64 * 4096 / duration)
        assert fig["data_stall_s"] == fig["checkpoint_stall_s"] == 0.0
    assert got["slowdown"]["step_time_ratio"] == pytest.approx(1.0, rel=1e-12)


def test_serving_alone_at_gpu0_is_the_serving_simulator(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A serving deployment that is the cluster's only workload (so it sits at GPU 0) is
    ``aifabric simulate serve`` of the same scenario with the cluster's fabric keys as its
    ``fabric:`` section (placement contiguous, one queue pair, the same routing): same
    placement, routes, flows and request stream (the scenario's own seed), so the same
    TTFT / TBT percentiles, SLO attainment and completed count."""
    data = {"duration": 60.0, "fabric": FABRIC,
            "workloads": [{"name": "serve", "kind": "serve", "scenario": SERVE}]}  # fmt: skip
    got = _cluster(tmp_path, capsys, data)["workloads"][0]
    assert got["first_gpu"] == 0
    serve = {**SERVE, "fabric": {**FABRIC, "placement": "contiguous"}}
    ref = run_json(capsys, "simulate", "serve", "-f", str(_write(tmp_path, serve, "s.yaml")),
                   "--json")  # fmt: skip
    assert ref["completed"] == 300  # every request finishes well inside 60 s
    for run in ("alone", "shared"):
        fig = got[run]
        assert fig["completed"] == ref["completed"]
        assert fig["requests"] == ref["requests"]
        for metric in ("ttft_s", "tbt_s"):
            for q in (*PCTS, "mean"):
                assert fig[metric][q] == pytest.approx(ref[metric][q], rel=1e-12), (metric, q)
        assert fig["slo_attainment"] == pytest.approx(ref["slo_attainment"], rel=1e-12)


# ----- 2. traffic classes -------------------------------------------------------------------
def _priority_scenario(order: list[str]) -> dict[str, Any]:
    """Training on servers 0-7 (leaves 0 and 1: its rings cross leaf 1's spine links), the
    serving deployment after it: prefill on servers 8-10 (leaf 1), decode on server 11
    (leaf 2), so every KV transfer goes up leaf 1's spine links too."""
    job = {**JOB, "pp": 1, "dp": 8}
    return {"duration": 30.0, "seed": 0, "fabric": FABRIC,
            "classes": {"policy": "strict_priority", "order": order},
            "workloads": [{"name": "train", "kind": "train", "job": job},
                          {"name": "serve", "kind": "serve", "scenario": SERVE}]}  # fmt: skip


def test_strict_priority_isolates_the_top_class(tmp_path: Path,
                                                capsys: pytest.CaptureFixture[str]) -> None:  # fmt: skip
    """Under strict priority each link gives its capacity to the highest class first
    (:mod:`aifabric.netsim.classes`), so the top class's rates are the ones it would get
    alone: with inference on top the deployment's TTFT and TBT under sharing equal its
    alone values; with training on top the job's step is its alone step and the KV
    transfers, which share leaf-spine links with the training rings (both classes' bytes
    cross leaf_spine), get what training leaves: the TBT tail grows (the test is not
    vacuous)."""
    top = _cluster(tmp_path, capsys, _priority_scenario(["inference", "storage", "training"]))
    ls = top["tiers"]["fabric"]["leaf_spine"]["bytes_by_class"]
    assert ls["training"] > 0 and ls["inference"] > 0
    serve = top["workloads"][1]
    assert serve["first_gpu"] == 64 and serve["alone"]["completed"] == 300
    for metric in ("ttft_s", "tbt_s"):
        for q in PCTS:
            assert serve["shared"][metric][q] == pytest.approx(serve["alone"][metric][q],
                                                               rel=1e-9)  # fmt: skip
    assert serve["shared"]["slo_attainment"] == serve["alone"]["slo_attainment"]

    low = _cluster(tmp_path, capsys, _priority_scenario(["training", "storage", "inference"]))
    train, serve = low["workloads"]
    assert train["shared"]["step_time_s"] == pytest.approx(train["alone"]["step_time_s"],
                                                           rel=1e-12)  # fmt: skip
    assert serve["slowdown"]["tbt_p99_ratio"] > 1.05
    # the same deployment alone in both runs: only the sharing differs
    assert serve["alone"]["tbt_s"] == top["workloads"][1]["alone"]["tbt_s"]


def test_weighted_sharing_tends_to_strict_priority(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Weighted sharing gives a class with weight share ``w`` at least ``w`` of every link
    it contends for (work-conserving: the rest when others need less;
    :mod:`aifabric.netsim.classes`), so with w = 999/1001 a class's transfers run at least
    0.998 of their strict-priority rates: the deployment's TBT tail and the job's step are
    within 0.1 % of the strict-priority run with the same class on top, while the other
    class on top gives a 5 %+ different TBT tail (the weighted runs sit at the strict
    ends, not at fair sharing in between)."""

    def run(classes: dict[str, Any]) -> tuple[float, float]:
        data = {**_priority_scenario(["inference", "storage", "training"]), "classes": classes}
        train, serve = _cluster(tmp_path, capsys, data)["workloads"]
        return serve["slowdown"]["tbt_p99_ratio"], train["slowdown"]["step_time_ratio"]

    heavy = {"inference": {"inference": 999, "storage": 1, "training": 1},
             "training": {"inference": 1, "storage": 1, "training": 999}}  # fmt: skip
    order = {"inference": ["inference", "storage", "training"],
             "training": ["training", "storage", "inference"]}  # fmt: skip
    got = {top: run({"policy": "weighted", "weights": w}) for top, w in heavy.items()}
    strict = {top: run({"policy": "strict_priority", "order": o}) for top, o in order.items()}
    for top in heavy:
        assert got[top][0] == pytest.approx(strict[top][0], rel=1e-3), top
        assert got[top][1] == pytest.approx(strict[top][1], rel=1e-3), top
    assert strict["training"][0] > 1.05 * strict["inference"][0]


# ----- 3 and 4. conservation, storage bytes -------------------------------------------------
def _finite_scenario() -> dict[str, Any]:
    """Three training steps with a checkpoint after step 2 and dataset reads from one
    storage server, plus 60 requests, all done long before the 60 s end."""
    serve = {**SERVE, "workload": {**SERVE["workload"], "num_requests": 60}}
    return {"duration": 60.0, "seed": 0, "fabric": FABRIC,
            "storage": {"servers": 1, "write_bandwidth": "20GB/s", "read_bandwidth": "40GB/s"},
            "workloads": [{"name": "train", "kind": "train", "job": JOB, "steps": 3,
                           "checkpoint_every_steps": 2},
                          {"name": "serve", "kind": "serve", "scenario": serve}]}  # fmt: skip


def test_bytes_are_conserved_per_class_and_link() -> None:
    """When every flow is done, the bytes the cluster counted per link and kind at each
    flow's (or group's) completion (``FlowNetwork.kind_link_bytes`` for single flows,
    ``FlowNetwork.group_link_bytes`` for flow groups), summed over the kinds
    of a traffic class, equal the engine's own per-class progress counts
    (``FlowEngine.link_bytes_by_class``) on every link; bytes done == bytes started per
    kind; and every checkpoint byte crossed exactly one storage disk-write link, every
    dataset byte one disk-read link (a storage flow's last / first hop)."""
    from aifabric.cluster.run import KIND_CLASS
    from aifabric.netsim.classes import DEFAULT_CLASS_NAMES

    run = _shared_run(_finite_scenario())
    net = run.shared.network
    rec = run.train_records()["train"]
    assert len(rec.step_ends) == 3 and rec.checkpoints == 1
    assert len(run.servers["serve"].records) == 60
    assert net.in_flight == 0
    for kind, started in net.bytes_started.items():
        assert net.bytes_done[kind] == pytest.approx(started, rel=1e-12), kind
    engine = net.engine.link_bytes_by_class
    n = len(net.names)
    counted = {c: np.zeros(n) for c in DEFAULT_CLASS_NAMES.values()}
    for kind, links in net.kind_link_bytes.items():  # single flows (serving)
        for link, moved in links.items():
            counted[DEFAULT_CLASS_NAMES[KIND_CLASS[kind]]][link] += moved
    for kind, acc in net.group_link_bytes.items():  # flow groups (training, storage)
        counted[DEFAULT_CLASS_NAMES[KIND_CLASS[kind]]][: len(acc)] += acc
    for c, by_link in counted.items():
        assert by_link.sum() > 0, c  # every class moved bytes
        np.testing.assert_allclose(by_link, engine.get(c, np.zeros(n)), rtol=1e-9, atol=1.0)
    st = run.storage
    for kind, disk in (("checkpoint", st.write_links), ("dataset", st.read_links)):
        on_disk = float(net.group_link_bytes[kind][disk].sum())
        assert on_disk == pytest.approx(net.bytes_done[kind], rel=1e-12)
    assert rec.checkpoint_bytes == pytest.approx(net.bytes_done["checkpoint"], rel=1e-12)
    assert rec.dataset_bytes == pytest.approx(net.bytes_done["dataset"], rel=1e-12)


def test_checkpoint_and_dataset_bytes_are_the_traffic_model(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A checkpoint is the full model state, parameters x 14 bytes (BF16 weights, FP32
    master weights, two FP32 Adam moments; :mod:`aifabric.traffic.storage`), the figure
    ``aifabric traffic train`` reports as ``storage.checkpoint_bytes``; 3 steps with a
    checkpoint every 2 write one. Each step reads its global batch's token ids
    (``storage.dataset_bytes_per_iteration``): 3 steps read 3 steps' data (before the
    fix, 4: the last step prefetched a step that never runs).

    Stalls: the one storage server's disk links are the narrowest hop (20 GB/s write, 40
    GB/s read, behind a 50 GB/s NIC port), so a sync checkpoint stops training for
    checkpoint bytes / 20 GB/s exactly, and only the first step waits for its data
    (1 MiB / 40 GB/s; later steps' data is read during the step before)."""
    from aifabric.spec.scenario import _model
    from aifabric.traffic.storage import checkpoint_bytes

    got = _cluster(tmp_path, capsys, _finite_scenario())["workloads"][0]
    traffic = run_json(capsys, "traffic", "train", "--model", "llama3-8b", "--tp", "8", "--pp",
                       "2", "--dp", "4", "--seq-len", "4096", "--global-batch", "64", "--json")  # fmt: skip
    per = traffic["storage"]["checkpoint_bytes"]
    assert per == checkpoint_bytes(_model("llama3-8b").num_params, 14)
    for run in ("alone", "shared"):
        fig = got[run]
        assert fig["steps"] == 3 and fig["checkpoints"] == 1
        assert fig["checkpoint_bytes"] == pytest.approx(fig["checkpoints"] * per, rel=1e-12)
        per_step = traffic["storage"]["dataset_bytes_per_iteration"]
        assert fig["dataset_bytes"] == pytest.approx(3 * per_step, rel=1e-12)
        assert fig["checkpoint_stall_s"] == pytest.approx(per / 20e9, rel=1e-9)
        assert fig["data_stall_s"] == pytest.approx(per_step / 40e9, rel=1e-9)


def test_time_series_is_bytes_moved_per_interval(tmp_path: Path) -> None:
    """The time series' utilisation of a layer in an interval is the bytes that crossed its
    links in that interval over (its capacity x the interval), so:

    - per (network, layer), the classes' utilisations add up to at most 1 in every
      interval (no link carries more than its capacity; before the fix the series used
      completion counts, putting a long flow's bytes all in its last interval: 1.41 on
      endpoint_leaf in a 3 s run, and progress read at the engine's clock, the last
      network event, not the sample's time: 1.01);
    - integrated over the run of a finite scenario (every flow done), they give back each
      class's bytes per layer in the JSON (``tiers``; 6 significant digits in the CSV);
    - sampling changes nothing: the JSON with a series is the JSON without."""
    import csv
    import io

    from aifabric.cluster.config import parse_cluster
    from aifabric.cluster.run import simulate_cluster

    short = _priority_scenario(["inference", "storage", "training"])
    short["duration"] = 3.0
    for data in (short, _finite_scenario()):
        res, series = simulate_cluster(parse_cluster(data), with_series=True)
        plain, _ = simulate_cluster(parse_cluster(data))
        res.pop("wall_s"), plain.pop("wall_s")
        assert res == plain
        rows = list(csv.DictReader(io.StringIO(series)))
        assert len(rows) == 120
        duration = res["duration_s"]
        t = np.array([0.0] + [float(r["t_s"]) for r in rows])
        assert t[-1] == pytest.approx(duration, rel=1e-5)
        dt = np.diff(t)
        for layer, tier in res["tiers"]["fabric"].items():
            cols = [f"fabric.{layer}.{c}_utilization" for c in ("training", "inference", "storage")]
            util = np.array([[float(r[c]) for c in cols] for r in rows])
            assert util.sum(axis=1).max() <= 1.0 + 1e-5, layer
            if data is short or tier["utilization"] == 0:
                continue
            cap = tier["bytes"] / (tier["utilization"] * duration)
            moved = (util * dt[:, None]).sum(axis=0) * cap
            for c, m in zip(("training", "inference", "storage"), moved, strict=True):
                assert m == pytest.approx(tier["bytes_by_class"][c], rel=1e-4, abs=1e3), (layer, c)


# ----- 5. time division ---------------------------------------------------------------------
TD = {
    "strategy": "time_division",
    "duration": 40.0,
    "seed": 0,
    "fabric": {"gpus": 32, "gpu": "h100-sxm", "design": "spine_leaf", "nic": "400G",
               "routing": "ecmp"},
    "time_division": {"model_load": "2s", "schedule": [
        {"at": "0s", "training_gpus": 24}, {"at": "10s", "training_gpus": 8},
        {"at": "25s", "training_gpus": 24}]},
    "workloads": [
        {"name": "train", "kind": "train",
         "job": {"model": "llama3-8b", "tp": 8, "dp": 4, "seq_len": 4096, "global_batch": 48,
                 "zero": 1}},
        {"name": "chat", "kind": "serve", "scenario": {
            "seed": 3, "model": "llama3-8b",
            "workload": {"source": "synthetic", "rate_rps": 15, "num_requests": 500,
                         "input_tokens": {"kind": "lognormal", "mean": 1024, "cv": 1.0,
                                          "maximum": 4096},
                         "output_tokens": {"kind": "lognormal", "mean": 128, "cv": 1.0,
                                           "maximum": 512}},
            "cluster": {"mode": "colocated", "instances": 4, "tp": 8}}},
    ],
}  # fmt: skip


def test_time_division_accounts_every_gpu_second_and_never_serves_on_training_gpus() -> None:
    """One pool of 32 GPUs (4 TP8 instances' worth) with training at 24, then 8 (a shrink
    at 10 s: three instances load and serve), then 24 (a grow at 25 s: two drain first).

    - Each GPU is in exactly one use at every instant, so training + inference + loading
      + idle GPU-seconds = 32 x 40 s.
    - For every completed request, its instance's GPUs were in use "inference" from the
      moment it joined that instance's queue (``Request.enqueued``, before its service
      started) to its last token (``Request.finish``), per the ledger; training steps
      ran at the widths of the schedule only.
    - No request is lost across the moves: completed + held by the instances (their
      waiting, chunking and decoding requests) + rejected == the 500 that arrived."""
    run = _shared_run(TD)
    tdm = run.tdm
    assert tdm.moves == 2
    gpu_s = tdm.ledger.close(40.0)
    assert sum(gpu_s.values()) == pytest.approx(32 * 40.0, rel=1e-12)
    assert all(v >= 0 for v in gpu_s.values())
    assert gpu_s["loading"] > 0 and gpu_s["training"] > 0 and gpu_s["inference"] > 0
    serving = run.servers["chat"]
    assert len(serving.records) > 400
    for req in serving.records:
        a, b = tdm.instance_range[req.instance]
        assert tdm.ledger.held(a, b, "inference", req.enqueued, req.finish), (
            req.id, req.instance, req.enqueued, req.finish)  # fmt: skip
        assert req.first_token >= req.enqueued
    held = sum(inst.outstanding for inst in serving.instances) + len(serving.pending)
    assert serving.arrived == 500
    assert len(serving.records) + held + serving.rejected == serving.arrived
    rec = run.train_records()["train"]
    assert set(rec.step_gpus) == {24, 8}
    # narrow steps start after the shrink's reload (10 s + 2 s) and end, a reload (2 s)
    # at least, before the first wide step after the grow at 25 s
    starts = np.array(rec.step_ends) - np.array(rec.step_times)
    gpus = np.array(rec.step_gpus)
    narrow = gpus == 8
    after = starts[(gpus == 24) & (starts > 25.0)]
    assert starts[narrow].min() >= 12.0
    assert np.array(rec.step_ends)[narrow].max() + 2.0 <= after.min() + 1e-9


def _td_with(
    schedule: list[tuple[float, int]], requests: int = 500, steps: int | None = None
) -> dict[str, Any]:
    import copy

    data = copy.deepcopy(TD)
    data["time_division"]["schedule"] = [{"at": at, "training_gpus": g} for at, g in schedule]
    data["workloads"][1]["scenario"]["workload"]["num_requests"] = requests
    if steps is not None:
        data["workloads"][0]["steps"] = steps
    return data


def test_time_division_grow_waiting_for_a_shrink_drains_the_loaded_instances() -> None:
    """A grow that comes while a shrink is under way waits for it; the shrink's instance
    loads end at the instant training restarts, so the grow drains freshly loaded
    instances. (Before the fix the grow drained instances still in state "loading",
    which the autoscaler does not route to, and raised ValueError.) Every GPU-second is
    still accounted, no completed request ran off inference GPUs, none is lost."""
    run = _shared_run(_td_with([(0.0, 24), (10.0, 8), (11.0, 24)]))
    tdm = run.tdm
    assert tdm.moves == 2 and [t.job.plan.world_size for t in tdm.trainers] == [24, 8, 24]
    gpu_s = tdm.ledger.close(40.0)
    assert sum(gpu_s.values()) == pytest.approx(32 * 40.0, rel=1e-12)
    serving = run.servers["chat"]
    for req in serving.records:
        a, b = tdm.instance_range[req.instance]
        assert tdm.ledger.held(a, b, "inference", req.enqueued, req.finish)
    held = sum(inst.outstanding for inst in serving.instances)
    assert len(serving.records) + held + serving.rejected == serving.arrived == 500


def test_time_division_steps_count_over_all_widths() -> None:
    """``steps`` is the job's total over the widths it runs at: 3 steps, all at 24 GPUs
    before the 10 s shrink (1.2 s each). The grow at 25 s finds its instances idle (5
    requests, done in the first seconds), so they retire inside ``drain``; training then
    moves once. (Before the fix: each width ran ``steps`` more steps, and the grow's
    synchronous retirements started training twice, two trainers at 24 GPUs.)"""
    run = _shared_run(_td_with([(0.0, 24), (10.0, 8), (25.0, 24)], requests=5, steps=3))
    tdm = run.tdm
    assert [t.job.plan.world_size for t in tdm.trainers] == [24, 8, 24]
    assert tdm.training_loading_s == pytest.approx(2 * 2.0)
    rec = run.train_records()["train"]
    assert rec.step_gpus == [24, 24, 24]
    assert sum(tdm.ledger.close(40.0).values()) == pytest.approx(32 * 40.0, rel=1e-12)


@settings(max_examples=14, deadline=None, derandomize=True, database=None)
@given(
    first=st.sampled_from([0, 8, 16, 24]),
    moves=st.lists(
        st.tuples(st.floats(0.5, 35.0), st.sampled_from([0, 8, 16, 24])), min_size=2, max_size=4
    ),
    load=st.sampled_from(["0.5s", "2s", "5s"]),
    ckpt=st.sampled_from([None, ("sync", 2), ("async", 3)]),
    steps=st.one_of(st.none(), st.integers(1, 12)),
    requests=st.sampled_from([5, 200]),
)
def test_time_division_invariants_hold_for_any_schedule(
    first: int, moves: list[tuple[float, int]], load: str, ckpt: tuple[str, int] | None,
    steps: int | None, requests: int,
) -> None:  # fmt: skip
    """Any schedule (windows in any order of widths, moves while others are under way),
    model load, checkpointing and step limit: the four uses add up to the pool's
    GPU-seconds, every completed request ran on GPUs in use "inference" from its
    enqueueing to its finish, no request is lost, a step limit is the job's total."""
    import copy

    data = copy.deepcopy(TD)
    data["fabric"]["gpus"] = 48  # room for a storage server after the pool
    ats = sorted({round(a, 2) for a, _ in moves})
    data["time_division"]["schedule"] = [{"at": 0.0, "training_gpus": first}] + [
        {"at": a, "training_gpus": next(g for t, g in moves if round(t, 2) == a)} for a in ats
    ]
    data["time_division"]["model_load"] = load
    if ckpt is not None:
        data["storage"] = {"servers": 1}
        data["workloads"][0]["checkpoint"], data["workloads"][0]["checkpoint_every_steps"] = ckpt
    if steps is not None:
        data["workloads"][0]["steps"] = steps
    data["workloads"][1]["scenario"]["workload"]["num_requests"] = requests
    run = _shared_run(data)
    tdm = run.tdm
    gpu_s = tdm.ledger.close(40.0)
    assert sum(gpu_s.values()) == pytest.approx(32 * 40.0, rel=1e-12)
    assert min(gpu_s.values()) >= 0
    serving = run.servers["chat"]
    for req in serving.records:
        a, b = tdm.instance_range[req.instance]
        assert tdm.ledger.held(a, b, "inference", req.enqueued, req.finish)
    held = sum(inst.outstanding for inst in serving.instances)
    assert len(serving.records) + held + serving.rejected == serving.arrived == requests
    if steps is not None:
        assert len(run.train_records()["train"].step_ends) <= steps


def test_time_division_json_gpu_seconds(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The JSON's per-use GPU-seconds add up to pool GPUs x duration; training reloads
    once per move (``loading_s`` = moves x model_load)."""
    got = _cluster(tmp_path, capsys, TD)
    gpu_s = got["gpu_utilization"]["gpu_s"]
    assert set(gpu_s) == {"training", "inference", "loading", "idle"}
    assert sum(gpu_s.values()) == pytest.approx(32 * 40.0, rel=1e-12)
    train = got["workloads"][0]["shared"]
    assert train["reconfigurations"] == 2 and train["loading_s"] == pytest.approx(2 * 2.0)
    assert got["cost_usd"]["gpus"] == 32


# ----- 6. bad input -------------------------------------------------------------------------
def _base() -> dict[str, Any]:
    return {"duration": 5.0, "fabric": dict(FABRIC),
            "workloads": [{"name": "train", "kind": "train", "job": dict(JOB)},
                          {"name": "serve", "kind": "serve", "scenario": dict(SERVE)}]}  # fmt: skip


def _td() -> dict[str, Any]:
    import copy

    return copy.deepcopy(TD)


def _set(data: dict[str, Any], path: str, value: Any) -> dict[str, Any]:
    if path == ".":  # several top-level keys at once
        data.update(value)
        return data
    node = data
    parts = path.split(".")
    for p in parts[:-1]:
        node = node[int(p)] if isinstance(node, list) else node[p]
    last = parts[-1]
    if isinstance(node, list):
        node[int(last)] = value
    elif value is _DROP:
        node.pop(last)
    else:
        node[last] = value
    return data


class _Drop:
    """A marker: remove the key. Its repr is fixed so test ids are the same in every process."""

    def __repr__(self) -> str:
        return "<drop>"


_DROP = _Drop()
BAD = [
    ("nope", 1, "nope"),
    ("strategy", "magic", "strategy"),
    ("strategy", "time_division", "time_division"),
    ("duration", "5 parsecs", "duration"),
    ("duration", 0, "duration"),
    ("fabric", _DROP, "fabric"),
    ("fabric.gpus", 64, "fabric.gpus"),
    ("fabric.routing", "magic", "fabric.routing"),
    # resource guards (aifabric.guards; --max-work lifts them): before, a MemoryError and
    # a run of millions of steps
    ("fabric.gpus", 1_000_000_000, "simulate cluster (fabric): ~3e9 links"),
    ("duration", "100d", "flow groups estimated (workload train"),
    ("classes", {"policy": "strict_priority", "order": ["inference", "training"]}, "classes.order"),
    ("classes", {"policy": "weighted", "weights": {"training": 1}}, "classes.weights"),
    (
        "classes",
        {"policy": "weighted", "weights": {"training": 1, "inference": 0, "storage": 1}},
        "classes.weights.inference",
    ),
    ("classes", {"policy": "lottery"}, "classes.policy"),
    ("storage", {"servers": 1, "network": "frontend"}, "storage.network"),
    ("storage", {"servers": 0}, "storage.servers"),
    ("storage", {"disks": 1}, "storage.disks"),
    ("strategy", "separate_networks", "frontend"),
    # a network too small for the GPUs whose flows cross it (before: IndexError)
    (
        ".",
        {"strategy": "separate_networks", "frontend": {"gpus": 64, "design": "spine_leaf"}},
        "frontend.gpus: its 64 GPUs do not reach GPU 95",
    ),
    (
        ".",
        {
            "strategy": "separate_networks",
            "frontend": {"gpus": 96, "design": "spine_leaf"},
            "storage": {"servers": 1},
        },
        "frontend.gpus: its 96 GPUs do not reach GPU 103",
    ),
    (
        ".",
        {"strategy": "separate_clusters", "inference_fabric": {"gpus": 16}},
        "inference_fabric.gpus: its 16 GPUs do not reach GPU 31",
    ),
    ("workloads", [], "workloads"),
    ("workloads.0.kind", "infer", "workloads[0].kind"),
    ("workloads.0.job.gpus", 64, "workloads[0].job.gpus"),
    ("workloads.0.checkpoint", "later", "workloads[0].checkpoint"),
    ("workloads.0.steps", 0, "workloads[0].steps"),
    ("workloads.1.name", "train", "names"),
    ("workloads.1.first_gpu", 8, "workloads[1] (serve).first_gpu"),
    ("workloads.1.first_gpu", 68, "workloads[1] (serve).first_gpu"),
    ("workloads.1.gpus", 8, "workloads[1] (serve).gpus"),
    ("workloads.1.scenario.fabric", {"gpus": 64}, "fabric"),
    ("workloads.1.scenario.autoscale", {"enabled": True}, "autoscale"),
    # two deployments with different per-transfer latencies: the shared network has one
    # (before: the larger applied to both, a 7.5 % TBT p99 "slowdown" with no shared link)
    (
        "workloads.0",
        {"name": "a", "kind": "serve", "scenario": {**SERVE, "network": {"latency_s": 0.005}}},
        "workloads[1] (serve).scenario.network.latency_s",
    ),
]


@pytest.mark.parametrize(("path", "value", "key"), BAD, ids=[f"{p}={v!r}"[:40] for p, v, _ in BAD])
def test_bad_scenarios_are_refused_in_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], path: str, value: Any, key: str
) -> None:
    """Each bad key is refused with exit status 2 and one error line that names it."""
    data = _set(_base(), path, value)
    file = _write(tmp_path, data)
    message = run_error(capsys, "simulate", "cluster", "-f", str(file), "--json")
    assert key in message, message


TD_BAD = [
    ("time_division", _DROP, "time_division"),
    ("time_division.schedule.1.training_gpus", 12, "training_gpus"),
    ("time_division.schedule.1.training_gpus", 32, "training_gpus"),
    ("time_division.schedule.0.at", "1s", "schedule[0].at"),
    ("time_division.schedule.2.at", "5s", "schedule[2].at"),
    ("time_division.model_load", "soon", "model_load"),
    ("time_division.extra", 1, "time_division.extra"),
    (
        "workloads.1.scenario.cluster",
        {"mode": "disaggregated", "prefill_instances": 1, "decode_instances": 1, "tp": 8},
        "colocated",
    ),
    ("workloads.1.scenario.cluster.instances", 5, "pool"),
    ("workloads.1.kind", "train", "time_division"),
]


@pytest.mark.parametrize(("path", "value", "key"), TD_BAD,
                         ids=[f"{p}={v!r}"[:40] for p, v, _ in TD_BAD])  # fmt: skip
def test_bad_time_division_scenarios_are_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], path: str, value: Any, key: str
) -> None:
    """Time division's own rules: the section with its strategy, windows in multiples of
    tp x pp x cp that leave an instance, the first at 0 and in order; one colocated
    deployment that fits the training job's pool."""
    data = _set(_td(), path, value)
    if path == "workloads.1.kind":
        data["workloads"][1] = {"name": "t2", "kind": "train", "job": dict(JOB)}
    message = run_error(capsys, "simulate", "cluster", "-f", str(_write(tmp_path, data)), "--json")
    assert key in message, message


# ----- 7. determinism -----------------------------------------------------------------------
def test_the_same_scenario_gives_the_same_json(tmp_path: Path,
                                               capsys: pytest.CaptureFixture[str]) -> None:  # fmt: skip
    """Every random choice comes from the scenario's seeds, so two runs of a scenario with
    training, serving and storage give the same JSON (wall time apart)."""
    a = _cluster(tmp_path, capsys, _finite_scenario())
    b = _cluster(tmp_path, capsys, _finite_scenario())
    a.pop("wall_s"), b.pop("wall_s")
    assert a == b


# ----- 8. the examples ----------------------------------------------------------------------
@pytest.mark.parametrize("path", sorted((ROOT / "examples" / "cluster").glob("*.yaml")),
                         ids=lambda p: p.name)  # fmt: skip
def test_every_cluster_example_runs_shortened(capsys: pytest.CaptureFixture[str],
                                              path: Path) -> None:  # fmt: skip
    """Every examples/cluster scenario parses and runs for 5 simulated minutes (a time
    division schedule compressed into them), each workload doing work."""
    sets = shortened_cluster_sets(path, 300.0)
    got = run_json(capsys, "simulate", "cluster", "-f", str(path), *sets, "--json")
    assert got["duration_s"] == 300.0
    for w in got["workloads"]:
        done = w["shared"]["steps"] if w["kind"] == "train" else w["shared"]["completed"]
        assert done > 0, w["name"]
    if got["strategy"] == "time_division":
        windows = yaml.safe_load(path.read_text(encoding="utf-8"))["time_division"]["schedule"]
        moves = sum(
            a["training_gpus"] != b["training_gpus"] for a, b in itertools.pairwise(windows)
        )
        train = next(w for w in got["workloads"] if w["kind"] == "train")
        assert train["shared"]["reconfigurations"] == moves


# ----- found by the fuzz suite --------------------------------------------------------------
def test_spray_routing_of_no_flows_is_empty() -> None:
    """Spraying zero flows gives zero routes (CSR indptr [0]); before the fix the middle
    hops' gather raised ValueError, so a training job whose collective step had no flow
    across the fabric crashed ``simulate train --routing spray`` and ``simulate cluster``
    with ``fabric.routing: spray`` (found by tests/test_fuzz.py)."""
    from aifabric.fabric.plan import build, fabric_spec
    from aifabric.fabric.routing import Router
    from aifabric.spec.scenario import PLAN_KEYS, merge_options

    plan = merge_options(PLAN_KEYS, {"gpus": 32, "design": "spine_leaf", "oversubscription": 2}, {})
    spec, _, info = fabric_spec(plan)
    router = Router(build(spec, info.get("design")))
    none = np.zeros(0, np.int64)
    routes = router.route(none, none, "spray", seed=0)
    assert routes.indptr.tolist() == [0] and len(routes.links) == 0


def test_a_training_job_runs_with_spray_routing(tmp_path: Path,
                                                capsys: pytest.CaptureFixture[str]) -> None:  # fmt: skip
    """The 32-GPU case the fuzz suite found: Llama-3-8B TP8 DP2 alone with spray routing
    takes ``simulate train``'s iteration on the same fabric."""
    fabric = {"gpus": 32, "gpu": "h100-sxm", "design": "spine_leaf", "oversubscription": 2,
              "routing": "spray"}  # fmt: skip
    job = {"model": "llama3-8b", "tp": 8, "dp": 2, "seq_len": 2048, "global_batch": 16}
    data = {"duration": 2.0, "fabric": fabric,
            "workloads": [{"name": "t", "kind": "train", "job": job}]}  # fmt: skip
    got = _cluster(tmp_path, capsys, data)["workloads"][0]["shared"]
    ref = run_json(capsys, "simulate", "train", "-f",
                   str(_write(tmp_path, {**job, **fabric, "network": "flow"}, "t.yaml")), "--json")  # fmt: skip
    assert got["step_time_s"] == pytest.approx(ref["iteration_time_s"], rel=1e-12)
