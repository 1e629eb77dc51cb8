"""The examples of docs/capture.md run as written, against an emulated camera."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

DOC = Path(__file__).resolve().parents[2] / "docs" / "capture.md"
BLOCKS = re.findall(r"```python\n(.*?)```", DOC.read_text(), flags=re.S)


def test_the_doc_has_three_examples():
    """Enumeration, one snapshot and a Trio frame loop."""
    assert len(BLOCKS) == 3


@pytest.mark.parametrize("index", range(len(BLOCKS)))
def test_example_runs(index, make_camera, emu_dir, tmp_path, monkeypatch, capsys):
    """Each example runs to completion on the emulated node (device path swapped in)."""
    node = make_camera()
    code = BLOCKS[index]
    code = code.replace('"/dev/video0"', repr(str(node.path)))
    code = code.replace("list_devices()", f"list_devices({str(emu_dir)!r})")
    monkeypatch.chdir(tmp_path)
    exec(compile(code, f"{DOC.name}[{index}]", "exec"), {"__name__": "__doc_example__"})
    out = capsys.readouterr().out
    assert out.strip(), "the example printed nothing"
    if index == 1:
        assert (tmp_path / "snapshot.jpg").read_bytes()[:2] == b"\xff\xd8"
