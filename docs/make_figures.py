"""Regenerate the README's figures. Run: python docs/make_figures.py

- docs/tier-traffic.svg: where Llama-3-70B TP8 x PP8 x DP16's bytes travel: the same job on
  the same 1,024 H100s in a rail-optimized SuperPOD (4 SUs), a ToR Clos of the same
  switches, and the SuperPOD with servers placed at random.
- docs/netsim-busbw.svg: NCCL's tree all-reduce over 1,024 H100s on the non-blocking
  rail-optimized fabric: busbw vs message size under ecmp, ecmp_qp (4 QPs), spray and
  adaptive routing (aifabric simulate collective).
- docs/train-timeline.svg: one simulated step of Llama-3-70B TP8 x PP8 x DP16 (16
  micro-batches, interleaved 1F1B): each stage's passes, exposed DP reduce, optimizer.
- docs/serving-mooncake.svg: the Mooncake conversation example
  (examples/serve/mooncake-conversation-pd.yaml): TTFT and TBT per SLO tier, queue depth.
- docs/cluster-strategies.svg: seed 004's four strategies on one day of Llama-3-70B
  training and chat serving (examples/cluster/{separate-clusters, separate-networks,
  converged-day, time-division}.yaml): GPUs, GPU use, cost per useful GPU-hour, training
  throughput and serving TTFT p99. Slow (four 24-hour simulations, several minutes);
  ``--skip-cluster`` leaves it out.
- docs/sweep-pareto.svg: the README's sweep (examples/sweep/llama70b-fabrics.yaml): step
  time against capital cost per million tokens of every feasible fabric x plan of
  Llama-3-70B on 1,024 to 8,192 H100s, with the Pareto front; read from the sweep's DuckDB
  file with the query the README shows.
"""

from __future__ import annotations

import sys
from pathlib import Path

from aifabric.fabric.plan import plan_fabric
from aifabric.report.svg import tier_traffic_svg
from aifabric.spec.scenario import TRAIN_KEYS, merge_options, training_job


def serving_figure() -> None:
    from aifabric.report.svg import serving_svg
    from aifabric.serving.cluster import ServingSimulation
    from aifabric.serving.config import load_serve_scenario
    from aifabric.serving.metrics import queue_series, request_table

    root = Path(__file__).resolve().parents[1]
    scenario = load_serve_scenario(root / "examples/serve/mooncake-conversation-pd.yaml")
    sim = ServingSimulation(scenario)
    sim.run()
    table = request_table(sim)
    names = [t.name for t in scenario.slo.tiers]
    ttft = [(n, table["ttft"][table["tier"] == i].tolist()) for i, n in enumerate(names)]
    tbt = [(n, table["tbt"][table["tier"] == i].tolist()) for i, n in enumerate(names)]
    grid, depth = queue_series(sim, 10.0, sim.sim.now)
    svg = serving_svg(ttft, tbt, (grid.tolist(), depth.tolist()),
                      title="Mooncake conversation trace, Llama-3-70B TP8, 4 prefill : 2 decode")  # fmt: skip
    Path(__file__).with_name("serving-mooncake.svg").write_text(svg, encoding="utf-8")


def netsim_figure() -> None:
    from aifabric.netsim.run import simulate_collective
    from aifabric.report.svg import busbw_svg

    sizes = [2.0**k for k in range(16, 33, 2)]
    series = []
    for label, routing, qps in (("ecmp", "ecmp", 1), ("ecmp_qp (4 QPs)", "ecmp_qp", 4),
                                ("adaptive", "adaptive", 1), ("spray", "spray", 1)):  # fmt: skip
        r = simulate_collective({"gpus": 1024}, op="all_reduce", algorithm="tree", sizes=sizes,
                                routing=routing, qps=qps)  # fmt: skip
        series.append((label, sizes, [x["busbw_bytes_per_s"] for x in r["results"]]))
    svg = busbw_svg(series, title="Tree all-reduce, 1,024 H100s, rail-optimized 400G: busbw")
    Path(__file__).with_name("netsim-busbw.svg").write_text(svg, encoding="utf-8")


def training_figure() -> None:
    from aifabric.training.step import StepOptions, simulate_step_detail
    from aifabric.training.trace import timeline_svg

    job = training_job(merge_options(TRAIN_KEYS, {}, {
        "model": "llama3-70b", "tp": 8, "pp": 8, "dp": 16, "seq_len": 8192,
        "global_batch": 256, "zero": 1, "sequence_parallel": True, "virtual_stages": 2,
    }))  # fmt: skip
    _, sim = simulate_step_detail(job, StepOptions())
    svg = timeline_svg(sim, title="Llama-3-70B TP8xPP8xDP16, 16 micro-batches, interleaved 1F1B "
                                  "(2 chunks): one simulated step")  # fmt: skip
    Path(__file__).with_name("train-timeline.svg").write_text(svg, encoding="utf-8")


STRATEGY_FILES = ("separate-clusters", "separate-networks", "converged-day", "time-division")


def strategies_figure() -> None:
    from aifabric.cluster.config import parse_cluster
    from aifabric.cluster.run import simulate_cluster
    from aifabric.report.svg import strategies_svg
    from aifabric.spec.scenario import load_scenario

    root = Path(__file__).resolve().parents[1] / "examples" / "cluster"
    results = []
    for name in STRATEGY_FILES:
        path = root / f"{name}.yaml"
        results.append(simulate_cluster(parse_cluster(load_scenario(path), root))[0])
    panels = [
        ("GPUs", "count", [float(r["cost_usd"]["gpus"]) for r in results]),
        ("GPUs busy", "%", [100 * r["gpu_utilization"]["overall_utilization"] for r in results]),
        ("cost per useful GPU-hour", "USD",
         [r["cost_usd"]["usd_per_useful_gpu_hour"] for r in results]),
        ("training", "M tokens/s", [r["workloads"][0]["shared"]["tokens_per_s"] / 1e6
                                    for r in results]),
        ("serving TTFT p99", "s", [r["workloads"][1]["shared"]["ttft_s"]["p99"] for r in results]),
    ]  # fmt: skip
    svg = strategies_svg([r["strategy"] for r in results], panels,
                         title="One day of Llama-3-70B training + chat serving, four strategies")  # fmt: skip
    Path(__file__).with_name("cluster-strategies.svg").write_text(svg, encoding="utf-8")


SWEEP_QUERY = (
    "SELECT gpus, iteration_time_s, cost_usd__usd_per_token * 1e6 AS usd_per_m_tokens "
    "FROM points WHERE status = 'ok' ORDER BY gpus, hash"
)


def sweep_figure() -> None:
    import tempfile

    from aifabric.cli.sweep import pareto_rows
    from aifabric.explore.executor import run_sweep
    from aifabric.explore.store import ResultStore, open_readonly
    from aifabric.explore.sweep import load_sweep
    from aifabric.report.svg import pareto_svg

    path = Path(__file__).resolve().parents[1] / "examples" / "sweep" / "llama70b-fabrics.yaml"
    with tempfile.TemporaryDirectory() as tmp:
        db = str(Path(tmp) / "fabrics.duckdb")
        store = ResultStore(db)
        try:
            run_sweep(load_sweep(path), store, workers=2)
        finally:
            store.close()
        con = open_readonly(db)
        try:
            points = [(t, c, f"{g:,} GPUs") for g, t, c in con.execute(SWEEP_QUERY).fetchall()]
            cols, rows, _ = pareto_rows(con, ["iteration_time_s", "cost_usd__usd_per_token"],
                                        [], None)  # fmt: skip
        finally:
            con.close()
    t, c = cols.index("iteration_time_s"), cols.index("cost_usd__usd_per_token")
    front = [(r[t], r[c] * 1e6) for r in rows]
    svg = pareto_svg(points, front, x_label="step time (s)",
                     y_label="capital cost (USD per million tokens)",
                     title="Llama-3-70B on 1,024-8,192 H100s: every feasible fabric x plan")  # fmt: skip
    Path(__file__).with_name("sweep-pareto.svg").write_text(svg, encoding="utf-8")


def main() -> None:
    job = training_job(merge_options(TRAIN_KEYS, {}, {
        "model": "llama3-70b", "tp": 8, "pp": 8, "dp": 16, "seq_len": 8192,
        "global_batch": 2048, "zero": 1, "dataset_tokens": "156B", "sequence_parallel": True,
    }))  # fmt: skip
    series = []
    # 1,024 GPUs: the SuperPOD preset at 4 SU holds 1,016 (one DGX gives way to UFM).
    for label, options in (
        ("rail-optimized (SuperPOD-style)", {"gpus": 1024}),
        ("ToR Clos", {"gpus": 1024, "design": "clos"}),
        ("rail-optimized, random placement", {"gpus": 1024, "placement": "random"}),
    ):  # fmt: skip
        result, _, _ = plan_fabric(options, job)
        series.append((label, result["bytes_by_tier"]))
    svg = tier_traffic_svg(series, title="Llama-3-70B TP8xPP8xDP16: bytes per iteration by tier")
    Path(__file__).with_name("tier-traffic.svg").write_text(svg, encoding="utf-8")
    serving_figure()
    netsim_figure()
    training_figure()
    sweep_figure()
    if "--skip-cluster" not in sys.argv:
        strategies_figure()


if __name__ == "__main__":
    main()
