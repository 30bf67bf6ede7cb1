"""The ``simulate cluster`` scenario: one fabric, many workloads, a strategy.

Keys (a mapping; durations like ``1h``, bandwidths like ``20GB/s``)::

    strategy: converged | separate_networks | separate_clusters   (default converged)
    duration: 1h                  # simulated time (default 1 h)
    seed: 0
    fabric: {plan keys, routing}  # the back-end fabric (``aifabric plan`` keys)
    frontend: {plan keys, routing}  # a front-end network (separate_networks needs one)
    classes: {policy: fair | strict_priority | weighted, order: [...], weights: {...}}
    storage: {servers: 2, write_bandwidth: 20GB/s, read_bandwidth: 40GB/s,
              network: fabric | frontend}
    placement: contiguous | separate_leaves   # how workloads without first_gpu are placed
    workloads:
      - {name, kind: train, job: {simulate train keys}, gpus, first_gpu, steps,
         checkpoint_every_steps, checkpoint: sync | async, read_dataset, chunks}
      - {name, kind: serve, scenario: {simulate serve keys} | file: PATH, gpus, first_gpu}

Placement: workloads take server-aligned GPU ranges in the order listed (``gpus``, else
what they need; ``first_gpu`` to pin one). ``separate_leaves`` starts each workload (and
the storage servers) on the first server none of whose NIC ports shares a leaf switch with
an earlier workload, so workloads meet only above the leaves (``contiguous``: the next
free server).

Strategies (seed 004's choices, plus everything on one fabric):

- ``converged``: every workload and the storage on the back-end fabric.
- ``separate_networks``: one pool of servers; training on the back-end fabric, inference KV
  traffic and storage on the front-end network.
- ``separate_clusters``: training (and its storage) on the back-end fabric, inference on a
  fabric of its own (``inference_fabric``: plan keys; default the back-end's keys sized to
  the inference GPUs), nothing shared.
- ``time_division``: one pool (the training job's GPUs) moved between training and a
  colocated serving deployment by a schedule (``time_division: {schedule: [{at,
  training_gpus}, ...], model_load}``; :mod:`aifabric.cluster.timediv`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aifabric.errors import ConfigError

STRATEGIES = ("converged", "separate_networks", "separate_clusters", "time_division")
TOP_KEYS = ("strategy", "duration", "seed", "fabric", "frontend", "inference_fabric", "classes",
            "storage", "workloads", "time_division", "placement")  # fmt: skip
PLACEMENTS = ("contiguous", "separate_leaves")
TRAIN_KEYS = ("name", "kind", "job", "gpus", "first_gpu", "steps", "checkpoint_every_steps",
              "checkpoint", "read_dataset", "chunks")  # fmt: skip
SERVE_KEYS = ("name", "kind", "scenario", "file", "gpus", "first_gpu")
STORAGE_KEYS = ("servers", "write_bandwidth", "read_bandwidth", "network")
CLASS_OF_KIND = {"train": "training", "serve": "inference", "storage": "storage"}


@dataclass(slots=True)
class StorageConfig:
    servers: int
    write_bandwidth: float  # bytes/s per server
    read_bandwidth: float
    network: str  # fabric | frontend


@dataclass(slots=True)
class WorkloadConfig:
    name: str
    kind: str  # train | serve
    spec: dict[str, Any]  # the train job keys or the serve scenario mapping
    gpus: int | None
    first_gpu: int | None
    options: dict[str, Any] = field(default_factory=dict)
    base: Path | None = None  # folder a serve scenario's trace paths resolve against


@dataclass(slots=True)
class ClusterConfig:
    strategy: str
    duration: float  # s
    seed: int
    fabric: dict[str, Any]
    frontend: dict[str, Any] | None
    inference_fabric: dict[str, Any] | None
    classes: dict[str, Any]
    storage: StorageConfig | None
    workloads: list[WorkloadConfig]
    placement: str = "contiguous"
    storage_first_gpu: int | None = None  # separate_leaves: where prepare() puts storage
    time_division_raw: Any = None  # the section as given (checked once the pool is known)
    time_division: Any = None  # (windows, model_load_s) after aifabric.cluster.run.prepare
    max_work: float | None = None  # replaces the resource guards' limits (aifabric.guards)


def _int(value: Any, key: str, minimum: int = 0) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ConfigError(f"scenario key {key}: expected an integer >= {minimum}, got {value!r}")
    return value


def _mapping(value: Any, key: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise ConfigError(f"scenario key {key}: expected a mapping, got {value!r}")
    return dict(value)


def _unknown(data: dict[str, Any], known: tuple[str, ...], where: str) -> None:
    for key in data:
        if key not in known:
            raise ConfigError(f"unknown scenario key '{where}{key}'; known keys: "
                              f"{', '.join(known)}")  # fmt: skip


def _fabric(value: Any, key: str, max_work: float | None = None) -> dict[str, Any]:
    """Plan keys plus ``routing``, converted and checked by the plan loader; a fabric above
    the plan's link guard (:data:`aifabric.guards.MAX_PLAN_LINKS`) is refused."""
    from aifabric.fabric.plan import estimated_links, fabric_spec
    from aifabric.fabric.routing import MODES
    from aifabric.guards import MAX_PLAN_LINKS, check_work, limit_for
    from aifabric.spec.scenario import PLAN_KEYS, merge_options

    raw = _mapping(value, key)
    routing = raw.pop("routing", "ecmp")
    if routing not in MODES or routing == "ecmp_qp":
        raise ConfigError(f"scenario key {key}.routing: {routing!r} is not one of "
                          "ecmp, spray, adaptive")  # fmt: skip
    try:
        plan = merge_options(PLAN_KEYS, raw, {})
        if "gpus" not in plan and "preset" not in plan:
            raise ConfigError("give gpus (GPUs in the fabric) or preset")
        spec, _, _ = fabric_spec(plan)
    except ConfigError as exc:
        raise ConfigError(f"scenario key {key}: {exc}") from None
    check_work(f"simulate cluster ({key})", estimated_links(spec),
               limit_for(MAX_PLAN_LINKS, max_work), "links",
               basis=f"{spec.num_gpus:,} GPUs x NIC links per GPU x {spec.tiers or 3} tiers")  # fmt: skip
    plan["routing"] = routing
    return plan


def parse_cluster(data: Any, base: Path | None = None,
                  max_work: float | None = None) -> ClusterConfig:  # fmt: skip
    """Validate a cluster scenario mapping (``max_work``: the CLI's ``--max-work``, replacing
    the resource guards' limits, :mod:`aifabric.guards`).

    Raises:
        ConfigError: one line naming the first offending key.
    """
    from aifabric.units import parse_bandwidth, parse_duration

    data = _mapping(data, "scenario")
    _unknown(data, TOP_KEYS, "")
    strategy = data.get("strategy", "converged")
    if strategy not in STRATEGIES:
        raise ConfigError(f"scenario key strategy: {strategy!r} is not one of "
                          f"{', '.join(STRATEGIES)}")  # fmt: skip
    try:
        duration = parse_duration(data.get("duration", 3600.0), what="duration")
    except ValueError as exc:
        raise ConfigError(f"scenario key duration: {exc}") from None
    if not duration > 0:
        raise ConfigError(f"scenario key duration: must be > 0, got {data.get('duration')!r}")
    seed = _int(data.get("seed", 0), "seed")
    if "fabric" not in data:
        raise ConfigError("scenario key fabric: required (the back-end fabric's plan keys)")
    fabric = _fabric(data["fabric"], "fabric", max_work)
    frontend = _fabric(data["frontend"], "frontend", max_work) if "frontend" in data else None
    inference = (_fabric(data["inference_fabric"], "inference_fabric", max_work)
                 if "inference_fabric" in data else None)  # fmt: skip
    if strategy == "separate_networks" and frontend is None:
        raise ConfigError("strategy separate_networks: give a frontend: network (plan keys) "
                          "for inference and storage traffic")  # fmt: skip
    classes = _classes(data.get("classes"))
    storage = None
    if data.get("storage") is not None:
        st = _mapping(data["storage"], "storage")
        _unknown(st, STORAGE_KEYS, "storage.")
        net = st.get("network", "frontend" if strategy == "separate_networks" else "fabric")
        if net not in ("fabric", "frontend") or (net == "frontend" and frontend is None):
            raise ConfigError(f"scenario key storage.network: {net!r} must be fabric, or "
                              "frontend with a frontend: network")  # fmt: skip
        try:
            storage = StorageConfig(
                _int(st.get("servers", 1), "storage.servers", 1),
                parse_bandwidth(st.get("write_bandwidth", "20GB/s"), what="write_bandwidth"),
                parse_bandwidth(st.get("read_bandwidth", "40GB/s"), what="read_bandwidth"),
                net,
            )
        except ValueError as exc:
            raise ConfigError(f"scenario key storage: {exc}") from None
    raw = data.get("workloads")
    if not isinstance(raw, list) or not raw:
        raise ConfigError("scenario key workloads: expected a list of workloads "
                          "(kind: train or serve)")  # fmt: skip
    workloads = [_workload(w, i, base) for i, w in enumerate(raw)]
    names = [w.name for w in workloads]
    if len(set(names)) != len(names):
        raise ConfigError(f"scenario key workloads: names must be unique, got {names}")
    tdm = data.get("time_division")
    if (strategy == "time_division") != (tdm is not None):
        raise ConfigError("scenario key time_division: give it with strategy time_division "
                          "(and only then)")  # fmt: skip
    if strategy == "time_division":
        kinds = sorted(w.kind for w in workloads)
        if kinds != ["serve", "train"]:
            raise ConfigError(f"strategy time_division: give one train and one serve workload "
                              f"(they share one pool of GPUs), got {kinds}")  # fmt: skip
    placement = data.get("placement", "contiguous")
    if placement not in PLACEMENTS:
        raise ConfigError(f"scenario key placement: {placement!r} is not one of "
                          f"{', '.join(PLACEMENTS)}")  # fmt: skip
    return ClusterConfig(strategy, float(duration), seed, fabric, frontend, inference, classes,
                         storage, workloads, placement=placement, time_division_raw=tdm,
                         max_work=max_work)  # fmt: skip


def _classes(value: Any) -> dict[str, Any]:
    """The traffic-class policy between training, inference and storage flows."""
    if value is None:
        return {"policy": "fair"}
    got = _mapping(value, "classes")
    _unknown(got, ("policy", "order", "weights"), "classes.")
    policy = got.get("policy", "fair")
    names = sorted(set(CLASS_OF_KIND.values()))
    if policy == "fair":
        return {"policy": "fair"}
    if policy == "strict_priority":
        order = got.get("order")
        if not isinstance(order, list) or sorted(order) != names:
            raise ConfigError(f"scenario key classes.order: list every class once, highest "
                              f"first ({', '.join(names)}), got {order!r}")  # fmt: skip
        return {"policy": policy, "order": list(order)}
    if policy == "weighted":
        weights = got.get("weights")
        if not isinstance(weights, dict) or sorted(weights) != names:
            raise ConfigError(f"scenario key classes.weights: give a weight for each of "
                              f"{', '.join(names)}, got {weights!r}")  # fmt: skip
        for k, w in weights.items():
            if isinstance(w, bool) or not isinstance(w, int | float) or not w > 0:
                raise ConfigError(f"scenario key classes.weights.{k}: must be > 0, got {w!r}")
        return {"policy": policy, "weights": {k: float(v) for k, v in weights.items()}}
    raise ConfigError(f"scenario key classes.policy: {policy!r} is not one of fair, "
                      "strict_priority, weighted")  # fmt: skip


def _workload(value: Any, i: int, base: Path | None) -> WorkloadConfig:
    where = f"workloads[{i}]"
    w = _mapping(value, where)
    kind = w.get("kind")
    if kind not in ("train", "serve"):
        raise ConfigError(f"scenario key {where}.kind: {kind!r} is not one of train, serve")
    _unknown(w, TRAIN_KEYS if kind == "train" else SERVE_KEYS, f"{where}.")
    name = str(w.get("name", f"{kind}{i}"))
    gpus = None if w.get("gpus") is None else _int(w["gpus"], f"{where}.gpus", 1)
    first = None if w.get("first_gpu") is None else _int(w["first_gpu"], f"{where}.first_gpu")
    if kind == "train":
        job = _mapping(w.get("job"), f"{where}.job")
        for key in ("gpus", "preset", "design", "nic", "tiers", "oversubscription", "routing",
                    "network"):  # fmt: skip
            if key in job:
                raise ConfigError(f"scenario key {where}.job.{key}: the cluster's fabric "
                                  "decides it; drop the key")  # fmt: skip
        mode = w.get("checkpoint", "sync")
        if mode not in ("sync", "async"):
            raise ConfigError(f"scenario key {where}.checkpoint: {mode!r} is not sync or async")
        read = w.get("read_dataset", True)
        if not isinstance(read, bool):
            raise ConfigError(f"scenario key {where}.read_dataset: expected true or false")
        opts = {
            "steps": None if w.get("steps") is None else _int(w["steps"], f"{where}.steps", 1),
            "checkpoint_every_steps": _int(
                w.get("checkpoint_every_steps", 0), f"{where}.checkpoint_every_steps"
            ),
            "checkpoint_mode": mode,
            "read_dataset": read,
            "chunks": _int(w.get("chunks", 4), f"{where}.chunks", 1),
        }
        return WorkloadConfig(name, kind, job, gpus, first, opts, base)
    if ("scenario" in w) == ("file" in w):
        raise ConfigError(f"scenario key {where}: give one of scenario: (simulate serve keys) "
                          "or file: (a serve scenario YAML)")  # fmt: skip
    folder = base
    if "file" in w:
        from aifabric.spec.scenario import load_scenario

        path = Path(str(w["file"]))
        if not path.is_absolute() and base is not None and not path.exists():
            path = base / path
        spec = load_scenario(path)
        folder = path.parent
    else:
        spec = _mapping(w["scenario"], f"{where}.scenario")
    if "fabric" in spec:
        raise ConfigError(f"scenario key {where}: a serving workload takes the cluster's "
                          "fabric; drop its fabric: section")  # fmt: skip
    return WorkloadConfig(name, kind, spec, gpus, first, {}, folder)
