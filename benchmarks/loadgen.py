"""A lean WebSocket JSON-RPC load generator, run as its own process against a server on loopback.

It speaks just enough RFC 6455 over plain asyncio `Protocol`s to drive a JSON-RPC server hard
without becoming the bottleneck itself:

- the opening handshake is one hand-written HTTP/1.1 request; the `101` reply is checked;
- client frames are masked with the all-zero key (legal: the mask must be present, the key is
  the client's choice), so a request frame is a 6-byte header plus the JSON bytes, no XOR pass;
- server frames are parsed in place from one receive buffer per connection; pings are answered;
- requests are pipelined per connection within a bounded window; because a JSON-RPC server
  answers one connection's synchronous calls in order, replies are matched to send times
  first-in first-out, and every reply read in one `data_received` shares one clock reading;
- all the replies of one read are answered with one `write` of as many new requests.

Scenarios (one per invocation, result printed to stdout as one JSON object, a `RunResult`):

- `closed`: N authenticated connections, each keeping `window` pings in flight, for a
  measured interval after a warm-up: requests/s and latency (send to reply).
- `open`: a fixed request rate spread round-robin over N connections; latency counts from the
  scheduled send time, so a late send (generator lag) counts against the server, never for it.
- `connect`: connect + WebSocket handshake + `authenticate` latency, sequential or in waves.
- `idle`: open N authenticated connections, leave them idle, and report the server's RSS
  before and with them.

With `--server-pid` the generator also samples the server's CPU time and RSS over the
measured interval (psutil), and always reports its own CPU use, to show who was saturated.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import collections
import contextlib
import gc
import math
import os
import resource
import sys
import time
from collections.abc import Callable, Iterable

import msgspec

__all__ = [
    "Latency",
    "RunResult",
    "WsConn",
    "latency_summary",
    "main",
    "raise_nofile_limit",
    "request_frame",
]

NS_PER_MS = 1_000_000
TOKEN_ENV = "CAMSVC_BENCH_TOKEN"


class Latency(msgspec.Struct, kw_only=True):
    """A latency distribution in milliseconds (nearest-rank percentiles)."""

    count: int
    p50_ms: float
    p95_ms: float
    p99_ms: float
    max_ms: float
    mean_ms: float


class RunResult(msgspec.Struct, kw_only=True, omit_defaults=True):
    """What one generator invocation measured."""

    scenario: str  # closed | open | connect | idle
    target: str  # a label given by the caller, e.g. camsvc or echo
    connections: int
    window: int = 1
    rate: float = 0.0  # requested rate (open loop)
    duration_s: float = 0.0  # the measured interval
    requests: int = 0  # replies received within the measured interval
    errors: int = 0  # replies holding an "error" member, failed connects
    rps: float = 0.0
    latency: Latency | None = None
    send_lag: Latency | None = None  # open loop: actual send - scheduled send
    connect: Latency | None = None  # connect + handshake + authenticate
    handshake: Latency | None = None  # connect: TCP connect + WebSocket handshake only
    auth: Latency | None = None  # connect: the `authenticate` call only
    gen_cpu_pct: float = 0.0  # this process, user + system, % of one core
    server_cpu_pct: float | None = None  # the server process, % of one core
    other_cpu_pct: float | None = None  # every other process on the machine, % of one core
    server_rss_mb: float | None = None  # at the end of the measured interval
    rss_before_mb: float | None = None  # idle: before opening the connections
    rss_after_mb: float | None = None  # idle: with the connections open and idle
    rss_added_mb: float | None = None
    contended: bool = False  # set by the driver: other processes took a large share of the CPUs


def latency_summary(samples_ns: list[int]) -> Latency | None:
    """Percentiles of a list of nanosecond durations (None when empty)."""
    if not samples_ns:
        return None
    data = sorted(samples_ns)
    n = len(data)

    def pct(p: float) -> float:
        rank = min(n, max(1, math.ceil(p * n / 100)))
        return round(data[rank - 1] / NS_PER_MS, 3)

    return Latency(
        count=n,
        p50_ms=pct(50),
        p95_ms=pct(95),
        p99_ms=pct(99),
        max_ms=round(data[-1] / NS_PER_MS, 3),
        mean_ms=round(sum(data) / n / NS_PER_MS, 3),
    )


def raise_nofile_limit() -> tuple[int, int]:
    """Raise the soft RLIMIT_NOFILE to the hard limit; return (soft, hard) now in force."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)


def _frame_header(opcode: int, length: int) -> bytes:
    """A masked client frame header with the all-zero masking key."""
    if length < 126:
        return bytes((0x80 | opcode, 0x80 | length)) + b"\0\0\0\0"
    if length < 65536:
        return bytes((0x80 | opcode, 0x80 | 126)) + length.to_bytes(2, "big") + b"\0\0\0\0"
    return bytes((0x80 | opcode, 0x80 | 127)) + length.to_bytes(8, "big") + b"\0\0\0\0"


def request_frame(payload: bytes, opcode: int = 1) -> bytes:
    """One complete client frame (text by default) carrying `payload`."""
    return _frame_header(opcode, len(payload)) + payload


#: The request every pipelined send carries, up to its id (`--method`, `--params`).
_prefix = b'{"jsonrpc":"2.0","method":"ping","id":'


def set_request(method: str, params: str | None = None) -> None:
    """Pipelined sends carry `method` (with `params`, a JSON object) from now on. Only
    methods answered in order (camsvc's synchronous ones) keep the FIFO reply matching true."""
    global _prefix
    head = {"jsonrpc": "2.0", "method": method}
    if params:
        head["params"] = msgspec.json.decode(params)
    _prefix = msgspec.json.encode(head)[:-1] + b',"id":'


def ping_frame(request_id: int) -> bytes:
    """The frame of the pipelined request (`ping` by default) with id `request_id`."""
    return request_frame(_prefix + str(request_id).encode() + b"}")


class _Envelope(msgspec.Struct):
    method: str | None = None  # set on notifications only


_envelope = msgspec.json.Decoder(_Envelope)


class _Stats:
    """Counters shared by every connection of one run (the event loop is single-threaded)."""

    def __init__(self) -> None:
        self.recording = False
        self.sending = False
        self.latencies: list[int] = []
        self.count = 0
        self.errors = 0
        self.next_id = 10
        self.outstanding = 0


class WsConn(asyncio.Protocol):
    """One client WebSocket connection driven from asyncio callbacks."""

    def __init__(self, stats: _Stats, window: int = 1) -> None:
        self.stats = stats
        self.window = window
        self.transport: asyncio.Transport | None = None
        self.buf = bytearray()
        self.open = False
        self.closed = False
        self.pipelining = False
        self.sent: collections.deque[int] = collections.deque()
        self._handshake: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._reply: asyncio.Future[bytes] | None = None
        self._closing = False

    # -- asyncio.Protocol ------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        """Keep the transport."""
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def connection_lost(self, exc: Exception | None) -> None:
        """Fail whoever waits on this connection."""
        self.closed = True
        self.stats.outstanding -= len(self.sent)
        if not self._closing:  # dropped by the server: requests in flight are lost
            self.stats.errors += len(self.sent)
        self.sent.clear()
        err = ConnectionError("connection lost")
        if not self._handshake.done():
            self._handshake.set_exception(err)
        if self._reply is not None and not self._reply.done():
            self._reply.set_exception(err)

    def data_received(self, data: bytes) -> None:
        """Parse whole server frames out of the buffer and act on them."""
        buf = self.buf
        buf += data
        if not self.open:
            end = buf.find(b"\r\n\r\n")
            if end < 0:
                return
            head = bytes(buf[:end])
            del buf[: end + 4]
            if not head.startswith(b"HTTP/1.1 101"):
                self._handshake.set_exception(
                    ConnectionError(head.split(b"\r\n", 1)[0].decode(errors="replace"))
                )
                return
            self.open = True
            self._handshake.set_result(None)
        pos = 0
        n = len(buf)
        replies = 0
        errors = 0
        while n - pos >= 2:
            b0 = buf[pos]
            length = buf[pos + 1] & 0x7F
            hl = 2
            if length == 126:
                if n - pos < 4:
                    break
                length = (buf[pos + 2] << 8) | buf[pos + 3]
                hl = 4
            elif length == 127:
                if n - pos < 10:
                    break
                length = int.from_bytes(buf[pos + 2 : pos + 10], "big")
                hl = 10
            end = pos + hl + length
            if end > n:
                break
            opcode = b0 & 0x0F
            if opcode == 1 or opcode == 0:
                if self.pipelining:
                    replies += 1
                    # An error response has no `result` member (a result may well
                    # hold an "error" field: get_camera_status does).
                    if buf.find(b'"result":', pos + hl, end) < 0:
                        errors += 1
                elif self._reply is not None and not self._reply.done():
                    message = bytes(buf[pos + hl : end])
                    # A notification may come before the reply (API.md §9: a response may
                    # overtake notifications, and the other way round).
                    if _envelope.decode(message).method is None:
                        self._reply.set_result(message)
            elif opcode == 9 and self.transport is not None:
                self.transport.write(request_frame(bytes(buf[pos + hl : end]), 0xA))
            elif opcode == 8:
                self.closed = True
            pos = end
        if pos:
            del buf[:pos]
        if replies:
            self._on_replies(replies, errors)

    # -- pipelined load --------------------------------------------------------------

    def _on_replies(self, k: int, errors: int) -> None:
        now = time.perf_counter_ns()
        stats = self.stats
        sent = self.sent
        pop = sent.popleft
        stats.outstanding -= k
        if stats.recording:
            lat = stats.latencies
            for _ in range(k):
                lat.append(now - pop())
            stats.count += k
            stats.errors += errors
        else:
            for _ in range(k):
                pop()
        if stats.sending and self.window:
            self.send_pings(min(k, self.window - len(sent)))

    def send_pings(self, k: int) -> None:
        """Send `k` pings in one write, stamping each with the current time."""
        if k <= 0 or self.closed or self.transport is None:
            return
        stats = self.stats
        first = stats.next_id
        stats.next_id = first + k
        stats.outstanding += k
        now = time.perf_counter_ns()
        if k == 1:
            self.sent.append(now)
            self.transport.write(ping_frame(first))
            return
        self.sent.extend([now] * k)
        self.transport.write(b"".join([ping_frame(i) for i in range(first, first + k)]))

    def send_scheduled(self, scheduled_ns: int) -> None:
        """Open loop: send one ping whose latency counts from `scheduled_ns`."""
        if self.closed or self.transport is None:
            return
        stats = self.stats
        rid = stats.next_id
        stats.next_id = rid + 1
        stats.outstanding += 1
        self.sent.append(scheduled_ns)
        self.transport.write(ping_frame(rid))

    # -- request / reply -------------------------------------------------------------

    async def handshake(self, host: str, port: int, path: str) -> None:
        """Send the opening handshake and wait for `101 Switching Protocols`."""
        assert self.transport is not None
        key = base64.b64encode(os.urandom(16))
        self.transport.write(
            b"GET "
            + path.encode()
            + b" HTTP/1.1\r\nHost: "
            + f"{host}:{port}".encode()
            + b"\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: "
            + key
            + b"\r\nSec-WebSocket-Version: 13\r\n\r\n"
        )
        await self._handshake

    async def call(self, payload: bytes) -> bytes:
        """Send one request and wait for the next response (notifications are skipped)."""
        assert self.transport is not None
        self._reply = asyncio.get_running_loop().create_future()
        self.transport.write(request_frame(payload))
        return await self._reply

    def close(self) -> None:
        """Send a close frame (1000) and drop the TCP connection."""
        self._closing = True
        if self.transport is not None and not self.transport.is_closing():
            if self.open and not self.closed:
                self.transport.write(request_frame(b"\x03\xe8", 0x8))
            self.transport.close()


def auth_payload(token: str) -> bytes:
    """The `authenticate` request for `token`."""
    return msgspec.json.encode(
        {"jsonrpc": "2.0", "method": "authenticate", "params": {"auth_token": token}, "id": 1}
    )


class Timing(msgspec.Struct, array_like=True):
    """How long one connection took to open (ns): handshake, then the whole with `authenticate`."""

    handshake: int
    total: int


async def connect(
    host: str, port: int, path: str, token: str | None, stats: _Stats, window: int = 1
) -> tuple[WsConn, Timing]:
    """Open, upgrade and (with a token) authenticate one connection; return it and its timing."""
    loop = asyncio.get_running_loop()
    t0 = time.perf_counter_ns()
    _, conn = await loop.create_connection(lambda: WsConn(stats, window), host, port)
    try:
        await conn.handshake(host, port, path)
        t_open = time.perf_counter_ns() - t0
        if token is not None:
            reply = await conn.call(auth_payload(token))
            if b'"error"' in reply or b'"result"' not in reply:
                raise ConnectionError(f"authenticate failed: {reply[:200]!r}")
    except BaseException:
        conn.close()
        raise
    return conn, Timing(t_open, time.perf_counter_ns() - t0)


async def connect_many(
    n: int,
    host: str,
    port: int,
    path: str,
    token: str | None,
    stats: _Stats,
    window: int = 1,
    parallel: int = 64,
) -> tuple[list[WsConn], list[Timing]]:
    """Open `n` authenticated connections, at most `parallel` handshakes at a time."""
    sem = asyncio.Semaphore(parallel)

    async def one() -> tuple[WsConn, Timing]:
        async with sem:
            return await asyncio.wait_for(connect(host, port, path, token, stats, window), 30)

    results = await asyncio.gather(*(one() for _ in range(n)))
    return [c for c, _ in results], [t for _, t in results]


class _Probe:
    """CPU and RSS of a process (the server) and CPU of this process over an interval."""

    def __init__(self, pid: int | None) -> None:
        self.proc = None
        if pid:
            import psutil

            self.proc = psutil.Process(pid)
        self._t0 = 0.0
        self._own0 = 0.0
        self._srv0 = 0.0
        self._sys0 = 0.0

    @staticmethod
    def _system_busy() -> float:
        import psutil

        t = psutil.cpu_times()
        fields = ("user", "nice", "system", "irq", "softirq", "steal")
        return sum(getattr(t, name, 0.0) for name in fields)

    def _server_cpu(self) -> float:
        if self.proc is None:
            return 0.0
        t = self.proc.cpu_times()
        return t.user + t.system

    def rss_mb(self) -> float | None:
        """The server's resident set size now, MiB."""
        return None if self.proc is None else round(self.proc.memory_info().rss / 2**20, 2)

    def start(self) -> None:
        """Begin an interval."""
        self._t0 = time.monotonic()
        self._own0 = time.process_time()
        self._srv0 = self._server_cpu()
        self._sys0 = self._system_busy()

    def stop(self, result: RunResult) -> float:
        """End the interval, fill CPU and RSS fields into `result`, return its length in s."""
        elapsed = time.monotonic() - self._t0
        own = time.process_time() - self._own0
        result.gen_cpu_pct = round(100 * own / elapsed, 1)
        if self.proc is not None:
            server = self._server_cpu() - self._srv0
            result.server_cpu_pct = round(100 * server / elapsed, 1)
            result.server_rss_mb = self.rss_mb()
            other = max(0.0, self._system_busy() - self._sys0 - own - server)
            result.other_cpu_pct = round(100 * other / elapsed, 1)
        return elapsed


async def _drain(stats: _Stats, limit_s: float) -> None:
    """Wait (at most `limit_s`) until every request sent has its reply."""
    deadline = time.monotonic() + limit_s
    # Polled: the counter is kept by protocol callbacks, an Event per reply would cost more.
    while stats.outstanding > 0 and time.monotonic() < deadline:  # noqa: ASYNC110
        await asyncio.sleep(0.01)


def _close_all(conns: Iterable[WsConn]) -> None:
    for c in conns:
        c.close()


async def run_closed(args: argparse.Namespace, token: str | None) -> RunResult:
    """Closed loop: every connection keeps `window` pings in flight."""
    stats = _Stats()
    conns, _ = await connect_many(
        args.connections, args.host, args.port, args.path, token, stats, args.window
    )
    probe = _Probe(args.server_pid)
    try:
        for c in conns:
            c.pipelining = True
        stats.sending = True
        for c in conns:
            c.send_pings(args.window)
        await asyncio.sleep(args.warmup)
        stats.recording = True
        probe.start()
        await asyncio.sleep(args.duration)
        stats.recording = False
        result = RunResult(
            scenario="closed", target=args.label, connections=args.connections, window=args.window
        )
        elapsed = probe.stop(result)
        stats.sending = False
        await _drain(stats, 5)
    finally:
        _close_all(conns)
    result.duration_s = round(elapsed, 3)
    result.requests = stats.count
    result.errors = stats.errors
    result.rps = round(stats.count / elapsed, 1)
    result.latency = latency_summary(stats.latencies)
    return result


async def run_open(args: argparse.Namespace, token: str | None) -> RunResult:
    """Open loop: `rate` pings/s over all connections, latency from the scheduled send time."""
    stats = _Stats()
    conns, _ = await connect_many(args.connections, args.host, args.port, args.path, token, stats)
    for c in conns:
        c.pipelining = True
        c.window = 0  # replies never trigger sends here
    probe = _Probe(args.server_pid)
    lags: list[int] = []
    interval_ns = int(1e9 / args.rate)
    n = len(conns)

    async def ticker(until_ns: int, record: bool) -> None:
        i = 0
        nxt = time.perf_counter_ns()
        while nxt < until_ns:
            now = time.perf_counter_ns()
            while nxt <= now and nxt < until_ns:
                conns[i % n].send_scheduled(nxt)
                if record:
                    lags.append(now - nxt)
                i += 1
                nxt += interval_ns
            await asyncio.sleep(max(0.0, (nxt - time.perf_counter_ns()) / 1e9))

    try:
        await ticker(time.perf_counter_ns() + int(args.warmup * 1e9), False)
        await _drain(stats, 2)
        stats.recording = True
        probe.start()
        await ticker(time.perf_counter_ns() + int(args.duration * 1e9), True)
        await _drain(stats, 5)
        stats.recording = False
        result = RunResult(
            scenario="open", target=args.label, connections=n, window=0, rate=args.rate
        )
        elapsed = probe.stop(result)
    finally:
        _close_all(conns)
    result.duration_s = round(elapsed, 3)
    result.requests = stats.count
    result.errors = stats.errors
    result.rps = round(stats.count / elapsed, 1)
    result.latency = latency_summary(stats.latencies)
    result.send_lag = latency_summary(lags)
    return result


async def run_connect(args: argparse.Namespace, token: str | None) -> RunResult:
    """Connect + handshake + authenticate, `connections` times, in waves of `parallel`."""
    stats = _Stats()
    samples: list[Timing] = []
    probe = _Probe(args.server_pid)
    probe.start()
    remaining = args.connections
    while remaining > 0:
        wave = min(args.parallel, remaining)
        conns, times = await connect_many(
            wave, args.host, args.port, args.path, token, stats, parallel=wave
        )
        samples.extend(times)
        _close_all(conns)
        remaining -= wave
        await asyncio.sleep(0.005)  # let the server retire the closed ones
    result = RunResult(
        scenario="connect", target=args.label, connections=args.connections, window=args.parallel
    )
    elapsed = probe.stop(result)
    result.duration_s = round(elapsed, 3)
    result.connect = latency_summary([t.total for t in samples])
    result.handshake = latency_summary([t.handshake for t in samples])
    result.auth = latency_summary([t.total - t.handshake for t in samples])
    result.requests = len(samples)
    result.rps = round(len(samples) / elapsed, 1)
    return result


async def run_idle(args: argparse.Namespace, token: str | None) -> RunResult:
    """Open `connections` authenticated connections and measure the server's RSS with them."""
    stats = _Stats()
    probe = _Probe(args.server_pid)
    rss_before = probe.rss_mb()
    probe.start()
    conns, times = await connect_many(
        args.connections, args.host, args.port, args.path, token, stats, parallel=args.parallel
    )
    try:
        await asyncio.sleep(args.duration)  # idle: let the server settle
        rss_after = probe.rss_mb()
        result = RunResult(
            scenario="idle", target=args.label, connections=len(conns), window=args.parallel
        )
        probe.stop(result)
        # A ping proves every connection is still authenticated and served after the idle time.
        for c in conns:
            c.pipelining = True
        stats.recording = True
        stats.sending = False
        for c in conns:
            c.send_pings(1)
        await _drain(stats, 10)
    finally:
        _close_all(conns)
    result.connect = latency_summary([t.total for t in times])
    result.requests = stats.count
    result.errors = stats.errors + (len(conns) - stats.count)
    result.latency = latency_summary(stats.latencies)
    result.rss_before_mb = rss_before
    result.rss_after_mb = rss_after
    if rss_before is not None and rss_after is not None:
        result.rss_added_mb = round(rss_after - rss_before, 2)
    return result


SCENARIOS: dict[str, Callable[[argparse.Namespace, str | None], object]] = {
    "closed": run_closed,
    "open": run_open,
    "connect": run_connect,
    "idle": run_idle,
}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """The command line (the token comes from the CAMSVC_BENCH_TOKEN environment variable)."""
    p = argparse.ArgumentParser(
        prog="python -m benchmarks.loadgen",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("scenario", choices=sorted(SCENARIOS))
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--path", default="/ws")
    p.add_argument("--label", default="camsvc", help="target name put into the result")
    p.add_argument("--connections", "-c", type=int, default=1)
    p.add_argument("--window", "-w", type=int, default=1, help="closed loop: pings in flight")
    p.add_argument("--rate", type=float, default=1000.0, help="open loop: requests/s")
    p.add_argument("--parallel", type=int, default=1, help="connect/idle: handshakes at once")
    p.add_argument("--duration", "-d", type=float, default=3.0, help="measured seconds")
    p.add_argument("--warmup", type=float, default=0.5, help="seconds before measuring")
    p.add_argument("--server-pid", type=int, default=0, help="sample this process's CPU/RSS")
    p.add_argument("--no-auth", action="store_true", help="skip authenticate")
    p.add_argument("--method", default="ping", help="closed/open: the request (a sync method)")
    p.add_argument("--params", default=None, help="closed/open: its params, a JSON object")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """Run one scenario and print its RunResult as JSON."""
    args = parse_args(argv)
    if args.host not in ("127.0.0.1", "::1", "localhost"):
        print("loadgen: loopback targets only", file=sys.stderr)
        return 2
    raise_nofile_limit()
    token = None if args.no_auth else os.environ.get(TOKEN_ENV)
    if not args.no_auth and not token:
        print(f"loadgen: set {TOKEN_ENV} or pass --no-auth", file=sys.stderr)
        return 2
    set_request(args.method, args.params)
    gc.freeze()
    result = asyncio.run(SCENARIOS[args.scenario](args, token))  # type: ignore[arg-type]
    sys.stdout.buffer.write(msgspec.json.encode(result) + b"\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
