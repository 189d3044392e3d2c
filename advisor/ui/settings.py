"""The window's remembered choices: one typed registry over ``QSettings`` with declared defaults.

After Picard's option registry: every setting is declared once with its key, type and default
(:data:`OPTIONS`), and :class:`Settings` reads and writes them with the right type, whatever the
backend stored (INI files keep everything as strings). Tests pass their own ``QSettings`` on an
INI file under ``tmp_path``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from PySide6.QtCore import QByteArray, QSettings

ORGANIZATION = "memoryadvisor"
APPLICATION = "Memory Advisor"
MAX_RECENT_FILES = 10


@dataclass(frozen=True)
class Option:
    """A declared setting: its key in the store, its Python type and its default."""

    key: str
    kind: type
    default: Any


# NOTE: refresh_ms 1000: one sample a second is what task managers default to (GNOME System
# Monitor, Windows Task Manager); the live plot offers 250 ms .. 5 s.
OPTIONS: dict[str, Option] = {
    o.key: o
    for o in (
        Option("target", str, "this-machine"),  # "this-machine" | "device:<id>" | "file:<path>"
        Option("runtime", str, ""),  # "" = the core's default for model and target
        Option("refresh_ms", int, 1000),
        Option("recent_files", list, []),
        Option("window/geometry", QByteArray, QByteArray()),
        Option("window/state", QByteArray, QByteArray()),
        Option("last_dir", str, ""),
    )
}


class Settings:
    """Typed access to :data:`OPTIONS` in a ``QSettings`` store."""

    def __init__(self, store: QSettings | None = None) -> None:
        self.store = store if store is not None else QSettings(ORGANIZATION, APPLICATION)

    @classmethod
    def at_path(cls, path: str | Path) -> Settings:
        """Settings kept in an INI file (tests, portable installs)."""
        return cls(QSettings(str(path), QSettings.Format.IniFormat))

    def get(self, key: str) -> Any:
        """The stored value of ``key`` converted to its declared type, or its default."""
        option = OPTIONS[key]
        raw = self.store.value(key, None)
        if raw is None:
            return _copy(option.default)
        try:
            return _convert(raw, option.kind)
        except (TypeError, ValueError):
            return _copy(option.default)

    def set(self, key: str, value: Any) -> None:
        """Store ``value`` for a declared ``key``."""
        option = OPTIONS[key]
        if option.kind is list:
            value = list(value)
        self.store.setValue(key, value)

    def sync(self) -> None:
        self.store.sync()

    # Typed shortcuts for the options the window uses.
    @property
    def target(self) -> str:
        return str(self.get("target"))

    @target.setter
    def target(self, value: str) -> None:
        self.set("target", value)

    @property
    def runtime(self) -> str:
        return str(self.get("runtime"))

    @runtime.setter
    def runtime(self, value: str) -> None:
        self.set("runtime", value)

    @property
    def refresh_ms(self) -> int:
        return int(self.get("refresh_ms"))

    @refresh_ms.setter
    def refresh_ms(self, value: int) -> None:
        self.set("refresh_ms", int(value))

    @property
    def recent_files(self) -> list[str]:
        """The recent models that still exist (absolute paths; entries gone from disk are dropped)."""
        return [str(p) for p in self.get("recent_files") if _is_store_name(str(p)) or Path(str(p)).exists()]

    def add_recent_file(self, path: str | Path) -> list[str]:
        """Put ``path`` first in the recent list (once, made absolute so it opens from any folder),
        keep :data:`MAX_RECENT_FILES`; return it."""
        path = str(path) if _is_store_name(str(path)) else str(Path(path).absolute())
        files = [path] + [p for p in self.recent_files if p != path]
        files = files[:MAX_RECENT_FILES]
        self.set("recent_files", files)
        return files

    def clear_recent_files(self) -> None:
        self.set("recent_files", [])

    @property
    def window_geometry(self) -> QByteArray:
        return QByteArray(self.get("window/geometry"))

    @window_geometry.setter
    def window_geometry(self, value: QByteArray) -> None:
        self.set("window/geometry", value)

    @property
    def window_state(self) -> QByteArray:
        return QByteArray(self.get("window/state"))

    @window_state.setter
    def window_state(self, value: QByteArray) -> None:
        self.set("window/state", value)

    @property
    def last_dir(self) -> str:
        return str(self.get("last_dir"))

    @last_dir.setter
    def last_dir(self, value: str) -> None:
        self.set("last_dir", value)


def _copy(value: Any) -> Any:
    return list(value) if isinstance(value, list) else value


def _convert(raw: Any, kind: type) -> Any:
    """Turn what the backend returned into ``kind`` (INI files give strings, one-item lists as str)."""
    if kind is list:
        if isinstance(raw, str):
            return [raw] if raw else []
        return [str(x) for x in raw]
    if kind is int:
        return int(raw)
    if kind is bool:
        return raw.lower() in ("1", "true", "yes") if isinstance(raw, str) else bool(raw)
    if kind is QByteArray:
        return raw if isinstance(raw, QByteArray) else QByteArray(raw)
    return kind(raw)


def _is_store_name(entry: str) -> bool:
    """A model named in a store (``ollama:llama3:8b``, ``hf:org/name``), not a path."""
    return entry.startswith(("ollama:", "hf:"))
