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


def _ollama_store(root: Path, gguf: Path, *, name: str = "tiny", tag: str = "8b", projector: bool = False) -> None:
    """Ollama's store as `ollama pull` leaves it: blobs/sha256-<hex> and an OCI-style manifest."""
    import hashlib
    import json

    blobs = root / "blobs"
    blobs.mkdir(parents=True, exist_ok=True)
    layers = []
    for media, data in (("application/vnd.ollama.image.model", gguf.read_bytes()),
                        *((("application/vnd.ollama.image.projector", gguf.read_bytes()),) if projector else ())):
        digest = hashlib.sha256(data).hexdigest()
        (blobs / f"sha256-{digest}").write_bytes(data)
        layers.append({"mediaType": media, "digest": f"sha256:{digest}", "size": len(data)})
    manifest = root / "manifests" / "registry.ollama.ai" / "library" / name / tag
    manifest.parent.mkdir(parents=True, exist_ok=True)
    manifest.write_text(json.dumps({"schemaVersion": 2, "layers": layers}))


def test_an_ollama_model_opens_by_the_name_people_know(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from advisor.cli import run
    from tests.builders import gguf_models

    specs = gguf_models.llama_gguf_specs(n_layers=2, hidden=64, n_heads=4, n_kv_heads=4, vocab=256, ff=128,
                                         qtype="Q8_0", embd_type="Q8_0", out_type="Q8_0")
    meta = {"{arch}.block_count": 2, "{arch}.embedding_length": 64, "{arch}.feed_forward_length": 128,
            "{arch}.attention.head_count": 4, "{arch}.attention.head_count_kv": 4, "{arch}.context_length": 512}
    gguf = gguf_models.sparse_gguf(tmp_path / "m.gguf", specs, metadata=meta)
    store = tmp_path / "ollama"
    _ollama_store(store, gguf, projector=True)
    monkeypatch.setenv("OLLAMA_MODELS", str(store))
    direct, named = read_model(gguf), read_model("ollama:tiny:8b")
    assert named.format == "gguf" and named.name == "tiny:8b" and named.n_params == direct.n_params
    assert named.path == "ollama:tiny:8b" and named.load_path.startswith(str(store / "blobs"))
    assert named.files[0].startswith(str(store / "blobs" / "sha256-"))
    assert named.projector_bytes == direct.weight_bytes  # the projector layer (here a copy of the model)
    with pytest.raises(ModelFormatError, match=r"no Ollama model tiny in .*ollama pull"):
        read_model("ollama:tiny")  # :latest was never pulled
    assert run(["analyze", "ollama:tiny:8b", "--device", "rpi5-8gb"]) == 0
    assert run(["analyze", "ollama:../../etc", "--device", "rpi5-8gb"]) == 2


def test_a_vision_projector_beside_a_gguf_counts_in_the_estimate(tmp_path: Path) -> None:
    from advisor.analysis import analyze
    from advisor.estimator.types import Workload
    from advisor.hardware.catalog import get_device
    from advisor.plan import make_plan
    from tests.builders import gguf_models

    specs = gguf_models.llama_gguf_specs(n_layers=2, hidden=256, n_heads=4, n_kv_heads=4, vocab=512, ff=512,
                                         qtype="Q8_0", embd_type="Q8_0", out_type="Q8_0")
    meta = {"{arch}.block_count": 2, "{arch}.embedding_length": 256, "{arch}.feed_forward_length": 512,
            "{arch}.attention.head_count": 4, "{arch}.attention.head_count_kv": 4}
    alone = tmp_path / "alone"
    alone.mkdir()
    gguf_models.sparse_gguf(alone / "model-Q8_0.gguf", specs, metadata=meta)
    studio = tmp_path / "lmstudio" / "publisher" / "model-GGUF"  # LM Studio's models/<publisher>/<repo>/
    studio.mkdir(parents=True)
    gguf_models.sparse_gguf(studio / "model-Q8_0.gguf", specs, metadata=meta)
    proj_specs = gguf_models.llama_gguf_specs(n_layers=1, hidden=256, n_heads=4, n_kv_heads=4, vocab=64, ff=256,
                                              qtype="F16", embd_type="F16", out_type="F16")
    gguf_models.sparse_gguf(studio / "mmproj-model-f16.gguf", proj_specs, metadata={**meta, "{arch}.block_count": 1})
    hw = get_device("rpi5-8gb")
    plain, vision = (analyze(read_model(f), hw, Workload(context=512), "llama.cpp") for f in (alone, studio))
    proj = read_model(studio).projector_bytes
    assert proj == read_model(studio / "mmproj-model-f16.gguf").weight_bytes > 0
    assert vision.estimate.peak_bytes == plain.estimate.peak_bytes + proj
    assert vision.estimate.weights_bytes == plain.estimate.weights_bytes + proj
    assert any("vision projector mmproj-model-f16.gguf" in n for n in vision.estimate.notes)
    how = make_plan(vision, catalog=()).options[0].how_to
    assert "--mmproj" in how and "mmproj-model-f16.gguf" in how
