# mk/reliability.mk: reliability and security checks of issue 11 beyond `make test-py`.
#
#   make fuzz-rpc    atheris (libFuzzer) on decode-and-dispatch, FUZZ_RPC_SECONDS (30) or
#                    FUZZ_RPC_RUNS when set; no network, files only in a temporary directory
#   make test-long   the long checks CI does not run: 10,000-connection churn, and the soak
#   make test-long-soak  the soak alone: SOAK_SECONDS (1800) of load and faults on `camsvc
#                    serve` (SOAK_SECONDS=120 for a short proof run)

FUZZ_RPC_SECONDS ?= 30
FUZZ_RPC_RUNS ?= -1
SOAK_SECONDS ?= 1800

.PHONY: fuzz-rpc test-long test-long-churn test-long-soak

fuzz-rpc: install
	$(PY) -m tests.reliability.fuzz_rpc -max_total_time=$(FUZZ_RPC_SECONDS) \
		-runs=$(FUZZ_RPC_RUNS) -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
		-dict=tests/reliability/rpc.dict

# Other fragments may add their own prerequisites to test-long; none gives it a recipe.
test-long: test-long-churn test-long-soak

# -o timeout=0: these run for many minutes on purpose (pyproject's per-test bound is 300 s).
test-long-churn: install
	CAMSVC_LONG=1 $(PYTEST) -q -o timeout=0 -m long tests/reliability

# -s: the soak prints its figures (requests, codes, faults, memory) at the end.
test-long-soak: install
	CAMSVC_SOAK_SECONDS=$(SOAK_SECONDS) $(PYTEST) -q -s -o timeout=0 -p no:logging \
		tests/reliability/test_soak.py

TEST_SUITES += fuzz-rpc
