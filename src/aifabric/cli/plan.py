"""``aifabric plan`` and ``aifabric plan compare``: the fabric planner's command line."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from aifabric.cli.edges import JsonFlag, MaxWork, check_output_paths, emit_json, write_all_atomic

plan_app = typer.Typer(help="Plan a fabric: topology, bill of materials, cost, traffic per tier.")

Opt = typer.Option


@plan_app.callback(invoke_without_command=True)
def plan(
    ctx: typer.Context,
    file: Annotated[Path | None, Opt("-f", "--file", help="Scenario YAML file.")] = None,
    preset: Annotated[
        str | None,
        Opt(help="dgx-superpod-h100, dgx-superpod-gb200, meta-llama3-24k, alibaba-hpn."),
    ] = None,
    scalable_units: Annotated[
        int | None, Opt(help="SuperPOD scalable units (H100: 32 DGX; GB200: 8 NVL72 racks).")
    ] = None,
    pods: Annotated[int | None, Opt(help="Pods for the meta/alibaba presets.")] = None,
    gpus: Annotated[int | None, Opt(help="GPUs in the cluster.")] = None,
    gpu: Annotated[str | None, Opt(help="Catalog GPU (default h100-sxm).")] = None,
    gpus_per_node: Annotated[int | None, Opt(help="GPUs per server (default 8).")] = None,
    nic: Annotated[str | None, Opt(help="NIC: catalog name or line rate (400G).")] = None,
    nics_per_node: Annotated[int | None, Opt(help="Scale-out NICs per server (default 8).")] = None,
    switch: Annotated[str | None, Opt(help="Catalog switch (default quantum-2-qm9700).")] = None,
    switch_radix: Annotated[
        int | None,
        Opt(help="Ports per switch at the link rate (default: the catalog's breakout there)."),
    ] = None,
    design: Annotated[
        str | None, Opt(help="rail_optimized, clos or spine_leaf (hyphens accepted).")
    ] = None,
    tiers: Annotated[int | None, Opt(help="Switch tiers (default: fewest).")] = None,
    oversubscription: Annotated[float | None, Opt(help="Leaf down:up (1 = non-blocking).")] = None,
    spine_oversubscription: Annotated[float | None, Opt(help="Spine down:up (3 tiers).")] = None,
    planes: Annotated[int | None, Opt(help="Network planes per NIC.")] = None,
    su_nodes: Annotated[int | None, Opt(help="Servers per scalable unit / per leaf.")] = None,
    placement: Annotated[str | None, Opt(help="contiguous or random (seeded).")] = None,
    model: Annotated[str | None, Opt(help="Place a training job of this model.")] = None,
    tp: Annotated[int | None, Opt(help="Job: tensor parallel degree.")] = None,
    pp: Annotated[int | None, Opt(help="Job: pipeline parallel degree.")] = None,
    dp: Annotated[int | None, Opt(help="Job: data parallel degree.")] = None,
    cp: Annotated[int | None, Opt(help="Job: context parallel degree.")] = None,
    ep: Annotated[int | None, Opt(help="Job: expert parallel degree (within dp*cp).")] = None,
    zero: Annotated[int | None, Opt(help="Job: ZeRO stage 0-3 (3 = FSDP).")] = None,
    sequence_parallel: Annotated[
        bool | None,
        Opt(
            "--sequence-parallel/--no-sequence-parallel",
            "--sp/--no-sp",
            help="Megatron-LM sequence parallelism.",
        ),
    ] = None,
    seq_len: Annotated[int | None, Opt(help="Job: tokens per sequence.")] = None,
    global_batch: Annotated[int | None, Opt(help="Job: sequences per iteration.")] = None,
    micro_batch: Annotated[int | None, Opt(help="Job: sequences per micro-batch.")] = None,
    algorithm: Annotated[
        str | None, Opt(help="Collective algorithm (default auto: NCCL's).")
    ] = None,
    in_network_reduction: Annotated[
        bool | None,
        Opt(
            "--in-network-reduction/--no-in-network-reduction",
            help="Let auto use NVLS / SHARP all-reduce.",
        ),
    ] = None,
    prices: Annotated[str | None, Opt(help="Price catalog YAML (default: shipped).")] = None,
    graphml: Annotated[Path | None, Opt(help="Write the topology as GraphML here.")] = None,
    matrix: Annotated[Path | None, Opt(help="Write the node x node traffic CSV here.")] = None,
    svg: Annotated[Path | None, Opt(help="Write a per-tier traffic chart (SVG) here.")] = None,
    export: Annotated[
        Path | None, Opt(help="Write the topology (with link arrays) as JSON.")
    ] = None,
    frontend_nic: Annotated[
        str | None, Opt(help="Add a front-end network: NIC rate per server, e.g. 200G.")
    ] = None,
    max_work: MaxWork = None,
    as_json: JsonFlag = False,
) -> None:
    """Build a fabric and report switches, links, optics, cost, power and capacity.

    With a job (--model --tp --pp --dp ...) it also places the job and splits its traffic
    over the tiers (scale-up, leaf, spine, core).
    """
    if ctx.invoked_subcommand is not None:
        return
    from aifabric.spec.scenario import load_scenario

    flags = {"preset": preset, "scalable_units": scalable_units, "pods": pods, "gpus": gpus,
             "gpu": gpu, "gpus_per_node": gpus_per_node, "nic": nic, "nics_per_node": nics_per_node,
             "switch": switch, "switch_radix": switch_radix, "design": design, "tiers": tiers,
             "oversubscription": oversubscription, "spine_oversubscription": spine_oversubscription,
             "planes": planes, "su_nodes": su_nodes, "placement": placement, "model": model,
             "tp": tp, "pp": pp, "dp": dp, "cp": cp, "ep": ep, "zero": zero,
             "sequence_parallel": sequence_parallel, "seq_len": seq_len,
             "global_batch": global_batch, "micro_batch": micro_batch, "algorithm": algorithm,
             "in_network_reduction": in_network_reduction}  # fmt: skip
    check_output_paths([("--graphml", graphml), ("--export", export), ("--matrix", matrix),
                        ("--svg", svg)])  # fmt: skip
    scenario = load_scenario(file) if file else {}
    needs_job = "--svg" if svg is not None else "--matrix" if matrix is not None else None
    result, topo, node_matrix = plan_scenario(
        scenario, flags, frontend_nic=frontend_nic, matrix=matrix is not None,
        needs_job=needs_job, max_work=max_work, prices=prices,
    )  # fmt: skip
    outputs: list[tuple[Path, Any]] = []  # written together, only when all are ready
    if graphml is not None:
        outputs.append((graphml, topo.graphml_writer()))
        result["graphml"] = str(graphml)
    if export is not None:
        import json

        outputs.append((export, json.dumps(topo.to_dict(include_links=True))))
        result["export"] = str(export)
    if matrix is not None and node_matrix is not None:
        outputs.append((matrix, _matrix_writer(node_matrix)))
        result["matrix"] = str(matrix)
    if svg is not None:
        outputs.append((svg, _svg_text(result)))
        result["svg"] = str(svg)
    write_all_atomic(outputs)
    if as_json:
        emit_json(result)
        return
    from aifabric.report.fabric_tables import plan_report

    plan_report(result)


def plan_scenario(
    scenario: dict[str, Any], flags: dict[str, Any] | None = None, *,
    frontend_nic: str | None = None, matrix: bool = False, needs_job: str | None = None,
    max_work: float | None = None, prices: str | None = None,
) -> tuple[dict[str, Any], Any, Any]:  # fmt: skip
    """(JSON result, topology, node matrix) of ``aifabric plan`` on a flat scenario.

    The one home of the command's logic, shared by the CLI and ``aifabric sweep``
    (aifabric.explore.runners). ``flags`` override scenario keys (None values are not
    given); ``needs_job`` names the flag that needs a job's traffic, if one was given.
    """
    from aifabric.fabric.plan import plan_fabric
    from aifabric.spec.scenario import split_plan_options, training_job

    fabric_opts, job_opts = split_plan_options(scenario, flags or {})
    if needs_job is not None and job_opts is None:
        from aifabric.errors import ConfigError

        raise ConfigError(f"{needs_job} needs a job's traffic: add --model and a parallel plan")
    job = None
    if job_opts is not None:
        if "gpu" in fabric_opts:
            job_opts["gpu"] = fabric_opts["gpu"]
        job = training_job(_job_defaults(job_opts))
    if frontend_nic is not None:
        fabric_opts["frontend_nic"] = frontend_nic
    return plan_fabric(fabric_opts, job, matrix=matrix, max_work=max_work, prices=prices)


def _svg_text(result: dict[str, Any]) -> str:
    """The per-tier traffic chart of a planned job, as SVG text."""
    from aifabric.errors import ConfigError
    from aifabric.report.svg import tier_traffic_svg

    if "bytes_by_tier" not in result:
        raise ConfigError("--svg draws a job's traffic per tier: add --model and a parallel plan")
    title = f"{result['job']['model']}: bytes per iteration by tier"
    label = str(result.get("preset") or result.get("design"))
    return tier_traffic_svg([(label, result["bytes_by_tier"])], title=title)


def _job_defaults(options: dict[str, Any]) -> dict[str, Any]:
    from aifabric.spec.scenario import _gpu

    opts = dict(options)
    if isinstance(opts.get("gpu"), str):
        opts["gpu"] = _gpu(opts["gpu"])
    return opts


def _matrix_writer(node_matrix: Any) -> Any:
    """A function writing the CSV of inter-server bytes per iteration."""
    from typing import TextIO

    src, dst, nbytes = node_matrix

    def write(f: TextIO) -> None:
        f.write("src_node,dst_node,bytes\n")
        for a, b, v in zip(src.tolist(), dst.tolist(), nbytes.tolist(), strict=True):
            f.write(f"{a},{b},{v:.0f}\n")

    return write


@plan_app.command("compare")
def compare(
    gpus: Annotated[int, Opt(help="GPUs in each cluster.")] = 1024,
    gpu: Annotated[str, Opt(help="Catalog GPU.")] = "h100-sxm",
    max_work: MaxWork = None,
    as_json: JsonFlag = False,
) -> None:
    """Training fabric vs inference fabric for the same GPUs, and the hybrid strategies (seed 004)."""
    from aifabric.fabric.compare import compare_training_inference

    result = compare_training_inference(gpus=gpus, gpu=gpu, max_work=max_work)
    if as_json:
        emit_json(result)
        return
    from aifabric.report.fabric_tables import compare_report

    compare_report(result)
