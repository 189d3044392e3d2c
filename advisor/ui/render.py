"""Chart styling shared by the two charts, PNG export, and headless rendering for the CLI report.

Colors are the Okabe–Ito palette (Okabe & Ito, "Color Universal Design", 2008;
https://jfly.uni-koeln.de/color/), distinguishable with the common color-vision deficiencies.
Text, axes and background come from the widget's palette, so the charts read in light and dark themes.

:func:`render_breakdown_png` and :func:`render_memory_png` work without a window: they create a
``QApplication`` on the offscreen platform when none exists (only when there is no display and
the caller has not chosen a platform).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import pyqtgraph as pg
from PySide6.QtCore import QBuffer, QByteArray, QIODevice
from PySide6.QtGui import QColor, QImage, QPalette

if TYPE_CHECKING:
    from PySide6.QtWidgets import QWidget

    from advisor.analysis import Analysis
    from advisor.ui.live_memory import MemorySampleLike
    from advisor.ui.memory_plot import Prediction

# Okabe–Ito, in the order the charts use them.
OKABE_ITO = {
    "blue": "#0072B2",
    "orange": "#E69F00",
    "bluish_green": "#009E73",
    "reddish_purple": "#CC79A7",
    "sky_blue": "#56B4E9",
    "vermillion": "#D55E00",
    "yellow": "#F0E442",
}
_SERIES = ("blue", "orange", "bluish_green", "reddish_purple", "sky_blue", "yellow")
# On a dark background the deep blue is hard to see; sky blue takes its place.
_SERIES_DARK = ("sky_blue", "orange", "bluish_green", "reddish_purple", "blue", "yellow")
PREDICTION_COLOR = OKABE_ITO["vermillion"]
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"

_app: Any = None  # the QApplication this module created, kept alive for later renders


@dataclass(frozen=True)
class PaletteColors:
    """The colors a chart takes from its widget's palette."""

    background: QColor
    text: QColor
    grid: QColor
    legend_brush: QColor
    dark: bool


def palette_colors(widget: QWidget) -> PaletteColors:
    """Background, text and grid colors from ``widget``'s palette (light or dark)."""
    pal = widget.palette()
    bg = pal.color(QPalette.ColorRole.Base)
    text = pal.color(QPalette.ColorRole.WindowText)
    dark = bg.lightnessF() < text.lightnessF()
    grid = _mix(bg, text, 0.45)
    legend = QColor(bg)
    legend.setAlpha(215)
    return PaletteColors(bg, text, grid, legend, dark)


def series_color(index: int, dark: bool = False) -> str:
    """The ``index``-th line color (cycles through six Okabe–Ito hues)."""
    names = _SERIES_DARK if dark else _SERIES
    return OKABE_ITO[names[index % len(names)]]


def with_alpha(color: str | QColor, alpha: int) -> QColor:
    out = QColor(color)
    out.setAlpha(alpha)
    return out


def _mix(a: QColor, b: QColor, f: float) -> QColor:
    return QColor.fromRgbF(
        a.redF() + (b.redF() - a.redF()) * f,
        a.greenF() + (b.greenF() - a.greenF()) * f,
        a.blueF() + (b.blueF() - a.blueF()) * f,
    )


def style_plot(plot_widget: pg.PlotWidget, colors: PaletteColors) -> None:
    """Background, axes, tick labels and title in the palette's colors."""
    plot_widget.setBackground(colors.background)
    item = plot_widget.getPlotItem()
    for name in ("left", "bottom", "right", "top"):
        axis = item.getAxis(name)
        axis.setPen(colors.grid)
        axis.setTextPen(colors.text)
        if axis.label is not None and axis.labelText:
            axis.setLabel(axis.labelText, units=axis.labelUnits, color=colors.text.name())
    item.titleLabel.setAttr("color", colors.text.name())



def style_plot_and_legend(widget: QWidget, plot_widget: Any, legend: Any) -> PaletteColors:
    """Style a chart and its legend from ``widget`` 's palette (light or dark); returns the colors used."""
    colors = palette_colors(widget)
    style_plot(plot_widget, colors)
    legend.setLabelTextColor(colors.text)
    legend.setBrush(pg.mkBrush(None))
    legend.setPen(pg.mkPen(None))
    return colors

def image_to_png(image: QImage) -> bytes:
    """Encode a QImage as PNG bytes."""
    data = QByteArray()
    buf = QBuffer(data)
    buf.open(QIODevice.OpenModeFlag.WriteOnly)
    if not image.save(buf, "PNG"):  # type: ignore[call-overload]  # the stubs say bytes; PySide6 wants str
        raise RuntimeError("Qt could not encode the chart as PNG")
    buf.close()
    return bytes(data.data())


def export_plot_png(plot_widget: pg.PlotWidget, fallback: QWidget | None = None) -> bytes:
    """The plot item as PNG at the widget's size (pyqtgraph's ImageExporter; ``grab()`` if it fails)."""
    from pyqtgraph.exporters import ImageExporter

    item = plot_widget.getPlotItem()
    item.layout.activate()  # place title and legend now, not on the next event-loop turn
    try:
        exporter = ImageExporter(item)
        width = max(1, plot_widget.width())
        exporter.parameters()["width"] = width
        exporter.parameters()["antialias"] = True
        image = exporter.export(toBytes=True)
        if isinstance(image, QImage) and not image.isNull():
            return image_to_png(image)
    except Exception:  # pyqtgraph exporters have failed on some Qt versions (SVG on Qt ≥ 6.11)
        pass
    return image_to_png((fallback or plot_widget).grab().toImage())


class SecondsAgoAxis(pg.AxisItem):  # type: ignore[misc]
    """Bottom axis over monotonic seconds that labels ticks as seconds before the newest sample."""

    def __init__(self) -> None:
        super().__init__("bottom")
        self.now_s = 0.0
        self.enableAutoSIPrefix(False)

    # pyqtgraph's method and argument names.
    def tickValues(self, minVal: float, maxVal: float, size: float) -> list[tuple[float, list[float]]]:
        levels = super().tickValues(self.now_s - maxVal, self.now_s - minVal, size)
        return [(spacing, [self.now_s - ago for ago in values]) for spacing, values in levels]

    def tickStrings(self, values: list[float], scale: float, spacing: float) -> list[str]:
        out = []
        for v in values:
            ago = round(self.now_s - v, 6)
            out.append("now" if abs(ago) < 1e-6 else f"{ago:g}")
        return out


def ensure_qapp() -> Any:
    """The running QApplication, or a new one (offscreen when there is no display)."""
    global _app
    from PySide6.QtWidgets import QApplication

    app = QApplication.instance()
    if app is not None:
        return app
    headless = not os.environ.get("DISPLAY") and not os.environ.get("WAYLAND_DISPLAY")
    if headless and "QT_QPA_PLATFORM" not in os.environ:
        os.environ["QT_QPA_PLATFORM"] = "offscreen"
    if os.environ.get("QT_QPA_PLATFORM") == "offscreen":
        _quiet_offscreen_warnings()
    _app = QApplication(["memory-advisor"])
    return _app


# NOTE: the offscreen platform plugin warns once per shown widget that it "does not support
# propagateSizeHints()"; rendering a chart for the CLI's report is not worth a warning in the terminal.
_OFFSCREEN_NOISE = ("does not support propagateSizeHints",)


def _quiet_offscreen_warnings() -> None:
    """Drop the offscreen plugin's known noise; pass every other Qt message on to stderr."""
    from PySide6.QtCore import QtMsgType, qInstallMessageHandler

    def handler(kind: QtMsgType, context: object, message: str) -> None:
        del context
        if kind == QtMsgType.QtWarningMsg and any(n in message for n in _OFFSCREEN_NOISE):
            return
        print(message, file=sys.stderr)

    qInstallMessageHandler(handler)


def prepare_offscreen(widget: QWidget, width: int, height: int) -> None:
    """Lay ``widget`` out at ``width`` × ``height`` without putting it on a screen."""
    from PySide6.QtCore import Qt

    widget.setAttribute(Qt.WidgetAttribute.WA_DontShowOnScreen, True)
    widget.resize(width, height)
    widget.show()
    layout = widget.layout()
    if layout is not None:
        layout.activate()


def render_breakdown_png(analysis: Analysis, width: int = 900, height: int = 320) -> bytes:
    """The memory breakdown of ``analysis`` as a PNG, for reports and the CLI."""
    ensure_qapp()
    from advisor.ui.breakdown_chart import BreakdownChart

    chart = BreakdownChart()
    try:
        chart.set_analysis(analysis)
        return chart.export_png(width, height)
    finally:
        chart.close()
        chart.deleteLater()


def render_memory_png(
    samples: Iterable[MemorySampleLike],
    prediction: Prediction | None = None,
    width: int = 900,
    height: int = 420,
    window_s: int | None = None,
) -> bytes:
    """A memory plot of recorded ``samples`` (with the model's predicted landing point) as a PNG."""
    ensure_qapp()
    from advisor.ui.memory_plot import MemoryPlot

    plot = MemoryPlot()
    try:
        plot.set_controls_visible(False)
        prepare_offscreen(plot, width, height)
        for sample in samples:
            plot.add_sample(sample)
        if prediction is not None:
            p = prediction
            plot.set_prediction(p.peak_bytes, p.low_bytes, p.high_bytes, p.memory, p.gpu_index, p.label,
                                p.required_bytes, p.required_high_bytes)
        plot.set_window_s(window_s)
        return plot.export_png()
    finally:
        plot.close()
        plot.deleteLater()
