"""Dependency-free SVG charts: bytes per network tier for one or more fabrics/placements."""

from __future__ import annotations

from html import escape

from aifabric.units import format_bytes

TIER_COLOURS = {"scale-up": "#4c78a8", "leaf": "#59a14f", "spine": "#f28e2b", "core": "#e15759"}


def tier_traffic_svg(series: list[tuple[str, dict[str, float]]], *, title: str,
                     log: bool = True) -> str:  # fmt: skip
    """Grouped bars: for each (label, bytes by tier), one bar per tier (log scale by default).

    The scale-up bar is usually orders of magnitude above the rest, hence the log axis.
    """
    import math

    tiers = list(TIER_COLOURS)
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
                       f'height="{top + plot_h - yy:.1f}" fill="{TIER_COLOURS[tier]}">'
                       f"<title>{escape(label)} {tier}: {escape(format_bytes(v))}</title></rect>")  # fmt: skip
        out.append(f'<text x="{x0 + group_w * 0.4:.1f}" y="{top + plot_h + 18}" '
                   f'text-anchor="middle">{escape(label)}</text>')  # fmt: skip
    for t, tier in enumerate(tiers):
        lx = left + t * 120
        out.append(
            f'<rect x="{lx}" y="{height - 28}" width="12" height="12" fill="{TIER_COLOURS[tier]}"/>'
        )
        out.append(f'<text x="{lx + 16}" y="{height - 18}">{tier}</text>')
    out.append("</svg>")
    return "\n".join(out) + "\n"
