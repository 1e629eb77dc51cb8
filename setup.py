"""setuptools hook: compiles the cffi modules (capture and fan-out, see build_ext.py) and
the emulated V4L2 device, an LD_PRELOAD library shipped for demo mode and the tests
(csrc/emulator/)."""

from glob import glob

from setuptools import Extension, setup

emulator = Extension(
    # A plain shared library (Python never imports it); LD_PRELOAD loads it into programs.
    "camsvc.emulator._preload",
    sources=sorted(glob("csrc/emulator/*.c")),
    depends=sorted(glob("csrc/emulator/*.h")),
    extra_compile_args=["-std=gnu11", "-fvisibility=hidden", "-Wall", "-Wextra"],
    libraries=["dl", "pthread", "turbojpeg"],
)

setup(
    cffi_modules=["build_ext.py:ffibuilder", "build_ext.py:fanout_builder"],
    ext_modules=[emulator],
)
