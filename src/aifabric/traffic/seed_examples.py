"""Every worked example of the seed documents, recomputed from the seeds' stated inputs.

Each example records our value in base units, the seed's figure as printed (number and
unit text), whether they agree within the precision the seed printed, and a note where
they do not. Inputs are the seeds' own (e.g. P = 70e9 for "Llama3-70B", not the real
70.55e9), so that disagreements come from arithmetic or units, never from inputs.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace

from aifabric.catalog import get_model
from aifabric.spec.model import dtype_bytes
from aifabric.traffic.network import devices_for_deadline, transfer_time, whole_devices
from aifabric.traffic.seeds import (
    seed_allreduce_bytes,
    seed_allreduces_per_request,
    seed_fsdp_epoch,
    seed_training_epoch,
)
from aifabric.units import (
    SECONDS_PER_DAY,
    format_bandwidth,
    format_bytes,
    format_duration,
    parse_bandwidth,
    parse_bytes,
    parse_duration,
)


@dataclass(frozen=True, slots=True)
class SeedExample:
    """One recomputed example; value in base units, seed_value as printed in seed_unit."""

    id: str
    seed_file: str
    quantity: str
    value: float
    unit: str
    display: str
    seed_value: float | None
    seed_unit: str | None
    agrees: bool | None
    note: str

    def to_dict(self) -> dict[str, object]:
        return asdict(self)


SEED_FILES = {
    "000": "000_4bd07e873b1cb454.txt",
    "001": "001_6bb1d3e5e508bb97.txt",
    "002": "002_0e2a3444b7bb79e7.txt",
    "003": "003_c7afbe04e75115aa.txt",
    "004": "004_20ec750dd9229ec5.txt",
}
_TO_BASE = {
    "B": parse_bytes,
    "s": parse_duration,
    "B/s": parse_bandwidth,
}


def _seed_in_base(seed_value: float, seed_unit: str, unit: str) -> float:
    """The seed's printed figure in our base unit, reading its unit text literally."""
    if seed_unit in ("days", "day"):
        return seed_value * SECONDS_PER_DAY
    parse = _TO_BASE.get(unit)
    if parse is None:
        return seed_value * {"M USD": 1e6, "USD": 1.0}.get(seed_unit, 1.0)
    return parse(f"{seed_value!r}{seed_unit}")


def _example(
    id_: str,
    quantity: str,
    value: float,
    unit: str,
    display: str,
    seed_value: float | None,
    seed_unit: str | None,
    *,
    rel_tol: float,
    note: str = "",
    mismatch_note: str = "",
) -> SeedExample:
    agrees = None
    if seed_value is not None and seed_unit is not None:
        seed_base = _seed_in_base(seed_value, seed_unit, unit)
        agrees = abs(value - seed_base) <= rel_tol * abs(seed_base)
        if not agrees and mismatch_note:
            note = mismatch_note
    return SeedExample(
        id_,
        SEED_FILES[id_[:3]],
        quantity,
        value,
        unit,
        display,
        seed_value,
        seed_unit,
        agrees,
        note,
    )


def seed_000() -> list[SeedExample]:
    """Seed 000: Llama3-120B inference, L=140, H=8192, TP4, S_in=256, S_out=4096, U=100."""
    model = get_model("seed-llama3-120b")
    layers, hidden, tp, s_in, s_out, users = model.num_layers, model.hidden_size, 4, 256, 4096, 100
    per_ar = seed_allreduce_bytes(hidden=hidden, tp=tp)
    n_ar = seed_allreduces_per_request(layers=layers, prompt_tokens=s_in, output_tokens=s_out)
    activations = users * n_ar * per_ar
    kv_user = model.naive_kv_bytes_per_token("fp16") * s_in
    total = activations + users * kv_user
    port = parse_bandwidth("800G")
    kv_time = transfer_time(kv_user, port)
    budget = (1 - 0.9) / 100.0
    gqa = replace(model, attention="gqa", num_kv_heads=8)
    gqa_kv = gqa.kv_bytes_per_token("fp16") / model.naive_kv_bytes_per_token("fp16")
    return [
        _example(
            "000-activation-traffic",
            "TP all-reduce activation bytes, 100 users",
            activations,
            "B",
            f"{format_bytes(activations)} ({format_bytes(activations, binary=True)})",
            None,
            None,
            rel_tol=0,
            note=f"the seed prints no separate figure (formula images missing); {n_ar:,} "
            f"all-reduces per user x {per_ar:,.0f} B (2 H G(G-1): every GPU sends "
            "its vector to every other) reproduces its total",
        ),
        _example(
            "000-kv-bytes-per-user",
            "KV cache per user (2 L H x 2 B x S_in)",
            kv_user,
            "B",
            f"{format_bytes(kv_user)} ({format_bytes(kv_user, binary=True)})",
            1.17,
            "GB",
            rel_tol=0.005,
            note=f"assumes full multi-head KV; with Llama 3's 8 KV heads (GQA) it is "
            f"{gqa_kv:.3f}x this",
        ),
        _example(
            "000-total-traffic",
            "total inference traffic, 100 users",
            total,
            "B",
            f"{format_bytes(total)} = {format_bytes(total, binary=True)}",
            21.896,
            "TB",
            rel_tol=0.0005,
            mismatch_note="the seed's 21.896 'TB' is 21.896 TiB (binary); in decimal TB "
            f"it is {total / 1e12:.3f} TB",
        ),
        _example(
            "000-kv-transfer-time-800g",
            "KV of one user over one 800 Gb/s port",
            kv_time,
            "s",
            format_duration(kv_time),
            11.7,
            "ms",
            rel_tol=0.005,
            note="800G read as 800 Gb/s = 100 GB/s; target ~10 ms needs > 939 Gb/s",
        ),
        _example(
            "000-comm-budget-per-token",
            "communication budget per token (100 tok/s, 90 %)",
            budget,
            "s",
            format_duration(budget),
            1.0,
            "ms",
            rel_tol=1e-9,
            note="(1 - 0.9) / 100 tokens/s; the seed states it as '< 1 ms per token'",
        ),
    ]


def seed_001() -> list[SeedExample]:
    """Seed 001: DeepSeek-R1 (~670 GB) does not fit... it does fit 8 x H20 (768 GB)."""
    r1 = get_model("deepseek-v3")  # R1 shares V3's architecture
    weights = r1.num_params * dtype_bytes("fp8")
    h20 = parse_bytes("96GB") * 8
    return [
        _example(
            "001-deepseek-r1-weights",
            "DeepSeek-R1 weights in FP8",
            weights,
            "B",
            format_bytes(weights),
            670,
            "GB",
            rel_tol=0.01,
            note="671e9 parameters (V3 architecture, without the MTP module) x 1 B",
        ),
        _example(
            "001-8x-h20-memory",
            "HBM of 8 x H20",
            h20,
            "B",
            format_bytes(h20),
            768,
            "GB",
            rel_tol=1e-9,
            note="fits the FP8 weights with ~97 GB left for KV cache",
        ),
    ]


def seed_002() -> list[SeedExample]:
    """Seed 002: Llama3-70B on C4 (P=70e9, L=80, H=8192, T=156e9, 364.6e6 samples, batch 2048)."""
    p, layers, hidden, tokens, g = 70e9, 80, 8192, 156e9, 8
    n = int(364.6e6 // 2048)
    pb = 1e15
    dp = seed_training_epoch(
        minibatches=n, params=p, layers=layers, tokens=tokens, hidden=hidden, tp=1, pp=1, dp=g
    )
    tp = seed_training_epoch(
        minibatches=n, params=p, layers=layers, tokens=tokens, hidden=hidden, tp=g, pp=1, dp=1
    )
    pp = seed_training_epoch(
        minibatches=n, params=p, layers=layers, tokens=tokens, hidden=hidden, tp=1, pp=g, dp=1
    )
    fsdp_bwd, fsdp_fwd = seed_fsdp_epoch(minibatches=n, params=p, gpus=g)
    d3 = seed_training_epoch(
        minibatches=n, params=p, layers=layers, tokens=tokens, hidden=hidden, tp=8, pp=8, dp=16
    )
    switch = parse_bandwidth("51.2T")  # 51.2 Tb/s = 6.4e12 B/s
    days = transfer_time(d3.total, switch) / SECONDS_PER_DAY
    days_bytes = transfer_time(d3.total, 51.2e12) / SECONDS_PER_DAY
    switches = devices_for_deadline(100 * d3.total, 100 * SECONDS_PER_DAY, switch)
    slip = (
        "the seed's figure is the formula's divided by 1.048576 (= 2^20 / 10^6): a "
        "decimal/binary unit slip; the formula gives {:.0f} PB"
    )
    bits = (
        "the seed reads 51.2T as bytes/s; a 51.2 Tb/s switch moves 6.4 TB/s, 8x less "
        "({} at bytes/s)"
    )
    sample_ports = devices_for_deadline(parse_bytes("100GB"), 1e-3, parse_bandwidth("800G"))

    def pb_example(
        id_: str, quantity: str, value: float, seed: float, mismatch: str = ""
    ) -> SeedExample:
        return _example(
            id_,
            quantity,
            value,
            "B",
            f"{value / pb:.1f} PB",
            seed,
            "PB",
            rel_tol=0.005,
            mismatch_note=mismatch,
        )

    return [
        _example(
            "002-minibatches-per-epoch",
            "mini-batches per epoch N = samples / batch",
            n,
            "1",
            f"{n:,}",
            178000,
            "1",
            rel_tol=0.001,
            note="364.6e6 / 2048 = 178,027.3, whole batches only; the seed says ~178,000",
        ),
        pb_example("002-dp-epoch-backward", "DP (G=8) backward bytes per epoch", dp.backward, 1396),
        pb_example("002-fsdp-epoch-backward", "FSDP (G=8) backward bytes per epoch", fsdp_bwd, 175),
        pb_example("002-fsdp-epoch-forward", "FSDP (G=8) forward bytes per epoch", fsdp_fwd, 175),
        pb_example(
            "002-tp-epoch-backward",
            "TP (G=8) backward bytes per epoch",
            tp.backward,
            26622,
            slip.format(tp.backward / pb),
        ),
        pb_example(
            "002-tp-epoch-forward",
            "TP (G=8) forward bytes per epoch",
            tp.forward,
            21840,
            slip.format(tp.forward / pb),
        ),
        pb_example("002-pp-epoch-backward", "PP (G=8) backward bytes per epoch", pp.backward, 17.9),
        pb_example("002-pp-epoch-forward", "PP (G=8) forward bytes per epoch", pp.forward, 17.9),
        _example(
            "002-3d-epoch-total",
            "TP8 x PP8 x DP16 bytes per epoch",
            d3.total,
            "B",
            f"{d3.backward / 1e18:.2f} EB backward + {d3.forward / 1e18:.2f} EB forward = "
            f"{d3.total / 1e18:.2f} EB",
            85,
            "EB",
            rel_tol=0.01,
            note="the seed says 'about 85 EB'",
        ),
        _example(
            "002-3d-epoch-switch-days",
            "one epoch through one 51.2T switch",
            days * SECONDS_PER_DAY,
            "s",
            f"{days:.1f} days",
            20,
            "days",
            rel_tol=0.05,
            mismatch_note=bits.format(f"{days_bytes:.1f} days"),
        ),
        _example(
            "002-3d-switches-100-epochs-100-days",
            "51.2T switches for 100 epochs in 100 days",
            switches,
            "1",
            f"{switches:.1f} (>= {whole_devices(switches)} whole switches)",
            20,
            "1",
            rel_tol=0.05,
            mismatch_note=bits.format(f"{switches / 8:.1f}, so 20 whole switches"),
        ),
        _example(
            "002-sample-step-800g-ports",
            "800G ports to move 100 GB in 1 ms",
            sample_ports,
            "1",
            f"{sample_ports:.0f}",
            1000,
            "1",
            rel_tol=1e-9,
            note="100 GB / 1 ms = 800 Tb/s; here the seed converts bits correctly",
        ),
    ]


def seed_004() -> list[SeedExample]:
    """Seed 004: 1024-GPU network cost (training 400G IB vs inference 100G Ethernet)."""
    train_parts = {"NICs": 8.0e6, "switches": 4.8e6, "optics": 2.0e6}
    infer_parts = {"NICs": 0.5e6, "switches": 1.2e6, "optics": 0.2e6}
    train, infer = sum(train_parts.values()), sum(infer_parts.values())
    gpu_bill_train, gpu_bill_infer = train / 0.49, infer / 0.06
    node_bw = 8 * parse_bandwidth("400G")
    per_gpu = 2 * parse_bandwidth("100G") / 8
    return [
        _example(
            "004-training-network-cost",
            "1024-GPU training network (NICs+switches+optics)",
            train,
            "USD",
            f"${train / 1e6:.1f}M",
            14.8,
            "M USD",
            rel_tol=1e-9,
            note=f"49 % of GPU cost implies a GPU bill of ${gpu_bill_train / 1e6:.1f}M "
            f"(${gpu_bill_train / 1024:,.0f}/GPU); '8 x 400G IB/GPU' means per 8-GPU "
            "server (1 NIC per GPU)",
        ),
        _example(
            "004-inference-network-cost",
            "1024-GPU inference network (NICs+switches+optics)",
            infer,
            "USD",
            f"${infer / 1e6:.1f}M",
            1.9,
            "M USD",
            rel_tol=1e-9,
            note=f"6 % of GPU cost implies ${gpu_bill_infer / 1e6:.1f}M, not the "
            f"${gpu_bill_train / 1e6:.1f}M the training share implies: the shares "
            "are rounded; '2 x 100G/GPU' means per 8-GPU server",
        ),
        _example(
            "004-training-to-inference-cost-ratio",
            "training / inference network cost",
            train / infer,
            "1",
            f"{train / infer:.2f}x",
            7.5,
            "1",
            rel_tol=0.07,
            note="the seed says 7-8x",
        ),
        _example(
            "004-dgx-h100-scaleout-bandwidth",
            "DGX H100 scale-out bandwidth (8 x 400G)",
            node_bw,
            "B/s",
            format_bandwidth(node_bw),
            3.2,
            "Tb/s",
            rel_tol=1e-9,
            note=f"= {format_bandwidth(node_bw, bits=False)}; NVLink inside the node is "
            "900 GB/s bidirectional per GPU (450 GB/s each way)",
        ),
        _example(
            "004-inference-bandwidth-per-gpu",
            "inference server 2 x 100G over 8 GPUs",
            per_gpu,
            "B/s",
            format_bandwidth(per_gpu),
            25,
            "Gb/s",
            rel_tol=1e-9,
        ),
    ]


def all_examples() -> list[SeedExample]:
    """Every worked example of the seeds, in seed order."""
    return seed_000() + seed_001() + seed_002() + seed_004()
