"""Applying int8 dynamic quantization: a new file next to the original, as predicted, and it runs."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest

from advisor.analysis import analyze
from advisor.cancel import Cancelled, CancelToken
from advisor.errors import AdvisorError
from advisor.estimator.types import Workload
from advisor.plan import apply as apply_mod
from advisor.plan import make_plan
from advisor.plan.apply import apply_option
from advisor.plan.types import PlanOption
from advisor.readers import read_model
from advisor.readers.profile import ModelProfile
from tests.builders import onnx_models
from tests.builders.hardware import laptop

# Big enough for int8 to lower the need: in a model of a few KiB of weights the activation copies
# dynamic quantization adds (DynamicQuantizeLinear's uint8 input, ConvInteger's int32 output)
# outweigh what it saves, and the plan rightly leaves the option out.
SIZED = {"hidden": 1024, "layers": 4}


def _int8_option(profile: ModelProfile, workload: Workload | None = None) -> PlanOption:
    plan = make_plan(analyze(profile, laptop(16), workload or Workload(batch=2)), catalog=())
    found = [o for o in plan.options if o.apply_action == "onnx-int8-dynamic"]
    assert len(found) == 1
    return found[0]


def _run(path: Path, x: np.ndarray) -> np.ndarray:
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    out: np.ndarray = sess.run(None, {"x": x})[0]
    return out


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.mark.parametrize("builder", [onnx_models.mlp, onnx_models.external_mlp, onnx_models.cnn])
def test_int8_copy_matches_prediction_and_runs(tmp_path: Path, builder: object) -> None:
    size = {"channels": 64} if builder is onnx_models.cnn else SIZED
    source = builder(tmp_path / "model.onnx", seed=7, **size)  # type: ignore[operator]
    before = {p.name: _digest(p) for p in tmp_path.iterdir()}
    profile = read_model(source)
    shape = [2, 3, 16, 16] if builder is onnx_models.cnn else [2, 32]
    # a conv net at 224² is left out: its ConvInteger chains need more than the float model
    opt = _int8_option(profile, Workload(input_shapes={"x": tuple(shape)}))
    assert opt.weight_bytes_after is not None and opt.weight_bytes_after < profile.weight_bytes

    out = apply_option(opt, profile)

    assert out == tmp_path / "model.int8.onnx"
    assert {p.name: _digest(p) for p in tmp_path.iterdir() if p.name in before} == before  # original untouched
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temp left
    back = read_model(out)
    assert back.weight_bytes == pytest.approx(opt.weight_bytes_after, rel=0.05)
    assert "int8" in back.weight_bytes_by_dtype
    assert onnx.load(str(out), load_external_data=False).ir_version <= 10
    x = np.random.default_rng(0).standard_normal(shape).astype(np.float32)
    expected, got = _run(source, x), _run(out, x)
    assert got.shape == expected.shape
    assert np.allclose(got, expected, atol=0.05 * float(np.abs(expected).max()) + 1e-3)


def test_external_data_copy_keeps_its_data_next_to_it(tmp_path: Path) -> None:
    source = onnx_models.external_mlp(tmp_path / "ext.onnx", **SIZED)
    profile = read_model(source)
    out = apply_option(_int8_option(profile), profile)
    back = read_model(out)
    assert len(back.files) == 2 and back.files[1] == str(tmp_path / "ext.int8.onnx.data")


def test_second_apply_picks_a_free_name(tmp_path: Path) -> None:
    source = onnx_models.mlp(tmp_path / "model.onnx", **SIZED)
    profile = read_model(source)
    opt = _int8_option(profile)
    first = apply_option(opt, profile)
    first_digest = _digest(first)
    second = apply_option(opt, profile)
    assert (first.name, second.name) == ("model.int8.onnx", "model.int8-2.onnx")
    assert _digest(first) == first_digest


def test_cancel_leaves_nothing_behind(tmp_path: Path) -> None:
    source = onnx_models.mlp(tmp_path / "model.onnx", **SIZED)
    profile = read_model(source)
    token = CancelToken()
    seen: list[str] = []

    def progress(fraction: float, message: str) -> None:
        seen.append(message)
        if fraction >= 0.8:  # quantized, about to be saved
            token.cancel()

    with pytest.raises(Cancelled):
        apply_option(_int8_option(profile), profile, progress=progress, cancel=token)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.onnx"]
    assert seen


def test_failure_removes_the_partial_copy(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    source = onnx_models.mlp(tmp_path / "model.onnx", **SIZED)
    profile = read_model(source)

    def broken(src: Path, out: Path, external: bool) -> None:
        out.write_bytes(b"half a model")
        raise RuntimeError("disk full")

    monkeypatch.setattr(apply_mod, "_run_quantize", broken)
    with pytest.raises(AdvisorError, match="disk full"):
        apply_option(_int8_option(profile), profile)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.onnx"]


def test_unsupported_action_is_refused(tmp_path: Path) -> None:
    profile = read_model(onnx_models.mlp(tmp_path / "model.onnx", **SIZED))
    other = [o for o in make_plan(analyze(profile, laptop(16), Workload()), catalog=()).options
             if o.apply_action is None]
    assert other
    with pytest.raises(AdvisorError, match="cannot apply"):
        apply_option(other[0], profile)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.onnx"]
