"""The plan as a practitioner would sign it: the first option runs well on the hardware at hand,
fp8 and multi-node where they are the usual answer, speed on every option (issue 12)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from advisor.analysis import analyze
from advisor.cli import run
from advisor.estimator.types import Workload
from advisor.hardware.catalog import get_device, load_catalog
from advisor.hardware.profile import HardwareProfile
from advisor.plan import make_plan, rank, slowdown_steps
from advisor.plan.types import PlanOption
from advisor.readers import read_model
from tests.builders import onnx_models, safetensors_models
from tests.builders.hardware import gpu_box


@pytest.fixture(scope="module")
def catalog() -> tuple[HardwareProfile, ...]:
    return load_catalog()


def _llama(path: Path, size: str) -> Path:
    shapes = {
        "8b": {"n_layers": 32, "hidden": 4096, "n_heads": 32, "n_kv_heads": 8, "intermediate": 14336, "n_shards": 4},
        "70b": {},
        "405b": {"n_layers": 126, "hidden": 16384, "n_heads": 128, "n_kv_heads": 8, "intermediate": 53248,
                 "n_shards": 60},
    }[size]
    return safetensors_models.llama_folder(path, **shapes)  # type: ignore[arg-type]


def test_70b_bf16_on_4x_a100_leads_with_those_gpus(tmp_path: Path, catalog: tuple[HardwareProfile, ...]) -> None:
    box = gpu_box(80, n_gpus=4, ram_gib=512, gpu_name="NVIDIA A100-SXM4-80GB", compute_capability="8.0")
    a = analyze(read_model(_llama(tmp_path / "llama70b", "70b")), box, Workload(context=4096), "pytorch-cuda")
    plan = make_plan(a, catalog=catalog)
    first = plan.options[0]
    assert first.fits and first.hardware == box
    assert first.kind in ("as-is", "multi-gpu") and first.workload is not None and first.workload.gpu_layers is None
    offload = [o for o in plan.options if o.kind == "offload" and o.fits]
    for o in offload:
        assert plan.options.index(o) > 0
        assert o.speed and first.speed and (o.speed.rate or 0) < (first.speed.rate or 0)


def test_8b_on_an_8gb_laptop_gpu_leads_fully_on_the_gpu(tmp_path: Path, catalog: tuple[HardwareProfile, ...]) -> None:
    laptop = get_device("laptop-rtx4060-8gb")
    a = analyze(read_model(_llama(tmp_path / "llama8b", "8b")), laptop, Workload(context=4096))
    assert not a.fit.fits
    plan = make_plan(a, catalog=catalog)
    first = plan.options[0]
    assert first.fits and first.hardware == laptop
    assert first.estimate is not None and first.estimate.device == "cuda"
    assert first.workload is not None and first.workload.gpu_layers is None
    splits = [o for o in plan.options if o.kind == "offload" and o.fits]
    assert all(plan.options.index(o) > 0 for o in splits)


def test_explicit_input_with_a_batch_dim_gets_a_batch_option(
    tmp_path: Path, catalog: tuple[HardwareProfile, ...]
) -> None:
    path = onnx_models.tiny_transformer_block(tmp_path / "block.onnx", d_model=256, n_heads=4, d_ff=1024)
    model = read_model(path)
    name = model.inputs[0].name
    jetson = get_device("jetson-orin-nano-8gb")
    a = analyze(model, jetson, Workload(input_shapes={name: (512, 4096, 256)}))
    assert not a.fit.fits
    plan = make_plan(a, catalog=catalog)
    batch = [o for o in plan.options if o.kind == "batch"]
    assert batch and batch[0].fits and batch[0].workload is not None
    shape = batch[0].workload.input_shapes[name]
    assert shape[0] < 512 and shape[1:] == (4096, 256)
    assert plan.options[0].kind != "cloud"


def test_405b_on_8x_h100_gets_fp8_that_fits_and_two_nodes_for_bf16(
    tmp_path: Path, catalog: tuple[HardwareProfile, ...]
) -> None:
    node = get_device("aws-p5.48xlarge")
    a = analyze(read_model(_llama(tmp_path / "llama405b", "405b")), node, Workload(context=4096), "pytorch-cuda")
    assert not a.fit.fits
    plan = make_plan(a, catalog=catalog)
    fp8 = [o for o in plan.options if o.fits and o.workload is not None and o.workload.weight_dtype == "fp8"
           and o.hardware == node]
    assert fp8 and "--quantization fp8" in fp8[0].how_to and "--tensor-parallel-size 8" in fp8[0].how_to
    nodes = [o for o in plan.options if o.kind == "multi-node" and o.fits]
    bf16 = [o for o in nodes if o.workload is not None and o.workload.weight_dtype is None
            and o.workload.pipeline_parallel == 2]
    assert bf16, [o.title for o in plan.options]
    how = bf16[0].how_to
    assert "--pipeline-parallel-size 2" in how and "--tensor-parallel-size 8" in how and "ray start" in how
    assert plan.options[0] in fp8 or plan.options[0].hardware == node
    assert bf16[0].estimate is not None and bf16[0].estimate.tensor_parallel == 16  # per GPU of 16


def test_a_model_that_fits_gets_no_cloud_or_multi_node_option(
    tmp_path: Path, catalog: tuple[HardwareProfile, ...]
) -> None:
    a = analyze(read_model(onnx_models.mlp(tmp_path / "m.onnx")), get_device("rtx4090-desktop"), Workload())
    assert a.fit.fits
    plan = make_plan(a, catalog=catalog)
    assert not [o for o in plan.options if o.kind in ("cloud", "multi-node")]


def test_no_listed_option_needs_more_than_as_is_when_it_reduces(
    tmp_path: Path, catalog: tuple[HardwareProfile, ...]
) -> None:
    laptop = get_device("laptop-rtx4060-8gb")
    a = analyze(read_model(_llama(tmp_path / "llama8b", "8b")), laptop, Workload(context=4096))
    plan = make_plan(a, catalog=catalog)
    base = a.estimate.required_bytes
    for o in plan.options:
        if o.kind in ("quantize", "prune", "offload") and o.required_bytes is not None:
            assert o.required_bytes < base, o.title


def test_every_option_in_plan_json_has_speed(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    folder = _llama(tmp_path / "llama8b", "8b")
    assert run(["plan", str(folder), "--device", "laptop-rtx4060-8gb", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    options = data["plan"]["options"] if "plan" in data else data["options"]
    assert options
    for o in options:
        assert "speed" in o and o["speed"]["basis"], o["title"]
        if o["peak_bytes"] is not None and o["runtime"] in ("llama.cpp", "pytorch-cuda"):
            assert o["speed"].get("decode_tokens_per_second", 0) > 0, o["title"]


def test_ranking_weighs_speed_with_quality() -> None:
    assert slowdown_steps(10.0, 10.0) == 0 and slowdown_steps(None, 10.0) == 0
    assert slowdown_steps(5.0, 10.0) == 2 and slowdown_steps(1.0, 10.0) == 7
    from advisor.estimator.speed import Speed

    def opt(title: str, quality: int, rate: float, kind: str = "quantize") -> PlanOption:
        return PlanOption(kind=kind, title=title, peak_bytes=1, fits=True, headroom_bytes=1, risk="low",  # type: ignore[arg-type]
                          risk_reason="", how_to="x", quality_rank=quality,
                          speed=Speed(basis="", decode_tokens_per_second=rate))

    slow_exact = opt("offload, full precision", 0, 4.0, "offload")
    fast_q4 = opt("4-bit on the GPU", 4, 40.0)
    q8 = opt("8-bit on the GPU", 2, 24.0)
    ordered = rank([slow_exact, fast_q4, q8])
    assert ordered[0] is q8 and ordered[-1] is slow_exact
