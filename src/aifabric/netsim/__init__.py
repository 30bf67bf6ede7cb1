"""Flow-level network simulation: max-min fair sharing of link capacity among flows."""
