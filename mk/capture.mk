# mk/capture.mk: quality gates and benchmark of the native capture module (issue 3).
#
#   make test-sanitize   ASan+UBSan harness, valgrind memcheck (300-frame loop), fuzzing
#   make bench-capture   benchmarks/capture.py on the emulated device
#
# The harness (tests/capture/native/) links csrc/ with an in-process fake V4L2 device
# through the module's syscall table, so no LD_PRELOAD and no kernel support is needed.

CAPTURE_BUILD := .cache/capture
CAPTURE_SRC := $(wildcard csrc/*.c)
CAPTURE_HDR := $(wildcard csrc/*.h)
CAPTURE_NATIVE := tests/capture/native
CAPTURE_HARNESS := $(CAPTURE_NATIVE)/fake_v4l2.c $(CAPTURE_NATIVE)/capture_harness.c
CAPTURE_CFLAGS := -std=gnu11 -g -O1 -Wall -Wextra -Werror -Icsrc -I$(CAPTURE_NATIVE)
CAPTURE_SAN := -fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer
CAPTURE_FRAMES ?= 300
FUZZ_SECONDS ?= 60

.PHONY: test-sanitize test-capture-asan test-capture-valgrind test-capture-fuzz \
	capture-tools bench-capture

test-sanitize: test-capture-asan test-capture-valgrind test-capture-fuzz

# clang (libFuzzer, static sanitizer runtimes) and valgrind, installed when missing.
capture-tools:
	@missing=""; \
	command -v clang >/dev/null || missing="$$missing clang"; \
	dpkg-query -W -f='$${Status}' libclang-rt-14-dev 2>/dev/null | grep -q "ok installed" \
		|| missing="$$missing libclang-rt-14-dev"; \
	command -v valgrind >/dev/null || missing="$$missing valgrind"; \
	if [ -n "$$missing" ]; then \
		if [ "$$(id -u)" -eq 0 ]; then \
			echo "capture-tools: apt-get install$$missing"; \
			apt-get update -qq && DEBIAN_FRONTEND=noninteractive \
				apt-get install -y -qq --no-install-recommends $$missing >/dev/null; \
		else echo "capture-tools: run as root: apt-get install$$missing" >&2; exit 1; fi; \
	fi

$(CAPTURE_BUILD)/harness-asan: $(CAPTURE_SRC) $(CAPTURE_HDR) $(CAPTURE_HARNESS) | capture-tools
	@mkdir -p $(@D)
	clang $(CAPTURE_CFLAGS) $(CAPTURE_SAN) $(CAPTURE_SRC) $(CAPTURE_HARNESS) -lturbojpeg -o $@

$(CAPTURE_BUILD)/harness-valgrind: $(CAPTURE_SRC) $(CAPTURE_HDR) $(CAPTURE_HARNESS)
	@mkdir -p $(@D)
	gcc $(CAPTURE_CFLAGS) $(CAPTURE_SRC) $(CAPTURE_HARNESS) -lturbojpeg -o $@

$(CAPTURE_BUILD)/fuzz-mjpeg: csrc/mjpeg.c csrc/jpeg.c csrc/cap_err.c $(CAPTURE_HDR) \
		$(CAPTURE_NATIVE)/fuzz_mjpeg.c | capture-tools
	@mkdir -p $(@D)
	clang $(CAPTURE_CFLAGS) -fsanitize=fuzzer,address,undefined csrc/mjpeg.c csrc/jpeg.c \
		csrc/cap_err.c $(CAPTURE_NATIVE)/fuzz_mjpeg.c -lturbojpeg -o $@

test-capture-asan: $(CAPTURE_BUILD)/harness-asan
	ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1 \
		$< $(CAPTURE_FRAMES)

test-capture-valgrind: $(CAPTURE_BUILD)/harness-valgrind | capture-tools
	valgrind -q --error-exitcode=1 --leak-check=full \
		--errors-for-leak-kinds=definite,indirect $< $(CAPTURE_FRAMES)

test-capture-fuzz: $(CAPTURE_BUILD)/fuzz-mjpeg install
	@rm -rf $(CAPTURE_BUILD)/fuzz-corpus && mkdir -p $(CAPTURE_BUILD)/fuzz-corpus
	$(PY) $(CAPTURE_NATIVE)/make_seeds.py $(CAPTURE_BUILD)/fuzz-corpus
	@$< -max_total_time=$(FUZZ_SECONDS) -rss_limit_mb=2048 -print_final_stats=1 \
		-artifact_prefix=$(CAPTURE_BUILD)/ $(CAPTURE_BUILD)/fuzz-corpus \
		>$(CAPTURE_BUILD)/fuzz.log 2>&1; rc=$$?; \
	grep -E "^(Done|stat::number_of_executed_units|stat::peak_rss_mb)" $(CAPTURE_BUILD)/fuzz.log; \
	if [ $$rc -ne 0 ]; then tail -40 $(CAPTURE_BUILD)/fuzz.log; exit $$rc; fi
	@echo "fuzz: no crash in $(FUZZ_SECONDS) s"

bench-capture: install
	$(PY) -m benchmarks.capture

TEST_SUITES += test-sanitize
