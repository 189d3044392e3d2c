"""Shared test set-up. Qt must run offscreen before any QApplication exists."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

# NOTE: with no display and no platform set, Qt aborts (exit 134); setdefault keeps a caller's choice
# (the Xvfb check sets "xcb").
os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")


@pytest.fixture(scope="session", autouse=True)
def advisor_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """What the advisor measures once (this machine's RAM bandwidth) goes to a test folder, not ~/.cache."""
    folder = tmp_path_factory.mktemp("advisor-cache")
    os.environ["ADVISOR_CACHE_DIR"] = str(folder)
    return folder


@pytest.fixture(autouse=True)
def advisor_data(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Measurements a test stores go to a folder of its own, not ~/.local/share (nor another test's)."""
    folder = tmp_path_factory.mktemp("advisor-data")
    monkeypatch.setenv("ADVISOR_DATA_DIR", str(folder))
    return folder


@pytest.fixture
def model_path(tmp_path: Path) -> Path:
    """A small ONNX MLP (a few MB) that every front can open."""
    from tests.builders.onnx_models import mlp

    return mlp(tmp_path / "mlp.onnx", hidden=512, layers=3, in_features=512)


@pytest.fixture
def tight_file(tmp_path: Path) -> Path:
    """A hardware file (as ``advisor probe --out`` writes) of a laptop with 0.6 GiB of RAM."""
    from advisor.hardware.catalog import save_hardware_file
    from tests.builders import hardware as hw

    path = tmp_path / "tight.json"
    save_hardware_file(hw.laptop(ram_gib=0.6), path)
    return path


@pytest.fixture(scope="session", autouse=True)
def sample_model() -> Path:
    """The bundled sample model, generated when missing (it is not committed; see resources/samples)."""
    from tests.builders.sample import ensure_sample

    return ensure_sample()
