"""``--algorithm auto`` chooses what NCCL would (traffic.nccl_tuning, traffic.rows).

Truth:
- NCCL's tuning model, NVIDIA/nccl src/graph/tuning.cc (ncclTopoTuneModel,
  ncclTopoGetAlgoTime; Hopper defaults, x86 Intel host), worked out by hand below:
  time = latency + bytes / (1000 x bandwidth) in us with bandwidth in GB/s;
- ring byte counts by hand: a ring over n ranks that fills k domains of m crosses a domain
  boundary on k of its n edges, each carrying (n-1)/n S for an all-gather or reduce-scatter;
  the hierarchical algorithm sends (k-1)/k x S/m per rank across: (n-1)/(n-m) times less;
- NCCL's tree over k nodes: a chain inside each node, a double binary tree across, every
  edge carrying S/2 up and S/2 down in each of the two trees.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from aifabric.spec.scenario import TRAIN_KEYS, load_scenario, merge_options, training_job
from aifabric.traffic import nccl_tuning
from aifabric.traffic.collectives import SCALE_OUT, SCALE_UP, collective
from aifabric.traffic.rows import algorithm_rule, choose_algorithm, collective_rows, sum_rows
from aifabric.traffic.training import training_traffic

EXAMPLES = Path(__file__).resolve().parent.parent / "examples" / "train"
GB = 1e9


def _rows(operation: str, algorithm: str, n: int = 16, m: int = 8, size: float = GB) -> list:
    return collective_rows(
        dimension="dp", phase="backward", operation=operation, group_size=n, num_groups=1,
        calls=1, size=size, world_size=n, ranks_per_domain=m, algorithm=algorithm,
    )  # fmt: skip


# ----- all-gather / reduce-scatter: ring, as NCCL ------------------------------------------


@pytest.mark.parametrize("operation", ["all_gather", "reduce_scatter"])
def test_flat_ring_sends_1_875_times_hierarchical_across(operation: str) -> None:
    """dp = 16 on two 8-GPU boards, S = 1 GB. Ring: 2 of 16 edges cross, each carries
    15/16 S: 1.875 S out. Hierarchical: 16 ranks x (2-1)/2 x S/8 = S out.
    (n-1)/(n-m) = 15/8 = 1.875. auto = ring."""
    auto = sum_rows(_rows(operation, "auto"), SCALE_OUT)
    ring = sum_rows(_rows(operation, "ring"), SCALE_OUT)
    hier = sum_rows(_rows(operation, "hierarchical"), SCALE_OUT)
    assert {r.algorithm for r in _rows(operation, "auto")} == {"ring"}
    assert ring == pytest.approx(2 * 15 / 16 * GB, rel=1e-12)
    assert hier == pytest.approx(GB, rel=1e-12)
    assert auto == ring
    assert ring / hier == pytest.approx((16 - 1) / (16 - 8), rel=1e-12)


@pytest.mark.parametrize("nodes", [1, 2, 16, 128])
@pytest.mark.parametrize("size", [1e3, 1e6, 1e9, 1e11])
def test_all_gather_and_reduce_scatter_are_rings_at_every_scale(nodes: int, size: float) -> None:
    """tuning.cc: AllGather / ReduceScatter have ring, PAT (one GPU per node), NVLS and
    CollNet only; without in-network reduction auto is the ring, even with the flag."""
    for op in ("all_gather", "reduce_scatter"):
        for in_network in (False, True):
            algo = choose_algorithm(op, "auto", num_ranks=8 * nodes, num_domains=nodes,
                                    size=size, in_network_reduction=in_network)  # fmt: skip
            assert algo == "ring"


def test_point_to_point_and_all_to_all_are_direct() -> None:
    for op in ("all_to_all", "send_recv"):
        assert choose_algorithm(op, "auto", num_ranks=2, num_domains=2, size=GB) == "direct"


def _example_job(name: str, **flags: object):
    scenario = load_scenario(EXAMPLES / f"{name}.yaml")
    return training_job(merge_options(TRAIN_KEYS, scenario, flags))


def _gather_scatter_out(job) -> float:
    rows = [r for r in training_traffic(job).rows
            if r.collective in ("all_gather", "reduce_scatter")]  # fmt: skip
    return sum_rows(rows, SCALE_OUT)


def test_llama_example_auto_and_ring_agree_on_scale_out() -> None:
    """The README example: auto and ring put the same all-gather / reduce-scatter bytes on
    the scale-out network (DP members sit one per board, so every algorithm agrees)."""
    name = "llama3-70b-tp8-pp8-dp16"
    auto = _gather_scatter_out(_example_job(name))
    assert auto > 0
    assert auto == pytest.approx(_gather_scatter_out(_example_job(name, algorithm="ring")))


def test_deepseek_example_dp_rings_cross_127_over_120_times_hierarchical() -> None:
    """DeepSeek-V3 example: DP groups of 128 H800s, 8 per board (tp = 1). auto = ring; its DP
    all-gather / reduce-scatter scale-out bytes are (128-1)/(128-8) = 127/120 times the
    hierarchical algorithm's."""
    name = "deepseek-v3-ep64"

    def dp_out(job) -> float:
        rows = [r for r in training_traffic(job).rows if r.dimension == "dp"]
        assert {r.collective for r in rows} == {"all_gather", "reduce_scatter"}
        return sum_rows(rows, SCALE_OUT)

    auto = dp_out(_example_job(name))
    assert auto == pytest.approx(dp_out(_example_job(name, algorithm="ring")), rel=1e-12)
    hier = dp_out(_example_job(name, algorithm="hierarchical"))
    assert auto / hier == pytest.approx(127 / 120, rel=1e-12)


# ----- all-reduce: ring or tree by NCCL's model --------------------------------------------


def test_predicted_times_by_hand_1024_ranks_128_nodes() -> None:
    """n = 1024 H100s on 128 nodes, 400G NICs (bus 50 GB/s), 16 channels, S = 1 GB.
    Ring Simple: 8.4 + (2046 - 254) x max(3.4, 3 x 1.0) + 254 x 14.0 = 9657.2 us, x 1.4
    plateau = 13520.08 us; bandwidth 50 x 1024/2046 = 25.0244 GB/s -> 13520.08 + 39961.0.
    Tree Simple: 8.4 + 2 (7 x 4.0 + log2(128) x 14.0) = 260.4 us; bandwidth
    min(0.92 x 50, 16 x 36.0) x 1/2 = 23 GB/s, no correction at 1 GB -> 260.4 + 43478.26."""
    kw = {"num_ranks": 1024, "num_nodes": 128, "size": GB}
    ring = nccl_tuning.predicted_time("ring", "Simple", **kw)
    tree = nccl_tuning.predicted_time("tree", "Simple", **kw)
    assert ring == pytest.approx((13520.08 + 1e9 / (50e3 * 1024 / 2046)) * 1e-6, rel=1e-9)
    assert tree == pytest.approx((260.4 + 1e9 / 23e3) * 1e-6, rel=1e-9)


def test_tree_wins_below_3_77_gb_at_1024_ranks_ring_above() -> None:
    """From the two lines above: 260.4 + S/23000 = 13520.08 + S/25024.44 at
    S = 13259.68 / (1/23000 - 1/25024.44) = 3.770 GB. The other protocols lose here: at
    1 GB tree LL128 pays 150.5 us + S / 21.56 GB/s = 46527 us > 43739 us (tree Simple)."""
    kw = {"num_ranks": 1024, "num_domains": 128}
    crossover = 13259.68 / (1 / 23000 - 1 / (50e3 * 1024 / 2046))
    assert crossover == pytest.approx(3.770e9, rel=1e-3)
    for size, expected in ((GB, "tree"), (0.97 * crossover, "tree"),
                           (1.03 * crossover, "ring"), (16 * GB, "ring")):  # fmt: skip
        assert choose_algorithm("all_reduce", "auto", size=size, **kw) == expected, size


def test_small_all_reduce_across_many_nodes_is_a_tree() -> None:
    """64 KiB over 1024 ranks / 128 nodes. Tree LL: 6.8 + 2 (7 x 0.6 + 7 x 5.0) = 85.2 us,
    bandwidth min(46 / 3.8, 20.4) / 2 = 6.053 GB/s x correction 0.6 (log2(65536/64) = 10):
    85.2 + 18.05 = 103.25 us. Ring LL: 6.6 + 1792 x 1.0 + 254 x 2.7 = 2484.4 us + 6.4."""
    t = nccl_tuning.predicted_time("tree", "LL", num_ranks=1024, num_nodes=128, size=65536)
    assert t == pytest.approx((85.2 + 65536 / (46 / 3.8 / 2 * 0.6 * 1e3)) * 1e-6, rel=1e-9)
    assert nccl_tuning.fastest(("ring", "tree"), num_ranks=1024, num_nodes=128,
                               size=65536) == ("tree", "LL")  # fmt: skip


def test_two_nodes_large_all_reduce_is_a_ring() -> None:
    """n = 16 on 2 nodes, S = 1 GB. Ring Simple: (8.4 + 28 x 3.4 + 2 x 14) x 1.4 = 184.24 us
    + S / (50 x 16/30) = 37500 us; tree Simple: 8.4 + 2 (7 x 4 + 1 x 14) = 92.4 us + 43478
    us. The ring's n / 2(n-1) beats the tree's 0.46 at few nodes."""
    kw = {"num_ranks": 16, "num_nodes": 2, "size": GB}
    assert nccl_tuning.predicted_time("ring", "Simple", **kw) == pytest.approx(
        (184.24 + 37500) * 1e-6, rel=1e-9
    )
    assert nccl_tuning.predicted_time("tree", "Simple", **kw) == pytest.approx(
        (92.4 + 1e9 / 23e3) * 1e-6, rel=1e-9
    )
    assert choose_algorithm("all_reduce", "auto", num_ranks=16, num_domains=2, size=GB) == "ring"


def test_one_rank_per_node_charges_tree_network_latency_to_the_ring() -> None:
    """16 ranks on 16 nodes (ppn = 1): every ring step is a network step at the tree's
    latency 14.0 us: (8.4 + 30 x 14) x 1.4 = 599.76 us + 37500 us (ring); tree 8.4 +
    2 x 4 x 14 = 120.4 us + 43478 us. At 1 GB, a ring."""
    kw = {"num_ranks": 16, "num_nodes": 16, "size": GB}
    assert nccl_tuning.predicted_time("ring", "Simple", **kw) == pytest.approx(
        (599.76 + 37500) * 1e-6, rel=1e-9
    )
    assert choose_algorithm("all_reduce", "auto", num_ranks=16, num_domains=16, size=GB) == "ring"


@pytest.mark.parametrize("n", [2, 4, 8])
def test_inside_one_node_the_model_never_prefers_the_tree(n: int) -> None:
    """The rule keeps a ring inside one domain; for n <= 8 the model agrees at every size."""
    for size in np.logspace(1, 11, 200):
        assert nccl_tuning.fastest(("ring", "tree"), num_ranks=n, num_nodes=1,
                                   size=float(size))[0] == "ring"  # fmt: skip
        assert choose_algorithm("all_reduce", "auto", num_ranks=n, num_domains=1,
                                size=float(size)) == "ring"  # fmt: skip


def test_bandwidth_of_the_gpu_moves_the_crossover(h100) -> None:
    """Twice the NIC rate halves the bandwidth terms, so the same crossover equation gives
    S = 13259.68 / (1/46000 - 1/50048.9) = 7.54 GB: 5 GB is a tree at 800G, a ring at 400G."""
    from dataclasses import replace

    fast = replace(h100, default_nic_speed=100e9)
    kw = {"num_ranks": 1024, "num_domains": 128, "size": 5 * GB}
    assert choose_algorithm("all_reduce", "auto", gpu=h100, **kw) == "ring"
    assert choose_algorithm("all_reduce", "auto", gpu=fast, **kw) == "tree"


# ----- tree bytes across domains -----------------------------------------------------------


def test_tree_over_domains_by_hand() -> None:
    """n = 1024 in k = 128 domains of 8, S = 1 GB: chains put 2(n-k) S = 1792 S on the
    scale-up, the node tree 2(k-1) S = 254 S on the scale-out; 2046 S = the ring's 2(n-1) S.
    Steps 2 x 7 (chain) + 2 x 7 (tree), the latency structure of tuning.cc."""
    cost = collective("all_reduce", "tree", num_ranks=1024, size=GB, ranks_per_domain=8)
    assert cost.bytes_per_rank_in(SCALE_UP) * 1024 == pytest.approx(1792 * GB, rel=1e-12)
    assert cost.bytes_per_rank_in(SCALE_OUT) * 1024 == pytest.approx(254 * GB, rel=1e-12)
    assert cost.total_bytes == pytest.approx(2 * 1023 * GB, rel=1e-12)
    assert cost.steps == 28


def test_tree_rows_for_a_dp_all_reduce_across_128_boards() -> None:
    """Rows of one 1 GB all-reduce by 1024 ranks on 128 boards of 8: auto = tree, scale-out
    254 GB, scale-up 1792 GB, the hierarchical algorithm's split (2(k-1) S across)."""
    rows = _rows("all_reduce", "auto", n=1024, m=8)
    assert {r.algorithm for r in rows} == {"tree"}
    assert sum_rows(rows, SCALE_OUT) == pytest.approx(254 * GB, rel=1e-12)
    assert sum_rows(rows, SCALE_UP) == pytest.approx(1792 * GB, rel=1e-12)
    hier = _rows("all_reduce", "hierarchical", n=1024, m=8)
    assert sum_rows(hier, SCALE_OUT) == pytest.approx(sum_rows(rows, SCALE_OUT), rel=1e-12)


def test_uneven_domains_count_each_groups_domains() -> None:
    """16 members over 72-GPU racks, as 9 + 7 (2 domains) in one group and 16 in one domain
    in the other; a tree: group A sends 2(2-1) S across, group B nothing: 2 S in all."""
    from aifabric.traffic.rows import DomainLayout

    layout = DomainLayout(np.array([[0] * 9 + [1] * 7, [2] * 16]))
    rows = collective_rows(
        dimension="dp", phase="backward", operation="all_reduce", group_size=16,
        num_groups=2, calls=1, size=GB, world_size=32, layout=layout, algorithm="tree",
    )  # fmt: skip
    assert sum_rows(rows, SCALE_OUT) == pytest.approx(2 * GB, rel=1e-12)
    assert sum_rows(rows) == pytest.approx(2 * 2 * 15 * GB, rel=1e-12)


# ----- named algorithms and the rule in the output ----------------------------------------


def test_hierarchical_stays_available_by_name() -> None:
    rows = _rows("all_reduce", "hierarchical")
    assert {r.algorithm for r in rows} == {"hierarchical"}


def test_a_name_the_operation_lacks_falls_back_to_the_ring() -> None:
    assert choose_algorithm("all_gather", "tree", num_ranks=8, num_domains=1, size=1) == "ring"
    assert choose_algorithm("all_gather", "nvls", num_ranks=8, num_domains=1, size=1) == "ring"
    assert choose_algorithm("all_to_all", "ring", num_ranks=8, num_domains=1, size=1) == "direct"


def test_algorithm_rule_names_the_choice() -> None:
    assert algorithm_rule("auto") == "nccl_tuning"
    assert algorithm_rule("ring") == "fixed"


def test_unknown_algorithm_refused() -> None:
    from aifabric.errors import ConfigError

    with pytest.raises(ConfigError, match=r"algorithm\(='butterfly'\) must be one of auto"):
        choose_algorithm("all_reduce", "butterfly", num_ranks=8, num_domains=1, size=1)


def test_collective_cli_auto_uses_the_rule(capsys) -> None:
    import json

    from aifabric.cli import main

    assert main(["collective", "all_reduce", "--ranks", "1024", "--ranks-per-domain", "8",
                 "--size", "1GB", "--algorithm", "auto", "--json"]) == 0  # fmt: skip
    data = json.loads(capsys.readouterr().out)
    assert (data["algorithm"], data["algorithm_rule"]) == ("tree", "nccl_tuning")
    assert data["scale_out_bytes_per_rank"] * 1024 == pytest.approx(254 * GB, rel=1e-12)
