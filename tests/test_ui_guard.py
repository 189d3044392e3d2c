"""A guard for every UI test module: no worker thread and no QTimer may outlive a test.

Modules import :func:`qt_leak_guard` (an autouse fixture) from here, as napari's conftest checks
for dangling threads and timers. Its teardown runs after pytest-qt closed the test's widgets.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import pytest
from PySide6.QtCore import QThreadPool, QTimer

# NOTE: long enough for a worker that already delivered its result to return from run();
# a task still blocked after this is a leak the test must fix.
THREAD_GRACE_MS = 3000


class TimerTracker:
    """Records every QTimer started from Python while installed."""

    def __init__(self) -> None:
        self.started: list[QTimer] = []
        self._orig = QTimer.start

    def install(self, monkeypatch: pytest.MonkeyPatch) -> None:
        orig = self._orig
        started = self.started

        def start(timer: QTimer, *args: object) -> None:
            started.append(timer)
            orig(timer, *args)

        monkeypatch.setattr(QTimer, "start", start)

    def active(self) -> list[str]:
        """Descriptions of tracked timers still running (deleted ones are not running)."""
        out = []
        for timer in self.started:
            try:
                if timer.isActive():
                    parent = timer.parent()
                    out.append(f"QTimer interval={timer.interval()} ms parent={type(parent).__name__}")
            except RuntimeError:  # the C++ object is gone: it cannot fire
                continue
        return out


@pytest.fixture(autouse=True)
def qt_leak_guard(monkeypatch: pytest.MonkeyPatch) -> Iterator[TimerTracker]:
    tracker = TimerTracker()
    tracker.install(monkeypatch)
    yield tracker
    pool = QThreadPool.globalInstance()
    finished = pool.waitForDone(THREAD_GRACE_MS)
    assert finished, f"{pool.activeThreadCount()} worker thread(s) still running after the test"
    assert pool.activeThreadCount() == 0
    leftover = tracker.active()
    for timer in tracker.started:  # stop them so one leak does not cascade into later tests
        with contextlib.suppress(RuntimeError):
            timer.stop()
    assert not leftover, f"timers still running after the test: {leftover}"


def test_guard_sees_a_running_timer(qt_leak_guard: TimerTracker, qapp: object) -> None:
    timer = QTimer()
    timer.start(10_000)
    assert qt_leak_guard.active(), "a started timer must be reported"
    timer.stop()
    assert not qt_leak_guard.active()


def test_guard_ignores_deleted_timers(qt_leak_guard: TimerTracker, qapp: object) -> None:
    from shiboken6 import delete

    timer = QTimer()
    timer.start(10_000)
    delete(timer)
    assert qt_leak_guard.active() == []
