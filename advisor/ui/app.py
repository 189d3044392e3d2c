"""Start the desktop app: :func:`run_app` creates the QApplication, shows the window, opens a model.

``ADVISOR_SCREENSHOT=/path.png`` makes the app save a picture of its own window (as the display
server shows it) once the first analysis is on screen, then quit: the Xvfb check in
``tests/test_xvfb_smoke.py`` uses it to prove the app really draws on a real X11 platform.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from PySide6.QtCore import QTimer
from PySide6.QtGui import QIcon, QPixmap
from PySide6.QtWidgets import QApplication

from advisor._version import __version__
from advisor.resources import resource
from advisor.ui.settings import APPLICATION, ORGANIZATION

if TYPE_CHECKING:
    from advisor.ui.main_window import MainWindow

DESKTOP_FILE_NAME = "io.github.memoryadvisor.MemoryAdvisor"
SCREENSHOT_ENV = "ADVISOR_SCREENSHOT"
# NOTE: let the layout settle and the plot draw a sample or two after the analysis arrives
# before the picture is taken (one event-loop pass is not enough for pyqtgraph's deferred paint).
SCREENSHOT_DELAY_MS = 1500
# A model that cannot be analysed must not leave the check waiting forever.
SCREENSHOT_TIMEOUT_MS = 60_000


def make_application(argv: Sequence[str] | None = None) -> QApplication:
    """The QApplication with the app's names (reused when one exists, as under pytest-qt)."""
    existing = QApplication.instance()
    if isinstance(existing, QApplication):
        return existing
    app = QApplication(list(argv) if argv is not None else sys.argv[:1])
    app.setApplicationName(APPLICATION)
    app.setOrganizationName(ORGANIZATION)
    app.setApplicationVersion(__version__)
    app.setDesktopFileName(DESKTOP_FILE_NAME)
    app.setWindowIcon(app_icon())
    return app


def app_icon() -> QIcon:
    """The app icon, from the SVG shipped in ``resources/icons`` (QtSvg renders it at any size)."""
    data = resource("icons", f"{DESKTOP_FILE_NAME}.svg").read_bytes()
    pixmap = QPixmap()
    pixmap.loadFromData(data)  # the format is sniffed: SVG through the QtSvg image plugin
    return QIcon(pixmap)


# NOTE: a window opened with a model is first painted with its verdict when the estimate comes
# within this long (the sample: ~0.1 s), so it is not painted twice (empty, then filled) on the
# way to the answer; a slower model shows the window at this point, with its progress.
FIRST_SHOW_WAIT_MS = 300


def open_window(path: str | None = None, argv: Sequence[str] | None = None) -> tuple[QApplication, MainWindow]:
    """The application and its window, started on ``path``; shown now without a model, else with
    its first verdict (or after ``FIRST_SHOW_WAIT_MS``, or on an error, whichever comes first)."""
    app = make_application(argv)
    from advisor.ui.main_window import MainWindow  # after the QApplication: widgets need it

    window = MainWindow()
    if path:
        p = window.presenter
        done: list[bool] = []

        def show(*_: object) -> None:
            if done:
                return
            done.append(True)
            p.analysisChanged.disconnect(show)
            p.errorOccurred.disconnect(show)
            window.show()

        p.analysisChanged.connect(show)
        p.errorOccurred.connect(show)
        QTimer.singleShot(FIRST_SHOW_WAIT_MS, show)
    else:
        window.show()
    window.start(path)
    return app, window


def run_app(path: str | None = None, argv: Sequence[str] | None = None) -> int:
    """Show the Memory Advisor window, open ``path`` if given, and run until it closes.

    Returns:
        The event loop's exit code (0 on a normal close; 3 when a requested screenshot failed).
    """
    app, window = open_window(path, argv)
    shot = os.environ.get(SCREENSHOT_ENV)
    if shot:
        _screenshot_after_first_analysis(app, window, Path(shot))
    code = app.exec()
    window.shutdown()
    return int(code)


def _screenshot_after_first_analysis(app: QApplication, window: object, out: Path) -> None:
    """Save the window to ``out`` once the first plan is shown (or give up after a minute), then quit."""
    from advisor.ui.main_window import MainWindow

    assert isinstance(window, MainWindow)

    def grab() -> None:
        screen = window.screen()
        pixmap = screen.grabWindow(window.winId()) if screen is not None else None
        if pixmap is None or pixmap.isNull():
            pixmap = window.grab()  # the platform cannot read the window back: render it ourselves
        ok = pixmap.save(str(out), "PNG")
        window.close()
        app.exit(0 if ok else 3)

    def give_up() -> None:
        print(f"advisor: no analysis within {SCREENSHOT_TIMEOUT_MS // 1000} s; saving the window anyway",
              file=sys.stderr)
        grab()

    timeout = QTimer(window)
    timeout.setSingleShot(True)
    timeout.timeout.connect(give_up)
    timeout.start(SCREENSHOT_TIMEOUT_MS)

    def planned(_plan: object) -> None:
        timeout.stop()
        window.presenter.planChanged.disconnect(planned)
        QTimer.singleShot(SCREENSHOT_DELAY_MS, grab)

    window.presenter.planChanged.connect(planned)
