"""The public names of camsvc.streaming's modules are pinned."""

from __future__ import annotations

import importlib

import pytest

EXPORTS = {
    "camsvc.streaming.mediamtx": {
        "MAX_ATTEMPTS",
        "Info",
        "MediaMTXBadRequest",
        "MediaMTXClient",
        "MediaMTXError",
        "MediaMTXNotFound",
        "MediaMTXProtocolError",
        "MediaMTXRequestError",
        "MediaMTXUnavailable",
        "OkReply",
        "Path",
        "PathAlreadyExists",
        "PathCache",
        "PathConf",
        "PathConfList",
        "PathConfPatch",
        "PathList",
        "PathReader",
        "PathSource",
        "Recording",
        "RecordingList",
        "RecordingSegment",
        "map_error",
        "to_camsvc_error",
    },
    "camsvc.streaming.recording_messages": {
        "RecordingError",
        "RecordingProgress",
        "RecordingStart",
        "RecordingStarted",
        "RecordingStatusUpdate",
        "RecordingStop",
        "RecordingStopped",
    },
    "camsvc.streaming.paths": {
        "MANAGED_NAME",
        "AddPath",
        "DeletePath",
        "PatchPath",
        "PathAction",
        "PathHooks",
        "PathManager",
        "duration_s",
        "plan",
        "record_path",
        "wanted_conf",
    },
    "camsvc.streaming.hooks": {"SOCKET_MODE", "HookServer"},
    "camsvc.streaming.hook_protocol": {
        "DESCRIPTION",
        "EX_UNAVAILABLE",
        "OnDemand",
        "Reply",
        "Request",
        "SegmentComplete",
        "add_hook_arguments",
        "decode_reply",
        "decode_request",
        "default_socket_path",
        "encode",
        "hook_command",
        "hook_program",
        "install_signal_handlers",
        "main",
        "run_hook",
    },
    "camsvc.streaming.hook_client": {
        "EX_UNAVAILABLE",
        "HOOKS",
        "HookError",
        "Stop",
        "install_signal_handlers",
        "main",
        "run",
    },
    "camsvc.streaming.supervisor": {"RESTART_PAUSE_S", "MediaMTXSupervisor", "generated_config"},
    "camsvc.streaming.standin": {"VERSION", "PathState", "StandIn", "StandInPorts"},
    "camsvc.streaming.watchdog": {"MediaMTXWatchdog"},
    "camsvc.streaming.rtsp_probe": {
        "MAX_REPLY_BYTES",
        "ProbeResult",
        "RtspProtocolError",
        "RtspReply",
        "authorization",
        "describe_request",
        "h264_resolution",
        "parse_reply",
        "probe",
        "request_uri",
        "sdp_capabilities",
    },
    "camsvc.streaming.external": {
        "EXTERNAL_NAME",
        "Candidate",
        "DiscoveryOptions",
        "DiscoveryResult",
        "ExternalStream",
        "ExternalStreamList",
        "ExternalStreams",
        "IntervalUpdated",
        "StreamAdded",
        "StreamRemoved",
        "StreamType",
        "candidates",
        "external_conf",
        "redact",
    },
    "camsvc.streaming.external_live": {"ExternalLive"},
    "camsvc.streaming.standin._source": {"KEEPALIVE_S", "RtspSource", "SourceError", "rewrite_sdp"},
}


@pytest.mark.parametrize("module", sorted(EXPORTS))
def test_exports(module: str) -> None:
    """`__all__` is exactly the pinned set and every name exists."""
    mod = importlib.import_module(module)
    assert set(mod.__all__) == EXPORTS[module]
    for name in mod.__all__:
        assert hasattr(mod, name), name
