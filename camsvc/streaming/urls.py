"""Stream URLs of a device (API.md §6, Streams)."""

from __future__ import annotations

import msgspec

from camsvc.config import MediaMTXConfig

__all__ = ["Streams", "host_of", "stream_urls"]


class Streams(msgspec.Struct, frozen=True):
    """Where readers find a device's stream."""

    rtsp: str
    webrtc: str
    hls: str


def host_of(host_header: str) -> str:
    """The host part of a `Host` header: `[::1]:8002` -> `[::1]`, `cam:8002` -> `cam`."""
    if host_header.startswith("["):
        return host_header.split("]", 1)[0] + "]"
    return host_header.rsplit(":", 1)[0] if host_header.count(":") == 1 else host_header


def stream_urls(device: str, cfg: MediaMTXConfig, host_header: str = "") -> Streams:
    """RTSP, WebRTC (WHEP) and HLS URLs for `device`, for a client that used `host_header`."""
    host = cfg.host_for_urls or host_of(host_header) or "localhost"
    return Streams(
        rtsp=f"rtsp://{host}:{cfg.rtsp_port}/{device}",
        webrtc=f"http://{host}:{cfg.webrtc_port}/{device}/whep",
        hls=f"http://{host}:{cfg.hls_port}/{device}/index.m3u8",
    )
