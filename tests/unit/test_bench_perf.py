"""The performance report's judgement (benchmarks/perf) and the load generator's framing:
a wrong verdict or a miscounted error would make `make bench` lie."""

from __future__ import annotations

import asyncio

import msgspec
import pytest

from benchmarks import loadgen
from benchmarks.perf.model import Report, Row, Scenario, render
from benchmarks.perf.targets import RESOURCES, RESPONSE, THROUGHPUT, judge
from benchmarks.wsclient import Machine


@pytest.mark.parametrize(
    ("value", "verdict"),
    [
        (40.0, "target"),
        (50.0, "target"),
        (150.0, "acceptable"),
        (400.0, "slow"),
        (600.0, "critical"),
        (None, "n/a"),
        (float("nan"), "n/a"),
    ],
)
def test_response_times_fall_in_the_spec_columns(value: float | None, verdict: str) -> None:
    """Authentication: Target < 50, Acceptable < 200, Slow < 500, Critical beyond."""
    assert judge(RESPONSE["Authentication"], value) == verdict


def test_throughput_is_a_floor_and_resources_a_ceiling() -> None:
    """More requests/s is better; more CPU is worse, with a warning band before critical."""
    rps = THROUGHPUT["Requests per second"]
    assert [judge(rps, v) for v in (12000, 700, 100)] == ["target", "acceptable", "critical"]
    cpu = RESOURCES["CPU usage"]
    assert [judge(cpu, v) for v in (30, 75, 90)] == ["target", "warning", "critical"]


def test_errors_are_named_beside_a_good_verdict() -> None:
    """A fast answer that was an error must not read as a clean pass."""
    row = Row(name="x", spec="Camera list", value=5.0, errors=3, requests=100)
    assert row.verdict() == "target, 3 errors"
    assert Row(name="y", goal="< 5 %", value=7.0, ok=False).verdict() == "**MISS**"


def test_report_lists_every_spec_row_measured_or_not() -> None:
    """The summary has a line for each row of the spec's three tables."""
    machine = Machine(
        nproc=2,
        cpu_model="x",
        ram_gib=1.0,
        kernel="k",
        python="3.11",
        loadavg_before=[0.0, 0.0, 0.0],
    )
    sc = Scenario(
        name="baseline",
        title="Baseline",
        wall_s=1.0,
        rows=[Row(name="list", spec="Camera list", value=3.0, unit="ms")],
    )
    text = render(
        Report(date="d", commit="c", machine=machine, scenarios={"baseline": sc}), ["baseline"]
    )
    for name in [*RESPONSE, *THROUGHPUT, *RESOURCES]:
        assert f"| {name} |" in text
    assert "| Camera list | < 200 | < 1,000 | > 2,000 | 3.0 ms p95 | baseline | target |" in text
    assert text.count("not measured") == len(RESPONSE) + len(THROUGHPUT) + len(RESOURCES) - 1


def test_loadgen_sends_the_chosen_method_in_a_masked_frame() -> None:
    """`--method`/`--params` change every pipelined request; ids stay distinct."""
    loadgen.set_request("get_camera_status", '{"device":"camera0"}')
    try:
        frame = loadgen.ping_frame(42)
    finally:
        loadgen.set_request("ping")
    assert frame[0] == 0x81 and frame[1] & 0x80  # final text frame, masked (all-zero key)
    length = frame[1] & 0x7F
    payload = frame[6 : 6 + length] if length < 126 else frame[8:]
    assert msgspec.json.decode(payload) == {
        "jsonrpc": "2.0",
        "method": "get_camera_status",
        "params": {"device": "camera0"},
        "id": 42,
    }


class _Transport:
    def __init__(self) -> None:
        self.written: list[bytes] = []

    def write(self, data: bytes) -> None:
        self.written.append(data)


def _server_frame(payload: bytes) -> bytes:
    return bytes((0x81, len(payload))) + payload


def test_loadgen_counts_error_responses_not_results_holding_an_error_field() -> None:
    """get_camera_status's result has an `error` member; only responses without `result`
    are errors."""

    async def replies() -> loadgen._Stats:
        stats = loadgen._Stats()
        stats.recording = True
        conn = loadgen.WsConn(stats)  # its futures need the running asyncio loop
        conn.transport = _Transport()  # type: ignore[assignment]
        conn.open = conn.pipelining = True
        conn.send_pings(2)
        conn.data_received(
            _server_frame(b'{"jsonrpc":"2.0","id":10,"result":{"device":"camera0","error":null}}')
            + _server_frame(b'{"jsonrpc":"2.0","id":11,"error":{"code":-32001,"message":"x"}}')
        )
        return stats

    stats = asyncio.run(replies())
    assert (stats.count, stats.errors) == (2, 1)
