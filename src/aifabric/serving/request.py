"""One inference request's life: arrival, cache reuse, prefill, decode, finish."""

from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass(slots=True, eq=False)
class Request:
    """Mutable state of one request; times in simulation seconds."""

    id: int
    arrival: float
    prompt: int  # prompt tokens
    output: int  # tokens to generate (the first comes out of prefill)
    tier: int
    priority: int
    blocks: list[int] | None = None  # prefix-block hash ids (Mooncake style)
    session: int = -1
    turn: int = 0
    # cache reuse (tokens)
    cached: int = 0
    hit_local: int = 0
    hit_dram: int = 0
    hit_ssd: int = 0
    # progress
    prefill_len: int = 0  # tokens to (re)compute KV for: prompt, or prompt + generated
    prefilled: int = 0  # chunked prefill progress
    held: int = 0  # KV tokens reserved for it on its current instance
    generated: int = 0
    preemptions: int = 0
    est_prefill: float = 0.0
    enqueued: float = 0.0
    waited: float = 0.0  # s spent in prefill queues
    instance: int = -1
    decode_instance: int = -1
    group: int = -2  # admission: the decode stage it was admitted to (-2: none yet)
    inbound: int = 0  # admission: KV tokens counted for it while not yet decoding
    # timeline
    first_token: float = math.nan
    last_token: float = math.nan
    max_gap: float = 0.0
    finish: float = math.nan
    kv_ready: float = math.nan  # PD: KV arrived at the decode instance

    def __post_init__(self) -> None:
        self.prefill_len = self.prompt
