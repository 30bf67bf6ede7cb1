"""In-network reduction: NVLS (NVLink SHARP) and SHARP all-reduce, used only when asked.

Truth, by hand:
- NVLS (NCCL's NVLS algorithm): the NVLink switch reads each GPU's buffer once (S sent) and
  each GPU multicasts its reduced shard once (S/m): (m+1)/m S per rank, against the ring's
  2(m-1)/m S. Across k domains SHARP switches reduce the shards: each domain sends its
  partial sum up once, S per domain = S/m per rank;
- SHARP (CollNet-Direct): direct reduce-scatter inside ((m-1)/m S), the shard up once (S/m),
  all-gather inside ((m-1)/m S); one rank per domain: S per rank on the scale-out, against
  the ring's 2(n-1)/n S;
- NCCL's tuning model (src/graph/tuning.cc) on one node of 8 H100s (450 GB/s NVLink per
  direction, 16 channels): NVLS latency 25 us, bandwidth 450 x 0.85 x 2 x 15/16 x 8/14 =
  409.82 GB/s; ring LL 6.6 + 14 x 0.6 = 15.0 us at min(141, 450/2) x 8/14 = 80.57 GB/s.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from aifabric.cli import main
from aifabric.errors import ConfigError
from aifabric.spec.gpu import GpuSpec
from aifabric.spec.jobs import TrainingJob
from aifabric.spec.model import ModelSpec
from aifabric.spec.parallel import ParallelPlan
from aifabric.spec.scenario import TRAIN_KEYS, merge_options, training_job
from aifabric.traffic import nccl_tuning
from aifabric.traffic.collectives import SCALE_OUT, SCALE_UP, collective
from aifabric.traffic.rows import choose_algorithm, collective_rows, sum_rows
from aifabric.traffic.training import training_traffic

GB = 1e9


# ----- byte accounting ----------------------------------------------------------------------


def test_nvls_inside_one_board_by_hand() -> None:
    """m = 8, S = 1 GB: 9/8 S = 1.125 GB per rank on NVLink (ring: 1.75 GB), none out."""
    cost = collective("all_reduce", "nvls", num_ranks=8, size=GB, ranks_per_domain=8)
    assert cost.bytes_per_rank_in(SCALE_UP) == pytest.approx(1.125 * GB, rel=1e-12)
    assert cost.bytes_per_rank_in(SCALE_OUT) == 0
    ring = collective("all_reduce", "ring", num_ranks=8, size=GB)
    assert ring.bytes_per_rank == pytest.approx(1.75 * GB, rel=1e-12)


def test_nvls_with_sharp_across_16_boards_by_hand() -> None:
    """n = 128 in 16 boards of 8, S = 1 GB: 1.125 GB per rank on NVLink, S/8 = 125 MB per
    rank (1 GB per board) on the scale-out; the ring would send 2 x 127/128 GB per board."""
    cost = collective("all_reduce", "nvls", num_ranks=128, size=GB, ranks_per_domain=8)
    assert cost.bytes_per_rank_in(SCALE_UP) == pytest.approx(1.125 * GB, rel=1e-12)
    assert cost.bytes_per_rank_in(SCALE_OUT) == pytest.approx(GB / 8, rel=1e-12)
    assert cost.bytes_per_rank_in(SCALE_OUT) * 8 == pytest.approx(GB, rel=1e-12)


def test_sharp_collnet_direct_by_hand() -> None:
    """n = 128 in 16 boards of 8: 2 x 7/8 S inside by direct sends, S/8 per rank across."""
    cost = collective("all_reduce", "sharp", num_ranks=128, size=GB, ranks_per_domain=8)
    assert cost.bytes_per_rank_in(SCALE_UP) == pytest.approx(1.75 * GB, rel=1e-12)
    assert cost.bytes_per_rank_in(SCALE_OUT) == pytest.approx(GB / 8, rel=1e-12)


def test_sharp_one_rank_per_board_sends_its_buffer_once() -> None:
    """16 ranks on 16 boards: S per rank up the switch tree; the ring sends 2 x 15/16 S."""
    rows = collective_rows(
        dimension="dp", phase="backward", operation="all_reduce", group_size=16,
        num_groups=1, calls=1, size=GB, world_size=16, ranks_per_domain=1,
        in_network_reduction=True,
    )  # fmt: skip
    assert {(r.algorithm, r.scope) for r in rows} == {("sharp", SCALE_OUT)}
    assert sum_rows(rows) == pytest.approx(16 * GB, rel=1e-12)


def test_in_network_algorithms_beat_the_ring_bound_by_their_formula() -> None:
    """The ring bound 2(n-1)/n S per rank binds reductions done by GPUs only: NVLS on 8
    ranks sends 9/8 S, SHARP with m = 1 sends S."""
    for n in (8, 72):
        nvls = collective("all_reduce", "nvls", num_ranks=n, size=GB, ranks_per_domain=n)
        assert nvls.bytes_per_rank == pytest.approx((n + 1) / n * GB, rel=1e-12)
        assert nvls.bytes_per_rank < 2 * (n - 1) / n * GB
        sharp = collective("all_reduce", "sharp", num_ranks=n, size=GB)
        assert sharp.bytes_per_rank == pytest.approx(GB, rel=1e-12)


# ----- the choice ---------------------------------------------------------------------------


def test_nvls_on_one_node_by_the_tuning_model() -> None:
    """NVLS 25 + S/409.82 vs ring LL 15.0 + S/80.57 (us, GB/s): equal at
    S = 10 / (1/80571 - 1/409821) = 1.0028 MB. A decode token's 16 KiB stays a ring (LL);
    100 MB goes to the switch."""
    nvls_bw = 450 * 0.85 * 2 * 15 / 16 * 8 / 14
    ring_bw = min(141.0, 450 / 2) * 8 / 14
    crossover = 10 / (1 / (ring_bw * 1e3) - 1 / (nvls_bw * 1e3))
    assert crossover == pytest.approx(1.0028e6, rel=1e-3)
    t = nccl_tuning.predicted_time("nvls", "Simple", num_ranks=8, num_nodes=1, size=1e8)
    assert t == pytest.approx((25 + 1e8 / (nvls_bw * 1e3)) * 1e-6, rel=1e-9)
    kw = {"num_ranks": 8, "num_domains": 1, "in_network_reduction": True}
    for size, expected in ((16384, "ring"), (0.95 * crossover, "ring"),
                           (1.05 * crossover, "nvls"), (1e8, "nvls")):  # fmt: skip
        assert choose_algorithm("all_reduce", "auto", size=size, **kw) == expected, size


def test_across_domains_in_network_is_taken_when_asked() -> None:
    kw = {"num_ranks": 128, "size": GB, "in_network_reduction": True}
    assert choose_algorithm("all_reduce", "auto", num_domains=16, **kw) == "nvls"
    assert choose_algorithm("all_reduce", "auto", num_domains=128, **kw) == "sharp"


@pytest.mark.parametrize("nodes", [1, 2, 16, 128])
def test_never_without_the_flag(nodes: int) -> None:
    for size in np.logspace(1, 11, 60):
        algo = choose_algorithm("all_reduce", "auto", num_ranks=8 * nodes, num_domains=nodes,
                                size=float(size))  # fmt: skip
        assert algo in ("ring", "tree")


# ----- jobs, scenario and command line ----------------------------------------------------


def _dp_job(model: ModelSpec, gpu: GpuSpec, **kw: object) -> TrainingJob:
    """llama3-8b, tp = 8 (one board), dp = 16 (one rank per board), plain DP, bf16 grads."""
    plan = ParallelPlan(tp=8, dp=16, zero=0, grad_dtype="bf16")
    return TrainingJob(model=model, plan=plan, gpu=gpu, global_batch=16, **kw)  # type: ignore[arg-type]


def test_training_dp_all_reduce_with_sharp(llama8b: ModelSpec, h100: GpuSpec) -> None:
    """DP all-reduce of each rank's gradient shard S (one rank per board, 8 TP groups): the
    ring sends 2 x 15/16 S per rank, SHARP S: scale-out DP bytes x 16/30."""

    def dp_out(job: TrainingJob) -> tuple[float, set[str]]:
        rows = [r for r in training_traffic(job).rows if r.dimension == "dp"]
        return sum_rows(rows, SCALE_OUT), {r.algorithm for r in rows}

    plain, plain_algos = dp_out(_dp_job(llama8b, h100))
    inr, inr_algos = dp_out(_dp_job(llama8b, h100, in_network_reduction=True))
    assert plain_algos <= {"ring", "tree"} and inr_algos == {"sharp"}
    assert inr / plain == pytest.approx(16 / 30, rel=1e-12)


def test_training_tp_all_reduce_with_nvls(llama8b: ModelSpec, h100: GpuSpec) -> None:
    """TP all-reduces (no SP) of 4096 tokens x 4096 x 2 B = 33.5 MB inside a board: NVLS
    (above the ~1 MB crossover) sends 9/8 S per rank instead of 7/4 S: x 9/14. The
    cross-entropy's 16 KiB all-reduce (4096 tokens x 1 fp32) stays a ring (LL)."""

    def tp_bytes(job: TrainingJob, large: bool) -> tuple[float, set[str]]:
        rows = [r for r in training_traffic(job).rows
                if r.dimension == "tp" and (r.buffer_bytes > 1e6) == large]  # fmt: skip
        return sum_rows(rows, SCALE_UP), {r.algorithm for r in rows}

    plain, plain_algos = tp_bytes(_dp_job(llama8b, h100), True)
    inr, inr_algos = tp_bytes(_dp_job(llama8b, h100, in_network_reduction=True), True)
    assert plain_algos == {"ring"} and inr_algos == {"nvls"}
    assert inr / plain == pytest.approx((9 / 8) / (7 / 4), rel=1e-12)
    small = tp_bytes(_dp_job(llama8b, h100, in_network_reduction=True), False)[1]
    assert small <= {"ring"}


def test_scenario_key_and_its_type() -> None:
    opts = merge_options(TRAIN_KEYS, {"model": "llama3-8b", "in_network_reduction": True}, {})
    assert training_job(opts).in_network_reduction is True
    assert (
        training_job(merge_options(TRAIN_KEYS, {"model": "llama3-8b"}, {})).in_network_reduction
        is False
    )
    with pytest.raises(ConfigError, match=r"in_network_reduction: expected true or false"):
        merge_options(TRAIN_KEYS, {"in_network_reduction": 3}, {})


def _json(capsys: pytest.CaptureFixture[str], *argv: str) -> dict:
    assert main(list(argv)) == 0
    return json.loads(capsys.readouterr().out)


def test_traffic_train_flag(capsys: pytest.CaptureFixture[str]) -> None:
    base = ["traffic", "train", "--model", "llama3-8b", "--tp", "8", "--dp", "16", "--zero", "0",
            "--global-batch", "16", "--grad-dtype", "bf16", "--json"]  # fmt: skip
    on = _json(capsys, *base, "--in-network-reduction")
    off = _json(capsys, *base)
    algos = {r["algorithm"] for r in on["per_iteration"]["rows"]}
    assert {"nvls", "sharp"} <= algos
    assert on["per_iteration"]["bytes_by_dimension"]["dp"] == pytest.approx(
        off["per_iteration"]["bytes_by_dimension"]["dp"] * 16 / 30, rel=1e-12
    )


def test_traffic_infer_flag(capsys: pytest.CaptureFixture[str]) -> None:
    data = _json(capsys, "traffic", "infer", "--model", "llama3-70b", "--tp", "8",
                 "--in-network-reduction", "--json")  # fmt: skip
    assert data["in_network_reduction"] is True
    assert data["algorithm_rule"] == "nccl_tuning"
    assert data["tp_algorithm"] == "ring"  # 16 KiB per token: below NVLS's ~1 MB crossover


def test_plan_flag_moves_fewer_bytes_out(capsys: pytest.CaptureFixture[str]) -> None:
    """128 H100s, tp 8 x dp 16, plain DP: only the DP all-reduce leaves the boards, so the
    fabric's leaf + spine + core bytes drop to 16/30 with SHARP."""
    base = ["plan", "--gpus", "128", "--model", "llama3-8b", "--tp", "8", "--dp", "16",
            "--zero", "0", "--global-batch", "16", "--json"]  # fmt: skip

    def out(data: dict) -> float:
        by = data["bytes_by_tier"]
        return by["leaf"] + by["spine"] + by["core"]

    on, off = _json(capsys, *base, "--in-network-reduction"), _json(capsys, *base)
    assert out(on) == pytest.approx(out(off) * 16 / 30, rel=1e-9)
