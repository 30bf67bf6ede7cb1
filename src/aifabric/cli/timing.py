"""``aifabric timing``: prefill and decode iteration times of one serving deployment."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from aifabric.cli.edges import JsonFlag, emit_json


def timing_cmd(
    model: Annotated[str, typer.Option(help="Catalog model, e.g. llama2-70b.")] = "llama2-70b",
    gpu: Annotated[str, typer.Option(help="Catalog GPU, e.g. h100-sxm.")] = "h100-sxm",
    tp: Annotated[int, typer.Option(help="Tensor-parallel GPUs of the instance.")] = 8,
    batch: Annotated[int, typer.Option(help="Decoding sequences in the iteration.")] = 1,
    context: Annotated[
        int, typer.Option(help="Context tokens (KV) held by each decoding sequence.")
    ] = 1024,
    prompt_tokens: Annotated[int, typer.Option(help="Tokens of the prompt to prefill.")] = 1024,
    timing: Annotated[
        str,
        typer.Option(
            help="auto (measured profile when one exists, else roofline), profile, roofline."
        ),
    ] = "auto",
    weight_dtype: Annotated[str, typer.Option(help="Weight format: bf16, fp16, fp8.")] = "bf16",
    as_json: JsonFlag = False,
) -> None:
    """Prefill time, decode iteration time and per-token latency of one configuration, with
    the timing model that answered (the serving simulator's, compute.* defaults)."""
    from aifabric.catalog import get_gpu, get_model
    from aifabric.errors import ConfigError
    from aifabric.serving.config import Compute
    from aifabric.serving.profile import roofline_options, select_timing

    for name, value, low in (("--tp", tp, 1), ("--batch", batch, 1), ("--context", context, 0),
                             ("--prompt-tokens", prompt_tokens, 1)):  # fmt: skip
        if value < low:
            raise ConfigError(f"{name}(={value}) must be >= {low}")
    if timing not in ("auto", "profile", "roofline"):
        raise ConfigError(f"--timing(={timing!r}) must be one of auto, profile, roofline")
    spec = get_model(model)
    if context + 1 > spec.max_seq_len or prompt_tokens > spec.max_seq_len:
        raise ConfigError(f"--context/--prompt-tokens must fit {model}'s {spec.max_seq_len}-token"
                          " context")  # fmt: skip
    comp = Compute()
    t = select_timing(model=spec, gpu=get_gpu(gpu), tp=tp, timing=timing,
                      weight_dtype=weight_dtype, kv_dtype=comp.kv_dtype,
                      **roofline_options(comp))  # fmt: skip
    prefill = t.prefill_time(float(prompt_tokens))
    decode = t.iteration_time(decode_batch=batch, decode_context=float(batch * context))
    result: dict[str, Any] = {
        "model": model, "gpu": gpu, "tp": tp, "batch": batch, "context_tokens": context,
        "prompt_tokens": prompt_tokens, "timing": timing, "weight_dtype": weight_dtype,
        "prefill_s": prefill, "decode_iteration_s": decode, "per_token_latency_s": decode,
        "decode_tokens_per_s": batch / decode, "timing_model": t.name,
    }  # fmt: skip
    if as_json:
        emit_json(result)
        return
    from aifabric.report.tables import key_values
    from aifabric.units import format_duration

    key_values(f"{model} on {tp} x {gpu}, batch {batch} at {context:,} context tokens", [
        ("timing model", t.name),
        (f"prefill of {prompt_tokens:,} tokens (TTFT without queueing)", format_duration(prefill)),
        ("decode iteration (per-token latency, TBT)", format_duration(decode)),
        ("decode throughput", f"{batch / decode:,.0f} tokens/s"),
    ])  # fmt: skip
