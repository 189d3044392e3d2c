"""The live plot's idle cost (issue 15): what a sample must not redo, counted, not timed.

Each test feeds samples one second apart, as the sampler does, and counts the work pyqtgraph
would otherwise redo on every sample: the x axis's tick strings, the y range, a second paint, the
window's layout. Each also shows its counter does count (the span changes, the band is left, a
layout is asked for), so none passes because nothing was drawn.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import pytest
from PySide6.QtCore import QEvent, QObject, QPointF
from PySide6.QtWidgets import QApplication, QGraphicsTextItem

from advisor.estimator.types import GIB
from advisor.hardware.sampler import GpuMemorySample, MemorySample
from advisor.ui.memory_plot import Y_HEADROOM, MemoryPlot

RAM_TOTAL_GIB = 16.0


def sample(t: float, ram_gib: float, swap_gib: float | None = 0.5,
           gpu_gib: float | None = None) -> MemorySample:
    """One reading of a made-up 16 GiB machine (``gpu_gib``: one 8 GiB GPU's use; None: no GPU)."""
    ram = int(ram_gib * GIB)
    gpus = () if gpu_gib is None else (GpuMemorySample(0, "Test GPU", int(gpu_gib * GIB), 8 * GIB),)
    return MemorySample(
        time_s=t,
        ram_used_bytes=ram,
        ram_total_bytes=int(RAM_TOTAL_GIB * GIB),
        ram_available_bytes=int(RAM_TOTAL_GIB * GIB) - ram,
        swap_used_bytes=None if swap_gib is None else int(swap_gib * GIB),
        swap_total_bytes=2 * GIB,
        gpus=gpus,
    )


class EventCounter(QObject):
    """Counts the events of one type that reach ``target``."""

    def __init__(self, target: QObject, kind: QEvent.Type) -> None:
        super().__init__()
        self.kind = kind
        self.count = 0
        target.installEventFilter(self)

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:
        if event.type() == self.kind:
            self.count += 1
        return False


def counting(obj: Any, name: str, monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Wrap ``obj.name`` so that each call adds one to the returned counter."""
    calls = [0]
    original: Callable[..., Any] = getattr(obj, name)

    def wrapper(*args: Any, **kwargs: Any) -> Any:
        calls[0] += 1
        return original(*args, **kwargs)

    monkeypatch.setattr(obj, name, wrapper)
    return calls


def repaint(plot: MemoryPlot) -> None:
    """Paint the plot now, the way the next frame would (the whole view, synchronously)."""
    QApplication.processEvents()
    plot.plot_widget.viewport().repaint()


def settle(plot: MemoryPlot) -> None:
    """Paint twice: the first paint of tick labels sizes the axes, which lays the plot out again."""
    repaint(plot)
    repaint(plot)


@pytest.fixture
def shown(qtbot: Any) -> Iterator[MemoryPlot]:
    widget = MemoryPlot(capacity=400)
    qtbot.addWidget(widget)
    widget.resize(800, 420)
    widget.show()
    qtbot.waitExposed(widget)
    yield widget


def feed(plot: MemoryPlot, times: range, ram_gib: float = 4.0, **kwargs: Any) -> None:
    for t in times:
        plot.add_sample(sample(float(t), ram_gib, **kwargs))


# -- the x axis -----------------------------------------------------------------------------------


def test_x_axis_keeps_its_ticks_while_the_window_span_holds(shown: MemoryPlot,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    shown.set_window_s(60)
    feed(shown, range(1, 31))
    settle(shown)
    axis = shown.plot_widget.getPlotItem().getAxis("bottom")
    picture = axis.picture
    assert picture is not None  # drawn once
    strings = counting(axis, "tickStrings", monkeypatch)
    specs = counting(axis, "generateDrawSpecs", monkeypatch)
    view_paints = EventCounter(shown.plot_widget.viewport(), QEvent.Type.Paint)

    for t in range(31, 41):
        shown.add_sample(sample(float(t), 4.0 + (t % 3) / 10))
        repaint(shown)
        assert shown.plot_widget.getPlotItem().viewRange()[0] == [pytest.approx(t - 60.0), pytest.approx(t)]
    assert view_paints.count >= 10  # the plot was painted after every sample …
    assert (strings[0], specs[0]) == (0, 0)  # … and its x axis kept the ticks it had
    assert axis.picture is picture
    assert axis.tickStrings([40.0, 10.0], 1.0, 10.0) == ["now", "30"]  # still labelled from the newest sample
    strings[0] = 0

    shown.set_window_s(300)  # another span: the ticks move, and are drawn again
    repaint(shown)
    assert specs[0] >= 1 and strings[0] >= 1
    assert axis.picture is not picture


def test_x_axis_is_drawn_again_when_the_view_is_resized(shown: MemoryPlot,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    feed(shown, range(1, 11))
    settle(shown)
    axis = shown.plot_widget.getPlotItem().getAxis("bottom")
    specs = counting(axis, "generateDrawSpecs", monkeypatch)
    shown.resize(600, 420)
    QApplication.processEvents()
    feed(shown, range(11, 13))
    repaint(shown)
    assert specs[0] >= 1  # same span, new width: the grid and the ticks are laid out anew


def test_the_whole_history_keeps_its_ticks_once_the_buffer_is_full(qtbot: Any,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    plot = MemoryPlot(capacity=50)
    qtbot.addWidget(plot)
    plot.resize(800, 420)
    plot.show()
    qtbot.waitExposed(plot)
    plot.set_window_s(None)
    for i in range(60):  # full: the span stays 49 s, give or take the timer's jitter
        plot.add_sample(sample(i + (0.001 if i % 2 else 0.0), 4.0))
    settle(plot)
    axis = plot.plot_widget.getPlotItem().getAxis("bottom")
    specs = counting(axis, "generateDrawSpecs", monkeypatch)
    for i in range(60, 70):
        plot.add_sample(sample(i + (0.001 if i % 2 else 0.0), 4.0))
        repaint(plot)
    assert specs[0] == 0


# -- the y range ----------------------------------------------------------------------------------


def test_y_range_is_kept_while_use_wobbles_inside_the_band(shown: MemoryPlot, qtbot: Any,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    # The band's top (use + 14 GiB) is above the 16 GiB of RAM: it, not a capacity line, sets the range.
    shown.add_sample(sample(1.0, 4.0))
    shown.set_prediction(12 * GIB, 11 * GIB, 14 * GIB, "ram", None, "tiny-llm")
    view = shown.plot_widget.getPlotItem().getViewBox()
    assert view.viewRange()[1] == [0.0, pytest.approx(18.0 * Y_HEADROOM)]  # exactly as before: 12 % headroom
    with qtbot.waitSignal(view.sigYRangeChanged, timeout=1000):
        shown.add_sample(sample(2.0, 4.5))  # the band grew out of the view: the range follows
    top = view.viewRange()[1][1]
    assert top == pytest.approx(18.5 * Y_HEADROOM)
    settle(shown)
    left = shown.plot_widget.getPlotItem().getAxis("left")
    specs = counting(left, "generateDrawSpecs", monkeypatch)

    with qtbot.assertNotEmitted(view.sigYRangeChanged):
        for t, ram in zip(range(3, 9), (4.2, 4.4, 4.1, 4.3, 4.45, 4.0), strict=True):
            shown.add_sample(sample(float(t), ram))
            repaint(shown)
    assert view.viewRange()[1][1] == top
    assert view.viewRange()[0][1] == pytest.approx(8.0)  # the x range did move
    assert shown.prediction_line.value() == pytest.approx(16.0, abs=0.05)  # and the line followed use
    assert specs[0] == 0  # the left axis was not drawn again

    with qtbot.waitSignal(view.sigYRangeChanged, timeout=1000):
        shown.add_sample(sample(9.0, 5.0))  # out of the band again
    shown.clear_prediction()  # what is drawn changed: the range is set exactly again
    assert view.viewRange()[1][1] == pytest.approx(RAM_TOTAL_GIB * Y_HEADROOM)


# -- painting and layout --------------------------------------------------------------------------


def test_a_sample_is_painted_once(shown: MemoryPlot, qtbot: Any) -> None:
    shown.set_prediction(2 * GIB, GIB, 3 * GIB, "ram", None, "tiny-llm")
    feed(shown, range(1, 6))
    settle(shown)
    paints = EventCounter(shown.plot_widget.viewport(), QEvent.Type.Paint)
    for i, t in enumerate(range(6, 12), start=1):
        shown.add_sample(sample(float(t), 4.0 + t / 10))
        qtbot.waitUntil(lambda i=i: paints.count >= i, timeout=2000)
        for _ in range(5):  # a paint that moved items scheduled a second one: let it come
            QApplication.processEvents()
        assert paints.count == i


def test_a_new_status_text_lays_nothing_out_again(shown: MemoryPlot) -> None:
    feed(shown, range(1, 3))
    QApplication.processEvents()
    requests = EventCounter(shown, QEvent.Type.LayoutRequest)
    before = shown.status_text()
    for t in range(3, 9):
        shown.add_sample(sample(float(t), 4.0 + t))  # a new "Now: … GiB" every sample
        QApplication.processEvents()
    assert shown.status_text() != before
    assert requests.count == 0
    shown.set_controls_visible(False)  # a real change of layout is still asked for
    QApplication.processEvents()
    assert requests.count >= 1


# -- data handed to pyqtgraph ---------------------------------------------------------------------


def test_curves_are_clipped_to_the_window_and_skip_the_finite_check(shown: MemoryPlot) -> None:
    shown.set_window_s(60)
    feed(shown, range(300), swap_gib=None, gpu_gib=1.0)  # no swap reading: a column of NaN
    ram, swap, gpu = shown.curves
    assert len(ram.getOriginalDataset()[0]) == 300  # the whole history is kept …
    assert len(ram.curve.getData()[0]) <= 64  # … and only the last minute is stroked
    assert ram.opts["skipFiniteCheck"] and ram.opts["connect"] == "all"
    assert gpu.opts["skipFiniteCheck"]
    assert not swap.opts["skipFiniteCheck"] and swap.opts["connect"] == "finite"
    x, y = ram.getOriginalDataset()
    assert np.shares_memory(x, shown.buffer.view()[0])  # the ring buffer's views, not copies
    assert np.shares_memory(y, shown.buffer.column(0))


def test_lines_labels_sit_on_their_lines(shown: MemoryPlot) -> None:
    feed(shown, range(1, 4))
    shown.set_prediction(4 * GIB, 3 * GIB, 6 * GIB, "ram", None, "tiny-llm")
    view = shown.plot_widget.getPlotItem().getViewBox()

    def bottom_left_px(label: QGraphicsTextItem) -> QPointF:
        return label.pos() + QPointF(0, label.boundingRect().height())

    def line_px(value: float) -> float:
        return float(view.mapFromView(QPointF(0, value)).y())

    (ram_label,) = shown._capacity_labels
    assert ram_label.toPlainText() == "RAM total 16.0 GiB"
    assert bottom_left_px(ram_label).y() == pytest.approx(line_px(RAM_TOTAL_GIB), abs=0.5)
    assert ram_label.pos().x() + ram_label.boundingRect().width() == pytest.approx(0.98 * view.width(), abs=0.5)
    pred = shown.prediction_label
    assert pred.toPlainText() == "now + tiny-llm peak: 8.0 GiB (7.0–10.0)"
    assert bottom_left_px(pred).y() == pytest.approx(line_px(8.0), abs=0.5)
    shown.add_sample(sample(4.0, 12.0))  # the band's top leaves the view: the range and the labels move
    assert view.viewRange()[1][1] == pytest.approx(18.0 * Y_HEADROOM)
    assert bottom_left_px(ram_label).y() == pytest.approx(line_px(RAM_TOTAL_GIB), abs=0.5)
    assert bottom_left_px(pred).y() == pytest.approx(line_px(16.0), abs=0.5)
    shown.clear_prediction()
    assert not pred.isVisible() and not shown.prediction_line.isVisible()


def test_export_paints_without_the_item_caches(shown: MemoryPlot) -> None:
    feed(shown, range(1, 30))
    axis = shown.plot_widget.getPlotItem().getAxis("bottom")
    cached = axis.cacheMode()
    assert shown.export_png().startswith(b"\x89PNG")
    assert axis.cacheMode() == cached  # back on for the screen
