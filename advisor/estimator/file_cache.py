"""A small thread-safe LRU cache keyed on a model file's identity (path, mtime, size) plus extras.

The plan re-estimates one model many times (bisection over batch, context, GPU layers); the
skeleton and its shape inference depend only on the file and the input shapes, so both are kept
here. A file changed in place gets a new key (its mtime or size moves).
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable
from pathlib import Path
from typing import Generic, TypeVar

V = TypeVar("V")


def file_key(path: str | Path) -> tuple[str, int, int]:
    """``(resolved path, mtime_ns, size)``; raises OSError when the file cannot be stat'ed."""
    st = Path(path).stat()
    return str(Path(path).resolve()), st.st_mtime_ns, st.st_size


class FileCache(Generic[V]):
    """At most ``size`` values, least recently used dropped first; with ``weigh``, also at most
    ``max_weight`` of their total weight (the newest value is always kept)."""

    def __init__(self, size: int, *, weigh: Callable[[V], int] | None = None, max_weight: int = 0) -> None:
        self._size = size
        self._items: OrderedDict[Hashable, V] = OrderedDict()
        self._lock = threading.Lock()
        self._weigh = weigh
        self._max_weight = max_weight
        self._weights: dict[Hashable, int] = {}

    def get_or_make(self, key: Hashable, make: Callable[[], V]) -> V:
        """The cached value for ``key``, or ``make()``'s (computed outside the lock, then kept)."""
        with self._lock:
            if key in self._items:
                self._items.move_to_end(key)
                return self._items[key]
        value = make()
        weight = self._weigh(value) if self._weigh is not None else 0
        with self._lock:
            self._items[key] = value
            self._weights[key] = weight
            while len(self._items) > self._size or (
                    self._weigh is not None and len(self._items) > 1
                    and sum(self._weights.values()) > self._max_weight):
                old, _ = self._items.popitem(last=False)
                self._weights.pop(old, None)
        return value


class ModelCache(Generic[V]):
    """Facts about one model object (a profile, its tensors), computed once per object and argument.

    A plan prices one profile dozens of times (each option, each search step, each catalog
    instance) and each pricing used to walk all its tensors again (723 for a 70B folder): the
    per-tensor answers — loaded bytes, ggml types, roles — depend only on the profile and a
    weight type, so they are kept here. Keys are the object's identity: profiles are frozen but
    hold dicts (not hashable), and equal-looking profiles from two reads are different models.
    The entry holds the object, so its id cannot be reused while the entry lives.
    """

    def __init__(self, size: int) -> None:
        self._items: FileCache[tuple[object, V]] = FileCache(size)

    def get_or_make(self, owner: object, key: Hashable, make: Callable[[], V]) -> V:
        return self._items.get_or_make((id(owner), key), lambda: (owner, make()))[1]
