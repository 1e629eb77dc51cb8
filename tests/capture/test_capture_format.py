"""Format negotiation: the requested format when given, else MJPEG > YUYV > NV12."""

from __future__ import annotations

import pytest

from camsvc.capture import Camera, CameraClosed, UnsupportedFormat


def test_default_is_mjpeg_at_640x480(node):
    """With no preference the camera streams MJPEG at the default size."""
    with Camera(node.path) as cam:
        fmt = cam.open()
        assert (fmt.fourcc, fmt.width, fmt.height) == ("MJPG", 640, 480)
        assert fmt.buffers == 4
        assert cam.format == fmt


@pytest.mark.parametrize(
    ("fourcc", "size", "fps"),
    [("YUYV", (1280, 720), 15), ("NV12", (1920, 1080), 60), ("MJPG", (1920, 1080), 30)],
)
def test_requested_format_is_set(node, fourcc, size, fps):
    """A requested format, size and rate are set and reported as the driver set them."""
    with Camera(node.path) as cam:
        fmt = cam.open(*size, fps=fps, fourcc=fourcc, buffers=3)
        assert (fmt.fourcc, fmt.width, fmt.height, fmt.fps) == (fourcc, *size, fps)
        assert fmt.buffers == 3
        if fourcc == "YUYV":
            assert fmt.bytesperline >= size[0] * 2
            assert fmt.sizeimage >= size[0] * size[1] * 2


def test_unlisted_size_reports_the_drivers_choice(node):
    """An odd size is adjusted by the driver, and the format says what it chose."""
    with Camera(node.path) as cam:
        fmt = cam.open(800, 600, fourcc="YUYV")
        assert (fmt.width, fmt.height) in {(640, 480), (1280, 720), (1920, 1080)}


def test_unsupported_fourcc_is_refused(node):
    """A pixel format the device does not offer raises UnsupportedFormat and leaves it closed."""
    cam = Camera(node.path)
    with pytest.raises(UnsupportedFormat):
        cam.open(fourcc="RGB3")
    assert not cam.is_open
    with pytest.raises(CameraClosed):
        cam.fileno()
    cam.open()  # the device is free again
    cam.close()
