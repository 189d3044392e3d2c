"""Where a model is dropped: files and folders (a Hugging Face folder, a sharded set).

It accepts a drag only when it carries at least one local file or folder URL, highlights itself
while such a drag hovers (palette ``Highlight``, so light and dark themes both read), and
ignores text, web links and other drops.
"""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import QMimeData, Qt, Signal
from PySide6.QtGui import QDragEnterEvent, QDragLeaveEvent, QDropEvent, QMouseEvent, QPalette
from PySide6.QtWidgets import QFrame, QLabel, QVBoxLayout, QWidget


def local_paths(mime: QMimeData) -> list[str]:
    """Local file or folder paths a drag carries (web URLs and plain text are left out)."""
    if not mime.hasUrls():
        return []
    return [url.toLocalFile() for url in mime.urls() if url.isLocalFile() and url.toLocalFile()]


class DropZone(QFrame):
    """A framed area that opens the dropped model; a click asks for a file instead.

    Signals:
        pathDropped(str): the first local path of an accepted drop.
        clicked(): the person clicked the zone (the window shows File ▸ Open).
    """

    pathDropped = Signal(str)
    clicked = Signal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setAcceptDrops(True)
        self.setFrameShape(QFrame.Shape.StyledPanel)
        self.setFrameShadow(QFrame.Shadow.Sunken)
        self.setAutoFillBackground(True)
        self.setCursor(Qt.CursorShape.PointingHandCursor)
        self.setToolTip("Drop an ONNX, safetensors or GGUF file, or a model folder; or click to choose one")
        self.hovering = False
        self.label = QLabel(self)
        self.label.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.label.setWordWrap(True)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(8, 6, 8, 6)
        layout.addWidget(self.label)
        self.set_current(None)
        self.set_hover(False)

    def set_current(self, name: str | None) -> None:
        """Say what is open (or invite a drop when nothing is)."""
        if name:
            self.label.setText(f"<b>{_escape(name)}</b><br><small>Drop another model here to replace it</small>")
            self.setMinimumHeight(52)
        else:
            self.label.setText(
                "<b>Drop a model here</b><br><small>ONNX, safetensors (file, shards or Hugging Face folder), "
                "GGUF — or click to choose</small>"
            )
            self.setMinimumHeight(88)

    def set_hover(self, hovering: bool) -> None:
        """Highlight the zone while a model is dragged over it (or over the window around it)."""
        self.hovering = hovering
        self.setBackgroundRole(QPalette.ColorRole.Highlight if hovering else QPalette.ColorRole.Base)
        self.label.setForegroundRole(
            QPalette.ColorRole.HighlightedText if hovering else QPalette.ColorRole.WindowText
        )
        self.update()

    def dragEnterEvent(self, event: QDragEnterEvent) -> None:  # Qt's name
        if local_paths(event.mimeData()):
            event.acceptProposedAction()
            self.set_hover(True)
        else:
            event.ignore()

    def dragLeaveEvent(self, event: QDragLeaveEvent) -> None:  # Qt's name
        self.set_hover(False)
        event.accept()

    def dropEvent(self, event: QDropEvent) -> None:  # Qt's name
        self.set_hover(False)
        paths = local_paths(event.mimeData())
        if not paths:
            event.ignore()
            return
        event.acceptProposedAction()
        self.pathDropped.emit(str(Path(paths[0])))

    def mouseReleaseEvent(self, event: QMouseEvent) -> None:  # Qt's name
        if event.button() == Qt.MouseButton.LeftButton:
            self.clicked.emit()
        super().mouseReleaseEvent(event)


def _escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
