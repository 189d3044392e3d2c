"""Models where people keep them: Hugging Face cache repos, shard sets, and files opened by mistake."""

from __future__ import annotations

from pathlib import Path

import pytest

from advisor.errors import ModelFormatError, UnsupportedFormatError
from advisor.readers import read_model
from tests.builders import onnx_models, safetensors_models


def _hf_cache_repo(root: Path, source: Path, rev: str = "0123456789abcdef0123456789abcdef01234567") -> Path:
    """``models--org--name`` as huggingface_hub lays it out: blobs, snapshots/<rev>/ of symlinks, refs/main."""
    repo = root / "models--org--tiny"
    (repo / "blobs").mkdir(parents=True)
    snap = repo / "snapshots" / rev
    snap.mkdir(parents=True)
    for i, f in enumerate(sorted(source.iterdir())):
        blob = repo / "blobs" / f"blob{i:03d}"
        blob.write_bytes(f.read_bytes())
        (snap / f.name).symlink_to(Path("..", "..", "blobs", blob.name))  # relative, as huggingface_hub links
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(rev)
    return repo


def test_a_hugging_face_cache_repo_folder_opens_its_main_snapshot(tmp_path: Path) -> None:
    src = safetensors_models.llama_folder(tmp_path / "src", n_layers=2, hidden=64, n_heads=4, n_kv_heads=2,
                                          vocab=128, intermediate=96, n_shards=2, sparse=False)
    repo = _hf_cache_repo(tmp_path / "hub", src)
    direct, cached = read_model(src), read_model(repo)
    assert (cached.n_params, cached.weight_bytes, len(cached.files)) == (direct.n_params, direct.weight_bytes, 2)
    assert cached.arch is not None and any("Hugging Face cache repo: read snapshot 0123456789ab" in n
                                           for n in cached.notes)


def test_a_cache_repo_with_nothing_downloaded_says_so(tmp_path: Path) -> None:
    repo = tmp_path / "models--org--empty"
    (repo / "snapshots").mkdir(parents=True)
    (repo / "blobs").mkdir()
    with pytest.raises(ModelFormatError, match="no downloaded snapshot"):
        read_model(repo)
    holder = tmp_path / "holder"
    (holder / "a").mkdir(parents=True)
    with pytest.raises(ModelFormatError, match=r"only folders \(a\)"):
        read_model(holder)


def test_files_opened_by_mistake_get_a_hint_not_a_wrong_name(tmp_path: Path) -> None:
    onnx_path = onnx_models.external_mlp(tmp_path / "m.onnx")
    with pytest.raises(UnsupportedFormatError, match=r"open m\.onnx beside it"):
        read_model(tmp_path / "m.onnx.data")
    (tmp_path / "ir.xml").write_text('<?xml version="1.0"?><net name="x" version="11"></net>')
    (tmp_path / "ir.bin").write_bytes(b"\x00" * 64)
    for name in ("ir.bin", "ir.xml"):
        with pytest.raises(UnsupportedFormatError, match="OpenVINO IR") as err:
            read_model(tmp_path / name)
        assert "pickle" not in str(err.value)
    (tmp_path / "m.engine").write_bytes(b"\x00" * 64)
    with pytest.raises(UnsupportedFormatError, match="TensorRT engine"):
        read_model(tmp_path / "m.engine")
    for name in ("model.tflite", "model"):  # by name, or by the FlatBuffers identifier of a nameless file
        (tmp_path / name).write_bytes(b"\x1c\x00\x00\x00TFL3" + b"\x00" * 64)
        with pytest.raises(UnsupportedFormatError, match="TensorFlow Lite"):
            read_model(tmp_path / name)
    assert read_model(onnx_path).n_params > 0
