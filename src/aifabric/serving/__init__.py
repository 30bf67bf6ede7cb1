"""LLM-serving workloads and simulation (trace readers and statistics so far)."""
