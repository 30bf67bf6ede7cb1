"""Serving KV traffic on a planned fabric: a scenario's ``fabric:`` section.

The section takes the fabric keys of an ``aifabric plan`` scenario (gpus, gpu, design,
tiers, oversubscription, nic, switch, switch_radix, planes, su_nodes, preset, ...; read and
checked by the plan loader, :func:`aifabric.spec.scenario.merge_options` and
:func:`aifabric.fabric.plan.fabric_spec`) plus three of its own:

- ``routing``: ecmp (default), ecmp_qp, spray or adaptive (:mod:`aifabric.fabric.routing`).
- ``qps``: queue pairs per connection for ecmp_qp (default 1, as ``simulate collective``).
- ``placement``: ``contiguous`` (default) or ``separate_leaves``.

Placement. GPUs are taken in order: the prefill (or colocated) pool first, then the decode
pool, then the KV store's memory servers. Each pool starts on a fresh server; an instance
takes ``tp`` consecutive GPUs and never straddles a server when ``tp`` fits in one (a TP
group stays in its scale-up domain); a larger one starts on a server boundary and takes
whole servers' worth. Each memory server takes one whole server and talks through that
server's first NIC port (one endpoint). With ``separate_leaves`` each pool starts on the
first server none of whose NIC ports shares a leaf switch with an earlier pool, so
prefill-to-decode KV crosses the spines (seed 003's M:N deployment). A fabric with too few
GPUs for the pools is refused.

Paths. A transfer between two placed parties is split evenly over rails: with ``a`` and
``b`` NIC endpoints at its ends it has ``n = max(a, b)`` parts, part ``k`` going from the
source's endpoint ``k mod a`` to the destination's endpoint ``k mod b`` (GPU i to GPU i of
the peer: the rail-aligned pattern of KV transfer engines such as Mooncake's, Qin et al.,
FAST'25). Each part is routed by the mode (ecmp_qp: over ``qps`` queue pairs each; spray:
fractionally). The transfer moves as ONE flow of the shared flow engine whose weight on a
link is the share of its bytes crossing it (1/n per part, summed), so it ends when its
slowest rail's share has arrived, as a transfer split evenly over NICs does, and costs one
flow per transfer as without a fabric. Routes are computed once, at build, for every pair
of parties that can exchange KV (prefill to decode, memory server to entry instance and
back), in that order; ``adaptive`` therefore balances the flow count over all of those
routes (a static choice: flowlet timing is not modeled). The memory servers keep their own
NIC (``kv_store.dram.nic_bandwidth``) and SSD read links in series with the fabric; the
instances' NICs are the fabric's endpoint links (``network.nic_bandwidth`` and
``network.oversubscription`` are refused with a fabric). ``network.latency_s`` stays the
per-transfer latency; the fabric's cable propagation (nanoseconds) is not added.

Figures. ``network_bytes_by_tier``: bytes that crossed each link layer, summed over its
directed links, so both directions count: B bytes from a NIC up to its leaf, over a spine
and down to another leaf's NIC count 2B on endpoint_leaf and 2B on leaf_spine.
``network_utilization_by_tier``: per layer, over the directed links that carried traffic,
the mean and the max of bytes / (capacity x simulated_s) (0 for a layer nothing crossed).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from aifabric.errors import ConfigError

SERVE_KEYS = ("routing", "qps", "placement")
PLACEMENTS = ("contiguous", "separate_leaves")
LAYERS = {1: "endpoint_leaf", 2: "leaf_spine", 3: "spine_core"}
_NOT_FOR_SERVING = ("placement", "frontend_nic")  # plan keys with no serving meaning


def fabric_options(raw: Any, scenario_gpu: str) -> dict[str, Any]:
    """Validated, converted ``fabric:`` options (idempotent).

    Raises:
        ConfigError: one line, ``scenario key fabric...: ...``.
    """
    from aifabric.fabric.plan import fabric_spec
    from aifabric.fabric.routing import MODES
    from aifabric.spec.scenario import PLAN_KEYS, merge_options

    if not isinstance(raw, dict):
        raise ConfigError(f"scenario key fabric: expected a mapping of fabric keys, got {raw!r}")
    plan_keys = {k: v for k, v in PLAN_KEYS.items() if k not in _NOT_FOR_SERVING}
    known = sorted([*plan_keys, *SERVE_KEYS])
    for key in raw:
        if key not in plan_keys and key not in SERVE_KEYS:
            raise ConfigError(f"unknown scenario key 'fabric.{key}'; known fabric keys: "
                              f"{', '.join(known)}")  # fmt: skip
    out: dict[str, Any] = {}
    routing = raw.get("routing", "ecmp")
    if routing not in MODES:
        raise ConfigError(f"scenario key fabric.routing: {routing!r} is not one of "
                          f"{', '.join(MODES)}")  # fmt: skip
    qps = raw.get("qps", 1)
    if isinstance(qps, bool) or not isinstance(qps, int) or not 1 <= qps <= 64:
        raise ConfigError(f"scenario key fabric.qps: expected an integer from 1 to 64, got {qps!r}")
    placement = raw.get("placement", "contiguous")
    if placement not in PLACEMENTS:
        raise ConfigError(f"scenario key fabric.placement: {placement!r} is not one of "
                          f"{', '.join(PLACEMENTS)}")  # fmt: skip
    try:
        plan = merge_options(plan_keys, {k: v for k, v in raw.items() if k in plan_keys}, {})
        if "gpus" not in plan and "preset" not in plan:
            raise ConfigError("give fabric.gpus (GPUs in the fabric) or fabric.preset")
        if "preset" not in plan and "gpu" not in plan:
            plan["gpu"] = scenario_gpu
        fabric_spec(plan)
    except ConfigError as exc:
        raise ConfigError(f"scenario key fabric: {exc}") from None
    out.update(plan)
    out.update(routing=routing, qps=qps, placement=placement)
    return out


class FabricPaths:
    """A built fabric, the cluster's parties placed on it and their routes as flow paths.

    ``parties``: each instance's tp GPUs (in instance order), then each memory server.
    ``pairs``: the (source party, destination party) pairs that can exchange KV, routed
    in that order. Fabric links enter ``network`` when a path first uses them.
    """

    def __init__(self, options: dict[str, Any], network: Any, instance_tps: list[int],
                 roles: list[str], memory_servers: int, seed: int,
                 pairs: list[tuple[int, int]], max_work: float | None = None,
                 shared: Any = None) -> None:  # fmt: skip
        """``shared``: a fabric already built and in ``network`` (an
        :class:`aifabric.cluster.shared.BuiltFabric`) and the GPU range [lo, hi) the
        deployment holds on it, as ``(built, (lo, hi))``: the cluster simulator's case."""
        from aifabric.fabric.plan import build, estimated_links, fabric_spec
        from aifabric.fabric.routing import Router
        from aifabric.guards import MAX_PLAN_LINKS, check_work, limit_for

        self._link_base: int | None = None
        self._gpu_range: tuple[int, int] | None = None
        if shared is not None:
            built, self._gpu_range = shared
            topo, router, self._link_base = built.topo, built.router, built.link_base
            self.topo, self.router = topo, router
        else:
            plan = {k: v for k, v in options.items() if k not in SERVE_KEYS}
            spec, _, info = fabric_spec(plan)
            check_work("fabric", estimated_links(spec), limit_for(MAX_PLAN_LINKS, max_work),
                       "links", basis=f"{spec.num_gpus:,} GPUs x NIC links per GPU x tiers")  # fmt: skip
            self.topo = topo = build(spec, info.get("design"))
            self.router = router = Router(topo)
        self.network = network
        self.mode = str(options["routing"])
        self.qps = int(options["qps"]) if self.mode == "ecmp_qp" else 1
        self.parties = self._place(instance_tps, roles, memory_servers, options["placement"])
        self._net_of: dict[int, int] = {}  # directed fabric link -> network link
        self._paths: dict[tuple[int, int], tuple[tuple[int, ...], tuple[float, ...]]] = {}
        # Every pair's parts (x queue pairs), routed in one call.
        src: list[np.ndarray] = []
        dst: list[np.ndarray] = []
        key: list[np.ndarray] = []
        self._rows: dict[tuple[int, int], tuple[int, int]] = {}
        row = 0
        for a, b in pairs:
            ea, eb = self.parties[a], self.parties[b]
            n = max(len(ea), len(eb))
            k = np.repeat(np.arange(n), self.qps)
            src.append(ea[k % len(ea)])
            dst.append(eb[k % len(eb)])
            key.append(np.tile(np.arange(self.qps), n))
            self._rows[(a, b)] = (row, row + n * self.qps)
            row += n * self.qps

        def cat(xs: list[np.ndarray]) -> np.ndarray:
            return np.concatenate(xs) if xs else np.zeros(0, np.int64)

        self.routes = router.route(cat(src), cat(dst), self.mode, seed=seed, key=cat(key))
        if not bool(self.routes.reachable.all()):  # pragma: no cover - healthy fabrics
            raise ConfigError("fabric: a placed pair of NICs has no path")

    # --- placement --------------------------------------------------------------------
    def _place(self, tps: list[int], roles: list[str], memory_servers: int,
               placement: str) -> list[np.ndarray]:  # fmt: skip
        topo, router = self.topo, self.router
        gpn, servers = topo.gpus_per_node, topo.num_nodes
        eps = topo.gpu_endpoints()
        per_server = topo.nics_per_node * topo.planes
        pools: list[tuple[str, list[int]]] = []
        for role, tp in zip(roles, tps, strict=True):
            if pools and pools[-1][0] == role:
                pools[-1][1].append(tp)
            else:
                pools.append((role, [tp]))
        if memory_servers:
            pools.append(("memory", [0] * memory_servers))
        used_leaves: set[int] = set()
        parties: list[np.ndarray] = []
        lo, hi = self._gpu_range or (0, topo.num_gpus)
        gpu = lo

        def leaves_of(server: int) -> set[int]:
            ports = np.arange(server * per_server, (server + 1) * per_server)
            return set(router.ep_leaf[ports].tolist())

        def too_few() -> ConfigError:
            what = ", ".join(
                f"{len(v)} memory servers (a server each)" if r == "memory"
                else f"{len(v)} {r} (tp {'/'.join(str(t) for t in sorted(set(v)))})"
                for r, v in pools
            )  # fmt: skip
            if self._gpu_range is not None:
                return ConfigError(f"the deployment's GPUs {lo}..{hi - 1} are too few for {what} "
                                   f"with placement {placement}; give it more GPUs")  # fmt: skip
            return ConfigError(
                f"scenario key fabric.gpus: {topo.num_gpus} GPUs ({servers} servers of {gpn}) "
                f"are too few for {what} with placement {placement}; give more fabric.gpus"
            )

        for role, items in pools:
            server = -(-gpu // gpn)  # a pool starts on a fresh server
            if placement == "separate_leaves":
                while server < servers and leaves_of(server) & used_leaves:
                    server += 1
            first = server
            gpu = server * gpn
            for tp in items:
                take = gpn if role == "memory" else tp
                if take > gpn or gpu % gpn + take > gpn:  # onto a server boundary
                    gpu = -(-gpu // gpn) * gpn
                if gpu + take > hi:
                    raise too_few()
                if role == "memory":
                    parties.append(np.array([(gpu // gpn) * per_server], np.int64))
                else:
                    parties.append(eps[gpu : gpu + tp].astype(np.int64))
                gpu += take
            for s in range(first, -(-gpu // gpn)):
                used_leaves |= leaves_of(s)
        return parties

    def leaves(self, party: int) -> list[int]:
        """Leaf switch indices (0-based among leaves) under a party's NIC endpoints."""
        leaf = self.router.ep_leaf[self.parties[party]]
        return sorted(set(self.router.leaf_index[leaf].tolist()))

    # --- paths ------------------------------------------------------------------------
    def path(self, a: int, b: int) -> tuple[tuple[int, ...], tuple[float, ...]]:
        """Network links and weights of a transfer from party ``a`` to party ``b``."""
        got = self._paths.get((a, b))
        if got is not None:
            return got
        lo, hi = self._rows[(a, b)]
        r = self.routes
        start, end = int(r.indptr[lo]), int(r.indptr[hi])
        links, inv = np.unique(r.links[start:end], return_inverse=True)
        weights = np.bincount(inv, weights=r.weights[start:end]) / (hi - lo)
        ids = []
        for ln in links.tolist():
            net = self._net_of.get(ln)
            if net is None and self._link_base is not None:  # already in the network
                net = self._net_of[ln] = self._link_base + ln
            elif net is None:
                up = ln < self.router.num_links
                name = f"fabric.{'up' if up else 'down'}{ln % self.router.num_links}"
                net = self._net_of[ln] = self.network.add_link(
                    name, float(self.router.capacity[ln])
                )
            ids.append(net)
        got = self._paths[(a, b)] = (tuple(ids), tuple(weights.tolist()))
        return got

    # --- figures ----------------------------------------------------------------------
    def tier_figures(self, sim_time: float) -> tuple[dict[str, float], dict[str, Any]]:
        """(network_bytes_by_tier, network_utilization_by_tier) of the run so far."""
        moved = self.network.engine.link_bytes
        fab = np.array(list(self._net_of), np.int64)
        net = np.array(list(self._net_of.values()), np.int64)
        layer = self.router.layer[fab] if len(fab) else np.zeros(0, np.int64)
        cap = self.router.capacity[fab] if len(fab) else np.zeros(0)
        got = moved[net] if len(net) else np.zeros(0)
        by_bytes: dict[str, float] = {}
        by_util: dict[str, Any] = {}
        for t in range(1, self.topo.num_tiers + 1):
            name = LAYERS[t]
            sel = (layer == t) & (got > 0)
            by_bytes[name] = float(got[layer == t].sum())
            util = got[sel] / (cap[sel] * sim_time) if sim_time > 0 else np.zeros(0)
            by_util[name] = {
                "mean_utilization": float(util.mean()) if util.size else 0.0,
                "max_utilization": float(util.max()) if util.size else 0.0,
            }
        return by_bytes, by_util


def scenario_fabric(scenario: Any) -> dict[str, Any] | None:
    """A serve scenario's validated fabric options, None without a ``fabric:`` section.

    Raises:
        ConfigError: a bad section, or network keys the fabric replaces.
    """
    if scenario.fabric is None:
        return None
    for key in ("nic_bandwidth", "oversubscription"):
        if key in scenario.network.model_fields_set:
            instead = "fabric.nic" if key == "nic_bandwidth" else "fabric.oversubscription"
            raise ConfigError(f"scenario key network.{key}: with a fabric: section the fabric's "
                              f"links carry KV; give {instead} instead")  # fmt: skip
    return fabric_options(scenario.fabric, scenario.gpu)
