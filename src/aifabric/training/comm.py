"""The step's collectives, timed on the fabric: analytic alpha-beta or the flow simulator.

What a step sends comes from one place, ``traffic.training.staged_rows`` (the bytes, the
algorithm NCCL's tuning model picks, the calls per iteration and each pipeline stage's
share). The scale-up and scale-out rows of one collective are one call here, timed:

- ``analytic``: ``traffic.collectives.collective(...).time(nvlink, network)``, the
  collectives module's alpha-beta time per phase. The scale-up link is the GPU's NVLink
  rate per direction; the scale-out link the NIC rate divided by the planned fabric's
  oversubscription (leaf x spine: a conservative reading, every scale-out byte crossing
  the oversubscribed tiers). Per-step latencies are NCCL's Simple-protocol constants
  (``nccl_tuning``: 3.4 us over NVLink, 14 us over the network).
- ``flow``: every group of the dimension runs the collective at once on the planned fabric
  (``netsim``: routing, ECMP collisions, max-min fair sharing); the call takes the time of
  the slowest flow, and the per-link bytes go into the step's tier utilization. Pipeline
  sends run as one step of every stage boundary of every pipeline; the tied-embedding
  all-reduce pairs the first and last stage.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from aifabric.spec.jobs import TrainingJob
from aifabric.traffic.collectives import DOMAIN_AWARE, SCALE_OUT, SCALE_UP, Link, collective
from aifabric.traffic.nccl_tuning import NET_LATENCY_US, NVLINK_LATENCY_US, PROTOCOLS

NVLINK_STEP_LATENCY = NVLINK_LATENCY_US["ring"][PROTOCOLS.index("Simple")] * 1e-6  # s
NETWORK_STEP_LATENCY = NET_LATENCY_US["ring"][PROTOCOLS.index("Simple")] * 1e-6  # s
DIMENSION_GROUPS = {"dp": "dp_cp", "dp_expert": "edp"}
TIED_EMBEDDING = "tied embedding grads"
ONE_STAGE_NOTES = ("embedding (first stage)", "LM head (last stage)",
                   "cross-entropy, 3 x fp32/token", TIED_EMBEDDING)  # fmt: skip


@dataclass(slots=True)
class CommItem:
    """One collective of the step: ``calls`` per group per iteration (stage mean),
    ``share[s]`` the stage multiplier, ``time`` of one call (s)."""

    dimension: str
    phase: str
    collective: str
    algorithm: str
    note: str
    group: str
    group_size: int
    size: float  # bytes per call
    calls: float
    share: np.ndarray
    time: float = 0.0
    link_bytes: np.ndarray | None = field(default=None, repr=False)

    def per_stage(self) -> np.ndarray:
        """Seconds a rank of each stage spends in this collective per iteration.

        Layer-wise rows count calls per group as a stage mean that ``share`` scales; rows of
        chosen stages (embedding, head, pipeline sends, tied embedding) count the calls of
        each group that makes them, so those stages do ``calls`` and the others none.
        """
        if self.dimension == "pp" or self.note in ONE_STAGE_NOTES:
            return self.time * self.calls * (self.share > 0)
        return self.time * self.calls * self.share


def step_items(job: TrainingJob) -> list[CommItem]:
    """The step's collectives, scale-up and scale-out rows of one call merged."""
    from aifabric.traffic.training import staged_rows

    items: dict[tuple[Any, ...], CommItem] = {}
    for row, share in staged_rows(job):
        key = (row.dimension, row.phase, row.collective, row.note, row.group, row.buffer_bytes,
               row.calls, row.algorithm)  # fmt: skip
        if key in items:
            continue
        group = row.group or DIMENSION_GROUPS.get(row.dimension, row.dimension)
        items[key] = CommItem(row.dimension, row.phase, row.collective, row.algorithm, row.note,
                              group, row.group_size, row.buffer_bytes, row.calls,
                              np.asarray(share, float))  # fmt: skip
    return list(items.values())


def _ranks(job: TrainingJob, item: CommItem) -> np.ndarray:
    """(num_groups, n) global ranks of the groups doing the item."""
    plan = job.plan
    if item.note == TIED_EMBEDDING:
        out: np.ndarray = plan.group_ranks("pp")[:, [0, -1]]
        return out
    return np.asarray(plan.group_ranks(item.group), np.int64)


@dataclass(frozen=True, slots=True)
class AnalyticNetwork:
    """Per-GPU link rates of the planned fabric (bytes/s per direction)."""

    scale_up: float
    scale_out: float
    domain: int

    def time(self, job: TrainingJob, item: CommItem) -> float:
        """Alpha-beta time of one call (module docstring)."""
        n, size, op, algo = item.group_size, item.size, item.collective, item.algorithm
        up = Link(self.scale_up, NVLINK_STEP_LATENCY)
        out = Link(self.scale_out, NETWORK_STEP_LATENCY)
        ranks = _ranks(job, item)
        domains = ranks // self.domain
        k = int(max(len(np.unique(r)) for r in domains[: min(len(domains), 64)]))
        if op == "send_recv":
            if item.dimension == "pp" and ranks.shape[1] > 2:
                crosses = bool((domains[:, 1:] != domains[:, :-1]).any())
            else:
                crosses = k > 1
            link = out if crosses else up
            return link.latency + size / link.bandwidth
        if k == 1:
            return collective(op, algo, num_ranks=n, size=size, scope=SCALE_UP).time(up)
        if algo == "hierarchical":
            cost = collective(op, algo, num_ranks=n, size=size, ranks_per_domain=n // k)
            return cost.time(up, out)
        if algo in DOMAIN_AWARE:
            cost = collective(op, algo, num_ranks=n, size=size, num_domains=k, scope=SCALE_OUT)
            return cost.time(up, out)
        # A flat algorithm across domains moves every step at its slowest link's pace.
        return collective(op, algo, num_ranks=n, size=size, scope=SCALE_OUT).time(out)


def analytic_network(job: TrainingJob, spec: Any) -> AnalyticNetwork:
    """Per-GPU rates of a planned fabric: NVLink per direction; the NICs' share per GPU over
    the leaf x spine oversubscription (every scale-out byte assumed to cross them)."""
    nic = spec.nic_speed * spec.nics_per_node / spec.gpus_per_node
    oversub = max(1.0, float(spec.oversubscription)) * max(1.0, float(spec.spine_oversubscription))
    return AnalyticNetwork(job.gpu.scaleup_bandwidth_per_direction, nic / oversub,
                           spec.scaleup_domain_size)  # fmt: skip


def time_analytic(job: TrainingJob, items: list[CommItem], net: AnalyticNetwork) -> None:
    for item in items:
        item.time = net.time(job, item)


def flow_steps(job: TrainingJob, item: CommItem, domain: int, channels: int) -> list[Any]:
    """The netsim steps of every group of the item at once (merged step by step)."""
    from aifabric.netsim import collectives as nc

    ranks = _ranks(job, item)
    if item.collective == "send_recv" and item.dimension == "pp" and ranks.shape[1] > 2:
        src, dst = ranks[:, :-1].ravel(), ranks[:, 1:].ravel()
        return [nc.Step(src, dst, np.full(len(src), item.size))]
    per_group = []
    algo = item.algorithm
    for members in ranks:
        if item.collective in ("send_recv",) or (algo == "direct" and len(members) == 2):
            steps = [nc.Step(members[:1], members[1:], np.array([item.size]))]
            if item.collective != "send_recv":  # a pair all-reduces both ways
                steps = [nc.Step(members, members[::-1], np.full(2, item.size / 2), 2)]
        elif algo == "ring":
            steps = nc.ring_steps(item.collective, members, item.size, domain,
                                  _channels(members, domain, channels))  # fmt: skip
        elif algo == "tree":
            steps = nc.tree_steps(members, item.size, domain, _channels(members, domain, channels))
        elif algo == "hierarchical":
            steps = nc.hierarchical_steps(members, item.size, domain)
        elif algo == "halving_doubling":
            steps = nc.halving_doubling_steps(members, item.size)
        else:
            steps = nc.direct_steps(item.collective, members, item.size)
        per_group.append(steps)
    merged = []
    for parts in zip(*per_group, strict=True):
        keys = [p.key if p.key is not None else np.zeros(len(p.src), np.int64) for p in parts]
        merged.append(nc.Step(np.concatenate([p.src for p in parts]),
                              np.concatenate([p.dst for p in parts]),
                              np.concatenate([p.size for p in parts]), parts[0].repeat,
                              np.concatenate(keys), parts[0].hops))  # fmt: skip
    return merged


def _channels(members: np.ndarray, domain: int, nics: int) -> int:
    per_domain = len(np.unique(members // domain))
    return max(1, min(len(members) // per_domain, nics))


def time_flow(job: TrainingJob, items: list[CommItem], net: Any, *, routing: str, seed: int,
              nics_per_node: int) -> None:  # fmt: skip
    """Time each item on the flow simulator (identical calls simulated once)."""
    from aifabric.netsim.collectives import run_step

    cache: dict[tuple[Any, ...], tuple[float, np.ndarray]] = {}
    for item in items:
        key = (item.group, item.collective, item.algorithm, item.size, item.note == TIED_EMBEDDING)
        if key not in cache:
            total, link_bytes = 0.0, np.zeros(len(net.capacity))
            for step in flow_steps(job, item, net.domain, nics_per_node):
                res = run_step(net, step, routing, seed, 1)
                total += res.time * step.repeat
                link_bytes += res.link_bytes * step.repeat
            cache[key] = (total, link_bytes)
        item.time, item.link_bytes = cache[key]
