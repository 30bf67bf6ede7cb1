"""Topology builders, one file per family; all return a fabric.topology.Topology."""
