"""`devices` and `snapshot`, run in-process through `python -m camsvc.capture`'s main()."""

from __future__ import annotations

from camsvc.capture._cli import main, plan_capture
from camsvc.capture._enum import probe
from tests.capture.helpers import decode


def test_devices_lists_formats_sizes_and_rates(make_camera, emu_dir, capsys):
    """The table names each camera, its formats, sizes and rates; metadata nodes are left out."""
    cam = make_camera(card="Porch")
    meta = make_camera(kind="metadata")
    assert main(["devices", "--dir", str(emu_dir)]) == 0
    out = capsys.readouterr().out
    assert f"{cam.path}  Porch" in out
    assert str(meta.path) not in out
    assert "MJPG" in out and "YUYV" in out and "NV12" in out
    assert "1920x1080 @ 60, 30, 15 fps" in out


def test_devices_in_an_empty_folder(tmp_path, capsys):
    """No cameras is not an error."""
    assert main(["devices", "--dir", str(tmp_path)]) == 0
    assert "no cameras" in capsys.readouterr().out


def test_snapshot_at_a_size_the_camera_lacks(make_camera, tmp_path):
    """320x180 comes from 1280x720 scaled by 4, exactly."""
    node = make_camera()
    out = tmp_path / "snap.jpg"
    assert main(["snapshot", str(node.path), str(out), "--size", "320x180"]) == 0
    assert decode(out.read_bytes()).size == (320, 180)


def test_snapshot_failure_leaves_no_file(emu_dir, tmp_path, capsys):
    """A missing device: exit 1, one line on stderr, no file."""
    out = tmp_path / "none.jpg"
    assert main(["snapshot", str(emu_dir / "video999"), str(out)]) == 1
    err = capsys.readouterr().err
    assert "ENOENT" in err and "Traceback" not in err
    assert not out.exists()


def test_plan_prefers_least_scaling(make_camera):
    """Exact sizes are taken as they are; others come from a multiple the camera offers."""
    info = probe(make_camera().path)
    assert plan_capture(info, (1280, 720)) == ("MJPG", (1280, 720), 1)
    assert plan_capture(info, (960, 540)) == ("MJPG", (1920, 1080), 2)
    assert plan_capture(info, (333, 333)) == (None, (333, 333), 1)
    assert plan_capture(info, None) == (None, None, 1)
