"""Cancellation and progress for long core work (sparsity scans, quantizing a copy).

The core polls a :class:`CancelToken` between chunks; the window's Cancel button sets it from
the GUI thread. No Qt here: a plain threading.Event is enough.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

from advisor.errors import AdvisorError

# progress(fraction_done in 0..1, what is being done) — called from the worker thread.
ProgressFn = Callable[[float, str], None]


class Cancelled(AdvisorError):
    """The person cancelled the work; nothing was left half-written."""

    def __init__(self, problem: str = "cancelled") -> None:
        super().__init__(problem)


class CancelToken:
    """A flag one thread sets and another polls."""

    def __init__(self) -> None:
        self._event = threading.Event()

    def cancel(self) -> None:
        self._event.set()

    @property
    def cancelled(self) -> bool:
        return self._event.is_set()

    def raise_if_cancelled(self) -> None:
        """Raise :class:`Cancelled` once :meth:`cancel` was called."""
        if self._event.is_set():
            raise Cancelled()

