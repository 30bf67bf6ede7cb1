"""Human-readable output: Rich tables for the CLI (JSON output needs none of this)."""
