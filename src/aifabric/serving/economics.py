"""Utilisation that means capacity, and cost and energy per token, of a serving run.

Utilisation, per role (colocated / prefill / decode), from the work the instances counted
(serving.work): ``compute_utilization`` = FLOP / (dense peak FLOP/s x GPUs x simulated_s),
``hbm_bandwidth_utilization`` = HBM bytes / (HBM bandwidth x GPUs x simulated_s), next to
``busy_fraction`` (time an iteration was running). A memory-bound decode pool is busy
nearly all the time while its tensor cores idle; these say how much capacity is left.

Energy (J) over the simulated interval (``economics`` scenario keys, serving.config):

- GPU: P = TDP x (idle + (full - idle) x activity), activity = max(compute, HBM) use of
  each iteration at datasheet peak (serving.work), so an instance's energy is
  tp x TDP x (idle x T + (full - idle) x active_time). The linear idle-to-TDP form is the
  model of common LLM fleet simulators (e.g. vLLM semantic-router's fleet-sim "power
  model"); its fractions and the choice of activity are assumptions, not a calibration:
  measurements put a memory-bound H100 decode well below TDP (ML.ENERGY benchmark, as
  quoted there: ~300 W at batch 1, ~600 W at batch 128 for a 700 W part), so for decode
  this errs high. Host CPUs, memory and fans are not counted.
- Network (with a ``fabric:`` section): the plan's bill of materials' power (switches,
  NICs, transceivers at typical power with traffic; aifabric.fabric.bom), constant.

Cost (USD) = GPU capital (every GPU for the seconds its instance held it, at gpu_hour_usd:
the whole interval for fixed pools) + network capital (the fabric's BOM cost, likely prices, straight-line over
amortization_years) + energy (GPU + network energy x pue x energy_usd_per_kwh).
The KV store's memory servers are not priced.

Per SLO tier: every iteration's GPU-seconds (tp x its duration) are split among the
requests in it by tokens processed (a prefill chunk's tokens, one per decoding sequence);
each instance's cost and energy (idle time included) go to the tiers in proportion to its
GPU-seconds for them; the network's share and any instance that ran nothing go by the
tiers' share of all GPU-seconds. Tier figures therefore add up to the totals. Per-token
figures divide by the output tokens of completed requests (work of rejected, preempted and
unfinished requests is a cost of the tier without tokens to show for it).
"""

from __future__ import annotations

from typing import Any

import numpy as np

HOURS_PER_YEAR = 365.25 * 24
J_PER_KWH = 3.6e6


def gpu_hour_price(economics: Any, gpu: str) -> float:
    """USD per GPU-hour of capital: the scenario's, else capex over the amortization life.

    Raises:
        ConfigError: no price given and the parts catalog has none for ``gpu``.
    """
    from aifabric.errors import ConfigError

    if economics.gpu_hour_usd is not None:
        return float(economics.gpu_hour_usd)
    capex = economics.gpu_capex_usd
    if capex is None:
        from aifabric.fabric.bom import load_parts

        capex = load_parts().get("gpus", {}).get(gpu, {}).get("price", {}).get("likely")
        if capex is None:
            raise ConfigError(f"scenario key economics.gpu_capex_usd: the parts catalog has no "
                              f"price for gpu {gpu!r}; give economics.gpu_capex_usd or "
                              f"economics.gpu_hour_usd")  # fmt: skip
    return float(capex) / (float(economics.amortization_years) * HOURS_PER_YEAR)


def capital_cost(economics: Any, gpus: int, gpu: str, network_capex_usd: float,
                 duration_s: float) -> dict[str, Any]:  # fmt: skip
    """Capital charged to ``duration_s`` of ``gpus`` GPUs and a network bought for
    ``network_capex_usd``: GPU capital at :func:`gpu_hour_price`, network capital straight-line
    over ``economics.amortization_years``. Energy is not included.

    The one home of this arithmetic, used by ``simulate cluster`` (aifabric.cluster.report)
    and ``simulate train`` (aifabric.training.report). Worked case: 8 H100 (28,000 USD likely,
    parts.yaml) over 5 years = 28,000 / 43,830 h = 0.6388 USD per GPU-hour; for 3,600 s that
    is 8 x 0.6388 = 5.11 USD of GPUs.

    Raises:
        ConfigError: no GPU price (see :func:`gpu_hour_price`).
    """
    life = float(economics.amortization_years) * HOURS_PER_YEAR * 3600.0  # s
    rate = gpu_hour_price(economics, gpu)
    gpu_capital = gpus * duration_s / 3600.0 * rate
    net_capital = float(network_capex_usd) / life * duration_s
    return {
        "gpus": gpus,
        "gpu_hour_usd": rate,
        "gpu_capital_usd": gpu_capital,
        "network_capex_usd": float(network_capex_usd),
        "network_capital_usd": net_capital,
        "total_usd": gpu_capital + net_capital,
    }


def fabric_bom(cluster: Any) -> dict[str, Any] | None:
    """Cost and power of the scenario's planned fabric (None without a ``fabric:``, and on a
    shared cluster, whose network the cluster simulator prices once for all workloads)."""
    if cluster.fabric is None or cluster.scenario.fabric is None:
        return None
    from aifabric.fabric.bom import bill_of_materials
    from aifabric.fabric.plan import fabric_spec
    from aifabric.fabric.radix import tier_models
    from aifabric.serving.fabric import SERVE_KEYS

    opts = {k: v for k, v in cluster.scenario.fabric.items() if k not in SERVE_KEYS}
    spec, gpu, _ = fabric_spec(opts)
    return bill_of_materials(cluster.fabric.topo, nic_speed=spec.nic_speed,
                             switch_model=tier_models(spec), gpu=gpu)  # fmt: skip


def held_seconds(inst: Any, sim_time: float) -> float:
    """Seconds the instance held its GPUs: the whole run for a fixed pool; from creation
    to retirement (loading and draining included) in an elastic one (serving.autoscale)."""
    stop = inst.retired_at if inst.retired_at == inst.retired_at else sim_time
    return max(0.0, float(stop - inst.created_at))


def role_utilization(cluster: Any, sim_time: float) -> dict[str, dict[str, Any]]:
    """Per role: GPUs, busy fraction, compute and HBM-bandwidth utilisation, work done,
    each over the GPU-seconds the role's instances were held."""
    out: dict[str, dict[str, Any]] = {}
    acc: dict[str, dict[str, float]] = {}
    for inst in cluster.instances:
        a = acc.setdefault(inst.role, dict.fromkeys(
            ("held", "busy", "flop", "bytes", "active", "peak", "bw"), 0.0))  # fmt: skip
        held = held_seconds(inst, sim_time)
        a["held"] += inst.timing.tp * held
        a["busy"] += inst.timing.tp * inst.busy_time
        a["flop"] += inst.flop
        a["bytes"] += inst.hbm_bytes
        a["active"] += inst.timing.tp * inst.active_time
        a["peak"] += inst.work.peak * held
        a["bw"] += inst.work.bandwidth * held
    for role, a in acc.items():
        gs = a["held"] if a["held"] > 0 else np.inf  # GPU-seconds held
        out[role] = {
            # GPUs of the role: the mean held over the run (the count, for fixed pools)
            "gpus": round(a["held"] / sim_time) if sim_time > 0 else 0,
            "busy_fraction": a["busy"] / gs,
            "compute_utilization": a["flop"] / a["peak"] if a["peak"] > 0 else 0.0,
            "hbm_bandwidth_utilization": a["bytes"] / a["bw"] if a["bw"] > 0 else 0.0,
            "activity_fraction": a["active"] / gs,
            "flop": a["flop"],
            "hbm_bytes": a["bytes"],
        }
    return out


def economics(cluster: Any, sim_time: float, output_tokens: np.ndarray) -> dict[str, Any]:
    """Cost, energy and their per-token figures, overall and per SLO tier.

    ``output_tokens``: output tokens of the completed requests of each tier.
    """
    ec = cluster.scenario.economics
    tiers = [t.name for t in cluster.scenario.slo.tiers]
    per_kwh = ec.energy_usd_per_kwh * ec.pue / J_PER_KWH  # USD per J of IT energy
    rates: dict[str, float] = {}
    n = len(cluster.instances)
    cost = np.zeros(n)
    energy = np.zeros(n)
    gpu_s = np.zeros((n, len(tiers)))
    for i, inst in enumerate(cluster.instances):
        gpu = inst.timing.gpu
        rate = rates.get(gpu.name)
        if rate is None:  # the parts catalog is read once per GPU type, not per instance
            rate = rates[gpu.name] = gpu_hour_price(ec, gpu.name)
        tp = inst.timing.tp
        idle, full = ec.idle_power_fraction, ec.full_power_fraction
        held = held_seconds(inst, sim_time)
        energy[i] = tp * gpu.tdp * (idle * held + (full - idle) * inst.active_time)
        cost[i] = tp * held / 3600.0 * rate + energy[i] * per_kwh
        gpu_s[i] = inst.tier_gpu_seconds
    bom = fabric_bom(cluster)
    net_capex = float(bom["cost"]["total_usd"]) if bom is not None else 0.0
    net_power = float(bom["power"]["total_w"]) if bom is not None else 0.0
    net_energy = net_power * sim_time
    net_capital = net_capex / (ec.amortization_years * HOURS_PER_YEAR * 3600.0) * sim_time
    net_cost = net_capital + net_energy * per_kwh
    gpu_energy = float(energy.sum())
    gpu_capital = float(cost.sum()) - gpu_energy * per_kwh
    total_cost = float(cost.sum()) + net_cost
    total_energy = gpu_energy + net_energy
    # Attribution: each instance by its own tier GPU-seconds; the rest by the overall share.
    own = gpu_s.sum(axis=1)
    all_s = float(gpu_s.sum())
    share = gpu_s.sum(axis=0) / all_s if all_s > 0 else np.zeros(len(tiers))
    ran = own > 0
    split = np.zeros_like(gpu_s)
    split[ran] = gpu_s[ran] / own[ran, None]
    tier_cost = cost @ split + (float(cost[~ran].sum()) + net_cost) * share
    tier_energy = energy @ split + (float(energy[~ran].sum()) + net_energy) * share
    out_total = int(output_tokens.sum())

    def per_m(usd: float, tokens: int) -> float | None:
        return usd / tokens * 1e6 if tokens else None

    def per_tok(joules: float, tokens: int) -> float | None:
        return joules / tokens if tokens else None

    return {
        "gpus": int(sum(i.timing.tp for i in cluster.instances)),
        "gpu_hour_usd": rates,
        "cost_usd": total_cost,
        "gpu_capital_usd": gpu_capital,
        "network_capital_usd": net_capital,
        "energy_cost_usd": total_energy * per_kwh,
        "energy_j": total_energy,
        "gpu_energy_j": gpu_energy,
        "network_energy_j": net_energy,
        "mean_power_w": total_energy / sim_time if sim_time > 0 else 0.0,
        "network_capex_usd": net_capex if bom is not None else None,
        "network_power_w": net_power if bom is not None else None,
        "usd_per_million_output_tokens": per_m(total_cost, out_total),
        "j_per_output_token": per_tok(total_energy, out_total),
        "tiers": {
            name: {
                "gpu_s": float(gpu_s[:, t].sum()),
                "cost_usd": float(tier_cost[t]),
                "energy_j": float(tier_energy[t]),
                "output_tokens": int(output_tokens[t]),
                "usd_per_million_output_tokens": per_m(float(tier_cost[t]), int(output_tokens[t])),
                "j_per_output_token": per_tok(float(tier_energy[t]), int(output_tokens[t])),
            }
            for t, name in enumerate(tiers)
        },
    }
