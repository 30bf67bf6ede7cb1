"""Dependency-free SVG charts: bytes per network tier for one or more fabrics/placements."""

from __future__ import annotations

import itertools
from html import escape

from aifabric.units import format_bytes

TIER_COLORS = {"scale_up": "#4c78a8", "leaf": "#59a14f", "spine": "#f28e2b", "core": "#e15759"}


def tier_traffic_svg(series: list[tuple[str, dict[str, float]]], *, title: str,
                     log: bool = True) -> str:  # fmt: skip
    """Grouped bars: for each (label, bytes by tier), one bar per tier (log scale by default).

    The scale-up bar is usually orders of magnitude above the rest, hence the log axis.
    """
    import math

    tiers = list(TIER_COLORS)
    width, height, left, top, bottom = 760, 360, 70, 50, 70
    plot_h = height - top - bottom
    values = [v for _, by in series for v in by.values() if v > 0]
    vmax = max(values) if values else 1.0
    vmin = min(values) if values else 1.0
    lo = math.floor(math.log10(vmin)) if log else 0.0
    hi = math.ceil(math.log10(vmax)) if log else vmax

    def y(v: float) -> float:
        if v <= 0:
            return float(top + plot_h)
        frac = (math.log10(v) - lo) / max(hi - lo, 1e-9) if log else v / hi
        return top + plot_h * (1 - max(0.0, min(1.0, frac)))

    group_w = (width - left - 20) / max(len(series), 1)
    bar_w = group_w * 0.8 / len(tiers)
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
           f'font-family="sans-serif" font-size="12">',
           '<rect width="100%" height="100%" fill="white"/>',
           f'<text x="{width / 2}" y="22" text-anchor="middle" font-size="15">{escape(title)}</text>']  # fmt: skip
    if log:
        for decade in range(int(lo), int(hi) + 1):
            yy = y(10.0**decade)
            out.append(
                f'<line x1="{left}" x2="{width - 20}" y1="{yy:.1f}" y2="{yy:.1f}" stroke="#ddd"/>'
            )
            out.append(f'<text x="{left - 6}" y="{yy + 4:.1f}" text-anchor="end">'
                       f"{escape(format_bytes(10.0**decade, digits=3))}</text>")  # fmt: skip
    for g, (label, by_tier) in enumerate(series):
        x0 = left + g * group_w + group_w * 0.1
        for t, tier in enumerate(tiers):
            v = by_tier.get(tier, 0.0)
            x, yy = x0 + t * bar_w, y(v)
            out.append(f'<rect x="{x:.1f}" y="{yy:.1f}" width="{bar_w * 0.9:.1f}" '
                       f'height="{top + plot_h - yy:.1f}" fill="{TIER_COLORS[tier]}">'
                       f"<title>{escape(label)} {tier}: {escape(format_bytes(v))}</title></rect>")  # fmt: skip
        out.append(f'<text x="{x0 + group_w * 0.4:.1f}" y="{top + plot_h + 18}" '
                   f'text-anchor="middle">{escape(label)}</text>')  # fmt: skip
    for t, tier in enumerate(tiers):
        lx = left + t * 120
        out.append(
            f'<rect x="{lx}" y="{height - 28}" width="12" height="12" fill="{TIER_COLORS[tier]}"/>'
        )
        out.append(f'<text x="{lx + 16}" y="{height - 18}">{tier}</text>')
    out.append("</svg>")
    return "\n".join(out) + "\n"


TIER_LINE_COLORS = ("#e6a700", "#7f7f7f", "#b5651d", "#4c78a8", "#59a14f", "#e15759")


def _cdf_panel(out: list[str], x0: float, y0: float, w: float, h: float, title: str,
               series: list[tuple[str, list[float]]], unit: float, unit_name: str) -> None:  # fmt: skip
    """A CDF per series on a log x axis (values in s, shown in ``unit_name``)."""
    import math

    values = [v for _, vs in series for v in vs if v > 0]
    out.append(f'<text x="{x0 + w / 2:.1f}" y="{y0 - 8:.1f}" text-anchor="middle">{escape(title)}</text>')  # fmt: skip
    out.append(f'<rect x="{x0}" y="{y0}" width="{w}" height="{h}" fill="none" stroke="#999"/>')
    if not values:
        return
    lo = math.floor(math.log10(min(values) / unit))
    hi = math.ceil(math.log10(max(values) / unit))
    hi = max(hi, lo + 1)

    def px(v: float) -> float:
        return x0 + w * (math.log10(max(v / unit, 10.0**lo)) - lo) / (hi - lo)

    for decade in range(lo, hi + 1):
        xx = x0 + w * (decade - lo) / (hi - lo)
        out.append(f'<line x1="{xx:.1f}" x2="{xx:.1f}" y1="{y0}" y2="{y0 + h}" stroke="#eee"/>')
        out.append(f'<text x="{xx:.1f}" y="{y0 + h + 14:.1f}" text-anchor="middle">{10.0**decade:g}</text>')  # fmt: skip
    out.append(f'<text x="{x0 + w / 2:.1f}" y="{y0 + h + 30:.1f}" text-anchor="middle">{unit_name} (log)</text>')  # fmt: skip
    for q in (0.5, 0.99):
        yy = y0 + h * (1 - q)
        out.append(f'<line x1="{x0}" x2="{x0 + w}" y1="{yy:.1f}" y2="{yy:.1f}" stroke="#ddd" stroke-dasharray="3,3"/>')  # fmt: skip
        out.append(f'<text x="{x0 - 4}" y="{yy + 4:.1f}" text-anchor="end">p{int(q * 100)}</text>')
    for i, (label, vs) in enumerate(series):
        data = sorted(v for v in vs if v > 0)
        if not data:
            continue
        n = len(data)
        step = max(1, n // 400)
        idx = [*range(0, n, step), n - 1]
        pts = " ".join(f"{px(data[j]):.1f},{y0 + h * (1 - (j + 1) / n):.1f}" for j in idx)
        color = TIER_LINE_COLORS[i % len(TIER_LINE_COLORS)]
        out.append(f'<polyline fill="none" stroke="{color}" stroke-width="2" points="{pts}">'
                   f"<title>{escape(label)}</title></polyline>")  # fmt: skip


def serving_svg(ttft: list[tuple[str, list[float]]], tbt: list[tuple[str, list[float]]],
                queue: tuple[list[float], list[int]], *, title: str) -> str:  # fmt: skip
    """Three panels: TTFT and TBT distributions (CDF) per SLO tier, queue depth over time."""
    width, height = 980, 400
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
           f'font-family="sans-serif" font-size="12">',
           '<rect width="100%" height="100%" fill="white"/>',
           f'<text x="{width / 2}" y="22" text-anchor="middle" font-size="15">{escape(title)}</text>']  # fmt: skip
    _cdf_panel(out, 50, 60, 260, 260, "TTFT per tier (CDF)", ttft, 1e-3, "ms")
    _cdf_panel(out, 370, 60, 260, 260, "TBT per request per tier (CDF)", tbt, 1e-3, "ms")
    # queue depth over time
    x0, y0, w, h = 690, 60, 270, 260
    times, depth = queue
    out.append(f'<text x="{x0 + w / 2}" y="{y0 - 8}" text-anchor="middle">requests waiting for prefill</text>')  # fmt: skip
    out.append(f'<rect x="{x0}" y="{y0}" width="{w}" height="{h}" fill="none" stroke="#999"/>')
    if times:
        tmax = max(times[-1], 1e-9)
        dmax = max(max(depth), 1)
        pts = " ".join(f"{x0 + w * t / tmax:.1f},{y0 + h * (1 - d / dmax):.1f}"
                       for t, d in zip(times, depth, strict=True))  # fmt: skip
        out.append(f'<polyline fill="none" stroke="#4c78a8" stroke-width="1" points="{pts}"/>')
        out.append(f'<text x="{x0 - 4}" y="{y0 + 4}" text-anchor="end">{dmax}</text>')
        out.append(f'<text x="{x0 - 4}" y="{y0 + h}" text-anchor="end">0</text>')
        out.append(f'<text x="{x0 + w}" y="{y0 + h + 14}" text-anchor="end">{tmax:,.0f} s</text>')
        out.append(f'<text x="{x0 + w / 2}" y="{y0 + h + 30}" text-anchor="middle">simulated time</text>')  # fmt: skip
    for i, (label, _) in enumerate(ttft):
        lx = 50 + i * 110
        color = TIER_LINE_COLORS[i % len(TIER_LINE_COLORS)]
        out.append(f'<rect x="{lx}" y="{height - 26}" width="14" height="4" fill="{color}"/>')
        out.append(f'<text x="{lx + 18}" y="{height - 20}">{escape(label)}</text>')
    out.append("</svg>")
    return "\n".join(out) + "\n"


def busbw_svg(series: list[tuple[str, list[float], list[float]]], *, title: str) -> str:
    """Bus bandwidth (GB/s) against message size (log2 axis), one line per series of
    (label, sizes in bytes, busbw in bytes/s): the nccl-tests plot."""
    import math

    width, height, left, top, plot_w, plot_h = 720, 380, 70, 40, 600, 260
    sizes = [s for _, xs, _ in series for s in xs]
    lo, hi = math.log2(min(sizes)), math.log2(max(sizes))
    ymax = max(b for _, _, ys in series for b in ys) / 1e9
    step = 10 ** math.floor(math.log10(max(ymax, 1e-9)))
    ymax = math.ceil(ymax / step) * step

    def x(s: float) -> float:
        return left + (math.log2(s) - lo) / max(hi - lo, 1e-9) * plot_w

    def y(b: float) -> float:
        return float(top + plot_h - b / 1e9 / ymax * plot_h)

    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
           f'font-family="sans-serif" font-size="12">',
           f'<text x="{width / 2}" y="20" text-anchor="middle" font-size="14">{title}</text>',
           f'<line x1="{left}" y1="{top + plot_h}" x2="{left + plot_w}" y2="{top + plot_h}" '
           'stroke="black"/>',
           f'<line x1="{left}" y1="{top}" x2="{left}" y2="{top + plot_h}" stroke="black"/>']  # fmt: skip
    for i in range(6):
        v = ymax * i / 5
        yy = top + plot_h - plot_h * i / 5
        out.append(f'<text x="{left - 6}" y="{yy + 4:.1f}" text-anchor="end">{v:g}</text>')
        out.append(f'<line x1="{left}" y1="{yy:.1f}" x2="{left + plot_w}" y2="{yy:.1f}" '
                   'stroke="#ddd"/>')  # fmt: skip
    from aifabric.units import format_bytes

    for s in sorted(set(sizes)):
        out.append(f'<text x="{x(s):.1f}" y="{top + plot_h + 16}" text-anchor="middle">'
                   f"{format_bytes(s, binary=True)}</text>")  # fmt: skip
    out.append(f'<text x="{left + plot_w / 2}" y="{top + plot_h + 34}" text-anchor="middle">'
               "message size</text>")  # fmt: skip
    out.append(f'<text x="16" y="{top + plot_h / 2}" transform="rotate(-90 16 '
               f'{top + plot_h / 2})" text-anchor="middle">busbw (GB/s)</text>')  # fmt: skip
    for i, (label, xs, ys) in enumerate(series):
        color = TIER_LINE_COLORS[(i + 3) % len(TIER_LINE_COLORS)]
        pts = " ".join(f"{x(s):.1f},{y(b):.1f}" for s, b in zip(xs, ys, strict=True))
        out.append(f'<polyline points="{pts}" fill="none" stroke="{color}" stroke-width="2"/>')
        ly = top + 12 + i * 16
        out.append(f'<line x1="{left + 12}" y1="{ly}" x2="{left + 32}" y2="{ly}" '
                   f'stroke="{color}" stroke-width="2"/>')  # fmt: skip
        out.append(f'<text x="{left + 38}" y="{ly + 4}">{label}</text>')
    out.append("</svg>")
    return "\n".join(out) + "\n"


STRATEGY_COLORS = ("#4c78a8", "#f28e2b", "#59a14f", "#e15759", "#b07aa1")


def strategies_svg(strategies: list[str], panels: list[tuple[str, str, list[float]]], *,
                   title: str) -> str:  # fmt: skip
    """Side-by-side bar panels, one per metric (title, unit, one value per strategy), the
    strategies in the same colors in every panel; each bar is labelled with its value."""
    n = len(panels)
    pw, ph, top, gap = 220, 200, 60, 24
    width = 20 + n * (pw + gap)
    height = top + ph + 80
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
           f'font-family="sans-serif" font-size="12">',
           '<rect width="100%" height="100%" fill="white"/>',
           f'<text x="{width / 2}" y="22" text-anchor="middle" font-size="15">{escape(title)}</text>']  # fmt: skip
    for k, (name, unit, values) in enumerate(panels):
        x0 = 20 + k * (pw + gap)
        vmax = max((v for v in values if v == v), default=1.0) or 1.0
        out.append(f'<text x="{x0 + pw / 2}" y="{top - 14}" text-anchor="middle">'
                   f"{escape(name)} ({escape(unit)})</text>")  # fmt: skip
        out.append(
            f'<line x1="{x0}" x2="{x0 + pw}" y1="{top + ph}" y2="{top + ph}" stroke="#999"/>'
        )
        bw = pw / max(len(values), 1)
        for i, v in enumerate(values):
            h = 0.0 if v != v else ph * v / (vmax * 1.1)
            x = x0 + i * bw + bw * 0.1
            out.append(f'<rect x="{x:.1f}" y="{top + ph - h:.1f}" width="{bw * 0.8:.1f}" '
                       f'height="{h:.1f}" fill="{STRATEGY_COLORS[i % len(STRATEGY_COLORS)]}">'
                       f"<title>{escape(strategies[i])}: {v:.4g} {escape(unit)}</title></rect>")  # fmt: skip
            label = "-" if v != v else (f"{v:.3g}" if abs(v) < 1000 else f"{v:,.0f}")
            out.append(f'<text x="{x + bw * 0.4:.1f}" y="{top + ph - h - 4:.1f}" '
                       f'text-anchor="middle" font-size="10">{escape(label)}</text>')  # fmt: skip
    for i, s in enumerate(strategies):
        lx = 20 + i * 170
        out.append(f'<rect x="{lx}" y="{height - 30}" width="12" height="12" '
                   f'fill="{STRATEGY_COLORS[i % len(STRATEGY_COLORS)]}"/>')  # fmt: skip
        out.append(f'<text x="{lx + 16}" y="{height - 20}">{escape(s)}</text>')
    out.append("</svg>")
    return "\n".join(out) + "\n"


def _nice_ticks(lo: float, hi: float, n: int = 5) -> list[float]:
    """About n round tick values covering [lo, hi] (1, 2 or 5 times a power of ten apart)."""
    import math

    span = max(hi - lo, abs(hi) * 1e-9, 1e-12)
    raw = span / n
    mag = 10 ** math.floor(math.log10(raw))
    step = next(m * mag for m in (1, 2, 5, 10) if m * mag >= raw)
    first = math.floor(lo / step) * step
    return [first + i * step for i in range(math.ceil((hi - first) / step) + 1)]


def pareto_svg(points: list[tuple[float, float, str]], front: list[tuple[float, float]], *,
               title: str, x_label: str, y_label: str) -> str:  # fmt: skip
    """A scatter of feasible sweep points (x, y, group label; one colour per group) with
    the Pareto front (both objectives minimised) drawn as the staircase of its points."""
    width, height, left, top, plot_w, plot_h = 720, 420, 80, 40, 600, 300
    xs = _nice_ticks(min(p[0] for p in points), max(p[0] for p in points))
    ys = _nice_ticks(min(p[1] for p in points), max(p[1] for p in points))

    def x(v: float) -> float:
        return left + (v - xs[0]) / (xs[-1] - xs[0]) * plot_w

    def y(v: float) -> float:
        return top + plot_h - (v - ys[0]) / (ys[-1] - ys[0]) * plot_h

    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
           f'font-family="sans-serif" font-size="12">',
           f'<text x="{width / 2}" y="20" text-anchor="middle" font-size="14">{title}</text>',
           f'<rect x="{left}" y="{top}" width="{plot_w}" height="{plot_h}" fill="none" '
           'stroke="black"/>']  # fmt: skip
    for v in xs:
        out.append(f'<line x1="{x(v):.1f}" y1="{top}" x2="{x(v):.1f}" y2="{top + plot_h}" '
                   f'stroke="#eee"/><text x="{x(v):.1f}" y="{top + plot_h + 16}" '
                   f'text-anchor="middle">{v:g}</text>')  # fmt: skip
    for v in ys:
        out.append(f'<line x1="{left}" y1="{y(v):.1f}" x2="{left + plot_w}" y2="{y(v):.1f}" '
                   f'stroke="#eee"/><text x="{left - 6}" y="{y(v) + 4:.1f}" '
                   f'text-anchor="end">{v:g}</text>')  # fmt: skip
    out.append(f'<text x="{left + plot_w / 2}" y="{top + plot_h + 36}" '
               f'text-anchor="middle">{x_label}</text>')  # fmt: skip
    out.append(f'<text x="18" y="{top + plot_h / 2}" transform="rotate(-90 18 '
               f'{top + plot_h / 2})" text-anchor="middle">{y_label}</text>')  # fmt: skip
    groups = list(dict.fromkeys(g for _, _, g in points))
    for px, py, g in points:
        color = STRATEGY_COLORS[groups.index(g) % len(STRATEGY_COLORS)]
        out.append(f'<circle cx="{x(px):.1f}" cy="{y(py):.1f}" r="3" fill="{color}" '
                   'fill-opacity="0.6"/>')  # fmt: skip
    stair = sorted(front)
    if stair:
        path = [f"{x(stair[0][0]):.1f},{y(stair[0][1]):.1f}"]
        for (_, y0), (x1, y1) in itertools.pairwise(stair):
            path += [f"{x(x1):.1f},{y(y0):.1f}", f"{x(x1):.1f},{y(y1):.1f}"]
        out.append(f'<polyline points="{" ".join(path)}" fill="none" stroke="black" '
                   'stroke-width="1.5"/>')  # fmt: skip
        for px, py in stair:
            out.append(f'<circle cx="{x(px):.1f}" cy="{y(py):.1f}" r="5" fill="none" '
                       'stroke="black" stroke-width="1.5"/>')  # fmt: skip
    for i, g in enumerate(groups):
        ly = top + 14 + i * 16
        color = STRATEGY_COLORS[i % len(STRATEGY_COLORS)]
        out.append(f'<circle cx="{left + plot_w - 150}" cy="{ly}" r="4" fill="{color}"/>'
                   f'<text x="{left + plot_w - 140}" y="{ly + 4}">{g}</text>')  # fmt: skip
    ly = top + 14 + len(groups) * 16
    out.append(f'<circle cx="{left + plot_w - 150}" cy="{ly}" r="5" fill="none" '
               f'stroke="black"/><text x="{left + plot_w - 140}" y="{ly + 4}">'
               "Pareto front</text>")  # fmt: skip
    out.append("</svg>")
    return "\n".join(out) + "\n"
