# Two entry points: `make run` (main job on the built-in example) and `make test`.
# Both create .venv when it is missing and install aifabric into it.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test lint bench fuzz clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[dev]'
	touch $(STAMP)

run: $(STAMP)
	$(BIN)/aifabric seeds
	$(BIN)/aifabric traffic train -f examples/train/llama3-70b-tp8-pp8-dp16.yaml
	$(BIN)/aifabric simulate serve -f examples/serve/mooncake-conversation-pd.yaml

test: $(STAMP)
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/python -m pytest

lint: $(STAMP)
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/ruff format --check src tests benchmarks
	$(BIN)/mypy

fuzz: $(STAMP)
	AIFABRIC_FUZZ_EXAMPLES=20000 AIFABRIC_FUZZ_REPORT=1 $(BIN)/python -m pytest -q -s tests/test_fuzz.py

bench: $(STAMP)
	$(BIN)/python benchmarks/bench_traffic.py
	$(BIN)/python benchmarks/bench_fabric.py
	$(BIN)/python benchmarks/bench_serving.py
	$(BIN)/python benchmarks/bench_netsim.py
	$(BIN)/python benchmarks/bench_training.py
	$(BIN)/python benchmarks/bench_cluster.py
	$(BIN)/python benchmarks/bench_sweep.py
	$(BIN)/python benchmarks/bench_search.py

clean:
	rm -rf $(VENV) build dist src/*.egg-info .pytest_cache .ruff_cache .mypy_cache
