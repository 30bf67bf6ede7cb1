"""``aifabric traffic train`` and ``traffic infer``: analytic bytes on the wire."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from aifabric.cli.edges import JsonFlag, MaxWork, ScenarioFile, emit_json

traffic_app = typer.Typer(no_args_is_help=True, help="Analytic traffic of training and inference.")


@traffic_app.command("train")
def traffic_train(
    file: ScenarioFile = None,
    model: Annotated[str | None, typer.Option(help="Catalog model name.")] = None,
    gpu: Annotated[str | None, typer.Option(help="Catalog GPU (default h100-sxm).")] = None,
    gpus: Annotated[int | None, typer.Option(help="Check: total GPUs = tp*cp*dp*pp.")] = None,
    tp: Annotated[int | None, typer.Option(help="Tensor parallel degree.")] = None,
    pp: Annotated[int | None, typer.Option(help="Pipeline parallel degree.")] = None,
    dp: Annotated[int | None, typer.Option(help="Data parallel degree.")] = None,
    cp: Annotated[int | None, typer.Option(help="Context parallel degree.")] = None,
    ep: Annotated[int | None, typer.Option(help="Expert parallel degree (within dp*cp).")] = None,
    expert_tp: Annotated[
        int | None, typer.Option(help="Expert tensor parallel degree (default: tp, as Megatron).")
    ] = None,
    zero: Annotated[int | None, typer.Option(help="ZeRO stage 0-3 (3 = FSDP).")] = None,
    fsdp: Annotated[bool | None, typer.Option("--fsdp/--no-fsdp", help="Same as --zero 3.")] = None,
    sequence_parallel: Annotated[
        bool | None,
        typer.Option("--sp/--no-sp", help="Megatron-LM sequence parallelism."),
    ] = None,
    seq_len: Annotated[int | None, typer.Option(help="Tokens per sequence.")] = None,
    global_batch: Annotated[int | None, typer.Option(help="Sequences per iteration.")] = None,
    micro_batch: Annotated[int | None, typer.Option(help="Sequences per micro-batch.")] = None,
    grad_dtype: Annotated[
        str | None, typer.Option(help="Gradient reduction dtype (default fp32, as Megatron-LM).")
    ] = None,
    recompute: Annotated[
        str | None, typer.Option(help="Activation recomputation: none, selective, full.")
    ] = None,
    virtual_stages: Annotated[
        int | None, typer.Option(help="Model chunks per pipeline rank (interleaved 1F1B).")
    ] = None,
    pipeline_layers: Annotated[
        str | None, typer.Option(help="Layers per pipeline stage, e.g. 4,4,4,3.")
    ] = None,
    dataset_tokens: Annotated[str | None, typer.Option(help="Tokens per epoch, e.g. 156B.")] = None,
    samples: Annotated[str | None, typer.Option(help="Samples per epoch, e.g. 364.6M.")] = None,
    accounting: Annotated[str | None, typer.Option(help="algorithmic (default) or seed.")] = None,
    algorithm: Annotated[
        str | None,
        typer.Option(
            help="auto (what NCCL's tuning model picks), ring, tree, halving_doubling, direct, "
            "hierarchical, nvls, sharp."
        ),
    ] = None,
    in_network_reduction: Annotated[
        bool | None,
        typer.Option(
            "--in-network-reduction/--no-in-network-reduction",
            help="Let auto use NVLS / SHARP in-switch all-reduce.",
        ),
    ] = None,
    mfu: Annotated[
        float | None, typer.Option(help="Model FLOPs utilization for step time.")
    ] = None,
    max_work: MaxWork = None,
    as_json: JsonFlag = False,
) -> None:
    """Bytes on the wire per iteration and per epoch, by parallel dimension and scope."""
    from aifabric.spec.scenario import load_scenario

    flags = {"model": model, "gpu": gpu, "gpus": gpus, "tp": tp, "pp": pp, "dp": dp, "cp": cp,
             "ep": ep, "zero": zero, "fsdp": fsdp, "sequence_parallel": sequence_parallel,
             "seq_len": seq_len, "global_batch": global_batch, "micro_batch": micro_batch,
             "grad_dtype": grad_dtype, "dataset_tokens": dataset_tokens, "samples": samples,
             "accounting": accounting, "algorithm": algorithm, "mfu": mfu,
             "in_network_reduction": in_network_reduction, "recompute": recompute,
             "virtual_stages": virtual_stages,
             "pipeline_layers": pipeline_layers, "expert_tp": expert_tp}  # fmt: skip
    scenario = load_scenario(file) if file else {}
    result = traffic_train_result(scenario, flags, max_work=max_work)
    if as_json:
        emit_json(result)
        return
    from aifabric.report.tables import training_report

    training_report(result)


def traffic_train_result(
    scenario: dict[str, Any], flags: dict[str, Any] | None = None, *,
    max_work: float | None = None,
) -> dict[str, Any]:  # fmt: skip
    """The JSON result of ``aifabric traffic train`` on a flat scenario (flags override).

    The one home of the command's logic, shared by the CLI and ``aifabric sweep``.
    """
    from aifabric.spec.scenario import TRAIN_KEYS, merge_options, training_job
    from aifabric.traffic.training import training_traffic

    job = training_job(merge_options(TRAIN_KEYS, scenario, flags or {}))
    result: dict[str, Any] = training_traffic(job, max_work=max_work).to_dict()
    return result


@traffic_app.command("infer")
def traffic_infer(
    file: ScenarioFile = None,
    model: Annotated[str | None, typer.Option(help="Catalog model name.")] = None,
    gpu: Annotated[str | None, typer.Option(help="Catalog GPU (default h100-sxm).")] = None,
    tp: Annotated[int | None, typer.Option(help="Tensor parallel degree per instance.")] = None,
    ep: Annotated[int | None, typer.Option(help="Expert parallel degree per instance.")] = None,
    users: Annotated[int | None, typer.Option(help="Concurrent users U.")] = None,
    prompt_tokens: Annotated[int | None, typer.Option(help="Prompt tokens S_in.")] = None,
    output_tokens: Annotated[int | None, typer.Option(help="Output tokens S_out.")] = None,
    kv_dtype: Annotated[str | None, typer.Option(help="KV cache dtype (bf16, fp16, fp8).")] = None,
    pd: Annotated[
        bool | None, typer.Option("--pd/--no-pd", help="Prefill/decode disaggregation.")
    ] = None,
    tokens_per_s: Annotated[
        float | None, typer.Option(help="Per-user decode speed target.")
    ] = None,
    parallel_efficiency: Annotated[
        float | None, typer.Option(help="Compute share of token time.")
    ] = None,
    kv_deadline: Annotated[
        str | None, typer.Option(help="KV transfer deadline, e.g. 10ms.")
    ] = None,
    nic_speed: Annotated[str | None, typer.Option(help="NIC line rate, e.g. 400G.")] = None,
    accounting: Annotated[str | None, typer.Option(help="algorithmic (default) or seed.")] = None,
    algorithm: Annotated[
        str | None,
        typer.Option(help="TP all-reduce: auto (NCCL's tuning model), ring, tree, nvls, ..."),
    ] = None,
    in_network_reduction: Annotated[
        bool | None,
        typer.Option(
            "--in-network-reduction/--no-in-network-reduction",
            help="Let auto use NVLS in-switch all-reduce.",
        ),
    ] = None,
    as_json: JsonFlag = False,
) -> None:
    """Per-request and aggregate inference traffic, and the bandwidth targets imply."""
    from aifabric.spec.scenario import INFER_KEYS, inference_job, load_scenario, merge_options
    from aifabric.traffic.inference import inference_traffic

    flags = {"model": model, "gpu": gpu, "tp": tp, "ep": ep, "users": users,
             "prompt_tokens": prompt_tokens, "output_tokens": output_tokens,
             "kv_dtype": kv_dtype, "pd": pd, "tokens_per_s": tokens_per_s,
             "parallel_efficiency": parallel_efficiency, "kv_deadline": kv_deadline,
             "nic_speed": nic_speed, "accounting": accounting, "algorithm": algorithm,
             "in_network_reduction": in_network_reduction}  # fmt: skip
    scenario = load_scenario(file) if file else {}
    result = inference_traffic(inference_job(merge_options(INFER_KEYS, scenario, flags)))
    if as_json:
        emit_json(result)
        return
    from aifabric.report.tables import inference_report

    inference_report(result)
