"""Where the predicted peak goes: a horizontal stacked bar per memory the model uses.

One bar for the memory the fit is judged on (RAM, a GPU's VRAM, or unified memory), split into
weights / activations / KV cache / runtime overhead; for GPU runtimes that also need host RAM
(offloaded layers, load-time staging) a second bar for system RAM. Each bar shows its capacity as
a line, the margin kept free as a hatched zone ending at the capacity, and the estimate's
low..high range as an error bar around the peak.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QEvent, Qt
from PySide6.QtGui import QBrush
from PySide6.QtWidgets import QVBoxLayout, QWidget

from advisor.analysis import Analysis
from advisor.estimator.fit import ram_budget
from advisor.estimator.types import GIB, MIB
from advisor.ui import render as style
from advisor.units import format_bytes
from advisor.verdict import verdict_words

# Part name → Okabe–Ito color name (see advisor/ui/render.py).
PART_COLORS: dict[str, str] = {
    "weights": "blue",
    "activations": "orange",
    "KV cache": "bluish_green",
    "runtime overhead": "reddish_purple",
    "model on GPU (shared RAM)": "blue",
    "host RAM (offload, staging)": "sky_blue",
    "CPU side (same RAM)": "sky_blue",
    "file pages the OS can drop": "yellow",
}
DROPPABLE = "file pages the OS can drop"
MARGIN_COLOR = "vermillion"
BAR_HEIGHT = 0.42


@dataclass(frozen=True)
class BarRow:
    """One bar: the parts stacked on a memory, against its capacity.

    Attributes:
        label: the memory ("GPU 0 · NVIDIA H100 80GB HBM3", "RAM", "host RAM").
        parts: (part name, bytes) in stacking order.
        capacity_bytes / budget_bytes: the memory, and what is left of it after the margin.
        peak_bytes / low_bytes / high_bytes: the prediction on this memory and its range.
        required_bytes / required_low_bytes / required_high_bytes: what the run needs there (the
            verdict's figure: the peak less pages the OS can drop); -1 = the peak's.
    """

    label: str
    parts: tuple[tuple[str, int], ...]
    capacity_bytes: int
    budget_bytes: int
    peak_bytes: int
    low_bytes: int
    high_bytes: int
    required_bytes: int = -1
    required_low_bytes: int = -1
    required_high_bytes: int = -1

    def __post_init__(self) -> None:
        for need, peak in (("required_bytes", self.peak_bytes), ("required_low_bytes", self.low_bytes),
                           ("required_high_bytes", self.high_bytes)):
            if getattr(self, need) < 0:
                object.__setattr__(self, need, peak)

    @property
    def margin_bytes(self) -> int:
        return self.capacity_bytes - self.budget_bytes

    @property
    def parts_bytes(self) -> int:
        return sum(b for _, b in self.parts)


def breakdown_rows(analysis: Analysis) -> tuple[BarRow, ...]:
    """The bars the chart draws for ``analysis``: the fit's memory first, then host RAM if used.

    Where GPU and CPU share one memory (Jetson), both sides are one bar on that memory. Pages the
    OS can drop (llama.cpp's repacked file pages) are a part of their own, last: the need ends
    where they start, the peak where they end.
    """
    est, fit = analysis.estimate, analysis.fit
    drop = est.reclaimable_bytes
    parts: tuple[tuple[str, int], ...] = (
        ("weights", est.weights_bytes),
        ("activations", est.activation_bytes),
        ("KV cache", est.kv_cache_bytes),
        ("runtime overhead", est.overhead_bytes),
        *(((DROPPABLE, drop),) if drop else ()),
    )
    basis = "available now" if fit.basis == "available" else "total"
    host = est.host_bytes if est.device == "cuda" and est.host_bytes else 0
    if host and fit.memory == "unified":
        # One pool: the GPU's share and the CPU side live in the same RAM (fit.host_fits counts both).
        capacity, margin, _ = ram_budget(analysis.hardware)
        return (
            BarRow(f"{fit.label} — {format_bytes(capacity)} {basis}", (*parts, ("CPU side (same RAM)", host)),
                   capacity, min(fit.budget_bytes, capacity - margin), est.peak_bytes + host, est.low_bytes + host,
                   est.high_bytes + host, est.required_bytes + host, est.required_low_bytes + host,
                   est.required_high_bytes + host),
        )
    rows = [
        BarRow(
            f"{fit.label} — {format_bytes(fit.capacity_bytes)} {basis}",
            parts,
            fit.capacity_bytes,
            fit.budget_bytes,
            fit.peak_bytes,
            fit.low_bytes,
            fit.high_bytes,
            fit.required_bytes,
            fit.required_low_bytes,
            fit.required_high_bytes,
        )
    ]
    if host:
        capacity, margin, ram_basis = ram_budget(analysis.hardware)
        ram_basis_text = "available now" if ram_basis == "available" else "total"
        rows.append(
            BarRow(
                f"host RAM — {format_bytes(capacity)} {ram_basis_text}",
                (("host RAM (offload, staging)", host),),
                capacity,
                capacity - margin,
                host,
                host,
                host,
            )
        )
    return tuple(rows)


def verdict_text(analysis: Analysis) -> str:
    """One line: 'Fits — 58 GiB headroom: peak 13.4 GiB (range …) of a 71.0 GiB budget on GPU 0 · …'."""
    fit = analysis.fit
    word, amount = verdict_words(fit)
    if fit.error:
        return f"{word} — {amount}"
    # short: the title's width is the chart's minimum width (the bar's label has the range and the peak)
    text = f"{word} — {amount}: needs {format_bytes(fit.required_bytes)} of a {format_bytes(fit.budget_bytes)} budget"
    if fit.host_fits is False:
        text += " · host RAM too small"
    return text


class BreakdownChart(QWidget):
    """Stacked bars of the predicted peak's parts against the target memory."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        pg.setConfigOptions(antialias=True)
        self._analysis: Analysis | None = None
        self.rows: tuple[BarRow, ...] = ()
        self._unit = GIB  # bytes per axis unit: GiB, or MiB when zoomed on a small model
        self.zoomed = False
        self.bars: dict[str, pg.BarGraphItem] = {}
        self.capacity_lines: list[pg.PlotDataItem] = []
        self.error_bars: list[pg.ErrorBarItem] = []
        self.measured_bytes: int | None = None
        self.measured_marker: pg.PlotDataItem | None = None
        self.plot_widget = pg.PlotWidget()
        item = self.plot_widget.getPlotItem()
        item.setMouseEnabled(x=False, y=False)
        item.hideButtons()
        item.setMenuEnabled(False)
        item.hideAxis("left")
        item.setLabel("bottom", "memory", units="GiB")
        item.getAxis("bottom").enableAutoSIPrefix(False)
        item.showGrid(x=True, y=False, alpha=0.15)
        self._legend = pg.LegendItem(colCount=4)
        item.layout.addItem(self._legend, 4, 1)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.plot_widget)
        self._apply_palette()

    @property
    def analysis(self) -> Analysis | None:
        return self._analysis

    def set_analysis(self, analysis: Analysis | None) -> None:
        """Show ``analysis`` (None: an empty chart)."""
        self._analysis = analysis
        self.rows = breakdown_rows(analysis) if analysis is not None else ()
        self._draw()

    def set_measured(self, peak_bytes: int | None) -> None:
        """Mark what a measurement here found (the first bar's memory), next to the prediction."""
        self.measured_bytes = peak_bytes
        self._draw()

    def export_png(self, width: int = 900, height: int | None = None) -> bytes:
        """The chart as PNG bytes at ``width`` × ``height`` (height: from the number of bars)."""
        if height is None:
            height = 150 + 110 * max(1, len(self.rows))
        copy = BreakdownChart()
        copy.setPalette(self.palette())
        try:
            style.prepare_offscreen(copy, width, height)
            copy.set_analysis(self._analysis)
            return style.export_plot_png(copy.plot_widget, fallback=copy)
        finally:
            copy.close()
            copy.deleteLater()

    # -- drawing ----------------------------------------------------------------------------------

    def _draw(self) -> None:
        item = self.plot_widget.getPlotItem()
        item.clear()
        self._legend.clear()
        self.bars, self.capacity_lines, self.error_bars = {}, [], []
        colors = style.palette_colors(self)
        if not self.rows or self._analysis is None:
            item.setTitle("No analysis yet", color=colors.text.name())
            return
        item.setTitle(verdict_text(self._analysis), color=colors.text.name(), size="10pt")
        self._choose_scale()
        item.setLabel("bottom", "memory", units="MiB" if self._unit == MIB else "GiB")
        n = len(self.rows)
        ys = [float(n - 1 - i) for i in range(n)]  # first row on top
        self._draw_parts(ys)
        x_max = 0.0
        for row, y in zip(self.rows, ys, strict=True):
            x_max = max(x_max, self._draw_row_extras(row, y, colors))
        x_max = max(x_max, 0.1)
        self.measured_marker = None
        if self.measured_bytes is not None:
            x = self.measured_bytes / self._unit
            self.measured_marker = pg.PlotDataItem([x, x], [ys[0] - 0.42, ys[0] + 0.42],
                                                   pen=pg.mkPen(colors.text, width=3, style=Qt.PenStyle.DotLine))
            item.addItem(self.measured_marker)
            self._legend_once(self.measured_marker, f"measured here: {format_bytes(self.measured_bytes)}")
            x_max = max(x_max, x * 1.05)
        if self.zoomed:
            # The model is a sliver of the capacity: show its parts at a readable scale and say where the
            # capacity is instead of drawing a bar nobody can see.
            x_max = max(max(r.required_high_bytes, r.parts_bytes) for r in self.rows) / self._unit * 1.35
            for row, y in zip(self.rows, ys, strict=True):
                note = pg.TextItem(f"capacity {format_bytes(row.capacity_bytes)} →", color=colors.text.name(),
                                   anchor=(1, 0.5))
                note.setPos(x_max, y)
                item.addItem(note)
        item.setXRange(-0.01 * x_max, x_max * 1.04, padding=0)
        item.setYRange(-0.5, n - 0.5 + 0.35, padding=0)
        item.layout.activate()  # title and legend changed: settle the layout before the next paint

    def _choose_scale(self) -> None:
        """Zoom in (and switch to MiB under 1 GiB) when the model needs under 10 % of the smallest capacity."""
        need = max(max(r.high_bytes, r.required_high_bytes, r.parts_bytes) for r in self.rows)
        capacity = min(r.capacity_bytes for r in self.rows)
        self.zoomed = capacity > 0 and need < 0.1 * capacity
        self._unit = MIB if self.zoomed and need < GIB else GIB

    def _draw_parts(self, ys: list[float]) -> None:
        """One BarGraphItem per part name across the rows, stacked left to right."""
        item = self.plot_widget.getPlotItem()
        starts = [0.0] * len(self.rows)
        names: list[str] = []
        for row in self.rows:
            names += [name for name, _ in row.parts if name not in names]
        for name in names:
            x0, widths, yy = [], [], []
            for r, row in enumerate(self.rows):
                size = dict(row.parts).get(name, 0) / self._unit
                if size > 0:
                    x0.append(starts[r])
                    widths.append(size)
                    yy.append(ys[r])
                    starts[r] += size
            if not widths:
                continue
            color = style.OKABE_ITO[PART_COLORS.get(name, "yellow")]
            bar = pg.BarGraphItem(
                x0=x0, y=yy, width=widths, height=BAR_HEIGHT, brush=pg.mkBrush(color), pen=pg.mkPen(None)
            )
            item.addItem(bar)
            self._legend.addItem(bar, name)
            self.bars[name] = bar

    def _draw_row_extras(self, row: BarRow, y: float, colors: style.PaletteColors) -> float:
        """Margin zone, capacity line, range, and labels of one bar; returns its right end (GiB)."""
        item = self.plot_widget.getPlotItem()
        text = colors.text.name()
        cap, budget = row.capacity_bytes / self._unit, row.budget_bytes / self._unit
        half = BAR_HEIGHT / 2 + 0.08
        track = pg.BarGraphItem(
            x0=[0], y=[y], width=[cap], height=BAR_HEIGHT, brush=style.with_alpha(colors.grid, 40), pen=pg.mkPen(None)
        )
        track.setZValue(-5)  # the empty capacity behind the parts
        item.addItem(track)
        if row.margin_bytes > 0:
            hatch = QBrush(style.with_alpha(style.OKABE_ITO[MARGIN_COLOR], 200), Qt.BrushStyle.BDiagPattern)
            zone = pg.BarGraphItem(
                x0=[budget],
                y=[y],
                width=[cap - budget],
                height=2 * half,
                brush=hatch,
                pen=pg.mkPen(style.with_alpha(style.OKABE_ITO[MARGIN_COLOR], 160)),
            )
            zone.setZValue(5)
            item.addItem(zone)
            self._legend_once(zone, "margin kept free")
        line = pg.PlotDataItem([cap, cap], [y - half - 0.04, y + half + 0.04], pen=pg.mkPen(text, width=2.5))
        line.setZValue(10)
        item.addItem(line)
        self.capacity_lines.append(line)
        self._legend_once(line, "capacity")
        # the marker and its range: what the run needs (the verdict's figure)
        peak, low, high = (row.required_bytes / self._unit, row.required_low_bytes / self._unit,
                           row.required_high_bytes / self._unit)
        if high > low:
            err = pg.ErrorBarItem(
                x=np.array([peak]),
                y=np.array([y]),
                left=np.array([peak - low]),
                right=np.array([high - peak]),
                beam=BAR_HEIGHT / 2,
                pen=pg.mkPen(text, width=1.5),
            )
            err.setZValue(11)
            item.addItem(err)
            self.error_bars.append(err)
            marker = pg.ScatterPlotItem([peak], [y], symbol="d", size=9, brush=pg.mkBrush(text), pen=pg.mkPen(None))
            marker.setZValue(12)
            item.addItem(marker)
            self._legend_once(marker, "needs, low–high")
        summary = format_bytes(row.required_bytes) + (
            f" (range {format_bytes(row.required_low_bytes)}–{format_bytes(row.required_high_bytes)})"
            if high > low else ""
        )
        if row.required_bytes != row.peak_bytes:
            summary += f", peak shown {format_bytes(row.peak_bytes)}"
        label = pg.TextItem(f"{row.label}  ·  needs {summary}", color=text, anchor=(0, 1))
        label.setPos(0, y + half)
        item.addItem(label)
        return max(cap, high, row.parts_bytes / self._unit)

    def _legend_once(self, item: pg.GraphicsObject, name: str) -> None:
        if name not in [label.text for _, label in self._legend.items]:
            self._legend.addItem(item, name)

    # -- palette ----------------------------------------------------------------------------------

    def changeEvent(self, event: QEvent) -> None:  # Qt's name
        # hasattr: a palette may arrive while the constructor is still building the plot.
        if event.type() == QEvent.Type.PaletteChange and hasattr(self, "plot_widget"):
            self._apply_palette()
        super().changeEvent(event)

    def _apply_palette(self) -> None:
        style.style_plot_and_legend(self, self.plot_widget, self._legend)
        if self.rows:
            self._draw()
