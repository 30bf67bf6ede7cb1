"""``aifabric simulate train``: one training step simulated on a planned fabric."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from aifabric.cli.edges import JsonFlag, emit_json
from aifabric.cli.simulate import simulate_app

Opt = typer.Option


@simulate_app.command("train")
def simulate_train(
    file: Annotated[
        Path | None,
        Opt("-f", "--file", help="Training scenario YAML (job, fabric and simulation keys)."),
    ] = None,
    model: Annotated[str | None, Opt(help="Catalog model name.")] = None,
    gpu: Annotated[str | None, Opt(help="Catalog GPU (default h100-sxm).")] = None,
    gpus: Annotated[int | None, Opt(help="Fabric GPUs (default tp*cp*dp*pp).")] = None,
    tp: Annotated[int | None, Opt(help="Tensor parallel degree.")] = None,
    pp: Annotated[int | None, Opt(help="Pipeline parallel degree.")] = None,
    dp: Annotated[int | None, Opt(help="Data parallel degree.")] = None,
    cp: Annotated[int | None, Opt(help="Context parallel degree.")] = None,
    ep: Annotated[int | None, Opt(help="Expert parallel degree.")] = None,
    zero: Annotated[int | None, Opt(help="ZeRO stage 0-3 (1 = distributed optimizer).")] = None,
    sequence_parallel: Annotated[
        bool | None, Opt("--sp/--no-sp", help="Sequence parallelism.")
    ] = None,
    seq_len: Annotated[int | None, Opt(help="Tokens per sequence.")] = None,
    global_batch: Annotated[int | None, Opt(help="Sequences per step.")] = None,
    micro_batch: Annotated[int | None, Opt(help="Sequences per micro-batch.")] = None,
    recompute: Annotated[str | None, Opt(help="none, selective or full.")] = None,
    virtual_stages: Annotated[
        int | None, Opt(help="Interleaved 1F1B model chunks per rank.")
    ] = None,
    pipeline_layers: Annotated[
        str | None, Opt(help="Layers per stage, e.g. 7,8,8,7, or one per virtual stage.")
    ] = None,
    dataset_tokens: Annotated[
        str | None, Opt(help="Tokens to train on: reports time_to_train_s.")
    ] = None,
    preset: Annotated[
        str | None, Opt(help="A published fabric design (see aifabric plan).")
    ] = None,
    design: Annotated[str | None, Opt(help="rail_optimized, clos or spine_leaf.")] = None,
    nic: Annotated[str | None, Opt(help="NIC: catalog name or line rate (400G).")] = None,
    tiers: Annotated[int | None, Opt(help="Switch tiers (default: fewest).")] = None,
    oversubscription: Annotated[float | None, Opt(help="Leaf down:up.")] = None,
    network: Annotated[str | None, Opt(help="flow (default up to 4,096 GPUs) or analytic.")] = None,
    routing: Annotated[str | None, Opt(help="ecmp, ecmp_qp, spray or adaptive (flow).")] = None,
    flash_attention: Annotated[
        bool | None,
        Opt("--flash-attention/--no-flash-attention", help="Flash attention (default on)."),
    ] = None,
    tp_comm_overlap: Annotated[
        bool | None,
        Opt("--tp-comm-overlap/--no-tp-comm-overlap", help="Hide TP collectives behind GEMMs."),
    ] = None,
    overlap_grad_reduce: Annotated[
        bool | None,
        Opt(
            "--overlap-grad-reduce/--no-overlap-grad-reduce",
            help="Bucketed DP reduce during the backward (default on).",
        ),
    ] = None,
    jitter: Annotated[
        float | None, Opt(help="Per-GPU compute jitter: std. dev. of log time.")
    ] = None,
    slow_gpu: Annotated[
        list[str] | None, Opt(metavar="RANK:FACTOR", help="A slow GPU. Repeatable.")
    ] = None,
    slow_node: Annotated[
        list[str] | None, Opt(metavar="NODE:FACTOR", help="A slow node. Repeatable.")
    ] = None,
    fail: Annotated[
        list[str] | None, Opt(metavar="WHAT", help="Failed links (flow): leaf_spine:0.25.")
    ] = None,
    degrade: Annotated[
        list[str] | None, Opt(metavar="LAYER:FRACTION@SPEED", help="Slow links (flow).")
    ] = None,
    require_fit: Annotated[
        bool, Opt("--require-fit", help="Refuse a plan that exceeds HBM.")
    ] = False,
    seed: Annotated[int | None, Opt(help="Seed of jitter, hashing and failures.")] = None,
    trace: Annotated[Path | None, Opt(help="Write a Chrome trace-event JSON (Perfetto).")] = None,
    as_json: JsonFlag = False,
) -> None:
    """Step time, MFU, exposed communication, memory and fabric utilization of one step."""
    from aifabric.outputs import check_output_paths, write_all_atomic
    from aifabric.spec.scenario import load_scenario
    from aifabric.training.scenario import training_inputs
    from aifabric.training.step import simulate_step_detail
    from aifabric.training.trace import write_trace

    check_output_paths([("--trace", trace)])
    scenario = load_scenario(file) if file else {}
    flags = {"model": model, "gpu": gpu, "gpus": gpus, "tp": tp, "pp": pp, "dp": dp, "cp": cp,
             "ep": ep, "zero": zero, "sequence_parallel": sequence_parallel, "seq_len": seq_len,
             "global_batch": global_batch, "micro_batch": micro_batch, "recompute": recompute,
             "virtual_stages": virtual_stages, "pipeline_layers": pipeline_layers,
             "dataset_tokens": dataset_tokens, "preset": preset, "design": design, "nic": nic,
             "tiers": tiers, "oversubscription": oversubscription}  # fmt: skip
    given = {"network": network, "routing": routing, "flash_attention": flash_attention,
             "tp_comm_overlap": tp_comm_overlap, "overlap_grad_reduce": overlap_grad_reduce,
             "jitter": jitter, "seed": seed, "slow_gpu": slow_gpu or None,
             "slow_node": slow_node or None, "fail": fail or None, "degrade": degrade or None,
             "require_fit": require_fit or None}  # fmt: skip
    job, opts = training_inputs(scenario, flags, given)
    result, detail = simulate_step_detail(job, opts)
    if trace is not None:
        write_all_atomic([(trace, lambda fh: write_trace(fh, result, detail))])
    if as_json:
        emit_json(result)
        return
    from aifabric.report.train_tables import train_report

    train_report(result)
