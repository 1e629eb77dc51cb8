# mk/observability.mk: benchmark and deploy checks of metrics, alerts and /metrics (issue 9).
#
#   make bench-metrics        benchmarks/observability.py: /metrics render and scrape time with
#                             16 emulated cameras and 1,000 connections; request throughput
#                             with metrics + logging on and off (writes benchmarks/RESULTS.md)
#   make check-deploy         promtool check/test on deploy/prometheus (also run by pytest)
#   BENCH_METRICS_ARGS="--rounds 3 --stack-rounds 3"   pass options to the benchmark

BENCH_METRICS_ARGS ?=

.PHONY: bench-metrics check-deploy

bench-metrics: install
	$(PY) -m benchmarks.observability $(BENCH_METRICS_ARGS)

check-deploy: install
	cd deploy/prometheus && promtool check config prometheus.yml && promtool test rules alerts_test.yml

BENCHES += bench-metrics
