"""Settings: declared defaults, typed round-trip through an INI file, recent files."""

from __future__ import annotations

from pathlib import Path

import pytest
from PySide6.QtCore import QByteArray

from advisor.ui.settings import MAX_RECENT_FILES, OPTIONS, Settings
from tests.test_ui_guard import qt_leak_guard  # noqa: F401 - autouse fixture


def test_defaults_when_empty(tmp_path: Path) -> None:
    s = Settings.at_path(tmp_path / "s.ini")
    assert s.target == OPTIONS["target"].default == "this-machine"
    assert s.runtime == ""
    assert s.refresh_ms == 1000
    assert s.recent_files == []
    assert s.window_geometry.isEmpty()


def test_round_trip_through_the_file(tmp_path: Path) -> None:
    path = tmp_path / "s.ini"
    s = Settings.at_path(path)
    s.target = "device:rpi5-8gb"
    s.runtime = "onnxruntime-cpu"
    s.refresh_ms = 250
    model = tmp_path / "a.onnx"
    model.write_bytes(b"")
    s.add_recent_file(model)
    s.window_geometry = QByteArray(b"\x01\x02geometry")
    s.sync()
    assert path.exists()
    again = Settings.at_path(path)
    assert again.target == "device:rpi5-8gb"
    assert again.runtime == "onnxruntime-cpu"
    assert again.refresh_ms == 250
    assert isinstance(again.refresh_ms, int)
    assert again.recent_files == [str(model)]  # a one-item list stays a list
    assert bytes(again.window_geometry.data()) == b"\x01\x02geometry"


def test_recent_files_most_recent_first_without_duplicates(tmp_path: Path) -> None:
    s = Settings.at_path(tmp_path / "s.ini")
    for i in range(MAX_RECENT_FILES + 3):
        (tmp_path / f"{i}.onnx").write_bytes(b"")
        s.add_recent_file(tmp_path / f"{i}.onnx")
    five = str(tmp_path / "5.onnx")
    s.add_recent_file(five)
    files = s.recent_files
    assert files[0] == five
    assert len(files) == MAX_RECENT_FILES
    assert files.count(five) == 1
    s.clear_recent_files()
    assert s.recent_files == []


def test_recent_files_are_absolute_and_forget_what_is_gone(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    Path("rel.onnx").write_bytes(b"")
    Path("gone.onnx").write_bytes(b"")
    s = Settings.at_path(tmp_path / "s.ini")
    s.add_recent_file("gone.onnx")
    s.add_recent_file("rel.onnx")  # what `make run` leaves: a path relative to the repository
    Path("gone.onnx").unlink()
    assert s.recent_files == [str(tmp_path / "rel.onnx")]


def test_garbage_falls_back_to_default(tmp_path: Path) -> None:
    path = tmp_path / "s.ini"
    path.write_text("[General]\nrefresh_ms=fast\n")
    assert Settings.at_path(path).refresh_ms == 1000
