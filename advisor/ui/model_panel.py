"""What the model is (format, parameters, bytes by dtype, inputs) and how it is run (the workload).

:class:`ModelPanel` shows a :class:`~advisor.readers.profile.ModelProfile`; :class:`WorkloadEditor`
edits a :class:`~advisor.estimator.types.Workload` and emits each change at once (the presenter
debounces before re-estimating). LLM fields (context, KV-cache type, GPU layers) show for LLMs,
shape fields (sequence length, image size, per-input shapes) for graphs.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from PySide6.QtCore import QSignalBlocker, Qt, Signal
from PySide6.QtWidgets import (
    QComboBox,
    QFormLayout,
    QGroupBox,
    QLabel,
    QLineEdit,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from advisor.estimator.types import KV_CACHE_DTYPES
from advisor.ui.format import parse_shape, shape_text
from advisor.units import format_bytes, format_count

MAX_DIM = 1 << 24


def _html(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


class ModelPanel(QGroupBox):
    """Facts about the open model; the inputs line also shows the shapes the last estimate used."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__("Model", parent)
        self.fields: dict[str, QLabel] = {}
        form = QFormLayout(self)
        form.setRowWrapPolicy(QFormLayout.RowWrapPolicy.WrapLongRows)
        for key, title in (("name", "Name"), ("format", "Format"), ("params", "Parameters"),
                           ("weights", "Weights"), ("dtypes", "By dtype"), ("inputs", "Inputs")):
            label = QLabel(self)
            label.setWordWrap(True)
            label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
            label.setTextFormat(Qt.TextFormat.RichText)
            self.fields[key] = label
            form.addRow(title, label)
        self._model: Any = None
        self.set_model(None)

    def set_model(self, model: Any) -> None:
        self._model = model
        if model is None:
            for label in self.fields.values():
                label.setText("—")
            return
        fmt = model.format
        if model.is_llm and model.arch is not None:
            fmt += f" · {model.arch.model_type}, {model.arch.n_layers} layers"
        elif model.opset:
            fmt += f" · opset {model.opset}"
        files = f" in {len(model.files)} files" if len(model.files) > 1 else ""
        self.fields["name"].setText(_html(model.name))
        self.fields["format"].setText(_html(fmt))
        self.fields["params"].setText(format_count(model.n_params))
        self.fields["weights"].setText(f"{format_bytes(model.weight_bytes)}{files}")
        self.fields["dtypes"].setText("<br>".join(
            f"{_html(d)}: {format_bytes(b)} ({format_count(model.params_by_dtype.get(d, 0))})"
            for d, b in sorted(model.weight_bytes_by_dtype.items(), key=lambda kv: -kv[1])
        ) or "—")
        self.set_resolved({})

    def set_resolved(self, resolved: dict[str, tuple[int, ...]]) -> None:
        """List the inputs with their symbolic dims, and the shape the estimate used when known."""
        model = self._model
        if model is None:
            return
        if not model.inputs:
            self.fields["inputs"].setText("—")
            return
        rows = []
        for spec in model.inputs:
            used = resolved.get(spec.name)
            arrow = f" → {shape_text(used)}" if used is not None and tuple(used) != spec.shape else ""
            rows.append(f"<b>{_html(spec.name)}</b> {_html(shape_text(spec.shape))} {_html(spec.dtype)}{arrow}")
        self.fields["inputs"].setText("<br>".join(rows))


def _spin(minimum: int, maximum: int, special: str | None = None) -> QSpinBox:
    spin = QSpinBox()
    spin.setRange(minimum, maximum)
    spin.setKeyboardTracking(True)
    spin.setAccelerated(True)
    if special:
        spin.setSpecialValueText(special)
    return spin


class WorkloadEditor(QGroupBox):
    """Edits a workload; emits ``workloadEdited(Workload)`` on every valid change.

    Fields the model does not use are hidden; values not shown are kept as they were.
    """

    workloadEdited = Signal(object)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__("Workload", parent)
        self.workload: Any = None
        self.batch = _spin(1, 1 << 16)
        self.seq_len = _spin(0, MAX_DIM, "auto")
        self.image_size = _spin(0, 1 << 15, "auto")
        self.context = _spin(0, MAX_DIM, "auto")
        self.context.setSingleStep(512)
        self.kv_dtype = QComboBox()
        self.kv_dtype.addItem("runtime default", None)
        for name in KV_CACHE_DTYPES:
            self.kv_dtype.addItem(name, name)
        self.gpu_layers = _spin(-1, 1 << 12, "all")
        self.tensor_parallel = _spin(1, 64)
        # llama.cpp's loading flags: (use_mmap, mlock)
        self.loading = QComboBox()
        for text, flags in (("memory-mapped (default)", (True, False)), ("mapped, pinned (--mlock)", (True, True)),
                            ("read into RAM (--no-mmap)", (False, False))):
            self.loading.addItem(text, flags)
        self.loading.setToolTip("How llama.cpp loads the weights: a mapping the OS may drop pages of, pinned by "
                                "--mlock (llama-cpp-python's use_mlock=True), or read into memory")
        self.shape_edits: dict[str, QLineEdit] = {}
        self.error = QLabel()
        self.error.setWordWrap(True)
        self.error.setStyleSheet("color: #c62828;")  # NOTE: the same red as the verdict's "does not fit"
        self.error.hide()

        self.form = QFormLayout()
        self.form.setFieldGrowthPolicy(QFormLayout.FieldGrowthPolicy.AllNonFixedFieldsGrow)
        self.form.addRow("Batch", self.batch)
        self.form.addRow("Sequence length", self.seq_len)
        self.form.addRow("Image size", self.image_size)
        self.form.addRow("Context (tokens)", self.context)
        self.form.addRow("KV cache", self.kv_dtype)
        self.form.addRow("GPU layers", self.gpu_layers)
        self.form.addRow("GPUs (tensor parallel)", self.tensor_parallel)
        self.form.addRow("Weights (llama.cpp)", self.loading)
        self.shapes_box = QWidget()
        self.shapes_form = QFormLayout(self.shapes_box)
        self.shapes_form.setContentsMargins(0, 0, 0, 0)
        layout = QVBoxLayout(self)
        layout.addLayout(self.form)
        layout.addWidget(self.shapes_box)
        layout.addWidget(self.error)

        for spin in (self.batch, self.seq_len, self.image_size, self.context, self.gpu_layers, self.tensor_parallel):
            spin.valueChanged.connect(self._edited)
        self.kv_dtype.currentIndexChanged.connect(self._edited)
        self.loading.currentIndexChanged.connect(self._edited)
        self.set_model(None, None)

    def set_model(self, model: Any, workload: Any) -> None:
        """Show the fields ``model`` uses, filled from ``workload``."""
        llm = bool(model is not None and model.is_llm)
        graph = bool(model is not None and not llm)
        for widget, shown in ((self.seq_len, graph), (self.image_size, graph), (self.context, llm),
                              (self.kv_dtype, llm), (self.gpu_layers, llm), (self.loading, llm)):
            self.form.setRowVisible(widget, shown)
        while self.shapes_form.rowCount():
            self.shapes_form.removeRow(0)
        self.shape_edits = {}
        if graph:
            for spec in model.inputs:
                edit = QLineEdit()
                edit.setPlaceholderText(shape_text(spec.shape))
                edit.setToolTip(f"Shape of {spec.name}, e.g. 1,3,224,224; empty: from batch and sizes above")
                edit.editingFinished.connect(self._edited)
                self.shape_edits[spec.name] = edit
                self.shapes_form.addRow(spec.name, edit)
        self.shapes_box.setVisible(bool(self.shape_edits))
        if llm and model.arch is not None:
            self.gpu_layers.setMaximum(model.arch.n_layers)
            if model.arch.max_positions:
                self.context.setMaximum(max(model.arch.max_positions, 1))
        self.setEnabled(model is not None)
        self.set_workload(workload)

    def set_workload(self, workload: Any) -> None:
        """Fill the fields from ``workload`` without emitting."""
        self.workload = workload
        self.error.hide()
        if workload is None:
            return
        blockers = [QSignalBlocker(w) for w in (self.batch, self.seq_len, self.image_size, self.context,
                                                self.kv_dtype, self.gpu_layers, self.tensor_parallel, self.loading)]
        self.batch.setValue(workload.batch)
        self.seq_len.setValue(workload.seq_len or 0)
        self.image_size.setValue(workload.image_size or 0)
        self.context.setValue(workload.context or 0)
        self.kv_dtype.setCurrentIndex(max(0, self.kv_dtype.findData(workload.kv_cache_dtype)))
        self.gpu_layers.setValue(-1 if workload.gpu_layers is None else workload.gpu_layers)
        self.tensor_parallel.setValue(workload.tensor_parallel)
        flags = (workload.use_mmap, workload.mlock and workload.use_mmap)
        self.loading.setCurrentIndex(next((i for i in range(self.loading.count()) if self.loading.itemData(i) == flags),
                                          0))
        for name, edit in self.shape_edits.items():
            shape = workload.input_shapes.get(name)
            edit.setText(",".join(str(d) for d in shape) if shape else "")
        del blockers

    def current(self) -> Any:
        """The workload the fields describe.

        Raises:
            ValueError: a per-input shape that is not a list of whole numbers (names the input).
        """
        shapes: dict[str, tuple[int, ...]] = {}
        for name, edit in self.shape_edits.items():
            try:
                shape = parse_shape(edit.text())
            except ValueError as exc:
                raise ValueError(f"shape of {name}: {exc}") from None
            if shape is not None:
                shapes[name] = shape
        return dataclasses.replace(
            self.workload,
            batch=self.batch.value(),
            seq_len=self.seq_len.value() or None,
            image_size=self.image_size.value() or None,
            context=self.context.value() or None,
            kv_cache_dtype=self.kv_dtype.currentData(),
            gpu_layers=None if self.gpu_layers.value() < 0 else self.gpu_layers.value(),
            tensor_parallel=self.tensor_parallel.value(),
            input_shapes=shapes,
            use_mmap=self.loading.currentData()[0],
            mlock=self.loading.currentData()[1],
        )

    def _edited(self, *_: Any) -> None:
        if self.workload is None:
            return
        try:
            workload = self.current()
        except ValueError as exc:
            self.error.setText(str(exc))
            self.error.show()
            return
        self.error.hide()
        if workload != self.workload:
            self.workload = workload
            self.workloadEdited.emit(workload)
