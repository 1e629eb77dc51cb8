"""The report's plots (PNG, matplotlib): latency against connections, memory against
connections, and memory over the soak."""

from __future__ import annotations

from pathlib import Path

from benchmarks.perf.model import Report

__all__ = ["plot"]


def plot(report: Report, out: Path) -> list[Path]:
    """Write the plots the report has data for into `out`; returns their paths."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    written: list[Path] = []
    stamp = f"camsvc {report.commit}, {report.date}"
    conns = report.scenarios.get("connections")
    steps = conns.series.get("connections", []) if conns else []
    if steps:
        fig, ax = plt.subplots(figsize=(7, 4.2))
        n = [p[0] for p in steps]
        for i, label in ((1, "p50"), (2, "p95"), (3, "p99")):
            ax.plot(n, [p[i] for p in steps], marker="o", label=label)
        ax.axhline(100, color="grey", linestyle="--", linewidth=1, label="100 ms")
        ax.set(
            xscale="log",
            yscale="log",
            xlabel="connections, one get_camera_status a second each",
            ylabel="latency (ms)",
            title=f"Latency against load\n{stamp}",
        )
        ax.legend()
        ax.grid(True, which="both", alpha=0.3)
        written.append(_save(fig, out / "perf-latency.png"))
    mem = report.scenarios.get("memory")
    points = sorted({(p[0], p[1]) for p in (mem.series.get("memory", []) if mem else [])})
    if points or steps:
        fig, ax = plt.subplots(figsize=(7, 4.2))
        if points:
            ax.plot(
                [p[0] for p in points],
                [p[1] for p in points],
                marker="o",
                label="idle authenticated connections",
            )
        if steps:
            ax.plot(
                [p[0] for p in steps],
                [p[4] for p in steps],
                marker="s",
                label="active, 1 request/s each",
            )
        ax.axhline(500e6 / 2**20, color="grey", linestyle="--", linewidth=1, label="500 MB")
        ax.set(
            xlabel="connections",
            ylabel="camsvc RSS (MiB)",
            title=f"Memory against connections\n{stamp}",
        )
        ax.legend()
        ax.grid(True, alpha=0.3)
        written.append(_save(fig, out / "perf-memory.png"))
    soak = report.scenarios.get("soak")
    series = soak.series.get("soak", []) if soak else []
    if series:
        fig, ax = plt.subplots(figsize=(7, 4.2))
        ax.plot([p[0] / 60 for p in series], [p[1] for p in series])
        ax.set(xlabel="minutes", ylabel="camsvc RSS (MiB)", title=f"Soak: memory\n{stamp}")
        ax.grid(True, alpha=0.3)
        written.append(_save(fig, out / "perf-soak.png"))
    return written


def _save(fig: object, path: Path) -> Path:
    import matplotlib.pyplot as plt

    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100, bbox_inches="tight")  # type: ignore[attr-defined]
    plt.close(fig)  # type: ignore[arg-type]
    return path
