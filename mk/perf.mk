# mk/perf.mk: the performance specification's scenarios (issue 10), benchmarks/perf/.
#
#   make bench               every scenario below but the soak (about 7 min), one report
#   make bench-<scenario>    one of them: baseline throughput connections memory snapshot-rate
#                            cpu camera-ops recordings
#   make bench-soak          30 minutes of steady load, memory sampled (SOAK_SECONDS)
#   make bench-issues        the per-issue benchmarks (bench-rpc, bench-capture, ...)
#
# BENCH_ARGS passes options through, e.g. `make bench BENCH_ARGS=--quick`.

PERF_SCENARIOS := baseline throughput connections memory snapshot-rate cpu camera-ops recordings
BENCH_ARGS ?=
SOAK_SECONDS ?= 1800

.PHONY: bench-deps bench-soak bench-issues $(addprefix bench-,$(PERF_SCENARIOS))

# matplotlib for the plots (the `bench` extra) and npm for Artillery (installed into
# .cache/artillery by the first scenario that runs it).
bench-deps: install
	@$(PY) -c "import matplotlib" 2>/dev/null || $(PY) -m pip install -q -e ".[bench]"
	@command -v npm >/dev/null || { if [ "$$(id -u)" -eq 0 ]; then \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
		--no-install-recommends nodejs npm >/dev/null; else \
		echo "make bench: npm missing; run as root: apt-get install -y nodejs npm" >&2; \
		exit 1; fi; }

$(addprefix bench-,$(PERF_SCENARIOS)): bench-%: bench-deps
	$(PY) -m benchmarks.perf $* $(BENCH_ARGS)

bench-soak: bench-deps
	$(PY) -m benchmarks.perf soak --soak-seconds $(SOAK_SECONDS) $(BENCH_ARGS)
