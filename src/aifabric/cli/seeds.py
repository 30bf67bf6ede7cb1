"""``aifabric seeds``: recompute the seed documents' worked examples."""

from __future__ import annotations

from aifabric.cli.edges import JsonFlag, emit_json


def seeds(as_json: JsonFlag = False) -> None:
    """Recompute every worked example of the seed documents and compare with the seeds."""
    from aifabric.traffic.seed_examples import all_examples

    examples = [e.to_dict() for e in all_examples()]
    if as_json:
        emit_json({"examples": examples})
        return
    from aifabric.report.tables import seeds_table

    seeds_table(examples)
