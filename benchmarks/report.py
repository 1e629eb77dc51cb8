"""Writing benchmark results: each benchmark owns one `## <heading>` section of RESULTS.md."""

from __future__ import annotations

import re
from pathlib import Path

__all__ = ["update_results_md"]


def update_results_md(path: Path, body: str, heading: str) -> None:
    """Replace (or append) the `## <heading>` section of `path`, keeping every other section."""
    text = path.read_text() if path.exists() else "# Benchmark results\n"
    lines = text.splitlines()
    start = next((i for i, ln in enumerate(lines) if ln.strip() == f"## {heading}"), None)
    block = [f"## {heading}", "", *body.rstrip("\n").splitlines(), ""]
    if start is None:
        while lines and not lines[-1].strip():
            lines.pop()
        lines += ["", *block]
    else:
        end = next(
            (i for i in range(start + 1, len(lines)) if re.match(r"^## (?!#)", lines[i])),
            len(lines),
        )
        lines[start:end] = block
    path.write_text("\n".join(lines).rstrip("\n") + "\n")
