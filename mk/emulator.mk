# The emulated V4L2 device (csrc/emulator/), an LD_PRELOAD library. pip install builds it into
# the package (camsvc/emulator/_preload*.so); these targets build it by hand and under ASan.

EMU_DIR := tests/emulator
EMU_SRC_DIR := csrc/emulator
EMU_SO := $(EMU_DIR)/build/libcamsvc_emu.so
EMU_SRC := $(wildcard $(EMU_SRC_DIR)/*.c)
EMU_HDR := $(wildcard $(EMU_SRC_DIR)/*.h)
EMU_CFLAGS := -std=gnu11 -O2 -g -fPIC -fvisibility=hidden -Wall -Wextra -Wshadow \
	-Wstrict-prototypes -Wmissing-prototypes -Werror=implicit-function-declaration
EMU_LDLIBS := -ldl -lpthread -lturbojpeg

.PHONY: emulator

emulator: $(EMU_SO)

# Built to a temporary name and renamed: processes may have the old one mapped.
$(EMU_SO): $(EMU_SRC) $(EMU_HDR) mk/emulator.mk
	@mkdir -p $(dir $@)
	$(CC) $(EMU_CFLAGS) -shared -o $@.tmp.$$$$ $(EMU_SRC) $(EMU_LDLIBS) && mv -f $@.tmp.$$$$ $@

# The same library under AddressSanitizer and UBSan, to run programs against:
#   LD_PRELOAD="$(gcc -print-file-name=libasan.so) tests/emulator/build/libcamsvc_emu_asan.so"
EMU_ASAN_SO := $(EMU_DIR)/build/libcamsvc_emu_asan.so

.PHONY: emulator-asan

emulator-asan: $(EMU_ASAN_SO)

$(EMU_ASAN_SO): $(EMU_SRC) $(EMU_HDR) mk/emulator.mk
	@mkdir -p $(dir $@)
	$(CC) $(EMU_CFLAGS) -O1 -fsanitize=address,undefined -fno-omit-frame-pointer \
		-fno-sanitize-recover=undefined -shared -o $@.tmp.$$$$ $(EMU_SRC) $(EMU_LDLIBS) \
		&& mv -f $@.tmp.$$$$ $@

# The emulator's own tests and the device tests with the ASan/UBSan build preloaded.
.PHONY: test-emulator-asan
TEST_SUITES += test-emulator-asan

test-emulator-asan: $(EMU_ASAN_SO)
	CAMSVC_EMU_PRELOADED=1 ASAN_OPTIONS=detect_leaks=0 \
		LD_PRELOAD="$$($(CC) -print-file-name=libasan.so) $(abspath $(EMU_ASAN_SO))" \
		$(or $(VENV),.venv)/bin/python -m pytest -q tests/emulator tests/device
