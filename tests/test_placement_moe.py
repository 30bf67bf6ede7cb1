"""Where MoE dispatch bytes land on the fabric.

DeepEP's internode dispatch (DeepSeek-V3 report sec. 3.2.2; github deepseek-ai/DeepEP): a
token bound for a remote node crosses the scale-out network once, to the GPU with the same
in-node index, then fans out over NVLink. On a rail-optimized fabric that GPU hangs off the
same rail leaf, so for an EP group inside one scalable unit every scale-out byte of the
dispatch stays on the leaf tier; an all-pairs exchange would send 7/8 of it across rails
to the spines.
"""

from __future__ import annotations

import numpy as np
import pytest

from aifabric.fabric.placement import row_pairs
from aifabric.fabric.plan import plan_fabric
from aifabric.spec.scenario import TRAIN_KEYS, merge_options, training_job
from aifabric.traffic.collectives import SCALE_OUT

DEEPSEEK = {
    "model": "deepseek-v3", "gpu": "h800", "pp": 16, "dp": 16, "ep": 16, "zero": 1,
    "seq_len": 4096, "global_batch": 16,
}  # fmt: skip


def test_deepep_rows_stay_on_the_rail_leaf():
    """EP16 over 2 servers (8 GPUs each) of one 32-node SU: all ep scale-out bytes on the
    leaf tier, none on the spines."""
    job = training_job(merge_options(TRAIN_KEYS, {}, DEEPSEEK))
    result, _, _ = plan_fabric({"gpus": 256, "gpu": "h800"}, job)
    ep = {r["tier"]: r["bytes"] for r in result["traffic_by_tier"] if r["dimension"] == "ep"}
    assert ep.get("spine", 0.0) == 0.0
    assert ep["leaf"] > 0


def test_rail_all_pairs_by_hand():
    """2 domains of 2 ranks: pairs (0,2), (1,3), (2,0), (3,1): same index, other domain."""
    from aifabric.traffic.rows import TrafficRow

    row = TrafficRow("ep", "forward", "all_to_all", "deepep", 4, 1, 1, 1.0, 1.0, 1.0, SCALE_OUT)
    members = np.array([[0, 1, 2, 3]])
    domain = np.array([0, 0, 1, 1])
    a, b = row_pairs(row, members, domain)
    assert sorted(zip(a.tolist(), b.tolist(), strict=True)) == [(0, 2), (1, 3), (2, 0), (3, 1)]


@pytest.mark.parametrize("nodes", [2, 4])
def test_rail_all_pairs_count(nodes):
    """D domains of m members: m D (D - 1) ordered pairs."""
    from aifabric.traffic.rows import TrafficRow

    row = TrafficRow("ep", "forward", "all_to_all", "deepep", 8, 1, 1, 1.0, 1.0, 1.0, SCALE_OUT)
    m = 8
    members = np.arange(nodes * m)[None, :]
    a, b = row_pairs(row, members, np.arange(nodes * m) // m)
    assert a.size == m * nodes * (nodes - 1)
    assert np.all(a % m == b % m) and np.all(a // m != b // m)


def test_matrix_follows_each_stage_parameters():
    """Llama-3-70B TP8 x PP8 x DP16, 10 layers a stage: a DP rank of the first stage
    reduces 10 layers + the 128,256 x 8,192 input table, a middle one 10 layers, the last
    10 layers + the LM head + final norm. The DP ring's server pairs carry bytes in that
    ratio (each server holds one stage's 8 TP ranks of one DP replica)."""
    from aifabric.catalog import get_model

    model = get_model("llama3-70b")
    flags = {"model": "llama3-70b", "tp": 8, "pp": 8, "dp": 16, "seq_len": 8192,
             "global_batch": 2048, "zero": 1, "sequence_parallel": True}  # fmt: skip
    job = training_job(merge_options(TRAIN_KEYS, {}, flags))
    _, _, (src, dst, nbytes) = plan_fabric({"gpus": 1024}, job, matrix=True)
    pair = {(int(a), int(b)): float(v) for a, b, v in zip(src, dst, nbytes, strict=True)}
    h, vocab = model.hidden_size, model.vocab_size
    layer = model.attention_params_per_layer() + model.mlp_params_per_layer(moe=False)
    first, middle = 10 * layer + vocab * h, 10 * layer
    last = 10 * layer + model.embedding_params() - vocab * h
    # servers 0 and 1: stage 0, DP replicas 0 and 1 (ranks 0-7 and 8-15)
    assert pair[(0, 1)] / pair[(64, 65)] == pytest.approx(first / middle, rel=1e-9)
    assert pair[(112, 113)] / pair[(64, 65)] == pytest.approx(last / middle, rel=1e-9)
