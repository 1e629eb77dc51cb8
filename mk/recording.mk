# mk/recording.mk: the recording benchmark (issue 8), against the real service with emulated
# cameras and the MediaMTX stand-in as subprocesses. Writes the section "Recording (issue 8)"
# of benchmarks/RESULTS.md and benchmarks/results/recording-<date>.json.
#
#   make bench-recording                          the full run (about 15 min; a quiet machine)
#   make bench-recording BENCH_ARGS=--quick       a short run for development (about 3 min)
#
# start/stop_recording latency (live and cold cameras), 10 cameras at 640x480/30 recording
# for 60 s with CPU/RSS and snapshots meanwhile, the largest count that holds, recordings/h.

BENCH_ARGS ?=

.PHONY: bench-recording

bench-recording: install
	$(PY) -m benchmarks.recording $(BENCH_ARGS)

BENCHES += bench-recording
