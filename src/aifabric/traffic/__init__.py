"""Analytic traffic models: collectives, training, inference, storage and the seeds' formulas."""
