"""The ranked plan as a table: :class:`PlanTableModel` (tested without a view) and :class:`PlanView`.

Rows are the core's :class:`~advisor.plan.types.PlanOption` s in the plan's rank order; the view
sorts through a ``QSortFilterProxyModel`` on :data:`SORT_ROLE` (numbers, not the formatted text),
and the "#" column gives the core's ranking back.
"""

from __future__ import annotations

from typing import Any

from PySide6.QtCore import (
    QAbstractTableModel,
    QModelIndex,
    QPersistentModelIndex,
    QSortFilterProxyModel,
    Qt,
    Signal,
)
from PySide6.QtGui import QBrush, QColor, QPalette
from PySide6.QtWidgets import (
    QAbstractItemView,
    QApplication,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QPushButton,
    QStyle,
    QTableView,
    QVBoxLayout,
    QWidget,
)

from advisor.ui.format import headroom_text, peak_change
from advisor.units import format_bytes, format_price

COL_RANK = 0
COL_FITS = 1
COL_OPTION = 2
COL_PEAK = 3
COL_HEADROOM = 4
COL_SPEED = 5
COL_RISK = 6
COL_PRICE = 7
COL_HOW_TO = 8
# The memory column is what the run needs (the verdict's figure); its tooltip adds the peak shown.
HEADERS: tuple[str, ...] = ("#", "Fits", "Option", "Needs before → after", "Headroom", "Speed", "Risk", "Price",
                            "How to")

_NUMBER_COLUMNS = (COL_RANK, COL_PEAK, COL_HEADROOM, COL_SPEED, COL_PRICE)  # right-aligned
SORT_ROLE = int(Qt.ItemDataRole.UserRole) + 1
OPTION_ROLE = int(Qt.ItemDataRole.UserRole) + 2
_RISK_ORDER = {"low": 0, "medium": 1, "high": 2}
# NOTE: Material palette 800 shades on light backgrounds, 300 shades on dark ones: both keep
# WCAG AA contrast (≥ 4.5:1) against the table's base color.
FIT_COLORS = {False: QColor("#2e7d32"), True: QColor("#81c784")}  # keyed by "the palette is dark"
NO_FIT_COLORS = {False: QColor("#c62828"), True: QColor("#e57373")}


def fit_color(fits: bool) -> QColor:
    """Text color for "fits" / "does not fit" that reads on the current palette's base color."""
    dark = QApplication.palette().color(QPalette.ColorRole.Base).lightness() < 128
    return (FIT_COLORS if fits else NO_FIT_COLORS)[dark]
_Index = QModelIndex | QPersistentModelIndex


class PlanTableModel(QAbstractTableModel):
    """The options of one plan, one per row, in the plan's order."""

    def __init__(self, parent: Any = None) -> None:
        super().__init__(parent)
        self._options: tuple[Any, ...] = ()
        self._before_bytes: int | None = None

    def set_plan(self, plan: Any, before_peak_bytes: int | None = None) -> None:
        """Show ``plan`` (None empties the table); ``before_peak_bytes`` is the as-is peak."""
        self.beginResetModel()
        self._options = tuple(plan.options) if plan is not None else ()
        self._before_bytes = before_peak_bytes
        self.endResetModel()

    def option(self, row: int) -> Any:
        """The :class:`PlanOption` shown in ``row``."""
        return self._options[row]

    def rowCount(self, parent: _Index = QModelIndex()) -> int:  # noqa: B008 - Qt's signature
        return 0 if parent.isValid() else len(self._options)

    def columnCount(self, parent: _Index = QModelIndex()) -> int:  # noqa: B008 - Qt's signature
        return 0 if parent.isValid() else len(HEADERS)

    def headerData(self, section: int, orientation: Qt.Orientation,  # Qt's signature
                   role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if orientation == Qt.Orientation.Horizontal and role == Qt.ItemDataRole.DisplayRole:
            return HEADERS[section]
        return None

    def data(self, index: _Index, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if not index.isValid() or not 0 <= index.row() < len(self._options):
            return None
        opt, col = self._options[index.row()], index.column()
        if role == Qt.ItemDataRole.DisplayRole:
            return self._display(opt, index.row(), col)
        if role == SORT_ROLE:
            return self._sort_key(opt, index.row(), col)
        if role == OPTION_ROLE:
            return opt
        if role == Qt.ItemDataRole.ToolTipRole:
            return self._tooltip(opt, col)
        if role == Qt.ItemDataRole.ForegroundRole and col in (COL_FITS, COL_HEADROOM):
            return QBrush(fit_color(bool(opt.fits)))
        if role == Qt.ItemDataRole.DecorationRole and col == COL_FITS:
            return _fit_icon(opt.fits)
        if role == Qt.ItemDataRole.TextAlignmentRole and col in _NUMBER_COLUMNS:
            return int(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
        return None

    def _display(self, opt: Any, row: int, col: int) -> str:
        if col == COL_RANK:
            return str(row + 1)
        if col == COL_FITS:
            return "fits" if opt.fits else "does not fit"
        if col == COL_OPTION:
            return str(opt.title)
        if col == COL_PEAK:
            return peak_change(self._before_bytes, opt.required_bytes)
        if col == COL_HEADROOM:
            return headroom_text(opt.headroom_bytes)
        if col == COL_SPEED:
            return opt.speed.compact() if opt.speed else "—"
        if col == COL_RISK:
            return f"{opt.risk} — {opt.risk_reason}" if opt.risk_reason else str(opt.risk)
        if col == COL_PRICE:
            return format_price(opt.price_per_hour_usd)
        if col == COL_HOW_TO:
            lines = str(opt.how_to).strip().splitlines()
            return lines[0] + (" …" if len(lines) > 1 else "") if lines else ""
        return ""

    def _sort_key(self, opt: Any, row: int, col: int) -> Any:
        big = float("inf")
        keys: dict[int, Any] = {
            COL_RANK: row,
            COL_FITS: 0 if opt.fits else 1,
            COL_OPTION: str(opt.title).lower(),
            COL_PEAK: float(opt.required_bytes) if opt.required_bytes is not None else big,
            COL_HEADROOM: float(opt.headroom_bytes) if opt.headroom_bytes is not None else -big,
            COL_SPEED: -(opt.speed.rate or 0.0) if opt.speed else 0.0,  # fastest first
            COL_RISK: _RISK_ORDER.get(opt.risk, 3),
            COL_PRICE: float(opt.price_per_hour_usd) if opt.price_per_hour_usd is not None else big,
            COL_HOW_TO: str(opt.how_to),
        }
        return keys.get(col)

    def _tooltip(self, opt: Any, col: int) -> str | None:
        if col == COL_HOW_TO:
            return str(opt.how_to)
        if col == COL_OPTION and opt.detail:
            return str(opt.detail)
        if col == COL_RISK:
            return str(opt.risk_reason) or None
        if col == COL_SPEED and opt.speed:
            return f"{opt.speed.short()}: {opt.speed.basis}"
        if col == COL_PEAK and opt.peak_bytes is not None and opt.peak_bytes != opt.required_bytes:
            return (f"needs {format_bytes(opt.required_bytes)}; shows a {format_bytes(opt.peak_bytes)} peak "
                    "while memory is plentiful (the rest is pages the OS can drop)")
        return None


def _fit_icon(fits: bool) -> Any:
    app = QApplication.instance()
    if not isinstance(app, QApplication):  # a bare QGuiApplication has no style to ask
        return None
    style = app.style()
    pixmap = QStyle.StandardPixmap.SP_DialogApplyButton if fits else QStyle.StandardPixmap.SP_DialogCancelButton
    return style.standardIcon(pixmap)


class PlanView(QWidget):
    """The plan table with Copy (the selected how-to) and Apply (when the core can apply it).

    Signals:
        copyRequested(str): the how-to text to put on the clipboard.
        applyRequested(object): the option to apply.
    """

    copyRequested = Signal(str)
    applyRequested = Signal(object)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.model = PlanTableModel(self)
        self.proxy = QSortFilterProxyModel(self)
        self.proxy.setSourceModel(self.model)
        self.proxy.setSortRole(SORT_ROLE)
        self.table = QTableView(self)
        self.table.setModel(self.proxy)
        self.table.setSortingEnabled(True)
        self.table.sortByColumn(COL_RANK, Qt.SortOrder.AscendingOrder)
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.setWordWrap(False)
        self.table.verticalHeader().setVisible(False)
        self.table.setAlternatingRowColors(True)
        header = self.table.horizontalHeader()
        header.setStretchLastSection(True)
        for col in (COL_RANK, COL_FITS, COL_PEAK, COL_HEADROOM, COL_SPEED, COL_PRICE):
            header.setSectionResizeMode(col, QHeaderView.ResizeMode.ResizeToContents)
        header.setSectionResizeMode(COL_OPTION, QHeaderView.ResizeMode.Interactive)
        header.setSectionResizeMode(COL_RISK, QHeaderView.ResizeMode.Interactive)
        self.table.setColumnWidth(COL_OPTION, 230)
        self.table.setColumnWidth(COL_RISK, 150)

        self.title = QLabel("Ranked ways to run it — select one to copy its how-to", self)
        self.how_to = QLabel(self)
        self.how_to.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.how_to.setWordWrap(True)
        self.how_to.setForegroundRole(QPalette.ColorRole.PlaceholderText)
        self.copy_button = QPushButton("Copy how-to", self)
        self.apply_button = QPushButton("Apply…", self)
        self.apply_button.setToolTip("Write a changed copy of the model and open it")
        self.copy_button.clicked.connect(self._copy)
        self.apply_button.clicked.connect(self._apply)
        self.table.selectionModel().selectionChanged.connect(self._selection_changed)

        buttons = QHBoxLayout()
        buttons.addWidget(self.title)
        buttons.addStretch(1)
        buttons.addWidget(self.copy_button)
        buttons.addWidget(self.apply_button)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addLayout(buttons)
        layout.addWidget(self.table, 1)
        layout.addWidget(self.how_to)
        self._selection_changed()

    def set_plan(self, plan: Any, before_peak_bytes: int | None = None) -> None:
        self.model.set_plan(plan, before_peak_bytes)
        if plan is not None and plan.options:
            self.table.selectRow(0)
        self._selection_changed()

    def selected_option(self) -> Any:
        rows = self.table.selectionModel().selectedRows()
        if not rows:
            return None
        return self.proxy.data(rows[0], OPTION_ROLE)

    def _selection_changed(self, *_: Any) -> None:
        opt = self.selected_option()
        self.copy_button.setEnabled(opt is not None and bool(opt.how_to))
        self.apply_button.setEnabled(opt is not None and bool(opt.apply_action))
        self.how_to.setText(f"<tt>{_escape(opt.how_to)}</tt>" if opt is not None and opt.how_to else "")

    def _copy(self) -> None:
        opt = self.selected_option()
        if opt is not None:
            self.copyRequested.emit(str(opt.how_to))

    def _apply(self) -> None:
        opt = self.selected_option()
        if opt is not None and opt.apply_action:
            self.applyRequested.emit(opt)


def _escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace("\n", "<br>")
