"""The window's state and the calls into the core: model, target, runtime, workload → analysis and plan.

Widgets display what the presenter emits and forward what the person does; the presenter asks the
core (reader, probe/catalog, :func:`advisor.analysis.analyze`, :func:`advisor.plan.make_plan`)
on a background thread through :mod:`advisor.ui.tasks` and emits typed signals with the answers.
It decides nothing itself: every figure comes from the core.

A failure (a corrupt file, an impossible workload, an unreadable hardware file) is emitted as one
line on :attr:`Presenter.errorOccurred` and leaves the previous model and analysis in place.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from PySide6.QtCore import QObject, QTimer, Signal

from advisor.cancel import CancelToken, ProgressFn
from advisor.ui.tasks import Task, TaskRunner
from advisor.units import format_bytes

THIS_MACHINE = "this-machine"
DEVICE_PREFIX = "device:"
FILE_PREFIX = "file:"
# NOTE: 300 ms: long enough that typing "2048" in a spin box re-estimates once, short enough to
# feel live (Qt's own QCompleter and most search boxes debounce at 250–500 ms).
DEBOUNCE_MS = 300
PLAN_AFTER_MS = 60


def device_key(device_id: str) -> str:
    return DEVICE_PREFIX + device_id


def file_key(path: str | Path) -> str:
    return FILE_PREFIX + str(path)


def _read_model(path: str) -> Any:
    from advisor.readers import read_model

    return read_model(path)


def _resolve_target(key: str) -> Any:
    from advisor.analysis import resolve_target

    if key.startswith(DEVICE_PREFIX):
        return resolve_target(device_id=key[len(DEVICE_PREFIX) :])
    if key.startswith(FILE_PREFIX):
        return resolve_target(hardware_file=key[len(FILE_PREFIX) :])
    return resolve_target()


def _analyze(model: Any, hardware: Any, workload: Any, runtime: str | None) -> Any:
    from advisor.analysis import analyze

    return analyze(model, hardware, workload, runtime)


def _make_plan(analysis: Any) -> Any:
    from advisor.plan import make_plan

    return make_plan(analysis)


def _runtimes_for(model: Any) -> tuple[str, ...]:
    from advisor.estimator import runtimes_for

    return tuple(runtimes_for(model))


def _default_workload() -> Any:
    from advisor.estimator.types import Workload

    return Workload()


def _apply_option(option: Any, model: Any, progress: ProgressFn, cancel: CancelToken) -> Path:
    from advisor.plan.apply import apply_option

    return Path(apply_option(option, model, progress=progress, cancel=cancel))


def _scan_sparsity(model: Any, progress: ProgressFn, cancel: CancelToken) -> Any:
    from advisor.plan.sparsity import scan_sparsity

    return scan_sparsity(model, progress=progress, cancel=cancel)


def _measure(model: Any, workload: Any, runtime: str | None, hardware: Any, progress: ProgressFn,
             cancel: CancelToken, on_sample: Callable[[float, int], None]) -> Any:
    from advisor.measure import measure

    phases = {"load": (0.2, "Measuring: loading the model…"), "run": (0.5, "Measuring: running it…"),
              "done": (1.0, "Measured")}

    def on_phase(_t: float, phase: str) -> None:
        if phase in phases:
            progress(*phases[phase])

    return measure(model, workload, runtime, hardware, cancel=cancel, on_sample=on_sample, on_phase=on_phase)


def _write_report(analysis: Any, plan: Any, path: Path, images: dict[str, bytes] | None) -> Path:
    from advisor.report import write_report
    from advisor.ui.pdf import html_to_pdf

    return Path(write_report(analysis, plan, path, images=images, pdf_renderer=html_to_pdf))


@dataclass
class Core:
    """The core calls the presenter makes; tests replace one to slow it down or make it fail."""

    read_model: Callable[[str], Any] = _read_model
    resolve_target: Callable[[str], Any] = _resolve_target
    analyze: Callable[[Any, Any, Any, str | None], Any] = _analyze
    make_plan: Callable[[Any], Any] = _make_plan
    runtimes_for: Callable[[Any], tuple[str, ...]] = _runtimes_for
    default_workload: Callable[[], Any] = _default_workload
    apply_option: Callable[[Any, Any, ProgressFn, CancelToken], Path] = _apply_option
    scan_sparsity: Callable[[Any, ProgressFn, CancelToken], Any] = _scan_sparsity
    write_report: Callable[[Any, Any, Path, dict[str, bytes] | None], Path] = _write_report
    measure: Callable[..., Any] = _measure


class Presenter(QObject):
    """Holds model, target, runtime, workload, analysis and plan; emits what changed.

    Signals:
        modelChanged(object): a new :class:`~advisor.readers.profile.ModelProfile` is current.
        targetChanged(str, object): the target key and its :class:`HardwareProfile`.
        runtimesChanged(object, str): runtimes that can run the model, and the chosen one ("" = default).
        workloadChanged(object): the :class:`~advisor.estimator.types.Workload` now in use.
        analysisChanged(object): a new :class:`~advisor.analysis.Analysis` (its plan follows).
        planChanged(object): the :class:`~advisor.plan.types.Plan` for it (None when the plan failed),
            made after the analysis was shown.
        errorOccurred(str): one readable line; the previous state is kept.
        messageShown(str): information worth a line (a file written).
        busyChanged(bool, str): work started or ended, and what it is.
        progressed(float, str): fraction done of the current work, and what is being done.
        sparsityScanned(object): the result of :meth:`scan_sparsity`.
        reportWritten(str): the path of a report :meth:`export_report` wrote.
        measureStarted(): a measurement on this machine began.
        measureSampled(float, int): seconds since it began, and the run's resident bytes (emitted
            from the worker thread; Qt queues it to the window).
        measured(object): the finished :class:`~advisor.measure.Measurement` (None: cancelled or failed).
    """

    modelChanged = Signal(object)
    targetChanged = Signal(str, object)
    runtimesChanged = Signal(object, str)
    workloadChanged = Signal(object)
    analysisChanged = Signal(object)
    planChanged = Signal(object)
    errorOccurred = Signal(str)
    messageShown = Signal(str)
    busyChanged = Signal(bool, str)
    progressed = Signal(float, str)
    sparsityScanned = Signal(object)
    reportWritten = Signal(str)
    measureStarted = Signal()
    measureSampled = Signal(float, int)
    measured = Signal(object)

    def __init__(self, runner: TaskRunner | None = None, core: Core | None = None,
                 parent: QObject | None = None) -> None:
        super().__init__(parent)
        from advisor import onnx_lite

        # the core runs on worker threads here: big graphs' shape inference (C++, holding the
        # GIL) goes to a child process so that it cannot freeze the window
        onnx_lite.isolate_large_inference()
        self.runner = runner or TaskRunner()
        self.core = core or Core()
        self.model: Any = None
        self.hardware: Any = None
        self.target_key: str = ""
        self.runtime: str = ""
        self.workload: Any = None
        self.analysis: Any = None
        self.plan: Any = None
        self.sparsity: Any = None
        self._tasks: dict[str, Task] = {}
        self._planning = False
        self._shut = False
        self._debounce = QTimer(self)
        self._debounce.setSingleShot(True)
        self._debounce.setInterval(DEBOUNCE_MS)
        self._debounce.timeout.connect(self.reanalyze)

    # --- state the window reads -------------------------------------------------------------

    @property
    def busy(self) -> bool:
        return bool(self._tasks)

    @property
    def planning(self) -> bool:
        """A plan for the current estimate is being made (:attr:`plan` is None until it comes)."""
        return self._planning

    @property
    def runtimes(self) -> tuple[str, ...]:
        return self.core.runtimes_for(self.model) if self.model is not None else ()

    # --- requests ----------------------------------------------------------------------------

    def open_path(self, path: str | Path) -> None:
        """Read a model file or folder; on success it becomes the current model and is analysed."""
        path = str(path)
        self._start("read", f"Reading {Path(path).name}…", lambda _p, _c: self.core.read_model(path),
                    self._on_model_read)

    def set_target(self, key: str) -> None:
        """Choose the target: :data:`THIS_MACHINE`, ``device:<id>`` or ``file:<path>``."""
        self._start("target", "Reading the target…", lambda _p, _c: self.core.resolve_target(key),
                    lambda hw: self._on_target(key, hw), on_failure=lambda exc: self._on_target_failed(key, exc))

    def set_runtime(self, runtime: str) -> None:
        """Choose the runtime ("" = the core's default for this model and target)."""
        if runtime == self.runtime:
            return
        self.runtime = runtime
        self.reanalyze()

    def set_workload(self, workload: Any, *, debounce: bool = True) -> None:
        """Use ``workload``; re-estimate after :data:`DEBOUNCE_MS` of quiet (or now)."""
        self.workload = workload
        if debounce:
            self._debounce.start()
        else:
            self._debounce.stop()
            self.reanalyze()

    def reanalyze(self) -> None:
        """Estimate the current model on the current target, then plan; a newer request wins."""
        self._debounce.stop()
        if self.model is None or self.hardware is None:
            return
        model, hardware = self.model, self.hardware
        workload = self.workload if self.workload is not None else self.core.default_workload()
        runtime = self.runtime if self.runtime in self.core.runtimes_for(model) else ""

        def work(_p: ProgressFn, _c: CancelToken) -> Any:
            return self.core.analyze(model, hardware, workload, runtime or None)

        # the verdict is shown as soon as the estimate is there; the plan follows as its own task
        self._start("analyze", "Estimating…", work, self._on_analysis)

    def refresh_target(self) -> None:
        """Read the current target again (this machine's free memory changes)."""
        self.set_target(self.target_key or THIS_MACHINE)

    def scan_sparsity(self) -> None:
        """Scan the current model's weights for zeros (long; shows progress, can be cancelled)."""
        if self.model is None:
            return
        model = self.model
        self._start("sparsity", "Scanning weights for zeros…",
                    lambda p, c: self.core.scan_sparsity(model, p, c), self._on_sparsity)

    def measure(self) -> None:
        """Run the current model on this machine and measure it (progress; Cancel kills the run)."""
        if self.model is None or self.hardware is None:
            return
        if not getattr(self.hardware, "is_live", False):
            self.errorOccurred.emit("measuring runs the model here: choose This machine as the target first")
            return
        model, hardware = self.model, self.hardware
        workload = self.workload if self.workload is not None else self.core.default_workload()
        runtime = self.runtime if self.runtime in self.core.runtimes_for(model) else ""
        self.measureStarted.emit()
        self._start("measure", "Measuring on this machine…",
                    lambda p, c: self.core.measure(model, workload, runtime or None, hardware, p, c,
                                                   self.measureSampled.emit),
                    self._on_measured, on_failure=self._on_measure_failed,
                    on_cancel=lambda: self.measured.emit(None))

    def _on_measured(self, m: Any) -> None:
        self.measured.emit(m)
        self.messageShown.emit(f"Measured here: peak {format_bytes(m.peak_bytes)}; predicted "
                               f"{format_bytes(m.predicted.peak_bytes)} ({m.error_pct:+.1f} %)")
        self.reanalyze()  # the estimate now learns from it

    def _on_measure_failed(self, exc: BaseException) -> None:
        self.measured.emit(None)
        self.errorOccurred.emit(_one_line(exc))

    def apply(self, option: Any) -> None:
        """Apply a plan option the core can apply; the new file opens as the current model."""
        if self.model is None or not getattr(option, "apply_action", None):
            return
        model = self.model
        self._start("apply", f"Applying: {option.title}…",
                    lambda p, c: self.core.apply_option(option, model, p, c), self._on_applied)

    def export_report(self, path: str | Path, images: dict[str, bytes] | None = None) -> None:
        """Write the current analysis and plan to ``path`` (format from its extension)."""
        if self.analysis is None:
            self.errorOccurred.emit("nothing to report yet: open a model first")
            return
        if self.planning:
            self.errorOccurred.emit("the plan is still being made: export again when it is shown")
            return
        analysis, plan, out = self.analysis, self.plan, Path(path)
        self._start("report", f"Writing {out.name}…",
                    lambda _p, _c: self.core.write_report(analysis, plan, out, images), self._on_report)

    def cancel(self) -> None:
        """Cancel all running work; what was shown before stays."""
        for task in list(self._tasks.values()):
            task.cancel()

    def shutdown(self, wait_ms: int = 5000) -> bool:
        """Stop timers, cancel work and wait for worker threads (on window close)."""
        self._shut = True
        self._debounce.stop()
        self.cancel()
        return self.runner.wait(wait_ms)

    # --- plumbing -----------------------------------------------------------------------------

    def _start(self, slot: str, label: str, fn: Callable[[ProgressFn, CancelToken], Any],
               on_success: Callable[[Any], None],
               on_failure: Callable[[BaseException], None] | None = None,
               on_cancel: Callable[[], None] | None = None) -> None:
        """Run ``fn`` as the ``slot`` task, replacing (cancelling) an older one in that slot."""
        old = self._tasks.pop(slot, None)
        if old is not None:
            old.cancel()
        task = Task(fn, label)
        was_busy = self.busy
        self._tasks[slot] = task
        task.succeeded.connect(on_success)
        task.failed.connect(on_failure or (lambda exc: self.errorOccurred.emit(_one_line(exc))))
        task.progressed.connect(self.progressed)
        if on_cancel is not None:
            task.cancelled.connect(on_cancel)
        task.finished.connect(lambda: self._finished(slot, task))
        if not was_busy:
            self.busyChanged.emit(True, label)
        self.runner.start(task)

    def _finished(self, slot: str, task: Task) -> None:
        if self._tasks.get(slot) is task:
            del self._tasks[slot]
        if not self._tasks:
            self.busyChanged.emit(False, "")

    def _on_model_read(self, model: Any) -> None:
        self.model = model
        self.workload = self.core.default_workload()
        self.analysis = None
        self.plan = None
        self.sparsity = None
        self.modelChanged.emit(model)
        self.workloadChanged.emit(self.workload)
        self._emit_runtimes()
        self.reanalyze()

    def _on_target(self, key: str, hardware: Any) -> None:
        self.target_key = key
        self.hardware = hardware
        self.targetChanged.emit(key, hardware)
        self._emit_runtimes()
        self.reanalyze()

    def _on_target_failed(self, key: str, exc: BaseException) -> None:
        self.errorOccurred.emit(_one_line(exc))
        if self.hardware is None and key != THIS_MACHINE:
            self.set_target(THIS_MACHINE)  # a remembered target that is gone: fall back, never stay empty
        elif self.hardware is not None:
            self.targetChanged.emit(self.target_key, self.hardware)  # let the selector show the kept one

    def _emit_runtimes(self) -> None:
        if self.model is not None:
            runtimes = self.runtimes
            if self.runtime not in runtimes:
                self.runtime = ""
            self.runtimesChanged.emit(runtimes, self.runtime)

    def _on_analysis(self, analysis: Any) -> None:
        self.analysis, self.plan = analysis, None
        self._planning = True
        self.analysisChanged.emit(analysis)

        def planned(plan: Any) -> None:
            if self.analysis is analysis:  # a plan for an estimate since replaced is dropped
                self.plan, self._planning = plan, False
                self.planChanged.emit(plan)

        def failed(exc: BaseException) -> None:  # the verdict stands without a plan
            if self.analysis is analysis:
                self._planning = False
                self.planChanged.emit(None)
                self.errorOccurred.emit(f"no plan: {_one_line(exc)}")

        def cancelled() -> None:
            if self.analysis is analysis:
                self._planning = False
                self.planChanged.emit(None)

        def start() -> None:
            if self.analysis is analysis and not self._shut:  # not replaced (nor closed) meanwhile
                self._start("plan", "Planning…", lambda _p, _c: self.core.make_plan(analysis), planned, failed,
                            cancelled)

        # the window repaints for the new verdict first: a worker busy planning meanwhile would take
        # every other GIL slice and make that repaint twice as long (measured: 47 ms instead of 20)
        QTimer.singleShot(PLAN_AFTER_MS, self, start)

    def _on_sparsity(self, result: Any) -> None:
        self.sparsity = result
        self.sparsityScanned.emit(result)

    def _on_applied(self, path: Path) -> None:
        self.messageShown.emit(f"Wrote {path}; opening it.")
        self.open_path(path)

    def _on_report(self, path: Path) -> None:
        self.messageShown.emit(f"Report written to {path}")
        self.reportWritten.emit(str(path))


def _one_line(exc: BaseException) -> str:
    """The message a person reads: our errors are one line already; others get their type named."""
    from advisor.errors import AdvisorError

    text = " ".join(str(exc).split())
    if isinstance(exc, AdvisorError):
        return text
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__
