"""Every camsvc module says what it exports (STYLE §1): `__all__` exists and names real objects."""

from __future__ import annotations

import importlib
import pkgutil

import pytest

import camsvc

# Entry points and the generated C modules have no importable API of their own.
_SKIP = {
    "camsvc.__main__",
    "camsvc.capture.__main__",
    "camsvc.streaming.standin.__main__",
    "camsvc._capture",
    "camsvc._fanout",
    "camsvc.emulator._preload",
}


def _modules() -> list[str]:
    names = ["camsvc"]
    for info in pkgutil.walk_packages(camsvc.__path__, "camsvc."):
        if info.name not in _SKIP:
            names.append(info.name)
    return names


@pytest.mark.parametrize("name", _modules())
def test_module_declares_exports(name):
    """`__all__` is present, sorted-unique, and every name in it exists."""
    module = importlib.import_module(name)
    exported = getattr(module, "__all__", None)
    assert exported is not None, f"{name} has no __all__"
    assert len(set(exported)) == len(exported), f"{name}.__all__ repeats a name"
    missing = [n for n in exported if not hasattr(module, n)]
    assert not missing, f"{name}.__all__ names missing objects: {missing}"
