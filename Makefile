# Tally: `make run` starts a local network; `make test` sets everything up and runs every check.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
NETWORK ?= tally-net
STAMP := $(VENV)/.installed

.PHONY: run test test-slow test-network-slow test-sim-slow lint bench fuzz clean

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11))' || \
		{ echo "Tally needs Python 3.11 or newer (found $$($(PYTHON) --version))"; exit 1; }
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

## run: a local two-tier network: node + explorer on :7545, issuer :7546, Banks A and B :7547/:7548
run: $(STAMP)
	$(BIN)/tally demo $(NETWORK)

## lint: formatting, lint rules, types and import layers
lint: $(STAMP)
	$(BIN)/ruff format --check src tests
	$(BIN)/ruff check src tests
	$(BIN)/mypy
	$(BIN)/lint-imports

## test: lint, then the whole test suite (fuzzing 20 s per target, 5 crash-restarts); the
## service tests run on SQLite and on a throwaway PostgreSQL cluster the suite starts itself
test: lint
	sh scripts/install-browser.sh
	sh scripts/install-postgres.sh
	$(BIN)/python -m pytest -q

## test-slow: the long runs: an hour of fuzzing per decoder, 50 crash-restarts, 500 property runs
test-slow: $(STAMP)
	TALLY_FUZZ_SECONDS=3600 TALLY_CRASHES=50 TALLY_SLOW=1 $(BIN)/python -m pytest -q tests/fuzz tests/node/test_crash.py tests/rules/test_properties.py

## test-network-slow: 500 randomized fault schedules on real 4-node consortia (hours)
test-network-slow: $(STAMP)
	TALLY_NETWORK_SEEDS=500 $(BIN)/python -m pytest -q tests/network/test_random_faults.py

## test-sim-slow: 100,000 seeds of the PBFT simulation
test-sim-slow: $(STAMP)
	TALLY_SIM_SEEDS=100000 $(BIN)/python -m pytest -q tests/consensus/test_pbft_simulation.py

## bench: throughput and latency figures (see `tally bench --help`)
bench: $(STAMP)
	$(BIN)/tally bench

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache test-output
