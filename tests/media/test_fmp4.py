"""Segments cut short mid-box (a write refused on a full disk) are cut back to whole parts."""

from __future__ import annotations

import io
import shutil
import struct
import subprocess
from pathlib import Path

import pytest

from camsvc.media.fmp4 import complete_length, trim_incomplete_tail

needs_ffmpeg = pytest.mark.skipif(shutil.which("ffmpeg") is None, reason="needs ffmpeg")


def box(kind: bytes, payload: bytes = b"", *, large: bool = False) -> bytes:
    if large:
        return struct.pack(">I4sQ", 1, kind, 16 + len(payload)) + payload
    return struct.pack(">I4s", 8 + len(payload), kind) + payload


INIT = box(b"ftyp", b"isom\0\0\0\1") + box(b"moov", b"\0" * 40)
PART = box(b"moof", b"\0" * 24) + box(b"mdat", b"\1" * 100)


def length(data: bytes) -> int:
    return complete_length(io.BytesIO(data), len(data))


class TestCompleteLength:
    def test_whole_file_is_kept_whole(self):
        data = INIT + PART + PART
        assert length(data) == len(data)

    @pytest.mark.parametrize("cut", [1, 7, 8, 20, len(PART) - 1])
    def test_a_part_cut_anywhere_goes_whole(self, cut):
        """Cut in the moof's header or body, or in the mdat: the part goes, moof and all."""
        assert length(INIT + PART + PART[:cut]) == len(INIT + PART)

    def test_a_moof_without_its_media_goes(self):
        moof = box(b"moof", b"\0" * 24)
        assert length(INIT + PART + moof) == len(INIT + PART)

    def test_64_bit_sizes_and_a_box_to_the_end_of_the_file(self):
        data = INIT + box(b"moof", b"\0" * 24, large=True) + box(b"mdat", b"\1" * 50, large=True)
        assert length(data) == len(data)
        to_end = INIT + box(b"moof", b"\0" * 24) + struct.pack(">I4s", 0, b"mdat") + b"\1" * 30
        assert length(to_end) == len(to_end)

    def test_a_size_smaller_than_a_header_ends_the_walk(self):
        assert length(INIT + struct.pack(">I4s", 3, b"moof") + PART) == len(INIT)

    def test_not_an_mp4(self):
        assert length(b"\x47" * 1880) == 0  # MPEG-TS
        assert length(box(b"moov", b"\0" * 40) + PART) == 0  # no ftyp first
        assert length(INIT[:10]) == 0  # not even its first box


class TestTrim:
    def test_cuts_the_tail_and_reports_the_bytes(self, tmp_path: Path):
        path = tmp_path / "seg.mp4"
        path.write_bytes(INIT + PART + PART[:30])
        assert trim_incomplete_tail(path) == 30
        assert path.read_bytes() == INIT + PART

    def test_leaves_whole_and_foreign_files_alone(self, tmp_path: Path):
        whole, foreign = tmp_path / "whole.mp4", tmp_path / "foreign.mp4"
        whole.write_bytes(INIT + PART)
        foreign.write_bytes(b"not an mp4 at all")
        assert trim_incomplete_tail(whole) == 0 and whole.read_bytes() == INIT + PART
        assert trim_incomplete_tail(foreign) == 0
        assert foreign.read_bytes() == b"not an mp4 at all"


def top_level_boxes(data: bytes) -> list[tuple[bytes, int, int]]:
    out, pos = [], 0
    while pos + 8 <= len(data):
        size, kind = struct.unpack_from(">I4s", data, pos)
        out.append((kind, pos, size))
        pos += size
    return out


def probe_packets(path: Path) -> int | None:
    """Video packets ffprobe reads from `path`, None if it cannot open it."""
    done = subprocess.run(
        ["ffprobe", "-v", "error", "-count_packets", "-select_streams", "v:0",
         "-show_entries", "stream=nb_read_packets", "-of", "csv=p=0", str(path)],
        capture_output=True, text=True, timeout=30, check=False,
    )  # fmt: skip
    if done.returncode != 0:
        return None
    return int(done.stdout.strip().rstrip(","))


@needs_ffmpeg
def test_real_segment_cut_inside_a_moof_plays_again_after_the_trim(tmp_path: Path):
    """FFmpeg's MP4 demuxer refuses a fragmented file whose last moof is cut in its sample
    table (it indexes every box before playing); after the trim it plays every whole part."""
    source = tmp_path / "source.mp4"
    subprocess.run(
        ["ffmpeg", "-v", "error", "-f", "lavfi", "-i", "testsrc=size=160x120:rate=10",
         "-t", "2", "-c:v", "libx264", "-g", "5", "-f", "mp4",
         "-movflags", "+frag_keyframe+empty_moov+default_base_moof", str(source)],
        check=True, timeout=60,
    )  # fmt: skip
    data = source.read_bytes()
    moofs = [(pos, size) for kind, pos, size in top_level_boxes(data) if kind == b"moof"]
    assert len(moofs) >= 3
    last_pos, last_size = moofs[-1]
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(data[: last_pos + last_size - 4])  # in the last entry of its trun
    assert probe_packets(cut) is None

    assert trim_incomplete_tail(cut) == last_size - 4
    assert cut.read_bytes() == data[:last_pos]
    assert 0 < probe_packets(cut) < probe_packets(source)
