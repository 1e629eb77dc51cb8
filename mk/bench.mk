# mk/bench.mk: the events and snapshots benchmarks (issues 5 and 6), against the real server
# with emulated cameras. Each writes its section of benchmarks/RESULTS.md and a JSON file
# under benchmarks/results/.
#
#   make bench-events      hot-plug detection, notification fan-out, get_camera_list req/s
#   make bench-snapshots   take_snapshot warm/cold, sustained rate, CPU stress, catalogue lists
#
# BENCH_ARGS passes options through, e.g. `make bench-events BENCH_ARGS="--nice -5"`.

BENCH_ARGS ?=

.PHONY: bench-events bench-snapshots

bench-events: install
	$(PY) -m benchmarks.events $(BENCH_ARGS)

bench-snapshots: install
	$(PY) -m benchmarks.snapshots $(BENCH_ARGS)

BENCHES += bench-events bench-snapshots
