"""camsvc.emulator: an emulated V4L2 camera for demo mode and tests, with no hardware.

The device itself is a small C library (`csrc/emulator/`) loaded with `LD_PRELOAD`: files
named `videoN` in the directory `$CAMSVC_EMU_DIR` then behave like UVC cameras to any
program (camsvc, v4l2-ctl, ffmpeg, ustreamer). This package places and controls those
nodes. It is a demo and test aid: the service never uses it unless asked (`serve --demo`).
"""

from camsvc.emulator._control import FAULTS, EmulatedCamera, decode_sequence, library_path

__all__ = ["FAULTS", "EmulatedCamera", "decode_sequence", "library_path"]
