"""Hypothesis settings for the reliability suite: no example database on disk, bounded runs."""

from __future__ import annotations

from hypothesis import settings

settings.register_profile("camsvc", database=None, print_blob=True)
settings.load_profile("camsvc")
