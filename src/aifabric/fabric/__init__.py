"""Fabric planning: topologies held in arrays, builders, bill of materials, cost, placement."""
