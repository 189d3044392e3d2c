"""Run long core work off the GUI thread and deliver the answer back on it.

The one helper for background work (after Picard's ``util/thread.py``): a :class:`Task` wraps a
function ``fn(progress, cancel) -> result``; a :class:`TaskRunner` runs it on a ``QThreadPool``;
the result, the exception, and progress reports come back as signals on the GUI thread through a
relay object that lives there (queued connections). Workers never touch widgets, nor the Task.

Tests pass :class:`ImmediateRunner`, which runs the function at once on the calling thread, so
they need neither threads nor an event loop to see a result.

Cancel: :meth:`Task.cancel` sets the :class:`~advisor.cancel.CancelToken` the function polls
(sparsity scans and quantizing check it between chunks) and, for work that cannot stop half way
(reading a header, an estimate), drops the result: the window stops waiting at once.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from PySide6.QtCore import QObject, Qt, QThreadPool, Signal, Slot

from advisor.cancel import Cancelled, CancelToken, ProgressFn

TaskFn = Callable[[ProgressFn, CancelToken], Any]


class Task(QObject):
    """One piece of background work and its outcome, delivered on the GUI thread.

    Exactly one of ``succeeded``, ``failed`` or ``cancelled`` is emitted, then ``finished``.
    A task is only ever touched on the GUI thread: the worker runs ``fn`` with the token and
    reports through the runner's relay, so no Qt object is used (or freed) off the GUI thread.

    Signals:
        progressed(float, str): fraction done in 0..1 and what is being done.
        succeeded(object): the function's return value.
        failed(object): the exception it raised (never :class:`Cancelled`).
        cancelled(): the person cancelled; any result was dropped.
        finished(): after any of the three.
    """

    progressed = Signal(float, str)
    succeeded = Signal(object)
    failed = Signal(object)
    cancelled = Signal()
    finished = Signal()

    def __init__(self, fn: TaskFn, label: str = "") -> None:
        super().__init__()
        self.fn = fn
        self.label = label
        self.token = CancelToken()
        self.done = False

    def cancel(self) -> None:
        """Ask the work to stop; the window stops waiting now and ignores any late result."""
        if self.done:
            return
        self.token.cancel()
        self._finish_cancelled()

    def run_here(self) -> None:
        """Run ``fn`` on this thread and deliver the outcome at once (no event loop needed)."""
        ok, payload = _call(self.fn, self.deliver_progress, self.token)
        self.deliver(ok, payload)

    def deliver_progress(self, fraction: float, message: str) -> None:
        if not self.done:
            self.progressed.emit(float(fraction), message)

    def deliver(self, ok: bool, payload: object) -> None:
        """Emit the outcome (once); a cancelled task drops it."""
        if self.done:
            return
        if self.token.cancelled or isinstance(payload, Cancelled):
            self._finish_cancelled()
            return
        self.done = True
        if ok:
            self.succeeded.emit(payload)
        else:
            self.failed.emit(payload)
        self.finished.emit()

    def _finish_cancelled(self) -> None:
        self.done = True
        self.cancelled.emit()
        self.finished.emit()


def _call(fn: TaskFn, progress: ProgressFn, token: CancelToken) -> tuple[bool, object]:
    try:
        return True, fn(progress, token)
    except Exception as exc:  # any failure is handed to the GUI as a value
        return False, exc


class _Relay(QObject):
    """Carries reports from worker threads to the GUI thread (queued signals, by task id).

    One lives for the whole process (created on the GUI thread by the first runner), so a worker
    never holds the last reference to a Qt object that could then be freed on its thread.
    """

    report = Signal(int, float, str)
    done = Signal(int, bool, object)

    def __init__(self) -> None:
        super().__init__()
        self.tasks: dict[int, Task] = {}
        self.next_id = 0
        self.report.connect(self._on_report, Qt.ConnectionType.QueuedConnection)
        self.done.connect(self._on_done, Qt.ConnectionType.QueuedConnection)

    @Slot(int, float, str)
    def _on_report(self, task_id: int, fraction: float, message: str) -> None:
        task = self.tasks.get(task_id)
        if task is not None:
            task.deliver_progress(fraction, message)

    @Slot(int, bool, object)
    def _on_done(self, task_id: int, ok: bool, payload: object) -> None:
        task = self.tasks.pop(task_id, None)
        if task is not None:
            task.deliver(ok, payload)


_relay: _Relay | None = None


def _get_relay() -> _Relay:
    global _relay  # one relay per process, made lazily on the GUI thread
    if _relay is None:
        _relay = _Relay()
    return _relay


class TaskRunner:
    """Runs tasks on a thread pool (the global one unless told otherwise)."""

    def __init__(self, pool: QThreadPool | None = None) -> None:
        self.pool = pool or QThreadPool.globalInstance()

    def start(self, task: Task) -> Task:
        """Start ``task``; the relay keeps it alive until it has delivered its outcome."""
        relay = _get_relay()
        relay.next_id += 1
        task_id = relay.next_id
        relay.tasks[task_id] = task
        fn, token = task.fn, task.token  # the worker gets these, never the Task itself

        def progress(fraction: float, message: str) -> None:
            relay.report.emit(task_id, float(fraction), message)

        def run() -> None:
            ok, payload = _call(fn, progress, token)
            relay.done.emit(task_id, ok, payload)

        self.pool.start(run)
        return task

    def wait(self, msecs: int = 5000) -> bool:
        """Block until every started function has returned (used on close and in tests)."""
        return bool(self.pool.waitForDone(msecs))


class ImmediateRunner(TaskRunner):
    """Runs each task at once on the calling thread (for tests: no threads, no event loop)."""

    def start(self, task: Task) -> Task:
        task.run_here()
        return task

    def wait(self, msecs: int = 5000) -> bool:
        del msecs
        return True
