"""The live memory plot: RAM, swap and each GPU's VRAM over time, and where the model would land.

Built like pyqtgraph's scrolling-plot example (a ring buffer, ``setData`` with peak downsampling
and clip-to-view) but as a widget with no globals and no ``processEvents()``. The prediction line
sits at *current use + the model's predicted peak* on the memory the model targets, with its
low..high range shaded: would it fit right now?

The plot stays on screen for hours, so an idle sample must cost little (issue 15: it cost 1.8 %
of a core, 3× a bare pyqtgraph plot). A sample moves the x range once, hands the curves the ring
buffer's views (clipped to the view; a finite column skips the finite checks) and is painted once.
What it does not change is not done again: the x axis keeps its picture while the window's span
holds (:class:`LiveSecondsAxis`), the y range stays while use wobbles inside a band
(:data:`Y_HEADROOM`, :data:`Y_SLACK`), the lines' labels sit in the view box's pixels and do not
scroll (:class:`_LineLabel`), the axes (their grids cover the plot) and the labels are painted from
Qt's item caches, and a new status text repaints the status line only (:class:`_StatusLine`).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QEvent, QSize, Qt
from PySide6.QtGui import QColor, QResizeEvent
from PySide6.QtWidgets import (
    QComboBox,
    QGraphicsItem,
    QGraphicsTextItem,
    QHBoxLayout,
    QLabel,
    QSizePolicy,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from advisor.analysis import Analysis
from advisor.estimator.types import GIB
from advisor.ui import render as style
from advisor.ui.live_memory import MemorySampleLike
from advisor.ui.ring_buffer import DEFAULT_CAPACITY, RingBuffer

PredictionMemory = Literal["ram", "gpu", "unified"]

# Time windows the combo offers: (label, seconds; None = the whole history).
WINDOWS: tuple[tuple[str, int | None], ...] = (("1 min", 60), ("5 min", 300), ("10 min", 600), ("All", None))
DEFAULT_WINDOW_S = 300

# The y range: its top sits Y_HEADROOM above the highest thing drawn (use, capacity lines, the
# prediction's band, a measured run), set exactly when what is drawn changes. Sample by sample it
# is set again only when that would clip something or leave more than Y_HEADROOM × Y_SLACK of
# room: use that wobbles inside the band moves neither the view nor the left axis.
Y_HEADROOM = 1.12
Y_SLACK = 1.2
Y_MIN_TOP_GIB = 0.5
# A horizontal line (the prediction and its band) moves when it would move by this many pixels.
SUBPIXEL = 0.25

# Items painted from Qt's pixmap cache, redrawn only when they change: the axes (their grid lines
# span the whole plot, so every repaint of the curves repainted all their tick text too) and the
# lines' labels. Export renders without it, at its own scale.
_CACHED = QGraphicsItem.CacheMode.DeviceCoordinateCache


@dataclass(frozen=True)
class Prediction:
    """The model's predicted peak, and on which memory of this machine it would land.

    The plot draws the peak (what the memory reading will show); the words judge the need
    (``required_bytes``: the peak less pages the OS can drop), as the verdict does.
    """

    peak_bytes: int
    low_bytes: int
    high_bytes: int
    memory: PredictionMemory
    gpu_index: int | None
    label: str
    required_bytes: int = -1
    required_high_bytes: int = -1

    def __post_init__(self) -> None:
        if self.required_bytes < 0:
            object.__setattr__(self, "required_bytes", self.peak_bytes)
        if self.required_high_bytes < 0:
            object.__setattr__(self, "required_high_bytes", self.high_bytes)


def prediction_for(analysis: Analysis) -> Prediction | None:
    """The prediction to draw on this machine's live plot; None when the target is not this machine."""
    if not analysis.hardware.is_live:
        return None
    est, fit = analysis.estimate, analysis.fit
    gpu_index: int | None = None
    if fit.memory == "gpu":
        # The GPU the verdict is about (advisor.estimator.fit names it in its label).
        nvidia = [g for g in analysis.hardware.gpus if g.vendor == "nvidia"]
        named = [g for g in nvidia if f"GPU {g.index}" in fit.label]
        used = nvidia[: max(1, est.tensor_parallel, len(est.spread))]
        if named or used:
            total = analysis.hardware.memory_total_bytes
            gpu_index = (named or [min(used, key=lambda g: g.memory_total_bytes or total)])[0].index
    name = analysis.model.name
    return Prediction(fit.peak_bytes, fit.low_bytes, fit.high_bytes, fit.memory, gpu_index, name,
                      fit.required_bytes, fit.required_high_bytes)


class LiveSecondsAxis(style.SecondsAgoAxis):
    """The live plot's "seconds ago" axis, whose picture survives the scroll of a new sample.

    Its ticks sit at round "seconds ago" (:class:`~advisor.ui.render.SecondsAgoAxis`), so a sample
    that moves the range and keeps its span leaves every tick, grid line and label on the pixel it
    had. pyqtgraph's ``AxisItem`` throws its picture away on every range change (new tick values,
    new tick strings, a new ``QPicture``: the biggest part of an idle sample's cost); this one keeps
    it while the range, in seconds ago, stays within :attr:`MAX_DRIFT_PX` of the one it was drawn
    for, and draws it again when the span really changes (another window; "All" while the history
    grows), when the view is resized, or when its style changes.
    """

    # NOTE: a tenth of a pixel: the "All" window's span wobbles by the timer's jitter (~1 ms in
    # 15 min, 1e-3 px) and must not redraw; a span that grows by one sample (>= 1 px) must.
    MAX_DRIFT_PX = 0.1

    def __init__(self) -> None:
        super().__init__()
        self._drawn_ago: tuple[float, float] | None = None

    # pyqtgraph's method and argument names.
    def setRange(self, mn: float, mx: float) -> None:
        if not hasattr(self, "_drawn_ago"):  # AxisItem.__init__ sets a range before ours has run
            super().setRange(mn, mx)
            return
        ago = (self.now_s - mx, self.now_s - mn)
        if self.picture is not None and self._drift_px(ago) < self.MAX_DRIFT_PX:
            self.range = [mn, mx]  # same pixels: keep the picture, schedule no repaint
            return
        super().setRange(mn, mx)
        self._drawn_ago = ago

    def linkedViewChanged(self, view: Any, newRange: Any = None) -> None:
        if newRange is None:  # the view was resized: the grid lines' length changed
            self._drawn_ago = None
        super().linkedViewChanged(view, newRange)

    def _drift_px(self, ago: tuple[float, float]) -> float:
        """How far (pixels) ticks drawn for ``_drawn_ago`` are from where ``ago`` puts them."""
        if self._drawn_ago is None:
            return float("inf")
        (a0, a1), (d0, d1) = ago, self._drawn_ago
        span = d1 - d0
        if span <= 0:
            return float("inf")
        return (abs(a0 - d0) + abs(a1 - d1)) * float(self.geometry().width()) / span


class _StatusLine(QWidget):
    """The one-line status above the plot: a ``QLabel`` in a widget of its own, with no layout.

    A label in a layout asks the layout to start over at every new text (its size hint follows
    the text), and the request climbs to the window: each sample's new numbers re-laid out the
    window and repainted the whole tab (0.3 % of a core, measured). Here the label's geometry is
    set by hand, so a new text repaints the label and nothing else. The line is one text line
    high; a text wider than the plot is cut at its edge instead of widening the window.
    """

    def __init__(self, text: str, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.label = QLabel(text, self)
        self.label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.setSizePolicy(QSizePolicy.Policy.Preferred, QSizePolicy.Policy.Fixed)

    def sizeHint(self) -> QSize:
        return QSize(self.label.sizeHint().width(), self.label.sizeHint().height())

    def minimumSizeHint(self) -> QSize:
        return QSize(0, self.label.sizeHint().height())

    def resizeEvent(self, event: QResizeEvent) -> None:
        self.label.setGeometry(self.rect())
        super().resizeEvent(event)

    def changeEvent(self, event: QEvent) -> None:
        if event.type() in (QEvent.Type.FontChange, QEvent.Type.StyleChange):
            self.updateGeometry()  # another line height
        super().changeEvent(event)


class _LineLabel(QGraphicsTextItem):
    """The text of a horizontal line, placed in the view box's pixels rather than in the data's.

    pyqtgraph's ``InfiniteLine`` label lives in data coordinates: every sample moves the x range,
    and it was placed again, in Python, on every sample. A horizontal line's place on screen does not
    depend on x, so this one sits where that label sat (``position`` along the view's width, its
    ``anchor`` corner on the line) and is placed again only when the line, the y range, the view's
    size or the text change.
    """

    def __init__(self, view: pg.ViewBox, position: float, anchor: tuple[float, float]) -> None:
        super().__init__(view)
        self._view = view
        self._position = position
        self._anchor = anchor
        self._value_gib = 0.0
        self.setZValue(100)  # above the curves and the lines, where the text reads best
        self.setCacheMode(_CACHED)

    def set_text(self, text: str) -> None:
        if text != self.toPlainText():
            self.setPlainText(text)
            self.place(self._value_gib)

    def place(self, value_gib: float) -> None:
        """Put the label on the line at ``value_gib`` for the view's current y range and size."""
        self._value_gib = value_gib
        rect = self._view.rect()
        y0, y1 = self._view.viewRange()[1]
        y = rect.top() + (y1 - value_gib) / (y1 - y0) * rect.height() if y1 > y0 else rect.center().y()
        box = self.boundingRect()
        x = rect.left() + self._position * rect.width()
        self.setPos(x - self._anchor[0] * box.width(), y - self._anchor[1] * box.height())

    def detach(self) -> None:
        scene = self.scene()
        if scene is not None:
            scene.removeItem(self)


class _LiveCurve(pg.PlotDataItem):  # type: ignore[misc]
    """A curve of the live plot, which gets new data right after each move of the range.

    Clipped to view, a ``PlotDataItem`` clips its data to the new range on every range change; the
    plot then hands it the new sample's data and it clips again. While :attr:`data_follows` is set
    (the plot is moving the range and calls ``setData`` next) it leaves that first clip out.
    """

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.data_follows = False

    # pyqtgraph's method and argument names.
    def viewRangeChanged(self, vb: Any = None, ranges: Any = None, changed: Any = None) -> None:
        if not self.data_follows:
            super().viewRangeChanged(vb, ranges, changed)


class MemoryPlot(QWidget):
    """Scrolling plot of memory use with capacity lines and the model's predicted landing point.

    Args:
        capacity: samples kept (default: 15 min at 250 ms).
        parent: the Qt parent.
    """

    def __init__(self, capacity: int = DEFAULT_CAPACITY, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        pg.setConfigOptions(antialias=True)
        self._capacity = capacity
        self._buffer = RingBuffer(capacity, 2)
        self._row = np.zeros(2, dtype=np.float64)
        self._gpu_key: tuple[tuple[int, str], ...] | None = None
        self._latest: MemorySampleLike | None = None
        self._prediction: Prediction | None = None
        self._no_prediction_reason: str | None = None
        self._window_s: int | None = DEFAULT_WINDOW_S
        self._paused = False
        self.curves: list[_LiveCurve] = []
        self.capacity_lines: list[pg.InfiniteLine] = []

        self._pause = QToolButton()
        self._pause.setText("Pause")
        self._pause.setCheckable(True)
        self._pause.setToolTip("Freeze the plot; samples are still recorded")
        self._pause.toggled.connect(self.set_paused)
        self._window_combo = QComboBox()
        for text, seconds in WINDOWS:
            self._window_combo.addItem(text, seconds)
        self._window_combo.setCurrentIndex([s for _, s in WINDOWS].index(DEFAULT_WINDOW_S))
        self._window_combo.setToolTip("How much history to show")
        self._window_combo.currentIndexChanged.connect(lambda i: self.set_window_s(self._window_combo.itemData(i)))
        self._status_line = _StatusLine("Waiting for the first memory sample…")
        self._status = self._status_line.label

        self._axis = LiveSecondsAxis()
        self.plot_widget = pg.PlotWidget(axisItems={"bottom": self._axis})
        item = self.plot_widget.getPlotItem()
        self._view = item.getViewBox()
        # _redraw sets both ranges itself, with no autorange left to recompute on every sample.
        self._view.disableAutoRange()
        for name in ("top", "right"):
            # Hidden, but linked: each sample made them rebuild their label (SI prefix) for nothing.
            item.getAxis(name).unlinkFromView()
        for name in ("left", "bottom"):
            item.getAxis(name).setCacheMode(_CACHED)
        # Clip to view and peak downsampling, set on the PlotItem: its addItem() gives every curve
        # the PlotItem's modes, so set on a curve before addItem() they were lost (all 3600 points
        # were stroked, most of them off screen).
        item.setClipToView(True)
        item.setDownsampling(auto=True, mode="peak")
        item.setLabel("left", "memory used", units="GiB")
        item.getAxis("left").enableAutoSIPrefix(False)
        item.setLabel("bottom", "seconds ago")
        item.setMouseEnabled(x=False, y=False)
        item.hideButtons()
        item.setMenuEnabled(False)
        item.showGrid(x=True, y=True, alpha=0.15)
        # The legend sits in its own row under the x axis, where it never hides a curve or a label.
        self._legend = pg.LegendItem(colCount=2)
        item.layout.addItem(self._legend, 4, 1)

        self._band = pg.LinearRegionItem((0, 0), orientation="horizontal", movable=False)
        self._band.setZValue(-10)
        self.prediction_line = pg.InfiniteLine(angle=0, movable=False)
        self.prediction_label = _LineLabel(self._view, 0.02, (0, 1))
        for it in (self._band, self.prediction_line):
            item.addItem(it, ignoreBounds=True)
        self._show_prediction(False)
        self._capacity_labels: list[_LineLabel] = []
        self._labelled_y_range: tuple[float, float] | None = None
        self._view.sigResized.connect(self._place_labels)
        self._y_exact = True  # what is drawn changed: set the y range exactly at the next redraw

        # A measurement's run: a shaded span from its start and its own curve (RAM used when it
        # began + the run's resident bytes), next to the predicted line.
        self.run_region = pg.LinearRegionItem((0, 0), orientation="vertical", movable=False)
        self.run_region.setZValue(-20)
        self.run_curve = pg.PlotDataItem(name="measured run", connect="finite")
        self.run_region.setVisible(False)  # added to the plot by the first run: until then no sample moves them
        self._run_t0: float | None = None
        self._run_base_gib = 0.0
        self._run_t: list[float] = []
        self._run_v: list[float] = []
        self._run_top_gib = 0.0
        self.run_label = ""
        self._connect: list[str] = []  # each curve's connect mode: "all" once its column is finite

        self._controls = QWidget()
        bar = QHBoxLayout(self._controls)
        bar.setContentsMargins(0, 0, 0, 0)
        bar.addWidget(self._pause)
        bar.addWidget(QLabel("Show:"))
        bar.addWidget(self._window_combo)
        bar.addStretch(1)
        layout = self._layout = QVBoxLayout(self)
        layout.setContentsMargins(4, 4, 4, 4)
        layout.addWidget(self._controls)
        layout.addWidget(self._status_line)
        layout.addWidget(self.plot_widget, 1)
        self._apply_palette()

    # -- public API -------------------------------------------------------------------------------

    @property
    def buffer(self) -> RingBuffer:
        return self._buffer

    @property
    def paused(self) -> bool:
        return self._paused

    @property
    def window_s(self) -> int | None:
        return self._window_s

    @property
    def prediction(self) -> Prediction | None:
        return self._prediction

    def status_text(self) -> str:
        return self._status.text()

    def set_controls_visible(self, visible: bool) -> None:
        """Show or hide the toolbar and status line (hidden: the plot fills the widget, for rendering)."""
        self._controls.setVisible(visible)
        self._status_line.setVisible(visible)
        margin = 4 if visible else 0
        self._layout.setContentsMargins(margin, margin, margin, margin)

    def add_sample(self, sample: MemorySampleLike) -> None:
        """Record one sample; redraw unless paused."""
        key = tuple((g.index, g.name) for g in sample.gpus)
        if key != self._gpu_key:
            self._configure(sample, key)
        row = self._row
        row[0] = sample.ram_used_bytes / GIB
        row[1] = np.nan if sample.swap_used_bytes is None else sample.swap_used_bytes / GIB
        for k, g in enumerate(sample.gpus):
            row[2 + k] = np.nan if g.used_bytes is None else g.used_bytes / GIB
        self._buffer.append(sample.time_s, row)
        self._latest = sample
        if not self._paused:
            self._redraw()

    def begin_run(self, label: str = "measuring") -> None:
        """Mark a measurement starting now: a shaded span and its own curve from here on."""
        self._run_t0 = time.monotonic()
        self._run_base_gib = float(self._row[0]) if self._latest is not None else 0.0
        self._run_t, self._run_v = [self._run_t0], [self._run_base_gib]
        self._run_top_gib = self._run_base_gib
        self.run_label = label
        if self.run_region.scene() is None:
            item = self.plot_widget.getPlotItem()
            item.addItem(self.run_region, ignoreBounds=True)
            item.addItem(self.run_curve)
        self.run_region.setRegion((self._run_t0, self._run_t0))
        self.run_region.setVisible(True)
        self.run_curve.setData(self._run_t, self._run_v)
        if not self._paused:
            self._redraw()

    def add_run_sample(self, seconds: float, run_bytes: int) -> None:
        """One point of the measured run: ``seconds`` after it began, ``run_bytes`` resident."""
        if self._run_t0 is None:
            return
        t = self._run_t0 + seconds
        self._run_t.append(t)
        self._run_v.append(self._run_base_gib + run_bytes / GIB)
        self._run_top_gib = max(self._run_top_gib, self._run_v[-1])
        self.run_region.setRegion((self._run_t0, t))
        self.run_curve.setData(self._run_t, self._run_v)

    def end_run(self, label: str) -> None:
        """The run ended: keep its span and curve, labelled (``"measured 1.2 GiB"``, ``"cancelled"``)."""
        self.run_label = label
        if self._run_t0 is not None and len(self._run_t) > 1:
            self.run_region.setRegion((self._run_t0, self._run_t[-1]))
        self._run_t0 = None
        if not self._paused:
            self._redraw()

    @property
    def run_points(self) -> int:
        """Points drawn for the current or last measured run."""
        return len(self._run_t)

    def set_prediction(
        self,
        peak_bytes: int,
        low_bytes: int,
        high_bytes: int,
        memory: PredictionMemory,
        gpu_index: int | None,
        label: str,
        required_bytes: int = -1,
        required_high_bytes: int = -1,
    ) -> None:
        """Draw the model's landing point on ``memory`` (``gpu`` uses GPU ``gpu_index``, else the first)."""
        self._prediction = Prediction(peak_bytes, low_bytes, high_bytes, memory, gpu_index, label, required_bytes,
                                      required_high_bytes)
        self._y_exact = True
        if not self._paused:
            self._redraw()

    def clear_prediction(self, reason: str | None = None) -> None:
        """Hide the prediction line; ``reason`` (shown in the status line) says why there is none."""
        self._prediction = None
        self._no_prediction_reason = reason
        self._y_exact = True
        self._show_prediction(False)
        if not self._paused:
            self._redraw()

    def set_window_s(self, window_s: int | None) -> None:
        """Show the last ``window_s`` seconds (None: everything kept)."""
        self._window_s = None if window_s is None else max(1, int(window_s))
        i = self._window_combo.findData(self._window_s)
        if i >= 0 and i != self._window_combo.currentIndex():
            self._window_combo.setCurrentIndex(i)
        self._redraw()

    def set_paused(self, paused: bool) -> None:
        """Freeze the display (samples are still recorded) or catch up with them."""
        paused = bool(paused)
        if paused == self._paused:
            return
        self._paused = paused
        self._pause.setChecked(paused)
        self._pause.setText("Resume" if paused else "Pause")
        if paused:
            # The curves alias the ring buffer, which keeps filling: give them a copy to freeze.
            t, v = self._buffer.view()
            t = t.copy()
            for i, curve in enumerate(self.curves):
                curve.setData(t, v[:, i].copy())
            self._status.setText(self._status.text() + " · paused")
        else:
            self._redraw()

    def clear(self) -> None:
        """Forget the recorded samples (the prediction stays)."""
        self._buffer.clear()
        self._latest = None
        self._y_exact = True
        for curve in self.curves:
            curve.setData([], [])

    def export_png(self, include_status: bool = True) -> bytes:
        """The plot as PNG bytes (pyqtgraph's ImageExporter; the widget's grab() if that fails).

        Args:
            include_status: put the "Now: … with model: …" line above the plot as its title.
        """
        item = self.plot_widget.getPlotItem()
        if include_status and self._status.text():
            item.setTitle(self._status.text(), color=style.palette_colors(self).text.name(), size="10pt")
            item.layout.activate()  # lay the title out now, not on the next event-loop turn
        cached = self._cached_items()
        for it in cached:  # the exporter paints at its own size: straight from the items, not from pixmaps
            it.setCacheMode(QGraphicsItem.CacheMode.NoCache)
        try:
            return style.export_plot_png(self.plot_widget, fallback=self)
        finally:
            for it in cached:
                it.setCacheMode(_CACHED)
            if include_status:
                item.setTitle(None)

    # -- drawing ----------------------------------------------------------------------------------

    def _configure(self, sample: MemorySampleLike, key: tuple[tuple[int, str], ...]) -> None:
        """(Re)build curves and capacity lines for the GPUs this sample has."""
        item = self.plot_widget.getPlotItem()
        for curve in self.curves:
            item.removeItem(curve)
        for line in self.capacity_lines:
            item.removeItem(line)
        for label in self._capacity_labels:
            label.detach()
        self._legend.clear()
        n = 2 + len(sample.gpus)
        if self._buffer.n_columns != n:
            self._buffer = RingBuffer(self._capacity, n)
            self._row = np.zeros(n, dtype=np.float64)
        else:
            self._buffer.clear()
        self._gpu_key = key
        names = ["RAM used", "swap used"] + [f"GPU {g.index} used ({g.name})" for g in sample.gpus]
        self.curves = []
        for name in names:
            curve = _LiveCurve(name=name, connect="finite")
            # No dynamic range limit: the view always holds the data, and the limit's check took
            # the min and max of the whole history on every sample.
            curve.setDynamicRangeLimit(None)
            item.addItem(curve)  # clipped to view, peak-downsampled: the PlotItem's modes
            self._legend.addItem(curve, name)
            self.curves.append(curve)
        self._connect = ["finite"] * len(self.curves)
        self._legend.setColumnCount(min(4, len(names)))
        item.layout.activate()  # the legend grew: settle the layout before the next paint
        self.capacity_lines = []
        self._capacity_labels = []
        for col, total, text in _capacities(sample):
            line = pg.InfiniteLine(pos=total / GIB, angle=0)
            line.series_column = col
            item.addItem(line, ignoreBounds=True)
            self.capacity_lines.append(line)
            label = _LineLabel(self._view, 0.98, (1, 1))
            label.set_text(f"{text} {total / GIB:.1f} GiB")
            self._capacity_labels.append(label)
        self._labelled_y_range = None  # new labels: place them at the next redraw
        self._y_exact = True
        self._recolor()

    def _target(self) -> tuple[int, int | None, str] | None:
        """The predicted memory's (column, total bytes, name) in the latest sample; None if absent."""
        p, s = self._prediction, self._latest
        if p is None or s is None:
            return None
        if p.memory in ("ram", "unified"):
            return 0, s.ram_total_bytes, "RAM"
        for k, g in enumerate(s.gpus):
            if p.gpu_index is None or g.index == p.gpu_index:
                return 2 + k, g.total_bytes, f"GPU {g.index}"
        return None

    def _redraw(self) -> None:
        if len(self._buffer) == 0 or self._latest is None:
            return
        t, v = self._buffer.view()
        now = float(t[-1])
        start = float(t[0]) if self._window_s is None else now - self._window_s
        self._axis.now_s = now  # before the range moves: the axis compares spans in seconds ago
        latest = v[-1]
        top = float(np.nanmax(latest)) if np.isfinite(latest).any() else 0.0
        top = max([top] + [line.value() for line in self.capacity_lines])
        top = max(top, self._draw_prediction(latest))
        if self._run_v:
            top = max(top, self._run_top_gib)
        x_range = (min(start, now - 1.0), now)
        y_top = self._y_top(top)
        for curve in self.curves:
            curve.data_follows = True
        try:
            if y_top is None:
                self._view.setRange(xRange=x_range, padding=0, disableAutoRange=False)
            else:
                self._view.setRange(xRange=x_range, yRange=(0.0, y_top), padding=0, disableAutoRange=False)
        finally:
            for curve in self.curves:
                curve.data_follows = False
        for i, curve in enumerate(self.curves):  # clipped to the new range, once
            self._set_curve_data(i, curve, t, v[:, i])
        # Place the items for the new range now: left to the paint, it moved them during the paint
        # and the scene painted everything a second time.
        self._view.updateMatrix()
        y_range = tuple(self._view.viewRange()[1])
        if y_range != self._labelled_y_range:
            self._place_labels()
        self._status.setText(self._verdict() + (f" · run: {self.run_label}" if self.run_label else ""))

    def _set_curve_data(self, i: int, curve: pg.PlotDataItem, t: np.ndarray[Any, Any],
                        y: np.ndarray[Any, Any]) -> None:
        """Give curve ``i`` the buffer's views; a column known finite skips the finite checks."""
        finite = self._buffer.all_finite(i)
        connect = "all" if finite else "finite"  # "finite" makes pyqtgraph look for NaN to break the line at
        if connect != self._connect[i]:
            self._connect[i] = connect
            curve.setData(t, y, connect=connect, skipFiniteCheck=finite)
        else:
            curve.setData(t, y, skipFiniteCheck=finite)

    def _place_labels(self, *_: object) -> None:
        """Put the lines' labels on their lines (the y range or the view's size changed)."""
        y0, y1 = self._view.viewRange()[1]
        self._labelled_y_range = (y0, y1)
        for line, label in zip(self.capacity_lines, self._capacity_labels, strict=True):
            label.place(line.value())
        self.prediction_label.place(self.prediction_line.value())

    def _show_prediction(self, visible: bool) -> None:
        for it in (self.prediction_line, self.prediction_label, self._band):
            it.setVisible(visible)

    def _moves(self, old_gib: float, new_gib: float) -> bool:
        """Whether a horizontal line moved from ``old_gib`` to ``new_gib`` lands on another pixel."""
        (y0, y1), height_px = self._view.viewRange()[1], float(self._view.height())
        if height_px <= 0 or y1 <= y0:
            return old_gib != new_gib
        return abs(new_gib - old_gib) * height_px / float(y1 - y0) >= SUBPIXEL

    def _y_top(self, highest_gib: float) -> float | None:
        """The view's new top for ``highest_gib`` drawn, or None to keep the current one.

        Exactly :data:`Y_HEADROOM` above after a change of what is drawn (a prediction set or
        cleared, other GPUs); then kept while the sample's wobble stays inside the band.
        """
        needed = max(highest_gib, Y_MIN_TOP_GIB) * Y_HEADROOM
        current = float(self._view.viewRange()[1][1])
        exact, self._y_exact = self._y_exact, False
        if not exact and needed <= current <= needed * Y_SLACK:
            return None
        return needed if needed != current else None

    def _cached_items(self) -> list[QGraphicsItem]:
        item = self.plot_widget.getPlotItem()
        return [item.getAxis("left"), item.getAxis("bottom"), self.prediction_label, *self._capacity_labels]

    def _draw_prediction(self, latest_gib: np.ndarray[Any, Any]) -> float:
        """Place the prediction line and band; returns the band's top in GiB (0 when hidden)."""
        target = self._target()
        p = self._prediction
        if p is None or target is None or not np.isfinite(latest_gib[target[0]]):
            self._show_prediction(False)
            return 0.0
        current = float(latest_gib[target[0]])
        y = current + p.peak_bytes / GIB
        lo, hi = current + p.low_bytes / GIB, current + p.high_bytes / GIB
        # The line follows current use, which moves by a few MiB a sample: move it (and re-place
        # its label) only when it would land on another pixel.
        if self._moves(self.prediction_line.value(), y):
            self.prediction_line.setValue(y)
            self.prediction_label.place(y)  # for the current y range; _redraw places it again if that changes
        self.prediction_label.set_text(f"now + {p.label} peak: {y:.1f} GiB ({lo:.1f}–{hi:.1f})")
        band_lo, band_hi = self._band.getRegion()
        if self._moves(band_lo, lo) or self._moves(band_hi, hi):
            self._band.setRegion((lo, hi))
        self._show_prediction(True)
        return hi

    def _verdict(self) -> str:
        """'Now: 9.1 / 15.5 GiB RAM · with model: 13.4 GiB (fits)'."""
        s = self._latest
        if s is None:
            return ""
        target = self._target()
        if target is None or self._prediction is None:
            parts = [f"Now: {_gib(s.ram_used_bytes)} / {_gib(s.ram_total_bytes)} GiB RAM"]
            parts += [f"GPU {g.index}: {_gib(g.used_bytes)} / {_gib(g.total_bytes)} GiB" for g in s.gpus]
            if self._prediction is not None:
                parts.append("the model's GPU is not sampled")
            elif self._no_prediction_reason:
                parts.append(self._no_prediction_reason)
            return " · ".join(parts)
        col, total, name = target
        used = s.ram_used_bytes if col == 0 else s.gpus[col - 2].used_bytes
        if used is None:
            return f"Now: {name} use unknown · model peak {_gib(self._prediction.peak_bytes)} GiB"
        where = "RAM" if col == 0 else f"on {name}"
        p = self._prediction
        with_model = used + p.peak_bytes
        needs = used + p.required_bytes
        verdict = "capacity unknown"
        if total:
            if used + p.required_high_bytes <= total:
                verdict = "fits"
            else:
                verdict = "may not fit" if needs <= total else "does not fit"
        need = f", needs {_gib(needs)} GiB" if p.required_bytes != p.peak_bytes else ""
        return (f"Now: {_gib(used)} / {_gib(total)} GiB {where} · with model: {_gib(with_model)} GiB{need} "
                f"({verdict})")

    # -- palette ----------------------------------------------------------------------------------

    def changeEvent(self, event: QEvent) -> None:
        # hasattr: a palette may arrive while the constructor is still building the plot.
        if event.type() == QEvent.Type.PaletteChange and hasattr(self, "plot_widget"):
            self._apply_palette()
        super().changeEvent(event)

    def _apply_palette(self) -> None:
        colors = style.style_plot_and_legend(self, self.plot_widget, self._legend)
        vermillion = style.PREDICTION_COLOR
        self.prediction_line.setPen(pg.mkPen(vermillion, width=2, style=Qt.PenStyle.DashLine))
        self.prediction_label.setDefaultTextColor(colors.text)
        self._band.setBrush(pg.mkBrush(style.with_alpha(vermillion, 50)))
        for line in self._band.lines:
            line.setPen(pg.mkPen(None))
        self._recolor()

    def _recolor(self) -> None:
        """Series colors (Okabe–Ito; a lighter blue on dark backgrounds)."""
        dark = style.palette_colors(self).dark
        for i, curve in enumerate(self.curves):
            curve.setPen(pg.mkPen(style.series_color(i, dark), width=2))
        for line, label in zip(self.capacity_lines, self._capacity_labels, strict=True):
            color = style.series_color(line.series_column, dark)
            line.setPen(pg.mkPen(color, width=1, style=Qt.PenStyle.DashLine))
            label.setDefaultTextColor(QColor(color))
        run = style.series_color(4, dark)
        self.run_curve.setPen(pg.mkPen(run, width=2, style=Qt.PenStyle.DashDotLine))
        shade = pg.mkColor(run)
        shade.setAlpha(40)
        self.run_region.setBrush(pg.mkBrush(shade))


def _capacities(sample: MemorySampleLike) -> list[tuple[int, int, str]]:
    """(series column, total bytes, label) per capacity line; GPUs of one size share one line."""
    out = [(0, sample.ram_total_bytes, "RAM total")]
    by_total: dict[int, list[tuple[int, int]]] = {}
    for k, g in enumerate(sample.gpus):
        if g.total_bytes:
            by_total.setdefault(g.total_bytes, []).append((2 + k, g.index))
    for total, gpus in by_total.items():
        names = ", ".join(str(index) for _, index in gpus)
        out.append((gpus[0][0], total, f"GPU{'s' if len(gpus) > 1 else ''} {names} total"))
    return out


def _gib(n: int | None) -> str:
    return "?" if n is None else f"{n / GIB:.1f}"
