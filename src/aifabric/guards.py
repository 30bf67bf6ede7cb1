"""Resource guards: estimate a run's work up front and refuse one that would take minutes or
gigabytes, saying the estimate and how to lift the limit.

Every expensive entry point (``ServingSimulation``, ``training_traffic``, ``plan_fabric``)
takes ``max_work: float | None``: None checks each estimate against its default limit
below; a number replaces every limit of that call (the CLI's ``--max-work``). Estimates are
cheap closed forms of the configuration, made before any large array is built.

Default limits, calibrated on the 2-core development machine (shared, so slower than a
quiet one) to refuse only runs that would take more than about ten minutes or about 8 GB:

- ``MAX_SERVE_EVENTS``: discrete events of a serving simulation. Measured: 20,000 Poisson
  requests (examples/serve/poisson-colocated.yaml) run 74,444 events in 2.0 s (37,000
  events/s); benchmarks/bench_serving.py's 1,000,000 requests run 3.65 M events at about
  7,000 requests/s (25,000 events/s); about 1 kB of request records per request. 2e7
  events is about 5.5 M requests: ~10 min and ~5 GB.
- ``MAX_SERVE_SAMPLES``: points of the queue-depth / queue-wait time series (simulated
  seconds / metrics.sample_interval_s). Measured: 1e7 samples add 1.0 s and 310 MB (31
  bytes a sample) to the summary; ``--timeseries`` formats each as a CSV row (~1 us). 5e7
  samples: ~1.5 GB and about a minute with the CSV.
- ``MAX_TRAINING_RANK_ROWS``: ranks x traffic rows of a training job, each row placing all
  ranks of its groups on scale-up domains. Measured: 8,388,608 ranks x 6 rows (tp 8, dp
  1,048,576) in 4.3 s and 411 MB (90 ns a rank-row, ~50 bytes a rank). 5e8 rank-rows: ~45 s
  and ~4 GB at 6 rows (memory grows with ranks, so the limit keeps headroom below 8 GB).
- ``MAX_PLAN_LINKS``: links of a planned fabric (endpoint links x tiers). Measured: a
  3-tier 700,000-GPU fabric of 2.1 M links builds in 0.42 s and 208 MB (~80 bytes a link
  plus the placement and bill of materials after it). 5e7 links: ~10 s and ~4 GB to build,
  leaving room for a job's placement on it.
- ``MAX_CLUSTER_FLOW_GROUPS``: flow groups a training workload of ``simulate cluster``
  starts in one run (steps in the duration x its phases' chunks, plus its data read and
  step end). Measured: Llama-3-8B TP8 PP2 DP4 on a 128-GPU fabric ran 1,695 groups (339
  steps) in 0.57 s, ~3,000 a second; each job runs twice (alone, shared), so 1e6 groups is
  about ten minutes.
"""

from __future__ import annotations

import math

from aifabric.errors import ConfigError

MAX_SERVE_EVENTS = 2e7
MAX_SERVE_SAMPLES = 5e7
MAX_TRAINING_RANK_ROWS = 5e8
MAX_PLAN_LINKS = 5e7
MAX_CLUSTER_FLOW_GROUPS = 1e6
# Serving instances: each holds its queues, KV accounting and caches (~6 kB and ~40 us to
# build, measured: 1e6 instances took 39 s and 6.2 GB), so 1e5 is ~4 s and ~0.6 GB.
MAX_SERVE_INSTANCES = 1e5

FLAG = "--max-work"


class WorkLimitError(ConfigError):
    """A run's estimated work is above its limit; the message gives the estimate, what it
    counts and the ``--max-work`` value that lifts the limit (a ConfigError: one line,
    exit status 2 in the CLI)."""


def limit_for(default: float, max_work: float | None) -> float:
    """The limit a check uses: ``max_work`` when given, else the named default.

    Raises:
        ConfigError: max_work is not a number > 0 (NaN, inf and <= 0 are refused).
    """
    if max_work is None:
        return default
    if isinstance(max_work, bool) or not isinstance(max_work, int | float):
        raise ConfigError(f"max_work(={max_work!r}) must be a number > 0")
    if not (math.isfinite(max_work) and max_work > 0):
        raise ConfigError(f"max_work(={max_work}) must be a finite number > 0")
    return float(max_work)


def check_work(what: str, estimate: float, limit: float, unit: str, *, basis: str = "") -> None:
    """Refuse a run whose estimated work is above ``limit``.

    Args:
        what: the run, e.g. ``"simulate serve"``.
        estimate: the estimated work, in ``unit`` (events, samples, rank-rows, links).
        limit: the largest estimate allowed (see ``limit_for``).
        unit: what the estimate counts.
        basis: how it was estimated, e.g. ``"requests x events per request"``.

    Raises:
        WorkLimitError: ``estimate > limit`` (a non-finite estimate is above any limit).
    """
    if estimate <= limit:
        return
    how = f" ({basis})" if basis else ""
    lift = _round_up(estimate) if math.isfinite(estimate) else None
    hint = (
        f"pass {FLAG} {format_number(lift)} to run it anyway"
        if lift is not None
        else "it cannot run; change the inputs"
    )
    raise WorkLimitError(
        f"{what}: ~{format_number(estimate)} {unit} estimated{how}, above the limit {format_number(limit)}; {hint}"
    )


def _round_up(value: float) -> float:
    """``value`` rounded up to two significant digits (the --max-work value that passes)."""
    if value <= 0:
        return value
    scale = 10.0 ** (math.floor(math.log10(value)) - 1)
    return math.ceil(value / scale * (1 - 1e-12)) * scale


def format_number(value: float) -> str:
    """Two significant digits, exponent without '+' or leading zeros: 3.5e9, 2e7, 740."""
    text = f"{value:.2g}"
    mantissa, sep, exponent = text.partition("e")
    return f"{mantissa}e{int(exponent)}" if sep else text


#: Flows in one step of ``simulate collective`` (a 100,000-GPU ring with 8 channels: 800,000,
#: a few seconds; all-to-all over 1,000 GPUs: 999,000, whose many distinct rates make
#: hundreds of events: minutes). Each event re-solves the step's live flows.
MAX_NETSIM_FLOWS = 1e6

#: (flow, link) entries of one sprayed step: a flow across a 3-tier fabric's cores spreads
#: over about 2u(1 + u2) links (radix-64 fat tree: ~2,000), so a 16,384-GPU permutation
#: is 3.3e7 (about 20 s); the engine holds ~40 bytes per entry.
MAX_NETSIM_SPRAY_ENTRIES = 5e7
