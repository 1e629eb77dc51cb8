# The vivid kernel lane: the device tests (pytest -m device tests/device) run inside a QEMU
# guest that boots Debian's own kernel with the vivid V4L2 test driver, against real
# /dev/video* nodes. tests/kernel/run.py downloads the kernel package and builds the
# initramfs once into .cache/kernel/ (keyed on the kernel version), then boots under TCG.
#   make test-kernel                                  run the lane
#   make test-kernel KERNEL_PYTEST_ARGS="-k snapshot"  pass arguments to the guest's pytest
#   make test-kernel KERNEL_TIMEOUT=300               kill a hung guest sooner (seconds)
KERNEL_TIMEOUT ?= 720
KERNEL_PYTEST_ARGS ?=

.PHONY: test-kernel
test-kernel: install
	$(PY) tests/kernel/run.py --timeout $(KERNEL_TIMEOUT) $(if $(strip $(KERNEL_PYTEST_ARGS)),-- $(KERNEL_PYTEST_ARGS))

TEST_SUITES += test-kernel
