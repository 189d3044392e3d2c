"""The live memory plot: RAM, swap and each GPU's VRAM over time, and where the model would land.

Built like pyqtgraph's scrolling-plot example (a ring buffer, ``setData`` with peak downsampling
and clip-to-view) but as a widget with no globals and no ``processEvents()``. The prediction line
sits at *current use + the model's predicted peak* on the memory the model targets, with its
low..high range shaded: would it fit right now?
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QEvent, Qt
from PySide6.QtWidgets import QComboBox, QHBoxLayout, QLabel, QToolButton, QVBoxLayout, QWidget

from advisor.analysis import Analysis
from advisor.estimator.types import GIB
from advisor.ui import render as style
from advisor.ui.live_memory import MemorySampleLike
from advisor.ui.ring_buffer import DEFAULT_CAPACITY, RingBuffer

PredictionMemory = Literal["ram", "gpu", "unified"]

# Time windows the combo offers: (label, seconds; None = the whole history).
WINDOWS: tuple[tuple[str, int | None], ...] = (("1 min", 60), ("5 min", 300), ("10 min", 600), ("All", None))
DEFAULT_WINDOW_S = 300


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
        self.curves: list[pg.PlotDataItem] = []
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
        self._status = QLabel("Waiting for the first memory sample…")
        self._status.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)

        self._axis = style.SecondsAgoAxis()
        self.plot_widget = pg.PlotWidget(axisItems={"bottom": self._axis})
        item = self.plot_widget.getPlotItem()
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
        self.prediction_line = pg.InfiniteLine(
            angle=0, movable=False, label="", labelOpts={"position": 0.02, "anchors": [(0, 1), (0, 1)]}
        )
        for it in (self._band, self.prediction_line):
            it.setVisible(False)
            item.addItem(it, ignoreBounds=True)

        # A measurement's run: a shaded span from its start and its own curve (RAM used when it
        # began + the run's resident bytes), next to the predicted line.
        self.run_region = pg.LinearRegionItem((0, 0), orientation="vertical", movable=False)
        self.run_region.setZValue(-20)
        self.run_curve = pg.PlotDataItem(name="measured run", connect="finite")
        self.run_region.setVisible(False)
        item.addItem(self.run_region, ignoreBounds=True)
        item.addItem(self.run_curve)
        self._run_t0: float | None = None
        self._run_base_gib = 0.0
        self._run_t: list[float] = []
        self._run_v: list[float] = []
        self.run_label = ""

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
        layout.addWidget(self._status)
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
        self._status.setVisible(visible)
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
        self.run_label = label
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
        if not self._paused:
            self._redraw()

    def clear_prediction(self, reason: str | None = None) -> None:
        """Hide the prediction line; ``reason`` (shown in the status line) says why there is none."""
        self._prediction = None
        self._no_prediction_reason = reason
        self.prediction_line.setVisible(False)
        self._band.setVisible(False)
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
        try:
            return style.export_plot_png(self.plot_widget, fallback=self)
        finally:
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
            curve = pg.PlotDataItem(name=name, connect="finite")
            curve.setDownsampling(auto=True, method="peak")
            curve.setClipToView(True)
            item.addItem(curve)
            self._legend.addItem(curve, name)
            self.curves.append(curve)
        self._legend.setColumnCount(min(4, len(names)))
        item.layout.activate()  # the legend grew: settle the layout before the next paint
        self.capacity_lines = []
        for col, total, text in _capacities(sample):
            line = pg.InfiniteLine(
                pos=total / GIB,
                angle=0,
                label=f"{text} {total / GIB:.1f} GiB",
                labelOpts={"position": 0.98, "anchors": [(1, 1), (1, 1)]},
            )
            line.series_column = col
            item.addItem(line, ignoreBounds=True)
            self.capacity_lines.append(line)
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
        for i, curve in enumerate(self.curves):
            curve.setData(t, v[:, i])
        now = float(t[-1])
        start = float(t[0]) if self._window_s is None else now - self._window_s
        self._axis.now_s = now
        item = self.plot_widget.getPlotItem()
        item.setXRange(min(start, now - 1.0), now, padding=0)
        top = float(np.nanmax(v[-1])) if np.isfinite(v[-1]).any() else 0.0
        top = max([top] + [line.value() for line in self.capacity_lines])
        top = max(top, self._draw_prediction(v[-1]))
        if self._run_v:
            top = max(top, max(self._run_v))
        item.setYRange(0, max(top, 0.5) * 1.12, padding=0)
        self._status.setText(self._verdict() + (f" · run: {self.run_label}" if self.run_label else ""))

    def _draw_prediction(self, latest_gib: np.ndarray[Any, Any]) -> float:
        """Place the prediction line and band; returns the band's top in GiB (0 when hidden)."""
        target = self._target()
        p = self._prediction
        if p is None or target is None or not np.isfinite(latest_gib[target[0]]):
            self.prediction_line.setVisible(False)
            self._band.setVisible(False)
            return 0.0
        current = float(latest_gib[target[0]])
        y = current + p.peak_bytes / GIB
        self.prediction_line.setValue(y)
        lo, hi = current + p.low_bytes / GIB, current + p.high_bytes / GIB
        self.prediction_line.label.setFormat(f"now + {p.label} peak: {y:.1f} GiB ({lo:.1f}–{hi:.1f})")
        self._band.setRegion((lo, hi))
        self.prediction_line.setVisible(True)
        self._band.setVisible(True)
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
        self.prediction_line.label.setColor(colors.text)
        self._band.setBrush(pg.mkBrush(style.with_alpha(vermillion, 50)))
        for line in self._band.lines:
            line.setPen(pg.mkPen(None))
        self._recolor()

    def _recolor(self) -> None:
        """Series colors (Okabe–Ito; a lighter blue on dark backgrounds)."""
        dark = style.palette_colors(self).dark
        for i, curve in enumerate(self.curves):
            curve.setPen(pg.mkPen(style.series_color(i, dark), width=2))
        for line in self.capacity_lines:
            color = style.series_color(line.series_column, dark)
            line.setPen(pg.mkPen(color, width=1, style=Qt.PenStyle.DashLine))
            line.label.setColor(color)
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
