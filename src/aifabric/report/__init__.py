"""Human-readable output: Rich tables for the CLI (JSON output needs none of this), SVG
figures for the README, and self-contained HTML reports (:func:`render_html`, in
:mod:`aifabric.report.html`, which imports Plotly only when called)."""

from __future__ import annotations

from typing import Any

__all__ = ["render_html"]


def render_html(command: str, results: list[dict[str, Any]], *, title: str | None = None) -> str:
    """One self-contained HTML report of ``results`` (``--json`` objects of ``command``)."""
    from aifabric.report.html import render

    return render(command, results, title=title)
