"""What ``simulate_step`` needs built: the kernel model and the network the step runs on."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from aifabric.errors import ConfigError
from aifabric.spec.jobs import TrainingJob
from aifabric.training.comm import (
    AnalyticNetwork,
    CommItem,
    analytic_network,
    step_items,
    time_analytic,
    time_flow,
)
from aifabric.training.kernels import KernelModel


def kernel_model(job: TrainingJob, opts: Any) -> KernelModel:
    from aifabric.catalog import get_compute_calibration

    cal = opts.calibration or get_compute_calibration(job.gpu.name)
    return KernelModel(job.gpu, cal, job.compute_dtype)


@dataclass(slots=True)
class StepNetwork:
    """The planned fabric as the step sees it: analytic rates, or the flow model."""

    kind: str
    spec: Any
    info: dict[str, Any]
    analytic: AnalyticNetwork
    flow: Any = None  # netsim NetworkModel
    topo: Any = None  # the planned Topology (its bill of materials prices the step)
    routing: str = "ecmp"
    seed: int = 0
    failed_links: int = 0
    degraded_links: int = 0

    def timed_items(self, job: TrainingJob) -> list[CommItem]:
        items = step_items(job)
        if self.kind == "flow":
            time_flow(job, items, self.flow, routing=self.routing, seed=self.seed,
                      nics_per_node=self.spec.nics_per_node)  # fmt: skip
        else:
            time_analytic(job, items, self.analytic)
        return items

    def layers(self) -> dict[str, np.ndarray]:
        """Fabric link selectors by tier name (flow model only)."""
        from aifabric.netsim.collectives import LAYERS

        net = self.flow
        return {name: (net.layer == code) & (net.capacity > 0) for code, name in enumerate(LAYERS)}


def fabric_options(job: TrainingJob, fabric: dict[str, Any] | None) -> dict[str, Any]:
    opts = dict(fabric or {})
    if "preset" not in opts:
        per_node = int(opts.get("gpus_per_node", 8))
        opts.setdefault("gpus", -(-job.plan.world_size // per_node) * per_node)
        opts.setdefault("gpu", job.gpu.name)
    return opts


def build_network(job: TrainingJob, opts: Any) -> StepNetwork:
    """The fabric of ``opts.fabric`` (default: a rail-optimized one of the job's GPUs)."""
    from aifabric.fabric.plan import fabric_spec

    if opts.routing not in ("ecmp", "ecmp_qp", "spray", "adaptive"):
        raise ConfigError(f"routing(={opts.routing!r}) must be ecmp, ecmp_qp, spray or adaptive")
    spec, gpu_name, info = fabric_spec(fabric_options(job, opts.fabric))
    if gpu_name != job.gpu.name:
        raise ConfigError(f"the fabric is built for {gpu_name} but the job runs on {job.gpu.name}; "
                          f"give --gpu {gpu_name} or a matching fabric")  # fmt: skip
    if spec.num_gpus < job.plan.world_size:
        raise ConfigError(f"the fabric has {spec.num_gpus:,} GPUs but the job needs "
                          f"tp*cp*dp*pp = {job.plan.world_size:,}; plan a larger fabric")  # fmt: skip
    if spec.scaleup_domain_size != job.domain_size:
        raise ConfigError(f"scaleup_domain_size: the fabric's is {spec.scaleup_domain_size}, the "
                          f"job's {job.domain_size}; make them agree")  # fmt: skip
    from aifabric.fabric.plan import build

    analytic = analytic_network(job, spec)
    net = StepNetwork(opts.network, spec, info, analytic, routing=opts.routing, seed=opts.seed,
                      topo=build(spec, info.get("design")))  # fmt: skip
    if opts.network == "analytic":
        if opts.fail or opts.degrade:
            raise ConfigError("--fail / --degrade need --network flow (links are simulated there)")
        return net
    net.flow = _flow_model(job, spec, info, opts, net)
    return net


def _flow_model(job: TrainingJob, spec: Any, info: dict[str, Any], opts: Any,
                net: StepNetwork) -> Any:  # fmt: skip
    from aifabric.catalog import get_switch
    from aifabric.fabric.routing import Router, apply_impairments, parse_impairment
    from aifabric.guards import MAX_NETSIM_SPRAY_ENTRIES
    from aifabric.netsim.collectives import NetworkModel

    topo = net.topo
    items = [parse_impairment(x) for x in opts.fail]
    items += [parse_impairment(x, degrade=True) for x in opts.degrade]
    state = apply_impairments(topo, items, opts.seed) if items else None
    if state is not None:
        net.failed_links, net.degraded_links = state.failed_links, state.degraded_links
    try:
        latency = get_switch(spec.switch_model).latency or 0.0
    except ConfigError:
        latency = 0.0
    return NetworkModel(Router(topo, state), topo.num_gpus, spec.scaleup_domain_size,
                        job.gpu.scaleup_bandwidth_per_direction, latency,
                        float(MAX_NETSIM_SPRAY_ENTRIES))  # fmt: skip
