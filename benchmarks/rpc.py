"""`make bench-rpc`: the WebSocket JSON-RPC benchmarks of issue 2, against the real server.

Starts `camsvc serve` and two bare echo servers of `benchmarks.echo_server` (trio-websocket,
the issue's baseline, and a single-task wsproto loop showing the transport's headroom) as
subprocesses on free loopback ports, waits for `/health/ready`, then runs the load generator
(`benchmarks.loadgen`, one process per run, after a short wait for a quiet machine) for:

- idle server RSS, and the RSS that 1,000 idle authenticated connections add;
- connect + WebSocket handshake + `authenticate` latency, sequential and in concurrent waves;
- closed-loop throughput and latency at 1, 10, 100 and 1,000 authenticated connections, against
  camsvc and the echo servers, interleaved, `--reps` times (medians reported);
- open-loop latency at a fixed 1,000 requests/s over 100 connections.

It prints a table of the issue's targets, measured values and verdicts, replaces the section
"RPC (issue 2)" of `benchmarks/RESULTS.md` (other sections are kept) and writes every raw run
to `benchmarks/results/rpc-<date>.json`.
"""

from __future__ import annotations

import argparse
import atexit
import contextlib
import datetime as dt
import functools
import http.client
import os
import platform
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import msgspec
import psutil

from benchmarks.loadgen import TOKEN_ENV, RunResult, raise_nofile_limit
from benchmarks.report import update_results_md

__all__ = ["Check", "Machine", "Report", "Summary", "main", "update_results_md"]

ROOT = Path(__file__).resolve().parent.parent
BENCH_DIR = ROOT / "benchmarks"
SECTION = "RPC (issue 2)"
HOST = "127.0.0.1"
SECRET = "bench-rpc-secret-" + "x" * 32
CONNECTIONS = (1, 10, 100, 1000)


class Machine(msgspec.Struct, kw_only=True):
    """Where the figures were taken."""

    nproc: int
    cpu_model: str
    ram_gib: float
    kernel: str
    python: str
    loadavg_before: list[float]


class Summary(msgspec.Struct, kw_only=True):
    """The median over repetitions of one closed-loop configuration."""

    target: str
    connections: int
    window: int
    reps: int  # runs the medians are taken over (the uncontended ones, if any)
    contended: int  # attempts left out (or, when all were contended, kept) as contended
    rps: float
    rps_runs: list[float]
    # req/s per core of server CPU actually used: the server's capacity, little moved by
    # other work on the machine (the server is one thread, so at most one core)
    per_cpu_s: float
    p50_ms: float
    p95_ms: float
    p99_ms: float
    server_cpu_pct: float
    gen_cpu_pct: float
    other_cpu_pct: float
    server_rss_mb: float
    errors: int


class Check(msgspec.Struct, kw_only=True):
    """One figure of the issue: target, measured value, verdict."""

    name: str
    target: str
    measured: str
    ok: bool


class HotSpot(msgspec.Struct):
    """One function (or layer) of a sampled profile."""

    name: str
    self_pct: float
    total_pct: float


class Profile(msgspec.Struct, kw_only=True):
    """Where the server spent its time under a closed-loop load (py-spy samples)."""

    connections: int
    window: int
    samples: int
    rps: float
    layers: list[HotSpot]  # self time by package
    functions: list[HotSpot]  # the top functions by self time


class Report(msgspec.Struct, kw_only=True):
    """Everything one `make bench-rpc` measured."""

    date: str
    commit: str
    machine: Machine
    settings: dict[str, str]
    idle_rss_mb: float
    echo_idle_rss_mb: float
    server_exit_code: int | None
    checks: list[Check]
    echo_ratio_100: float
    closed: list[Summary]
    open_loop: list[RunResult]
    connect: list[RunResult]
    idle: list[RunResult]
    runs: list[RunResult]
    notes: list[str]
    profile: Profile | None = None


# -- processes ---------------------------------------------------------------------------


def free_ports(n: int) -> list[int]:
    """`n` distinct free TCP ports on the loopback interface."""
    socks = []
    try:
        for _ in range(n):
            s = socket.socket()
            s.bind((HOST, 0))
            socks.append(s)
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def server_env(tmp: Path, port: int, health_port: int) -> dict[str, str]:
    """The environment `camsvc serve` runs with: loopback ports, tmp paths, no rate limit."""
    env = dict(os.environ)
    env.update(
        {
            "CAMERA_SERVICE_JWT_SECRET": SECRET,
            "CAMERA_SERVICE_SERVER_HOST": HOST,
            "CAMERA_SERVICE_SERVER_PORT": str(port),
            "CAMERA_SERVICE_HEALTH_HOST": HOST,
            "CAMERA_SERVICE_HEALTH_PORT": str(health_port),
            "CAMERA_SERVICE_SECURITY_API_KEYS_PATH": str(tmp / "api_keys.json"),
            "CAMERA_SERVICE_SNAPSHOTS_PATH": str(tmp / "snapshots"),
            "CAMERA_SERVICE_RECORDING_PATH": str(tmp / "recordings"),
            "CAMERA_SERVICE_STORAGE_DB_PATH": str(tmp / "camsvc.db"),
            # The default 100 requests/s per connection would throttle a load test.
            "CAMERA_SERVICE_SECURITY_RATE_LIMIT_RPS": "1000000000",
            "CAMERA_SERVICE_SECURITY_RATE_LIMIT_BURST": "1000000000",
            # 1,000 connections plus those still closing from the previous run.
            "CAMERA_SERVICE_SERVER_MAX_CONNECTIONS": "4000",
            "CAMERA_SERVICE_LOGGING_LEVEL": "warning",
        }
    )
    env.pop("CAMSVC_CONFIG", None)
    return env


def camsvc_command() -> list[str]:
    """The console script next to this interpreter, else `python -m camsvc`."""
    script = Path(sys.executable).parent / "camsvc"
    if script.exists():
        return [str(script), "serve"]
    found = shutil.which("camsvc")
    return [found, "serve"] if found else [sys.executable, "-m", "camsvc", "serve"]


def wait_ready(port: int, proc: subprocess.Popen[bytes], limit_s: float = 30.0) -> float:
    """Poll `GET /health/ready` until 200; return the seconds it took."""
    t0 = time.monotonic()
    while time.monotonic() - t0 < limit_s:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode} before it was ready")
        try:
            conn = http.client.HTTPConnection(HOST, port, timeout=1)
            conn.request("GET", "/health/ready")
            if conn.getresponse().status == 200:
                conn.close()
                return time.monotonic() - t0
            conn.close()
        except OSError:
            pass
        time.sleep(0.05)
    raise RuntimeError(f"/health/ready on {port} not 200 within {limit_s} s")


def wait_listening(port: int, proc: subprocess.Popen[bytes], limit_s: float = 15.0) -> None:
    """Wait until something accepts TCP connections on `port`."""
    t0 = time.monotonic()
    while time.monotonic() - t0 < limit_s:
        if proc.poll() is not None:
            raise RuntimeError(f"echo server exited with {proc.returncode}")
        with contextlib.suppress(OSError), socket.create_connection((HOST, port), timeout=1):
            return
        time.sleep(0.05)
    raise RuntimeError(f"nothing listening on {port} within {limit_s} s")


def wait_quiet(limit_s: float, busy_pct: float = 25.0) -> float:
    """Wait (at most `limit_s`) until the machine's CPUs are mostly idle; return the busy %.

    The servers are idle between runs, so CPU use here is other work sharing the machine.
    """
    deadline = time.monotonic() + limit_s
    while True:
        busy = psutil.cpu_percent(interval=0.3) * (os.cpu_count() or 1)
        if busy <= busy_pct or time.monotonic() >= deadline:
            return round(busy, 1)


def stop(proc: subprocess.Popen[bytes], limit_s: float = 15.0) -> int | None:
    """SIGTERM, then SIGKILL after `limit_s`; return the exit code."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(limit_s)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)
    return proc.returncode


@contextlib.contextmanager
def running(cmd: list[str], env: dict[str, str], log: Path) -> Iterator[subprocess.Popen[bytes]]:
    """A subprocess with output to `log`, always stopped on exit."""
    with log.open("wb") as out:
        proc = subprocess.Popen(cmd, env=env, stdout=out, stderr=subprocess.STDOUT, cwd=ROOT)
        try:
            yield proc
        finally:
            stop(proc)


class Generator:
    """Runs `benchmarks.loadgen` as a separate process and parses its RunResult.

    Other work may share the machine. Before each run it waits (briefly) for the CPUs to be
    mostly idle; a run during which other processes used more than `max_other_pct` of one core
    is marked `contended` and retried, while the time budget lasts. Every attempt is kept.
    """

    def __init__(
        self,
        token: str,
        log: list[RunResult],
        *,
        quiet_s: float = 3.0,
        max_other_pct: float = 30.0,
        tries: int = 3,
        budget_s: float = 60.0,
        verbose: bool = True,
    ) -> None:
        self._env = dict(os.environ)
        self._env[TOKEN_ENV] = token
        self._log = log
        self._verbose = verbose
        self.quiet_s = quiet_s
        self.max_other_pct = max_other_pct
        self.tries = tries
        self.budget_left = budget_s  # seconds of waiting and retrying allowed in all

    def run(
        self, scenario: str, port: int, pid: int, label: str, retry: bool = True, **opts: object
    ) -> RunResult:
        """One measured run, retried while contended and the budget lasts; the last attempt."""
        tries = self.tries if retry else 1
        for attempt in range(1, tries + 1):
            if retry and self.quiet_s > 0 and self.budget_left > 0:
                t0 = time.monotonic()
                wait_quiet(min(self.quiet_s, self.budget_left))
                self.budget_left -= time.monotonic() - t0
            t0 = time.monotonic()
            result = self._once(scenario, port, pid, label, opts)
            result.contended = (result.other_cpu_pct or 0.0) > self.max_other_pct
            self._log.append(result)
            if self._verbose:
                print(f"  {_brief(result)}", flush=True)
            if not result.contended or attempt == tries or self.budget_left <= 0:
                return result
            self.budget_left -= time.monotonic() - t0
        return result

    def _once(
        self, scenario: str, port: int, pid: int, label: str, opts: dict[str, object]
    ) -> RunResult:
        cmd = [sys.executable, "-m", "benchmarks.loadgen", scenario, "--port", str(port)]
        cmd += ["--server-pid", str(pid), "--label", label]
        for key, value in opts.items():
            cmd += [f"--{key.replace('_', '-')}", str(value)]
        proc = subprocess.run(cmd, env=self._env, cwd=ROOT, capture_output=True, timeout=180)
        if proc.returncode != 0:
            raise RuntimeError(f"loadgen {scenario} failed: {proc.stderr.decode()[-2000:]}")
        return msgspec.json.decode(proc.stdout.splitlines()[-1], type=RunResult)


def _brief(r: RunResult) -> str:
    text = f"{r.scenario:7} {r.target:6} c={r.connections:<5} w={r.window:<3}"
    if r.scenario in ("closed", "open"):
        lat = r.latency
        text += f" {r.rps:>9.0f} req/s"
        if lat:
            text += f"  p50 {lat.p50_ms:.2f}  p99 {lat.p99_ms:.2f} ms"
    if r.connect:
        text += f"  connect p50 {r.connect.p50_ms:.2f} p95 {r.connect.p95_ms:.2f} ms"
    if r.rss_added_mb is not None:
        text += f"  rss +{r.rss_added_mb:.1f} MiB"
    text += f"  cpu srv {r.server_cpu_pct}% gen {r.gen_cpu_pct}% other {r.other_cpu_pct}%"
    if r.errors:
        text += f"  errors {r.errors}"
    if r.contended:
        text += "  [contended]"
    return text


# -- facts -------------------------------------------------------------------------------


def machine() -> Machine:
    """nproc, CPU model, RAM, kernel, Python, load average now."""
    model = "unknown"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    return Machine(
        nproc=os.cpu_count() or 0,
        cpu_model=model,
        ram_gib=round(psutil.virtual_memory().total / 2**30, 1),
        kernel=platform.release(),
        python=platform.python_version(),
        loadavg_before=[round(x, 2) for x in os.getloadavg()],
    )


def git_commit() -> str:
    """HEAD's short hash, `+dirty` when tracked files differ from it."""
    try:
        head = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            cwd=ROOT,
            text=True,
            capture_output=True,
            check=True,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=ROOT,
            text=True,
            capture_output=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return head + ("+dirty" if dirty else "")


def rss_mb(pid: int) -> float:
    """Resident set size of a process, MiB."""
    return round(psutil.Process(pid).memory_info().rss / 2**20, 2)


# -- profile ---------------------------------------------------------------------------

_FRAME = re.compile(r"^(.*) \((.*?)(?::\d+)?\)$")
_LAYERS = (
    ("camsvc/", "camsvc"),
    ("trio_websocket/", "trio-websocket"),
    ("wsproto/", "wsproto"),
    ("h11/", "h11"),
    ("trio/_socket", "trio sockets (incl. syscalls)"),
    ("trio/_highlevel", "trio sockets (incl. syscalls)"),
    ("trio/", "trio core (scheduler, channels, cancel scopes)"),
    ("outcome/", "trio core (scheduler, channels, cancel scopes)"),
    ("msgspec", "msgspec"),
    ("structlog/", "structlog"),
)


@functools.cache
def _camsvc_files() -> dict[str, str]:
    """Base name to `camsvc/...` path, for the names that are unique in the package."""
    seen: dict[str, list[str]] = {}
    for f in (ROOT / "camsvc").rglob("*.py"):
        seen.setdefault(f.name, []).append(str(f.relative_to(ROOT)))
    return {name: paths[0] for name, paths in seen.items() if len(paths) == 1}


def _frame_name(frame: str) -> tuple[str, str]:
    """(function (short file), layer) for one py-spy frame `func (path:line)`."""
    m = _FRAME.match(frame)
    if not m:
        return frame or "?", "other"
    func, path = m.groups()
    short = re.sub(r".*/site-packages/", "", path)
    short = re.sub(r".*/lib/python3\.\d+/", "", short)
    if "/" not in short:  # py-spy shortens the project's own files to their base name
        short = _camsvc_files().get(short, short)
    layer = next((name for key, name in _LAYERS if key in short), "other (stdlib, interpreter)")
    return f"{func} ({short})", layer


def parse_pyspy_raw(text: str, top: int = 15) -> tuple[int, list[HotSpot], list[HotSpot]]:
    """Self and inclusive shares by function and by layer from py-spy's `--format raw`."""
    own: dict[str, int] = {}
    total: dict[str, int] = {}
    layer_own: dict[str, int] = {}
    layer_total: dict[str, int] = {}
    n = 0
    for line in text.splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        k = int(count)
        n += k
        frames = [_frame_name(f) for f in stack.split(";")]
        leaf, leaf_layer = frames[-1]
        own[leaf] = own.get(leaf, 0) + k
        layer_own[leaf_layer] = layer_own.get(leaf_layer, 0) + k
        for name in {f for f, _ in frames}:
            total[name] = total.get(name, 0) + k
        for layer in {lay for _, lay in frames}:
            layer_total[layer] = layer_total.get(layer, 0) + k
    if not n:
        return 0, [], []

    def spots(o: dict[str, int], t: dict[str, int], limit: int) -> list[HotSpot]:
        ranked = sorted(o.items(), key=lambda kv: -kv[1])[:limit]
        return [
            HotSpot(k, round(100 * v / n, 1), round(100 * t.get(k, v) / n, 1)) for k, v in ranked
        ]

    return n, spots(layer_own, layer_total, 20), spots(own, total, top)


def find_pyspy() -> str | None:
    """py-spy next to this interpreter or on PATH."""
    local = Path(sys.executable).parent / "py-spy"
    return str(local) if local.exists() else shutil.which("py-spy")


def profile_server(
    token: str, port: int, pid: int, tmp: Path, conns: int = 100, seconds: float = 6.0
) -> Profile | None:
    """Sample the server with py-spy during a closed-loop run; None without py-spy."""
    pyspy = find_pyspy()
    if pyspy is None:
        return None
    window = 1
    env = dict(os.environ)
    env[TOKEN_ENV] = token
    cmd = [sys.executable, "-m", "benchmarks.loadgen", "closed", "--port", str(port)]
    cmd += ["--server-pid", str(pid), "--connections", str(conns), "--window", str(window)]
    cmd += ["--duration", str(seconds + 2), "--warmup", "0.5"]
    raw = tmp / "profile.raw"
    with subprocess.Popen(cmd, env=env, cwd=ROOT, stdout=subprocess.PIPE) as load:
        time.sleep(1.5)
        spy = subprocess.run(
            [
                pyspy,
                "record",
                "-p",
                str(pid),
                "-d",
                str(int(seconds)),
                "-r",
                "250",
                "--nonblocking",
                "--format",
                "raw",
                "-o",
                str(raw),
            ],
            capture_output=True,
            timeout=seconds + 30,
        )
        out, _ = load.communicate(timeout=seconds + 60)
    if spy.returncode != 0 or not raw.exists():
        print(f"py-spy failed: {spy.stderr.decode()[-300:]}", flush=True)
        return None
    result = msgspec.json.decode(out.splitlines()[-1], type=RunResult)
    n, layers, functions = parse_pyspy_raw(raw.read_text())
    return Profile(
        connections=conns,
        window=window,
        samples=n,
        rps=result.rps,
        layers=layers,
        functions=functions,
    )


# -- aggregation -------------------------------------------------------------------------


def _median(values: list[float]) -> float:
    """Median of the values that are numbers (NaN when none is)."""
    values = [v for v in values if v == v]
    return round(statistics.median(values), 3) if values else float("nan")


def _per_cpu(r: RunResult) -> float:
    cpu = (r.server_cpu_pct or 0.0) / 100
    return r.rps / cpu if cpu > 0.05 else float("nan")


def summarise(runs: list[RunResult]) -> list[Summary]:
    """Median over repetitions, per (target, connections), closed-loop runs only."""
    groups: dict[tuple[str, int], list[RunResult]] = {}
    for r in runs:
        if r.scenario == "closed":
            groups.setdefault((r.target, r.connections), []).append(r)
    out = []
    for (target, conns), every in sorted(groups.items()):
        clean = [r for r in every if not r.contended]
        rs = clean or every
        lats = [r.latency for r in rs if r.latency]
        out.append(
            Summary(
                target=target,
                connections=conns,
                window=rs[0].window,
                reps=len(rs),
                contended=len(every) - len(clean),
                rps=_median([r.rps for r in rs]),
                rps_runs=[r.rps for r in rs],
                per_cpu_s=_median([_per_cpu(r) for r in rs]),
                p50_ms=_median([x.p50_ms for x in lats]),
                p95_ms=_median([x.p95_ms for x in lats]),
                p99_ms=_median([x.p99_ms for x in lats]),
                server_cpu_pct=_median([r.server_cpu_pct or 0.0 for r in rs]),
                gen_cpu_pct=_median([r.gen_cpu_pct for r in rs]),
                other_cpu_pct=_median([r.other_cpu_pct or 0.0 for r in rs]),
                server_rss_mb=max(r.server_rss_mb or 0.0 for r in rs),
                errors=sum(r.errors for r in rs),
            )
        )
    return out


def _find(summaries: list[Summary], target: str, conns: int) -> Summary | None:
    return next((s for s in summaries if s.target == target and s.connections == conns), None)


def checks(
    summaries: list[Summary],
    open_runs: list[RunResult],
    connect_seq: list[RunResult],
    idle: RunResult | None,
    idle_rss: float,
    pairs: list[tuple[RunResult, RunResult]],
) -> tuple[list[Check], float]:
    """The issue's figures against what was measured; also the echo ratio at 100."""
    out: list[Check] = []
    full = _find(summaries, "camsvc", 100)
    if full:
        out.append(
            Check(
                name="ping req/s, 100 connections (full stack)",
                target=">= 10000",
                measured=f"{full.rps:.0f} (server CPU {full.server_cpu_pct:.0f}%; "
                f"{full.per_cpu_s:.0f} per server CPU-second)",
                ok=full.rps >= 10000,
            )
        )
    p99s = [r.latency.p99_ms for r in open_runs if r.latency]
    if p99s:
        p99 = _median(p99s)
        out.append(
            Check(
                name="p99 at 1000 req/s over 100 connections",
                target="<= 10 ms",
                measured=f"{p99:.2f} ms",
                ok=p99 <= 10,
            )
        )
    p95s = [r.connect.p95_ms for r in connect_seq if r.connect]
    if p95s:
        p95 = _median(p95s)
        out.append(
            Check(
                name="connect+authenticate p95 (sequential)",
                target="<= 5 ms",
                measured=f"{p95:.2f} ms",
                ok=p95 <= 5,
            )
        )
    out.append(
        Check(
            name="idle server RSS",
            target="<= 60 MiB",
            measured=f"{idle_rss:.1f} MiB",
            ok=idle_rss <= 60,
        )
    )
    if idle is not None and idle.rss_added_mb is not None:
        out.append(
            Check(
                name=f"RSS added by {idle.connections} idle authenticated connections",
                target="<= 60 MiB",
                measured=f"{idle.rss_added_mb:.1f} MiB",
                ok=idle.rss_added_mb <= 60 and idle.connections >= 1000,
            )
        )
    # camsvc and echo run back to back in each repetition: the median of those pairs' ratios
    # compares like with like (preferring pairs where neither run was contended).
    clean = [(a, b) for a, b in pairs if not a.contended and not b.contended] or pairs
    ratio = _median([a.rps / b.rps for a, b in clean if b.rps])
    per_cpu = _median([_per_cpu(a) / _per_cpu(b) for a, b in clean if b.rps])
    out.append(
        Check(
            name="throughput ratio camsvc / bare echo, 100 connections",
            target=">= 0.7 (aim)",
            measured=f"{ratio:.2f} (per server CPU-second {per_cpu:.2f}; median of {len(clean)} "
            "back-to-back pairs)",
            ok=ratio >= 0.7,
        )
    )
    return out, ratio


# -- output ------------------------------------------------------------------------------


def _table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def _ratios(closed: list[Summary]) -> str:
    parts = []
    for conns in CONNECTIONS:
        full = _find(closed, "camsvc", conns)
        echo = _find(closed, "echo", conns)
        lean = _find(closed, "wsproto", conns)
        if full and echo and echo.rps:
            text = f"{conns}: {full.rps / echo.rps:.2f}"
            if lean and lean.rps:
                text += f" (vs wsproto {full.rps / lean.rps:.2f})"
            parts.append(text)
    return "camsvc / echo by connections: " + "; ".join(parts) + "." if parts else ""


def render(report: Report) -> str:
    """The RESULTS.md section (without its `##` heading line)."""
    m = report.machine
    parts = [
        f"Date {report.date}, commit `{report.commit}`. Machine: {m.nproc} CPUs ({m.cpu_model}), "
        f"{m.ram_gib} GiB RAM, Linux {m.kernel}, Python {m.python}; load average before the run "
        f"{' / '.join(map(str, m.loadavg_before))}. Server and load generator on the same "
        "machine, loopback only. Produced by `make bench-rpc` (`python -m benchmarks.rpc`).",
        "",
        "### Targets",
        "",
        _table(
            ["figure", "target", "measured", "verdict"],
            [[c.name, c.target, c.measured, "PASS" if c.ok else "FAIL"] for c in report.checks],
        ),
        "",
        f"### Closed loop (authenticated `ping`, {report.settings.get('reps', '?')} repetitions: "
        "medians of the uncontended runs, or of every attempt when all were contended)",
        "",
        "`window` = requests kept in flight per connection. CPU in % of one core, sampled over "
        "the measured interval: `server` the target process, `gen` the load generator, `other` "
        "everything else on the machine (other work sharing the 2 cores). A run with `other` "
        "above the `max_other` setting is contended: it is retried while the retry budget "
        "lasts and left out of the medians when an uncontended run exists (`contended` counts "
        "those attempts). `req per server CPU-s` divides req/s by the server's CPU share: the "
        "server's capacity on one core, which other work on the machine moves much less.",
        "",
        _table(
            [
                "target",
                "conns",
                "window",
                "req/s",
                "runs (req/s)",
                "req per server CPU-s",
                "p50 ms",
                "p95 ms",
                "p99 ms",
                "server CPU %",
                "gen CPU %",
                "other CPU %",
                "server RSS MiB",
                "errors",
                "contended",
            ],
            [
                [
                    s.target,
                    str(s.connections),
                    str(s.window),
                    f"{s.rps:.0f}",
                    ", ".join(f"{x:.0f}" for x in s.rps_runs),
                    f"{s.per_cpu_s:.0f}",
                    f"{s.p50_ms:.2f}",
                    f"{s.p95_ms:.2f}",
                    f"{s.p99_ms:.2f}",
                    f"{s.server_cpu_pct:.0f}",
                    f"{s.gen_cpu_pct:.0f}",
                    f"{s.other_cpu_pct:.0f}",
                    f"{s.server_rss_mb:.1f}",
                    str(s.errors),
                    str(s.contended),
                ]
                for s in report.closed
            ],
        ),
        "",
        f"camsvc / echo throughput at 100 connections: **{report.echo_ratio_100:.2f}** (median "
        "of back-to-back pairs). Ratios of the medians above, " + _ratios(report.closed),
        "",
        "### Open loop, connect, idle",
        "",
        _table(
            [
                "run",
                "conns",
                "achieved req/s",
                "p50 ms",
                "p95 ms",
                "p99 ms",
                "max ms",
                "send lag p99 ms",
                "server CPU %",
                "other CPU %",
            ],
            [
                [
                    f"open {r.rate:.0f} req/s",
                    str(r.connections),
                    f"{r.rps:.0f}",
                    f"{r.latency.p50_ms:.2f}",
                    f"{r.latency.p95_ms:.2f}",
                    f"{r.latency.p99_ms:.2f}",
                    f"{r.latency.max_ms:.2f}",
                    f"{r.send_lag.p99_ms:.2f}" if r.send_lag else "-",
                    f"{r.server_cpu_pct}",
                    f"{r.other_cpu_pct}",
                ]
                for r in report.open_loop
                if r.latency
            ],
        ),
        "",
        _table(
            [
                "connect + authenticate",
                "samples",
                "p50 ms",
                "p95 ms",
                "p99 ms",
                "max ms",
                "server CPU %",
            ],
            [
                [
                    ("sequential" if r.window <= 1 else f"waves of {r.window}"),
                    str(r.requests),
                    f"{r.connect.p50_ms:.2f}",
                    f"{r.connect.p95_ms:.2f}",
                    f"{r.connect.p99_ms:.2f}",
                    f"{r.connect.max_ms:.2f}",
                    f"{r.server_cpu_pct}",
                ]
                for r in report.connect
                if r.connect
            ],
        ),
        "",
        f"Idle RSS: camsvc {report.idle_rss_mb:.1f} MiB, bare echo server "
        f"{report.echo_idle_rss_mb:.1f} MiB (after `/health/ready`, before any WebSocket).",
    ]
    for r in report.idle:
        parts.append(
            f"{r.connections} idle authenticated connections: RSS {r.rss_before_mb} -> "
            f"{r.rss_after_mb} MiB (+{r.rss_added_mb} MiB, "
            f"{(r.rss_added_mb or 0) * 1024 / max(1, r.connections):.1f} KiB each); "
            f"opened in waves of {r.window}, connect p95 {r.connect.p95_ms if r.connect else '-'}"
            f" ms; afterwards {r.requests}/{r.connections} answered a ping."
        )
    if report.profile is not None:
        pr = report.profile
        parts += [
            "",
            f"### Server profile (py-spy, {pr.connections} connections, window {pr.window}, "
            f"{pr.rps:.0f} req/s while sampled, {pr.samples} samples)",
            "",
            "Self time is where the sample's innermost Python frame was; time in a system call "
            "counts to the Python function that made it.",
            "",
            _table(["layer", "self %"], [[h.name, f"{h.self_pct}"] for h in pr.layers]),
            "",
            _table(
                ["function", "self %", "on stack %"],
                [[f"`{h.name}`", f"{h.self_pct}", f"{h.total_pct}"] for h in pr.functions],
            ),
        ]
    parts += ["", "Settings: " + ", ".join(f"{k}={v}" for k, v in report.settings.items()) + "."]
    if report.notes:
        parts += ["", "Notes:", ""] + [f"- {n}" for n in report.notes]
    return "\n".join(parts) + "\n"


# -- the run -----------------------------------------------------------------------------


def _autogroup_nice() -> int | None:
    """This session's autogroup nice (None without autogroup scheduling)."""
    try:
        return int(Path("/proc/self/autogroup").read_text().rsplit("nice", 1)[1])
    except (OSError, ValueError, IndexError):
        return None


def _set_autogroup_nice(value: int) -> None:
    with contextlib.suppress(OSError):
        Path("/proc/self/autogroup").write_text(str(value))


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """The command line."""
    p = argparse.ArgumentParser(
        prog="python -m benchmarks.rpc",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--reps", type=int, default=3, help="repetitions of each closed-loop run")
    p.add_argument("--duration", type=float, default=3.0, help="measured seconds per run")
    p.add_argument("--warmup", type=float, default=0.5, help="seconds before measuring")
    p.add_argument(
        "--in-flight",
        type=int,
        default=32,
        help="closed loop: window per connection = max(1, this // connections)",
    )
    p.add_argument("--open-rate", type=float, default=1000.0)
    p.add_argument("--open-duration", type=float, default=5.0)
    p.add_argument("--idle-connections", type=int, default=1000)
    p.add_argument("--connect-samples", type=int, default=200)
    p.add_argument("--quick", action="store_true", help="1 rep, 1 s runs: a smoke test")
    p.add_argument(
        "--nice",
        type=int,
        default=0,
        help="run the servers and generators at this niceness, and give this session's "
        "autogroup the same nice while it runs (negative needs root): shields the figures "
        "from other work on a shared machine, at that work's expense",
    )
    p.add_argument(
        "--profile",
        action="store_true",
        help="also sample the server with py-spy (if installed) at 100 connections",
    )
    p.add_argument("--no-wsproto", action="store_true", help="skip the wsproto echo baseline")
    p.add_argument(
        "--quiet-wait",
        type=float,
        default=3.0,
        help="before each run, wait up to this many s for other CPU use to settle",
    )
    p.add_argument(
        "--max-other",
        type=float,
        default=30.0,
        help="a run where other processes used more CPU (%% of a core) is retried",
    )
    p.add_argument(
        "--retry-budget",
        type=float,
        default=60.0,
        help="seconds that waiting for quiet and retrying may add in all",
    )
    p.add_argument("--no-write", action="store_true", help="print only; write no files")
    p.add_argument("--from-json", type=Path, help="re-render RESULTS.md from a saved report")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """Run every scenario, print the table, write RESULTS.md and the JSON."""
    args = parse_args(argv)
    if args.from_json:
        saved = msgspec.json.decode(args.from_json.read_bytes(), type=Report)
        update_results_md(BENCH_DIR / "RESULTS.md", render(saved), SECTION)
        print(f"re-rendered benchmarks/RESULTS.md ({SECTION}) from {args.from_json}")
        return 0
    if args.quick:
        args.reps, args.duration, args.open_duration = 1, 1.0, 2.0
    raise_nofile_limit()
    niceness = os.getpriority(os.PRIO_PROCESS, 0)
    if args.nice:
        try:
            os.setpriority(os.PRIO_PROCESS, 0, args.nice)  # inherited by every child
            niceness = args.nice
            # With autogroup scheduling, nice only ranks processes within one session; the
            # session's own weight against other sessions is its autogroup's nice.
            autogroup_nice = _autogroup_nice()
            if autogroup_nice is not None:
                with contextlib.suppress(OSError):
                    Path("/proc/self/autogroup").write_text(str(args.nice))
                    # The group outlives this process (it is the shell's): put it back at exit.
                    atexit.register(_set_autogroup_nice, autogroup_nice)
        except OSError as exc:
            print(f"--nice {args.nice}: {exc}; running at {niceness}", flush=True)
    started = time.monotonic()
    now = dt.datetime.now(dt.UTC)
    mach = machine()
    from camsvc.auth import mint_token
    from camsvc.auth.roles import Role

    token = mint_token(SECRET, "bench", Role.ADMIN, 3600)
    runs: list[RunResult] = []
    gen = Generator(
        token,
        runs,
        quiet_s=args.quiet_wait,
        max_other_pct=args.max_other,
        budget_s=args.retry_budget,
    )
    port, health_port, echo_port, wsproto_port = free_ports(4)
    notes: list[str] = []
    echo_cmd = [sys.executable, "-m", "benchmarks.echo_server", "--port"]
    with tempfile.TemporaryDirectory(prefix="camsvc-bench-") as tmpdir:
        tmp = Path(tmpdir)
        env = server_env(tmp, port, health_port)
        plain_env = dict(os.environ)
        with (
            running(camsvc_command(), env, tmp / "camsvc.log") as server,
            running([*echo_cmd, str(echo_port)], plain_env, tmp / "echo.log") as echo,
            running(
                [*echo_cmd, str(wsproto_port), "--impl", "wsproto"], plain_env, tmp / "ws.log"
            ) as wsproto_echo,
        ):
            ready_s = wait_ready(health_port, server)
            wait_listening(echo_port, echo)
            wait_listening(wsproto_port, wsproto_echo)
            print(
                f"camsvc pid {server.pid} ready in {ready_s:.2f} s on {HOST}:{port}; "
                f"echo pid {echo.pid} on {echo_port}; wsproto echo pid {wsproto_echo.pid} "
                f"on {wsproto_port}",
                flush=True,
            )
            time.sleep(1.0)
            idle_rss = rss_mb(server.pid)
            echo_idle_rss = rss_mb(echo.pid)
            print(f"idle RSS camsvc {idle_rss} MiB, echo {echo_idle_rss} MiB", flush=True)

            print("idle connections", flush=True)
            idle = gen.run(
                "idle",
                port,
                server.pid,
                "camsvc",
                connections=args.idle_connections,
                parallel=50,
                duration=2.0,
                retry=False,  # a second attempt would find the memory the first one left
            )

            print("connect + authenticate", flush=True)
            connect_seq = [
                gen.run(
                    "connect",
                    port,
                    server.pid,
                    "camsvc",
                    connections=args.connect_samples,
                    parallel=1,
                )
                for _ in range(args.reps)
            ]
            connect_runs = [
                *connect_seq,
                gen.run(
                    "connect",
                    port,
                    server.pid,
                    "camsvc",
                    connections=args.connect_samples,
                    parallel=50,
                    retry=False,
                ),
            ]

            print("closed loop", flush=True)
            targets = [("camsvc", port, server.pid), ("echo", echo_port, echo.pid)]
            if not args.no_wsproto:
                targets.append(("wsproto", wsproto_port, wsproto_echo.pid))
            pairs: list[tuple[RunResult, RunResult]] = []  # (camsvc, echo) at 100, per rep
            for _ in range(args.reps):
                for conns in CONNECTIONS:
                    window = max(1, args.in_flight // conns)
                    rep: dict[str, RunResult] = {}
                    for label, p, pid in targets:
                        rep[label] = gen.run(
                            "closed",
                            p,
                            pid,
                            label,
                            retry=conns == 100,  # the retry budget goes to the headline figures
                            connections=conns,
                            window=window,
                            duration=args.duration,
                            warmup=args.warmup,
                        )
                    if conns == 100:
                        pairs.append((rep["camsvc"], rep["echo"]))

            print("open loop", flush=True)
            open_runs = [
                gen.run(
                    "open",
                    port,
                    server.pid,
                    "camsvc",
                    connections=100,
                    rate=args.open_rate,
                    duration=args.open_duration,
                    warmup=args.warmup,
                )
                for _ in range(args.reps)
            ]
            profile = None
            if args.profile:
                print("profile (py-spy)", flush=True)
                profile = profile_server(token, port, server.pid, tmp)
                if profile is None:
                    notes.append("--profile: py-spy not found or failed; no profile taken")
            exit_code = stop(server)
            stop(echo)
            stop(wsproto_echo)
        if exit_code != 0:
            notes.append(f"camsvc exited with {exit_code} on SIGTERM (expected 0).")
        log_tail = (tmp / "camsvc.log").read_text(errors="replace").strip().splitlines()[-5:]
        if log_tail:
            notes.append("last server log lines: " + " / ".join(ln[:200] for ln in log_tail))

    summaries = summarise(runs)
    check_list, ratio = checks(summaries, open_runs, connect_seq, idle, idle_rss, pairs)
    closed_max = max(
        (s for s in summaries if s.target == "camsvc"), key=lambda s: s.rps, default=None
    )
    if closed_max and closed_max.gen_cpu_pct >= 90:
        notes.append(
            f"the load generator was at {closed_max.gen_cpu_pct:.0f}% CPU at "
            f"{closed_max.connections} connections: it may limit the figure"
        )
    if max((s.other_cpu_pct for s in summaries), default=0) > 20:
        notes.append(
            "other processes used a noticeable share of the CPUs during some runs "
            "(column `other CPU %`): figures are lower than on a quiet machine"
        )
    notes.append(f"whole benchmark took {time.monotonic() - started:.0f} s")
    report = Report(
        date=now.strftime("%Y-%m-%dT%H:%M:%SZ"),
        commit=git_commit(),
        machine=mach,
        settings={
            "reps": str(args.reps),
            "duration_s": str(args.duration),
            "warmup_s": str(args.warmup),
            "in_flight": str(args.in_flight),
            "rate_limit": "1e9 req/s per connection (default 100 would throttle)",
            "max_connections": "4000",
            "logging": "warning",
            "max_other_pct": str(args.max_other),
            "niceness": str(niceness),
        },
        idle_rss_mb=idle_rss,
        echo_idle_rss_mb=echo_idle_rss,
        server_exit_code=exit_code,
        checks=check_list,
        echo_ratio_100=ratio,
        closed=summaries,
        open_loop=open_runs,
        connect=connect_runs,
        idle=[idle],
        runs=runs,
        notes=notes,
        profile=profile,
    )
    print()
    print(
        _table(
            ["figure", "target", "measured", "verdict"],
            [[c.name, c.target, c.measured, "PASS" if c.ok else "FAIL"] for c in check_list],
        )
    )
    print()
    body = render(report)
    if args.no_write:
        print(body)
        return 0
    out_dir = BENCH_DIR / "results"
    out_dir.mkdir(exist_ok=True)
    json_path = out_dir / f"rpc-{now.strftime('%Y-%m-%d')}.json"
    json_path.write_bytes(msgspec.json.format(msgspec.json.encode(report)) + b"\n")
    update_results_md(BENCH_DIR / "RESULTS.md", body, SECTION)
    print(f"wrote {json_path.relative_to(ROOT)} and benchmarks/RESULTS.md ({SECTION})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
