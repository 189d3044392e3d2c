"""The window end to end (offscreen): a real drop opens a model, panels, verdict, plan, plot, errors."""

from __future__ import annotations

import itertools
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from PySide6.QtCore import QMimeData, QPoint, QPointF, Qt, QUrl
from PySide6.QtGui import QDragEnterEvent, QDropEvent
from PySide6.QtWidgets import QApplication
from pytestqt.qtbot import QtBot

from advisor.estimator.types import GIB
from advisor.hardware.sampler import MemorySample
from advisor.ui.main_window import WINDOW_SIZE, MainWindow
from advisor.ui.presenter import Core, Presenter, device_key, file_key
from advisor.ui.settings import Settings
from advisor.ui.tasks import TaskRunner
from tests.test_ui_guard import qt_leak_guard  # noqa: F401 - autouse fixture
from tests.test_ui_presenter import BIG_BATCH, core_with

WAIT_MS = 20_000


class FakeSampler:
    """16 GiB of RAM, 4 GiB used and climbing by 1 MiB a sample; no GPU."""

    def __init__(self) -> None:
        self.count = itertools.count()
        self.closed = False

    def sample(self) -> MemorySample:
        i = next(self.count)
        return MemorySample(time_s=float(i), ram_used_bytes=4 * GIB + i * 2**20, ram_total_bytes=16 * GIB,
                            ram_available_bytes=12 * GIB, swap_used_bytes=0, swap_total_bytes=2 * GIB)

    def close(self) -> None:
        self.closed = True


@pytest.fixture
def make_window(qtbot: QtBot, tmp_path: Path) -> Iterator[Callable[..., MainWindow]]:
    def make(target: str, core: Core | None = None) -> MainWindow:
        settings = Settings.at_path(tmp_path / "settings.ini")
        settings.target = target
        settings.refresh_ms = 250
        presenter = Presenter(TaskRunner(), core or core_with())
        window = MainWindow(presenter, settings, sampler=FakeSampler())
        qtbot.addWidget(window)
        window.resize(1280, 800)
        window.show()
        with qtbot.waitSignal(presenter.targetChanged, timeout=WAIT_MS):
            window.start()
        return window

    yield make


def drop(widget: Any, paths: list[str] | None = None, text: str | None = None) -> tuple[bool, bool]:
    """Drag ``paths`` (or plain text) onto ``widget`` and drop; return (enter accepted, drop accepted)."""
    mime = QMimeData()
    if paths is not None:
        mime.setUrls([QUrl.fromLocalFile(p) for p in paths])
    if text is not None:
        mime.setText(text)
    action = Qt.DropAction.CopyAction
    enter = QDragEnterEvent(QPoint(10, 10), action, mime, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier)
    QApplication.sendEvent(widget, enter)
    hovering = widget.hovering
    event = QDropEvent(QPointF(10, 10), action, mime, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier)
    QApplication.sendEvent(widget, event)
    return enter.isAccepted() and hovering, event.isAccepted()


def test_drop_opens_model_and_fills_everything(make_window: Callable[..., MainWindow], model_path: Path,
                                               tight_file: Path, qtbot: QtBot) -> None:
    w = make_window(file_key(tight_file))
    assert w.verdict.tone == "neutral"
    with qtbot.waitSignal(w.presenter.planChanged, timeout=WAIT_MS), \
            qtbot.assertNotEmitted(w.presenter.errorOccurred):
        entered, dropped = drop(w.drop_zone, [str(model_path)])
    assert entered and dropped
    assert not w.drop_zone.hovering
    assert w.model_panel.fields["name"].text() == "mlp"
    assert "onnx" in w.model_panel.fields["format"].text()
    assert w.model_panel.fields["params"].text() == "530.44 K"
    assert "float32" in w.model_panel.fields["dtypes"].text()
    assert "[batch, 512]" in w.model_panel.fields["inputs"].text()
    assert w.verdict.headline.text().startswith("Fits — ")
    assert "Test laptop" in w.verdict.detail.text()
    assert w.verdict.certainty.text().startswith("Certainty: ")
    assert w.breakdown.analysis is w.presenter.analysis
    assert w.plan_view.model.rowCount() == len(w.presenter.plan.options) > 0
    assert "Test x86 CPU" in w.hardware_panel.label.text()
    assert w.settings.recent_files == [str(model_path)]
    assert w.recent_menu.isEnabled()
    assert w.export_action.isEnabled()


def test_non_file_drops_are_refused(make_window: Callable[..., MainWindow], tight_file: Path,
                                    qtbot: QtBot) -> None:
    w = make_window(file_key(tight_file))
    with qtbot.assertNotEmitted(w.drop_zone.pathDropped), qtbot.assertNotEmitted(w.presenter.modelChanged):
        entered, dropped = drop(w.drop_zone, text="just some text")
        web, _ = drop(w.drop_zone, paths=None, text=None)
    assert not entered and not dropped and not web


def test_target_device_and_batch_change_the_verdict(make_window: Callable[..., MainWindow], model_path: Path,
                                                    tight_file: Path, qtbot: QtBot) -> None:
    w = make_window(file_key(tight_file))
    with qtbot.waitSignal(w.presenter.planChanged, timeout=WAIT_MS):
        w.open_path(str(model_path))
    assert w.verdict.tone == "good"
    with qtbot.waitSignal(w.presenter.analysisChanged, timeout=WAIT_MS):
        w.workload_editor.batch.setValue(BIG_BATCH)  # as if typed: the presenter debounces it
    assert w.verdict.headline.text().startswith("Does not fit — short by ")
    assert w.verdict.tone == "bad"
    assert w.presenter.analysis.workload.batch == BIG_BATCH
    index = w.target_bar.target_combo.findData(device_key("rtx4090-desktop"))
    assert index > 0
    with qtbot.waitSignal(w.presenter.analysisChanged, timeout=WAIT_MS):
        w.target_bar.target_combo.setCurrentIndex(index)
        w.target_bar.target_combo.activated.emit(index)
    assert w.verdict.headline.text().startswith("Fits — ")
    assert "RTX 4090" in w.verdict.detail.text()
    assert w.settings.target == device_key("rtx4090-desktop")


def test_plot_gets_samples_and_the_prediction_line(make_window: Callable[..., MainWindow], model_path: Path,
                                                   qtbot: QtBot) -> None:
    w = make_window("this-machine")  # a live profile (recorded): the prediction applies to this machine
    qtbot.waitUntil(lambda: len(w.plot.buffer) >= 2, timeout=WAIT_MS)
    assert w.plot.prediction is None
    with qtbot.waitSignal(w.presenter.planChanged, timeout=WAIT_MS):
        w.open_path(str(model_path))
    assert w.plot.prediction is not None
    assert w.plot.prediction.peak_bytes == w.presenter.analysis.estimate.peak_bytes
    assert w.plot.prediction_line.isVisible()
    with qtbot.waitSignal(w.live.sampled, timeout=WAIT_MS):
        pass  # the timer keeps sampling with the prediction drawn
    assert w.plot.export_png().startswith(b"\x89PNG")


def test_corrupt_file_shows_error_and_keeps_model(make_window: Callable[..., MainWindow], model_path: Path,
                                                  tight_file: Path, tmp_path: Path, qtbot: QtBot) -> None:
    w = make_window(file_key(tight_file))
    with qtbot.waitSignal(w.presenter.planChanged, timeout=WAIT_MS):
        drop(w.drop_zone, [str(model_path)])
    headline = w.verdict.headline.text()
    bad = tmp_path / "corrupt.onnx"
    bad.write_bytes(b"\xff" * 64)
    with qtbot.waitSignal(w.presenter.errorOccurred, timeout=WAIT_MS), \
            qtbot.assertNotEmitted(w.presenter.modelChanged):
        drop(w.drop_zone, [str(bad)])
    assert w.message_bar.isVisible()
    assert w.message_bar.kind == "error"
    assert "corrupt.onnx" in w.message_bar.text()
    assert w.model_panel.fields["name"].text() == "mlp"
    assert w.verdict.headline.text() == headline
    assert w.presenter.model.path == str(model_path)


def test_long_read_can_be_cancelled(make_window: Callable[..., MainWindow], model_path: Path, tight_file: Path,
                                    qtbot: QtBot) -> None:
    started, release = threading.Event(), threading.Event()
    real = Core()

    def slow_read(path: str) -> Any:
        if path.endswith("huge.onnx"):
            started.set()
            release.wait(10)  # a header read on a slow network drive
        return real.read_model(path)

    w = make_window(file_key(tight_file), core_with(read_model=slow_read))
    with qtbot.waitSignal(w.presenter.planChanged, timeout=WAIT_MS):
        w.open_path(str(model_path))
    try:
        with qtbot.waitSignal(w.presenter.busyChanged, timeout=WAIT_MS):
            w.open_path(str(model_path.with_name("huge.onnx")))
        assert started.wait(10)
        assert w.cancel_button.isVisibleTo(w) and w.progress.isVisibleTo(w)
        with qtbot.waitSignal(w.presenter.busyChanged, timeout=WAIT_MS), \
                qtbot.assertNotEmitted(w.presenter.modelChanged), qtbot.assertNotEmitted(w.presenter.errorOccurred):
            qtbot.mouseClick(w.cancel_button, Qt.MouseButton.LeftButton)
        assert not w.cancel_button.isVisibleTo(w)
        assert w.presenter.model.path == str(model_path)
    finally:
        release.set()
    with qtbot.assertNotEmitted(w.presenter.modelChanged, wait=200):
        assert w.presenter.runner.wait(10_000)  # the late result is dropped


def test_apply_int8_opens_the_new_file(make_window: Callable[..., MainWindow], model_path: Path,
                                       tight_file: Path, qtbot: QtBot) -> None:
    w = make_window(file_key(tight_file))
    with qtbot.waitSignal(w.presenter.planChanged, timeout=WAIT_MS):
        w.open_path(str(model_path))
    options = w.presenter.plan.options
    row = next(i for i, o in enumerate(options) if o.apply_action == "onnx-int8-dynamic")
    w.plan_view.table.selectRow(row)
    assert w.plan_view.apply_button.isEnabled()
    with qtbot.waitSignal(w.presenter.modelChanged, timeout=60_000):
        w.plan_view.apply_button.click()
    new_path = Path(w.presenter.model.path)
    assert new_path != model_path and new_path.exists()
    assert "int8" in w.presenter.model.weight_bytes_by_dtype or "uint8" in w.presenter.model.weight_bytes_by_dtype
    qtbot.waitUntil(lambda: w.presenter.analysis is not None and w.presenter.analysis.model.path == str(new_path),
                    timeout=WAIT_MS)


def test_export_report_writes_the_file_with_images(make_window: Callable[..., MainWindow], model_path: Path,
                                                   tight_file: Path, tmp_path: Path, qtbot: QtBot) -> None:
    w = make_window(file_key(tight_file))
    with qtbot.waitSignal(w.presenter.planChanged, timeout=WAIT_MS):
        w.open_path(str(model_path))
    out = tmp_path / "report.html"
    w.ask_report_path = lambda: str(out)  # type: ignore[method-assign]
    with qtbot.waitSignal(w.presenter.reportWritten, timeout=WAIT_MS), \
            qtbot.assertNotEmitted(w.presenter.errorOccurred):
        w.export_action.trigger()
    text = out.read_text(encoding="utf-8")
    assert "mlp" in text
    assert "data:image/png;base64," in text


@pytest.mark.parametrize("suffix", [".pdf", ".md", ".json"])
def test_export_report_in_every_format(make_window: Callable[..., MainWindow], model_path: Path,
                                       tight_file: Path, tmp_path: Path, qtbot: QtBot, suffix: str) -> None:
    w = make_window(file_key(tight_file))
    with qtbot.waitSignal(w.presenter.planChanged, timeout=WAIT_MS):
        w.open_path(str(model_path))
    out = tmp_path / f"report{suffix}"
    w.ask_report_path = lambda: str(out)  # type: ignore[method-assign]
    with qtbot.waitSignal(w.presenter.reportWritten, timeout=WAIT_MS), \
            qtbot.assertNotEmitted(w.presenter.errorOccurred):
        w.export_action.trigger()
    data = out.read_bytes()
    if suffix == ".pdf":
        import io

        from pypdf import PdfReader

        assert data.startswith(b"%PDF")
        text = " ".join(page.extract_text() for page in PdfReader(io.BytesIO(data)).pages)
        assert "mlp" in text
    else:
        assert b"mlp" in data


def test_geometry_is_saved_and_restored(make_window: Callable[..., MainWindow], tight_file: Path,
                                        qtbot: QtBot, tmp_path: Path) -> None:
    w = make_window(file_key(tight_file))
    w.resize(780, 560)  # NOTE: the offscreen platform's screen is 800×600; restoring clamps to it
    size = (w.width(), w.height())  # the layout's minimum width may widen it a little
    assert size != WINDOW_SIZE
    w.close()
    assert not Settings.at_path(tmp_path / "settings.ini").window_geometry.isEmpty()
    restored = MainWindow(Presenter(TaskRunner(), core_with()), Settings.at_path(tmp_path / "settings.ini"),
                          sampler=FakeSampler(), devices=())
    qtbot.addWidget(restored)
    # Not resized to the 1280×800 default: the saved geometry was applied (its width clamped to the
    # 800-pixel offscreen screen when the layout's minimum is wider than that).
    assert restored.height() == size[1]
    assert restored.width() <= size[0] < WINDOW_SIZE[0]


def test_layout_at_1280x800_nothing_overlaps(make_window: Callable[..., MainWindow], model_path: Path,
                                             tight_file: Path, qtbot: QtBot) -> None:
    w = make_window(file_key(tight_file))
    with qtbot.waitSignal(w.presenter.planChanged, timeout=WAIT_MS):
        w.open_path(str(model_path))
    qtbot.waitUntil(lambda: w.verdict.geometry().height() > 0)

    def rect(widget: Any) -> Any:
        return widget.rect().translated(widget.mapTo(w, QPoint(0, 0)))

    verdict, body = rect(w.verdict), rect(w.body)
    assert verdict.top() < body.top() and verdict.bottom() < body.top()  # the verdict comes first
    for part in (w.left_scroll, w.breakdown, w.tabs, w.plan_view):
        r = rect(part)
        assert w.rect().contains(r), f"{type(part).__name__} leaves the window: {r}"
        assert not r.intersects(verdict)
    assert not rect(w.left_scroll).intersects(rect(w.center))
    assert not rect(w.breakdown).intersects(rect(w.tabs))
    assert rect(w.tabs).contains(rect(w.plan_view))
    assert w.tabs.currentWidget() is w.plan_view  # the plan is what shows under the breakdown
    head = w.verdict.headline
    assert head.sizeHint().width() <= head.width()  # the big line is not clipped


def test_measure_from_the_window_marks_the_run_and_a_second_is_cancelled(
        make_window: Callable[..., MainWindow], model_path: Path, tmp_path: Path, qtbot: QtBot) -> None:
    import psutil

    from advisor.estimator.types import Workload
    from tests.builders import onnx_models

    w = make_window("this-machine")
    with qtbot.waitSignal(w.presenter.planChanged, timeout=WAIT_MS):
        w.open_path(str(model_path))
    assert w.measure_action.isEnabled()
    with qtbot.waitSignal(w.presenter.measured, timeout=60_000) as got:
        w.measure_action.trigger()
    m = got.args[0]
    assert m is not None and m.peak_bytes > 0
    assert w.tabs.currentWidget() is w.plot and w.plot.run_region.isVisible() and w.plot.run_points >= 2
    assert w.plot.run_label.startswith("measured ") and "predicted" in w.plot.run_label
    assert w.breakdown.measured_marker is not None
    qtbot.waitUntil(lambda: any(n.startswith("measured here on") for n in w.presenter.analysis.estimate.notes),
                    timeout=WAIT_MS)  # the estimate learned from it

    slow = onnx_models.mlp(tmp_path / "slow.onnx", hidden=2048, layers=6)  # seconds of matrix products
    with qtbot.waitSignal(w.presenter.planChanged, timeout=WAIT_MS):
        w.open_path(str(slow))
    w.presenter.set_workload(Workload(batch=4096), debounce=False)
    qtbot.waitUntil(lambda: not w.presenter.busy, timeout=WAIT_MS)
    running = threading.Event()
    w.presenter.progressed.connect(lambda _f, text: running.set() if "running" in text else None)
    with qtbot.waitSignal(w.presenter.measured, timeout=60_000) as stopped:
        w.measure_action.trigger()
        qtbot.waitUntil(running.is_set, timeout=30_000)
        qtbot.mouseClick(w.cancel_button, Qt.MouseButton.LeftButton)
    assert stopped.args[0] is None and w.plot.run_label == "stopped"
    assert w.presenter.runner.wait(10_000)
    assert not [p for p in psutil.Process().children(recursive=True) if p.status() != psutil.STATUS_ZOMBIE]


def test_a_drop_anywhere_on_the_window_opens_the_model_and_shards_open_their_set(
        make_window: Callable[..., MainWindow], model_path: Path, tight_file: Path, tmp_path: Path,
        qtbot: QtBot) -> None:
    from tests.builders import safetensors_models

    w = make_window(file_key(tight_file))
    with qtbot.waitSignal(w.presenter.planChanged, timeout=WAIT_MS):
        entered, dropped = drop(w, [str(model_path)])  # the window itself, not the drop zone
    assert entered and dropped and w.presenter.model.name == "mlp" and not w.drop_zone.hovering
    folder = safetensors_models.llama_folder(tmp_path / "llama", n_layers=2, hidden=64, n_heads=4, n_kv_heads=2,
                                             vocab=128, intermediate=96, n_shards=3)
    shards = sorted(str(p) for p in folder.glob("*.safetensors"))
    with qtbot.waitSignal(w.presenter.planChanged, timeout=WAIT_MS):
        drop(w, list(reversed(shards)))  # all three, in any order
    model = w.presenter.model
    assert model.format == "safetensors" and len(model.files) == 3
    assert not w.notes.acceptDrops()


def test_file_open_ollama_model_lists_the_store_and_opens_the_choice(
        make_window: Callable[..., MainWindow], tight_file: Path, tmp_path: Path, qtbot: QtBot,
        monkeypatch: pytest.MonkeyPatch) -> None:
    from tests.builders import gguf_models
    from tests.test_model_sources import _ollama_store

    specs = gguf_models.llama_gguf_specs(n_layers=2, hidden=64, n_heads=4, n_kv_heads=4, vocab=256, ff=128,
                                         qtype="Q8_0", embd_type="Q8_0", out_type="Q8_0")
    meta = {"{arch}.block_count": 2, "{arch}.embedding_length": 64, "{arch}.feed_forward_length": 128,
            "{arch}.attention.head_count": 4, "{arch}.attention.head_count_kv": 4}
    _ollama_store(tmp_path / "ollama", gguf_models.sparse_gguf(tmp_path / "m.gguf", specs, metadata=meta))
    monkeypatch.setenv("OLLAMA_MODELS", str(tmp_path / "ollama"))
    w = make_window(file_key(tight_file))
    offered: list[list[str]] = []
    monkeypatch.setattr(w, "ask_ollama_model", lambda names: offered.append(names) or names[0])
    with qtbot.waitSignal(w.presenter.planChanged, timeout=WAIT_MS):
        w.ollama_action.trigger()
    assert offered == [["tiny:8b"]] and w.presenter.model.name == "tiny:8b"
    assert w.settings.recent_files[0] == "ollama:tiny:8b"
    monkeypatch.setenv("OLLAMA_MODELS", str(tmp_path / "nothing"))
    w.ollama_action.trigger()
    assert "no Ollama models" in w.message_bar.text()


def test_a_window_opened_on_a_model_is_first_shown_with_its_verdict_and_then_samples(
        monkeypatch: pytest.MonkeyPatch, qtbot: QtBot, tmp_path: Path, model_path: Path) -> None:
    import advisor.ui.main_window as main_window
    from advisor.ui import app as app_module

    made: list[MainWindow] = []

    class CountingSampler(FakeSampler):
        calls = 0

        def sample(self) -> MemorySample:
            CountingSampler.calls += 1
            return super().sample()

    sampler = CountingSampler()

    def window() -> MainWindow:
        w = MainWindow(Presenter(TaskRunner(), core_with()), Settings.at_path(tmp_path / "s.ini"), sampler=sampler)
        qtbot.addWidget(w)
        made.append(w)
        return w

    monkeypatch.setattr(main_window, "MainWindow", window)
    shown_with: list[bool] = []
    _, w = app_module.open_window(str(model_path))
    assert not w.isVisible() and sampler.calls == 0  # nothing painted, nothing sampled before the estimate
    w.presenter.analysisChanged.connect(lambda _a: shown_with.append(w.isVisible()))
    with qtbot.waitSignal(w.presenter.analysisChanged, timeout=WAIT_MS):
        pass
    assert shown_with == [True]  # shown when the verdict came, not before
    assert w.verdict.headline.text().startswith("Fits")  # so its first paint has the answer
    qtbot.waitUntil(lambda: sampler.calls > 0, timeout=WAIT_MS)
    _, empty = app_module.open_window(None)
    assert empty.isVisible()  # no model: shown at once
    for m in made:
        m.shutdown()
