"""aifabric: model, plan and simulate AI-datacenter network traffic for LLM training and inference.

Importing the package is cheap: heavy modules (NumPy, Rich, the catalog) load on first use.
"""

__version__ = "0.1.0"
__all__ = ["__version__"]
