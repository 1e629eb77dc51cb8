# mk/reliability.mk: reliability and security checks of issue 11 beyond `make test-py`.
#
#   make fuzz-rpc    atheris (libFuzzer) on decode-and-dispatch, FUZZ_RPC_SECONDS (30) or
#                    FUZZ_RPC_RUNS when set; no network, files only in a temporary directory
#   make test-long   the long checks CI does not run (10,000-connection churn)

FUZZ_RPC_SECONDS ?= 30
FUZZ_RPC_RUNS ?= -1

.PHONY: fuzz-rpc test-long test-long-churn

fuzz-rpc: install
	$(PY) -m tests.reliability.fuzz_rpc -max_total_time=$(FUZZ_RPC_SECONDS) \
		-runs=$(FUZZ_RPC_RUNS) -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
		-dict=tests/reliability/rpc.dict

# Other fragments may add their own prerequisites to test-long; none gives it a recipe.
test-long: test-long-churn

test-long-churn: install
	CAMSVC_LONG=1 $(PYTEST) -q -m long tests/reliability

TEST_SUITES += fuzz-rpc
