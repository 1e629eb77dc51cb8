# camsvc: `make run` starts the service, `make test` runs every test suite.
# Each target installs what it needs first (scripts/install.sh, safe to repeat).

VENV := .venv
PY := $(VENV)/bin/python
PYTEST := $(PY) -m pytest

# Suites that `make test` runs after the Python tests, and the per-issue benchmarks that
# `make bench-issues` runs; fragments in mk/ append to both. `make bench` is mk/perf.mk's.
TEST_SUITES :=
BENCHES := bench-rpc bench-capture

.PHONY: install run test test-py lint bench bench-rpc clean

install:
	@scripts/install.sh

run: install
	@scripts/run.sh

test-py: install
	$(PYTEST) -q

lint: install
	$(VENV)/bin/ruff check camsvc tests benchmarks build_ext.py setup.py
	$(VENV)/bin/ruff format --check camsvc tests benchmarks build_ext.py setup.py

bench-rpc: install
	$(PY) -m benchmarks.rpc

clean:
	rm -rf build .cache camsvc/_capture*.so camsvc/_capture.c camsvc/_fanout*.so camsvc/_fanout.c *.egg-info

include $(wildcard mk/*.mk)

# Defined after the fragments so that their suites are in TEST_SUITES and BENCHES.
test: lint test-py $(TEST_SUITES)

bench: bench-deps
	$(PY) -m benchmarks.perf $(BENCH_ARGS)

bench-issues: $(BENCHES)
