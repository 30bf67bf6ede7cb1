"""Direction of the node x node traffic matrix: who sends to whom.

Truth:
- 1F1B pipeline schedule (Narayanan et al. 2021, "Efficient Large-Scale Language Model
  Training on GPU Clusters Using Megatron-LM", sec. 2.2): each micro-batch's activations
  go forward from stage s to s + 1 and its activation gradients come back from s + 1 to
  s, one message each way per micro-batch and stage boundary;
- conservation: in a symmetric job (every rank of a dimension does the same collective,
  as many forward as backward pipeline sends) every server sends as many bytes as it
  receives: per node, row sum (out) = column sum (in). A ring is a closed cycle (each
  member sends to the next and receives from the previous), an all-to-all sends and
  receives the same share to and from every peer;
- Megatron rank order (tp fastest, then dp, then pp): on 8-GPU servers tp8 x pp8 x dp16
  puts stage s on servers 16 s .. 16 s + 15.
"""

from __future__ import annotations

import csv
from typing import Any

import numpy as np
import pytest

from aifabric.fabric.placement import traffic_by_tier
from aifabric.fabric.plan import plan_fabric
from aifabric.spec.scenario import TRAIN_KEYS, merge_options, training_job
from aifabric.traffic.collectives import SCALE_OUT, SCALE_UP
from aifabric.traffic.rows import TrafficRow
from aifabric.traffic.training import training_traffic

from .cli_helpers import run_json

LLAMA70B_PP8 = {"model": "llama3-70b", "tp": 8, "pp": 8, "dp": 16, "sequence_parallel": True}


def job(**kw: Any) -> Any:
    flags = {"seq_len": 4096, **kw}
    flags.setdefault("global_batch", flags.get("dp", 1) * flags.get("micro_batch", 1) * 8)
    return training_job(merge_options(TRAIN_KEYS, {}, flags))


def matrix(src: np.ndarray, dst: np.ndarray, nbytes: np.ndarray, nodes: int) -> np.ndarray:
    dense = np.zeros((nodes, nodes))
    np.add.at(dense, (src, dst), nbytes)
    return dense


def pp_scale_out(rows: Any, phase: str) -> float:
    return sum(
        r.total_bytes
        for r in rows
        if r.dimension == "pp" and r.phase == phase and r.scope != SCALE_UP
    )


def test_pp2_forward_one_way_backward_the_other():
    """llama3-70b tp8 x pp2 on 2 servers (16 GPUs), SP, seq 4096, micro-batch 1, global
    batch 8 -> 8 micro-batches. One activation message per micro-batch and TP rank:
    4,096 tokens x 8,192 hidden (Llama 3 70B) x 2 bytes (bf16) / tp 8 (sequence-sharded)
    = 8 MiB; 8 TP ranks x 8 micro-batches x 8 MiB = 512 MiB = 536,870,912 bytes from
    server 0 (stage 0) to server 1, and the same size of gradients from server 1 to 0.
    These are the per-hop bytes of the pp rows (one hop), forward and backward."""
    j = job(model="llama3-70b", tp=8, pp=2, dp=1, sequence_parallel=True,
            global_batch=8, micro_batch=1)  # fmt: skip
    rows = training_traffic(j).rows
    _, topo, (src, dst, nbytes) = plan_fabric({"gpus": 16}, j, matrix=True)
    got = {(a, b): v for a, b, v in zip(src.tolist(), dst.tolist(), nbytes.tolist(), strict=True)}
    expected = 8 * 8 * 4096 * 8192 * 2 // 8
    assert expected == 536_870_912
    assert got == {(0, 1): pytest.approx(expected), (1, 0): pytest.approx(expected)}
    assert got[(0, 1)] == pytest.approx(pp_scale_out(rows, "forward"), rel=1e-12)
    assert got[(1, 0)] == pytest.approx(pp_scale_out(rows, "backward"), rel=1e-12)
    assert topo.num_nodes == 2


def test_direction_follows_phase_with_unequal_bytes():
    """Synthetic pp rows whose forward and backward totals differ (3 GB vs 1 GB), so the
    direction cannot hide behind equal sizes. tp8 x pp4 on 4 servers: 8 chains of 3 hops,
    each hop a different pair of servers; a row's bytes split equally over its 24 hops, so
    server s -> s + 1 carries 3 GB / 3 = 1 GB forward and s + 1 -> s 1 GB / 3 backward."""
    j = job(model="llama3-70b", tp=8, pp=4, dp=1)
    topo = plan_fabric({"gpus": 32}, j)[1]

    def row(phase: str, total: float) -> TrafficRow:
        return TrafficRow(dimension="pp", phase=phase, collective="send_recv",
                          algorithm="direct", group_size=2, num_groups=8, calls=3.0,
                          buffer_bytes=total / 24, total_bytes=total, bytes_per_gpu=total / 32,
                          scope=SCALE_OUT)  # fmt: skip

    placed = traffic_by_tier([row("forward", 3e9), row("backward", 1e9)], j.plan, topo,
                             matrix=True)  # fmt: skip
    dense = matrix(*placed["node_matrix"], 4)
    expected = np.zeros((4, 4))
    for s in range(3):
        expected[s, s + 1] = 1e9
        expected[s + 1, s] = 1e9 / 3
    assert np.allclose(dense, expected, rtol=1e-12, atol=0)


def test_llama70b_pp8_conservation_and_stage_boundaries():
    """llama3-70b tp8 x pp8 x dp16 with SP on the default 1,024-GPU rail-optimized fabric:
    every server's out-bytes equal its in-bytes (before the fix the 16 first-stage servers
    sent the backward bytes they never received, and the 16 last-stage ones the reverse).
    Between stage s (servers 16 s ..) and s + 1 the only traffic is the pipeline's: one
    seventh (7 boundaries) of the forward scale-out pp bytes go s -> s + 1 and one seventh
    of the backward bytes s + 1 -> s."""
    j = job(**LLAMA70B_PP8)
    rows = training_traffic(j).rows
    _, topo, triples = plan_fabric({"gpus": 1024}, j, matrix=True)
    dense = matrix(*triples, topo.num_nodes)
    out, into = dense.sum(axis=1), dense.sum(axis=0)
    assert out.min() > 0
    assert np.allclose(out, into, rtol=1e-12, atol=0)
    forward, backward = pp_scale_out(rows, "forward"), pp_scale_out(rows, "backward")
    assert forward > 0 and backward > 0
    stage = [slice(16 * s, 16 * s + 16) for s in range(8)]
    for s in range(7):
        assert dense[stage[s], stage[s + 1]].sum() == pytest.approx(forward / 7, rel=1e-12)
        assert dense[stage[s + 1], stage[s]].sum() == pytest.approx(backward / 7, rel=1e-12)
    for s in range(8):
        for t in range(8):
            if abs(s - t) > 1:
                assert dense[stage[s], stage[t]].sum() == 0


CONSERVATION = {
    "pp-random": ({"gpus": 1024, "placement": "random"}, LLAMA70B_PP8),
    "pp-seed": ({"gpus": 256}, {"model": "llama3-70b", "tp": 8, "pp": 4, "dp": 8,
                                "accounting": "seed"}),
    "moe-all-to-all": ({"gpus": 512}, {"model": "mixtral-8x7b", "tp": 2, "ep": 8, "dp": 32}),
    "cp-ring": ({"gpus": 128}, {"model": "llama3-8b", "tp": 8, "cp": 2, "dp": 8}),
    "flat-ring": ({"gpus": 256}, {"model": "llama3-8b", "tp": 1, "dp": 256,
                                  "algorithm": "ring"}),
    "tree": ({"gpus": 1024}, {"model": "llama3-8b", "tp": 4, "dp": 256, "algorithm": "tree"}),
    "direct": ({"gpus": 128}, {"model": "llama3-8b", "tp": 8, "dp": 16, "algorithm": "direct"}),
    "tor-hierarchical": ({"gpus": 512, "design": "clos"}, {"model": "llama3-8b", "tp": 2,
                                                           "pp": 2, "dp": 128}),
}  # fmt: skip


@pytest.mark.parametrize("name", sorted(CONSERVATION))
def test_every_server_sends_what_it_receives(name):
    """Rings (flat, hierarchical rail rings, trees accounted as rings), all-to-all, direct
    exchanges and pipelines with as many forward as backward sends: out = in per server,
    for contiguous and random placement and for the seed accounting."""
    fabric, plan = CONSERVATION[name]
    _, topo, triples = plan_fabric(fabric, job(**plan), matrix=True)
    dense = matrix(*triples, topo.num_nodes)
    out, into = dense.sum(axis=1), dense.sum(axis=0)
    assert out.sum() > 0
    assert np.allclose(out, into, rtol=1e-12, atol=0)


def _csv_matrix(path: Any, nodes: int) -> tuple[np.ndarray, int]:
    dense = np.zeros((nodes, nodes))
    with open(path, encoding="utf-8") as f:
        reader = csv.reader(f)
        assert next(reader) == ["src_node", "dst_node", "bytes"]
        entries = 0
        for a, b, v in reader:
            dense[int(a), int(b)] += float(v)
            entries += 1
    return dense, entries


def test_cli_matrix_conserved_and_sequence_parallel_flag(capsys, tmp_path):
    """`plan --gpus 1024 --model llama3-70b --tp 8 --pp 8 --dp 16 --sequence-parallel
    --matrix FILE`: per server out = in up to the CSV's rounding to whole bytes (at most
    half a byte per entry). --sequence-parallel shards each pipeline message over the tp
    ranks (Megatron-Core pipeline_parallel/schedules.py, get_tensor_shapes: seq_length //
    tensor-parallel size when sequence_parallel), so the pp bytes are 1/8 of those without."""
    args = ("plan", "--gpus", "1024", "--model", "llama3-70b", "--tp", "8", "--pp", "8",
            "--dp", "16")  # fmt: skip
    path = tmp_path / "m.csv"
    data = run_json(capsys, *args, "--sequence-parallel", "--matrix", str(path), "--json")
    assert data["job"]["plan"]["sequence_parallel"] is True
    dense, entries = _csv_matrix(path, data["nodes"])
    assert np.abs(dense.sum(axis=1) - dense.sum(axis=0)).max() <= entries / 2
    plain = run_json(capsys, *args, "--json")
    assert plain["job"]["plan"]["sequence_parallel"] is False

    def pp_bytes(result: dict[str, Any]) -> float:
        return sum(r["bytes"] for r in result["traffic_by_tier"] if r["dimension"] == "pp")

    assert pp_bytes(data) == pytest.approx(pp_bytes(plain) / 8, rel=1e-12)


def test_interleaved_wrap_joins_last_server_to_first():
    """llama3-70b tp8 x pp4, 2 virtual stages, SP, 8 micro-batches, on 4 servers (stage s =
    server s). Message: 4,096 x 8,192 x 2 bytes / 8 = 8 MiB per TP rank. Each boundary
    carries v = 2 messages per micro-batch and direction: 8 chains x 16 x 8 MiB = 1 GiB
    s -> s + 1 and 1 GiB back. The wrap (chunk 0 of the last rank to chunk 1 of the
    first) carries v - 1 = 1 per micro-batch: 8 x 8 x 8 MiB = 512 MiB from server 3 to
    server 0 forward and 512 MiB from 0 to 3 backward (Narayanan et al. 2021 sec. 2.2.2,
    interleaved schedule)."""
    j = job(model="llama3-70b", tp=8, pp=4, dp=1, sequence_parallel=True, virtual_stages=2)
    _, topo, triples = plan_fabric({"gpus": 32}, j, matrix=True)
    dense = matrix(*triples, topo.num_nodes)
    gib = 2**30
    expected = np.zeros((4, 4))
    for s in range(3):
        expected[s, s + 1] = expected[s + 1, s] = gib
    expected[3, 0] = expected[0, 3] = gib / 2
    assert np.allclose(dense, expected, rtol=1e-12, atol=0)


def test_tied_embedding_all_reduce_joins_first_and_last_stage():
    """GPT-3 175B ties its input and output embeddings (Brown et al. 2020): with pp = 4 the
    word-embedding gradient is all-reduced between the first and the last stage only
    (Megatron-LM _allreduce_word_embedding_grads), so servers 0 and 3 exchange it directly
    (half each way, a 2-member ring) and servers 1 and 2 see only pipeline sends."""
    j = job(model="gpt3-175b", tp=8, pp=4, dp=1)
    rows = training_traffic(j).rows
    _, topo, triples = plan_fabric({"gpus": 32}, j, matrix=True)
    dense = matrix(*triples, topo.num_nodes)
    tied = [r for r in rows if r.dimension == "pp" and r.collective == "all_reduce"]
    assert tied and all(r.scope != SCALE_UP for r in tied)
    tied_bytes = sum(r.total_bytes for r in tied)
    assert dense[0, 3] == pytest.approx(tied_bytes / 2, rel=1e-12)
    assert dense[3, 0] == pytest.approx(tied_bytes / 2, rel=1e-12)
    forward, backward = pp_scale_out(rows, "forward"), pp_scale_out(rows, "backward")
    backward -= tied_bytes
    for s in range(3):
        assert dense[s, s + 1] == pytest.approx(forward / 3, rel=1e-12)
        assert dense[s + 1, s] == pytest.approx(backward / 3, rel=1e-12)
    assert dense[0, 2] == dense[1, 3] == 0
