"""structlog set-up: JSON lines in production, console format on a terminal.

Configured once by the CLI. A processor blanks any value whose key looks like a
credential, so no token or key reaches a log line even by mistake.
"""

from __future__ import annotations

import logging
import sys
from typing import Any

import structlog

__all__ = ["configure_logging", "redact_secrets"]

_SECRET_KEYS = frozenset(
    {
        "token",
        "auth_token",
        "api_key",
        "key",
        "secret",
        "jwt_secret_key",
        "password",
        "authorization",
    }
)


def redact_secrets(_logger: Any, _name: str, event: dict[str, Any]) -> dict[str, Any]:
    """Replace the value of every credential-like key with `***`."""
    for key in event.keys() & _SECRET_KEYS:
        event[key] = "***"
    return event


def configure_logging(level: str = "info", fmt: str = "json", stream: Any = None) -> None:
    """Configure structlog for the process (call once, at start)."""
    stream = stream or sys.stderr
    if fmt == "console" or (fmt == "auto" and stream.isatty()):
        renderer: Any = structlog.dev.ConsoleRenderer()
    else:
        renderer = structlog.processors.JSONRenderer()
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            redact_secrets,
            structlog.processors.format_exc_info,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(
            logging.getLevelNamesMapping()[level.upper()]
        ),
        logger_factory=structlog.PrintLoggerFactory(stream),
        cache_logger_on_first_use=True,
    )
