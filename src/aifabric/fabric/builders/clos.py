"""Folded Clos (fat tree / leaf-spine) builder: 1, 2 or 3 switch tiers, any oversubscription.

The other builders (rail-optimized, spine-leaf, front-end, presets) are this one with
their own defaults. Construction, per plane:

- Leaves: radix k split into d down and u up ports, d/u = oversubscription. "rail"
  grouping: one leaf per (scalable unit, rail) takes NIC ``rail`` of each of the SU's
  su_nodes servers (NVIDIA's rail-optimized SuperPOD); with rail_by "slot" the rail is a
  server's slot in its multi-server NVLink domain, and the leaf of (SU, slot) takes every
  NIC of that slot's tray in each of the SU's racks (NVL72: 18 leaves per 8-rack SU);
  "tor": consecutive NIC ports fill a leaf (top of rack). Management ports (UFM) take
  free ports of the last SU's leaves.
- Two tiers (possible while leaves per plane <= k): S = ceil(L u / k) spines; leaf l's
  uplink j goes to spine (l u + j) mod S, so every leaf reaches every spine.
- Three tiers: pods of up to ds leaves (spine down ports), each leaf with one link to each
  of its pod's u spines (a partial last pod: the fewest spines that take its leaves'
  uplinks); every spine uplink on one of C = ceil(spine uplinks / k) cores, round robin
  (Al-Fares et al. 2008 generalized to oversubscription and partial pods), so a partial
  pod or a forced third tier buys about 5N/k switches, not whole pods.

Closed forms (non-blocking, radix k, one plane): 2 tiers hold k^2/2 endpoints with 3k/2
switches; 3 tiers k^3/4 endpoints with 5k^2/4 switches (k-ary fat tree).
"""

from __future__ import annotations

import math

import numpy as np

from aifabric.errors import CapacityError
from aifabric.fabric.radix import tier_models
from aifabric.fabric.spec import REACHES, FabricSpec
from aifabric.fabric.topology import Topology

PROPAGATION = 5e-9  # s per metre of fibre or copper
CABLE_METRES = {"copper": 3.0, "multimode": 30.0, "singlemode": 150.0}


def leaf_layout(spec: FabricSpec) -> tuple[np.ndarray, int, int]:
    """(leaf index in its plane of every plane-0 endpoint, leaves per plane, SU size)."""
    down, _ = spec.leaf_ports()
    if down < 1:
        raise CapacityError(f"switch_radix(={spec.switch_radix}) leaves no down ports")
    nodes, nics = spec.num_nodes, spec.nics_per_node
    if spec.single_switch():
        return np.zeros(nodes * nics, np.int64), 1, nodes
    node = np.repeat(np.arange(nodes), nics)
    rail = np.tile(np.arange(nics), nodes)
    if spec.grouping == "rail":
        su = spec.su_nodes or down
        if ports_per_leaf(spec, su) > down:
            raise CapacityError(
                f"su_nodes(={su}) needs {ports_per_leaf(spec, su)} ports of the leaf's {down}"
                f" down ports (radix {spec.switch_radix}, oversubscription"
                f" {spec.oversubscription:g})"
            )
        rails = rails_per_su(spec)
        position = rail if spec.rail_by == "nic" else node % spec.nodes_per_domain
        return (node // su) * rails + position, math.ceil(nodes / su) * rails, su
    per_leaf = spec.su_nodes * nics if spec.su_nodes else down
    if per_leaf > down:
        raise CapacityError(
            f"su_nodes(={spec.su_nodes}) x {nics} NICs exceed the leaf's {down} down ports"
        )
    per_plane = nodes * nics
    return np.arange(per_plane) // per_leaf, math.ceil(per_plane / per_leaf), per_leaf // nics


def rails_per_su(spec: FabricSpec) -> int:
    """Leaves of one scalable unit per plane: one per NIC index (DGX H100: 8), one per
    server slot of its scale-up domains (NVL72: 18 trays), one for top-of-rack."""
    if spec.grouping != "rail":
        return 1
    return spec.nics_per_node if spec.rail_by == "nic" else spec.nodes_per_domain


def ports_per_leaf(spec: FabricSpec, su: int) -> int:
    """Endpoint ports a full scalable unit (rail) or rack (tor) of ``su`` servers puts on
    each of its leaves: su (one NIC each), su / servers per domain x NICs (slot rails:
    every NIC of the slot's server in each domain), or su x NICs (top of rack)."""
    if spec.grouping == "rail" and spec.rail_by == "nic":
        return su
    if spec.grouping == "rail":
        return su // spec.nodes_per_domain * spec.nics_per_node
    return su * spec.nics_per_node


def management_leaves(spec: FabricSpec, leaf_of: np.ndarray, leaves: int) -> np.ndarray:
    """Leaf of each management port (UFM appliance): free down ports of the last scalable
    unit's leaves, one per leaf in rail order, round after round (NVIDIA DGX SuperPOD H100
    RA Table 4: the UFM ports take the place of a DGX removed from the last SU).

    Raises:
        CapacityError: the last scalable unit's leaves have too few free ports.
    """
    count = spec.management_ports
    if count == 0:
        return np.zeros(0, np.int64)
    down = spec.leaf_ports()[0]
    free = down - np.bincount(leaf_of, minlength=leaves)
    last = range(max(0, leaves - (1 if spec.single_switch() else rails_per_su(spec))), leaves)
    order = [leaf for r in range(down) for leaf in last if free[leaf] > r][:count]
    if len(order) < count:
        raise CapacityError(
            f"management_ports(={count}) exceed the {len(order)} free down ports of the last "
            "scalable unit's leaves"
        )
    return np.array(order, np.int64)


def leaf_uplinks(spec: FabricSpec, su: int) -> int:
    """Uplinks per leaf: given; or, when a scalable unit / rack fills only part of the leaf,
    enough for its ports at the oversubscription; else the radix split."""
    _, up = spec.leaf_ports()
    if spec.leaf_up_ports is not None or not spec.su_nodes or up == 0:
        return up
    used = ports_per_leaf(spec, su)
    return min(
        up, math.ceil(used * spec.link_speed / spec.switch_port_speed / spec.oversubscription)
    )


def choose_tiers(spec: FabricSpec, leaves: int) -> int:
    """Fewest tiers that connect ``leaves`` leaves per plane (or the requested count).

    Raises:
        CapacityError: the leaves need more tiers than allowed, or more than three.
    """
    ks, kc = spec.spine_k, spec.core_k
    needed = 1 if leaves == 1 else (2 if leaves <= ks else 3)
    tiers = spec.tiers or needed
    if tiers < needed:
        raise CapacityError(
            f"{leaves} leaves per plane do not fit {tiers} tier(s) (2 tiers of radix-{ks} "
            f"spines hold at most {ks} leaves); use --tiers {needed}"
        )
    if tiers == 3:
        ds, us = spec.spine_ports()
        pods = math.ceil(leaves / _leaves_per_pod(spec, ds))
        if us == 0 or pods > kc:
            raise CapacityError(
                f"{spec.num_gpus} GPUs need {pods} pods of radix-{ks} spines: more than a "
                f"3-tier fabric of radix-{kc} cores holds (at most {kc} pods); use a larger "
                "radix, more planes or fewer GPUs"
            )
    return tiers


def spine_count(leaves: int, up: int, radix: int) -> int:
    """Spines of a 2-tier plane: fewest that take every uplink, spreading each leaf's
    uplinks evenly (a divisor of ``up`` when one fits, as NVIDIA's SuperPOD tables do)."""
    need = max(1, math.ceil(leaves * up / radix))
    for count in range(need, up + 1):
        if up % count == 0:
            return count
    return need


def _leaves_per_pod(spec: FabricSpec, spine_down: int) -> int:
    """Leaves in one pod: given, else spine down ports (whole scalable units when by rail)."""
    if spec.leaves_per_pod:
        if spec.leaves_per_pod > spine_down + (spec.spine_k - spine_down):
            raise CapacityError(
                f"leaves_per_pod(={spec.leaves_per_pod}) exceeds the spine radix {spec.spine_k}"
            )
        return spec.leaves_per_pod
    if spec.grouping == "rail":
        rails = rails_per_su(spec)
        per = (spine_down // rails) * rails
        if per == 0:
            raise CapacityError(
                f"a spine's {spine_down} down ports cannot take one scalable unit's "
                f"{rails} rail leaves"
            )
        return per
    return spine_down


def _pod_spines(leaves_in_pod: int, up: int, per_pod: int) -> int:
    """Spines of one pod: ``up`` (one per leaf uplink) for a full pod; for a partial pod
    the fewest that divide ``up`` and still take its leaves' uplinks within the down
    ports of a full pod's spine (so a 1-leaf pod buys one spine, not ``up``)."""
    if leaves_in_pod >= per_pod:
        return up
    for count in range(1, up + 1):
        if up % count == 0 and leaves_in_pod * (up // count) <= per_pod:
            return count
    return up


def _three_tier(spec: FabricSpec, leaves: int, up: int) -> tuple[
        tuple[np.ndarray, np.ndarray, int], np.ndarray, np.ndarray,
        tuple[np.ndarray, np.ndarray, int], int]:  # fmt: skip
    """Leaf-spine and spine-core links (local ids), spine radix and pod, and core count.

    Pods of ``per_pod`` leaves; leaf uplink j goes to the pod spine that serves position j
    (a partial pod's spine serves up / spines positions). A spine's uplinks keep a full
    pod spine's down:up ratio (per_pod : us). The core layer holds every spine uplink,
    C = ceil(sum of uplinks / core radix) cores, uplink g (in spine order) on core g mod C:
    for k-ary fat trees this links every core exactly once to each pod (Al-Fares 2008),
    and a partial pod adds only the cores its uplinks fill.
    """
    ds, us = spec.spine_ports()
    per_pod = _leaves_per_pod(spec, ds)
    if spec.leaves_per_pod:
        us = math.ceil(per_pod / spec.spine_oversubscription)
        if per_pod + us > spec.spine_k:
            raise CapacityError(
                f"a spine needs {per_pod} down + {us} up ports, more than its radix {spec.spine_k}"
            )
    pods = math.ceil(leaves / per_pod)
    in_pod = np.minimum(per_pod, leaves - np.arange(pods) * per_pod)
    per_pod_spines = np.array([_pod_spines(int(m), up, per_pod) for m in in_pod], np.int64)
    first_spine = np.concatenate([[0], np.cumsum(per_pod_spines)[:-1]])
    spines = int(per_pod_spines.sum())
    spine_pod = np.repeat(np.arange(pods), per_pod_spines)
    leaf = np.repeat(np.arange(leaves), up)
    pod = leaf // per_pod
    position = np.tile(np.arange(up), leaves)
    spine_of = first_spine[pod] + position // (up // per_pod_spines[pod])
    spine_down = np.bincount(spine_of, minlength=spines)
    spine_up = -(-spine_down * us // per_pod)  # ceil: a full pod's spine has per_pod : us
    sp = np.repeat(np.arange(spines), spine_up)
    cores = max(1, math.ceil(int(spine_up.sum()) / spec.core_k))
    core = np.arange(sp.shape[0]) % cores
    spine_links = (leaf, leaves + spine_of, 2)
    core_links = (leaves + sp, leaves + spines + core, 3)
    return spine_links, np.full(spines, spec.spine_k, np.int64), spine_pod, core_links, cores


def build_clos(spec: FabricSpec) -> Topology:
    """Build the fabric described by ``spec``.

    Raises:
        CapacityError: the radix cannot hold the GPUs in the allowed tiers.
    """
    k = spec.switch_radix
    leaf_of, leaves, su = leaf_layout(spec)
    mgmt = management_leaves(spec, leaf_of, leaves)
    leaf_of = np.concatenate([leaf_of, mgmt])
    up = leaf_uplinks(spec, su)
    tiers = choose_tiers(spec, leaves)
    planes, per_plane_eps = spec.planes, leaf_of.shape[0]
    n_eps = per_plane_eps * planes
    ep_ids = np.arange(n_eps)
    ep_plane = ep_ids % planes
    ep_base = ep_ids // planes

    # Switch tables per plane, then offset by plane.
    tiers_sw: list[np.ndarray] = [np.ones(leaves, np.int8)]
    groups_sw: list[np.ndarray] = [np.arange(leaves) // rails_per_su(spec)]
    links: list[tuple[np.ndarray, np.ndarray, int]] = []  # (lower local id, upper local id, tier)
    radix_sw = [np.full(leaves, k, np.int64)]
    if tiers == 2:
        spines = spine_count(leaves, up, spec.spine_k)
        radix_sw.append(np.full(spines, spec.spine_k, np.int64))
        lo = np.repeat(np.arange(leaves), up)
        hi = leaves + (np.arange(leaves * up) % spines)
        tiers_sw.append(np.full(spines, 2, np.int8))
        groups_sw.append(np.zeros(spines, np.int64))
        links.append((lo, hi, 2))
    elif tiers == 3:
        spine_links, spine_radix, spine_pod, core_links, cores = _three_tier(spec, leaves, up)
        spines = spine_pod.shape[0]
        links += [spine_links, core_links]
        radix_sw += [spine_radix, np.full(cores, spec.core_k, np.int64)]
        tiers_sw += [np.full(spines, 2, np.int8), np.full(cores, 3, np.int8)]
        groups_sw += [spine_pod, np.zeros(cores, np.int64)]
    sw_tier_plane = np.concatenate(tiers_sw)
    sw_group_plane = np.concatenate(groups_sw)
    per_plane_sw = sw_tier_plane.shape[0]

    # Assemble global ids: endpoints first, then plane 0 switches, plane 1 switches, ...
    sw_base = n_eps + np.arange(planes)[:, None] * per_plane_sw
    src = [ep_ids]
    dst = [sw_base[ep_plane, 0] + leaf_of[ep_base]]
    ltier = [np.ones(n_eps, np.int8)]
    for lo, hi, t in links:
        src.append((sw_base[:, :1] + lo[None, :]).ravel())
        dst.append((sw_base[:, :1] + hi[None, :]).ravel())
        ltier.append(np.full(lo.shape[0] * planes, t, np.int8))
    link_src, link_dst = np.concatenate(src), np.concatenate(dst)
    link_tier = np.concatenate(ltier)
    speeds = np.array([0.0, spec.link_speed, spec.switch_port_speed, spec.switch_port_speed])
    reach_code = np.array([0] + [REACHES.index(r) for r in spec.reach], np.int8)
    metres = np.array([0.0] + [CABLE_METRES[r] for r in spec.reach])
    # Management ports (UFM) come after the servers' NIC ports: server -1, their leaf's rail.
    by_nic = spec.grouping == "rail" and spec.rail_by == "nic"
    rail_of_leaf = mgmt % spec.nics_per_node if by_nic else np.full(mgmt.shape[0], -1)
    ep_node = np.concatenate([np.repeat(np.arange(spec.num_nodes), spec.nics_per_node),
                              np.full(mgmt.shape[0], -1)])  # fmt: skip
    ep_rail = np.concatenate([np.tile(np.arange(spec.nics_per_node), spec.num_nodes),
                              rail_of_leaf])  # fmt: skip
    topo = Topology(
        name=spec.name, num_gpus=spec.num_gpus, gpus_per_node=spec.gpus_per_node,
        nics_per_node=spec.nics_per_node, planes=planes,
        scaleup_domain_size=spec.scaleup_domain_size,
        endpoint_node=ep_node[ep_base], endpoint_rail=ep_rail[ep_base], endpoint_plane=ep_plane,
        switch_tier=np.tile(sw_tier_plane, planes),
        switch_plane=np.repeat(np.arange(planes), per_plane_sw),
        switch_group=np.tile(sw_group_plane, planes),
        switch_ports=np.tile(np.concatenate(radix_sw), planes),
        link_src=link_src, link_dst=link_dst, link_tier=link_tier,
        link_capacity=speeds[link_tier], link_latency=metres[link_tier] * PROPAGATION,
        link_reach=reach_code[link_tier],
        meta={"design": spec.grouping, "tiers": tiers, "switch_radix": k,
              "oversubscription": spec.leaf_oversubscription,
              "spine_oversubscription": spec.spine_oversubscription,
              "scalable_unit_nodes": su if spec.grouping == "rail" else None,
              "leaves_per_plane": leaves, "link_speed": spec.link_speed,
              "switch_model": spec.switch_model, "switch_models": tier_models(spec),
              "endpoint_links_per_module": spec.endpoint_links_per_module},
    )  # fmt: skip
    used = topo.ports_used()
    if topo.num_switches and bool((used > topo.switch_ports).any()):
        raise CapacityError("internal: a switch uses more ports than its radix")
    return topo
