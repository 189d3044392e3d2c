"""The one way the core reaches the data shipped in ``resources/`` (inside the wheel)."""

from __future__ import annotations

from importlib import resources
from importlib.resources.abc import Traversable


def resource(*parts: str) -> Traversable:
    """Return a handle on ``resources/<parts...>``, wherever the package is installed."""
    node: Traversable = resources.files("advisor_resources")
    for part in parts:
        node = node.joinpath(part)
    return node


def read_text(*parts: str) -> str:
    """Read a text resource as UTF-8."""
    return resource(*parts).read_text(encoding="utf-8")


def read_bytes(*parts: str) -> bytes:
    """Read a binary resource."""
    return resource(*parts).read_bytes()
