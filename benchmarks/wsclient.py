"""A small synchronous WebSocket JSON-RPC client and the harness shared by the events and
snapshots benchmarks (issues 5 and 6).

Why not `benchmarks.loadgen`: its connections only pipeline `ping`, and these benchmarks need
arbitrary methods, id-matched replies (take_snapshot handlers finish out of order) and the
exact arrival time of notifications on up to 1,000 sockets. So this module has:

- `WsSocket`: one blocking-handshake client socket, RFC 6455 frames (client frames masked
  with the all-zero key), pings answered, `call()` for one request/reply;
- `Engine`: one `epoll` loop over many non-blocking `WsSocket`s, with one clock reading per
  wake-up shared by every frame read in it (the data was there by then). It drives a
  closed-loop pipelined load (`closed_loop`) and waits for a notification on every socket
  (`wait_all`), which is how fan-out "event → last client" is timed;
- `Server`: `camsvc serve` as a subprocess on loopback, with the emulated V4L2 device
  preloaded, tmp paths, no rate limit, and its CPU/RSS sampled with psutil;
- reporting: machine facts, git commit, nearest-rank percentiles, the `## <section>`
  replacement in `benchmarks/RESULTS.md` that keeps every other section.

All clocks are `time.monotonic_ns()` (CLOCK_MONOTONIC, system-wide), so a time taken in
this process when a node is created compares with a time taken when a frame arrives.
"""

from __future__ import annotations

import atexit
import base64
import contextlib
import errno
import functools
import heapq
import http.client
import math
import os
import platform
import re
import select
import signal
import socket
import subprocess
import sys
import time
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import msgspec
import psutil

from benchmarks.report import update_results_md

__all__ = [
    "HOST",
    "Check",
    "Engine",
    "LoadRun",
    "Machine",
    "OpRun",
    "ProcUsage",
    "Server",
    "Stats",
    "Step",
    "WsSocket",
    "apply_nice",
    "git_commit",
    "machine",
    "markdown_table",
    "median",
    "open_clients",
    "raise_nofile_limit",
    "report_tail",
    "request",
    "stats_ms",
    "update_results_md",
    "wait_quiet",
]

ROOT = Path(__file__).resolve().parent.parent
HOST = "127.0.0.1"
NS_PER_MS = 1_000_000
READ_SIZE = 262144  # bytes an Engine reads from a socket at once


# -- records -----------------------------------------------------------------------------


class Stats(msgspec.Struct, kw_only=True):
    """A latency distribution in milliseconds (nearest-rank percentiles)."""

    count: int
    p50_ms: float
    p99_ms: float
    max_ms: float
    mean_ms: float
    p95_ms: float = math.nan


class ProcUsage(msgspec.Struct, kw_only=True):
    """The server's CPU (% of one core) over an interval and its RSS at the end; the CPU
    every other process on the machine used meanwhile (other sessions share it)."""

    cpu_pct: float
    rss_mb: float
    other_cpu_pct: float = 0.0


class LoadRun(msgspec.Struct, kw_only=True):
    """One closed-loop run of the `Engine`."""

    label: str
    connections: int
    window: int
    duration_s: float
    requests: int
    errors: int
    rps: float
    latency: Stats | None
    server: ProcUsage | None = None
    gen_cpu_pct: float = 0.0
    error_samples: list[str] = msgspec.field(default_factory=list)
    per_connection: list[int] = msgspec.field(default_factory=list)  # replies in the interval


class OpRun(msgspec.Struct, kw_only=True):
    """One kind of request of a scripted run (`Engine.scripted`)."""

    label: str
    requests: int
    errors: int
    latency: Stats | None
    error_samples: list[str] = msgspec.field(default_factory=list)


class Step(msgspec.Struct, frozen=True):
    """What a connection of a scripted run sends next: a request, not before `at`."""

    label: str  # what the latency is filed under (usually the method)
    method: str
    params: Any
    at: float = 0.0  # time.monotonic(); 0: at once


class Check(msgspec.Struct, kw_only=True):
    """One figure of an issue: target, measured value, verdict."""

    name: str
    target: str
    measured: str
    ok: bool | None  # None: informational, no target


class Machine(msgspec.Struct, kw_only=True):
    """Where the figures were taken."""

    nproc: int
    cpu_model: str
    ram_gib: float
    kernel: str
    python: str
    loadavg_before: list[float]


# -- statistics and facts ------------------------------------------------------------------


def stats_ms(samples_ns: Sequence[int]) -> Stats | None:
    """Nearest-rank p50/p95/p99/max/mean of nanosecond samples, in ms (None when empty)."""
    if not samples_ns:
        return None
    data = sorted(samples_ns)
    n = len(data)

    def pct(p: float) -> float:
        return round(data[min(n, max(1, math.ceil(p * n / 100))) - 1] / NS_PER_MS, 3)

    return Stats(
        count=n,
        p50_ms=pct(50),
        p95_ms=pct(95),
        p99_ms=pct(99),
        max_ms=round(data[-1] / NS_PER_MS, 3),
        mean_ms=round(sum(data) / n / NS_PER_MS, 3),
    )


def median(values: Sequence[float]) -> float:
    """The median (mean of the middle two for an even count); nan when empty."""
    if not values:
        return math.nan
    data = sorted(values)
    mid = len(data) // 2
    return data[mid] if len(data) % 2 else (data[mid - 1] + data[mid]) / 2


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


def markdown_table(header: list[str], rows: list[list[str]]) -> str:
    """A GitHub markdown table."""
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(lines)


def apply_nice(value: int) -> str:
    """Run this process and its children at `value`, and give this session's autogroup the
    same nice (with autogroup scheduling nice only ranks processes within a session; other
    sessions sharing the machine are weighed by their autogroup's nice). Restored at exit.
    Returns what is in force, for the report."""
    if not value:
        return str(os.getpriority(os.PRIO_PROCESS, 0))
    try:
        os.setpriority(os.PRIO_PROCESS, 0, value)
    except OSError as exc:
        return f"{os.getpriority(os.PRIO_PROCESS, 0)} (--nice {value}: {exc})"
    auto = Path("/proc/self/autogroup")
    with contextlib.suppress(OSError, ValueError, IndexError):
        before = int(auto.read_text().rsplit("nice", 1)[1])
        auto.write_text(str(value))
        atexit.register(lambda: auto.write_text(str(before)))
        return f"{value} (process and session autogroup)"
    return f"{value} (process)"


def raise_nofile_limit() -> tuple[int, int]:
    """Raise the soft RLIMIT_NOFILE to the hard limit (children inherit it)."""
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)


# -- the WebSocket client ------------------------------------------------------------------


class _Reply(msgspec.Struct):
    """The members of a server message the client looks at (the rest is skipped)."""

    id: int | str | None = None
    method: str | None = None
    error: msgspec.Raw = msgspec.Raw()  # empty when absent
    result: msgspec.Raw = msgspec.Raw()
    params: msgspec.Raw = msgspec.Raw()


_reply_decoder = msgspec.json.Decoder(_Reply)
_encoder = msgspec.json.Encoder()


def request(method: str, params: Any, rid: int) -> bytes:
    """The JSON of one JSON-RPC 2.0 request."""
    return _encoder.encode({"jsonrpc": "2.0", "method": method, "params": params, "id": rid})


def _frame(payload: bytes, opcode: int = 1) -> bytes:
    """A masked client frame (all-zero masking key, so the payload is sent as is)."""
    n = len(payload)
    if n < 126:
        head = bytes((0x80 | opcode, 0x80 | n))
    elif n < 65536:
        head = bytes((0x80 | opcode, 0x80 | 126)) + n.to_bytes(2, "big")
    else:
        head = bytes((0x80 | opcode, 0x80 | 127)) + n.to_bytes(8, "big")
    return head + b"\0\0\0\0" + payload


class WsSocket:
    """One client WebSocket connection on a plain socket."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.buf = bytearray()
        self.out = bytearray()  # unsent bytes (non-blocking mode)
        self.closed = False
        self.next_id = 100
        self.sent: dict[int, int] = {}  # request id -> send time (ns), for the Engine
        self.payload: Callable[[int], bytes] | None = None  # request factory, for the Engine
        self.backlog: deque[bytes] = deque()  # notifications met by call()
        self.done = 0  # replies counted by the Engine in its measured interval
        self.step: Any = None  # Engine.scripted: the request waiting for its time

    @classmethod
    def open(cls, port: int, path: str = "/ws", timeout: float = 10.0) -> WsSocket:
        """Connect and complete the opening handshake (blocking)."""
        sock = socket.create_connection((HOST, port), timeout=timeout)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        key = base64.b64encode(os.urandom(16)).decode()
        sock.sendall(
            (
                f"GET {path} HTTP/1.1\r\nHost: {HOST}:{port}\r\nUpgrade: websocket\r\n"
                f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
                "Sec-WebSocket-Version: 13\r\n\r\n"
            ).encode()
        )
        ws = cls(sock)
        while b"\r\n\r\n" not in ws.buf:
            chunk = sock.recv(65536)
            if not chunk:
                raise ConnectionError("closed during the handshake")
            ws.buf += chunk
        end = ws.buf.find(b"\r\n\r\n")
        head = bytes(ws.buf[:end])
        del ws.buf[: end + 4]
        if not head.startswith(b"HTTP/1.1 101"):
            sock.close()
            raise ConnectionError(head.split(b"\r\n", 1)[0].decode(errors="replace"))
        return ws

    def fileno(self) -> int:
        """The socket's descriptor."""
        return self.sock.fileno()

    def send(self, payload: bytes) -> None:
        """Send one text frame (blocking mode) or queue it (non-blocking mode)."""
        if self.sock.gettimeout() == 0.0:
            self.out += _frame(payload)
            self.flush()
        else:
            self.sock.sendall(_frame(payload))

    def flush(self) -> None:
        """Write what the kernel takes of the queued bytes (non-blocking mode)."""
        while self.out:
            try:
                n = self.sock.send(self.out)
            except BlockingIOError:
                return
            del self.out[:n]

    def frames(self) -> list[bytes]:
        """Parse the whole text frames in the buffer; answer pings; note a close."""
        buf = self.buf
        out: list[bytes] = []
        pos, n = 0, len(buf)
        while n - pos >= 2:
            b0, length = buf[pos], buf[pos + 1] & 0x7F
            hl = 2
            if length == 126:
                if n - pos < 4:
                    break
                length, hl = int.from_bytes(buf[pos + 2 : pos + 4], "big"), 4
            elif length == 127:
                if n - pos < 10:
                    break
                length, hl = int.from_bytes(buf[pos + 2 : pos + 10], "big"), 10
            end = pos + hl + length
            if end > n:
                break
            opcode = b0 & 0x0F
            if opcode in (0, 1, 2):
                out.append(bytes(buf[pos + hl : end]))
            elif opcode == 9:
                self.out += _frame(bytes(buf[pos + hl : end]), 0xA)
            elif opcode == 8:
                self.closed = True
            pos = end
        if pos:
            del buf[:pos]
        if self.out and self.sock.gettimeout() != 0.0:
            self.sock.sendall(bytes(self.out))
            self.out.clear()
        return out

    def call(self, method: str, params: Any = None, timeout: float = 30.0) -> Any:
        """One request, blocking until its reply; returns `result` or raises on `error`."""
        self.sock.settimeout(timeout)
        return self.reply(self.start(method, params), method, timeout)

    def start(self, method: str, params: Any = None) -> int:
        """Send one request without waiting (blocking mode); returns its id for `reply`."""
        rid = self.next_id
        self.next_id += 1
        self.send(request(method, params, rid))
        return rid

    def reply(self, rid: int, method: str, timeout: float = 30.0) -> Any:
        """Block until the reply to request `rid`; returns `result` or raises on `error`.
        Notifications read meanwhile go to `backlog`."""
        deadline = time.monotonic() + timeout
        while True:
            for raw in self.frames():
                msg = _reply_decoder.decode(raw)
                if msg.id == rid:
                    if msg.error:
                        raise RpcError(method, bytes(msg.error).decode())
                    return msgspec.json.decode(msg.result) if msg.result else None
                if msg.method is not None:
                    self.backlog.append(raw)
            self._receive(deadline, method)

    def notification(self, match: Callable[[bytes], bool], timeout: float) -> bytes | None:
        """The first notification (backlog first) for which `match` is true, removed from
        the backlog; None after `timeout`. Others read meanwhile stay in `backlog`. Only with
        no request outstanding: a reply read here is dropped."""
        deadline = time.monotonic() + timeout
        seen = 0
        while True:
            for i in range(seen, len(self.backlog)):
                if match(self.backlog[i]):
                    raw = self.backlog[i]
                    del self.backlog[i]
                    return raw
            seen = len(self.backlog)
            for raw in self.frames():
                if _reply_decoder.decode(raw).method is not None:
                    self.backlog.append(raw)
            if len(self.backlog) > seen:
                continue
            try:
                self._receive(deadline, "notification")
            except TimeoutError:
                return None

    def _receive(self, deadline: float, what: str) -> None:
        """Read once more from the socket (blocking, at most until `deadline`)."""
        left = deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError(f"{what}: no reply in time")
        self.sock.settimeout(left)
        try:
            chunk = self.sock.recv(262144)
        except TimeoutError:
            raise TimeoutError(f"{what}: no reply in time") from None
        if not chunk:
            raise ConnectionError(f"{what}: connection closed")
        self.buf += chunk

    def close(self) -> None:
        """Send a close frame and close the socket."""
        with contextlib.suppress(OSError):
            self.sock.setblocking(True)
            self.sock.settimeout(0.5)
            self.sock.sendall(_frame(b"\x03\xe8", 0x8))
        with contextlib.suppress(OSError):
            self.sock.close()


class RpcError(RuntimeError):
    """The server answered with a JSON-RPC error."""

    def __init__(self, method: str, error: str) -> None:
        super().__init__(f"{method}: {error}")
        self.error = error


def open_clients(
    n: int, port: int, token: str, topics: Sequence[str] = (), timeout: float = 10.0
) -> list[WsSocket]:
    """`n` authenticated connections (subscribed to `topics`), opened one after another."""
    out: list[WsSocket] = []
    try:
        for _ in range(n):
            ws = WsSocket.open(port, timeout=timeout)
            out.append(ws)
            ws.call("authenticate", {"auth_token": token}, timeout)
            if topics:
                ws.call("subscribe_events", {"topics": list(topics)}, timeout)
            ws.backlog.clear()
    except BaseException:
        for ws in out:
            ws.close()
        raise
    return out


# -- many sockets: the epoll engine --------------------------------------------------------


class Engine:
    """One epoll loop over non-blocking client sockets."""

    def __init__(self, conns: Sequence[WsSocket]) -> None:
        self.conns = list(conns)
        self.by_fd = {ws.fileno(): ws for ws in self.conns}
        self.ep = select.epoll()
        for ws in self.conns:
            ws.sock.setblocking(False)
            self.ep.register(ws.fileno(), select.EPOLLIN)
        # One read buffer for every socket: `recv(262144)` allocates (and maps) a fresh
        # 256 KiB object per call, 20 us a read, which made this loop slower than the
        # server it measures.
        self._rbuf = bytearray(READ_SIZE)
        self._rview = memoryview(self._rbuf)

    def close(self) -> None:
        """Stop watching (the sockets stay open, back in blocking mode)."""
        for ws in self.conns:
            with contextlib.suppress(OSError, ValueError):
                self.ep.unregister(ws.fileno())
            with contextlib.suppress(OSError):
                ws.sock.setblocking(True)
        self.ep.close()

    def _read(self, ws: WsSocket) -> list[bytes]:
        while True:
            try:
                n = ws.sock.recv_into(self._rbuf)
            except BlockingIOError:
                break
            except OSError as exc:
                if exc.errno in (errno.ECONNRESET, errno.EPIPE):
                    ws.closed = True
                    break
                raise
            if not n:
                ws.closed = True
                break
            ws.buf += self._rview[:n]
            if n < READ_SIZE:
                break
        frames = ws.frames()
        if ws.out:
            ws.flush()
        return frames

    def drain(self, seconds: float) -> int:
        """Read and discard for `seconds`; returns the frames read."""
        count = 0
        deadline = time.monotonic() + seconds
        while (left := deadline - time.monotonic()) > 0:
            for fd, _ in self.ep.poll(left):
                count += len(self._read(self.by_fd[fd]))
        return count

    def wait_all(
        self,
        matchers: dict[str, Callable[[bytes], bool]],
        timeout: float,
        conns: Sequence[WsSocket] | None = None,
    ) -> dict[str, dict[int, int]]:
        """Until every connection received a text frame for which each matcher is true (or
        `timeout`): name -> fd -> the clock at the wake-up that read it (monotonic ns)."""
        want = {ws.fileno() for ws in (conns if conns is not None else self.conns)}
        got: dict[str, dict[int, int]] = {name: {} for name in matchers}
        todo = len(want) * len(matchers)
        deadline = time.monotonic() + timeout
        while todo and (left := deadline - time.monotonic()) > 0:
            events = self.ep.poll(left)
            now = time.monotonic_ns()
            for fd, _ in events:
                for raw in self._read(self.by_fd[fd]):
                    if fd not in want:
                        continue
                    for name, match in matchers.items():
                        seen = got[name]
                        if fd not in seen and match(raw):
                            seen[fd] = now
                            todo -= 1
        return got

    def closed_loop(
        self,
        make: Callable[[WsSocket, int], bytes],
        window: int,
        seconds: float,
        warmup_s: float = 1.0,
        label: str = "",
        server_pid: int | None = None,
    ) -> LoadRun:
        """Keep `window` requests in flight per connection; measure for `seconds` after a
        warm-up; latency is send → reply, matched by id."""
        for ws in self.conns:
            ws.sent.clear()
            ws.done = 0
            for _ in range(window):
                self._send(ws, make)
        latencies: list[int] = []
        errors = 0
        samples: list[str] = []
        count = 0
        t_start = time.monotonic()
        recording = False
        probe: _Probe | None = None
        t_rec = 0.0
        end = t_start + warmup_s + seconds
        while True:
            now_s = time.monotonic()
            if not recording and now_s >= t_start + warmup_s:
                recording = True
                t_rec = now_s
                probe = _Probe(server_pid)
            if now_s >= end:
                break
            events = self.ep.poll(min(0.1, end - now_s))
            now = time.monotonic_ns()
            for fd, _ in events:
                ws = self.by_fd[fd]
                for raw in self._read(ws):
                    msg = _reply_decoder.decode(raw)
                    if msg.id is None or msg.method is not None:
                        continue  # a notification
                    sent = ws.sent.pop(msg.id, None)  # type: ignore[arg-type]
                    if sent is None:
                        continue
                    if recording:
                        count += 1
                        ws.done += 1
                        latencies.append(now - sent)
                        if msg.error:
                            errors += 1
                            if len(samples) < 5:
                                samples.append(bytes(msg.error).decode()[:300])
                    if len(ws.sent) < window:
                        self._send(ws, make)
        elapsed = time.monotonic() - t_rec
        usage, gen = probe.finish() if probe else (None, 0.0)
        # Let the requests in flight finish so the next run starts clean.
        stop = time.monotonic() + 30
        while any(ws.sent for ws in self.conns) and time.monotonic() < stop:
            for fd, _ in self.ep.poll(0.1):
                ws = self.by_fd[fd]
                for raw in self._read(ws):
                    msg = _reply_decoder.decode(raw)
                    if msg.method is None and msg.id is not None:
                        ws.sent.pop(msg.id, None)  # type: ignore[arg-type]
        return LoadRun(
            label=label,
            connections=len(self.conns),
            window=window,
            duration_s=round(elapsed, 3),
            requests=count,
            errors=errors,
            rps=round(count / elapsed, 1) if elapsed > 0 else 0.0,
            latency=stats_ms(latencies),
            server=usage,
            gen_cpu_pct=gen,
            error_samples=samples,
            per_connection=[ws.done for ws in self.conns],
        )

    def scripted(
        self,
        script: Callable[[WsSocket], Step],
        seconds: float,
        warmup_s: float = 1.0,
        tick: Callable[[], None] | None = None,
        tick_s: float = 1.0,
    ) -> tuple[list[OpRun], float]:
        """Each connection sends `script(ws)`'s request when it is due and asks for its next
        one when the reply comes (one request in flight per connection). Latency counts
        from the due time, so a late send counts against the server. Measured for `seconds`
        after `warmup_s`; `tick` is called every `tick_s` meanwhile (samplers). Returns the
        figures per label and the measured interval's length."""
        due: list[tuple[float, int]] = []  # (time, fd) of requests waiting for their time
        pending: dict[int, tuple[int, str]] = {}  # fd -> (due ns, label) of the one in flight
        lat: dict[str, list[int]] = {}
        errs: dict[str, list[str]] = {}

        def advance(ws: WsSocket) -> None:
            step = script(ws)
            now = time.monotonic()
            if step.at > now:
                heapq.heappush(due, (step.at, ws.fileno()))
                ws.step = step
                return
            send(ws, step, time.monotonic_ns())

        def send(ws: WsSocket, step: Step, due_ns: int) -> None:
            rid = ws.next_id
            ws.next_id += 1
            pending[ws.fileno()] = (due_ns, step.label)
            ws.out += _frame(request(step.method, step.params, rid))
            ws.flush()

        for ws in self.conns:
            ws.sent.clear()
            advance(ws)
        start = time.monotonic()
        t_rec = start + warmup_s
        end = t_rec + seconds
        next_tick = t_rec
        recording = False
        while (now_s := time.monotonic()) < end:
            if not recording and now_s >= t_rec:
                recording = True
            if tick is not None and recording and now_s >= next_tick:
                tick()
                next_tick += tick_s
            while due and due[0][0] <= now_s:
                at, fd = heapq.heappop(due)
                ws = self.by_fd[fd]
                send(ws, ws.step, int(at * 1e9))  # the same clock as monotonic_ns
            wait = min(0.05, end - now_s, (due[0][0] - now_s) if due else 0.05)
            events = self.ep.poll(max(0.0, wait))
            now = time.monotonic_ns()
            for fd, _ in events:
                ws = self.by_fd[fd]
                for raw in self._read(ws):
                    msg = _reply_decoder.decode(raw)
                    if msg.id is None or msg.method is not None or fd not in pending:
                        continue  # a notification
                    due_ns, label = pending.pop(fd)
                    if recording and due_ns >= int(t_rec * 1e9):
                        lat.setdefault(label, []).append(now - due_ns)
                        if msg.error:
                            errs.setdefault(label, []).append(bytes(msg.error).decode()[:300])
                    advance(ws)
        elapsed = time.monotonic() - t_rec
        # Let the requests in flight finish so that the sockets start the next run clean.
        stop = time.monotonic() + 30
        while pending and time.monotonic() < stop:
            for fd, _ in self.ep.poll(0.1):
                for raw in self._read(self.by_fd[fd]):
                    msg = _reply_decoder.decode(raw)
                    if msg.id is not None and msg.method is None:
                        pending.pop(fd, None)
        runs = [
            OpRun(
                label=label,
                requests=len(samples),
                errors=len(errs.get(label, [])),
                latency=stats_ms(samples),
                error_samples=errs.get(label, [])[:3],
            )
            for label, samples in sorted(lat.items())
        ]
        return runs, elapsed

    @staticmethod
    def _send(ws: WsSocket, make: Callable[[WsSocket, int], bytes]) -> None:
        rid = ws.next_id
        ws.next_id += 1
        ws.sent[rid] = time.monotonic_ns()
        ws.out += _frame(make(ws, rid))
        ws.flush()


class _Probe:
    """CPU of the server and of this process over an interval; the server's RSS at its end."""

    def __init__(self, pid: int | None) -> None:
        self.proc = psutil.Process(pid) if pid else None
        self.t0 = time.monotonic()
        self.own0 = _cpu(psutil.Process())
        self.srv0 = _cpu(self.proc) if self.proc else 0.0
        self.sys0 = _system_busy()

    def finish(self) -> tuple[ProcUsage | None, float]:
        dt = max(1e-6, time.monotonic() - self.t0)
        own = _cpu(psutil.Process()) - self.own0
        gen = round(100 * own / dt, 1)
        if self.proc is None:
            return None, gen
        srv = _cpu(self.proc) - self.srv0
        other = max(0.0, _system_busy() - self.sys0 - srv - own)
        return ProcUsage(
            cpu_pct=round(100 * srv / dt, 1),
            rss_mb=rss_mb(self.proc.pid),
            other_cpu_pct=round(100 * other / dt, 1),
        ), gen


def _system_busy() -> float:
    """CPU seconds the whole machine spent busy so far."""
    t = psutil.cpu_times()
    return sum(getattr(t, f, 0.0) for f in ("user", "nice", "system", "irq", "softirq", "steal"))


def wait_quiet(limit_s: float, busy_pct: float = 30.0) -> float:
    """Wait (at most `limit_s`) until the CPUs are mostly idle; returns the busy % seen last."""
    deadline = time.monotonic() + limit_s
    while True:
        busy = psutil.cpu_percent(interval=0.5) * (os.cpu_count() or 1)
        if busy <= busy_pct or time.monotonic() >= deadline:
            return round(busy, 1)


def _cpu(proc: psutil.Process) -> float:
    t = proc.cpu_times()
    return t.user + t.system


def rss_mb(pid: int) -> float:
    """Resident set size of a process, MiB."""
    return round(psutil.Process(pid).memory_info().rss / 2**20, 1)


class Sampler:
    """The CPU (% of one core) a process used between `start()` and `stop()`."""

    def __init__(self, pid: int) -> None:
        self.proc = psutil.Process(pid)
        self.t0 = 0.0
        self.c0 = 0.0
        self.own0 = 0.0
        self.sys0 = 0.0

    def start(self) -> None:
        """Mark the beginning of the interval."""
        self.t0 = time.monotonic()
        self.c0 = _cpu(self.proc)
        self.own0 = _cpu(psutil.Process())
        self.sys0 = _system_busy()

    def stop(self) -> ProcUsage:
        """CPU % over the interval, RSS now, and the CPU % of every other process."""
        dt = max(1e-6, time.monotonic() - self.t0)
        srv = _cpu(self.proc) - self.c0
        own = _cpu(psutil.Process()) - self.own0
        other = max(0.0, _system_busy() - self.sys0 - srv - own)
        return ProcUsage(
            cpu_pct=round(100 * srv / dt, 1),
            rss_mb=rss_mb(self.proc.pid),
            other_cpu_pct=round(100 * other / dt, 1),
        )


# -- the server ----------------------------------------------------------------------------


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


class Server:
    """`camsvc serve` as a subprocess: loopback ports, tmp paths, the emulated device."""

    SECRET = "bench-camsvc-secret-" + "x" * 32

    def __init__(
        self,
        tmp: Path,
        emu_dir: Path,
        extra_env: dict[str, str] | None = None,
        argv: Sequence[str] | None = None,
    ) -> None:
        from camsvc.emulator import library_path

        self.tmp = tmp
        self.argv = list(argv) if argv else None  # instead of `camsvc serve`
        self.port, self.health_port = free_ports(2)
        self.log = tmp / "server.log"
        env = dict(os.environ)
        env.pop("CAMSVC_CONFIG", None)
        env.update(
            {
                "LD_PRELOAD": " ".join(filter(None, [str(library_path()), env.get("LD_PRELOAD")])),
                "CAMSVC_EMU_DIR": str(emu_dir),
                "CAMERA_SERVICE_JWT_SECRET": self.SECRET,
                "CAMERA_SERVICE_SERVER_HOST": HOST,
                "CAMERA_SERVICE_SERVER_PORT": str(self.port),
                "CAMERA_SERVICE_HEALTH_HOST": HOST,
                "CAMERA_SERVICE_HEALTH_PORT": str(self.health_port),
                "CAMERA_SERVICE_SECURITY_API_KEYS_PATH": str(tmp / "api_keys.json"),
                "CAMERA_SERVICE_SNAPSHOTS_PATH": str(tmp / "snapshots"),
                "CAMERA_SERVICE_RECORDING_PATH": str(tmp / "recordings"),
                "CAMERA_SERVICE_STORAGE_DB_PATH": str(tmp / "camsvc.db"),
                "CAMERA_SERVICE_SECURITY_RATE_LIMIT_RPS": "1000000000",
                "CAMERA_SERVICE_SECURITY_RATE_LIMIT_BURST": "1000000000",
                "CAMERA_SERVICE_SERVER_MAX_CONNECTIONS": "4000",
                "CAMERA_SERVICE_LOGGING_LEVEL": "warning",
                "CAMERA_SERVICE_CAMERA_DEVICE_DIR": str(emu_dir),
                "CAMERA_SERVICE_CAMERA_DEVICE_RANGE": "[0, 63]",
                "CAMERA_SERVICE_MEDIAMTX_SPAWN": "never",
            }
        )
        env.update(extra_env or {})
        self.env = env
        self.proc: subprocess.Popen[bytes] | None = None
        self.ready_s = 0.0

    @property
    def pid(self) -> int:
        """The server's process id."""
        assert self.proc is not None
        return self.proc.pid

    def token(self, user: str = "bench", ttl_s: float = 3600, admin: bool = False) -> str:
        """An operator (or admin) JWT for this server."""
        from camsvc.auth import Role, mint_token

        return mint_token(self.SECRET, user, Role.ADMIN if admin else Role.OPERATOR, ttl_s)

    def start(self, limit_s: float = 120.0) -> float:
        """Start the server and wait for `/health/ready`; returns the seconds it took."""
        cmd = [sys.executable, "-m", "camsvc", "serve"]
        script = Path(sys.executable).parent / "camsvc"
        if self.argv:
            cmd = self.argv
        elif script.exists():
            cmd = [str(script), "serve"]
        out = self.log.open("ab")
        t0 = time.monotonic()
        self.proc = subprocess.Popen(cmd, env=self.env, stdout=out, stderr=subprocess.STDOUT)
        out.close()
        while time.monotonic() - t0 < limit_s:
            if self.proc.poll() is not None:
                tail = self.log.read_text(errors="replace")[-3000:]
                raise RuntimeError(f"server exited with {self.proc.returncode}:\n{tail}")
            with contextlib.suppress(OSError):
                conn = http.client.HTTPConnection(HOST, self.health_port, timeout=1)
                conn.request("GET", "/health/ready")
                status = conn.getresponse().status
                conn.close()
                if status == 200:
                    self.ready_s = time.monotonic() - t0
                    return self.ready_s
            time.sleep(0.05)
        raise RuntimeError(f"server not ready within {limit_s} s")

    def stop(self, limit_s: float = 15.0) -> int | None:
        """SIGTERM, then SIGKILL after `limit_s`; returns the exit code."""
        proc = self.proc
        if proc is None:
            return None
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(limit_s)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)
        return proc.returncode

    @contextlib.contextmanager
    def running(self) -> Iterator[Server]:
        """Started for the duration of the block, always stopped after it."""
        try:
            self.start()
            yield self
        finally:
            self.stop()


# -- profiles ------------------------------------------------------------------------------


class HotSpot(msgspec.Struct):
    """One function of a sampled profile: % of samples with it on top / anywhere."""

    function: str
    self_pct: float
    total_pct: float


class Profile(msgspec.Struct, kw_only=True):
    """Where the server spent its time during one load (py-spy, non-blocking, 100 Hz)."""

    load: str
    samples: int
    top_self: list[HotSpot]
    top_camsvc: list[HotSpot]  # camsvc functions by inclusive time


_PYSPY_FRAME = re.compile(r"^(?P<func>.*?) \((?P<path>[^()]*?)(?::\d+)?\)$")


@functools.cache
def _camsvc_files() -> dict[str, str]:
    """Base name → `camsvc/...` path, for the base names unique in the package."""
    seen: dict[str, list[str]] = {}
    for f in (ROOT / "camsvc").rglob("*.py"):
        seen.setdefault(f.name, []).append(str(f.relative_to(ROOT)))
    return {name: paths[0] for name, paths in seen.items() if len(paths) == 1}


def _short(frame: str) -> str:
    m = _PYSPY_FRAME.match(frame.strip())
    if not m:
        return frame.strip()
    path = m.group("path")
    path = re.sub(r".*/site-packages/", "", path)
    path = re.sub(r".*/lib/python3\.\d+/", "", path)
    path = re.sub(r"^.*?/(camsvc/)", r"\1", path)
    if "/" not in path:  # py-spy shortens the project's own files to their base name
        path = _camsvc_files().get(path, path)
    return f"{m.group('func')} ({path})"


def parse_pyspy_raw(text: str, load: str, top: int = 12) -> Profile:
    """Self and inclusive time per function from py-spy's `--format raw` output."""
    self_n: dict[str, int] = {}
    total_n: dict[str, int] = {}
    samples = 0
    for line in text.splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        n = int(count)
        samples += n
        frames = [_short(f) for f in stack.split(";")[1:] if f]  # [0] is the thread
        if not frames:
            continue
        self_n[frames[-1]] = self_n.get(frames[-1], 0) + n
        for f in set(frames):
            total_n[f] = total_n.get(f, 0) + n

    def pct(x: int) -> float:
        return round(100 * x / samples, 1) if samples else 0.0

    top_self = sorted(self_n.items(), key=lambda kv: -kv[1])[:top]
    camsvc = [
        kv for kv in total_n.items() if "(camsvc/" in kv[0] and "(camsvc/cli.py)" not in kv[0]
    ]
    top_camsvc = sorted(camsvc, key=lambda kv: -kv[1])[:top]
    return Profile(
        load=load,
        samples=samples,
        top_self=[HotSpot(f, pct(n), pct(total_n.get(f, 0))) for f, n in top_self],
        top_camsvc=[HotSpot(f, pct(self_n.get(f, 0)), pct(n)) for f, n in top_camsvc],
    )


@contextlib.contextmanager
def pyspy(pid: int, out: Path, load: str, result: list[Profile]) -> Iterator[None]:
    """Sample `pid` with py-spy for the duration of the block; append the parsed profile."""
    exe = Path(sys.executable).parent / "py-spy"
    if not exe.exists():
        yield
        return
    proc = subprocess.Popen(
        [str(exe), "record", "-p", str(pid), "-f", "raw", "-o", str(out), "--nonblocking",
         "-r", "100", "-d", "600"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )  # fmt: skip
    time.sleep(0.5)
    try:
        yield
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)
    if out.exists():
        result.append(parse_pyspy_raw(out.read_text(errors="replace"), load))


def report_tail(
    profiles: Sequence[Profile], settings: dict[str, Any], notes: Sequence[str]
) -> list[str]:
    """The end of a RESULTS.md section: py-spy profile tables, the settings, the notes."""
    parts: list[str] = []
    for p in profiles:
        parts += [
            "",
            f"### Profile: {p.load} ({p.samples} py-spy samples)",
            "",
            markdown_table(
                ["camsvc function (inclusive)", "total %", "self %"],
                [[f"`{h.function}`", str(h.total_pct), str(h.self_pct)] for h in p.top_camsvc],
            ),
            "",
            markdown_table(
                ["function (self time)", "self %", "total %"],
                [[f"`{h.function}`", str(h.self_pct), str(h.total_pct)] for h in p.top_self],
            ),
        ]
    parts += ["", "Settings: " + ", ".join(f"{k}={v}" for k, v in settings.items()) + "."]
    if notes:
        parts += ["", "Notes:", ""] + [f"- {n}" for n in notes]
    return parts
