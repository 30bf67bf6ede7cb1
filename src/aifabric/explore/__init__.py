"""Design exploration: sweep files, their points, a local executor and a results store.

- :mod:`~aifabric.explore.expr`: the constraint language (a tiny, safe expression evaluator);
- :mod:`~aifabric.explore.sweep`: sweep files -> the list of points (grid, zip, range, sample);
- :mod:`~aifabric.explore.runners`: one point -> the same JSON object its CLI command prints;
- :mod:`~aifabric.explore.executor`: points run in local worker processes, in chunks;
- :mod:`~aifabric.explore.store`: rows in an embedded DuckDB file (imported only by commands);
- :mod:`~aifabric.explore.pareto`: the non-dominated set of feasible rows.

Nothing here is imported by ``import aifabric``; DuckDB loads only inside the commands.
"""
