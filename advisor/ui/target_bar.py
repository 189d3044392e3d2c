"""Choose what to hold the model against, and with which runtime.

Targets: this machine (probed), any catalog device grouped by kind (edge, laptop, desktop, cloud),
or a hardware file that ``advisor probe --out`` wrote on another machine. Runtimes come from the
core's :func:`advisor.estimator.runtimes_for` (via the presenter). The widget only forwards choices.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

from PySide6.QtCore import QSignalBlocker, Qt, Signal
from PySide6.QtGui import QFont, QStandardItem, QStandardItemModel
from PySide6.QtWidgets import QComboBox, QFormLayout, QGroupBox, QPushButton, QWidget

from advisor.ui.presenter import FILE_PREFIX, THIS_MACHINE, device_key
from advisor.units import format_bytes

KIND_TITLES: dict[str, str] = {
    "edge": "Edge devices",
    "laptop": "Laptops",
    "desktop": "Desktops",
    "cloud": "Cloud instances",
}
DEFAULT_RUNTIME_TEXT = "Default for this model and target"


def device_summary(profile: Any) -> str:
    """``"Raspberry Pi 5 (8 GB) — 8.00 GiB RAM"`` or ``"… — 4× NVIDIA A100 80GB"``."""
    gpus = [g for g in profile.gpus if not g.unified_memory and g.memory_total_bytes]
    if gpus:
        size = format_bytes(gpus[0].memory_total_bytes, decimals=0)
        count = f"{len(gpus)}× " if len(gpus) > 1 else ""
        extra = f"{count}{size} GPU"
    else:
        extra = f"{format_bytes(profile.memory_total_bytes, decimals=0)} RAM"
    price = f", ${profile.price_per_hour_usd:.2f}/h" if profile.price_per_hour_usd is not None else ""
    return f"{profile.name} — {extra}{price}"


class TargetBar(QGroupBox):
    """Target and runtime combos.

    Signals:
        targetRequested(str): a target key (``this-machine``, ``device:<id>``, ``file:<path>``).
        hardwareFileRequested(): the person wants to pick a hardware file.
        runtimeRequested(str): a runtime name, or "" for the default.
    """

    targetRequested = Signal(str)
    hardwareFileRequested = Signal()
    runtimeRequested = Signal(str)

    def __init__(self, devices: Iterable[Any] = (), parent: QWidget | None = None) -> None:
        super().__init__("Target", parent)
        self.target_combo = QComboBox(self)
        self.target_combo.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
        self.target_combo.setMinimumContentsLength(18)
        self._model = QStandardItemModel(self.target_combo)
        self.target_combo.setModel(self._model)
        self.file_button = QPushButton("Hardware file…", self)
        self.file_button.setToolTip("Use a machine described by `advisor probe --out FILE`")
        self.runtime_combo = QComboBox(self)
        self.runtime_combo.setEnabled(False)
        self.set_devices(devices)

        form = QFormLayout(self)
        form.setFieldGrowthPolicy(QFormLayout.FieldGrowthPolicy.AllNonFixedFieldsGrow)
        form.addRow("Machine", self.target_combo)
        form.addRow("", self.file_button)
        form.addRow("Runtime", self.runtime_combo)

        self.target_combo.activated.connect(self._target_activated)
        self.file_button.clicked.connect(self.hardwareFileRequested)
        self.runtime_combo.activated.connect(
            lambda i: self.runtimeRequested.emit(str(self.runtime_combo.itemData(i) or ""))
        )

    def set_devices(self, devices: Iterable[Any]) -> None:
        """Fill the target list: this machine, then catalog devices under a header per kind."""
        with QSignalBlocker(self.target_combo):
            self._model.clear()
            self._add(THIS_MACHINE, "This machine")
            by_kind: dict[str, list[Any]] = {}
            for d in devices:
                by_kind.setdefault(str(d.kind), []).append(d)
            for kind in [*KIND_TITLES, *sorted(set(by_kind) - set(KIND_TITLES))]:
                if kind not in by_kind:
                    continue
                header = QStandardItem(KIND_TITLES.get(kind, kind.title()))
                header.setFlags(Qt.ItemFlag.NoItemFlags)
                font = QFont(header.font())
                font.setBold(True)
                header.setFont(font)
                self._model.appendRow(header)
                for d in by_kind[kind]:
                    self._add(device_key(d.device_id), "    " + device_summary(d))

    def _add(self, key: str, text: str) -> None:
        item = QStandardItem(text)
        item.setData(key, Qt.ItemDataRole.UserRole)
        self._model.appendRow(item)

    def keys(self) -> list[str]:
        """Every selectable target key, in order."""
        return [
            str(self.target_combo.itemData(i)) for i in range(self.target_combo.count())
            if self.target_combo.itemData(i)
        ]

    def current_key(self) -> str:
        return str(self.target_combo.currentData() or "")

    def select_key(self, key: str, name: str | None = None) -> None:
        """Show ``key`` as the current target (adding a hardware-file entry when it is new)."""
        i = self.target_combo.findData(key)
        if i < 0 and key.startswith(FILE_PREFIX):
            path = key[len(FILE_PREFIX) :]
            self._add(key, f"File: {name or Path(path).name}")
            i = self.target_combo.count() - 1
        if i >= 0:
            with QSignalBlocker(self.target_combo):
                self.target_combo.setCurrentIndex(i)

    def request_key(self, key: str) -> None:
        """Select ``key`` and ask for it (as if the person picked it)."""
        self.select_key(key)
        self.targetRequested.emit(key)

    def set_runtimes(self, runtimes: Iterable[str], current: str) -> None:
        """Offer ``runtimes`` (plus the default), with ``current`` ("" = default) selected."""
        with QSignalBlocker(self.runtime_combo):
            self.runtime_combo.clear()
            self.runtime_combo.addItem(DEFAULT_RUNTIME_TEXT, "")
            for name in runtimes:
                self.runtime_combo.addItem(name, name)
            i = self.runtime_combo.findData(current)
            self.runtime_combo.setCurrentIndex(max(0, i))
            self.runtime_combo.setEnabled(True)

    def show_runtime_used(self, runtime: str) -> None:
        """Name the runtime the default resolved to, in the default entry."""
        self.runtime_combo.setItemText(0, f"Default ({runtime})")

    def _target_activated(self, index: int) -> None:
        key = self.target_combo.itemData(index)
        if key:
            self.targetRequested.emit(str(key))
