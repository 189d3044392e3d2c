"""The main window: verdict on top, model and target on the left, breakdown, plan and live memory.

It wires widgets to the :class:`~advisor.ui.presenter.Presenter` and nothing more: what it shows
comes from the presenter's signals (the core's answers), what the person does goes to the
presenter's methods. File dialogs sit in small ``ask_*`` methods that tests replace.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from PySide6.QtCore import Qt, QTimer
from PySide6.QtGui import (
    QAction,
    QCloseEvent,
    QDragEnterEvent,
    QDragLeaveEvent,
    QDropEvent,
    QGuiApplication,
    QKeySequence,
)
from PySide6.QtWidgets import (
    QFileDialog,
    QLabel,
    QMainWindow,
    QProgressBar,
    QPushButton,
    QScrollArea,
    QSplitter,
    QTabWidget,
    QTextBrowser,
    QVBoxLayout,
    QWidget,
)

from advisor.ui.breakdown_chart import BreakdownChart
from advisor.ui.drop_zone import DropZone, local_paths
from advisor.ui.hardware_panel import HardwarePanel
from advisor.ui.live_memory import LiveMemory, SamplerLike
from advisor.ui.memory_plot import MemoryPlot, prediction_for
from advisor.ui.model_panel import ModelPanel, WorkloadEditor
from advisor.ui.plan_table import PlanView
from advisor.ui.presenter import THIS_MACHINE, Presenter, file_key
from advisor.ui.settings import Settings
from advisor.ui.target_bar import TargetBar
from advisor.ui.verdict import MessageBar, VerdictBanner
from advisor.units import format_bytes

WINDOW_SIZE = (1280, 800)
LEFT_WIDTH = 360
MODEL_FILTER = "Models (*.onnx *.safetensors *.gguf *.json);;All files (*)"
REPORT_FILTERS: dict[str, str] = {
    "HTML report (*.html)": ".html",
    "PDF report (*.pdf)": ".pdf",
    "Markdown (*.md)": ".md",
    "JSON (*.json)": ".json",
}
REFRESH_CHOICES_MS: tuple[int, ...] = (250, 500, 1000, 2000, 5000)
LIVE_START_WAIT_MS = 3000
LIVE_AFTER_VERDICT_MS = 20


class MainWindow(QMainWindow):
    """The Memory Advisor window.

    Args:
        presenter: state and core calls (a fresh one when None).
        settings: remembered choices (the user's QSettings when None).
        sampler: the live memory sampler (the real ``MemorySampler`` when None).
        devices: catalog devices for the target list (loaded from the catalog when None).
    """

    def __init__(self, presenter: Presenter | None = None, settings: Settings | None = None,
                 sampler: SamplerLike | None = None, devices: Any = None) -> None:
        super().__init__()
        self.setWindowTitle("Memory Advisor")
        self.setAcceptDrops(True)  # a model dropped anywhere on the window opens (not only on the drop zone)
        self.presenter = presenter or Presenter(parent=self)
        self.settings = settings or Settings()
        self.live = LiveMemory(sampler, self.settings.refresh_ms, parent=self)
        self._closed = False
        self._catalog_error: str | None = None
        self._build_widgets(self._catalog() if devices is None else devices)
        self._build_menus()
        self._connect()
        if not self.restoreGeometry(self.settings.window_geometry):
            self.resize(*WINDOW_SIZE)
        if self._catalog_error:
            self.message_bar.show_error(f"device catalog: {self._catalog_error}")

    # --- construction -----------------------------------------------------------------------

    def _catalog(self) -> Any:
        from advisor.hardware.catalog import load_catalog

        try:
            return load_catalog()
        except Exception as exc:  # a broken catalog must not stop the window
            self._catalog_error = str(exc)
            return ()

    def _build_widgets(self, devices: Any) -> None:
        self.verdict = VerdictBanner()
        self.message_bar = MessageBar()
        self.drop_zone = DropZone()
        self.target_bar = TargetBar(devices)
        self.model_panel = ModelPanel()
        self.workload_editor = WorkloadEditor()
        self.breakdown = BreakdownChart()
        self.plot = MemoryPlot()
        self.hardware_panel = HardwarePanel()
        self.plan_view = PlanView()
        self.notes = QTextBrowser()
        self.notes.setOpenLinks(False)
        self.notes.setAcceptDrops(False)  # a drop on the notes opens the model, as anywhere on the window

        left_inner = QWidget()
        left = QVBoxLayout(left_inner)
        left.setContentsMargins(6, 6, 6, 6)
        for w in (self.drop_zone, self.target_bar, self.model_panel, self.workload_editor):
            left.addWidget(w)
        left.addStretch(1)
        self.left_scroll = QScrollArea()
        self.left_scroll.setWidgetResizable(True)
        self.left_scroll.setWidget(left_inner)
        self.left_scroll.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.left_scroll.setMinimumWidth(300)

        # The breakdown gets the full center width (its bars and legend need it); the plan, the live
        # plot, the hardware and the notes share the area below it as tabs, the plan first.
        self.tabs = QTabWidget()
        self.tabs.addTab(self.plan_view, "Plan")
        self.tabs.addTab(self.plot, "Live memory")
        self.tabs.addTab(self.hardware_panel, "Hardware")
        self.tabs.addTab(self.notes, "Notes")
        self.center = QSplitter(Qt.Orientation.Vertical)
        self.center.addWidget(self.breakdown)
        self.center.addWidget(self.tabs)
        self.center.setStretchFactor(1, 1)
        self.center.setSizes([250, 400])
        self.body = QSplitter(Qt.Orientation.Horizontal)
        self.body.addWidget(self.left_scroll)
        self.body.addWidget(self.center)
        self.body.setStretchFactor(1, 1)
        self.body.setSizes([LEFT_WIDTH, WINDOW_SIZE[0] - LEFT_WIDTH])

        central = QWidget()
        layout = QVBoxLayout(central)
        layout.setContentsMargins(6, 6, 6, 0)
        layout.setSpacing(6)
        layout.addWidget(self.verdict)
        layout.addWidget(self.message_bar)
        layout.addWidget(self.body, 1)
        self.setCentralWidget(central)

        self.busy_label = QLabel()
        self.progress = QProgressBar()
        self.progress.setMaximumWidth(220)
        self.progress.setTextVisible(False)
        self.cancel_button = QPushButton("Cancel")
        bar = self.statusBar()
        bar.addPermanentWidget(self.busy_label)
        bar.addPermanentWidget(self.progress)
        bar.addPermanentWidget(self.cancel_button)
        self._set_busy(False, "")

    def _build_menus(self) -> None:
        file_menu = self.menuBar().addMenu("&File")
        self.open_action = self._action(file_menu, "&Open Model…", self.open_file_dialog, QKeySequence.StandardKey.Open)
        self.open_folder_action = self._action(file_menu, "Open Model &Folder…", self.open_folder_dialog,
                                               "Ctrl+Shift+O")
        self.ollama_action = self._action(file_menu, "Open O&llama Model…", self.open_ollama_dialog)
        self.hub_action = self._action(file_menu, "Open from &Hugging Face…", self.open_hub_dialog)
        self.recent_menu = file_menu.addMenu("Open &Recent")
        file_menu.addSeparator()
        self.export_action = self._action(file_menu, "&Export Report…", self.export_report_dialog, "Ctrl+E")
        file_menu.addSeparator()
        self._action(file_menu, "&Quit", self.close, QKeySequence.StandardKey.Quit)
        tools = self.menuBar().addMenu("&Tools")
        self.sparsity_action = self._action(tools, "Scan Weights for &Zeros", self.presenter.scan_sparsity)
        self._action(tools, "&Read This Machine Again", self.presenter.refresh_target, "F5")
        self.measure_action = self._action(tools, "&Measure on This Machine", self.presenter.measure, "Ctrl+M")
        self.measure_action.setToolTip("Run the model here under a memory cap and compare with the prediction")
        view = self.menuBar().addMenu("&View")
        refresh = view.addMenu("Live Memory &Refresh")
        for ms in REFRESH_CHOICES_MS:
            act = self._action(refresh, f"{ms / 1000:g} s", lambda _=False, m=ms: self.set_refresh_ms(m))
            act.setCheckable(True)
            act.setChecked(ms == self.live.refresh_ms)
            act.setData(ms)
        self.refresh_menu = refresh
        self._fill_recent_menu()
        self._update_actions()

    def _action(self, menu: Any, text: str, slot: Any, shortcut: Any = None) -> QAction:
        action = QAction(text, self)
        if shortcut is not None:
            action.setShortcut(QKeySequence(shortcut))
        action.triggered.connect(slot)
        menu.addAction(action)
        return action

    def _connect(self) -> None:
        p = self.presenter
        p.modelChanged.connect(self._model_changed)
        p.workloadChanged.connect(self.workload_editor.set_workload)
        p.targetChanged.connect(self._target_changed)
        p.runtimesChanged.connect(self.target_bar.set_runtimes)
        p.analysisChanged.connect(self._analysis_changed)
        p.planChanged.connect(self._plan_changed)
        p.errorOccurred.connect(self.message_bar.show_error)
        p.messageShown.connect(self.message_bar.show_info)
        p.busyChanged.connect(self._set_busy)
        p.progressed.connect(self._progressed)
        p.sparsityScanned.connect(self._sparsity_scanned)
        p.measureStarted.connect(self._measure_started)
        p.measureSampled.connect(self.plot.add_run_sample)
        p.measured.connect(self._measured)
        self.drop_zone.pathDropped.connect(self.open_path)
        self.drop_zone.clicked.connect(self.open_file_dialog)
        self.target_bar.targetRequested.connect(p.set_target)
        self.target_bar.hardwareFileRequested.connect(self.hardware_file_dialog)
        self.target_bar.runtimeRequested.connect(self._runtime_requested)
        self.workload_editor.workloadEdited.connect(p.set_workload)
        self.plan_view.copyRequested.connect(self._copy)
        self.plan_view.applyRequested.connect(p.apply)
        self.cancel_button.clicked.connect(p.cancel)
        self.live.sampled.connect(self.plot.add_sample)
        self.live.failed.connect(lambda text: self.statusBar().showMessage(text, 10_000))

    # --- starting -----------------------------------------------------------------------------

    def start(self, path: str | None = None) -> None:
        """Read the remembered target, start the live plot, and open ``path`` if given."""
        self.presenter.runtime = self.settings.runtime
        self.presenter.set_target(self.settings.target or THIS_MACHINE)
        if path:
            # the first live sample (a plot update: ~20 ms) waits until the first verdict is out
            # (or an error, or LIVE_START_WAIT_MS if neither comes: a cancelled read)
            p = self.presenter
            started: list[bool] = []

            def start_live() -> None:
                if started:
                    return
                started.append(True)
                p.analysisChanged.disconnect(soon)
                p.errorOccurred.disconnect(soon)
                if not self._closed:
                    self.live.start()

            def soon(*_: object) -> None:
                # after the verdict's repaint, before the plan task starts (PLAN_AFTER_MS): the
                # first sample builds the plot's items (~20 ms), twice as long beside a busy worker
                QTimer.singleShot(LIVE_AFTER_VERDICT_MS, self, start_live)

            p.analysisChanged.connect(soon)
            p.errorOccurred.connect(soon)
            QTimer.singleShot(LIVE_START_WAIT_MS, self, start_live)
            self.open_path(path)
        else:
            self.live.start()

    def open_path(self, path: str) -> None:
        self.presenter.open_path(path)

    # --- drops anywhere on the window ------------------------------------------------------------

    @property
    def hovering(self) -> bool:
        """Whether a model is being dragged over the window."""
        return self.drop_zone.hovering

    def dragEnterEvent(self, event: QDragEnterEvent) -> None:  # Qt's name
        if local_paths(event.mimeData()):
            event.acceptProposedAction()
            self.drop_zone.set_hover(True)
        else:
            event.ignore()

    def dragLeaveEvent(self, event: QDragLeaveEvent) -> None:  # Qt's name
        self.drop_zone.set_hover(False)
        event.accept()

    def dropEvent(self, event: QDropEvent) -> None:  # Qt's name
        self.drop_zone.set_hover(False)
        paths = local_paths(event.mimeData())
        if not paths:
            event.ignore()
            return
        event.acceptProposedAction()
        self.open_path(self._one_model(paths))

    def _one_model(self, paths: list[str]) -> str:
        """The model several dropped paths make: shards of one set open through the first (the
        reader opens the whole set from it); unrelated files open the first, and the bar says so."""
        if len(paths) == 1:
            return paths[0]
        ordered = sorted(paths)
        if len({str(Path(p).parent) for p in ordered}) == 1 and all(p.endswith(".safetensors") for p in ordered):
            return ordered[0]
        self.message_bar.show_info(f"{len(paths)} items dropped: opened {Path(paths[0]).name}")
        return paths[0]

    def set_refresh_ms(self, ms: int) -> None:
        applied = self.live.set_refresh_ms(ms)
        self.settings.refresh_ms = applied
        for act in self.refresh_menu.actions():
            act.setChecked(act.data() == applied)

    # --- dialogs (tests replace the ask_* methods) --------------------------------------------

    def ask_open_file(self) -> str:
        path, _ = QFileDialog.getOpenFileName(self, "Open a model", self.settings.last_dir, MODEL_FILTER)
        return path

    def ask_open_folder(self) -> str:
        return QFileDialog.getExistingDirectory(self, "Open a model folder", self.settings.last_dir)

    def ask_hardware_file(self) -> str:
        path, _ = QFileDialog.getOpenFileName(self, "Open a hardware file (advisor probe --out)",
                                              self.settings.last_dir, "Hardware profiles (*.json);;All files (*)")
        return path

    def ask_report_path(self) -> str:
        """A save dialog with one filter per format; Qt asks before overwriting an existing file."""
        start = str(Path(self.settings.last_dir or ".") / "memory-report.html")
        path, chosen = QFileDialog.getSaveFileName(self, "Export report", start, ";;".join(REPORT_FILTERS))
        if path and not Path(path).suffix and chosen in REPORT_FILTERS:
            path += REPORT_FILTERS[chosen]
        return path

    def open_file_dialog(self) -> None:
        path = self.ask_open_file()
        if path:
            self.settings.last_dir = str(Path(path).parent)
            self.open_path(path)

    def ask_ollama_model(self, names: list[str]) -> str:
        """Ask which of the local Ollama models to open ("" when cancelled)."""
        from PySide6.QtWidgets import QInputDialog

        name, ok = QInputDialog.getItem(self, "Open Ollama Model", "Model:", names, 0, False)
        return str(name) if ok else ""

    def open_ollama_dialog(self) -> None:
        from advisor.readers.stores import ollama_names, ollama_root

        names = ollama_names()
        if not names:
            self.message_bar.show_error(f"no Ollama models in {ollama_root()} (ollama pull one, or set OLLAMA_MODELS)")
            return
        name = self.ask_ollama_model(names)
        if name:
            self.open_path(f"ollama:{name}")

    def ask_hub_model(self) -> str:
        """Ask for a Hub model id ("" when cancelled)."""
        from PySide6.QtWidgets import QInputDialog

        text, ok = QInputDialog.getText(self, "Open from Hugging Face",
                                        "Model id (ORG/NAME or ORG/NAME@REVISION; only its config and headers "
                                        "are fetched):")
        return str(text).strip() if ok else ""

    def open_hub_dialog(self) -> None:
        repo = self.ask_hub_model()
        if repo:
            self.open_path(repo if repo.startswith("hf:") else f"hf:{repo}")

    def open_folder_dialog(self) -> None:
        path = self.ask_open_folder()
        if path:
            self.settings.last_dir = str(Path(path).parent)
            self.open_path(path)

    def hardware_file_dialog(self) -> None:
        path = self.ask_hardware_file()
        if path:
            self.target_bar.select_key(file_key(path))
            self.presenter.set_target(file_key(path))
        else:
            self.target_bar.select_key(self.presenter.target_key)

    def export_report_dialog(self) -> None:
        path = self.ask_report_path()
        if path:
            self.settings.last_dir = str(Path(path).parent)
            self.export_report(path)

    def export_report(self, path: str | Path) -> None:
        """Write the report with the breakdown chart and the live plot as images."""
        images = {"breakdown": self.breakdown.export_png(), "live": self.plot.export_png()}
        self.presenter.export_report(path, images)

    # --- presenter → widgets ------------------------------------------------------------------

    def _model_changed(self, model: Any) -> None:
        self.message_bar.dismiss()
        self.drop_zone.set_current(model.name)
        self.model_panel.set_model(model)
        self.workload_editor.set_model(model, self.presenter.workload)
        self.setWindowTitle(f"{model.name} — Memory Advisor")
        self.breakdown.measured_bytes = None  # a measurement was of the model before
        self.settings.add_recent_file(model.path)
        self._fill_recent_menu()
        self._update_actions()

    def _target_changed(self, key: str, hardware: Any) -> None:
        self.target_bar.select_key(key, hardware.name)
        self.hardware_panel.set_hardware(hardware)
        self.settings.target = key
        self._update_actions()

    def _runtime_requested(self, runtime: str) -> None:
        self.settings.runtime = runtime
        self.presenter.set_runtime(runtime)

    def _analysis_changed(self, analysis: Any) -> None:
        self.verdict.set_analysis(analysis)
        self.breakdown.set_analysis(analysis)
        self.model_panel.set_resolved(analysis.estimate.resolved_inputs)
        self.target_bar.show_runtime_used(analysis.runtime)
        prediction = prediction_for(analysis)
        if prediction is None:
            self.plot.clear_prediction(
                "the prediction line is drawn when the target is This machine"
                if not analysis.hardware.is_live else None
            )
        else:
            self.plot.set_prediction(prediction.peak_bytes, prediction.low_bytes, prediction.high_bytes,
                                     prediction.memory, prediction.gpu_index, prediction.label,
                                     prediction.required_bytes, prediction.required_high_bytes)
        notes = [*analysis.estimate.notes, *analysis.model.notes]
        if analysis.estimate.unknown_dims:
            notes.append("Dims the workload did not set: " + ", ".join(analysis.estimate.unknown_dims))
        self.notes.setPlainText("\n".join(f"• {n}" for n in notes) or "No notes for this estimate.")
        self.plan_view.setEnabled(False)  # the shown plan is the previous estimate's until the new one comes
        self._update_actions()

    def _plan_changed(self, plan: Any) -> None:
        before = self.presenter.analysis.estimate.required_bytes if self.presenter.analysis is not None else None
        self.plan_view.set_plan(plan, before)
        self.plan_view.setEnabled(True)
        if plan is not None and plan.notes:
            self.notes.append("\n".join(f"• {n}" for n in plan.notes))
        self._update_actions()

    def _measure_started(self) -> None:
        self.tabs.setCurrentWidget(self.plot)
        self.plot.begin_run("measuring…")

    def _measured(self, m: Any) -> None:
        if m is None:
            self.plot.end_run("stopped")
            return
        self.plot.end_run(f"measured {format_bytes(m.peak_bytes)} vs {format_bytes(m.predicted.peak_bytes)} "
                          f"predicted ({m.error_pct:+.1f} %)")
        self.breakdown.set_measured(m.peak_bytes)

    def _sparsity_scanned(self, report: Any) -> None:
        text = (f"{report.fraction:.1%} of scanned weights are exactly zero "
                f"({format_bytes(report.scanned_bytes)} read).")
        self.message_bar.show_info(text + (" " + " ".join(report.notes) if report.notes else ""))

    def _set_busy(self, busy: bool, what: str) -> None:
        self.busy_label.setText(what if busy else "")
        self.progress.setVisible(busy)
        self.progress.setRange(0, 0)  # indeterminate until a task reports a fraction
        self.cancel_button.setVisible(busy)

    def _progressed(self, fraction: float, message: str) -> None:
        self.progress.setRange(0, 1000)
        self.progress.setValue(int(fraction * 1000))
        if message:
            self.busy_label.setText(message)

    def _copy(self, text: str) -> None:
        QGuiApplication.clipboard().setText(text)
        self.statusBar().showMessage("How-to copied to the clipboard", 5000)

    def _fill_recent_menu(self) -> None:
        self.recent_menu.clear()
        for path in self.settings.recent_files:
            act = self.recent_menu.addAction(path)
            act.triggered.connect(lambda _=False, p=path: self.open_path(p))
        self.recent_menu.setEnabled(bool(self.settings.recent_files))
        if self.settings.recent_files:
            self.recent_menu.addSeparator()
            self.recent_menu.addAction("Clear List", self._clear_recent)

    def _clear_recent(self) -> None:
        self.settings.clear_recent_files()
        self._fill_recent_menu()

    def _update_actions(self) -> None:
        self.export_action.setEnabled(self.presenter.analysis is not None and not self.presenter.planning)
        self.sparsity_action.setEnabled(self.presenter.model is not None)
        live = bool(getattr(self.presenter.hardware, "is_live", False))
        self.measure_action.setEnabled(self.presenter.model is not None and live)

    # --- closing ------------------------------------------------------------------------------

    def shutdown(self) -> None:
        """Stop the sampler and background work, and remember the geometry. Safe to call twice."""
        if self._closed:
            return
        self._closed = True
        self.settings.window_geometry = self.saveGeometry()
        self.settings.sync()
        self.live.close()
        self.presenter.shutdown()

    def closeEvent(self, event: QCloseEvent) -> None:  # Qt's name
        self.shutdown()
        super().closeEvent(event)
