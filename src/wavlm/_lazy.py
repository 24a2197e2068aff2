"""Lazy package exports: a package lists `public name -> submodule` and resolves each name on first use, so that
importing the package stays cheap (no torch, numpy or soundfile until a name that needs them is touched)."""
from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any


def lazy_getattr(package: str, exports: dict[str, str], namespace: dict[str, Any]) -> Callable[[str], Any]:
    """A module-level `__getattr__` for `package`: imports `package.<exports[name]>`, caches the value in the
    package's `namespace` (its globals()) and returns it; an unknown name is an AttributeError naming the package."""

    def __getattr__(name: str) -> Any:
        module = exports.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(f"{package}.{module}"), name)
        namespace[name] = value
        return value

    return __getattr__
