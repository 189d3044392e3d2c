"""The background-task helper: results, errors, progress and cancel arrive on the GUI thread."""

from __future__ import annotations

import threading
from typing import Any

import pytest
from PySide6.QtCore import QThread
from pytestqt.qtbot import QtBot

from advisor.cancel import CancelToken, ProgressFn
from advisor.errors import ModelFormatError
from advisor.ui.tasks import ImmediateRunner, Task, TaskRunner
from tests.test_ui_guard import qt_leak_guard  # noqa: F401 - autouse fixture


def test_result_arrives_on_the_gui_thread(qtbot: QtBot) -> None:
    seen: dict[str, Any] = {}

    def work(progress: ProgressFn, cancel: CancelToken) -> int:
        seen["worker"] = threading.current_thread() is threading.main_thread()
        progress(0.5, "half")
        return 42

    task = Task(work)
    progress: list[tuple[float, str]] = []
    task.progressed.connect(lambda f, m: progress.append((f, m)))
    task.succeeded.connect(lambda r: seen.update(result=r, gui=QThread.currentThread() is task.thread()))
    with qtbot.waitSignal(task.finished, timeout=5000), qtbot.assertNotEmitted(task.failed):
        TaskRunner().start(task)
    assert seen == {"worker": False, "result": 42, "gui": True}
    assert progress == [(0.5, "half")]


def test_exception_is_delivered_not_raised(qtbot: QtBot) -> None:
    def work(_p: ProgressFn, _c: CancelToken) -> None:
        raise ModelFormatError("truncated", "m.onnx")

    task = Task(work)
    with qtbot.waitSignal(task.failed, timeout=5000) as blocker, qtbot.assertNotEmitted(task.succeeded):
        TaskRunner().start(task)
    assert isinstance(blocker.args[0], ModelFormatError)
    assert str(blocker.args[0]) == "m.onnx: truncated"


def test_cancel_stops_waiting_and_drops_a_late_result(qtbot: QtBot) -> None:
    started, release = threading.Event(), threading.Event()

    def work(_p: ProgressFn, cancel: CancelToken) -> str:
        started.set()
        release.wait(5)
        return "late"

    task = Task(work)
    runner = TaskRunner()
    runner.start(task)
    assert started.wait(5)
    with qtbot.waitSignal(task.cancelled, timeout=1000), qtbot.assertNotEmitted(task.succeeded):
        task.cancel()
    assert task.token.cancelled
    with qtbot.assertNotEmitted(task.succeeded, wait=100):
        release.set()
        assert runner.wait(5000)


def test_cancel_token_stops_cooperative_work(qtbot: QtBot) -> None:
    started = threading.Event()
    steps: list[int] = []

    def work(_p: ProgressFn, cancel: CancelToken) -> None:
        started.set()
        for i in range(10_000):
            cancel.raise_if_cancelled()
            steps.append(i)
            threading.Event().wait(0.001)

    task = Task(work)
    runner = TaskRunner()
    runner.start(task)
    assert started.wait(5)
    with qtbot.waitSignal(task.cancelled, timeout=1000):
        task.cancel()
    assert runner.wait(5000)
    assert len(steps) < 10_000


def test_immediate_runner_needs_no_event_loop() -> None:
    task = Task(lambda _p, _c: "now")
    got: list[Any] = []
    task.succeeded.connect(got.append)
    ImmediateRunner().start(task)
    assert got == ["now"]
    assert task.done


@pytest.mark.parametrize("cancel_first", [True, False])
def test_exactly_one_outcome(cancel_first: bool) -> None:
    task = Task(lambda _p, _c: 1)
    outcomes: list[str] = []
    task.succeeded.connect(lambda _r: outcomes.append("ok"))
    task.cancelled.connect(lambda: outcomes.append("cancelled"))
    task.finished.connect(lambda: outcomes.append("finished"))
    if cancel_first:
        task.cancel()
    ImmediateRunner().start(task)
    task.cancel()
    assert outcomes == (["cancelled", "finished"] if cancel_first else ["ok", "finished"])
