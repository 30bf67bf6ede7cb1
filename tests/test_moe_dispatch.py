"""MoE dispatch: node-limited routing, node-aware dispatch, dispatch/combine dtypes, expert TP.

Truth used here: brute-force enumeration of every expert set and source GPU (itertools),
with the DeepSeek-V3 forwarding rule simulated copy by copy (arXiv:2412.19437 sec. 3.2.2:
IB to the GPU with the same in-node index on each target node, then NVLink to the GPUs
hosting the target experts); the closed form of k draws without replacement; a seeded
Monte-Carlo of the routing for the full-size DeepSeek-V3 case; hand-derived byte counts;
Megatron-Core's expert rank grid (parallel_state.py, order tp-ep-dp-pp).
"""

from __future__ import annotations

import itertools
import json
from dataclasses import replace
from fractions import Fraction
from math import comb
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from aifabric.catalog import get_gpu, get_model
from aifabric.cli import main
from aifabric.errors import ConfigError
from aifabric.spec.jobs import TrainingJob
from aifabric.spec.model import ModelSpec
from aifabric.spec.parallel import ParallelPlan
from aifabric.traffic.collectives import SCALE_OUT, SCALE_UP
from aifabric.traffic.moe_dispatch import (
    dispatch_fanout,
    expected_nodes_uniform,
    node_count_distribution,
)
from aifabric.traffic.rows import TrafficRow, sum_rows
from aifabric.traffic.training import training_traffic


def _brute_force(
    num_experts: int, k: int, nodes: int, per_node: int, max_nodes: int
) -> tuple[float, float, float, float]:
    """Mean (nodes, remote nodes, GPUs, NVLink copies) per token over every allowed expert
    set and every source GPU, forwarding simulated copy by copy; asserts that each token's
    k expert inputs reach their GPUs exactly once."""
    ep = nodes * per_node
    e = num_experts // ep
    totals = np.zeros(4)
    count = 0
    for experts in itertools.combinations(range(num_experts), k):
        gpus = {x // e for x in experts}
        hit = {g // per_node for g in gpus}
        if max_nodes and len(hit) > max_nodes:
            continue
        for src in range(ep):
            home, index = src // per_node, src % per_node
            delivered = 0
            nvlink = 0
            for node in hit:
                landing = src if node == home else node * per_node + index
                for gpu in (g for g in gpus if g // per_node == node):
                    nvlink += gpu != landing
                    delivered += sum(1 for x in experts if x // e == gpu)
            assert delivered == k
            totals += (len(hit), len(hit - {home}), len(gpus), nvlink)
            count += 1
    n, r, g, v = totals / count
    return float(n), float(r), float(g), float(v)


@pytest.mark.parametrize(
    ("num_experts", "k", "nodes", "per_node", "max_nodes"),
    [
        (8, 2, 2, 2, 0),
        (8, 3, 2, 2, 1),
        (12, 3, 3, 2, 2),
        (12, 4, 3, 2, 2),
        (12, 2, 2, 3, 1),
        (16, 4, 4, 2, 2),
        (16, 3, 4, 1, 2),
        (16, 4, 2, 4, 0),
    ],
)
def test_fanout_matches_brute_force(
    num_experts: int, k: int, nodes: int, per_node: int, max_nodes: int
) -> None:
    """Inclusion-exclusion counts and the symmetry arguments (a touched node is remote with
    probability (N-1)/N, a destination GPU is the landing one with probability 1/m) against
    the enumeration of every expert set within the node limit and every source GPU."""
    f = dispatch_fanout(
        num_experts=num_experts,
        experts_per_token=k,
        num_nodes=nodes,
        ranks_per_node=per_node,
        max_nodes=max_nodes,
    )
    truth = _brute_force(num_experts, k, nodes, per_node, max_nodes)
    assert (f.nodes, f.remote_nodes, f.gpus, f.nvlink_copies) == pytest.approx(truth, rel=1e-12)
    assert f.expert_inputs == k


def test_distinct_nodes_small_case_by_hand() -> None:
    """4 experts on 2 nodes (2 each), top-2: of the C(4,2) = 6 pairs, 2 lie on one node, so
    P(D=1) = 1/3, P(D=2) = 2/3, E[D] = 5/3 = 2 (1 - C(2,2)/C(4,2)). With M = 1 only the two
    one-node pairs remain: D = 1."""
    dist = node_count_distribution(num_nodes=2, experts_per_node=2, experts_per_token=2)
    assert dist == [0, Fraction(1, 3), Fraction(2, 3)]
    assert expected_nodes_uniform(num_experts=4, experts_per_node=2, k=2) == pytest.approx(5 / 3)
    limited = node_count_distribution(
        num_nodes=2, experts_per_node=2, experts_per_token=2, max_nodes=1
    )
    assert limited == [0, 1, 0]


@pytest.mark.parametrize(("e", "g", "k"), [(256, 32, 8), (128, 16, 8), (64, 8, 6), (8, 4, 2)])
def test_no_limit_is_the_draws_without_replacement_closed_form(e: int, g: int, k: int) -> None:
    """Without a node limit (M = 0, or M >= N) E[D] = N (1 - C(E-g, k) / C(E, k)), and the
    distinct GPUs follow the same form with the e = E/ep experts of a GPU."""
    n = e // g
    closed = n * (1 - comb(e - g, k) / comb(e, k))
    for m in (0, n, n + 3):
        f = dispatch_fanout(
            num_experts=e, experts_per_token=k, num_nodes=n, ranks_per_node=2, max_nodes=m
        )
        assert f.nodes == pytest.approx(closed, rel=1e-12)
        assert f.gpus == pytest.approx(2 * n * (1 - comb(e - g // 2, k) / comb(e, k)), rel=1e-12)


def test_deepseek_v3_fanout_by_hand_and_by_sampling() -> None:
    """DeepSeek-V3, EP64 over 8 nodes: E = 256, g = 32 experts per node, k = 8, M = 4.
    a_1 = C(32,8) = 10,518,300; a_2 = C(64,8) - 2 a_1 = 4,405,128,768;
    a_3 = C(96,8) - 3 C(64,8) + 3 C(32,8) = 119,354,075,136;
    a_4 = C(128,8) - 4 C(96,8) + 6 C(64,8) - 4 C(32,8) = 925,813,506,048.
    Weights C(8,j) a_j: 84,146,400; 123,343,605,504; 6,683,828,207,616; 64,806,945,423,360
    (sum 71,614,201,382,880) -> E[D] = 3.90322, remote nodes 7/8 of it = 3.41532.
    A seeded Monte-Carlo of the routing (uniform top-8, kept when it spans <= 4 nodes) agrees
    to 1 %."""
    weights = [84_146_400, 123_343_605_504, 6_683_828_207_616, 64_806_945_423_360]
    assert sum(weights) == 71_614_201_382_880
    nodes = Fraction(sum(j * w for j, w in enumerate(weights, 1)), sum(weights))
    f = dispatch_fanout(
        num_experts=256, experts_per_token=8, num_nodes=8, ranks_per_node=8, max_nodes=4
    )
    assert f.nodes == pytest.approx(float(nodes), rel=1e-12)
    assert f.remote_nodes == pytest.approx(float(nodes) * 7 / 8, rel=1e-12)
    assert f.remote_nodes == pytest.approx(3.41532, abs=1e-5)

    rng = np.random.default_rng(7)
    picks = np.argpartition(rng.random((60_000, 256)), 8, axis=1)[:, :8]
    node_hit = np.zeros((picks.shape[0], 8), dtype=bool)
    np.put_along_axis(node_hit, picks // 32, True, axis=1)
    spans = node_hit.sum(axis=1)
    kept = spans <= 4
    gpu_hit = np.zeros((picks.shape[0], 64), dtype=bool)
    np.put_along_axis(gpu_hit, picks // 4, True, axis=1)
    assert spans[kept].mean() == pytest.approx(f.nodes, rel=0.01)
    assert gpu_hit.sum(axis=1)[kept].mean() == pytest.approx(f.gpus, rel=0.01)


def test_node_limit_never_sends_more_and_grows_with_m() -> None:
    """Remote copies rise with M up to the unlimited value and stay below the k (N-1)/N
    copies of a per-expert all-to-all; M = 1 keeps every token on one node (7/8 remote)."""
    remote = [
        dispatch_fanout(
            num_experts=256, experts_per_token=8, num_nodes=8, ranks_per_node=8, max_nodes=m
        ).remote_nodes
        for m in range(1, 9)
    ]
    assert remote[0] == pytest.approx(7 / 8)
    assert all(a < b for a, b in itertools.pairwise(remote))
    assert remote[-1] < 8 * 7 / 8


def test_infeasible_limit_and_bad_group_are_refused() -> None:
    with pytest.raises(ConfigError, match=r"max_nodes_per_token\(=1\) x experts per node\(=4\)"):
        dispatch_fanout(
            num_experts=16, experts_per_token=8, num_nodes=4, ranks_per_node=1, max_nodes=1
        )
    with pytest.raises(ConfigError, match=r"num_experts\(=10\) must be a multiple of ep\(=4\)"):
        dispatch_fanout(num_experts=10, experts_per_token=2, num_nodes=2, ranks_per_node=2)


# ----- training rows -------------------------------------------------------------------------


def _ds_job(**kw: object) -> TrainingJob:
    """The examples/train/deepseek-v3-ep64.yaml job (2,048 H800s, PP16, DP128, EP64)."""
    model = kw.pop("model", get_model("deepseek-v3"))
    plan_kw = {k: kw.pop(k) for k in list(kw) if k in ("expert_tp", "tp", "dp", "ep", "pp")}
    plan = ParallelPlan(
        **{"tp": 1, "pp": 16, "dp": 128, "ep": 64, "zero": 1, **plan_kw}  # type: ignore[arg-type]
    )
    return TrainingJob(
        model=model,  # type: ignore[arg-type]
        plan=plan,
        gpu=get_gpu("h800"),
        seq_len=4096,
        global_batch=15360,
        dataset_tokens=14.8e12,
        **kw,  # type: ignore[arg-type]
    )


def _ep(job: TrainingJob) -> list[TrafficRow]:
    return [r for r in training_traffic(job).rows if r.dimension == "ep"]


def test_deepseek_v3_ep64_bytes_by_hand() -> None:
    """Per rank and micro-batch 4,096 tokens (seq 4096, tp = cp = 1); 58 MoE layers over 16
    stages x 120 micro-batches = 435 calls per row. Scale-out per GPU per iteration, each
    pass (forward, backward): dispatch 4096 x 3.41532 x 7168 x 1 B x 435 = 43.62 GB (FP8),
    combine twice that in BF16 = 87.24 GB, together 2 x 130.86 = 261.72 GB; NVLink
    forwarding E[GPUs] x 7/8 = 6.50520 copies.
    Before this model (uniform per-expert all-to-all, bf16 both ways) it was 8 x 56/64 = 7
    copies x 2 B each way: 4 x 4096 x 7 x 7168 x 2 x 435 = 715.2 GB per GPU."""
    f = dispatch_fanout(
        num_experts=256, experts_per_token=8, num_nodes=8, ranks_per_node=8, max_nodes=4
    )
    rows = _ep(_ds_job())
    assert {r.algorithm for r in rows} == {"deepep"}
    assert {r.calls for r in rows} == {435}
    base = 4096 * 7168 * 435
    for r in rows:
        b = 1 if r.note == "dispatch (fp8)" else 2
        assert r.note in ("dispatch (fp8)", "combine (bf16)")
        copies = f.remote_nodes if r.scope == SCALE_OUT else f.nvlink_copies
        assert r.bytes_per_gpu == pytest.approx(base * copies * b, rel=1e-12)
        assert r.total_bytes == pytest.approx(r.bytes_per_gpu * 2048, rel=1e-12)
    scale_out = sum_rows(rows, SCALE_OUT) / 2048
    assert scale_out == pytest.approx(2 * 3 * base * 3.4153181665, rel=1e-9)
    assert scale_out == pytest.approx(261.716e9, rel=1e-5)
    uniform = replace(get_model("deepseek-v3"), max_nodes_per_token=0, moe_dispatch_dtype="bf16")
    old = sum_rows(_ep(_ds_job(model=uniform)), SCALE_OUT) / 2048
    assert old == pytest.approx(4 * 4096 * 7 * 7168 * 2 * 435, rel=1e-12)


def test_fp8_dispatch_is_half_of_bf16_combine() -> None:
    """Dispatch and combine move the same copies; FP8 (1 B) vs BF16 (2 B) halves the
    dispatch rows scope by scope, and a BF16 dispatch makes them equal."""
    rows = _ep(_ds_job())
    for phase in ("forward", "backward"):
        for scope in (SCALE_UP, SCALE_OUT):
            d, c = (
                sum(
                    r.total_bytes
                    for r in rows
                    if r.phase == phase and r.scope == scope and r.note.startswith(direction)
                )
                for direction in ("dispatch", "combine")
            )
            assert d / c == pytest.approx(0.5, rel=1e-12)
    bf16 = replace(get_model("deepseek-v3"), moe_dispatch_dtype="bf16")
    rows = _ep(_ds_job(model=bf16))
    d = sum(r.total_bytes for r in rows if r.note.startswith("dispatch"))
    c = sum(r.total_bytes for r in rows if r.note.startswith("combine"))
    assert d == pytest.approx(c, rel=1e-12)


@pytest.mark.parametrize("max_nodes", [0, 1, 2, 3, 4, 8])
def test_expert_inputs_are_conserved_whatever_the_routing(max_nodes: int) -> None:
    """Every routing delivers the same T x k expert inputs per rank and call: the rows'
    buffers (expert-input bytes) over a pass add up to the iteration's 15,360 x 4,096 tokens
    x 8 experts x 7168 x (1 + 2) B x 58 MoE layers (buffer x calls x ranks: 4096 x 8 x 7168
    x B per rank and call, 58/16 x 120 calls, 2,048 ranks), for the uniform all-to-all and
    every node limit."""
    model = replace(get_model("deepseek-v3"), max_nodes_per_token=max_nodes)
    rows = [r for r in _ep(_ds_job(model=model)) if r.phase == "forward"]
    once = {(r.note, r.buffer_bytes, r.calls, r.group_size, r.num_groups) for r in rows}
    inputs = sum(buf * calls * size * groups for _, buf, calls, size, groups in once)
    assert inputs == pytest.approx(15360 * 4096 * 8 * 7168 * 3 * 58, rel=1e-12)


def test_uniform_routing_stays_the_default() -> None:
    """Models that publish no routing limit keep the per-expert all-to-all: Qwen3-235B,
    ep = 8 over one 8-GPU node: (8-1)/8 of 4096 x 8 x 4096 x 2 B per call on NVLink."""
    qwen = get_model("qwen3-235b-a22b")
    assert qwen.max_nodes_per_token == 0 and qwen.moe_dispatch_dtype == ""
    job = TrainingJob(
        model=qwen, plan=ParallelPlan(dp=8, ep=8), gpu=get_gpu("h100-sxm"), seq_len=4096,
        global_batch=8,
    )  # fmt: skip
    rows = _ep(job)
    assert {(r.algorithm, r.scope) for r in rows} == {("direct", SCALE_UP)}
    s = 4096 * 8 * 4096 * 2
    assert sum_rows(rows) == pytest.approx(4 * 94 * 7 / 8 * s * 8, rel=1e-12)


def test_full_recompute_repeats_the_forward_exchange() -> None:
    plain, full = _ep(_ds_job()), _ep(_ds_job(recompute="full"))
    extra = [r for r in full if r.note.startswith("full recompute")]
    assert {r.phase for r in extra} == {"backward"}
    forward = sum_rows([r for r in plain if r.phase == "forward"])
    assert sum_rows(extra) == pytest.approx(forward, rel=1e-12)
    assert sum_rows(full) == pytest.approx(1.5 * sum_rows(plain), rel=1e-12)


def test_uneven_domains_are_refused_for_node_limited_dispatch() -> None:
    """EP64 groups on 72-GPU domains: ranks 64..127 are 8 in one rack, 56 in the next."""
    with pytest.raises(ConfigError, match=r"ep\(=64\) over scale-up domains of 72"):
        training_traffic(_ds_job(scaleup_domain_size=72))


# ----- expert tensor parallelism -------------------------------------------------------------


def test_expert_tp_default_is_tp_as_in_megatron() -> None:
    """Megatron-Core: expert_tensor_parallel_size None -> tensor_model_parallel_size."""
    plan = ParallelPlan(tp=4, dp=8, ep=4)
    assert plan.expert_tp_size == 4
    assert plan.group_size("edp") == 8 // 4
    assert ParallelPlan(tp=4, dp=8, ep=4, expert_tp=4) == replace(plan, expert_tp=4)


def test_expert_grid_by_hand() -> None:
    """tp = 2, dp = 4 (8 ranks), ep = 4, expert_tp = 1: Megatron's expert grid (etp, ep, edp
    fastest first) gives ep groups of consecutive ranks {0-3}, {4-7}; edp pairs the same
    expert block {0,4}, {1,5}, ...; 8 / (4 x 1) = 2 = edp size. With expert_tp = 2: etp
    {0,1}, ..., ep stride 2 {0,2,4,6}, {1,3,5,7}, edp of size 1."""
    plan = ParallelPlan(tp=2, dp=4, ep=4, expert_tp=1)
    assert plan.group_ranks("ep").tolist() == [[0, 1, 2, 3], [4, 5, 6, 7]]
    assert plan.group_ranks("edp").tolist() == [[0, 4], [1, 5], [2, 6], [3, 7]]
    assert plan.group_size("edp") == 2
    plan2 = ParallelPlan(tp=2, dp=4, ep=4, expert_tp=2)
    assert plan2.group_ranks("etp").tolist() == [[0, 1], [2, 3], [4, 5], [6, 7]]
    assert plan2.group_ranks("ep").tolist() == [[0, 2, 4, 6], [1, 3, 5, 7]]
    assert plan2.group_size("edp") == 1
    for p in (plan, plan2):
        ranks = np.sort(p.group_ranks("ep").ravel())
        assert ranks.tolist() == list(range(8))


def test_expert_tp_params_dp_group_and_rows_agree() -> None:
    """Mixtral, tp = 2 (SP), dp = 8, ep = 4, bf16 grads, ZeRO-0, seq 4096, one micro-batch
    per DP rank. expert_tp = 1: expert shard = P_e / (4 x 1), edp = 2 x 8 / 4 = 4, so 4
    groups of 4 all-reduce it: 4 x 2 x 3 x (P_e / 4) x 2 B. expert_tp = 2: shard P_e / 8,
    edp = 2, 8 groups: 8 x 2 x 1 x (P_e / 8) x 2 B. Dispatch: T = 4096 / 2 tokens per rank,
    buffer T x 2 x 4096 x 2 B either way; expert_tp = 2 adds an all-gather and a
    reduce-scatter of 2 x T x 2 copies x 4096 x 2 B per direction."""
    mixtral = get_model("mixtral-8x7b")
    p_e = mixtral.expert_params()
    t = 4096 / 2
    for etp, groups, n in ((1, 4, 4), (2, 8, 2)):
        plan = ParallelPlan(
            tp=2, dp=8, ep=4, expert_tp=etp, sequence_parallel=True, grad_dtype="bf16"
        )
        assert plan.params_per_gpu(mixtral)[1] == p_e / (4 * etp)
        assert plan.group_size("edp") == n
        job = TrainingJob(
            model=mixtral, plan=plan, gpu=get_gpu("h100-sxm"), seq_len=4096, global_batch=8
        )
        rows = training_traffic(job).rows
        edp = [r for r in rows if r.dimension == "dp_expert"]
        assert sum_rows(edp) == pytest.approx(groups * 2 * (n - 1) * p_e / (4 * etp) * 2)
        a2a = [r for r in rows if r.dimension == "ep" and r.collective == "all_to_all"]
        assert {r.buffer_bytes for r in a2a} == {t * 2 * 4096 * 2}
        gathers = [r for r in rows if r.dimension == "ep" and r.collective != "all_to_all"]
        if etp == 1:
            assert not gathers
        else:
            assert {r.collective for r in gathers} == {"all_gather", "reduce_scatter"}
            assert {r.buffer_bytes for r in gathers} == {2 * t * 2 * 4096 * 2}
            assert all(r.note.endswith("expert-TP") for r in gathers)


def test_expert_tp_refusals() -> None:
    with pytest.raises(ConfigError, match=r"expert_tp\(=0\) must be an integer >= 1"):
        ParallelPlan(dp=8, ep=8, expert_tp=0)
    with pytest.raises(
        ConfigError, match=r"ep\(=8\) x expert_tp\(=2\) must divide tp\*dp\*cp\(=8\)"
    ):
        ParallelPlan(dp=8, ep=8, expert_tp=2)
    with pytest.raises(ConfigError, match=r"expert_tp\(=3\) must divide moe_intermediate_size"):
        ParallelPlan(dp=3, ep=1, expert_tp=3).validate_for(get_model("mixtral-8x7b"))


def test_model_routing_fields_are_validated() -> None:
    base = get_model("deepseek-v3")
    with pytest.raises(ConfigError, match=r"moe_dispatch_dtype\(='fp9'\) must be one of"):
        replace(base, moe_dispatch_dtype="fp9")
    with pytest.raises(ConfigError, match=r"max_nodes_per_token\(=-1\) must be an integer >= 0"):
        replace(base, max_nodes_per_token=-1)
    dense: ModelSpec = get_model("llama3-8b")
    with pytest.raises(ConfigError, match=r"max_nodes_per_token\(=4\)"):
        replace(dense, max_nodes_per_token=4)


def test_cli_expert_tp_flag_and_scenario_key(tmp_path: Path, capsys: Any) -> None:
    args = ["traffic", "train", "--model", "mixtral-8x7b", "--tp", "2", "--dp", "8", "--ep", "4",
            "--sp", "--global-batch", "8", "--json"]  # fmt: skip
    assert main([*args, "--expert-tp", "1"]) == 0
    assert json.loads(capsys.readouterr().out)["plan"]["expert_tp"] == 1
    assert main([*args, "--expert-tp", "3"]) == 2
    assert "ep(=4) x expert_tp(=3) must divide tp*dp*cp(=16)" in capsys.readouterr().err
    scenario = tmp_path / "s.yaml"
    scenario.write_text("model: mixtral-8x7b\ntp: 2\ndp: 8\nep: 4\nexpert_tp: 2\n")
    assert main(["traffic", "train", "-f", str(scenario), "--sp", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["plan"]["expert_tp"] == 2
