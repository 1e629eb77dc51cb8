#!/usr/bin/env bash
# Sets up everything camsvc needs on Debian 12: apt packages (only when root; otherwise it
# prints the command), then .venv with camsvc installed editable. Safe to run again: it
# skips what is already in place and rebuilds the C module only when its sources changed.
set -euo pipefail
cd "$(dirname "$0")/.."

APT_PACKAGES=(
    gcc make pkg-config python3-venv python3-dev   # build the cffi module, create .venv
    libturbojpeg0-dev                              # YUYV/NV12 -> JPEG in the capture module
    v4l-utils ffmpeg ustreamer                     # third-party V4L2 programs the tests run
    valgrind clang libclang-rt-14-dev              # make test-sanitize: memcheck, ASan/UBSan, libFuzzer
    qemu-system-x86 busybox-static cpio            # the vivid kernel lane (make test-kernel)
    prometheus                                     # promtool: check and unit-test deploy/prometheus rules
    chromium fonts-liberation                      # the dashboard's browser tests (tests/web, Playwright)
)

missing=()
for pkg in "${APT_PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "ok installed" || missing+=("$pkg")
done
if [ ${#missing[@]} -gt 0 ]; then
    if [ "$(id -u)" -eq 0 ]; then
        echo "install: apt-get install ${missing[*]}"
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
    else
        echo "install: missing Debian packages; run as root:" >&2
        echo "  apt-get update && apt-get install -y ${missing[*]}" >&2
        exit 1
    fi
fi

PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
    echo "install: creating .venv"
    "$PY" -m venv .venv
fi

# Reinstall when the project's metadata or C sources are newer than the last install.
stamp=.venv/.camsvc-installed
if [ ! -f "$stamp" ] || [ -n "$(find pyproject.toml setup.py build_ext.py csrc -newer "$stamp" 2>/dev/null | head -1)" ]; then
    echo "install: pip install -e .[test]"
    .venv/bin/python -m pip install -q --upgrade pip
    .venv/bin/python -m pip install -q -e ".[test]"
    touch "$stamp"
fi
