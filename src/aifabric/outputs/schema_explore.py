"""Output models of ``aifabric sweep`` and ``aifabric results query|pareto|top`` (--json).

Rows of the results store have the columns of the stored sweeps (aifabric.explore.store),
which depend on the sweep, so a row is an open mapping here; the fixed parts are typed.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field

from aifabric.outputs.schema_base import Bytes, Out, PerS, Seconds


class SweepOutput(Out):
    """``aifabric sweep -f FILE``: what ran and what was stored."""

    sweep: str | None = Field(description="the sweep file's name: key, if any")
    command: str = Field(description="the command each point ran")
    db: str = Field(description="the results database file")
    grid_points: int = Field(description="points of the full grid (count)")
    points: int = Field(description="points after input constraints and sampling (count)")
    filtered_points: int | None = Field(description="grid points the input constraints removed")
    search_rounds: list[int] | None = Field(
        description="with search: points run in each round (the random start first)"
    )
    skipped_points: int = Field(description="points already stored, skipped by --resume")
    ran_points: int
    ok_points: int
    infeasible_points: int = Field(description="refused by the command or an output constraint")
    error_points: int = Field(description="points that raised an unexpected exception")
    stored_points: int = Field(description="rows in the database after the sweep")
    backend: Literal["local", "ray"] = Field(description="where the points ran (--backend)")
    workers: int
    wall_s: Seconds
    points_per_s: PerS | None = Field(description="points run per second of wall time")


class ResultsQueryOutput(Out):
    """``aifabric results query SQL``: the result set, one mapping per row."""

    columns: list[str]
    rows: list[dict[str, Any]] = Field(description="column -> value, in the stored units")
    wall_s: Seconds


class ParetoMetric(Out):
    column: str
    sense: Literal["minimize", "maximize"]


class ResultsParetoOutput(Out):
    """``aifabric results pareto``: the non-dominated feasible rows over the metrics."""

    metrics: list[ParetoMetric]
    candidate_points: int = Field(description="feasible rows compared (count)")
    rows: list[dict[str, Any]] = Field(description="column -> value of each Pareto row")
    wall_s: Seconds


class ResultsTopOutput(Out):
    """``aifabric results top``: the best feasible rows by a metric within each group."""

    metric: ParetoMetric
    by: list[str] = Field(description="the grouping columns (none: one group)")
    n: int = Field(description="rows kept per group (at most)")
    candidate_points: int = Field(description="feasible rows ranked (count)")
    groups: int = Field(description="groups among the candidates (count)")
    varied: list[str] = Field(description="input columns with more than one candidate value")
    rows: list[dict[str, Any]] = Field(
        description="column -> value of each kept row, with its rank (1 = best) in its group"
    )
    wall_s: Seconds


class ReportOutput(Out):
    """``aifabric report ... --json``: the HTML file written."""

    output: str = Field(description="the HTML report file")
    command: str = Field(description="the command whose results it shows")
    results: int = Field(description="results drawn together (count)")
    html_bytes: Bytes = Field(description="size of the file")
