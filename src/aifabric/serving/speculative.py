"""Speculative decoding as a decode-iteration timing (``compute.speculative``).

A draft model proposes k tokens per sequence (k draft decode steps); the target model then
verifies the k + 1 positions of every sequence in one iteration and keeps the accepted
prefix plus one token of its own. With each draft token accepted independently with
probability alpha, the expected tokens a sequence gains per verification step is

    E = (1 - alpha^(k+1)) / (1 - alpha)          (E = k + 1 at alpha = 1)

(Leviathan, Kalman & Matias, "Fast Inference from Transformers via Speculative Decoding",
ICML 2023, eq. 1 / Theorem 3.8). One step costs

    T = k x t_draft(b, C) + t_target(decode_batch = (k + 1) b, decode_context = C)

for a batch of b sequences holding C tokens of KV: the verification is one memory-bound
decode iteration reading the weights and each sequence's KV once, carrying (k + 1) b
tokens, timed by the instance's own ``iteration_time`` (so any timing model works). The
draft step is ``draft_cost`` x the target's one-token decode step, or a catalog model's
decode step on the same GPUs.

Acceptance is modelled as its expectation: no per-token draws. The simulator still moves
every sequence one token per (virtual) step; a virtual step lasts T / E, so the time between
emitted tokens (TBT) is T / E and a verification step emits E tokens per sequence on
average. The roofline's per-sequence overhead is charged per sequence, not per verified
token. Blind spots: the verification's attention FLOPs count each sequence's context once
(not k + 1 times; the expert-parallel timing, serving.moe, counts them per query), which
matters only when the iteration is compute bound; mixed
prefill + decode iterations (chunked prefill) are not speculated; a draft model's KV cache
is not transferred between PD pools (its weights and KV do shrink the target's KV room).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from aifabric.serving.compute import IterationTiming
from aifabric.spec.gpu import GpuSpec


def expected_tokens(draft_tokens: int, acceptance_rate: float) -> float:
    """E = (1 - alpha^(k+1)) / (1 - alpha), the mean tokens per verification step."""
    k, a = draft_tokens, acceptance_rate
    if a >= 1.0:
        return float(k + 1)
    return (1.0 - a ** (k + 1)) / (1.0 - a)


def _counts_queries(base: object) -> bool:
    """Whether ``base.decode_step_times`` takes ``queries_per_sequence`` (EpTiming does)."""
    from aifabric.serving.moe import EpTiming

    return isinstance(base, EpTiming)


@dataclass(frozen=True, slots=True, kw_only=True)
class SpeculativeTiming:
    """An IterationTiming whose decode steps are speculative (see the module docstring).

    ``draft``: the draft model's timing (None: ``draft_cost`` x the target's decode step).
    Everything but ``decode_step_times`` and ``kv_tokens`` is the target's.
    """

    base: IterationTiming
    draft_tokens: int
    acceptance_rate: float
    draft_cost: float = 0.0
    draft: IterationTiming | None = None

    @property
    def tokens_per_step(self) -> float:
        return expected_tokens(self.draft_tokens, self.acceptance_rate)

    # ----- delegated ----------------------------------------------------------------------
    @property
    def name(self) -> str:
        """The target's timing model, with speculative decode steps on top."""
        return f"{self.base.name}, speculative decode"

    @property
    def tp(self) -> int:
        return self.base.tp

    @property
    def gpu(self) -> GpuSpec:
        return self.base.gpu

    @property
    def weight_bytes(self) -> float:
        return self.base.weight_bytes

    @property
    def kv_bytes_per_token(self) -> float:
        return self.base.kv_bytes_per_token

    def tp_allreduce_bytes(self, tokens: float) -> float:
        return self.base.tp_allreduce_bytes(tokens)

    def ep_all_to_all_bytes(self, tokens: float) -> float:
        """The target's EP dispatch + combine bytes for ``tokens`` processed tokens (0 for a
        timing without EP). Counts each emitted token once: the verification's extra
        positions ((k + 1) / E per emitted token) and the draft's layers are not added."""
        bytes_of = getattr(self.base, "ep_all_to_all_bytes", None)
        return 0.0 if bytes_of is None else float(bytes_of(tokens))

    def kv_tokens(self, memory_utilization: float) -> float:
        """The target's KV tokens, less the draft model's weights and its KV per token."""
        if self.draft is None:
            return self.base.kv_tokens(memory_utilization)
        kv = self.base.kv_bytes_per_token
        room = self.base.kv_tokens(memory_utilization) * kv - self.draft.weight_bytes
        return room / (kv + self.draft.kv_bytes_per_token)

    def prefill_flops(self, prompt_tokens: float, cached_tokens: float = 0.0) -> float:
        return self.base.prefill_flops(prompt_tokens, cached_tokens)

    def prefill_time(self, prompt_tokens: float, cached_tokens: float = 0.0) -> float:
        return self.base.prefill_time(prompt_tokens, cached_tokens)

    def iteration_time(self, *, prefill_flops: float = 0.0, prefill_tokens: float = 0.0,
                       decode_batch: int = 0, decode_context: float = 0.0) -> float:  # fmt: skip
        return self.base.iteration_time(
            prefill_flops=prefill_flops, prefill_tokens=prefill_tokens,
            decode_batch=decode_batch, decode_context=decode_context,
        )  # fmt: skip

    # ----- speculative decode -------------------------------------------------------------
    def step_times(self, batch: int, context_tokens: float, steps: int) -> np.ndarray:
        """Times T of ``steps`` verification steps whose contexts are C, C + b, C + 2b, ...

        Vectorised: the target's decode_step_times with batch (k + 1) b advances the context
        by (k + 1) b a step, so the k + 1 residues r (contexts C + r b + (k + 1) b j) are k + 1
        calls interleaved back into order.
        """
        if batch <= 0 or steps <= 0:
            return np.zeros(max(steps, 0))
        k = self.draft_tokens
        width = k + 1
        rows = -(-steps // width)
        verify = np.empty((rows, width))
        # A base that can count attention per query (serving.moe.EpTiming) is told each
        # sequence carries k + 1 queries: its attention FLOPs are paid per query.
        queries = {"queries_per_sequence": width} if _counts_queries(self.base) else {}
        for r in range(width):
            verify[:, r] = self.base.decode_step_times(
                width * batch, context_tokens + r * batch, rows, **queries
            )
        # The verification carries (k + 1) b tokens but only b sequences: the roofline's
        # per-sequence overhead (sampling, bookkeeping) is charged once per sequence, not per
        # verified token. (A measured profile's per-sequence slope is not split this way:
        # there the verification is timed as (k + 1) b one-token sequences, an upper bound.)
        per_seq = float(getattr(self.base, "per_sequence_overhead", 0.0))
        target = verify.reshape(-1)[:steps] - k * batch * per_seq
        if self.draft is not None:
            draft = self.draft.decode_step_times(batch, context_tokens, steps)
        else:
            draft = self.draft_cost * self.base.decode_step_times(batch, context_tokens, steps)
        out: np.ndarray = k * draft + target
        return out

    def decode_step_times(self, batch: int, context_tokens: float, steps: int) -> np.ndarray:
        """Per emitted token: a verification step's time over E (the expected tokens)."""
        out: np.ndarray = self.step_times(batch, context_tokens, steps) / self.tokens_per_step
        return out

    def decode_step_list(self, batch: int, context_tokens: float, steps: int) -> list[float]:
        """``decode_step_times`` as a list of floats."""
        out: list[float] = self.decode_step_times(batch, context_tokens, steps).tolist()
        return out
