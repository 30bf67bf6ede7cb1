"""Helpers every training-traffic module shares: a dimension's collective rows over its
real groups, where those groups sit, and the tokens one rank handles per micro-batch."""

from __future__ import annotations

from dataclasses import replace

from aifabric.spec.jobs import TrainingJob
from aifabric.traffic.rows import DomainLayout, TrafficRow, collective_rows

FULL_RECOMPUTE = "full recompute"


def group_rows(
    job: TrainingJob,
    dimension: str,
    *,
    phase: str,
    operation: str,
    calls: float,
    size: float,
    group: str | None = None,
    label: str | None = None,
    note: str = "",
) -> list[TrafficRow]:
    """Rows for ``calls`` calls of ``operation`` by every group of ``group`` (default: the
    dimension), labeled ``label`` and ``note``, with the job's algorithm rule."""
    plan = job.plan
    group = group or dimension
    n = plan.group_size(group)
    rows = collective_rows(
        dimension=label or dimension,
        phase=phase,
        operation=operation,
        group_size=n,
        num_groups=plan.world_size // n,
        calls=calls,
        size=size,
        layout=layout(job, group),
        world_size=plan.world_size,
        algorithm=job.algorithm,
        in_network_reduction=job.in_network_reduction,
        gpu=job.gpu,
    )
    named = group if group != (label or dimension) else ""
    return [replace(r, note=note, group=named) for r in rows] if note or named else rows


def layout(job: TrainingJob, group: str) -> DomainLayout:
    """Where the members of every group of a dimension sit, by scale-up domain."""
    return DomainLayout.of_ranks(job.plan.group_ranks(group), job.domain_size)


def tokens_per_microbatch(job: TrainingJob) -> float:
    """Tokens one rank processes per micro-batch (the sequence is split by cp)."""
    return job.plan.micro_batch_size * job.seq_len / job.plan.cp
