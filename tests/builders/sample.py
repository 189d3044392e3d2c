"""The bundled sample model's generator (packaging/make_sample_model.py), for tests."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

ROOT = Path(__file__).resolve().parents[2]
SAMPLE = ROOT / "resources" / "samples" / "sample-convnet.onnx"


def generator() -> ModuleType:
    """``packaging/make_sample_model.py`` as a module (it is a script, not part of the package)."""
    spec = importlib.util.spec_from_file_location("make_sample_model", ROOT / "packaging" / "make_sample_model.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def ensure_sample() -> Path:
    """Write the sample model where the app ships it, unless it is already there (it is not committed)."""
    if not SAMPLE.exists():
        import onnx

        SAMPLE.parent.mkdir(parents=True, exist_ok=True)
        onnx.save_model(generator().build(), SAMPLE)
    return SAMPLE
