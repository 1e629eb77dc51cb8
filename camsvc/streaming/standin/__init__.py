"""A MediaMTX stand-in for tests and demo mode: MediaMTX v1.20.1's v3 API and real RTSP media.

Runs as `python -m camsvc.streaming.standin --api-port P --rtsp-port R --recordings DIR`
or in-process (`StandIn(...).run`). It answers the API with MediaMTX's semantics and error
bodies, relays RTSP publishers to RTSP readers, runs the path hooks (runOnInit,
runOnDemand, runOnReady/runOnOnline, runOnRead, runOnRecordSegmentComplete, ...) with
MediaMTX's environment, and records fMP4 segments with ffmpeg. See docs/mediamtx.md for
what it does not do. camsvc itself must never depend on it.
"""

from camsvc.streaming.standin._path import PathState
from camsvc.streaming.standin._server import VERSION, StandIn, StandInPorts

__all__ = ["VERSION", "PathState", "StandIn", "StandInPorts"]
