"""Chrome trace-event JSON of a simulated step (opens in Perfetto / chrome://tracing).

One track per pipeline stage of the data-parallel replica that ends the step: each
forward and backward pass is a slice (its exposed TP / CP / EP time inside it is in the
slice's args), then the exposed gradient reduction and the optimizer step. Times in us,
as the trace-event format asks (Google, *Trace Event Format*, "X" complete events).
"""

from __future__ import annotations

import json
from typing import Any

US = 1e6


def trace_events(result: dict[str, Any], sim: dict[str, Any]) -> dict[str, Any]:
    sched, sm = sim["schedule"], sim["stage"]
    events: list[dict[str, Any]] = []
    for s, ops in enumerate(sched.timeline.ranks):
        events.append({"ph": "M", "name": "thread_name", "pid": 0, "tid": s,
                       "args": {"name": f"stage {s}"}})  # fmt: skip
        for op in ops:
            exposed = {d: float(v[s, op.chunk]) * US for d, v in sm.exposed.items()}
            events.append({"ph": "X", "pid": 0, "tid": s, "ts": op.start * US,
                           "dur": (op.end - op.start) * US, "cat": "compute",
                           "name": f"{'forward' if op.kind == 'F' else 'backward'} "
                                   f"mb{op.microbatch} chunk{op.chunk}",
                           "args": {"exposed_comm_us": exposed}})  # fmt: skip
        end = float(sched.rank_end[s])
        dp = float(sched.exposed_dp[s])
        if dp > 0:
            events.append({"ph": "X", "pid": 0, "tid": s, "ts": end * US, "dur": dp * US,
                           "cat": "comm", "name": "dp gradient reduce (exposed)"})  # fmt: skip
        events.append({"ph": "X", "pid": 0, "tid": s, "ts": (end + dp) * US,
                       "dur": sched.optimizer * US, "cat": "compute", "name": "optimizer step"})  # fmt: skip
    return {"traceEvents": events, "displayTimeUnit": "ms",
            "otherData": {"model": result["model"], "iteration_time_s": result["iteration_time_s"]}}  # fmt: skip


def write_trace(fh: Any, result: dict[str, Any], sim: dict[str, Any]) -> None:
    json.dump(trace_events(result, sim), fh)
