"""The fresh processes ``bench/speed.py`` times: one mode per run, one JSON line on stdout.

Modes (``python bench/speed_child.py MODE ARGS...``):

- ``floor``: ``import PySide6.QtWidgets, pyqtgraph``, an empty ``QMainWindow`` shown; the time of its
  first Paint event.
- ``cold PATH``: ``advisor.ui.app.open_window(PATH)``, as ``run_app(PATH)``; the time the verdict banner first paints
  after ``analysisChanged``, and the time the plan view first paints after the first ``planChanged``.
- ``stall PATH``: the same window, shown and painted first; then a 10 ms ``QTimer`` records the gaps
  between its ticks from ``window.start(PATH)`` until 0.3 s after verdict and plan painted.
- ``idle PATH SETTLE_S IDLE_S``: the window with PATH analysed, "Live memory" tab, then "Plan" tab;
  CPU time (``/proc/self/stat``) and ``VmRSS`` over IDLE_S after SETTLE_S each.
- ``plotbase REFRESH_MS POINTS SETTLE_S IDLE_S``: a bare pyqtgraph ``PlotWidget`` whose curve of
  POINTS points gets a new point every REFRESH_MS; the same CPU and RSS figures.
- ``plan PATH [PRIME]``: after ``import advisor.cli`` (and, given PRIME, one untimed plan of it), what
  ``advisor plan --json PATH`` does, phase by phase, twice (first and warm).
- ``read PATH WARMUP_PATH``: ``VmHWM`` above ``VmRSS`` while ``read_onnx`` and ``load_skeleton`` read PATH.

Only the standard library is imported at the top, so every mode pays the same interpreter start and
imports nothing it does not time. Times are ``time.time()`` (wall clock, comparable with the parent's)
or ``time.perf_counter()`` differences.
"""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from PySide6.QtCore import QObject
    from PySide6.QtWidgets import QApplication, QWidget

    from advisor.ui.main_window import MainWindow

REPO = Path(__file__).resolve().parent.parent
WATCHDOG_MS = 110_000  # below the parent's 120 s timeout, so a stuck child still says why
STALL_TICK_MS = 10
STALL_TAIL_S = 0.3  # keep ticking this long after the answer painted (late layout, plot redraws)
STALL_SETTLE_MS = 300  # after the window's first paint, before window.start(path)
EXIT_FAILED = 3


def emit(doc: dict[str, Any]) -> None:
    """Print the result line the parent parses."""
    sys.stdout.write(json.dumps(doc) + "\n")
    sys.stdout.flush()


def fail(message: str) -> None:
    """Say why on stderr and leave at once (Qt objects and worker threads are not waited for)."""
    sys.stderr.write(f"speed_child: {message}\n")
    sys.stderr.flush()
    sys.stdout.flush()
    os._exit(EXIT_FAILED)


def status_bytes(key: str) -> int:
    """A ``kB`` line of ``/proc/self/status`` (``VmRSS``, ``VmHWM``) in bytes."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1]) * 1024
    raise RuntimeError(f"no {key} in /proc/self/status")


def cpu_seconds() -> float:
    """utime + stime of this process, all threads (``man 5 proc``: fields 14 and 15 of stat)."""
    after_comm = Path("/proc/self/stat").read_text().rsplit(")", 1)[1].split()
    ticks = int(after_comm[11]) + int(after_comm[12])  # after_comm[0] is field 3 (state)
    return ticks / os.sysconf("SC_CLK_TCK")


def reset_peak() -> None:
    """Reset ``VmHWM`` to the current RSS (Linux ≥ 4.0, ``man 5 proc``: ``/proc/pid/clear_refs``)."""
    with Path("/proc/self/clear_refs").open("w") as f:
        f.write("5")


def paint_filter(target: QWidget, on_paint: Callable[[], None]) -> QObject:
    """Install (and return, to keep alive) an event filter calling ``on_paint`` on each Paint of ``target``."""
    from PySide6.QtCore import QEvent, QObject

    class PaintFilter(QObject):
        def eventFilter(self, _obj: QObject, event: QEvent) -> bool:  # Qt's name
            if event.type() == QEvent.Type.Paint:
                on_paint()
            return False

    f = PaintFilter()
    target.installEventFilter(f)
    return f


def exit_after(app: QApplication, window: MainWindow | None = None) -> None:
    """Shut the window down (as ``run_app`` does after ``exec``) and leave the event loop."""
    if window is not None:
        window.shutdown()
    app.quit()


class AnswerWatch:
    """Calls ``on_done(verdict_t, plan_t)`` once both parts of the first answer are on screen.

    ``verdict_t``: ``time.time()`` at the verdict banner's first Paint after ``analysisChanged``;
    ``plan_t``: at the first Paint of the plan view (or a widget inside it) after ``planChanged``.
    The presenter emits the two separately (the plan is its own task since ab29662), so each gets
    its own time. Errors the presenter reports are kept; one that leaves the presenter idle before
    any plan means no plan is coming, and the child fails with it; so does a watchdog.
    """

    def __init__(self, window: MainWindow, on_done: Callable[[float, float], None],
                 watchdog_ms: int = WATCHDOG_MS) -> None:
        from PySide6.QtCore import QTimer

        self.window = window
        self.on_done = on_done
        self.analyzed = self.planned = False
        self.verdict_t: float | None = None
        self.plan_t: float | None = None
        self.errors: list[str] = []
        window.presenter.analysisChanged.connect(self._analyzed)
        window.presenter.planChanged.connect(self._planned)
        window.presenter.errorOccurred.connect(self._error)
        self.verdict_filter = paint_filter(window.verdict, self._verdict_painted)
        self.plan_filter: QObject | None = None
        self.watchdog = QTimer()
        self.watchdog.setSingleShot(True)
        self.watchdog.timeout.connect(self._timed_out)
        self.watchdog.start(watchdog_ms)

    def _timed_out(self) -> None:
        p = self.window.presenter
        fail(f"no answer painted after {self.watchdog.interval()} ms: analysis {self.analyzed}, verdict painted "
             f"{self.verdict_t is not None}, plan {self.planned}, plan painted {self.plan_t is not None}, "
             f"presenter busy {p.busy}; errors {self.errors}")

    def _analyzed(self, _analysis: object) -> None:
        self.analyzed = True

    def _planned(self, _plan: object) -> None:
        from PySide6.QtCore import QEvent, QObject
        from PySide6.QtWidgets import QApplication, QWidget

        if self.planned:
            return
        self.planned = True
        view = self.window.plan_view
        watch = self

        class PlanPaint(QObject):  # on the whole application: the table's viewport paints, not the view
            def eventFilter(self, obj: QObject, event: QEvent) -> bool:  # Qt's name
                if (event.type() == QEvent.Type.Paint and isinstance(obj, QWidget)
                        and (obj is view or view.isAncestorOf(obj))):
                    watch._plan_painted()
                return False

        self.plan_filter = PlanPaint()
        app = QApplication.instance()
        assert app is not None
        app.installEventFilter(self.plan_filter)

    def _error(self, text: str) -> None:
        from PySide6.QtCore import QTimer

        self.errors.append(text)
        QTimer.singleShot(0, self._check_idle)

    def _check_idle(self) -> None:
        if not self.planned and not self.window.presenter.busy:
            fail(f"the presenter stopped without a plan: {self.errors}")

    def _verdict_painted(self) -> None:
        if self.analyzed and self.verdict_t is None:
            self.verdict_t = time.time()
            self._maybe_done()

    def _plan_painted(self) -> None:
        if self.plan_t is None:
            self.plan_t = time.time()
            self._maybe_done()

    def _maybe_done(self) -> None:
        from PySide6.QtWidgets import QApplication

        if self.verdict_t is None or self.plan_t is None or not self.watchdog.isActive():
            return
        self.watchdog.stop()
        app = QApplication.instance()
        if app is not None and self.plan_filter is not None:
            app.removeEventFilter(self.plan_filter)
        self.on_done(self.verdict_t, self.plan_t)


def new_window() -> tuple[QApplication, MainWindow]:
    """The app and its window, made as ``run_app`` makes them, shown."""
    from advisor.ui.app import make_application

    app = make_application()
    from advisor.ui.main_window import MainWindow  # after the QApplication, as run_app does

    window = MainWindow()
    window.show()
    return app, window


def run_floor() -> int:
    import PySide6.QtWidgets  # first, as the app does: pyqtgraph then binds to PySide6

    # isort: split
    import pyqtgraph  # noqa: F401 (imported for its cost: part of the floor)
    from PySide6.QtCore import QTimer

    app = PySide6.QtWidgets.QApplication(sys.argv[:1])
    window = PySide6.QtWidgets.QMainWindow()
    done: list[bool] = []

    def painted() -> None:
        if not done:
            done.append(True)
            emit({"painted": time.time()})
            QTimer.singleShot(0, app.quit)

    keep = paint_filter(window, painted)
    window.show()
    app.exec()
    del keep
    return 0


def run_cold(path: str) -> int:
    from PySide6.QtCore import QTimer

    from advisor.ui.app import open_window

    app, window = open_window(path)  # what run_app does

    def done(verdict_t: float, plan_t: float) -> None:
        emit({"verdict": verdict_t, "plan": plan_t})
        QTimer.singleShot(0, lambda: exit_after(app, window))

    watch = AnswerWatch(window, done)
    app.exec()
    del watch
    return 0


def run_stall(path: str) -> int:
    from PySide6.QtCore import Qt, QTimer

    app, window = new_window()
    ticks: list[tuple[float, float]] = []  # (gap s, end of the gap s after start)
    state: dict[str, float] = {}
    timer = QTimer()
    timer.setTimerType(Qt.TimerType.PreciseTimer)
    timer.setInterval(STALL_TICK_MS)

    def tick() -> None:
        now = time.perf_counter()
        ticks.append((now - state["last"], now - state["start"]))
        state["last"] = now

    def report() -> None:
        timer.stop()
        gap, at = max(ticks)
        top = sorted(ticks, reverse=True)[:5]
        emit({"max_gap_ms": gap * 1e3, "at_ms": at * 1e3, "verdict_ms": state["verdict"] * 1e3,
              "plan_ms": state["plan"] * 1e3,
              "ticks": len(ticks), "over_50ms": sum(g > 0.05 for g, _ in ticks),
              "top": [[round(g * 1e3, 1), round(a * 1e3, 1)] for g, a in top]})
        exit_after(app, window)

    def done(verdict_t: float, plan_t: float) -> None:
        # time.time() → this timer's clock: both are seconds, only the origin differs
        offset = time.time() - time.perf_counter()
        state["verdict"] = verdict_t - offset - state["start"]
        state["plan"] = plan_t - offset - state["start"]
        QTimer.singleShot(int(STALL_TAIL_S * 1e3), report)

    def begin() -> None:
        timer.timeout.connect(tick)
        state["start"] = state["last"] = time.perf_counter()
        timer.start()
        window.start(path)  # synchronous part of opening counts: it delays the first tick

    watch = AnswerWatch(window, done)
    shown: list[bool] = []

    def window_painted() -> None:
        if not shown:
            shown.append(True)
            QTimer.singleShot(STALL_SETTLE_MS, begin)

    keep = paint_filter(window, window_painted)
    app.exec()
    del watch, keep
    return 0


def _idle_phase(settle_s: float, idle_s: float, then: Callable[[dict[str, float]], None]) -> None:
    """After ``settle_s``, measure CPU and RSS over ``idle_s`` of the running event loop; pass them on."""
    from PySide6.QtCore import QTimer

    start: dict[str, float] = {}

    def begin() -> None:
        start.update(cpu=cpu_seconds(), wall=time.perf_counter(), rss=status_bytes("VmRSS"))
        QTimer.singleShot(int(idle_s * 1e3), end)

    def end() -> None:
        wall = time.perf_counter() - start["wall"]
        cpu = cpu_seconds() - start["cpu"]
        rss = status_bytes("VmRSS")
        then({"cpu_pct": 100 * cpu / wall, "wall_s": wall, "cpu_s": cpu, "rss_start_mib": start["rss"] / 2**20,
              "rss_drift_mib": (rss - start["rss"]) / 2**20})

    QTimer.singleShot(int(settle_s * 1e3), begin)


def _tab(window: MainWindow, text: str) -> int:
    tabs = window.tabs
    for i in range(tabs.count()):
        if tabs.tabText(i) == text:
            return i
    fail(f"no tab named {text!r}: {[tabs.tabText(i) for i in range(tabs.count())]}")
    return -1


def run_idle(path: str, settle_s: float, idle_s: float) -> int:
    app, window = new_window()
    doc: dict[str, Any] = {"refresh_ms": window.live.refresh_ms}

    def hidden(figures: dict[str, float]) -> None:
        doc["hidden"] = figures
        emit(doc)
        exit_after(app, window)

    def visible(figures: dict[str, float]) -> None:
        doc["visible"] = figures
        window.tabs.setCurrentIndex(_tab(window, "Plan"))
        _idle_phase(settle_s, idle_s, hidden)

    def answered(_verdict_t: float, _plan_t: float) -> None:
        window.tabs.setCurrentIndex(_tab(window, "Live memory"))
        _idle_phase(settle_s, idle_s, visible)

    watch = AnswerWatch(window, answered)
    window.start(path)
    app.exec()
    del watch
    return 0


def run_plotbase(refresh_ms: int, points: int, settle_s: float, idle_s: float) -> int:
    import numpy as np
    import pyqtgraph as pg
    from PySide6.QtCore import Qt, QTimer
    from PySide6.QtWidgets import QApplication

    app = QApplication(sys.argv[:1])
    plot = pg.PlotWidget()
    plot.resize(900, 400)
    curve = plot.plot()
    t = np.arange(points, dtype=float) - points
    v = np.zeros(points)
    step = [0]

    def update() -> None:
        t[:-1], v[:-1] = t[1:], v[1:]
        step[0] += 1
        t[-1], v[-1] = float(step[0]), float(step[0] % 17)
        curve.setData(t, v)

    timer = QTimer()
    timer.setTimerType(Qt.TimerType.PreciseTimer)  # as advisor.ui.live_memory does
    timer.timeout.connect(update)
    timer.start(refresh_ms)
    update()
    plot.show()

    def done(figures: dict[str, float]) -> None:
        emit({"baseline": figures})
        app.quit()

    _idle_phase(settle_s, idle_s, done)
    app.exec()
    return 0


def plan_once(path: str) -> dict[str, float]:
    """What ``advisor plan --json PATH`` does after parsing its arguments (``cli._cmd_plan``), phase by phase."""
    import advisor.cli as cli

    args = cli.build_parser().parse_args(["plan", "--json", path])
    t0 = time.perf_counter()
    from advisor.analysis import analyze, resolve_target  # what cli._analysis imports on its first call
    from advisor.plan import make_plan
    from advisor.readers import read_model

    t1 = time.perf_counter()
    workload = cli.workload_from_args(args)
    model = read_model(args.path)
    t2 = time.perf_counter()
    target = resolve_target(args.device, args.hardware)
    t3 = time.perf_counter()
    analysis = analyze(model, target, workload, args.runtime)
    t4 = time.perf_counter()
    plan = make_plan(analysis, cloud=args.cloud)
    t5 = time.perf_counter()
    text = json.dumps({**analysis.to_dict(), **plan.to_dict()}, indent=2, default=str)  # cli._print_json
    t6 = time.perf_counter()
    return {"import_s": t1 - t0, "read_s": t2 - t1, "target_s": t3 - t2, "analyze_s": t4 - t3,
            "plan_s": t5 - t4, "json_s": t6 - t5, "total_s": t6 - t0, "json_chars": len(text)}


def run_plan(path: str, prime: str | None = None) -> int:
    import advisor.cli  # noqa: F401 (not timed: the import the whole-process baseline also pays)

    if prime is not None:
        plan_once(prime)  # the first call's imports and code paths, paid untimed on another model
    first = plan_once(path)
    emit({"first": first, "warm": plan_once(path)})
    return 0


def run_read(path: str, warmup: str) -> int:
    import onnx  # noqa: F401 (imported before the baseline: the skeleton is an onnx.ModelProto)

    from advisor.readers.onnx_reader import read_onnx
    from advisor.readers.onnx_skeleton import load_skeleton

    read_onnx(Path(warmup))  # lazily imported code paths, once, on a small model
    load_skeleton(Path(warmup))
    before = status_bytes("VmRSS")
    reset_peak()
    t0 = time.perf_counter()
    profile = read_onnx(Path(path))
    t1 = time.perf_counter()
    read_peak = status_bytes("VmHWM")
    del profile
    reset_peak()
    t2 = time.perf_counter()
    skeleton = load_skeleton(Path(path))
    t3 = time.perf_counter()
    skeleton_peak = status_bytes("VmHWM")
    del skeleton
    emit({"rss_before_mib": before / 2**20, "read_onnx_mib": (read_peak - before) / 2**20,
          "load_skeleton_mib": (skeleton_peak - before) / 2**20,
          "added_mib": (max(read_peak, skeleton_peak) - before) / 2**20,
          "read_onnx_s": t1 - t0, "load_skeleton_s": t3 - t2})
    return 0


def main(argv: list[str]) -> int:
    sys.path.insert(0, str(REPO))
    mode, rest = argv[0], argv[1:]
    if mode == "floor":
        return run_floor()
    if mode == "cold":
        return run_cold(rest[0])
    if mode == "stall":
        return run_stall(rest[0])
    if mode == "idle":
        return run_idle(rest[0], float(rest[1]), float(rest[2]))
    if mode == "plotbase":
        return run_plotbase(int(rest[0]), int(rest[1]), float(rest[2]), float(rest[3]))
    if mode == "plan":
        return run_plan(rest[0], rest[1] if len(rest) > 1 else None)
    if mode == "read":
        return run_read(rest[0], rest[1])
    fail(f"unknown mode {mode!r}")
    return EXIT_FAILED


if __name__ == "__main__":
    code = main(sys.argv[1:])
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)  # Qt modes: no interpreter teardown of live widgets and pools (the figures are printed)
