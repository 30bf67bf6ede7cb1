"""Training traffic as Megatron-Core moves it (issue 8 items 1, 2, 4, 6, 7, 8).

Truth, each derived by hand below from Megatron-Core's source:
- SP backward (tensor_parallel/layers.py, LinearWithGradAccumulationAndAsyncCommunication
  .backward): the column-parallel linears (QKV, FC1) all-gather their sequence-sharded
  input again for the weight gradient, so per layer and micro-batch the backward moves
  4 all-gathers + 2 reduce-scatters (forward 2 + 2);
- full recomputation reruns the forward in the backward: its 2 AG + 2 RS (or 2 all-reduces)
  once more; selective recomputation adds no collective;
- gradients reduce in fp32 for bf16 training (megatron/training/arguments.py);
- interleaved 1F1B: pp v - 1 sends per micro-batch and direction (Narayanan et al. 2021);
- VocabParallelEmbedding / output layer / vocab-parallel cross-entropy and the
  tied-embedding gradient all-reduce (distributed/finalize_model_grads.py).
A ring all-gather or reduce-scatter of a full buffer S over n ranks sends (n-1)/n S per
rank, n(n-1)/n S = (n-1) S per group; a ring all-reduce 2(n-1) S per group.
"""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from aifabric.catalog import get_gpu, get_model
from aifabric.errors import ConfigError
from aifabric.spec.jobs import TrainingJob
from aifabric.spec.parallel import ParallelPlan
from aifabric.traffic.rows import sum_rows
from aifabric.traffic.training import (
    CROSS_ENTROPY,
    EMBEDDING,
    FULL_RECOMPUTE,
    HEAD,
    INTERLEAVED_WRAP,
    SP_REGATHER,
    TIED_EMBEDDING,
    training_traffic,
)
from tests.cli_helpers import run_error, run_json

H100 = get_gpu("h100-sxm")
LLAMA8B = get_model("llama3-8b")
S = 4096 * 4096 * 2  # one micro-batch's hidden states, seq 4096, bf16: bytes


def _job(model=LLAMA8B, *, global_batch=16, seq_len=4096, recompute="none", **plan):
    plan.setdefault("tp", 8)
    plan.setdefault("dp", 2)
    return TrainingJob(
        model=model,
        plan=ParallelPlan(**plan),
        gpu=H100,
        seq_len=seq_len,
        global_batch=global_batch,
        recompute=recompute,
    )


def _tp_layer_rows(job, note=""):
    return [r for r in training_traffic(job).rows if r.dimension == "tp" and r.note == note]


def test_sp_backward_is_four_all_gathers_and_two_reduce_scatters():
    """Llama-3-8B tp 8 dp 2, 8 micro-batches: 32 layers x 2 linears x 8 = 512 calls per
    group per collective; 2 groups; each call (8-1) S per group. Forward AG, RS; backward
    RS, AG and the re-gather AG: 5 x 512 x 2 x 7 S."""
    job = _job(sequence_parallel=True)
    plain = _tp_layer_rows(job)
    regather = _tp_layer_rows(job, SP_REGATHER)
    counts = {(r.phase, r.collective): r.calls for r in plain}
    assert counts == {
        ("forward", "all_gather"): 512,
        ("forward", "reduce_scatter"): 512,
        ("backward", "all_gather"): 512,
        ("backward", "reduce_scatter"): 512,
    }
    assert [(r.phase, r.collective, r.calls) for r in regather] == [("backward", "all_gather", 512)]
    assert sum_rows(plain + regather) == pytest.approx(5 * 512 * 2 * 7 * S, rel=1e-12)
    backward = [r for r in plain + regather if r.phase == "backward"]
    assert sum(r.collective == "all_gather" for r in backward) == 2  # rows; 4 AG of calls:
    assert sum(r.calls for r in backward if r.collective == "all_gather") == 2 * 512


@pytest.mark.parametrize("sp", [False, True])
def test_recompute(sp):
    """Full: the forward's TP collectives once more in the backward (2 AG + 2 RS = 2 x 512
    x 2 x 7 S x 2 with SP; 2 all-reduces = 512 x 2 x 14 S without); selective: nothing."""
    none = _job(sequence_parallel=sp)
    selective = _job(sequence_parallel=sp, recompute="selective")
    full = _job(sequence_parallel=sp, recompute="full")
    assert training_traffic(selective).total_bytes == training_traffic(none).total_bytes
    extra = training_traffic(full).total_bytes - training_traffic(none).total_bytes
    assert extra == pytest.approx(512 * 2 * 14 * S, rel=1e-12)
    rows = _tp_layer_rows(full, FULL_RECOMPUTE)
    assert {r.phase for r in rows} == {"backward"}
    assert sum_rows(rows) == pytest.approx(extra, rel=1e-12)
    assert training_traffic(full).to_dict()["recompute"] == "full"


def test_full_recompute_repeats_the_cp_gather():
    """cp 2 (tp 1, dp 2): per layer and micro-batch one forward K/V all-gather; full
    recompute adds one more of the same in the backward."""
    none = _job(tp=1, cp=2, dp=2, global_batch=4)
    full = _job(tp=1, cp=2, dp=2, global_batch=4, recompute="full")
    cp = [r for r in training_traffic(none).rows if r.dimension == "cp"]
    gather = [r for r in cp if r.phase == "forward"]
    extra = [r for r in training_traffic(full).rows if r.note == FULL_RECOMPUTE]
    assert sum_rows(extra) == pytest.approx(sum_rows(gather), rel=1e-12)


def test_recompute_is_validated():
    with pytest.raises(ConfigError, match=r"recompute\(='most'\) must be one of"):
        _job(recompute="most")


def test_gradients_reduce_in_fp32_by_default():
    """ZeRO-1, dp 2, tp 8: reduce-scatter of P/8 fp32 gradients (4 B each) and all-gather
    of P/8 bf16 parameters (2 B): the reduce-scatter moves exactly twice the all-gather."""
    job = _job(zero=1)
    assert job.plan.grad_dtype == "fp32"
    dp = {r.collective: r for r in training_traffic(job).rows if r.dimension == "dp"}
    params = LLAMA8B.num_params / 8
    assert dp["reduce_scatter"].buffer_bytes == pytest.approx(params * 4)
    assert dp["all_gather"].buffer_bytes == pytest.approx(params * 2)
    assert training_traffic(job).to_dict()["grad_reduce_dtype"] == "fp32"
    bf16 = _job(zero=1, grad_dtype="bf16")
    rs = [r for r in training_traffic(bf16).rows if r.collective == "reduce_scatter"]
    assert [r.buffer_bytes for r in rs if r.dimension == "dp"] == [pytest.approx(params * 2)]


@pytest.mark.parametrize("sp", [False, True])
def test_embedding_and_head_rows(sp):
    """tp 8, pp 1, 8 micro-batches, 2 tp groups. Without SP the embedding's forward and
    the head's backward are one all-reduce of S each (14 S per group); with SP the
    embedding is RS forward + AG backward and the head AG forward + RS + AG backward
    (7 S per group each). Cross-entropy: 3 all-reduces of 4096 tokens x 4 B per
    micro-batch."""
    job = _job(sequence_parallel=sp)
    rows = training_traffic(job).rows
    emb = [r for r in rows if r.note == EMBEDDING]
    head = [r for r in rows if r.note == HEAD]
    ce = [r for r in rows if r.note == CROSS_ENTROPY]
    per_call = 7 * S if sp else 14 * S
    assert sum_rows(emb) == pytest.approx((2 if sp else 1) * 8 * 2 * per_call, rel=1e-12)
    assert sum_rows(head) == pytest.approx((3 if sp else 1) * 8 * 2 * per_call, rel=1e-12)
    assert [r.calls for r in ce] == [24]
    assert sum_rows(ce) == pytest.approx(24 * 2 * 14 * 4096 * 4, rel=1e-12)


def test_embedding_rows_sit_on_the_first_and_last_stage():
    """pp 2: the embedding's bytes are sent by stage 0 ranks only, the head's by stage 1;
    the rows keep the groups of one stage (8 tp ranks x dp 2 = 2 groups)."""
    job = _job(pp=2)
    t = training_traffic(job)
    for row, w in zip(t.rows, t.stage_weights, strict=True):
        if row.note == EMBEDDING:
            assert list(w) == [2.0, 0.0]
            assert row.num_groups == 2 and row.calls == 8
        if row.note in (HEAD, CROSS_ENTROPY):
            assert list(w) == [0.0, 2.0]


def test_tied_embedding_gradient_all_reduce():
    """GPT-3 (tied) pp 2, tp 8, dp 1: once per iteration the first and last stage's ranks
    all-reduce the word-embedding gradient, vocab/8 x hidden fp32: a 2-rank ring sends 1 x
    the buffer per rank, 8 pairs."""
    gpt3 = get_model("gpt3-175b")
    job = _job(gpt3, pp=2, dp=1, global_batch=4, seq_len=2048)
    rows = [r for r in training_traffic(job).rows if r.note == TIED_EMBEDDING]
    size = 50257 * 12288 / 8 * 4
    assert sum_rows(rows) == pytest.approx(8 * 2 * size, rel=1e-12)
    assert {r.group_size for r in rows} == {2}
    untied = _job(pp=2, dp=1, global_batch=4)
    assert not [r for r in training_traffic(untied).rows if r.note == TIED_EMBEDDING]
    flat = _job(gpt3, pp=1, dp=1, global_batch=4, seq_len=2048)
    assert not [r for r in training_traffic(flat).rows if r.note == TIED_EMBEDDING]


def test_send_recv_calls_are_messages_per_stage_boundary():
    """pp 4, tp 8 (stages on separate boards), dp 2, 8 micro-batches: each row counts 8
    messages per boundary and 3 boundaries x 2 chains x 8 tp ranks = 48 boundaries."""
    job = _job(pp=4, global_batch=16)
    pp = [r for r in training_traffic(job).rows if r.dimension == "pp"]
    assert {(r.phase, r.calls, r.num_groups) for r in pp} == {
        ("forward", 8, 48),
        ("backward", 8, 48),
    }
    for r in pp:
        assert r.total_bytes == pytest.approx(r.calls * r.num_groups * r.buffer_bytes)


def test_interleaved_1f1b_multiplies_p2p_messages():
    """pp 4, v 2: per micro-batch and direction 3 boundaries x 2 chunks + 1 wrap = 7 = pp v
    - 1 sends instead of 3; the wrap goes from the last rank to the first."""
    plain = _job(tp=1, pp=4, global_batch=16)
    inter = _job(tp=1, pp=4, global_batch=16, virtual_stages=2)
    pp_bytes = [
        sum_rows([r for r in training_traffic(j).rows if r.dimension == "pp"])
        for j in (plain, inter)
    ]
    assert pp_bytes[1] / pp_bytes[0] == pytest.approx(7 / 3, rel=1e-12)
    wrap = [r for r in training_traffic(inter).rows if r.note == INTERLEAVED_WRAP]
    assert {r.calls for r in wrap} == {8}  # v - 1 = 1 message per micro-batch
    assert training_traffic(inter).to_dict()["plan"]["virtual_stages"] == 2


def test_virtual_stages_validation():
    with pytest.raises(ConfigError, match="needs pp > 1"):
        ParallelPlan(virtual_stages=2)
    with pytest.raises(ConfigError, match=r"exceeds num_layers\(=32\)"):
        ParallelPlan(pp=8, virtual_stages=5).validate_for(LLAMA8B)


def test_uneven_stages_are_reported_per_stage():
    """DeepSeek-V3's 61 layers over 16 stages split 4 x 13 + 3 x 3; tp-only traffic of
    llama3-8b with explicit stages (10, 8, 8, 6) is sent in proportion to the layers, so
    the busiest rank (stage 0) sends 10/8 of the mean TP bytes."""
    assert ParallelPlan(pp=16, dp=8).stage_layers(get_model("deepseek-v3")) == (4,) * 13 + (3,) * 3
    job = _job(tp=8, pp=4, dp=1, global_batch=8, pipeline_layers=(10, 8, 8, 6))
    t = training_traffic(job)
    layer_rows = [
        (r, w) for r, w in zip(t.rows, t.stage_weights, strict=True)
        if r.dimension == "tp" and not r.note
    ]  # fmt: skip
    for _, w in layer_rows:
        assert list(w) == pytest.approx([10 / 8, 1, 1, 6 / 8])
    stages = t.to_dict()["per_stage"]
    assert stages["layers"] == [10, 8, 8, 6]
    assert stages["busiest_stage"] == 0
    with pytest.raises(ConfigError, match="pipeline_layers sum to 31"):
        _job(tp=8, pp=4, dp=1, global_batch=8, pipeline_layers=(10, 8, 7, 6))


@settings(max_examples=25, deadline=None)
@given(
    pp=st.sampled_from([2, 4]),
    tp=st.sampled_from([1, 2, 8]),
    zero=st.sampled_from([0, 1, 3]),
    v=st.sampled_from([1, 2]),
    sp=st.booleans(),
)
def test_per_stage_bytes_average_to_the_per_gpu_figure(pp, tp, zero, v, sp):
    """Conservation: the stages' bytes per rank average to the job's bytes per GPU."""
    if sp and tp == 1:
        sp = False
    job = _job(tp=tp, pp=pp, dp=2, zero=zero, virtual_stages=v, sequence_parallel=sp)
    d = training_traffic(job).to_dict()
    mean = sum(d["per_stage"]["bytes_per_gpu"]) / pp
    assert mean == pytest.approx(d["per_iteration"]["bytes_per_gpu"], rel=1e-9)


def test_seed_accounting_compute_time_uses_real_tokens():
    """Seed accounting divides its epoch bytes by N iterations; the step's compute must
    still be global_batch x seq_len tokens, as in the algorithmic accounting."""
    kw = dict(model=LLAMA8B, gpu=H100, seq_len=4096, global_batch=64, samples=6400)
    seed = TrainingJob(plan=ParallelPlan(dp=4), accounting="seed", dataset_tokens=1e6, **kw)
    real = TrainingJob(plan=ParallelPlan(dp=4), dataset_tokens=1e6, **kw)
    a, b = training_traffic(seed), training_traffic(real)
    assert a.compute_time == b.compute_time
    assert a.tokens_per_iteration == 64 * 4096
    assert a.to_dict()["notes"]


def test_cli_flags(capsys):
    out = run_json(
        capsys, "traffic", "train", "--model", "llama3-8b", "--tp", "8", "--pp", "4",
        "--dp", "1", "--global-batch", "8", "--sp", "--recompute", "full",
        "--virtual-stages", "2", "--pipeline-layers", "10,8,8,6", "--json",
    )  # fmt: skip
    assert out["recompute"] == "full"
    assert out["per_stage"]["layers"] == [10, 8, 8, 6]
    notes = {r["note"] for r in out["per_iteration"]["rows"]}
    assert {SP_REGATHER, FULL_RECOMPUTE, INTERLEAVED_WRAP} <= notes
    err = run_error(capsys, "traffic", "train", "--model", "llama3-8b", "--recompute", "x")
    assert "recompute" in err
    err = run_error(
        capsys, "traffic", "train", "--model", "llama3-8b", "--pp", "2",
        "--pipeline-layers", "1,2,3",
    )  # fmt: skip
    assert "pipeline_layers" in err


def test_moe_layers_have_one_tp_block_plus_shared_experts():
    """Megatron-Core MoE layers: attention is a TP block; routed experts are moved by the
    token dispatcher, not by the MLP's TP collectives; a shared expert is one more block.
    Mixtral (32 MoE layers, no shared expert), tp 2, 4 micro-batches: 32 x 1 x 4 = 128 calls
    per collective; DeepSeek-V3 (3 dense + 58 MoE layers with 1 shared expert): 3 x 2 +
    58 x 2 = 122 blocks."""
    from aifabric.traffic.training import tp_blocks

    mixtral = get_model("mixtral-8x7b")
    job = TrainingJob(
        model=mixtral, plan=ParallelPlan(tp=2, dp=1), gpu=H100, seq_len=4096, global_batch=4
    )
    tp = [r for r in training_traffic(job).rows if r.dimension == "tp" and not r.note]
    assert {r.calls for r in tp} == {128}
    assert tp_blocks(get_model("deepseek-v3")) == 122
    assert tp_blocks(LLAMA8B) == 64


def test_grad_dtype_is_a_reduction_format():
    """Gradients reduce in fp32, bf16 or fp16; an integer or fp8 format is refused, and
    the name is case-insensitive at the scenario edge."""
    with pytest.raises(ConfigError, match=r"grad_dtype\(='int8'\) must be one of"):
        ParallelPlan(grad_dtype="int8")
    from aifabric.spec.scenario import TRAIN_KEYS, merge_options

    assert merge_options(TRAIN_KEYS, {"grad_dtype": "FP32"}, {})["grad_dtype"] == "fp32"


def test_virtual_stages_must_divide_each_stage():
    """Megatron-LM asserts layers per pipeline rank divide by the virtual stage count:
    llama3-8b over pp 4 is 8 layers a stage, so v = 3 is refused and v = 2 or 4 accepted;
    explicit pipeline_layers (Megatron's layout) only need >= v layers a stage."""
    with pytest.raises(ConfigError, match=r"virtual_stages\(=3\) must divide"):
        ParallelPlan(pp=4, virtual_stages=3).validate_for(LLAMA8B)
    ParallelPlan(pp=4, virtual_stages=4).validate_for(LLAMA8B)
    ParallelPlan(pp=4, virtual_stages=3, pipeline_layers=(9, 9, 8, 6)).validate_for(LLAMA8B)


def test_pipeline_layers_per_virtual_stage():
    """Megatron-Core's --pipeline-model-parallel-layout lists virtual stages g = c pp + s,
    a chunk may hold only the embedding or the loss. Llama 3 405B (126 layers) as its
    paper lays it out, pp 16 v 8: (0, 1 x 126, 0) -> rank 0 holds chunks 0, 16, ..., 112,
    i.e. 0 + 7 x 1 = 7 layers, ranks 1-14 hold 8, rank 15 holds 7. A per-stage list with
    v = 2 splits each stage's layers over its chunks, the earlier chunk taking one more."""
    llama405 = get_model("llama3-405b")
    plan = ParallelPlan(pp=16, virtual_stages=8, pipeline_layers=(0, *[1] * 126, 0))
    plan.validate_for(llama405)
    assert plan.stage_layers(llama405) == (7, *[8] * 14, 7)
    assert plan.virtual_stage_layers(llama405)[:17] == (0, *[1] * 16)
    two = ParallelPlan(pp=4, virtual_stages=2, pipeline_layers=(9, 9, 8, 6))
    assert two.virtual_stage_layers(LLAMA8B) == (5, 5, 4, 3, 4, 4, 4, 3)
    with pytest.raises(ConfigError, match="one per virtual stage"):
        ParallelPlan(pp=4, virtual_stages=2, pipeline_layers=(9, 9, 8))
    with pytest.raises(ConfigError, match="without layers"):
        ParallelPlan(pp=2, virtual_stages=2, pipeline_layers=(0, 16, 0, 16))


def test_json_calls_are_integers_when_whole():
    rows = training_traffic(_job(pp=4)).to_dict()["per_iteration"]["rows"]
    assert all(isinstance(r["calls"], int) for r in rows)


def test_absurd_sequence_length_is_refused():
    with pytest.raises(ConfigError, match=r"seq_len\(=100000000000000000000\) must be in"):
        _job(seq_len=10**20)
