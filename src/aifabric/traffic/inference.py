"""Inference traffic per request and for U concurrent users (seed 000, made algorithm-aware).

Two sources (seed 000): tensor-parallel all-reduces of activations inside each instance (2
per layer per token, prefill and decode alike) and, under prefill/decode disaggregation,
one KV-cache shipment prefill -> decode per request. MoE models served with expert
parallelism add a dispatch + combine all-to-all per MoE layer per token.

Requirements from targets (seed 000 sec. 03): a per-user speed of tokens_per_s gives a
token time of 1 / tokens_per_s; with a parallel efficiency e, communication may take
(1 - e) of it (100 tokens/s at 90 % -> 1 ms). The KV of a request must arrive within
kv_deadline (~10 ms).
"""

from __future__ import annotations

import math
from typing import Any

from aifabric.spec.jobs import InferenceJob
from aifabric.spec.model import dtype_bytes
from aifabric.traffic.collectives import collective
from aifabric.traffic.network import whole_devices
from aifabric.traffic.rows import algorithm_rule, choose_algorithm
from aifabric.traffic.seeds import seed_allreduce_bytes


def allreduce_bytes_per_token(job: InferenceJob) -> tuple[float, float]:
    """(bytes on the wire summed over the TP group, bytes one TP rank sends) per token.

    Algorithmic: 2 all-reduces per layer of one token's hidden state, with the algorithm
    NCCL would run (``tp_algorithm``: a ring inside one domain). Seed: every rank
    sends the vector to every other (b H G (G-1) per all-reduce).
    """
    model, tp = job.model, job.tp
    if tp == 1:
        return 0.0, 0.0
    per_layer = 2 * model.num_layers
    if job.accounting == "seed":
        total = seed_allreduce_bytes(
            hidden=model.hidden_size, tp=tp, activation_bytes=dtype_bytes(job.activation_dtype)
        )
        return per_layer * total, per_layer * total / tp
    cost = collective(
        "all_reduce", tp_algorithm(job), num_ranks=tp, num_domains=_tp_domains(job),
        size=model.hidden_bytes_per_token(job.activation_dtype),
    )  # fmt: skip
    return per_layer * cost.total_bytes, per_layer * cost.bytes_per_rank


def _tp_domains(job: InferenceJob) -> int:
    """Scale-up domains one instance's TP group spans (consecutive GPUs)."""
    return math.ceil(job.tp / job.domain_size)


def tp_algorithm(job: InferenceJob) -> str:
    """The TP all-reduce's algorithm for one token's hidden state (traffic.rows' rule)."""
    return choose_algorithm(
        "all_reduce", job.algorithm, num_ranks=job.tp, num_domains=_tp_domains(job),
        size=job.model.hidden_bytes_per_token(job.activation_dtype),
        in_network_reduction=job.in_network_reduction, gpu=job.gpu,
    )  # fmt: skip


def alltoall_bytes_per_token(job: InferenceJob) -> float:
    """Expert-parallel dispatch + combine bytes per token over all MoE layers (uniform routing)."""
    model = job.model
    if job.ep == 1 or not model.is_moe:
        return 0.0
    size = model.experts_per_token * model.hidden_bytes_per_token(job.activation_dtype)
    cost = collective("all_to_all", "direct", num_ranks=job.ep, size=size)
    return 2 * model.num_moe_layers * cost.bytes_per_rank


def kv_bytes_per_token(job: InferenceJob) -> float:
    """KV bytes per token: GQA/MLA aware (algorithmic) or the seed's 2 L H b."""
    if job.accounting == "seed":
        return job.model.naive_kv_bytes_per_token(job.kv_dtype)
    return job.model.kv_bytes_per_token(job.kv_dtype)


def inference_traffic(job: InferenceJob) -> dict[str, Any]:
    """Per-request and aggregate traffic, time budgets and required bandwidths (base units)."""
    kv_token = kv_bytes_per_token(job)
    kv_request = kv_token * job.prompt_tokens if job.pd else 0.0
    ar_total, ar_rank = allreduce_bytes_per_token(job)
    a2a = alltoall_bytes_per_token(job)
    tokens = job.prompt_tokens + job.output_tokens
    activation_request = tokens * (ar_total + a2a)
    per_request = activation_request + kv_request
    total = per_request * job.users

    token_time = 1.0 / job.tokens_per_s
    comm_budget = (1.0 - job.parallel_efficiency) * token_time
    nic = job.nic_speed or job.gpu.default_nic_speed
    kv_rate = kv_request / job.kv_deadline
    step_bytes = job.users * (ar_total + a2a)
    return {
        "model": job.model.name,
        "gpu": job.gpu.name,
        "accounting": job.accounting,
        "algorithm_rule": algorithm_rule(job.algorithm),
        "in_network_reduction": job.in_network_reduction,
        "tp_algorithm": tp_algorithm(job) if job.tp > 1 else None,
        "tp": job.tp,
        "ep": job.ep,
        "users": job.users,
        "prompt_tokens": job.prompt_tokens,
        "output_tokens": job.output_tokens,
        "pd": job.pd,
        "kv_dtype": job.kv_dtype,
        "kv_bytes_per_token": kv_token,
        "kv_bytes_per_request": kv_request,
        "allreduce_bytes_per_token": ar_total,
        "allreduce_bytes_per_token_per_gpu": ar_rank,
        "alltoall_bytes_per_token": a2a,
        "activation_bytes_per_request": activation_request,
        "bytes_per_request": per_request,
        "total_bytes": total,
        "total_kv_bytes": kv_request * job.users,
        "total_activation_bytes": activation_request * job.users,
        "token_time_budget_s": token_time,
        "communication_budget_s": comm_budget,
        "kv_deadline_s": job.kv_deadline,
        "kv_transfer_time_one_nic_s": kv_request / nic,
        "nic_speed_bytes_per_s": nic,
        "kv_transfer_nics": whole_devices(kv_rate / nic) if kv_rate else 0,
        "required_bytes_per_s": {
            "kv_transfer": kv_rate,
            "allreduce_per_gpu_per_user": ar_rank / comm_budget,
            "aggregate_peak": step_bytes / comm_budget + job.users * kv_rate,
            # Each user has one request in flight for S_out / tokens_per_s seconds.
            "aggregate_sustained": job.users
            * per_request
            * job.tokens_per_s
            / max(job.output_tokens, 1),
        },
    }
