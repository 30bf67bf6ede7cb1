"""The serving simulation: instances, routing, KV store, KV transfers and SLO tiers.

Life of a request: it arrives (trace or synthetic), gets an SLO tier, is routed to a
prefill (or colocated) instance, and looks its prompt's prefix blocks up in that
instance's HBM prefix cache and in the shared pool (DRAM on memory servers placed by
consistent hashing, then SSD). If fetching the pool's longer prefix over the network is
quicker than recomputing it, it is fetched (``prefix_fetch`` bytes) before the request
joins the instance's queue; otherwise the local hit is used. After prefill, the prompt's
blocks enter the local cache and the pool (``prefix_store`` bytes, written behind). With
PD disaggregation the prompt's KV (kv_bytes_per_token x prompt, GQA/MLA aware) then moves
to the decode instance with the most free KV memory (``kv_transfer`` bytes); decoding
starts when it has arrived. Optional admission control (serving.admission) rejects a
request whose predicted TTFT or TBT misses its tier's target, or whose joining would push
an admitted request's tier past its TBT target. Every figure is gathered by
serving.metrics.

With a ``fabric:`` section the instances and memory servers are placed on a planned fabric
and every transfer crosses its routed links (serving.fabric); without one the network is
the NIC ports and optional core below, as before.
"""

from __future__ import annotations

import contextlib
import gc
import math
from array import array
from collections import deque
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np

from aifabric.des import Simulator
from aifabric.errors import ConfigError
from aifabric.serving.admission import POOL, Admission
from aifabric.serving.autoscale import Autoscaler, check_autoscale, pool_policy, pool_sizes
from aifabric.serving.compute import IterationTiming
from aifabric.serving.config import ServeScenario
from aifabric.serving.estimate import check_serving_work, synthetic_figures
from aifabric.serving.fabric import FabricPaths, scenario_fabric
from aifabric.serving.instance import Instance
from aifabric.serving.kvstore import ConsistentHashRing, KVStore, Tier
from aifabric.serving.kvstore.flat import FlatPrefixCache
from aifabric.serving.kvstore.trie import Match
from aifabric.serving.network import FlowNetwork
from aifabric.serving.pools import pool_keys, pool_timings
from aifabric.serving.request import Request
from aifabric.serving.routing import make_router
from aifabric.serving.source import Workload, load_workload, trace_figures

Progress = Callable[[int, int], None]
Path = tuple[tuple[int, ...], tuple[float, ...] | None]  # links, weights (None: all 1)


@contextlib.contextmanager
def _rare_gc() -> Iterator[None]:
    """Run the event loop with the cyclic garbage collector's first generation collected
    every 100,000 allocations instead of 700: a run allocates millions of short-lived,
    acyclic objects (events, requests), and each collection otherwise walks the young
    ones again (about 6 % of a 200,000-request run). Memory is reclaimed by reference
    counting as before; only the rare cycles (callbacks) wait a little longer."""
    first, second, third = gc.get_threshold()
    gc.set_threshold(100_000, second, third)
    try:
        yield
    finally:
        gc.set_threshold(first, second, third)


class ServingSimulation:
    """Build from a validated scenario, then ``run()`` for the metrics dictionary."""

    def __init__(self, scenario: ServeScenario, *, progress: Progress | None = None,
                 max_work: float | None = None, shared: Any = None) -> None:  # fmt: skip
        """Raises WorkLimitError (aifabric.guards) when the run's estimated events or
        time-series samples exceed their limits, before the workload is drawn; ``max_work``
        replaces those limits (None: the defaults).

        ``shared``: run on a cluster's shared network (:mod:`aifabric.cluster`): an object
        with ``sim`` (the cluster's simulator), ``network`` (its FlowNetwork), ``fabric``
        (the BuiltFabric the KV flows cross) and ``gpus`` ([lo, hi) held there). The
        cluster then drives the clock: ``start()``, the cluster's run, ``summary()``."""
        from aifabric.spec.scenario import _model

        self.scenario = sc = scenario
        fabric_opts = scenario_fabric(sc)
        if shared is not None:
            if fabric_opts is not None:
                raise ConfigError("a serving workload of a cluster takes the cluster's fabric; "
                                  "drop its fabric: section")  # fmt: skip
            fabric_opts = {"routing": shared.fabric.routing, "qps": 1, "placement": "contiguous"}
        self.horizon: float | None = None  # the summary's end of time (None: the clock's)
        self.rng = np.random.default_rng(sc.seed)
        self.sim = Simulator() if shared is None else shared.sim
        self.progress = progress
        self.model = _model(sc.model)
        cl = sc.cluster
        store = sc.kv_store
        self.store_enabled = store.enabled

        key_c, key_p, key_d = pool_keys(sc)
        tp_p, tp_d = pool_timings(sc, self.model)
        check_autoscale(sc)
        if sc.workload.source != "trace":  # a trace's size is known once it is read
            check_serving_work(sc, tp_p, tp_d, synthetic_figures(sc), max_work)
        self.workload: Workload = load_workload(sc, self.rng)
        if sc.workload.source == "trace":
            check_serving_work(sc, tp_p, tp_d, trace_figures(self.workload), max_work)
        self.block_tokens = self.workload.block_tokens
        self.instances: list[Instance] = []
        self.network = (FlowNetwork(self.sim, latency=sc.network.latency_s)
                        if shared is None else shared.network)  # fmt: skip
        if tp_d is None:
            self.entry = [self._instance("colocated", tp_p, key_c) for _ in range(cl.instances)]
            self.decoders: list[Instance] = []
        else:
            self.entry = [
                self._instance("prefill", tp_p, key_p) for _ in range(cl.prefill_instances)
            ]
            self.decoders = [
                self._instance("decode", tp_d, key_d) for _ in range(cl.decode_instances)
            ]
        # Network: each instance's NICs (tp x per-GPU NIC) as one egress and one ingress port;
        # with a fabric, its GPUs' NIC ports on the fabric instead (added with the fabric).
        total_nic = 0.0
        for inst in self.instances if fabric_opts is None else ():
            total_nic += self._add_nics(inst)
        timings = {"colocated": tp_p} if tp_d is None else {"prefill": tp_p, "decode": tp_d}
        if sc.autoscale.enabled:  # the core is sized for the pools at their largest
            for role, (_, count) in pool_sizes(sc).items():
                grow = pool_policy(sc.autoscale, role).max_instances - count
                total_nic += grow * timings[role].tp * sc.network.nic_bandwidth
        # KV pool: DRAM on memory servers + SSD, one trie; blocks of bytes_per_block each.
        self.kv_bytes_per_token = self.entry[0].timing.kv_bytes_per_token
        self.block_bytes = self.block_tokens * self.kv_bytes_per_token
        self.pool: KVStore | None = None
        self.servers: list[tuple[int, int, int]] = []  # (tx, rx, ssd read) links
        self.ring: ConsistentHashRing | None = None
        if store.enabled:
            dram = store.dram
            tiers = [Tier("dram", dram.servers * dram.capacity_per_server / self.block_bytes)]
            if store.ssd.enabled:
                tiers.append(
                    Tier("ssd", dram.servers * store.ssd.capacity_per_server / self.block_bytes)
                )
            self.pool = KVStore(tiers, ttl=store.ttl)
            for s in range(dram.servers):
                total_nic += dram.nic_bandwidth
                self.servers.append((
                    self.network.add_link(f"mem{s}.tx", dram.nic_bandwidth),
                    self.network.add_link(f"mem{s}.rx", dram.nic_bandwidth),
                    self.network.add_link(f"mem{s}.ssd", store.ssd.read_bandwidth),
                ))  # fmt: skip
            self.ring = ConsistentHashRing([f"mem{s}" for s in range(dram.servers)])
        self._server_of: dict[int, int] = {}  # first prefix block -> memory server
        self.core = (
            self.network.add_link("core", total_nic / sc.network.oversubscription)
            if sc.network.oversubscription > 1 and fabric_opts is None
            else -1
        )
        self.fabric: FabricPaths | None = None
        if fabric_opts is not None:
            n = len(self.instances)
            pairs = [(p.index, d.index) for p in self.entry for d in self.decoders]
            for s in range(len(self.servers)):
                pairs += [(n + s, i.index) for i in self.entry]
                pairs += [(i.index, n + s) for i in self.entry]
            self.fabric = FabricPaths(
                fabric_opts, self.network, [i.timing.tp for i in self.instances],
                [i.role for i in self.instances], len(self.servers), sc.seed, pairs, max_work,
                None if shared is None else (shared.fabric, shared.gpus),
            )  # fmt: skip
        self.router = make_router(sc.routing.policy)
        self.admission = Admission(self)
        self.tiers = sc.slo.tiers
        self.pending: deque[Request] = deque()  # PD: waiting for decode memory
        # counters and records
        self.arrived = 0
        self.tier_arrivals: dict[int, int] = {}
        self.rejected = 0
        self.rejected_by: dict[str, int] = {}
        self.records: list[Request] = []
        self.rejected_reqs: list[Request] = []
        self.queue_depth = 0
        # queue depth after every change, and when (compact arrays: two changes a request)
        self.queue_times = array("d", [0.0])
        self.queue_depths = array("q", [0])
        self.prompt_tokens = 0
        self.hits = {"hbm": 0, "dram": 0, "ssd": 0}
        self.fetch_skipped = 0
        self._next_id = 0
        self._progress_every = max(1, self.workload.total // 200)
        self.autoscaler = Autoscaler(self, timings)  # fixed pools without autoscale.enabled

    # ----- construction -------------------------------------------------------------------
    def _add_nics(self, inst: Instance) -> float:
        """The instance's NICs (tp x per-GPU NIC) as one egress and one ingress port."""
        bw = inst.timing.tp * self.scenario.network.nic_bandwidth
        inst.egress = self.network.add_link(f"{inst.name}.tx", bw)
        inst.ingress = self.network.add_link(f"{inst.name}.rx", bw)
        return bw

    def add_instance(self, role: str, timing: IterationTiming, key: str) -> Instance:
        """A new instance of an elastic pool (serving.autoscale), not yet routed work."""
        inst = self._instance(role, timing, key)
        self._add_nics(inst)
        return inst

    def retire(self, inst: Instance) -> None:
        self.autoscaler.retire(inst)

    def decode_room(self) -> None:
        """A decode instance has joined: move waiting KV to it."""
        self._start_transfers()

    def _instance(self, role: str, timing: IterationTiming, key: str) -> Instance:
        sc = self.scenario
        kv_tokens = timing.kv_tokens(sc.cluster.gpu_memory_utilization)
        if kv_tokens < 1:
            raise ConfigError(
                f"scenario key {key}: {self.model.name} leaves no HBM for KV cache on "
                f"{timing.tp} x {timing.gpu.name} at gpu_memory_utilization="
                f"{sc.cluster.gpu_memory_utilization}; raise the TP degree"
            )
        cache = None
        if sc.kv_store.enabled and role != "decode" and sc.kv_store.hbm_cache_fraction > 0:
            cache_blocks = kv_tokens * sc.kv_store.hbm_cache_fraction / self.block_tokens
            kv_tokens *= 1 - sc.kv_store.hbm_cache_fraction
            cache = FlatPrefixCache(Tier("hbm", cache_blocks), ttl=sc.kv_store.ttl)
        index = len(self.instances)
        inst = Instance(
            self, index, role, timing, policy=sc.batching.policy,
            max_batch_size=sc.batching.max_batch_size,
            max_batch_tokens=sc.batching.max_batch_tokens, kv_capacity=kv_tokens, cache=cache,
        )  # fmt: skip
        self.instances.append(inst)
        return inst

    # ----- helpers used by routers --------------------------------------------------------
    def local_match_blocks(self, req: Request) -> dict[int, int]:
        """Leading prompt blocks each entry instance holds in its HBM prefix cache."""
        if not req.blocks:
            return {}
        now = self.sim.now
        return {i.index: i.cache.peek(req.blocks, now) for i in self.entry if i.cache is not None}

    def pool_match_blocks(self, req: Request) -> int:
        if self.pool is None or not req.blocks:
            return 0
        return self.pool.peek(req.blocks, self.sim.now)

    def cached_tokens(self, req: Request, blocks: int) -> int:
        """Prompt tokens reusable from ``blocks`` leading blocks (at least one is computed)."""
        return max(0, min(blocks * self.block_tokens, req.prefill_len - 1))

    # ----- run ----------------------------------------------------------------------------
    def run(self) -> dict[str, Any]:
        import time

        from aifabric.serving.metrics import summarize

        wall = time.perf_counter()
        self.start()
        until = self.scenario.max_sim_time_s
        with _rare_gc():
            if self.scenario.autoscale.enabled:
                self._run_elastic(math.inf if until is None else until)
            else:
                self.sim.run(math.inf if until is None else until)
        result = summarize(self)
        result["wall_s"] = time.perf_counter() - wall
        return result

    def start(self) -> None:
        """Schedule the first arrival (``run`` does; the cluster simulator calls it)."""
        wl = self.workload
        if wl.times.shape[0]:
            self.sim.schedule_at(float(wl.times[0]), self._arrival, 0)

    def last_activity(self) -> float:
        """When the deployment last did something a summary counts: the last request's
        finish or rejection (0 before any)."""
        ends = [r.finish for r in self.records if r.finish == r.finish]
        ends += [r.arrival for r in self.rejected_reqs]
        return max(ends, default=0.0)

    def _run_elastic(self, until: float) -> None:
        """Simulator.run, but stop when only the autoscaler's own events (its next decision,
        model loads) are left, so the clock ends at the last piece of work as without
        autoscale."""
        sim = self.sim
        while True:
            next_time = sim.peek()
            if next_time == math.inf or next_time > until:
                break
            if self.autoscaler.only_own_left(next_time):
                break
            sim.step()
        if until != math.inf:
            sim.now = max(sim.now, until)

    def _arrival(self, i: int) -> None:
        wl = self.workload
        nxt = i + 1
        if nxt < wl.times.shape[0]:
            self.sim.schedule_at(float(wl.times[nxt]), self._arrival, nxt)
        session = int(wl.sessions[i])
        req = self._new_request(
            int(wl.prompts[i]), int(wl.outputs[i]), int(wl.tiers[i]), session, 0,
            wl.blocks_for(i, session, 0, int(wl.prompts[i])),
        )  # fmt: skip
        self._admit(req)

    def _new_request(self, prompt: int, output: int, tier: int, session: int, turn: int,
                     blocks: list[int] | None) -> Request:  # fmt: skip
        req = Request(self._next_id, self.sim.now, max(1, prompt), max(1, output), tier,
                      self.tiers[tier].priority, blocks if self.store_enabled else None,
                      session, turn)  # fmt: skip
        self._next_id += 1
        self.arrived += 1
        self.tier_arrivals[tier] = self.tier_arrivals.get(tier, 0) + 1
        self.prompt_tokens += req.prompt
        if self.progress is not None and self.arrived % self._progress_every == 0:
            self.progress(self.arrived, self.workload.total)
        return req

    def _reject(self, req: Request, reason: str) -> None:
        if req.group != -2:  # refused after admission (slo.early_rejection: none)
            self.admission.done(req)
            self.admission.rejected_prefill_tokens += req.prefill_len - req.cached
        self.rejected += 1
        self.rejected_by[reason] = self.rejected_by.get(reason, 0) + 1
        self.rejected_reqs.append(req)
        self._next_turn(req)

    def _admit(self, req: Request) -> None:
        need_entry = req.prompt + (req.output if self.scenario.cluster.mode == "colocated" else 0)
        fits = any(need_entry <= inst.kv_capacity for inst in self.entry)
        if self.decoders:
            fits = fits and any(req.prompt + req.output <= d.kv_capacity for d in self.decoders)
        if not fits:
            self._reject(req, "too_long")
            return
        inst = self.router(self, req)
        if need_entry > inst.kv_capacity:
            inst = next(i for i in self.entry if need_entry <= i.kv_capacity)
        fetch = self._plan_cache(req, inst)
        adm = self.admission
        if adm.enabled:
            adm.offer(req, inst)
            ttft = adm.ttft(req, inst, fetch[0])
            if ttft > adm.slack * self.tiers[req.tier].ttft_s:
                self._reject(req, "slo")
                return
            if adm.mode != "none" and not adm.tbt_ok(req, inst, adm.mode, ttft):
                self._reject(req, "slo_tbt")
                return
        adm.commit(req, POOL if self.decoders else inst.index)
        if fetch[1] <= 0:
            inst.enqueue(req)
            return
        self._fetch(req, inst, fetch[1], fetch[2])

    # ----- KV store -----------------------------------------------------------------------
    def reuse_choice(self, req: Request, inst: Instance, local: int,
                     pool: Match | None) -> tuple[int, int, int, float]:  # fmt: skip
        """Fetch or recompute on ``inst``: (blocks reused, DRAM and SSD blocks to fetch,
        fetch time). The pool's longer prefix is fetched only when fetching it and
        prefilling the rest beats prefilling everything beyond the ``local`` HBM match
        (routers call this too, so the plan is the one they costed)."""
        if pool is None or pool.blocks <= local:
            return local, 0, 0, 0.0
        in_dram = pool.per_tier[0]
        dram_fetch = max(0, in_dram - local)
        ssd_fetch = pool.blocks - max(local, in_dram)
        fetch_time = self._fetch_estimate(req, inst, dram_fetch, ssd_fetch)
        timing = inst.timing
        recompute = timing.prefill_time(req.prefill_len, self.cached_tokens(req, local))
        fetched = timing.prefill_time(req.prefill_len, self.cached_tokens(req, pool.blocks))
        if fetch_time + fetched < recompute:
            return pool.blocks, dram_fetch, ssd_fetch, fetch_time
        return local, 0, 0, 0.0

    def _plan_cache(self, req: Request, inst: Instance) -> tuple[float, int, int]:
        """Set the request's reusable prefix; return (fetch time, DRAM, SSD blocks to fetch)."""
        if not req.blocks:
            return 0.0, 0, 0
        now = self.sim.now
        local = inst.cache.match(req.blocks, now).blocks if inst.cache is not None else 0
        match = self.pool.match(req.blocks, now) if self.pool is not None else None
        best, dram_fetch, ssd_fetch, fetch_time = self.reuse_choice(req, inst, local, match)
        if match is not None and match.blocks > local and best == local:
            self.fetch_skipped += 1
        req.cached = self.cached_tokens(req, best)
        # Tokens reused, by where they came from (a partial last block counts once).
        local_tokens = min(local * self.block_tokens, req.cached)
        dram_tokens = min(dram_fetch * self.block_tokens, req.cached - local_tokens)
        req.hit_local = local_tokens
        req.hit_dram = dram_tokens
        req.hit_ssd = req.cached - local_tokens - dram_tokens
        self.hits["hbm"] += req.hit_local
        self.hits["dram"] += req.hit_dram
        self.hits["ssd"] += req.hit_ssd
        return fetch_time, dram_fetch, ssd_fetch

    def _server_index(self, req: Request) -> int:
        """The memory server owning this prefix (consistent hash of its first block)."""
        assert self.ring is not None and req.blocks
        key = req.blocks[0]
        server = self._server_of.get(key)
        if server is None:
            server = self._server_of[key] = int(self.ring.server_for(req.blocks)[3:])
        return server

    def _server_links(self, req: Request) -> tuple[int, int, int]:
        """(tx, rx, ssd read) links of the memory server owning this prefix."""
        return self.servers[self._server_index(req)]

    def _path(self, *links: int) -> tuple[int, ...]:
        return (*links, self.core) if self.core >= 0 else links

    def _between(self, before: tuple[int, ...], src: int, dst: int,
                 after: tuple[int, ...] = ()) -> Path:  # fmt: skip
        """Links ``before`` (weight 1), the fabric path from party src to dst, ``after``."""
        assert self.fabric is not None
        links, weights = self.fabric.path(src, dst)
        return ((*before, *links, *after),
                (*(1.0 for _ in before), *weights, *(1.0 for _ in after)))  # fmt: skip

    def _fetch_legs(self, req: Request, inst: Instance, dram: int,
                    ssd: int) -> list[tuple[Path, float]]:  # fmt: skip
        """(path, bytes) of a prefix fetch: DRAM blocks over the memory server's NIC, SSD
        blocks through its SSD read link first."""
        server = self._server_index(req)
        tx, _, disk = self.servers[server]
        legs: list[tuple[Path, float]] = []
        if self.fabric is not None:
            party = len(self.instances) + server
            if dram:
                legs.append((self._between((tx,), party, inst.index), dram * self.block_bytes))
            if ssd:
                legs.append((self._between((disk, tx), party, inst.index),
                             ssd * self.block_bytes))  # fmt: skip
            return legs
        if dram:
            legs.append(((self._path(tx, inst.ingress), None), dram * self.block_bytes))
        if ssd:
            legs.append(((self._path(disk, tx, inst.ingress), None), ssd * self.block_bytes))
        return legs

    def _fetch_estimate(self, req: Request, inst: Instance, dram: int, ssd: int) -> float:
        legs = self._fetch_legs(req, inst, dram, ssd)
        return max((self.network.nominal_time(path, size, weights)
                    for (path, weights), size in legs), default=0.0)  # fmt: skip

    def _fetch(self, req: Request, inst: Instance, dram: int, ssd: int) -> None:
        legs = self._fetch_legs(req, inst, dram, ssd)
        waiting = [len(legs)]
        inst.inbound += 1

        def done() -> None:
            waiting[0] -= 1
            if waiting[0] == 0:
                inst.inbound -= 1
                inst.enqueue(req)

        for (path, weights), size in legs:
            self.network.start(path, size, "prefix_fetch", done, weights)

    # ----- callbacks from instances -------------------------------------------------------
    def queue_changed(self, delta: int) -> None:
        self.queue_depth += delta
        self.queue_times.append(self.sim.now)
        self.queue_depths.append(self.queue_depth)

    def decode_gate(self, req: Request, inst: Instance) -> bool:
        """``slo.early_rejection: none``: the TBT check when a prefilled request reaches
        the decode stage (False: it was rejected there, its prefill wasted)."""
        adm = self.admission
        if not adm.enabled or adm.mode != "none" or req.preemptions:
            return True
        if adm.tbt_ok(req, inst, "gate"):
            return True
        self._reject(req, "slo_decode")
        return False

    def prefilled(self, req: Request, inst: Instance) -> None:
        now = self.sim.now
        if req.blocks and req.preemptions == 0:
            if inst.cache is not None:
                inst.cache.insert(req.blocks, now)
            if self.pool is not None:
                added = self.pool.insert(req.blocks, now)
                if added:
                    server = self._server_index(req)
                    _, rx, _ = self.servers[server]
                    if self.fabric is None:
                        path: Path = (self._path(inst.egress, rx), None)
                    else:
                        path = self._between((), inst.index, len(self.instances) + server, (rx,))
                    self.network.start(path[0], added * self.block_bytes, "prefix_store",
                                       None, path[1])  # fmt: skip
        if inst.role != "prefill":
            return
        if req.generated >= req.output:  # one-token answer: no decode phase
            inst.release(req.held)
            req.held = 0
            self.finished(req, inst)
            return
        if not self.decode_gate(req, inst):
            inst.release(req.held)
            req.held = 0
            inst.poke()
            return
        self.pending.append(req)
        self._start_transfers(inst)

    def _start_transfers(self, source: Instance | None = None) -> None:
        """Move pending prefilled KV to decode instances with room, oldest first."""
        while self.pending:
            req = self.pending[0]
            tokens = req.prefill_len
            order = sorted(self.decoders, key=lambda d: (d.kv_used / d.kv_capacity, d.index))
            target = next((d for d in order if d.reserve(tokens)), None)
            if target is None:
                return
            self.pending.popleft()
            prefill = self.instances[req.instance]
            size = tokens * self.kv_bytes_per_token
            req.decode_instance = target.index

            def arrived(req: Request = req, prefill: Instance = prefill,
                        target: Instance = target, tokens: int = tokens) -> None:  # fmt: skip
                prefill.release(req.held)
                req.held = tokens
                req.kv_ready = self.sim.now
                target.receive(req)
                prefill.poke()

            if self.fabric is None:
                self.network.start(self._path(prefill.egress, target.ingress), size,
                                   "kv_transfer", arrived)  # fmt: skip
            else:
                links, weights = self.fabric.path(prefill.index, target.index)
                self.network.start(links, size, "kv_transfer", arrived, weights)

    def preempted(self, req: Request, inst: Instance) -> None:
        """A decode instance dropped a request: recompute it on a prefill instance."""
        target = min(self.entry, key=lambda i: (i.outstanding, i.index))
        target.enqueue(req)
        self._start_transfers()

    def finished(self, req: Request, inst: Instance) -> None:
        req.finish = req.last_token
        self.records.append(req)
        start = req.kv_ready if inst.role == "decode" else req.first_token
        self.admission.done(req, start if req.output > 1 else None)
        if inst.role == "decode" and self.pending:
            self._start_transfers()
        self._next_turn(req)

    def _next_turn(self, req: Request) -> None:
        if req.session < 0:
            return
        nxt = self.workload.turn(req.session, req.turn + 1, req.prompt, req.output)
        if nxt is None:
            return
        prompt, output, think = nxt
        done_at = req.finish if not math.isnan(req.finish) else self.sim.now
        self.sim.schedule_at(max(self.sim.now, done_at + think), self._turn_arrival, req,
                             prompt, output)  # fmt: skip

    def _turn_arrival(self, prev: Request, prompt: int, output: int) -> None:
        blocks = self.workload.blocks_for(-1, prev.session, prev.turn + 1, prompt)
        req = self._new_request(prompt, output, prev.tier, prev.session, prev.turn + 1, blocks)
        self._admit(req)
