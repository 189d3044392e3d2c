"""Issue 10: a model is held against the GPUs the as-is command really uses.

HF ``device_map='auto'`` spreads the layers over every visible GPU (accelerate's balanced
placement), llama.cpp's default ``--split-mode layer`` too; onnxruntime's CUDA provider uses one.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest

from advisor.analysis import analyze
from advisor.cli import run
from advisor.estimator import estimate, fit
from advisor.estimator.runtimes.pytorch_spread import balanced_placement
from advisor.estimator.types import GIB, Workload
from advisor.hardware.catalog import save_hardware_file
from advisor.plan import make_plan
from advisor.readers import read_model
from advisor.readers.profile import TensorInfo
from advisor.ui.format import verdict_detail
from tests.builders import gguf_models, onnx_models, safetensors_models
from tests.builders.hardware import gpu_box


@pytest.fixture(scope="module")
def llama70b(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return safetensors_models.llama_folder(tmp_path_factory.mktemp("m") / "llama70b")  # bf16, 131 GiB


def test_70b_bf16_fits_four_80gb_gpus_spread_by_device_map_auto(llama70b: Path) -> None:
    box = gpu_box(80, n_gpus=4, ram_gib=512)
    analysis = analyze(read_model(llama70b), box, Workload(context=4096), runtime="pytorch-cuda")
    e, f = analysis.estimate, analysis.fit
    assert f.fits and f.gpus == 4 and "device_map='auto'" in f.label
    assert [i for i, _ in e.spread] == [0, 1, 2, 3]
    # every layer is somewhere, whole: the GPUs' weights add up to the model's
    assert sum(b for _, b in e.spread) > analysis.model.weight_bytes
    assert max(b for _, b in e.spread) == e.required_bytes < 72 * GIB  # 80 GiB less the 8 GiB margin
    # the same model on one of those GPUs does not fit
    one = analyze(read_model(llama70b), gpu_box(80, n_gpus=1, ram_gib=512), Workload(context=4096),
                  runtime="pytorch-cuda")
    assert not one.fit.fits and not one.estimate.spread
    assert "spread by device_map='auto'" in verdict_detail(analysis)  # the window says how
    plan = make_plan(analysis, catalog=())
    as_is = next(o for o in plan.options if o.kind == "as-is")
    assert as_is.fits and "device_map='auto'" in as_is.how_to and "--tensor-parallel-size 4" in as_is.how_to


def test_the_terminal_and_json_say_how_it_is_spread(llama70b: Path, tmp_path: Path,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    hw = tmp_path / "box.json"
    save_hardware_file(gpu_box(80, n_gpus=4, ram_gib=512), hw)
    args = ["analyze", str(llama70b), "--hardware", str(hw), "--runtime", "pytorch-cuda", "--context", "4096"]
    assert run(args) == 0
    out = capsys.readouterr().out
    assert out.startswith("FITS") and "Spread over 4 GPUs (device_map='auto'): GPU 0 " in out
    assert run([*args, "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert len(doc["estimate"]["spread"]) == 4 and doc["fit"]["gpus"] == 4 and doc["fit"]["fits"]
    assert doc["estimate"]["required_bytes"] == doc["fit"]["required_bytes"]


def test_every_gpu_of_the_spread_must_fit(llama70b: Path) -> None:
    box = gpu_box(80, n_gpus=4, ram_gib=512)
    gpus = list(box.gpus)
    gpus[3] = dataclasses.replace(gpus[3], memory_total_bytes=16 * GIB)  # one small GPU
    small = dataclasses.replace(box, gpus=tuple(gpus))
    e = estimate(read_model(llama70b), Workload(context=4096), "pytorch-cuda", small)
    f = fit(e, small)
    assert not f.fits and "GPU 3" in f.label


def test_balanced_placement_fills_in_order_and_keeps_layers_whole() -> None:
    def t(name: str, layer: int | None, size: int) -> tuple[TensorInfo, int]:
        return TensorInfo(name=name, dtype="bfloat16", shape=(size // 2,), n_elements=size // 2, nbytes=size,
                          file="m.safetensors", layer=layer), size

    pairs = [t("model.embed_tokens.weight", None, 10)]
    for i in range(8):
        pairs += [t(f"model.layers.{i}.self_attn.q_proj.weight", i, 5), t(f"model.layers.{i}.mlp.up_proj.weight", i, 5)]
    pairs += [t("model.norm.weight", None, 1), t("lm_head.weight", None, 10)]
    placed = balanced_placement(pairs, [1000, 1000])
    # total 101 over 2 GPUs: 50 + 1.25 × max(layer 10, leaf 10) = 62 each; GPU 0 keeps a layer's room
    names = [[x.name for x in gpu] for gpu in placed]
    assert names[0][0] == "model.embed_tokens.weight" and names[1][-1] == "lm_head.weight"
    layers = [{x.layer for x in gpu if x.layer is not None} for gpu in placed]
    assert layers[0] == set(range(4)) and layers[1] == set(range(4, 8))  # 10 + 4 × 10 ≤ 62 − 10


def test_llama_cpp_splits_layers_over_all_gpus(tmp_path: Path) -> None:
    specs = gguf_models.llama_gguf_specs(n_layers=8, hidden=512, n_heads=8, n_kv_heads=2, vocab=1000, ff=1024)
    path = gguf_models.sparse_gguf(tmp_path / "m.gguf", specs, metadata={
        "{arch}.block_count": 8, "{arch}.context_length": 4096, "{arch}.embedding_length": 512,
        "{arch}.feed_forward_length": 1024, "{arch}.attention.head_count": 8, "{arch}.attention.head_count_kv": 2})
    e = estimate(read_model(path), Workload(context=2048), "llama.cpp", gpu_box(24, n_gpus=2))
    assert e.tensor_parallel == 2 and any("--split-mode layer" in n for n in e.notes)


def test_onnxruntime_cuda_says_it_uses_one_gpu(tmp_path: Path) -> None:
    model = read_model(onnx_models.mlp(tmp_path / "mlp.onnx"))
    e = estimate(model, Workload(), "onnxruntime-cuda", gpu_box(24, n_gpus=4))
    assert not e.spread and any("one GPU" in n for n in e.notes)
    assert fit(e, gpu_box(24, n_gpus=4)).label.startswith("GPU 0")
