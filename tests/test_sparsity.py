"""Sparsity scan: exact zero counts, streamed in chunks, with progress and cancel; structured pruning."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from onnx import helper, numpy_helper

from advisor.cancel import Cancelled, CancelToken
from advisor.errors import ModelFormatError
from advisor.plan.sparsity import prune_structured, scan_sparsity
from advisor.readers import read_model
from tests.builders import gguf_models, onnx_models, safetensors_models


def _with_zeros(shape: tuple[int, ...], fraction: float, dtype: type, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    a = (rng.standard_normal(shape) + 3.0).astype(dtype)  # no accidental zeros
    mask = rng.random(shape) < fraction
    a[mask] = 0
    if np.issubdtype(dtype, np.floating):
        a.flat[np.flatnonzero(mask)[:3]] = -0.0  # negative zero is a zero too
    return a


def _bf16(a: np.ndarray) -> np.ndarray:
    """float32 → bfloat16 bits (truncation), as uint16."""
    return (a.astype(np.float32).view(np.uint32) >> 16).astype(np.uint16)


@pytest.fixture
def onnx_sparse(tmp_path: Path) -> tuple[Path, dict[str, np.ndarray]]:
    weights = {
        "layers.0.weight": _with_zeros((64, 48), 0.3, np.float32, 1),
        "layers.1.weight": _with_zeros((48, 10), 0.7, np.float32, 2),
    }
    nodes = [
        helper.make_node("MatMul", ["x", "layers.0.weight"], ["h"]),
        helper.make_node("MatMul", ["h", "layers.1.weight"], ["y"]),
    ]
    graph = helper.make_graph(
        nodes, "sparse",
        [helper.make_tensor_value_info("x", 1, ["batch", 64])],
        [helper.make_tensor_value_info("y", 1, ["batch", 10])],
        initializer=[numpy_helper.from_array(w, n) for n, w in weights.items()],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    return onnx_models.save(model, tmp_path / "sparse.onnx"), weights


def test_scan_is_exact_on_known_zeros(onnx_sparse: tuple[Path, dict[str, np.ndarray]]) -> None:
    path, weights = onnx_sparse
    report = scan_sparsity(read_model(path), chunk_bytes=256)
    by_name = {t.name: t for t in report.tensors}
    for name, w in weights.items():
        assert by_name[name].zero_elements == int(np.count_nonzero(w == 0))
        assert by_name[name].n_elements == w.size
    total_zeros = sum(int(np.count_nonzero(w == 0)) for w in weights.values())
    assert report.zero_elements == total_zeros
    assert report.fraction == pytest.approx(total_zeros / sum(w.size for w in weights.values()))
    assert 0.25 < by_name["layers.0.weight"].fraction < by_name["layers.1.weight"].fraction


@pytest.mark.parametrize("chunk", [8, 100, 16 * 1024**2])
def test_scan_safetensors_float16_bfloat16_int8_any_chunk(tmp_path: Path, chunk: int) -> None:
    f16 = _with_zeros((33, 17), 0.25, np.float16, 3)
    bf = _with_zeros((21, 5), 0.5, np.float32, 4)
    i8 = _with_zeros((7, 9), 0.4, np.int8, 5)
    path = safetensors_models.write_safetensors(
        tmp_path / "m.safetensors", {"a": f16, "b": _bf16(bf), "c": i8}, {"format": "pt"}, {"b": "BF16"}
    )
    report = scan_sparsity(read_model(path), chunk_bytes=chunk)
    got = {t.name: (t.dtype, t.zero_elements) for t in report.tensors}
    assert got == {
        "a": ("float16", int(np.count_nonzero(f16 == 0))),
        "b": ("bfloat16", int(np.count_nonzero(bf == 0))),
        "c": ("int8", int(np.count_nonzero(i8 == 0))),
    }


def test_scan_reports_progress_per_chunk(onnx_sparse: tuple[Path, dict[str, np.ndarray]]) -> None:
    path, weights = onnx_sparse
    seen: list[float] = []
    scan_sparsity(read_model(path), progress=lambda f, _msg: seen.append(f), chunk_bytes=1024)
    n_chunks = sum(-(-w.nbytes // 1024) for w in weights.values())
    assert len(seen) >= n_chunks
    assert seen == sorted(seen)
    assert seen[0] == 0.0 and seen[-1] == 1.0


def test_scan_cancels_between_chunks(onnx_sparse: tuple[Path, dict[str, np.ndarray]]) -> None:
    path, _ = onnx_sparse
    token = CancelToken()
    calls: list[float] = []

    def progress(fraction: float, _msg: str) -> None:
        calls.append(fraction)
        if fraction > 0:
            token.cancel()

    with pytest.raises(Cancelled):
        scan_sparsity(read_model(path), progress=progress, cancel=token, chunk_bytes=512)
    assert len(calls) == 2  # the start, then one chunk; nothing read after the cancel


def test_scan_skips_quantized_ggml_blocks_with_a_note(tmp_path: Path) -> None:
    path = gguf_models.tiny_llama_gguf(tmp_path / "tiny.gguf")
    profile = read_model(path)
    report = scan_sparsity(profile)
    quantized = [t.name for t in profile.tensors if t.dtype in ("q4_k", "q8_0")]
    assert quantized and set(quantized) <= set(report.skipped)
    assert any("ggml" in n for n in report.notes)
    assert {t.dtype for t in report.tensors} <= {"float32", "float16"}
    assert report.tensors  # the F32 norms and F16 output are scanned


def test_scan_of_truncated_file_is_a_model_format_error(onnx_sparse: tuple[Path, dict[str, np.ndarray]]) -> None:
    path, _ = onnx_sparse
    profile = read_model(path)
    path.write_bytes(path.read_bytes()[:200])
    with pytest.raises(ModelFormatError, match=r"sparse\.onnx"):
        scan_sparsity(profile)


def test_structured_pruning_drops_llm_layers(tmp_path: Path) -> None:
    folder = safetensors_models.tiny_llama_folder(tmp_path / "llama", n_layers=4)
    profile = read_model(folder)
    pruned, what = prune_structured(profile, 0.5)
    assert pruned.arch is not None and pruned.arch.n_layers == 2
    assert {t.layer for t in pruned.tensors if t.layer is not None} == {0, 1}
    per_layer = sum(t.nbytes for t in profile.tensors if t.layer == 3)
    assert pruned.weight_bytes == profile.weight_bytes - 2 * per_layer
    assert "2 of 4" in what


def test_structured_pruning_shrinks_onnx_channels(tmp_path: Path) -> None:
    profile = read_model(onnx_models.mlp(tmp_path / "m.onnx", hidden=64, layers=3))
    pruned, _ = prune_structured(profile, 0.25)
    matrices = [t for t in profile.tensors if len(t.shape) == 2]
    expected = profile.weight_bytes - sum(t.nbytes - t.nbytes // t.shape[0] * round(t.shape[0] * 0.75)
                                          for t in matrices)
    assert pruned.weight_bytes == expected < profile.weight_bytes
