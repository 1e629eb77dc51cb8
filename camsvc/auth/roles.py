"""Roles and what each may do (API.md §5.2, §5.5)."""

from __future__ import annotations

import enum

__all__ = ["Role"]


class Role(enum.IntEnum):
    """Ordered roles: a role may call everything a lower one may. NONE is the unauthenticated."""

    NONE = 0
    VIEWER = 1
    OPERATOR = 2
    ADMIN = 3

    @property
    def label(self) -> str:
        """The lower-case name used on the wire."""
        return self.name.lower()

    @property
    def permissions(self) -> list[str]:
        """The `permissions` list of an AuthResult."""
        return ["view", "control", "admin"][: int(self)]

    @classmethod
    def parse(cls, name: str) -> Role:
        """`viewer`/`operator`/`admin` to a Role; ValueError otherwise."""
        if name not in ("viewer", "operator", "admin"):
            raise ValueError(f"unknown role {name!r}")
        return cls[name.upper()]
