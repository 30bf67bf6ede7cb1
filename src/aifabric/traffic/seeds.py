"""The seeds' own traffic formulas, reproduced exactly (``--accounting seed``).

Seed 002 (training, per epoch; P params, N mini-batches per epoch, T dataset tokens, L
layers, H hidden size, b = 2 bytes for BF16):

    backward = b N P G_dp [2 L (G_tp - 1) / G_pp + (G_dp - 1)] + b T H (G_pp - 1)
    forward  = b T H [2 L G_tp (G_tp - 1) + (G_pp - 1)]

whose single-dimension cases are the seed's table: DP backward 2NPG(G-1); TP backward
4NPL(G-1), forward 4LTH(G-1)G; PP 2TH(G-1) each way. FSDP (a separate row of the table):
2NP(G-1) backward and forward. The text prints the 3D forward as "4xTxHxLxPxGtpx(Gtp-1) +
2xTxHx(Gpp-1)" with a stray P, then simplifies it to the form above, which its 85 EB uses.

Seed 000 (inference): every all-reduce is accounted as every GPU sending its whole
H-vector to each of the G_tp - 1 others: b H G_tp (G_tp - 1) bytes; 2 all-reduces per
layer per token, prefill and decode; KV per request 2 L H b S_in (no GQA).

These are deliberately naive ("direct" all-to-all exchange); aifabric's default
algorithmic accounting uses real collective algorithms (traffic.collectives).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class SeedTrainingEpoch:
    """Seed 002's per-epoch bytes, split by parallel dimension and phase."""

    dp_backward: float
    tp_backward: float
    pp_backward: float
    tp_forward: float
    pp_forward: float

    @property
    def backward(self) -> float:
        return self.dp_backward + self.tp_backward + self.pp_backward

    @property
    def forward(self) -> float:
        return self.tp_forward + self.pp_forward

    @property
    def total(self) -> float:
        return self.backward + self.forward


def seed_training_epoch(
    *,
    minibatches: float,
    params: float,
    layers: int,
    tokens: float,
    hidden: int,
    tp: int,
    pp: int,
    dp: int,
    param_bytes: float = 2.0,
    activation_bytes: float = 2.0,
) -> SeedTrainingEpoch:
    """Seed 002's 3D-parallel traffic per epoch, in bytes, by component."""
    n, p, t, h, b, a = minibatches, params, tokens, hidden, param_bytes, activation_bytes
    return SeedTrainingEpoch(
        dp_backward=b * n * p * dp * (dp - 1),
        tp_backward=b * n * p * dp * 2 * layers * (tp - 1) / pp,
        pp_backward=a * t * h * (pp - 1),
        tp_forward=a * t * h * 2 * layers * tp * (tp - 1),
        pp_forward=a * t * h * (pp - 1),
    )


def seed_fsdp_epoch(
    *, minibatches: float, params: float, gpus: int, param_bytes: float = 2.0
) -> tuple[float, float]:
    """Seed 002's FSDP row: (backward, forward) bytes per epoch, each b N P (G - 1)."""
    each = param_bytes * minibatches * params * (gpus - 1)
    return each, each


def seed_allreduce_bytes(*, hidden: int, tp: int, activation_bytes: float = 2.0) -> float:
    """Seed 000's bytes per all-reduce of one token's activations: b H G_tp (G_tp - 1)."""
    return activation_bytes * hidden * tp * (tp - 1)


def seed_allreduces_per_request(*, layers: int, prompt_tokens: int, output_tokens: int) -> int:
    """Seed 000: 2 all-reduces per layer per token, for the prompt and every output token."""
    return 2 * layers * (prompt_tokens + output_tokens)
