"""Format detection and read_model dispatch: magic, names, folders, pickles refused unopened."""

from __future__ import annotations

import builtins
import io
import pathlib
import pickle
import sys
import types
from pathlib import Path

import numpy as np
import pytest

from advisor.errors import AdvisorError, ModelFormatError, UnsupportedFormatError
from advisor.readers import read_model
from advisor.readers.detect import detect
from advisor.readers.profile import ModelProfile
from tests.builders.gguf_models import tiny_llama_gguf, write_gguf
from tests.builders.safetensors_models import tiny_llama_folder, write_safetensors


class _Bomb:
    """Unpickling this creates a file: proof that a pickle was (not) loaded."""

    def __init__(self, sentinel: Path) -> None:
        self.sentinel = sentinel

    def __reduce__(self) -> tuple[object, tuple[Path]]:
        return (pathlib.Path.touch, (self.sentinel,))


@pytest.fixture
def no_open_of(monkeypatch: pytest.MonkeyPatch):  # type: ignore[no-untyped-def]
    """Fail the test if any of the given paths is opened (builtins.open, io.open, Path.open) or unpickled."""
    forbidden: set[str] = set()
    real_open, real_path_open = builtins.open, pathlib.Path.open

    def guard(file: object, *args: object, **kwargs: object):  # type: ignore[no-untyped-def]
        if str(file) in forbidden:
            raise AssertionError(f"{file} was opened")
        return real_open(file, *args, **kwargs)  # type: ignore[call-overload]

    def path_guard(self: Path, *args: object, **kwargs: object):  # type: ignore[no-untyped-def]
        if str(self) in forbidden:
            raise AssertionError(f"{self} was opened")
        return real_path_open(self, *args, **kwargs)  # type: ignore[arg-type]

    def no_unpickle(*args: object, **kwargs: object) -> None:
        raise AssertionError("pickle was used")

    monkeypatch.setattr(builtins, "open", guard)
    monkeypatch.setattr(io, "open", guard)
    monkeypatch.setattr(pathlib.Path, "open", path_guard)
    monkeypatch.setattr(pickle, "load", no_unpickle)
    monkeypatch.setattr(pickle, "loads", no_unpickle)
    return forbidden


@pytest.mark.parametrize("name", ["pytorch_model.bin", "model.pt", "weights.pth", "last.ckpt", "m.pkl"])
def test_pickle_files_are_refused_without_being_opened(tmp_path: Path, name: str, no_open_of: set[str]) -> None:
    sentinel = tmp_path / "unpickled"
    f = tmp_path / name
    f.write_bytes(pickle.dumps(_Bomb(sentinel)))
    no_open_of.add(str(f))
    with pytest.raises(UnsupportedFormatError) as info:
        read_model(f)
    msg = str(info.value)
    assert "pickle" in msg and "safetensors" in msg and "safe_serialization=True" in msg and str(f) in msg
    assert "\n" not in msg
    assert not sentinel.exists()


def test_folder_of_pytorch_bins_is_refused_without_opening(tmp_path: Path, no_open_of: set[str]) -> None:
    sentinel = tmp_path / "unpickled"
    (tmp_path / "config.json").write_text("{}")
    for name in ("pytorch_model-00001-of-00002.bin", "pytorch_model-00002-of-00002.bin"):
        (tmp_path / name).write_bytes(pickle.dumps(_Bomb(sentinel)))
        no_open_of.add(str(tmp_path / name))
    with pytest.raises(UnsupportedFormatError, match="pickle checkpoints are not supported"):
        read_model(tmp_path)
    assert not sentinel.exists()


def test_pickle_content_under_another_name_is_refused(tmp_path: Path) -> None:
    f = tmp_path / "weights.dat"
    f.write_bytes(pickle.dumps({"a": 1}, protocol=4))
    with pytest.raises(UnsupportedFormatError, match="pickle"):
        read_model(f)


def test_by_extension_and_magic(tmp_path: Path) -> None:
    g = tiny_llama_gguf(tmp_path / "m.gguf")
    renamed = tmp_path / "m.weights"
    renamed.write_bytes(g.read_bytes())
    assert detect(renamed).format == "gguf"
    assert read_model(renamed).weight_bytes == read_model(g).weight_bytes
    st = write_safetensors(tmp_path / "w.safetensors", {"x": np.zeros(3, np.float32)})
    plain = tmp_path / "w.data"
    plain.write_bytes(st.read_bytes())
    assert detect(st).format == detect(plain).format == "safetensors"
    assert read_model(plain).n_params == 3
    misnamed = tmp_path / "really-gguf.safetensors"
    misnamed.write_bytes(g.read_bytes())
    assert detect(misnamed).format == "gguf"  # content beats the name
    hf = tiny_llama_folder(tmp_path / "hf")
    assert detect(hf / "config.json").format == "safetensors"
    assert read_model(hf / "config.json").arch is not None
    onnx = tmp_path / "net.onnx"
    onnx.write_bytes(b"\x08\x0a")
    assert detect(onnx).format == "onnx" and detect(onnx).path == onnx


def test_ort_zip_and_unknown_files(tmp_path: Path) -> None:
    ort = tmp_path / "model.ort"
    ort.write_bytes(b"\0" * 32)
    with pytest.raises(UnsupportedFormatError, match=r"\.ort format is not supported"):
        read_model(ort)
    z = tmp_path / "archive.zip"
    z.write_bytes(b"PK\x03\x04" + b"\0" * 40)
    with pytest.raises(UnsupportedFormatError, match="zip"):
        read_model(z)
    txt = tmp_path / "notes.txt"
    txt.write_text("hello world, not a model")
    with pytest.raises(UnsupportedFormatError, match="unknown model format") as info:
        read_model(txt)
    assert str(txt) in str(info.value)


def test_nonexistent_path_and_empty_folder(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere" / "model.safetensors"
    with pytest.raises(ModelFormatError, match="no such file or folder") as info:
        read_model(missing)
    assert str(missing) in str(info.value)
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(ModelFormatError, match="folder is empty"):
        read_model(empty)
    (empty / "README.md").write_text("# nothing here")
    with pytest.raises(ModelFormatError, match="holds no model file"):
        read_model(empty)


def test_folder_kinds(tmp_path: Path) -> None:
    sharded = tiny_llama_folder(tmp_path / "hf", n_shards=2)
    (sharded / "model.onnx").write_bytes(b"")
    found = detect(sharded)
    assert found.format == "safetensors" and found.path == sharded
    assert any("model.onnx" in n for n in found.notes)
    assert any("model.onnx" in n for n in read_model(sharded).notes)

    gg = tmp_path / "gg"
    gg.mkdir()
    model = tiny_llama_gguf(gg / "model-Q4_K_M.gguf")
    write_gguf(gg / "mmproj-model-f16.gguf", {"v": ("F16", (2, 32))}, arch="clip")
    assert detect(gg).path == model
    write_gguf(gg / "model-Q8_0.gguf", {"w": ("F32", (4,))})
    with pytest.raises(UnsupportedFormatError, match="2 GGUF models"):
        detect(gg)

    on = tmp_path / "on"
    on.mkdir()
    (on / "model.onnx").write_bytes(b"")
    (on / "model.onnx_data").write_bytes(b"")
    assert detect(on).path == on / "model.onnx"
    (on / "decoder.onnx").write_bytes(b"")
    with pytest.raises(UnsupportedFormatError, match="2 ONNX models"):
        detect(on)


def test_onnx_dispatch_is_lazy(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[Path] = []

    def fake_read_onnx(path: Path) -> ModelProfile:
        seen.append(Path(path))
        return ModelProfile(path=str(path), format="onnx", name="fake", n_params=1, weight_bytes=4,
                            params_by_dtype={"float32": 1}, weight_bytes_by_dtype={"float32": 4},
                            files=(str(path),), file_bytes=0)

    fake = types.ModuleType("advisor.readers.onnx_reader")
    fake.read_onnx = fake_read_onnx  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "advisor.readers.onnx_reader", fake)
    f = tmp_path / "net.onnx"
    f.write_bytes(b"")
    assert read_model(f).name == "fake"
    assert read_model(tmp_path).name == "fake" and seen == [f, f]


def test_errors_are_advisor_errors_with_one_line(tmp_path: Path) -> None:
    cases = [tmp_path / "missing", tmp_path / "x.pt", tmp_path / "bad.safetensors", tmp_path / "bad.gguf"]
    (tmp_path / "x.pt").write_bytes(b"")
    (tmp_path / "bad.safetensors").write_bytes(b"\x05\0\0\0\0\0\0\0{{{{{")
    (tmp_path / "bad.gguf").write_bytes(b"GGUF\x03\0\0\0" + b"\xff" * 20)
    for path in cases:
        with pytest.raises(AdvisorError) as info:
            read_model(path)
        assert str(path) in str(info.value) and "\n" not in str(info.value)
