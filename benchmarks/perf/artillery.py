"""Artillery (npm, its WebSocket engine) as an independent check of the connection and ping
figures: a load generator we did not write, measuring the same service.

`ensure()` installs it into `.cache/artillery` once (`npm install artillery@2`, its
optional browser download skipped: only the WebSocket engine is used). Artillery's WebSocket
engine reports counters, not reply times, so the scenarios time each request with two small
processor functions around the engine's own `send` + `match` step (`camsvc_ms`), and the
connection scenario reads Artillery's own `vusers.session_length` (connect, upgrade,
authenticate, close).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

__all__ = ["ensure", "run_connect", "run_ping"]

ROOT = Path(__file__).resolve().parents[2]
HOME = ROOT / ".cache" / "artillery"
BIN = HOME / "node_modules" / ".bin" / "artillery"
VERSION = "2"

PROCESSOR = """\
// Times the step between `stamp` and `record` (the engine's send + match of one request).
module.exports = {
  stamp(context, events, done) { context.vars.t0 = process.hrtime.bigint(); return done(); },
  record(context, events, done) {
    const ms = Number(process.hrtime.bigint() - context.vars.t0) / 1e6;
    events.emit("histogram", "camsvc_ms", ms);
    return done();
  },
};
"""


def ensure() -> Path | None:
    """The `artillery` executable, installed on first use; None when npm is missing."""
    if BIN.exists():
        return BIN
    if shutil.which("npm") is None:
        return None
    HOME.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ, PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD="1")
    print("  installing Artillery (npm, about a minute, once)", flush=True)
    subprocess.run(
        [
            "npm",
            "install",
            "--no-audit",
            "--no-fund",
            "--loglevel=error",
            "--ignore-scripts",
            "--prefix",
            str(HOME),
            f"artillery@{VERSION}",
        ],
        env=env,
        check=True,
        stdout=subprocess.DEVNULL,
        timeout=900,
    )
    return BIN if BIN.exists() else None


def _auth(token: str) -> dict[str, Any]:
    return {
        "send": {
            "payload": {
                "jsonrpc": "2.0",
                "method": "authenticate",
                "id": 1,
                "params": {"auth_token": token},
            },
            "match": {"json": "$.result.authenticated", "value": True},
        }
    }


def _run(work: Path, name: str, config: dict[str, Any]) -> dict[str, Any]:
    binary = ensure()
    if binary is None:
        raise RuntimeError("npm is not installed (scripts/install.sh installs it)")
    work.mkdir(parents=True, exist_ok=True)
    (work / "processor.js").write_text(PROCESSOR)
    # JSON is YAML: Artillery reads the file as YAML.
    script = work / f"{name}.yml"
    script.write_text(json.dumps(config, indent=1))
    out = work / f"{name}.json"
    proc = subprocess.run(
        [str(binary), "run", "--quiet", "--output", str(out), str(script)],
        cwd=work,
        capture_output=True,
        timeout=300,
        env=dict(os.environ, ARTILLERY_DISABLE_TELEMETRY="true"),
    )
    if proc.returncode != 0 or not out.exists():
        raise RuntimeError(f"artillery {name} failed: {proc.stderr.decode()[-1500:]}")
    return json.loads(out.read_text())["aggregate"]


def _summary(agg: dict[str, Any], histogram: str, count_key: str) -> dict[str, Any]:
    h = agg.get("summaries", {}).get(histogram, {})
    counters = agg.get("counters", {})
    errors = sum(v for k, v in counters.items() if k.startswith("errors."))
    first = agg.get("firstCounterAt") or 0
    last = agg.get("lastCounterAt") or 0
    secs = max(1e-3, (last - first) / 1000)
    return {
        "count": int(counters.get(count_key, 0)),
        "p50_ms": h.get("median") or h.get("p50"),
        "p95_ms": h.get("p95"),
        "p99_ms": h.get("p99"),
        "errors": int(errors) + int(counters.get("vusers.failed", 0)),
        "rate": round(counters.get(count_key, 0) / secs, 1),
    }


def run_connect(work: Path, port: int, token: str, users: int, seconds: int) -> dict[str, Any]:
    """`users` virtual users arriving over `seconds`, each connecting and authenticating:
    Artillery's session length (connect + upgrade + authenticate + close) per user."""
    config = {
        "config": {
            "target": f"ws://127.0.0.1:{port}/ws",
            "phases": [{"duration": seconds, "arrivalCount": users}],
            "processor": "./processor.js",
        },
        "scenarios": [{"engine": "ws", "flow": [_auth(token)]}],
    }
    agg = _run(work, "connect", config)
    return _summary(agg, "vusers.session_length", "vusers.completed")


def run_ping(work: Path, port: int, token: str, users: int, pings: int) -> dict[str, Any]:
    """`users` connections at once, each authenticating and then sending `pings` pings one
    after another: the reply time of each (engine send + match on `"pong"`)."""
    step = {
        "send": {
            "payload": {"jsonrpc": "2.0", "method": "ping", "id": 2},
            "match": {"json": "$.result", "value": "pong"},
        },
    }
    config = {
        "config": {
            "target": f"ws://127.0.0.1:{port}/ws",
            "phases": [{"duration": 1, "arrivalCount": users}],
            "processor": "./processor.js",
        },
        "scenarios": [
            {
                "engine": "ws",
                "flow": [
                    _auth(token),
                    {"loop": [{"function": "stamp"}, step, {"function": "record"}], "count": pings},
                ],
            }
        ],
    }
    agg = _run(work, "ping", config)
    return _summary(agg, "camsvc_ms", "websocket.messages_sent")
