"""`make bench-recording`: recordings through the full API (issue 8).

`camsvc serve` runs as a subprocess on loopback with the emulated V4L2 device preloaded, and
the MediaMTX stand-in (`python -m camsvc.streaming.standin`) as a second subprocess whose API
and RTSP ports the service's config names (`mediamtx.spawn: never`), as a deployment with its
own MediaMTX would. Every camera is opened at 640x480 @ 30 fps MJPEG (`--mode`; camsvc has no
setting for it, see `benchmarks.pinned_mode`). Clients run in this process
(`benchmarks.wsclient`). Scenarios:

- latency: `start_recording` and `stop_recording`, one client, one call at a time. *Live*:
  camera0 already streaming (`start_streaming` done, its path ready), so the pump and the
  encoder run; each cycle records `--record-s`. *Cold*: a camera never used since the server
  started (no pump, no encoder): the start opens the device, starts the encoder and waits
  for MediaMTX's first segment. A fresh server per repetition; medians of the
  per-repetition p50/p95;
- the spec load: `--cameras` (10) cameras recording at once for `--hold` (60) s, started
  together with `duration` so camsvc stops them itself; meanwhile one client takes a
  snapshot every `--snapshot-interval` s round-robin over the cameras (take_snapshot latency
  while they all record), and the CPU and RSS of the whole process tree (camsvc, its
  encoders, the stand-in, its recorders) are sampled with psutil. The load *holds* when:
  every start_recording and take_snapshot succeeded; every recording ended by itself
  (`recording_status_update` STOPPED, reason `duration_elapsed`, no ERROR); and each
  camera's files are valid for ffprobe (H.264 at the mode's size) with a total duration
  within ±10 % of `--hold` and at most `DROP_BOUND` of the frames missing (packets in the
  files against the nominal rate times the files' duration);
- the largest count that holds: a stepped search from the spec result (up by half while it
  holds, then bisection), each step on a fresh server with the same criterion over
  `--search-hold` s, stopped by `--search-budget` s of wall time;
- recordings per hour: `--rate-lanes` cameras each cycling start → `--rate-record` s →
  stop for `--rate-seconds`; every file checked as above; camsvc's RSS, descriptors and
  child processes before and after (a leak would make any rate unsustainable).

Writes the section "Recording (issue 8)" of `benchmarks/RESULTS.md` (others kept) and
`benchmarks/results/recording-<date>.json`. `--quick` is a short run for development.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import json
import math
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import msgspec
import psutil

from benchmarks.wsclient import (
    HOST,
    Check,
    Machine,
    Server,
    WsSocket,
    apply_nice,
    git_commit,
    machine,
    markdown_table,
    median,
    open_clients,
    raise_nofile_limit,
    report_tail,
    update_results_md,
    wait_quiet,
)
from camsvc.emulator import EmulatedCamera

__all__ = ["LoadResult", "Report", "main"]

ROOT = Path(__file__).resolve().parent.parent
SECTION = "Recording (issue 8)"
SPEC_MODE = "640x480@30"
DROP_BOUND = 0.05  # at most this share of the nominal frames missing from a recording's files
DURATION_TOL = 0.10  # a recording's files last its requested duration ± this share
QUIET_S = 5.0  # at most this long to wait for other work on the machine to calm down
SAMPLE_S = 1.0  # period of the process-tree samples
BUSY_OTHER_PCT = 50.0  # other sessions' CPU (% of one core) above which a run is flagged
TRACE_POLL_S = 0.003  # period of the phase polls during a latency sample
STATUS = b'"method":"recording_status_update"'


# -- records -------------------------------------------------------------------------------


class Latency(msgspec.Struct, kw_only=True):
    """One call's latency on live or cold cameras, over every repetition."""

    op: str  # start_recording | stop_recording
    camera: str  # live | cold
    samples_per_rep: int
    reps: int
    p50_ms: float  # medians over repetitions of the per-repetition percentiles
    p95_ms: float
    max_ms: float
    errors: int
    error_samples: list[str]
    # A call's consecutive phases (request → the stand-in's recorder started → the segment
    # file appeared → reply; request → the recorder exited → reply): p50 over the samples of
    # each gap, polled every TRACE_POLL_S (so they need not add up to the p50 above).
    phases_p50_ms: dict[str, float]


class TreeUsage(msgspec.Struct, kw_only=True):
    """CPU (% of one core) and RSS of the service's process tree over an interval."""

    seconds: float
    cpu_pct: float
    cpu_by_group: dict[str, float]
    rss_mb_peak: float  # the largest sum over the tree in one sample
    rss_mb_mean: float
    rss_by_group_peak: dict[str, float]
    # Proportional set size: shared pages (ffmpeg's libraries, Python) counted once over
    # the tree rather than in every process, as the RSS sum does.
    pss_mb_peak: float
    processes_peak: int
    client_cpu_pct: float
    other_cpu_pct: float  # every other process on the machine (other sessions)


class FileCheck(msgspec.Struct, kw_only=True):
    """One camera's recording as ffprobe sees its files."""

    device: str
    files: int
    codec: str
    size: str
    duration_s: float
    frames: int
    missing_pct: float
    ok: bool
    why: str = ""


class Snapshots(msgspec.Struct, kw_only=True):
    """take_snapshot latency while the cameras record."""

    count: int
    errors: int
    p50_ms: float
    p99_ms: float
    max_ms: float


class LoadResult(msgspec.Struct, kw_only=True):
    """N cameras recording at once for `hold_s`."""

    cameras: int
    hold_s: float
    held: bool
    failures: list[str]
    started: int
    all_started_s: float  # from the first request sent to the last reply read
    stopped: int
    statuses: dict[str, int]  # final recording_status_update status/reason → count
    files: list[FileCheck]
    capture_dropped: int  # the service's frames_dropped over the cameras
    # Over the window, the lowest camera's rate of frames captured by its pump and of
    # frames its publisher fed to the encoder (where frames are lost before the files).
    captured_fps_min: float = math.nan
    fed_fps_min: float = math.nan
    snapshots: Snapshots | None
    usage: TreeUsage | None
    wall_s: float


class Rate(msgspec.Struct, kw_only=True):
    """Start → record → stop cycles for a bounded time."""

    lanes: int
    record_s: float
    seconds: float
    recordings: int
    valid: int
    errors: int
    error_samples: list[str]
    per_hour: float
    overhead_p50_ms: float  # start + stop latency of one recording
    start_p50_ms: float
    stop_p50_ms: float
    growth: dict[str, list[float]]  # figure → [before, after]


class Report(msgspec.Struct, kw_only=True):
    """Everything one `make bench-recording` measured."""

    date: str
    commit: str
    machine: Machine
    quick: bool
    mode: str
    settings: dict[str, str | int | float]
    latency: list[Latency]
    spec: LoadResult | None
    search: list[LoadResult]
    largest_held: int | None
    search_note: str
    rate: Rate | None
    checks: list[Check]
    notes: list[str]


# -- statistics ----------------------------------------------------------------------------


def pct_ms(samples_ns: Sequence[int], p: float) -> float:
    """Nearest-rank percentile of nanosecond samples, in ms (nan when empty)."""
    if not samples_ns:
        return math.nan
    data = sorted(samples_ns)
    return round(data[min(len(data), max(1, math.ceil(p * len(data) / 100))) - 1] / 1e6, 1)


# -- the stand-in and the service ----------------------------------------------------------


class StandIn:
    """`python -m camsvc.streaming.standin` as a subprocess on loopback, any free ports."""

    def __init__(self, tmp: Path, recordings: Path) -> None:
        self.log = tmp / "standin.log"
        self.recordings = recordings
        self.proc: subprocess.Popen[bytes] | None = None
        self.api = self.rtsp = 0

    @property
    def pid(self) -> int:
        """The stand-in's process id."""
        assert self.proc is not None
        return self.proc.pid

    def start(self, limit_s: float = 20.0) -> None:
        """Start it and read the ports it printed."""
        env = {k: v for k, v in os.environ.items() if k != "LD_PRELOAD"}
        argv = [sys.executable, "-m", "camsvc.streaming.standin", "--host", HOST, "--api-port",
                "0", "--rtsp-port", "0", "--recordings", str(self.recordings)]  # fmt: skip
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(argv, env=env, stdout=out, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + limit_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"stand-in exited: {self.log.read_text(errors='replace')}")
            for line in self.log.read_text(errors="replace").splitlines():
                with contextlib.suppress(ValueError):
                    ports = json.loads(line)
                    if isinstance(ports, dict) and "rtsp" in ports and "api" in ports:
                        self.api, self.rtsp = int(ports["api"]), int(ports["rtsp"])
                        return
            time.sleep(0.05)
        raise RuntimeError(f"stand-in printed no ports within {limit_s} s")

    def stop(self, limit_s: float = 10.0) -> None:
        """SIGTERM, then SIGKILL after `limit_s`."""
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(limit_s)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(5)


class Rig(msgspec.Struct, kw_only=True):
    """A running stand-in and service, and where the service writes recordings."""

    server: Server
    standin: StandIn
    recordings: Path
    cameras: int


@contextlib.contextmanager
def rig(
    tmp: Path, emu: Path, name: str, cameras: int, mode: str, env: dict[str, str] | None = None
) -> Iterator[Rig]:
    """A fresh stand-in and service seeing cameras 0..cameras-1, stopped after the block."""
    work = tmp / name
    work.mkdir()
    recordings = work / "recordings"
    standin = StandIn(work, recordings)
    argv = None if mode == "native" else [sys.executable, "-m", "benchmarks.pinned_mode", mode]
    server = Server(
        work,
        emu,
        {
            "CAMERA_SERVICE_CAMERA_DEVICE_RANGE": f"[0, {cameras - 1}]",
            "CAMERA_SERVICE_MEDIAMTX_API_URL": "",  # set below, once the ports are known
            "CAMERA_SERVICE_MEDIAMTX_HEALTH_CHECK_INTERVAL": "1",
            "CAMERA_SERVICE_RECORDING_PROGRESS_INTERVAL": "0",
            **(env or {}),
        },
        argv,
    )
    try:
        standin.start()
        server.env["CAMERA_SERVICE_MEDIAMTX_API_URL"] = f"http://{HOST}:{standin.api}"
        server.env["CAMERA_SERVICE_MEDIAMTX_RTSP_PORT"] = str(standin.rtsp)
        with server.running():
            yield Rig(server=server, standin=standin, recordings=recordings, cameras=cameras)
    finally:
        standin.stop()


def wait_cameras(ws: WsSocket, count: int, mode: str, limit_s: float = 30.0) -> None:
    """Until `count` cameras are CONNECTED (in `mode` unless native)."""
    deadline = time.monotonic() + limit_s
    while True:
        listed = ws.call("get_camera_list")
        cams = [c for c in listed["cameras"] if c["status"] == "CONNECTED"]
        if len(cams) >= count:
            break
        if time.monotonic() > deadline:
            raise RuntimeError(f"{len(cams)} of {count} cameras connected after {limit_s} s")
        time.sleep(0.2)
    if mode != "native":
        size, fps = mode.split("@")
        wrong = [c for c in cams if c["resolution"] != size or int(c["fps"]) != int(fps)]
        if wrong:
            raise RuntimeError(f"mode not pinned: {wrong[0]['resolution']} @ {wrong[0]['fps']}")


# -- the process tree ----------------------------------------------------------------------


def _busy() -> float:
    t = psutil.cpu_times()
    return sum(getattr(t, f, 0.0) for f in ("user", "nice", "system", "irq", "softirq", "steal"))


class TreeSampler:
    """CPU and RSS of named process trees (root and every descendant), sampled by `sample()`.

    A process's CPU in the interval is its last reading minus its first; one started during
    the interval counts from zero. A process that ends between two samples loses what it
    used since the last one (samples are `SAMPLE_S` apart)."""

    def __init__(self, roots: dict[str, int]) -> None:
        self.roots = roots
        self.first: dict[tuple[int, float], float] = {}
        self.last: dict[tuple[int, float], tuple[str, float]] = {}
        self.rss: list[dict[str, float]] = []
        self.pss: list[float] = []
        self.procs_peak = 0
        self.t0 = self.wall0 = self.own0 = self.sys0 = 0.0

    def _tree(self) -> list[tuple[str, psutil.Process]]:
        out: list[tuple[str, psutil.Process]] = []
        for name, pid in self.roots.items():
            try:
                root = psutil.Process(pid)
                out.append((name, root))
                out += [(f"{name} children", c) for c in root.children(recursive=True)]
            except psutil.NoSuchProcess:
                continue
        return out

    def start(self) -> None:
        """Begin the interval."""
        self.t0, self.wall0 = time.monotonic(), time.time()
        self.own0 = sum(psutil.Process().cpu_times()[:2])
        self.sys0 = _busy()
        self.sample()

    def sample(self) -> None:
        """Read every process of the trees once."""
        rss: dict[str, float] = {}
        pss = 0.0
        count = 0
        for group, proc in self._tree():
            try:
                with proc.oneshot():
                    key = (proc.pid, proc.create_time())
                    cpu = sum(proc.cpu_times()[:2])
                    mem = proc.memory_info().rss / 2**20
                    pss += proc.memory_full_info().pss / 2**20
            except psutil.NoSuchProcess:
                continue
            count += 1
            if key not in self.first:
                self.first[key] = cpu if key[1] < self.wall0 else 0.0
            self.last[key] = (group, cpu)
            rss[group] = rss.get(group, 0.0) + mem
        self.rss.append(rss)
        self.pss.append(pss)
        self.procs_peak = max(self.procs_peak, count)

    def stop(self) -> TreeUsage:
        """End the interval: CPU per group, RSS peak and mean."""
        self.sample()
        secs = max(1e-6, time.monotonic() - self.t0)
        by: dict[str, float] = {}
        for key, (group, cpu) in self.last.items():
            by[group] = by.get(group, 0.0) + cpu - self.first[key]
        tree = sum(by.values())
        own = sum(psutil.Process().cpu_times()[:2]) - self.own0
        other = max(0.0, _busy() - self.sys0 - tree - own)
        totals = [sum(r.values()) for r in self.rss]
        groups = sorted({g for r in self.rss for g in r})
        return TreeUsage(
            seconds=round(secs, 1),
            cpu_pct=round(100 * tree / secs, 1),
            cpu_by_group={g: round(100 * by.get(g, 0.0) / secs, 1) for g in groups},
            rss_mb_peak=round(max(totals, default=0.0), 1),
            rss_mb_mean=round(sum(totals) / len(totals), 1) if totals else 0.0,
            rss_by_group_peak={g: round(max(r.get(g, 0.0) for r in self.rss), 1) for g in groups},
            pss_mb_peak=round(max(self.pss, default=0.0), 1),
            processes_peak=self.procs_peak,
            client_cpu_pct=round(100 * own / secs, 1),
            other_cpu_pct=round(100 * other / secs, 1),
        )


# -- calls ---------------------------------------------------------------------------------


def timed(ws: WsSocket, method: str, params: dict[str, Any]) -> tuple[int, Any, str | None]:
    """One call: (ns, result, None) or (ns, None, error text)."""
    t0 = time.monotonic_ns()
    try:
        result = ws.call(method, params, timeout=30)
    except Exception as exc:
        return time.monotonic_ns() - t0, None, str(exc)[:300]
    return time.monotonic_ns() - t0, result, None


def wait_stream_ready(ws: WsSocket, device: str, limit_s: float = 15.0) -> None:
    """Until MediaMTX reports the camera's path ready (a publisher is in)."""
    deadline = time.monotonic() + limit_s
    while not ws.call("get_stream_status", {"device": device}).get("ready"):
        if time.monotonic() > deadline:
            raise RuntimeError(f"{device}: stream not ready after {limit_s} s")
        time.sleep(0.1)


def ffprobe_files(files: list[Path], fps: float, expect_s: float, size: str) -> FileCheck:
    """ffprobe every file of one recording; the verdict against the hold criterion."""
    device = files[0].parent.name if files else "?"
    total = 0.0
    frames = 0
    codecs: set[str] = set()
    sizes: set[str] = set()
    why: list[str] = []
    for f in files:
        out = subprocess.run(
            ["ffprobe", "-v", "error", "-count_packets", "-select_streams", "v:0",
             "-show_entries", "stream=codec_name,width,height,nb_read_packets:format=duration",
             "-of", "json", str(f)],
            capture_output=True, text=True, timeout=60,
        )  # fmt: skip
        if out.returncode != 0:
            why.append(f"{f.name}: ffprobe: {out.stderr.strip()[:200]}")
            continue
        info = json.loads(out.stdout)
        streams = info.get("streams") or [{}]
        codecs.add(str(streams[0].get("codec_name")))
        sizes.add(f"{streams[0].get('width')}x{streams[0].get('height')}")
        frames += int(streams[0].get("nb_read_packets") or 0)
        total += float(info.get("format", {}).get("duration") or 0.0)
    missing = max(0.0, 1 - frames / (total * fps)) if total > 0 and fps else 1.0
    if not files:
        why.append("no file")
    if codecs and codecs != {"h264"}:
        why.append(f"codec {sorted(codecs)}")
    if size != "native" and sizes and sizes != {size}:
        why.append(f"size {sorted(sizes)}")
    if abs(total - expect_s) > DURATION_TOL * expect_s:
        why.append(f"duration {total:.2f} s, expected {expect_s:g} s ± {DURATION_TOL:.0%}")
    if missing > DROP_BOUND:
        why.append(f"{missing:.1%} of the frames missing (bound {DROP_BOUND:.0%})")
    return FileCheck(
        device=device,
        files=len(files),
        codec=",".join(sorted(codecs)),
        size=",".join(sorted(sizes)),
        duration_s=round(total, 2),
        frames=frames,
        missing_pct=round(100 * missing, 1),
        ok=not why,
        why="; ".join(why),
    )


def recording_files(recordings: Path, device: str, filenames: set[str] | None = None) -> list[Path]:
    """A camera's recording files (only `filenames` if given), oldest first."""
    folder = recordings / device
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.glob("*.mp4") if filenames is None or p.name in filenames)


# -- latency -------------------------------------------------------------------------------


class _Series:
    """Samples of one call on one kind of camera: latencies, errors, phase times (ns)."""

    def __init__(self) -> None:
        self.ns: list[int] = []
        self.errors: list[str] = []
        self.phases: dict[str, list[int]] = {}

    def add(self, ns: int, err: str | None, marks: dict[str, int], order: Sequence[str]) -> None:
        """One sample; `marks` (name → ns after the request) in `order` become gaps."""
        if err is not None:
            self.errors.append(err)
            return
        self.ns.append(ns)
        if any(name not in marks for name in order):
            return  # a phase too short for the poll to see
        prev, prev_at = "request", 0
        for name, at in [*((n, marks[n]) for n in order), ("reply", ns)]:
            self.phases.setdefault(f"{prev} → {name}", []).append(at - prev_at)
            prev, prev_at = name, at


def _recorder_running(standin_pid: int, device: str) -> bool:
    """Whether the stand-in runs an ffmpeg reading the camera's path (its recorder)."""
    try:
        kids = psutil.Process(standin_pid).children()
    except psutil.NoSuchProcess:
        return False
    for kid in kids:
        with contextlib.suppress(psutil.Error):
            if any(a.endswith(f"/{device}") for a in kid.cmdline()):
                return True
    return False


def _new_segment(recordings: Path, device: str, before: set[str]) -> bool:
    folder = recordings / device
    with contextlib.suppress(FileNotFoundError):
        return any(p.suffix == ".mp4" and p.name not in before for p in folder.iterdir())
    return False


def traced(
    ws: WsSocket, method: str, params: dict[str, Any], marks: dict[str, Any]
) -> tuple[int, Any, str | None, dict[str, int]]:
    """One call while polling `marks` (name → predicate) every few ms: (ns, result, error,
    name → ns after the request when the predicate first held)."""
    t0 = time.monotonic_ns()
    rid = ws.start(method, params)
    seen: dict[str, int] = {}
    while True:
        try:
            result = ws.reply(rid, method, timeout=TRACE_POLL_S)
        except TimeoutError:
            now = time.monotonic_ns()
            for name, holds in marks.items():
                if name not in seen and holds():
                    seen[name] = now - t0
            if now - t0 > 30e9:
                return now - t0, None, f"{method}: no reply in 30 s", seen
            continue
        except Exception as exc:
            return time.monotonic_ns() - t0, None, str(exc)[:300], seen
        return time.monotonic_ns() - t0, result, None, seen


def latency_rep(tmp: Path, emu: Path, rep: int, args: argparse.Namespace) -> dict[str, _Series]:
    """One repetition on a fresh service: live cycles on camera0, cold ones on cameras 1..n."""
    out = {f"{op} {cam}": _Series() for op in ("start", "stop") for cam in ("live", "cold")}

    def cycle(ws: WsSocket, r: Rig, device: str, temp: str, keep: bool) -> None:
        before = {p.name for p in recording_files(r.recordings, device)}
        ns, _, err, marks = traced(
            ws,
            "start_recording",
            {"device": device},
            {
                "recorder started": lambda: _recorder_running(r.standin.pid, device),
                "segment file": lambda: _new_segment(r.recordings, device, before),
            },
        )
        if keep:
            out[f"start {temp}"].add(ns, err, marks, ("recorder started", "segment file"))
        if err is not None:
            return
        time.sleep(args.record_s)
        ns, res, err, marks = traced(
            ws,
            "stop_recording",
            {"device": device},
            {"recorder exited": lambda: not _recorder_running(r.standin.pid, device)},
        )
        if err is None and not (res.get("segments") and res.get("file_size")):
            err = f"stop_recording returned no segment: {res}"
        if keep:
            out[f"stop {temp}"].add(ns, err, marks, ("recorder exited",))

    cams = 1 + args.cold
    with rig(tmp, emu, f"latency-{rep}", cams, args.mode) as r:
        [ws] = open_clients(1, r.server.port, r.server.token())
        wait_cameras(ws, cams, args.mode)
        ws.call("start_streaming", {"device": "camera0"})
        wait_stream_ready(ws, "camera0")
        wait_quiet(QUIET_S)
        for i in range(2 + args.live):  # two warm-up cycles
            cycle(ws, r, "camera0", "live", keep=i >= 2)
            time.sleep(random.uniform(0.2, 0.5))
        ws.call("stop_streaming", {"device": "camera0"})
        for i in range(1, cams):
            time.sleep(1.0)  # the previous camera's encoder and recorder have ended
            cycle(ws, r, f"camera{i}", "cold", keep=True)
        ws.close()
    return out


def latency(tmp: Path, emu: Path, args: argparse.Namespace) -> list[Latency]:
    """Every repetition; medians of the per-repetition percentiles."""
    reps = [latency_rep(tmp, emu, rep, args) for rep in range(args.reps)]
    rows = []
    for cam in ("live", "cold"):
        for op in ("start", "stop"):
            per = [r[f"{op} {cam}"] for r in reps]
            errors = [e for s in per for e in s.errors]
            names = list(dict.fromkeys(n for s in per for n in s.phases))
            row = Latency(
                op=f"{op}_recording",
                camera=cam,
                samples_per_rep=args.live if cam == "live" else args.cold,
                reps=len(per),
                p50_ms=round(median([pct_ms(s.ns, 50) for s in per if s.ns]), 1),
                p95_ms=round(median([pct_ms(s.ns, 95) for s in per if s.ns]), 1),
                max_ms=pct_ms([x for s in per for x in s.ns], 100),
                errors=len(errors),
                error_samples=errors[:3],
                phases_p50_ms={
                    n: pct_ms([x for s in per for x in s.phases.get(n, [])], 50) for n in names
                },
            )
            print(
                f"  {row.op:16} {cam:4}: p50 {row.p50_ms} p95 {row.p95_ms} max {row.max_ms} ms, "
                f"{row.errors} errors; phases p50 {row.phases_p50_ms}",
                flush=True,
            )
            for e in row.error_samples:
                print(f"    error: {e}", flush=True)
            rows.append(row)
    return rows


# -- N cameras recording at once -------------------------------------------------------------


def load(
    tmp: Path, emu: Path, name: str, cameras: int, hold_s: float, args: argparse.Namespace
) -> LoadResult:
    """`cameras` recordings at once for `hold_s`, snapshots meanwhile; the hold criterion."""
    t_begin = time.monotonic()
    failures: list[str] = []
    fps = float(args.mode.split("@")[1]) if args.mode != "native" else 60.0
    size = args.mode.split("@")[0]
    with rig(tmp, emu, name, cameras, args.mode) as r:
        conns = open_clients(cameras + 1, r.server.port, r.server.token())
        starters, watch = conns[:cameras], conns[cameras]
        wait_cameras(watch, cameras, args.mode)
        wait_quiet(QUIET_S)
        devices = [f"camera{i}" for i in range(cameras)]
        t0 = time.monotonic()
        sent = [
            ws.start("start_recording", {"device": d, "duration": hold_s})
            for ws, d in zip(starters, devices, strict=True)
        ]
        started: dict[str, str] = {}
        for ws, rid, d in zip(starters, sent, devices, strict=True):
            try:
                started[d] = ws.reply(rid, "start_recording", timeout=60)["filename"]
            except Exception as exc:
                failures.append(f"start_recording {d}: {str(exc)[:200]}")
        all_started = time.monotonic() - t0
        # Until the first recording could end: every camera records for the whole window.
        window_end = t0 + hold_s - 1.0
        sampler = TreeSampler({"camsvc": r.server.pid, "stand-in": r.standin.pid})
        counted = _counters(watch, list(started))
        sampler.start()
        snaps: list[int] = []
        snap_errors: list[str] = []
        next_sample = time.monotonic() + SAMPLE_S
        i = 0
        while (now := time.monotonic()) < window_end:
            if now >= next_sample:
                sampler.sample()
                next_sample += SAMPLE_S
            ns, _, err = timed(watch, "take_snapshot", {"device": devices[i % cameras]})
            i += 1
            if err is None:
                snaps.append(ns)
            else:
                snap_errors.append(err)
            time.sleep(max(0.0, args.snapshot_interval - ns / 1e9))
        usage = sampler.stop()
        rates = _rates(counted, _counters(watch, list(started)))
        # Each recording ends by itself `hold_s` after its start (camsvc's auto-stop).
        statuses: dict[str, int] = {}
        ended: set[str] = set()
        deadline = time.monotonic() + 30.0
        while len(ended) < len(started) and (left := deadline - time.monotonic()) > 0:
            raw = watch.notification(lambda b: STATUS in b and b'"status":"STARTED"' not in b, left)
            if raw is None:
                break
            params = msgspec.json.decode(raw)["params"]
            ended.add(params["device"])
            key = f"{params['status']}/{params.get('reason', '')}"
            statuses[key] = statuses.get(key, 0) + 1
        if len(ended) < len(started):
            failures.append(f"{len(started) - len(ended)} recordings never reported their end")
        for key, n in statuses.items():
            if key != "STOPPED/duration_elapsed":
                failures.append(f"{n} recordings ended {key}")
        dropped = 0
        for d in devices:
            with contextlib.suppress(Exception):
                dropped += int(
                    watch.call("get_camera_status", {"device": d})["metrics"]["frames_dropped"]
                )
        for ws in conns:
            ws.close()
        checks = []
        for d in devices:
            if d not in started:
                continue
            # Every file written since the start: a recording continues in new segments.
            files = recording_files(r.recordings, d)
            checks.append(ffprobe_files(files, fps, hold_s, size))
    failures += [f"{c.device}: {c.why}" for c in checks if not c.ok]
    if snap_errors:
        failures.append(f"{len(snap_errors)} take_snapshot errors: {snap_errors[0]}")
    result = LoadResult(
        cameras=cameras,
        hold_s=hold_s,
        held=not failures,
        failures=failures[:12],
        started=len(started),
        all_started_s=round(all_started, 2),
        stopped=statuses.get("STOPPED/duration_elapsed", 0),
        statuses=statuses,
        files=checks,
        capture_dropped=dropped,
        captured_fps_min=min((c for c, _ in rates.values()), default=0.0),
        fed_fps_min=min((f for _, f in rates.values() if f == f), default=math.nan),
        snapshots=Snapshots(
            count=len(snaps),
            errors=len(snap_errors),
            p50_ms=pct_ms(snaps, 50),
            p99_ms=pct_ms(snaps, 99),
            max_ms=pct_ms(snaps, 100),
        ),
        usage=usage,
        wall_s=round(time.monotonic() - t_begin, 1),
    )
    _print_load(result)
    return result


def _counters(ws: WsSocket, devices: list[str]) -> dict[str, tuple[float, int, int]]:
    """device → (clock, frames captured by the pump, frames fed to the encoder)."""
    out = {}
    for d in devices:
        with contextlib.suppress(Exception):
            cam = ws.call("get_camera_status", {"device": d})["metrics"]["frames_captured"]
            fed = ws.call("get_stream_status", {"device": d})["metrics"]["frames_sent"]
            out[d] = (time.monotonic(), int(cam), int(fed))
    return out


def _rates(
    before: dict[str, tuple[float, int, int]], after: dict[str, tuple[float, int, int]]
) -> dict[str, tuple[float, float]]:
    """device → (captured fps, fed fps) between two `_counters` readings."""
    out = {}
    for d, (t0, c0, f0) in before.items():
        if d in after and (dt_s := after[d][0] - t0) > 0:
            # A counter that went down belongs to a new publisher (or none): no rate.
            fed = (after[d][2] - f0) / dt_s if after[d][2] >= f0 else math.nan
            out[d] = (round((after[d][1] - c0) / dt_s, 1), round(fed, 1))
    return out


def _print_load(r: LoadResult) -> None:
    u, s = r.usage, r.snapshots
    print(
        f"  {r.cameras} cameras x {r.hold_s:g} s: {'HELD' if r.held else 'NOT HELD'}; started "
        f"{r.started} in {r.all_started_s} s; ended {r.statuses}; files ok "
        f"{sum(c.ok for c in r.files)}/{len(r.files)} (missing frames max "
        f"{max((c.missing_pct for c in r.files), default=0)}%); capture dropped "
        f"{r.capture_dropped}; lowest camera captured {r.captured_fps_min} fps, fed to the "
        f"encoder {r.fed_fps_min} fps",
        flush=True,
    )
    if u:
        print(
            f"    tree CPU {u.cpu_pct}% {u.cpu_by_group} RSS peak {u.rss_mb_peak} MiB "
            f"(PSS {u.pss_mb_peak}) "
            f"procs {u.processes_peak}; client {u.client_cpu_pct}% other {u.other_cpu_pct}%",
            flush=True,
        )
    if s:
        print(
            f"    take_snapshot x{s.count}: p50 {s.p50_ms} p99 {s.p99_ms} max {s.max_ms} ms, "
            f"{s.errors} errors",
            flush=True,
        )
    for f in r.failures[:5]:
        print(f"    failure: {f}", flush=True)


def search(
    tmp: Path, emu: Path, args: argparse.Namespace, spec: LoadResult | None
) -> tuple[list[LoadResult], int | None, str]:
    """The largest count that holds for `--search-hold` s: up by half while it holds, then
    bisect; stops at `--search-max` cameras or when the next step would pass the budget."""
    runs: list[LoadResult] = []
    lo, hi = 0, None  # largest held, smallest failed
    if spec is not None:
        lo, hi = (spec.cameras, None) if spec.held else (0, spec.cameras)
    n = _next(lo, hi, args)
    t_end = time.monotonic() + args.search_budget
    step_cost = args.search_hold + 25.0  # start-up, ffprobe, teardown
    why = "converged"
    while n is not None:
        if time.monotonic() + step_cost > t_end:
            why = f"stopped by the {args.search_budget:g} s budget"
            break
        run = load(tmp, emu, f"search-{n}", n, args.search_hold, args)
        runs.append(run)
        step_cost = max(step_cost, run.wall_s)
        if run.held:
            lo = max(lo, n)
        else:
            hi = n if hi is None else min(hi, n)
        n = _next(lo, hi, args)
        if n is None and hi is None:
            why = f"reached --search-max {args.search_max}"
    note = (
        f"largest held {lo}" + (f", smallest not held {hi}" if hi is not None else "") + f" ({why})"
    )
    return runs, (lo if lo > 0 else None), note


def _next(lo: int, hi: int | None, args: argparse.Namespace) -> int | None:
    if hi is None:
        n = max(lo + 2, math.ceil(lo * 1.5)) if lo else args.cameras
        return min(n, args.search_max) if lo < args.search_max else None
    return (lo + hi) // 2 if hi - lo > 1 else None


# -- recordings per hour -------------------------------------------------------------------


def _footprint(pid: int) -> dict[str, float]:
    proc = psutil.Process(pid)
    with proc.oneshot():
        return {
            "camsvc RSS MiB": round(proc.memory_info().rss / 2**20, 1),
            "camsvc fds": float(proc.num_fds()),
            "camsvc threads": float(proc.num_threads()),
            "camsvc children": float(len(proc.children(recursive=True))),
        }


def rate(tmp: Path, emu: Path, args: argparse.Namespace) -> Rate:
    """Start → record → stop on `--rate-lanes` cameras for `--rate-seconds`; files checked."""
    lanes = args.rate_lanes
    fps = float(args.mode.split("@")[1]) if args.mode != "native" else 60.0
    size = args.mode.split("@")[0]
    starts: list[int] = []
    stops: list[int] = []
    errors: list[str] = []
    names = [f"camera{i}" for i in range(lanes)]
    done: list[tuple[str, list[str], float]] = []  # device, segments, duration reported
    with rig(tmp, emu, "rate", lanes, args.mode) as r:
        [ws] = open_clients(1, r.server.port, r.server.token())
        wait_cameras(ws, lanes, args.mode)
        # One cycle first: the pumps run from here on (the snapshot keep-alive holds them).
        for d in names:
            ws.call("start_recording", {"device": d})
        time.sleep(1.0)
        for d in names:
            ws.call("stop_recording", {"device": d})
        time.sleep(2.0)
        before = _footprint(r.server.pid) | {"stand-in RSS MiB": _rss(r.standin.pid)}
        wait_quiet(QUIET_S)
        t0 = time.monotonic()
        count = 0
        while time.monotonic() - t0 < args.rate_seconds:
            live = []
            for d in names:
                ns, res, err = timed(ws, "start_recording", {"device": d})
                if err is None:
                    starts.append(ns)
                    live.append(d)
                else:
                    errors.append(f"start {d}: {err}")
            time.sleep(args.rate_record)
            for d in live:
                ns, res, err = timed(ws, "stop_recording", {"device": d})
                count += 1
                if err is None:
                    stops.append(ns)
                    done.append((d, res["segments"], float(res["duration"])))
                else:
                    errors.append(f"stop {d}: {err}")
        elapsed = time.monotonic() - t0
        time.sleep(3.0)
        after = _footprint(r.server.pid) | {"stand-in RSS MiB": _rss(r.standin.pid)}
        ws.close()
        # The lanes start one after another, so each lasts what its stop reported.
        checks = [
            ffprobe_files(recording_files(r.recordings, d, set(segs)), fps, secs, size)
            for d, segs, secs in done
        ]
    valid = sum(c.ok for c in checks)
    errors += [f"{c.device}: {c.why}" for c in checks if not c.ok]
    result = Rate(
        lanes=lanes,
        record_s=args.rate_record,
        seconds=round(elapsed, 1),
        recordings=count,
        valid=valid,
        errors=len(errors),
        error_samples=errors[:5],
        per_hour=round(valid / elapsed * 3600, 0) if elapsed else 0.0,
        overhead_p50_ms=round(pct_ms(starts, 50) + pct_ms(stops, 50), 1),
        start_p50_ms=pct_ms(starts, 50),
        stop_p50_ms=pct_ms(stops, 50),
        growth={k: [before[k], after[k]] for k in before},
    )
    print(
        f"  {result.recordings} recordings ({result.valid} valid) in {result.seconds} s on "
        f"{lanes} cameras: {result.per_hour:,.0f}/h; start p50 {result.start_p50_ms} ms, stop "
        f"p50 {result.stop_p50_ms} ms; {result.errors} errors; {result.growth}",
        flush=True,
    )
    for e in result.error_samples[:3]:
        print(f"    error: {e}", flush=True)
    return result


def _rss(pid: int) -> float:
    return round(psutil.Process(pid).memory_info().rss / 2**20, 1)


# -- report --------------------------------------------------------------------------------


def checks(r: Report) -> list[Check]:
    """The issue's figures against its targets (None: reported, no target)."""
    out = []
    targets = {"live": 150.0, "cold": 1000.0}
    for row in r.latency:
        limit = targets[row.camera]
        out.append(
            Check(
                name=f"{row.op}, {row.camera} camera",
                target=f"≤ {limit:g} ms p95, 0 errors",
                measured=f"p50 {row.p50_ms} ms, p95 {row.p95_ms} ms"
                + (f", {row.errors} errors" if row.errors else ""),
                ok=row.p95_ms <= limit and row.errors == 0,
            )
        )
    if r.spec is not None:
        s, u = r.spec, r.spec.usage
        out.append(
            Check(
                name=f"{s.cameras} cameras at {r.mode} recording at once for {s.hold_s:g} s",
                target="holds (zero errors, see the criterion)",
                measured=("held" if s.held else "not held: " + "; ".join(s.failures[:3]))
                + (
                    f"; CPU {u.cpu_pct}% of one core, RSS {u.rss_mb_peak} MiB "
                    f"(PSS {u.pss_mb_peak} MiB)"
                    if u
                    else ""
                ),
                ok=s.held,
            )
        )
        if s.snapshots is not None:
            out.append(
                Check(
                    name=f"take_snapshot while {s.cameras} cameras record",
                    target="report p50/p99, 0 errors",
                    measured=f"p50 {s.snapshots.p50_ms} ms, p99 {s.snapshots.p99_ms} ms"
                    + (f", {s.snapshots.errors} errors" if s.snapshots.errors else ""),
                    ok=None if s.snapshots.errors == 0 else False,
                )
            )
    if r.search or r.largest_held is not None:
        hold = r.search[0].hold_s if r.search else (r.spec.hold_s if r.spec else 0)
        out.append(
            Check(
                name=f"largest count held on this machine ({hold:g} s per step)",
                target="report",
                measured=f"{r.largest_held or 0} cameras ({r.search_note})",
                ok=None,
            )
        )
    if r.rate is not None:
        x = r.rate
        grew = x.growth.get("camsvc children", [0, 0])
        out.append(
            Check(
                name=f"recordings per hour ({x.lanes} cameras, {x.record_s:g} s recordings, "
                f"{x.seconds:g} s)",
                target="≥ 100/h sustained, 0 errors, no leak",
                measured=f"{x.per_hour:,.0f}/h, {x.errors} errors, children {grew[0]:g} → "
                f"{grew[1]:g}",
                ok=x.per_hour >= 100 and x.errors == 0 and grew[1] <= grew[0],
            )
        )
    return out


def _verdict(ok: bool | None) -> str:
    return "—" if ok is None else ("PASS" if ok else "**MISS**")


def _load_rows(runs: list[LoadResult]) -> list[list[str]]:
    rows = []
    for x in runs:
        u, s = x.usage, x.snapshots
        rows.append(
            [
                str(x.cameras),
                f"{x.hold_s:g}",
                "yes" if x.held else "**no**",
                f"{x.started} in {x.all_started_s} s",
                ", ".join(f"{k} {v}" for k, v in sorted(x.statuses.items())) or "-",
                f"{sum(c.ok for c in x.files)}/{len(x.files)}",
                f"{max((c.missing_pct for c in x.files), default=0):g}",
                str(x.capture_dropped),
                "-"
                if math.isnan(x.captured_fps_min)
                else f"{x.captured_fps_min:g} / {x.fed_fps_min:g}",
                f"{u.cpu_pct}" if u else "-",
                f"{u.rss_mb_peak} / {u.pss_mb_peak}" if u else "-",
                f"{s.p50_ms} / {s.p99_ms}" if s else "-",
                f"{u.other_cpu_pct}" if u else "-",
            ]
        )
    return rows


LOAD_HEADER = [
    "cameras",
    "hold s",
    "held",
    "started",
    "ended (status/reason)",
    "files valid",
    "max frames missing %",
    "capture dropped",
    "captured / fed fps (lowest camera)",
    "tree CPU %",
    "tree RSS / PSS peak MiB",
    "snapshot p50 / p99 ms",
    "other CPU %",
]


def render(r: Report) -> str:
    """The markdown section."""
    m = r.machine
    parts = [
        f"`make bench-recording{' --quick' if r.quick else ''}` — {r.date}, commit "
        f"`{r.commit}`, {m.nproc} CPUs ({m.cpu_model}), {m.ram_gib} GiB RAM, kernel {m.kernel}, "
        f"Python {m.python}; load average before {m.loadavg_before} (other sessions share the "
        "machine: *other CPU* is the % of one core every other process used). `camsvc serve` "
        "and the MediaMTX stand-in run as subprocesses on 127.0.0.1 with the emulated V4L2 "
        f"device; cameras opened at {r.mode} MJPEG; each recording is camsvc's encoder (PyAV "
        "libx264 ultrafast, relayed by `ffmpeg -c copy`) publishing RTSP to the stand-in, "
        "whose ffmpeg writes the fMP4 segments. "
        "Latency is request sent → reply read by the client.",
    ]
    loads = ([r.spec] if r.spec else []) + r.search
    other = max((x.usage.other_cpu_pct for x in loads if x.usage), default=0.0)
    if other > BUSY_OTHER_PCT:
        parts += [
            "",
            f"**Busy machine**: other sessions used up to {other:g}% of one core while the "
            "cameras recorded, so the loads competed for the CPUs; these figures are "
            "pessimistic and must be re-run on a quiet machine.",
        ]
    if r.quick:
        parts += [
            "",
            "**Quick run** (`--quick`): short holds and few samples, for development; not the "
            "issue's figures.",
        ]
    parts += [
        "",
        markdown_table(
            ["scenario", "target", "measured", "verdict"],
            [[c.name, c.target, c.measured, _verdict(c.ok)] for c in r.checks],
        ),
    ]
    if r.latency:
        parts += [
            "",
            "### start_recording / stop_recording latency (one client, one call at a time)",
            "",
            markdown_table(
                [
                    "call",
                    "camera",
                    "samples x reps",
                    "p50 ms",
                    "p95 ms",
                    "max ms",
                    "errors",
                    "phases, p50 ms of each gap",
                ],
                [
                    [
                        x.op,
                        x.camera,
                        f"{x.samples_per_rep} x {x.reps}",
                        str(x.p50_ms),
                        str(x.p95_ms),
                        str(x.max_ms),
                        str(x.errors),
                        ", ".join(f"{k} {v:g}" for k, v in x.phases_p50_ms.items()) or "-",
                    ]
                    for x in r.latency
                ],
            ),
            "",
            "*live*: camera0 streaming (`start_streaming` done and its path ready: pump and "
            f"encoder running), each recording {r.settings['record_s']} s long, a random "
            "0.2-0.5 s pause between cycles. *cold*: the first use of a camera since the "
            "service started (no pump, no encoder), one camera per sample. A fresh service per "
            "repetition; medians of the per-repetition p50/p95, max over all samples. "
            "*Phases*: the gaps between the request, the stand-in's recorder (an ffmpeg "
            "reading the path over RTSP) appearing, the first segment file appearing, the "
            f"recorder exiting and the reply, polled every {TRACE_POLL_S * 1000:g} ms during "
            "the call; p50 of each gap over the samples. The last gap of a start is camsvc "
            "noticing the file (50 ms poll) and replying; that of a stop, camsvc making sure "
            "the segment is closed.",
        ]
    if loads:
        parts += [
            "",
            "### Cameras recording at once",
            "",
            markdown_table(LOAD_HEADER, _load_rows(loads)),
            "",
            "First row: the spec load; the others: the stepped search for the largest count "
            f"({r.search_note}). A load *holds* when every start_recording and take_snapshot "
            "succeeded, every recording ended by itself (`duration` = hold; "
            "`recording_status_update` STOPPED, reason `duration_elapsed`; no ERROR) and each "
            "camera's files are H.264 at the mode's size for ffprobe, last the hold "
            f"± {DURATION_TOL:.0%} and miss at most {DROP_BOUND:.0%} of the nominal frames "
            "(packets counted by ffprobe against the mode's rate times the files' duration). "
            "*capture dropped*: the service's own `frames_dropped` summed over the cameras "
            "(frames the device delivered that the pump lost). *captured / fed fps*: over "
            "the window, the lowest camera's rate of frames its pump captured (`get_camera_status` "
            "`frames_captured`) and of frames its publisher wrote to the encoder "
            "(`get_stream_status` `frames_sent`); the publisher writes only the newest frame "
            "when the encoder can take one, so a gap between the two is frames skipped "
            "between the pump and the encoder. *tree*: camsvc, its encoders, the stand-in and its "
            "recorders, sampled with psutil every second while every camera recorded; CPU in "
            "% of one core; RSS summed over the processes (shared libraries counted in each) "
            "and PSS (shared pages split between them).",
        ]
        if r.spec and r.spec.usage:
            u = r.spec.usage
            parts += [
                "",
                f"Spec load, by process group over {u.seconds} s: CPU % "
                + ", ".join(f"{k} {v}" for k, v in u.cpu_by_group.items())
                + "; RSS peak MiB "
                + ", ".join(f"{k} {v}" for k, v in u.rss_by_group_peak.items())
                + f"; {u.processes_peak} processes; RSS mean {u.rss_mb_mean} MiB; the "
                f"benchmark client {u.client_cpu_pct}%.",
            ]
    if r.rate is not None:
        x = r.rate
        parts += [
            "",
            "### Recordings per hour",
            "",
            f"{x.lanes} cameras, each cycling start_recording → {x.record_s:g} s → "
            f"stop_recording for {x.seconds:g} s: {x.recordings} recordings, {x.valid} valid "
            "files (the criterion above, against the duration stop_recording reported: the "
            f"lanes start one after another), {x.errors} errors → **{x.per_hour:,.0f} "
            f"recordings/h**. Per recording the service adds start p50 {x.start_p50_ms} ms + "
            f"stop p50 {x.stop_p50_ms} ms = {x.overhead_p50_ms} ms to its length, so one camera "
            f"can make at most 3600 / ({x.record_s:g} s + {x.overhead_p50_ms / 1000:.2f} s) = "
            f"{3600 / (x.record_s + x.overhead_p50_ms / 1000):,.0f} such recordings an hour; "
            "the rate is sustainable if nothing grows with the count: before → after the "
            "burst (pumps warm in both): "
            + ", ".join(f"{k} {a:g} → {b:g}" for k, (a, b) in x.growth.items())
            + ".",
        ]
    parts += report_tail([], r.settings, r.notes)
    return "\n".join(parts) + "\n"


# -- main ----------------------------------------------------------------------------------


QUICK = {
    "reps": 1,
    "live": 5,
    "cold": 3,
    "hold": 10.0,
    "search_hold": 8.0,
    "search_budget": 45.0,
    "rate_seconds": 20.0,
}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Command-line options."""
    ap = argparse.ArgumentParser(
        prog="python -m benchmarks.recording",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    ap.add_argument("--quick", action="store_true", help="short run: " + str(QUICK))
    ap.add_argument("--mode", default=SPEC_MODE, help="WxH@FPS the cameras open, or native")
    ap.add_argument("--reps", type=int, default=3, help="latency repetitions (fresh service)")
    ap.add_argument("--live", type=int, default=20, help="live cycles per repetition")
    ap.add_argument("--cold", type=int, default=8, help="cold cameras per repetition")
    ap.add_argument("--record-s", type=float, default=1.0, help="length of latency recordings")
    ap.add_argument("--cameras", type=int, default=10, help="the spec load's camera count")
    ap.add_argument("--hold", type=float, default=60.0, help="the spec load's hold, s")
    ap.add_argument("--snapshot-interval", type=float, default=0.25, help="s between snapshots")
    ap.add_argument("--search-hold", type=float, default=30.0, help="hold of a search step, s")
    ap.add_argument("--search-budget", type=float, default=480.0, help="search wall time, s")
    ap.add_argument("--search-max", type=int, default=32, help="most cameras tried")
    ap.add_argument("--rate-lanes", type=int, default=2, help="cameras cycling recordings")
    ap.add_argument("--rate-record", type=float, default=5.0, help="length of each, s")
    ap.add_argument("--rate-seconds", type=float, default=180.0, help="length of the burst, s")
    ap.add_argument("--only", default="latency,spec,search,rate")
    ap.add_argument(
        "--nice",
        type=int,
        default=0,
        help="niceness for this process, the services and this session's autogroup",
    )
    ap.add_argument("--no-write", action="store_true", help="leave RESULTS.md and JSON alone")
    ap.add_argument("--keep", action="store_true", help="keep the work directory (logs, files)")
    args = ap.parse_args(argv)
    if args.quick:
        for key, value in QUICK.items():
            if getattr(args, key) == ap.get_default(key):
                setattr(args, key, value)
    return args


def main(argv: list[str] | None = None) -> int:
    """Run the scenarios, print the section, write RESULTS.md and the JSON."""
    args = parse_args(argv)
    only = set(args.only.split(","))
    for tool in ("ffmpeg", "ffprobe"):
        if shutil.which(tool) is None:
            print(f"bench-recording needs {tool} (scripts/install.sh installs it)", file=sys.stderr)
            return 2
    raise_nofile_limit()
    niceness = apply_nice(args.nice)
    mach = machine()
    tmp = Path(tempfile.mkdtemp(prefix="camsvc-bench-recording-"))
    emu = tmp / "dev"
    emu.mkdir()
    for i in range(max(args.cameras, args.search_max, 1 + args.cold, args.rate_lanes)):
        EmulatedCamera(emu, i).plug()
    t_begin = time.monotonic()
    lat: list[Latency] = []
    spec: LoadResult | None = None
    steps: list[LoadResult] = []
    largest: int | None = None
    note = "not run"
    burst: Rate | None = None
    try:
        if "latency" in only:
            print("start/stop_recording latency, live and cold", flush=True)
            lat = latency(tmp, emu, args)
        if "spec" in only:
            print(f"{args.cameras} cameras recording at once for {args.hold:g} s", flush=True)
            spec = load(tmp, emu, "spec", args.cameras, args.hold, args)
        if "search" in only:
            print(f"the largest count that holds ({args.search_hold:g} s steps)", flush=True)
            steps, largest, note = search(tmp, emu, args, spec)
            print(f"  {note}", flush=True)
        if "rate" in only:
            print(f"recordings per hour: {args.rate_seconds:g} s of cycles", flush=True)
            burst = rate(tmp, emu, args)
    finally:
        print(f"work directory (logs): {tmp}", flush=True)
    elapsed = time.monotonic() - t_begin
    notes = [
        "camsvc has no setting for the capture mode (it opens the largest mode up to 1080p "
        "at its highest rate: MJPEG 1920x1080 @ 60 on the emulated device). The benchmark "
        "pins the spec's mode in the service process (`benchmarks/pinned_mode.py` replaces "
        "the registry's `choose_mode`; `--mode native` measures the default) and checks it "
        "in `get_camera_list`.",
        "start_recording returns once the first segment file exists; it asks the encoder "
        "for a key frame when it switches `record` on and at each 50 ms poll until then "
        "(`Publishers.force_keyframe`), so a start waits one frame for it once the recorder "
        "reads the path, not for a periodic one (every 2 s). stop_recording "
        "returns once MediaMTX closed the last segment (as main implements it at the commit "
        "above).",
        f"The spec load starts all recordings together, one connection per camera, with "
        f"`duration` = hold, so camsvc's auto-stop ends each one; snapshots are taken one at "
        f"a time every {args.snapshot_interval:g} s round-robin over the recording cameras "
        "on another connection.",
        f"The machine has {mach.nproc} CPUs shared with other sessions: figures taken while "
        "*other CPU* is high are pessimistic. Final figures should be re-run on a quiet "
        "machine: `make bench-recording` (about "
        f"{_expected_minutes(args):.0f} min with these settings).",
        f"Whole benchmark: {elapsed:.0f} s.",
    ]
    notes += _phase_notes(lat)
    report = Report(
        date=dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        commit=git_commit(),
        machine=mach,
        quick=args.quick,
        mode=args.mode,
        settings={
            "niceness": niceness,
            "reps": args.reps,
            "live": args.live,
            "cold": args.cold,
            "record_s": args.record_s,
            "cameras": args.cameras,
            "hold_s": args.hold,
            "snapshot_interval_s": args.snapshot_interval,
            "search_hold_s": args.search_hold,
            "search_budget_s": args.search_budget,
            "search_max": args.search_max,
            "rate_lanes": args.rate_lanes,
            "rate_record_s": args.rate_record,
            "rate_seconds": args.rate_seconds,
        },
        latency=lat,
        spec=spec,
        search=steps,
        largest_held=largest,
        search_note=note,
        rate=burst,
        checks=[],
        notes=notes,
    )
    report.checks = checks(report)
    text = render(report)
    print()
    print(text)
    if not args.no_write:
        out_dir = ROOT / "benchmarks" / "results"
        out_dir.mkdir(parents=True, exist_ok=True)
        stamp = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d")
        (out_dir / f"recording-{stamp}.json").write_bytes(
            msgspec.json.format(msgspec.json.encode(report))
        )
        update_results_md(ROOT / "benchmarks" / "RESULTS.md", text, SECTION)
    if not args.keep:
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


def _phase_notes(rows: list[Latency]) -> list[str]:
    """Where a start went, from the phase gaps: camsvc, the stand-in's recorder, camsvc."""
    out = []
    for row in rows:
        gaps = list(row.phases_p50_ms.values())
        if row.op != "start_recording" or len(gaps) != 3:
            continue
        before = "the path patch" + (", the pump and encoder start" if row.camera == "cold" else "")
        out.append(
            f"start_recording on a {row.camera} camera, p50 {row.p50_ms} ms: the stand-in's "
            f"recorder (an ffmpeg reading the path over RTSP) ran {gaps[0]:.0f} ms after the "
            f"request (camsvc's checks, {before}), the segment file appeared {gaps[1]:.0f} ms "
            "after that (ffmpeg start-up, RTSP set-up, the forced key frame, its probe), and "
            f"camsvc replied {gaps[2]:.0f} ms after the file (p50 of each gap). The middle "
            "part is the stand-in's own: MediaMTX records in-process, so with MediaMTX this "
            "figure would differ; it is not installed on this machine."
        )
    return out


def _expected_minutes(args: argparse.Namespace) -> float:
    """A rough wall time of the settings: holds, cycles and ~25 s per service start-up."""
    latency_s = args.reps * (
        25 + (2 + args.live) * (args.record_s + 1.5) + args.cold * (args.record_s + 3)
    )
    return (latency_s + args.hold + 40 + args.search_budget + args.rate_seconds + 40) / 60


if __name__ == "__main__":
    sys.exit(main())
