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


def timeline_svg(sim: dict[str, Any], *, title: str, width: int = 900) -> str:
    """An SVG of the step: one row per pipeline stage, forward (blue) and backward (orange)
    passes, the exposed gradient reduction (red) and the optimizer step (grey); time in s."""
    from html import escape

    sched = sim["schedule"]
    ranks = sched.timeline.ranks
    end = float(sched.iteration) or 1.0
    row, left, top = 22, 70, 40
    scale = (width - left - 20) / end
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" '
             f'height="{top + row * len(ranks) + 50}" font-family="sans-serif" font-size="11">',
             f'<text x="{left}" y="18" font-size="13">{escape(title)}</text>']  # fmt: skip
    for s, ops in enumerate(ranks):
        y = top + s * row
        parts.append(f'<text x="4" y="{y + 14}">stage {s}</text>')
        for op in ops:
            color = "#4c78a8" if op.kind == "F" else "#f58518"
            parts.append(f'<rect x="{left + op.start * scale:.2f}" y="{y}" '
                         f'width="{max((op.end - op.start) * scale, 0.3):.2f}" height="{row - 4}" '
                         f'fill="{color}"/>')  # fmt: skip
        t = float(sched.rank_end[s])
        for dur, color in ((float(sched.exposed_dp[s]), "#e45756"), (sched.optimizer, "#999999")):
            parts.append(f'<rect x="{left + t * scale:.2f}" y="{y}" width="{max(dur * scale, 0.3):.2f}" '
                         f'height="{row - 4}" fill="{color}"/>')  # fmt: skip
            t += dur
    y = top + row * len(ranks) + 16
    for k in range(6):
        x = left + k * (width - left - 20) / 5
        parts.append(f'<text x="{x:.1f}" y="{y}" text-anchor="middle">{end * k / 5:.2f} s</text>')
    parts.append(f'<text x="{left}" y="{y + 20}">forward (blue), backward (orange), exposed DP '
                 'reduce (red), optimizer (grey); gaps are pipeline bubbles</text></svg>')  # fmt: skip
    return "\n".join(parts)
