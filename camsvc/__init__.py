"""camsvc: a camera service for Linux V4L2 cameras with a WebSocket JSON-RPC 2.0 API."""

__all__ = ["API_VERSION", "__version__"]

__version__ = "0.1.0"
API_VERSION = "1.0.0"
