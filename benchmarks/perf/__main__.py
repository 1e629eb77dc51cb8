"""`python -m benchmarks.perf [scenario ...]`: the performance specification's scenarios
against the real service (`make bench`; `make bench-<name>` for one; `make bench-soak`).

Each scenario starts its own `camsvc serve` (emulated cameras, the MediaMTX stand-in) and
prints a line per step. The report keeps every scenario measured on the same day: one
scenario run again replaces its own rows. Written to `benchmarks/RESULTS.md` (section
"Performance specification (issue 10)"), `benchmarks/results/perf-<date>.json` and the
plots `benchmarks/results/perf-*.png`.
"""

from __future__ import annotations

import argparse
import datetime as dt
import shutil
import sys
import tempfile
import time
from pathlib import Path

import msgspec

from benchmarks.perf.model import Report, Scenario, render
from benchmarks.perf.plots import plot
from benchmarks.perf.scenarios import SCENARIOS, Context
from benchmarks.perf.soak import soak
from benchmarks.wsclient import git_commit, machine, raise_nofile_limit, update_results_md
from camsvc.emulator import EmulatedCamera

ROOT = Path(__file__).resolve().parents[2]
SECTION = "Performance specification (issue 10)"
ORDER = [*SCENARIOS, "soak"]
EMULATED_CAMERAS = 10  # the recording load's count; the others use the first four


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """The command line."""
    p = argparse.ArgumentParser(
        prog="python -m benchmarks.perf",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "scenarios",
        nargs="*",
        choices=[[], *ORDER],
        metavar="scenario",
        help=f"any of {', '.join(ORDER)} (default: all but soak)",
    )
    p.add_argument("--quick", action="store_true", help="short intervals, for development")
    p.add_argument("--soak-seconds", type=float, default=1800.0)
    p.add_argument("--no-write", action="store_true", help="print only")
    p.add_argument("--keep", action="store_true", help="keep the work folder (logs)")
    return p.parse_args(argv)


def _load(path: Path) -> dict[str, Scenario]:
    if not path.exists():
        return {}
    try:
        return msgspec.json.decode(path.read_bytes(), type=Report).scenarios
    except msgspec.DecodeError:
        return {}


def main(argv: list[str] | None = None) -> int:
    """Run the scenarios, then write the report, the JSON and the plots."""
    args = parse_args(argv)
    names = args.scenarios or list(SCENARIOS)
    for tool in ("ffmpeg", "ffprobe"):
        if shutil.which(tool) is None:
            print(f"make bench needs {tool} (scripts/install.sh installs it)", file=sys.stderr)
            return 2
    raise_nofile_limit()
    mach = machine()
    tmp = Path(tempfile.mkdtemp(prefix="camsvc-bench-perf-"))
    emu = tmp / "dev"
    emu.mkdir()
    for i in range(EMULATED_CAMERAS):
        EmulatedCamera(emu, i).plug()
    ctx = Context(tmp, emu, args)
    results: dict[str, Scenario] = {}
    t0 = time.monotonic()
    try:
        for k, name in enumerate(names, 1):
            print(f"[{k}/{len(names)}] {name} ({time.monotonic() - t0:.0f} s so far)", flush=True)
            results[name] = soak(ctx) if name == "soak" else SCENARIOS[name](ctx)
    finally:
        print(f"work folder (logs): {tmp}", flush=True)
    stamp = dt.datetime.now(dt.UTC)
    out_dir = ROOT / "benchmarks" / "results"
    json_path = out_dir / f"perf-{stamp:%Y-%m-%d}.json"
    kept = {} if args.no_write else _load(json_path)
    report = Report(
        date=stamp.strftime("%Y-%m-%d %H:%M UTC"),
        commit=git_commit(),
        machine=mach,
        scenarios={n: results.get(n) or kept[n] for n in ORDER if n in results or n in kept},
    )
    text = render(report, ORDER)
    print()
    print(text)
    if not args.no_write:
        out_dir.mkdir(parents=True, exist_ok=True)
        json_path.write_bytes(msgspec.json.format(msgspec.json.encode(report)))
        update_results_md(ROOT / "benchmarks" / "RESULTS.md", text, SECTION)
        for path in plot(report, out_dir):
            print(f"plot: {path.relative_to(ROOT)}")
    print(f"make bench: {time.monotonic() - t0:.0f} s")
    if not args.keep:
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
