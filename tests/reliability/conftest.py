"""Hypothesis settings for the reliability suite: no example database on disk, bounded runs."""

from __future__ import annotations

from hypothesis import settings

settings.register_profile("camsvc", database=None, print_blob=True)
settings.load_profile("camsvc")


def pytest_configure(config: object) -> None:
    """Register the `long` marker (`make test-long` selects it)."""
    config.addinivalue_line(  # type: ignore[attr-defined]
        "markers", "long: has a long variant run by `make test-long` (CAMSVC_LONG=1)"
    )
