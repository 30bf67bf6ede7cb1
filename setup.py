"""Optional compiled build: ``AIFABRIC_COMPILE=1`` compiles the simulators' event loops
with mypyc (the compiler mypy ships; black and mypy itself are distributed built with it).

Without the variable this is a plain pure-Python build (all metadata is in
pyproject.toml). With it, the modules below become C extensions: the same source, the same
results (``make test-compiled`` checks the examples' outputs are identical), about 2x
faster serving simulations. It needs a C compiler and mypy in the build environment, so
build without isolation: ``AIFABRIC_COMPILE=1 pip install --no-build-isolation .``, or
``make compiled``. Editable installs stay pure Python: a compiled module next to its source
would shadow every later edit of it.
"""

from __future__ import annotations

import os
import sys

from setuptools import setup

# The event-driven hot paths, with the modules they call per event (the flow engine and
# its solvers, the KV store, the serving instance, router, timing and cluster loop).
COMPILED = [
    "aifabric/des/__init__.py",
    "aifabric/netsim/engine.py",
    "aifabric/netsim/fairshare.py",
    "aifabric/netsim/classes.py",
    "aifabric/serving/admission.py",
    "aifabric/serving/autoscale.py",
    "aifabric/serving/cluster.py",
    "aifabric/serving/compute.py",
    "aifabric/serving/decode_batch.py",
    "aifabric/serving/instance.py",
    "aifabric/serving/kvstore/flat.py",
    "aifabric/serving/kvstore/hashing.py",
    "aifabric/serving/kvstore/trie.py",
    "aifabric/serving/metrics.py",
    "aifabric/serving/moe.py",
    "aifabric/serving/network.py",
    "aifabric/serving/pools.py",
    "aifabric/serving/profile.py",
    "aifabric/serving/request.py",
    "aifabric/serving/routing.py",
    "aifabric/serving/source.py",
    "aifabric/serving/speculative.py",
    "aifabric/serving/trace.py",
    "aifabric/serving/work.py",
]

ext_modules = []
if os.environ.get("AIFABRIC_COMPILE", "") not in ("", "0"):
    try:
        from mypyc.build import mypycify
    except ImportError:
        sys.exit("AIFABRIC_COMPILE=1 needs mypy in the build environment: "
                 "pip install mypy, then build with --no-build-isolation")  # fmt: skip
    # module names come from the paths (src/ holds no __init__.py: aifabric is the root)
    ext_modules = mypycify([f"src/{m}" for m in COMPILED], opt_level="3")

setup(ext_modules=ext_modules)
