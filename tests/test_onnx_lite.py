"""advisor.onnx_lite: onnx's classes and shape inference without ``import onnx`` (and ml_dtypes)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from advisor import onnx_lite
from tests.builders import onnx_models

REPO = Path(__file__).resolve().parent.parent


def test_estimating_an_onnx_model_imports_neither_onnx_nor_ml_dtypes_and_a_later_import_onnx_works(
        tmp_path: Path) -> None:
    model = onnx_models.cnn(tmp_path / "cnn.onnx")
    script = f"""
import sys
from advisor.analysis import analyze
from advisor.estimator.types import Workload
from advisor.readers import read_model
from tests.builders.hardware import laptop
a = analyze(read_model({str(model)!r}), laptop(), Workload(batch=2))
assert a.estimate.activation_bytes > 0, a.estimate
assert "ml_dtypes" not in sys.modules and "onnx" not in sys.modules, sorted(m for m in sys.modules if "onnx" in m)
import onnx, onnx.shape_inference
from advisor import onnx_lite
assert onnx.ModelProto is onnx_lite.pb().ModelProto
assert onnx.onnx_cpp2py_export is sys.modules["onnx.onnx_cpp2py_export"]
m = onnx.load({str(model)!r})
onnx.checker.check_model(m)
print(len(onnx.shape_inference.infer_shapes(m).graph.value_info))
"""
    out = subprocess.run([sys.executable, "-c", script], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert int(out.stdout.strip()) > 0


@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.float16, np.int64, np.int32, np.int8, np.uint8,
                                   np.bool_])
def test_arrays_round_trip_as_numpy_helper_writes_and_reads_them(dtype: type) -> None:
    arr = (np.arange(12).reshape(3, 4) % 3).astype(dtype)
    ours = onnx_lite.from_array(arr, "x")
    assert ours.SerializeToString() == numpy_helper.from_array(arr, "x").SerializeToString()
    np.testing.assert_array_equal(onnx_lite.to_array(ours), arr)
    typed = helper.make_tensor("y", helper.np_dtype_to_tensor_dtype(np.dtype(dtype)), [3, 4], arr.reshape(-1).tolist())
    np.testing.assert_array_equal(onnx_lite.to_array(typed), numpy_helper.to_array(typed))


def test_types_numpy_lacks_are_refused_not_misread() -> None:
    t = helper.make_tensor("b", TensorProto.BFLOAT16, [2], [1.0, 2.0])
    with pytest.raises(ValueError, match="no numpy dtype"):
        onnx_lite.to_array(t)


def test_nodes_and_value_infos_serialise_as_onnx_helper_makes_them() -> None:
    value = numpy_helper.from_array(np.array([1, -1], dtype=np.int64), "s")
    kwargs: dict[str, object] = {"axis": 1, "alpha": 0.5, "mode": "constant", "pads": [0, 1], "scales": [1.0, 2.5],
                              "value": value}
    ours = onnx_lite.make_node("Op", ["a", ""], ["b"], name="n", **kwargs)
    theirs = helper.make_node("Op", ["a", ""], ["b"], name="n", **kwargs)
    assert ours.SerializeToString() == theirs.SerializeToString()
    assert {a.name: onnx_lite.attribute_value(a) for a in ours.attribute}.keys() == set(kwargs)
    for shape in ([], None, [2, "n", None]):
        ours_vi = onnx_lite.make_tensor_value_info("v", TensorProto.FLOAT, shape)
        theirs_vi = helper.make_tensor_value_info("v", TensorProto.FLOAT, shape)
        assert ours_vi.SerializeToString() == theirs_vi.SerializeToString()


def test_shape_inference_is_onnx_shape_inference() -> None:
    graph = helper.make_graph(
        [helper.make_node("Shape", ["x"], ["s"]), helper.make_node("Reshape", ["x", "s"], ["y"])], "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 3])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    theirs = onnx.shape_inference.infer_shapes(model, check_type=False, strict_mode=False, data_prop=True)
    assert onnx_lite.infer_shapes(model).SerializeToString() == theirs.SerializeToString()


def test_isolated_inference_gives_the_same_model_and_the_same_errors(monkeypatch: pytest.MonkeyPatch) -> None:
    graph = helper.make_graph(
        [helper.make_node("Shape", ["x"], ["s"]), helper.make_node("Reshape", ["x", "s"], ["y"])], "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 3])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    here = onnx_lite.infer_shapes(model)
    children: list[bytes] = []
    real = onnx_lite._infer_in_child

    def spy(data: bytes) -> bytes | None:
        children.append(data)
        return real(data)

    monkeypatch.setattr(onnx_lite, "_infer_in_child", spy)
    monkeypatch.setattr(onnx_lite, "_isolate_min", (10**9, 1))  # every graph is "big" by its bytes
    assert onnx_lite.infer_shapes(model).SerializeToString() == here.SerializeToString()
    assert len(children) == 1
    monkeypatch.setattr(onnx_lite, "_isolate_min", (2, 10**9))  # and by its nodes (this one has two)
    onnx_lite.infer_shapes(model)
    assert len(children) == 2
    monkeypatch.setattr(onnx_lite, "_isolate_min", (3, 10**9))
    onnx_lite.infer_shapes(model)
    assert len(children) == 2  # small enough: in-process
    garbage = b"\x0a\xff\xff\xff\x0f not a model"  # what in-process inference refuses, the child refuses
    with pytest.raises(Exception) as in_process:
        onnx_lite._modules()[0].shape_inference.infer_shapes(garbage, False, False, True)
    with pytest.raises(RuntimeError) as in_child:
        onnx_lite._infer_in_child(garbage)
    assert type(in_process.value).__name__ in str(in_child.value)


def test_a_bundled_app_infers_in_process(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys, "frozen", True, raising=False)  # PyInstaller sets it; its executable is the app
    assert onnx_lite._infer_in_child(b"") is None
