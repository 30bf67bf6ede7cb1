# Two entry points: `make run` (main job on the built-in example) and `make test`.
# Both create .venv when it is missing and install aifabric into it.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test lint bench fuzz clean compiled test-compiled

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[dev]'
	touch $(STAMP)

run: $(STAMP)
	$(BIN)/aifabric seeds
	$(BIN)/aifabric traffic train -f examples/train/llama3-70b-tp8-pp8-dp16.yaml
	$(BIN)/aifabric simulate serve -f examples/serve/mooncake-conversation-pd.yaml

# The suite on one process per core, at most 4 (pytest-xdist); a test file stays on one
# process (its module fixtures are built once). Plain `pytest` runs it serially.
test: $(STAMP)
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/python -m pytest -n auto --maxprocesses 4 --dist loadfile

lint: $(STAMP)
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/ruff format --check src tests benchmarks
	$(BIN)/mypy

fuzz: $(STAMP)
	AIFABRIC_FUZZ_EXAMPLES=20000 AIFABRIC_FUZZ_REPORT=1 $(BIN)/python -m pytest -q -s tests/test_fuzz.py

# The optional compiled build (setup.py: mypyc compiles the simulators' event loops), in
# its own folder, rebuilt when a source changes; used by putting it first on PYTHONPATH.
COMPILED := build/compiled
COMPILED_TESTS := tests/test_des.py tests/test_flow_engine.py tests/test_kvstore.py \
	tests/test_netsim.py tests/test_netsim_classes.py tests/test_maxmin_network.py \
	tests/test_serving_*.py tests/test_trace.py tests/test_workload.py \
	tests/test_serve_cli.py tests/test_cluster.py
SOURCES := $(shell find src/aifabric -name '*.py')

$(COMPILED)/.built: $(STAMP) setup.py $(SOURCES)
	rm -rf $(COMPILED)
	$(BIN)/python -m pip install -q wheel
	AIFABRIC_COMPILE=1 $(BIN)/python -m pip install -q --no-build-isolation --no-deps \
		--target $(COMPILED) .
	touch $@

compiled: $(COMPILED)/.built

# The compiled build against the pure one: the examples' outputs identical, and the
# simulators' own tests passing on it.
test-compiled: $(COMPILED)/.built
	AIFABRIC_COMPILED=$(COMPILED) $(BIN)/python -m pytest -q tests/test_compiled.py
	PYTHONPATH=$(COMPILED) $(BIN)/python -m pytest -q -p no:cacheprovider $(COMPILED_TESTS)

bench: $(STAMP) $(COMPILED)/.built
	$(BIN)/python benchmarks/bench_traffic.py
	$(BIN)/python benchmarks/bench_fabric.py
	$(BIN)/python benchmarks/bench_serving.py --quick
	PYTHONPATH=$(COMPILED) $(BIN)/python benchmarks/bench_serving.py
	$(BIN)/python benchmarks/bench_netsim.py
	$(BIN)/python benchmarks/bench_training.py
	$(BIN)/python benchmarks/bench_cluster.py
	$(BIN)/python benchmarks/bench_sweep.py
	$(BIN)/python benchmarks/bench_search.py

clean:
	rm -rf $(VENV) build dist src/*.egg-info .pytest_cache .ruff_cache .mypy_cache
