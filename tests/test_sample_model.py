"""The bundled sample model is the generator's output, and onnxruntime runs it."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnxruntime as ort

from advisor.resources import resource
from tests.builders.sample import generator


def test_sample_is_reproducible(tmp_path: Path) -> None:
    out = tmp_path / "sample.onnx"
    import onnx

    onnx.save_model(generator().build(), out)
    shipped = resource("samples", "sample-convnet.onnx").read_bytes()
    assert out.read_bytes() == shipped, "resources/samples is stale: run packaging/make_sample_model.py"


def test_sample_runs_on_onnxruntime() -> None:
    path = str(resource("samples", "sample-convnet.onnx"))
    session = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
    (logits,) = session.run(None, {"pixel_values": np.zeros((1, 3, 64, 64), np.float32)})
    assert logits.shape == (1, 1000)


def test_app_icon_renders() -> None:
    from PySide6.QtWidgets import QApplication

    from advisor.ui.app import app_icon

    _ = QApplication.instance() or QApplication([])
    icon = app_icon()
    assert not icon.isNull()
    assert not icon.pixmap(64, 64).isNull()
