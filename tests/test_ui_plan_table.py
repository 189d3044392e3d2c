"""The plan table model, tested without a view; and the PlanView's Copy/Apply buttons."""

from __future__ import annotations

from PySide6.QtCore import QModelIndex, QSortFilterProxyModel, Qt
from pytestqt.qtbot import QtBot

from advisor.estimator.speed import Speed
from advisor.estimator.types import GIB
from advisor.plan.types import Plan, PlanOption
from advisor.ui.plan_table import (
    COL_FITS,
    COL_HEADROOM,
    COL_HOW_TO,
    COL_OPTION,
    COL_PEAK,
    COL_PRICE,
    COL_RANK,
    COL_RISK,
    COL_SPEED,
    HEADERS,
    OPTION_ROLE,
    SORT_ROLE,
    PlanTableModel,
    PlanView,
)
from tests.test_ui_guard import qt_leak_guard  # noqa: F401 - autouse fixture

DISPLAY = Qt.ItemDataRole.DisplayRole


def _plan() -> Plan:
    return Plan(fits_as_is=False, options=(
        PlanOption("quantize", "int8 dynamic quantization", 3 * GIB, True, 2 * GIB, "medium",
                   "int8 weights lose a little accuracy", "python -m onnxruntime.quantization ...",
                   apply_action="onnx-int8-dynamic",
                   speed=Speed(basis="2 GFLOP per run", inferences_per_second=1234.5)),
        PlanOption("cloud", "Cloud: big GPU", 9 * GIB, True, 60 * GIB, "low", "costs money",
                   "# rent it\nssh ...", price_per_hour_usd=3.5),
        PlanOption("as-is", "Run as is", 9 * GIB, False, -4 * GIB, "low", "", "run it"),
        PlanOption("distill", "Distill", None, False, None, "high", "needs training", ""),
    ))


def test_rows_columns_and_cells(qapp: object) -> None:
    model = PlanTableModel()
    assert model.rowCount() == 0
    model.set_plan(_plan(), before_peak_bytes=9 * GIB)
    assert model.rowCount() == 4
    assert model.columnCount() == len(HEADERS)
    assert model.rowCount(model.index(0, 0)) == 0  # a table: no children
    assert model.headerData(COL_PEAK, Qt.Orientation.Horizontal, DISPLAY) == "Needs before → after"

    def cell(row: int, col: int, role: int = DISPLAY) -> object:
        return model.data(model.index(row, col), role)

    assert cell(0, COL_RANK) == "1"
    assert cell(0, COL_FITS) == "fits"
    assert cell(2, COL_FITS) == "does not fit"
    assert cell(0, COL_OPTION) == "int8 dynamic quantization"
    assert cell(0, COL_PEAK) == "9.0 GiB → 3.0 GiB"
    assert cell(2, COL_PEAK) == "9.0 GiB"
    assert cell(3, COL_PEAK) == "—"
    assert cell(0, COL_HEADROOM) == "+2.0 GiB"
    assert cell(2, COL_HEADROOM) == "−4.0 GiB"
    assert cell(0, COL_RISK) == "medium — int8 weights lose a little accuracy"
    assert cell(0, COL_SPEED) == "1,234 inf/s" and cell(3, COL_SPEED) == "—"
    assert cell(0, COL_SPEED, Qt.ItemDataRole.ToolTipRole) == "≈ 1,234 inferences/s: 2 GFLOP per run"
    assert cell(1, COL_PRICE) == "$3.50/h"
    assert cell(0, COL_PRICE) == ""
    assert cell(1, COL_HOW_TO) == "# rent it …"  # first line, the rest in the tooltip
    assert cell(1, COL_HOW_TO, Qt.ItemDataRole.ToolTipRole) == "# rent it\nssh ..."
    assert cell(0, COL_FITS, Qt.ItemDataRole.ForegroundRole) != cell(2, COL_FITS, Qt.ItemDataRole.ForegroundRole)
    assert cell(0, COL_FITS, Qt.ItemDataRole.DecorationRole) is not None  # an icon
    assert cell(0, 0, OPTION_ROLE).kind == "quantize"
    assert model.data(QModelIndex()) is None
    model.set_plan(None)
    assert model.rowCount() == 0


def test_sorts_by_numbers_not_text(qapp: object) -> None:
    model = PlanTableModel()
    model.set_plan(_plan(), before_peak_bytes=9 * GIB)
    proxy = QSortFilterProxyModel()
    proxy.setSourceModel(model)
    proxy.setSortRole(SORT_ROLE)

    def column(col: int) -> list[object]:
        return [proxy.data(proxy.index(r, col), DISPLAY) for r in range(proxy.rowCount())]

    proxy.sort(COL_HEADROOM, Qt.SortOrder.DescendingOrder)
    assert column(COL_HEADROOM) == ["+60.0 GiB", "+2.0 GiB", "−4.0 GiB", "—"]
    proxy.sort(COL_RISK, Qt.SortOrder.AscendingOrder)
    assert [r.split(" ")[0] for r in column(COL_RISK)] == ["low", "low", "medium", "high"]
    proxy.sort(COL_FITS, Qt.SortOrder.AscendingOrder)
    assert column(COL_FITS)[:2] == ["fits", "fits"]
    proxy.sort(COL_RANK, Qt.SortOrder.AscendingOrder)
    assert column(COL_OPTION)[0] == "int8 dynamic quantization"


def test_view_copy_and_apply_follow_the_selection(qtbot: QtBot) -> None:
    view = PlanView()
    qtbot.addWidget(view)
    assert not view.copy_button.isEnabled()
    view.set_plan(_plan(), 9 * GIB)
    assert view.selected_option().kind == "quantize"  # the top option is selected
    assert view.apply_button.isEnabled()
    with qtbot.waitSignal(view.copyRequested) as copied:
        view.copy_button.click()
    assert copied.args == ["python -m onnxruntime.quantization ..."]
    with qtbot.waitSignal(view.applyRequested) as applied:
        view.apply_button.click()
    assert applied.args[0].apply_action == "onnx-int8-dynamic"
    view.table.selectRow(1)
    assert not view.apply_button.isEnabled()  # the core cannot rent a cloud GPU
    with qtbot.assertNotEmitted(view.applyRequested):
        view.apply_button.click()
    view.table.selectRow(3)
    assert not view.copy_button.isEnabled()  # no how-to to copy
