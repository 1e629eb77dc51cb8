# The emulated V4L2 device for host tests (tests/emulator/): an LD_PRELOAD library.
# tests/emulator/control.py builds it on demand too; this target is for humans and CI.

EMU_DIR := tests/emulator
EMU_SO := $(EMU_DIR)/build/libcamsvc_emu.so
EMU_SRC := $(wildcard $(EMU_DIR)/src/*.c)
EMU_HDR := $(wildcard $(EMU_DIR)/src/*.h)
EMU_CFLAGS := -std=gnu11 -O2 -g -fPIC -fvisibility=hidden -Wall -Wextra -Wshadow \
	-Wstrict-prototypes -Wmissing-prototypes -Werror=implicit-function-declaration
EMU_LDLIBS := -ldl -lpthread -lturbojpeg

.PHONY: emulator

emulator: $(EMU_SO)

# Built to a temporary name and renamed: processes may have the old one mapped.
$(EMU_SO): $(EMU_SRC) $(EMU_HDR) mk/emulator.mk
	@mkdir -p $(dir $@)
	$(CC) $(EMU_CFLAGS) -shared -o $@.tmp.$$$$ $(EMU_SRC) $(EMU_LDLIBS) && mv -f $@.tmp.$$$$ $@
