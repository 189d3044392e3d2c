"""The verdict banner: the first thing the eye finds — fits or not, by how much, and how sure.

A colored band across the top of the window with one big line ("Fits — 6.2 GiB headroom"), the
estimate's range and where it is held, and the certainty. Colors are strong fills with white text,
which reads the same in light and dark themes; before any analysis the banner uses the palette.
"""

from __future__ import annotations

from typing import Any

from PySide6.QtCore import Qt
from PySide6.QtGui import QColor, QFont, QPalette
from PySide6.QtWidgets import QFrame, QHBoxLayout, QLabel, QSizePolicy, QToolButton, QVBoxLayout, QWidget

from advisor.ui.format import Tone, certainty_line, verdict_detail, verdict_headline, verdict_tone

# NOTE: Material Design 800 shades: white text on them passes WCAG AA contrast (≥ 4.5:1).
TONE_COLORS: dict[Tone, QColor] = {
    "good": QColor("#2e7d32"),
    "warn": QColor("#e65100"),
    "bad": QColor("#c62828"),
}


class VerdictBanner(QFrame):
    """Shows one :class:`~advisor.analysis.Analysis` verdict, or an invitation before the first."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("verdict")
        self.setAutoFillBackground(True)
        self.setSizePolicy(QSizePolicy.Policy.Preferred, QSizePolicy.Policy.Fixed)
        self.tone: Tone = "neutral"
        self.headline = QLabel(self)
        font = QFont(self.headline.font())
        font.setPointSizeF(font.pointSizeF() * 2.0)
        font.setBold(True)
        self.headline.setFont(font)
        self.detail = QLabel(self)
        self.detail.setWordWrap(True)
        self.certainty = QLabel(self)
        for label in (self.headline, self.detail, self.certainty):
            label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
            label.setAutoFillBackground(False)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(16, 10, 16, 10)
        layout.setSpacing(2)
        layout.addWidget(self.headline)
        layout.addWidget(self.detail)
        layout.addWidget(self.certainty)
        self.clear()

    def clear(self, message: str = "Drop a model to see whether it fits") -> None:
        """Neutral banner with a hint."""
        self.headline.setText(message)
        self.detail.setText("Pick a target on the left: this machine, a device from the catalog, or a hardware file.")
        self.certainty.setText("")
        self.certainty.setVisible(False)
        self._paint("neutral")

    def set_analysis(self, analysis: Any) -> None:
        """Show the verdict of ``analysis`` (None: back to the hint)."""
        if analysis is None:
            self.clear()
            return
        fit = analysis.fit
        self.headline.setText(verdict_headline(fit))
        self.detail.setText(verdict_detail(analysis))
        self.certainty.setText(certainty_line(fit))
        self.certainty.setVisible(True)
        self._paint(verdict_tone(fit))

    def _paint(self, tone: Tone) -> None:
        self.tone = tone
        palette = QPalette(self.palette())
        if tone == "neutral":
            app_palette = QPalette()
            base = app_palette.color(QPalette.ColorRole.AlternateBase)
            text = app_palette.color(QPalette.ColorRole.WindowText)
        else:
            base, text = TONE_COLORS[tone], QColor("white")
        palette.setColor(QPalette.ColorRole.Window, base)
        palette.setColor(QPalette.ColorRole.WindowText, text)
        self.setPalette(palette)
        for label in (self.headline, self.detail, self.certainty):
            label.setPalette(palette)


class MessageBar(QFrame):
    """A one-line message under the verdict: an error (kept until closed or replaced) or information.

    Errors never open a modal dialog: the window keeps showing the previous analysis below it.
    """

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("messageBar")
        self.setFrameShape(QFrame.Shape.StyledPanel)
        self.setAutoFillBackground(True)
        self.kind = ""
        self.label = QLabel(self)
        self.label.setWordWrap(True)
        self.label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.close_button = QToolButton(self)
        self.close_button.setText("✕")
        self.close_button.setAutoRaise(True)
        self.close_button.setToolTip("Dismiss")
        self.close_button.clicked.connect(self.dismiss)
        layout = QHBoxLayout(self)
        layout.setContentsMargins(10, 4, 4, 4)
        layout.addWidget(self.label, 1)
        layout.addWidget(self.close_button)
        self.hide()

    def text(self) -> str:
        return self.label.text()

    def show_error(self, text: str) -> None:
        self._show("error", text)

    def show_info(self, text: str) -> None:
        self._show("info", text)

    def dismiss(self) -> None:
        self.kind = ""
        self.hide()

    def _show(self, kind: str, text: str) -> None:
        self.kind = kind
        self.label.setText(text)
        palette = QPalette(self.palette())
        if kind == "error":
            palette.setColor(QPalette.ColorRole.Window, TONE_COLORS["bad"])
            palette.setColor(QPalette.ColorRole.WindowText, QColor("white"))
        else:
            app_palette = QPalette()
            palette.setColor(QPalette.ColorRole.Window, app_palette.color(QPalette.ColorRole.ToolTipBase))
            palette.setColor(QPalette.ColorRole.WindowText, app_palette.color(QPalette.ColorRole.ToolTipText))
        self.setPalette(palette)
        self.label.setPalette(palette)
        self.close_button.setPalette(palette)
        self.show()
