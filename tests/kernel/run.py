"""Runs the device tests against the real vivid driver in a QEMU guest (`make test-kernel`).

Steps, each cached under .cache/kernel/ and safe to repeat:
1. find the newest Debian `linux-image-6.1.0-N-amd64` that apt offers, download it with
   `apt-get download` and keep only its vmlinuz and the modules the guest needs;
2. build an initramfs: static busybox, those modules in dependency order, tests/kernel/init.sh;
3. boot it under TCG with the host's root exported read-only over 9p and a writable
   "handoff" share holding the command to run; the guest chroots into the host root and
   runs `pytest -m device tests/device` with CAMSVC_TEST_DEVICE_DIR=/dev;
4. stream the guest console live and exit with pytest's status, read from the handoff
   share (or the CAMSVC-GUEST-EXIT=<n> console line). A hung guest is killed after
   --timeout seconds with a clear message and exit status 124.

Only the standard library is used, so any python3 can run it.
"""

from __future__ import annotations

import argparse
import contextlib
import gzip
import hashlib
import io
import lzma
import os
import re
import shlex
import shutil
import signal
import struct
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
INIT_SCRIPT = HERE / "init.sh"
BUSYBOX_CANDIDATES = ("/bin/busybox", "/usr/bin/busybox")
KERNEL_PACKAGE = re.compile(r"^linux-image-(6\.1\.0-(\d+)-amd64)$")

# Modules the guest loads; their dependencies are added from each module's own modinfo.
VIVID_PARAMS = "n_devs=2 node_types=0x1,0x1"
ROOT_MODULES = {
    "virtio_pci": "",
    "9pnet_virtio": "",
    "9p": "",
    "vivid": VIVID_PARAMS,
    "virtiofs": "",
}
VIRTIOFSD_CANDIDATES = ("/usr/lib/qemu/virtiofsd", "/usr/libexec/virtiofsd")

START_MARKER = b"CAMSVC-GUEST-START"
EXIT_MARKER = re.compile(r"CAMSVC-GUEST-EXIT=(\d+)")
# SeaBIOS resets and clears the terminal and turns off line wrap; keep the host console sane.
FIRMWARE_ESCAPES = re.compile(rb"\x1bc|\x1b\[\?7l|\x1b\[2J")
DEFAULT_TIMEOUT = 720


def log(msg: str) -> None:
    """Print one progress line of the runner."""
    print(f"kernel-lane: {msg}", flush=True)


# ---------------------------------------------------------------- kernel package


def _apt_kernel_packages() -> list[tuple[int, str, str]]:
    """Return (abi, package, kernel release) for every 6.1 amd64 image apt knows."""
    out = subprocess.run(
        ["apt-cache", "pkgnames", "linux-image-6.1.0-"],
        capture_output=True,
        text=True,
        check=False,
    ).stdout
    found = []
    for name in out.split():
        m = KERNEL_PACKAGE.match(name)
        if m:
            found.append((int(m.group(2)), name, m.group(1)))
    return sorted(found)


def _candidate_version(package: str) -> str | None:
    """Return the version apt would download for package, or None."""
    out = subprocess.run(
        ["apt-cache", "policy", package], capture_output=True, text=True, check=False
    ).stdout
    m = re.search(r"Candidate:\s*(\S+)", out)
    if not m or m.group(1) == "(none)":
        return None
    return m.group(1)


def newest_kernel() -> tuple[str, str, str] | None:
    """Return (package, version, release) of the newest kernel apt offers, or None."""
    packages = _apt_kernel_packages()
    if not packages and os.geteuid() == 0:
        log("apt knows no kernel packages yet: apt-get update")
        subprocess.run(["apt-get", "update", "-qq"], check=False)
        packages = _apt_kernel_packages()
    for _abi, name, release in reversed(packages):
        version = _candidate_version(name)
        if version:
            return name, version, release
    return None


def _elf_modinfo(data: bytes) -> dict[str, str]:
    """Return the key=value pairs of an ELF64 kernel module's .modinfo section."""
    if data[:4] != b"\x7fELF" or data[4] != 2:
        raise ValueError("not an ELF64 object")
    (shoff,) = struct.unpack_from("<Q", data, 0x28)
    shentsize, shnum, shstrndx = struct.unpack_from("<HHH", data, 0x3A)

    def section(i: int) -> tuple[int, int, int]:
        name, _t, _f, _a, off, size = struct.unpack_from("<IIQQQQ", data, shoff + i * shentsize)
        return name, off, size

    _n, stroff, _s = section(shstrndx)
    for i in range(shnum):
        name, off, size = section(i)
        end = data.index(b"\0", stroff + name)
        if data[stroff + name : end] == b".modinfo":
            info = {}
            for item in data[off : off + size].split(b"\0"):
                key, sep, value = item.decode(errors="replace").partition("=")
                if sep:
                    info.setdefault(key, value)
            return info
    return {}


def _read_module(path: Path) -> bytes:
    """Return a module file's bytes, decompressing .ko.xz/.ko.zst/.ko.gz."""
    data = path.read_bytes()
    if path.name.endswith(".xz"):
        return lzma.decompress(data)
    if path.name.endswith(".gz"):
        return gzip.decompress(data)
    if path.name.endswith(".zst"):
        return subprocess.run(["zstd", "-dc", str(path)], capture_output=True, check=True).stdout
    return data


def extract_kernel(deb: Path, release: str, dest: Path) -> None:
    """Unpack deb and keep vmlinuz plus ROOT_MODULES and their dependencies in dest."""
    with tempfile.TemporaryDirectory(prefix="camsvc-kernel-") as tmp:
        subprocess.run(["dpkg", "-x", str(deb), tmp], check=True)
        root = Path(tmp)
        moddir = root / "lib" / "modules" / release
        by_name: dict[str, Path] = {}
        for path in moddir.rglob("*.ko*"):
            name = re.sub(r"\.ko(\.(xz|gz|zst))?$", "", path.name)
            by_name[name.replace("-", "_")] = path

        order: list[str] = []
        blobs: dict[str, bytes] = {}

        def visit(name: str, stack: tuple[str, ...] = ()) -> None:
            key = name.replace("-", "_")
            if key in blobs:
                return
            if key in stack:
                raise RuntimeError(f"module dependency cycle: {stack}")
            path = by_name.get(key)
            if path is None:
                raise RuntimeError(f"module {name} not found in {moddir}")
            data = _read_module(path)
            for dep in filter(None, _elf_modinfo(data).get("depends", "").split(",")):
                visit(dep, (*stack, key))
            blobs[key] = data
            order.append(key)

        for name in ROOT_MODULES:
            visit(name)

        staging = Path(tempfile.mkdtemp(prefix=f"{dest.name}.partial-", dir=dest.parent))
        (staging / "modules").mkdir()
        shutil.copy(root / "boot" / f"vmlinuz-{release}", staging / "vmlinuz")
        for key in order:
            (staging / "modules" / f"{key}.ko").write_bytes(blobs[key])
        (staging / "modules.order").write_text("".join(f"{k}\n" for k in order))
        if dest.exists() and not _complete(dest):  # cached before ROOT_MODULES grew
            shutil.rmtree(dest, ignore_errors=True)
        try:
            staging.rename(dest)
        except OSError:  # another run finished the same kernel first
            shutil.rmtree(staging, ignore_errors=True)


def _complete(kernel: Path) -> bool:
    """Whether a cached kernel folder holds vmlinuz and every module of ROOT_MODULES."""
    try:
        order = set((kernel / "modules.order").read_text().split())
    except OSError:
        return False
    return (kernel / "vmlinuz").is_file() and all(
        m.replace("-", "_") in order for m in ROOT_MODULES
    )


def _cached_kernels(cache: Path) -> list[Path]:
    """Complete kernel folders in the cache, oldest first."""
    done = (p for p in cache.glob("linux-image-*") if _complete(p))
    return sorted(done, key=lambda p: p.stat().st_mtime)


def _download(package: str, version: str, release: str, dest: Path) -> None:
    """apt-get download package=version and keep what the guest needs in dest."""
    log(f"downloading {package} {version}")
    dest.parent.mkdir(parents=True, exist_ok=True)
    # As root, apt's _apt user could not write into the cache: download as root.
    sandbox = ["-o", "APT::Sandbox::User=root"] if os.geteuid() == 0 else []
    with tempfile.TemporaryDirectory(prefix="camsvc-deb-", dir=dest.parent) as tmp:
        subprocess.run(
            ["apt-get", "download", "-q", *sandbox, f"{package}={version}"],
            cwd=tmp,
            check=True,
            stdout=subprocess.DEVNULL,
        )
        debs = list(Path(tmp).glob("*.deb"))
        if len(debs) != 1:
            raise RuntimeError(f"apt-get download left {debs}")
        extract_kernel(debs[0], release, dest)


def ensure_kernel(cache: Path) -> Path:
    """Return the cache folder holding vmlinuz and modules of the newest Debian kernel."""
    for attempt in (1, 2):
        found = newest_kernel()
        if found is None:
            break
        package, version, release = found
        dest = cache / f"{package}_{version}"
        if _complete(dest):
            log(f"kernel {package} {version} (cached)")
            return dest
        try:
            _download(package, version, release, dest)
        except (subprocess.CalledProcessError, RuntimeError, OSError) as exc:
            log(f"download failed: {exc}")
            if attempt == 1 and os.geteuid() == 0:
                log("apt's lists may be stale: apt-get update, then try again")
                subprocess.run(["apt-get", "update", "-qq"], check=False)
            continue
        # Keep the cache small: older kernels are not used again.
        for old in _cached_kernels(cache):
            if old != dest:
                shutil.rmtree(old, ignore_errors=True)
                for initrd in cache.glob(f"initrd-{old.name}-*.gz"):
                    initrd.unlink()
        return dest
    cached = _cached_kernels(cache)
    if not cached:
        raise SystemExit(
            "kernel-lane: cannot get a linux-image-6.1.0-*-amd64 package from apt "
            "(is the Debian archive reachable? is this Debian 12?)"
        )
    log(f"using the cached {cached[-1].name}: apt gave no newer kernel")
    return cached[-1]


# ---------------------------------------------------------------- initramfs


def _cpio_newc(entries: list[tuple[str, int, bytes]]) -> bytes:
    """Return a newc cpio archive of (path, mode, data) entries, symlinks as data."""
    out = io.BytesIO()

    def add(ino: int, name: str, mode: int, data: bytes) -> None:
        nameb = name.encode() + b"\0"
        fields = (ino, mode, 0, 0, 1, 0, len(data), 0, 0, 0, 0, len(nameb), 0)
        out.write(b"070701" + b"".join(b"%08X" % f for f in fields) + nameb)
        out.write(b"\0" * (-(110 + len(nameb)) % 4))
        out.write(data)
        out.write(b"\0" * (-len(data) % 4))

    for ino, (name, mode, data) in enumerate(entries, start=1):
        add(ino, name, mode, data)
    add(0, "TRAILER!!!", 0, b"")
    return out.getvalue()


def _busybox() -> Path:
    """Return the static busybox binary."""
    for cand in BUSYBOX_CANDIDATES:
        p = Path(cand)
        if p.is_file():
            return p
    raise SystemExit("kernel-lane: busybox not found: apt-get install busybox-static")


def ensure_initrd(kernel: Path, cache: Path) -> Path:
    """Return a gzip initramfs for kernel: busybox, modules, init; rebuilt when inputs change."""
    order = (kernel / "modules.order").read_text().split()
    modules_list = "".join(f"{m} {ROOT_MODULES.get(m, '')}".rstrip() + "\n" for m in order)
    busybox = _busybox().read_bytes()
    init = INIT_SCRIPT.read_bytes()
    digest = hashlib.sha256(busybox + init + modules_list.encode()).hexdigest()[:12]
    path = cache / f"initrd-{kernel.name}-{digest}.gz"
    if path.is_file():
        return path
    log(f"building {path.name}")
    d, f, link = 0o040755, 0o100755, 0o120777
    entries: list[tuple[str, int, bytes]] = [
        ("bin", d, b""),
        ("dev", d, b""),
        ("lib", d, b""),
        ("lib/modules", d, b""),
        ("bin/busybox", f, busybox),
        ("bin/sh", link, b"busybox"),
        ("init", f, init),
        ("modules.list", 0o100644, modules_list.encode()),
    ]
    for m in order:
        entries.append(
            (f"lib/modules/{m}.ko", 0o100644, (kernel / "modules" / f"{m}.ko").read_bytes())
        )
    tmp = path.with_suffix(f".tmp{os.getpid()}")
    tmp.write_bytes(gzip.compress(_cpio_newc(entries), compresslevel=6))
    tmp.rename(path)
    for stale in cache.glob(f"initrd-{kernel.name}-*.gz"):
        if stale != path:
            stale.unlink()
    return path


# ---------------------------------------------------------------- guest


def guest_script(
    repo: Path, pytest_args: list[str], color: bool, command: str | None = None
) -> str:
    """Return the shell command the guest runs chrooted in the host root."""
    env = {
        "PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
        "HOME": "/tmp",
        "TMPDIR": "/tmp",
        "LANG": "C.UTF-8",
        "TERM": os.environ.get("TERM", "dumb") if color else "dumb",
        "COLUMNS": str(shutil.get_terminal_size((120, 24)).columns),
        "PYTHONDONTWRITEBYTECODE": "1",
        "PYTHONUNBUFFERED": "1",
        "CAMSVC_TEST_DEVICE_DIR": "/dev",
        "CAMSVC_TEST_LANE": "vivid",
    }
    cmd = [
        ".venv/bin/python",
        "-m",
        "pytest",
        "-m",
        "device",
        "tests/device",
        "-p",
        "no:cacheprovider",
        f"--color={'yes' if color else 'no'}",
        *pytest_args,
    ]
    assigns = " ".join(f"{k}={shlex.quote(v)}" for k, v in env.items())
    run = shlex.join(cmd) if command is None else f"sh -c {shlex.quote(command)}"
    where = shlex.quote(str(repo))
    return (
        f"cd {where} || {{ echo 'kernel-lane: the repository is not visible in the guest'; "
        "exit 98; }\n"
        f"exec env -i {assigns} {run} </dev/null 2>&1\n"
    )


def _virtiofsd() -> str | None:
    """Return QEMU's virtiofsd if it can run here (as root), else None."""
    if os.geteuid() != 0:
        return None
    for cand in VIRTIOFSD_CANDIDATES:
        if os.access(cand, os.X_OK):
            return cand
    return shutil.which("virtiofsd")


@contextlib.contextmanager
def host_root_share(workdir: Path, memory_mib: int, fs: str) -> Iterator[tuple[list[str], str]]:
    """Yield (QEMU arguments, guest fs type) that export the host's / read-only to the guest.

    virtiofs when virtiofsd can run (cold file reads are several times faster than 9p,
    and a guest start reads ~1000 files), else 9p, which needs nothing but QEMU.
    """
    daemon = _virtiofsd() if fs == "auto" else None
    if daemon:
        sock = workdir / "virtiofs.sock"
        log_path = workdir / "virtiofsd.log"
        with log_path.open("wb") as log_file:
            proc = subprocess.Popen(
                [daemon, f"--socket-path={sock}", "-o", "source=/", "-o", "cache=always",
                 "-o", "sandbox=chroot"],
                stdin=subprocess.DEVNULL,
                stdout=log_file,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )  # fmt: skip
        try:
            deadline = time.monotonic() + 10
            while not sock.exists() and proc.poll() is None and time.monotonic() < deadline:
                time.sleep(0.02)
            if sock.exists():
                yield [
                    "-object", f"memory-backend-memfd,id=mem,size={memory_mib}M,share=on",
                    "-numa", "node,memdev=mem",
                    "-chardev", f"socket,id=hostroot,path={sock}",
                    "-device", "vhost-user-fs-pci,chardev=hostroot,tag=hostroot",
                ], "virtiofs"  # fmt: skip
                return
            tail = log_path.read_text(errors="replace")[-300:].strip()
            log(f"virtiofsd did not start ({tail or 'no output'}); using 9p")
        finally:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
                try:
                    proc.wait(5)
                except subprocess.TimeoutExpired:
                    os.killpg(proc.pid, signal.SIGKILL)
                    proc.wait()
    yield (
        [
            "-virtfs",
            "local,path=/,mount_tag=hostroot,security_model=none,readonly=on,multidevs=remap",
        ],
        "9p",
    )


def boot(
    kernel: Path,
    initrd: Path,
    script: str,
    timeout: float,
    memory: int,
    smp: int,
    qemu_args: list[str],
    fs: str = "auto",
) -> int:
    """Boot the guest, stream its console, and return pytest's exit status."""
    with contextlib.ExitStack() as stack:
        workdir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="camsvc-guest-")))
        handoff = workdir / "handoff"
        handoff.mkdir()
        (handoff / "run.sh").write_text(script)
        (handoff / "repo").write_text(str(REPO))
        share_args, rootfs = stack.enter_context(host_root_share(workdir, memory, fs))
        cmd = [
            "qemu-system-x86_64",
            "-accel", "tcg",
            "-cpu", "max",  # about 2.5x faster Python than the default qemu64 under TCG
            "-m", str(memory),
            "-smp", str(smp),
            "-nographic",
            "-no-reboot",
            "-nic", "none",
            "-kernel", str(kernel / "vmlinuz"),
            "-initrd", str(initrd),
            "-append", f"console=ttyS0 panic=-1 quiet camsvc.rootfs={rootfs}",
            *share_args,
            "-virtfs",
            f"local,path={handoff},mount_tag=handoff,security_model=none,multidevs=remap",
            *qemu_args,
        ]  # fmt: skip
        log(f"booting the guest (host root over {rootfs}, timeout {timeout:.0f} s)")
        started = time.monotonic()
        proc = subprocess.Popen(
            cmd,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        marker: list[int] = []
        timed_out = threading.Event()

        def watchdog() -> None:
            if _wait(proc, timeout):
                return
            timed_out.set()
            os.killpg(proc.pid, signal.SIGKILL)

        threading.Thread(target=watchdog, daemon=True).start()
        assert proc.stdout is not None
        out = sys.stdout.buffer
        early = bytearray()  # firmware and kernel output before init starts: shown on failure
        up = fresh = False
        pending = b""
        try:
            while chunk := os.read(proc.stdout.fileno(), 65536):
                chunk = FIRMWARE_ESCAPES.sub(b"", chunk.replace(b"\r", b""))
                if not up:
                    early += chunk
                    at = early.find(START_MARKER)
                    if at < 0:
                        continue
                    up = True
                    log(f"guest up after {time.monotonic() - started:.1f} s")
                    chunk = bytes(early[at + len(START_MARKER) :])
                    fresh = True
                if fresh:  # drop the marker line's own newline, wherever it falls
                    chunk = chunk.lstrip(b"\n")
                    fresh = not chunk
                pending += chunk
                *lines, pending = pending.split(b"\n")
                for line in lines:
                    m = EXIT_MARKER.search(line.decode(errors="replace"))
                    if m:
                        marker.append(int(m.group(1)))
                out.write(chunk)
                out.flush()
        finally:
            if proc.poll() is None:  # interrupted or terminated: never leave QEMU behind
                os.killpg(proc.pid, signal.SIGKILL)
        qemu_status = proc.wait()
        if not up:
            out.write(bytes(early))
            out.flush()
        elapsed = time.monotonic() - started
        if timed_out.is_set():
            log(f"TIMEOUT: the guest ran longer than {timeout:.0f} s and was killed")
            return 124
        exit_file = Path(handoff) / "exit"
        status: int | None = None
        if exit_file.is_file() and exit_file.read_text().strip().isdigit():
            status = int(exit_file.read_text().strip())
        elif marker:
            status = marker[-1]
        if status is None:
            log(f"the guest ended (QEMU status {qemu_status}) without reporting pytest's status")
            return 2
        log(f"guest finished in {elapsed:.1f} s; pytest exit status {status}")
        return status


def _wait(proc: subprocess.Popen, timeout: float) -> bool:
    """Wait up to timeout seconds for proc; return whether it ended."""
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        return False
    return True


def precompile(repo: Path) -> None:
    """Byte-compile the project on the host: the guest cannot write .pyc (read-only root)
    and compiling under TCG costs seconds in every Python process it starts."""
    python = repo / ".venv" / "bin" / "python"
    if python.exists():
        subprocess.run(
            [str(python), "-m", "compileall", "-q", "-j", "0", "camsvc", "tests"],
            cwd=repo,
            stdout=subprocess.DEVNULL,
            check=False,
        )


def _terminate(signum: int, _frame: object) -> None:
    """Turn a termination signal into SystemExit so that QEMU is killed on the way out."""
    raise SystemExit(128 + signum)


def main(argv: list[str] | None = None) -> int:
    """Parse arguments, prepare the cached kernel and initramfs, and run the guest."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument(
        "--timeout",
        type=float,
        default=float(os.environ.get("CAMSVC_KERNEL_TIMEOUT", DEFAULT_TIMEOUT)),
        help="seconds before a hung guest is killed (env CAMSVC_KERNEL_TIMEOUT)",
    )
    p.add_argument("--cache", type=Path, default=REPO / ".cache" / "kernel")
    p.add_argument("--memory", type=int, default=1024, help="guest memory in MiB")
    p.add_argument(
        "--fs",
        choices=("auto", "9p"),
        default=os.environ.get("CAMSVC_KERNEL_FS", "auto"),
        help="how the guest sees the host root: auto = virtiofs when virtiofsd runs, else 9p",
    )
    p.add_argument("--smp", type=int, default=2)
    p.add_argument("--prepare-only", action="store_true", help="fetch and build, do not boot")
    p.add_argument(
        "--qemu-arg", action="append", default=[], help="extra QEMU argument (repeatable)"
    )
    p.add_argument("--exec", dest="command", help="run this shell command instead of pytest")
    p.add_argument("pytest_args", nargs="*", help="extra pytest arguments (after --)")
    args = p.parse_args(argv)

    # make or CI stopping us with SIGTERM/SIGHUP unwinds through boot()'s cleanup.
    for signum in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, _terminate)
    cache = args.cache.resolve()
    kernel = ensure_kernel(cache)
    initrd = ensure_initrd(kernel, cache)
    if args.prepare_only:
        log(f"ready: {kernel / 'vmlinuz'} {initrd}")
        return 0
    if shutil.which("qemu-system-x86_64") is None:
        raise SystemExit(
            "kernel-lane: qemu-system-x86_64 not found: apt-get install qemu-system-x86"
        )
    precompile(REPO)
    script = guest_script(REPO, args.pytest_args, sys.stdout.isatty(), args.command)
    return boot(kernel, initrd, script, args.timeout, args.memory, args.smp, args.qemu_arg, args.fs)


if __name__ == "__main__":
    sys.exit(main())
