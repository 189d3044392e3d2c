"""The ONNX estimator: workload → shapes, activations from the graph, runtime terms, degraded cases."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from advisor.errors import WorkloadError
from advisor.estimator import estimate
from advisor.estimator.onnx_estimate import _skeleton, graph_memory
from advisor.estimator.ort_overhead import CUDA_CONTEXT_BYTES
from advisor.estimator.shapes import infer_shapes, resolve_inputs
from advisor.estimator.types import GIB, Workload
from advisor.hardware.profile import HardwareProfile
from advisor.readers.onnx_reader import read_onnx
from tests.builders import onnx_models as om

HW = HardwareProfile(name="test box", source="catalog", kind="desktop", memory_total_bytes=16 * GIB)


def _save(graph: onnx.GraphProto, path: Path, domains: tuple[tuple[str, int], ...] = ()) -> Path:
    opsets = [helper.make_opsetid("", 17), *(helper.make_opsetid(d, v) for d, v in domains)]
    model = helper.make_model(graph, opset_imports=opsets)
    model.ir_version = 10
    onnx.save(model, str(path))
    return path


def _inputs(path: Path, workload: Workload) -> dict[str, tuple[int, ...]]:
    return resolve_inputs(_skeleton(str(path)), workload, str(path)).shapes


def test_symbolic_dims_filled_from_the_workload(tmp_path: Path) -> None:
    path = om.symbolic_dims(tmp_path / "sym.onnx")  # x: [batch, seq, 16]
    assert _inputs(path, Workload(batch=4, seq_len=128)) == {"x": (4, 128, 16)}
    est = estimate(read_onnx(path), Workload(batch=4, seq_len=128), "onnxruntime-cpu", HW)
    assert est.resolved_inputs == {"x": (4, 128, 16)}
    assert est.unknown_dims == ()


def test_unresolved_dim_is_reported_not_guessed(tmp_path: Path) -> None:
    path = om.symbolic_dims(tmp_path / "sym.onnx")
    est = estimate(read_onnx(path), Workload(batch=2), "onnxruntime-cpu", HW)  # no seq_len
    assert est.unknown_dims == ("x:seq",)
    assert any("dim 'seq' of input 'x' not given; assumed 128 (set it with --seq" in n for n in est.notes)
    assert est.resolved_inputs == {"x": (2, 128, 16)}


def test_open_image_dims_default_to_224_and_say_so(tmp_path: Path) -> None:
    path = om.cnn(tmp_path / "cnn.onnx")  # x: [batch, 3, height, width]
    est = estimate(read_onnx(path), Workload(batch=1), "onnxruntime-cpu", HW)
    assert est.resolved_inputs == {"x": (1, 3, 224, 224)}
    assert set(est.unknown_dims) == {"x:height", "x:width"}
    assert any("assumed 224 (set it with --image-size" in n for n in est.notes)


def test_image_dims_and_explicit_shapes(tmp_path: Path) -> None:
    path = om.cnn(tmp_path / "cnn.onnx")  # x: [batch, 3, height, width]
    assert _inputs(path, Workload(batch=2, image_size=64)) == {"x": (2, 3, 64, 64)}
    explicit = Workload(batch=2, image_size=64, input_shapes={"x": (1, 3, 32, 48)})
    assert _inputs(path, explicit) == {"x": (1, 3, 32, 48)}


def test_explicit_shape_errors_name_the_input(tmp_path: Path) -> None:
    path = om.cnn(tmp_path / "cnn.onnx")
    profile = read_onnx(path)
    with pytest.raises(WorkloadError, match="no input named 'image'"):
        estimate(profile, Workload(input_shapes={"image": (1, 3, 8, 8)}), "onnxruntime-cpu", HW)
    with pytest.raises(WorkloadError, match="input 'x' has rank 4"):
        estimate(profile, Workload(input_shapes={"x": (1, 3, 8)}), "onnxruntime-cpu", HW)
    with pytest.raises(WorkloadError, match="fixed shape"):
        estimate(profile, Workload(input_shapes={"x": (1, 4, 8, 8)}), "onnxruntime-cpu", HW)


def test_output_dims_that_are_expressions_of_input_dims_resolve(tmp_path: Path) -> None:
    # y = Concat(x, x, axis=1): [batch, 2*seq, 8]; z = Reshape(y, [0, -1]): [batch, 16*seq].
    shape = numpy_helper.from_array(np.array([0, -1], dtype=np.int64), "shape")
    graph = helper.make_graph(
        [helper.make_node("Concat", ["x", "x"], ["y"], axis=1),
         helper.make_node("Reshape", ["y", "shape"], ["z"]),
         helper.make_node("Relu", ["z"], ["out"])],
        "expr", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", "seq", 8])],
        [helper.make_tensor_value_info("out", TensorProto.FLOAT, ["batch", "total"])], [shape])
    path = _save(graph, tmp_path / "expr.onnx")
    shapes = _inputs(path, Workload(batch=3, seq_len=10))
    inferred, problem = infer_shapes(_skeleton(str(path)), shapes, str(path))
    assert problem is None
    dims = {v.name: [d.dim_value for d in v.type.tensor_type.shape.dim]
            for v in (*inferred.graph.value_info, *inferred.graph.output)}
    assert dims["y"] == [3, 20, 8]
    assert dims["out"] == [3, 160]
    gm = graph_memory(inferred, count_inputs=True)
    assert gm.unknown_tensors == 0
    # While Concat runs: x (3·10·8 floats = 960 B) + y (1920 B). z views y; Relu writes over it
    # in place (y dies there), so the output adds nothing: peak 2880 B, all buffers 960 + 1920.
    assert gm.peak_bytes == 960 + 1920
    assert gm.sum_bytes == 960 + 1920


def test_activations_grow_with_batch_and_weights_stay(tmp_path: Path) -> None:
    profile = read_onnx(om.mlp(tmp_path / "mlp.onnx", hidden=256, layers=3, in_features=256))
    small = estimate(profile, Workload(batch=1), "onnxruntime-cpu", HW)
    big = estimate(profile, Workload(batch=4096), "onnxruntime-cpu", HW)
    assert big.activation_bytes > small.activation_bytes
    assert big.weights_bytes == small.weights_bytes >= profile.weight_bytes
    for est in (small, big):
        assert est.low_bytes <= est.peak_bytes <= est.high_bytes
        assert est.device == "cpu" and est.host_bytes is None


def test_cuda_adds_the_context_and_reports_host_memory(tmp_path: Path) -> None:
    profile = read_onnx(om.mlp(tmp_path / "mlp.onnx", hidden=256, layers=3, in_features=256))
    cpu = estimate(profile, Workload(batch=8), "onnxruntime-cpu", HW)
    cuda = estimate(profile, Workload(batch=8), "onnxruntime-cuda", HW)
    assert cuda.device == "cuda"
    assert cuda.overhead_bytes >= CUDA_CONTEXT_BYTES
    assert cuda.peak_bytes > cpu.peak_bytes + CUDA_CONTEXT_BYTES // 2
    assert cuda.host_bytes is not None and cuda.host_bytes >= profile.weight_bytes
    assert any("CUDA context" in n for n in cuda.notes)


def test_fp16_weights_on_cpu_get_float32_copies(tmp_path: Path) -> None:
    profile = read_onnx(om.fp16_mlp(tmp_path / "h.onnx", hidden=256, layers=2, in_features=256))
    cpu = estimate(profile, Workload(batch=1), "onnxruntime-cpu", HW)
    cuda = estimate(profile, Workload(batch=1), "onnxruntime-cuda", HW)
    assert cpu.weights_bytes >= 3 * profile.weight_bytes * 0.9  # fp16 + fp32 copy
    assert cuda.weights_bytes < 1.1 * profile.weight_bytes
    assert any("float32 copies" in n for n in cpu.notes)


def test_transformed_profile_with_smaller_weights_gives_smaller_estimate(tmp_path: Path) -> None:
    profile = read_onnx(om.mlp(tmp_path / "mlp.onnx", hidden=512, layers=3, in_features=512))
    int8 = tuple(replace(t, dtype="int8", nbytes=t.n_elements) if "MatMul" in t.consumers else t
                 for t in profile.tensors)
    smaller = replace(profile, tensors=int8, weight_bytes=sum(t.nbytes for t in int8))
    for runtime in ("onnxruntime-cpu", "onnxruntime-cuda"):
        a = estimate(profile, Workload(batch=1), runtime, HW)
        b = estimate(smaller, Workload(batch=1), runtime, HW)
        assert b.weights_bytes < a.weights_bytes
        assert b.peak_bytes < a.peak_bytes


def test_control_flow_subgraphs_are_walked(tmp_path: Path) -> None:
    path = om.control_flow(tmp_path / "cf.onnx", width=64)
    est = estimate(read_onnx(path), Workload(batch=512, input_shapes={"n": ()}), "onnxruntime-cpu", HW)
    assert est.resolved_inputs["x"] == (512, 64)
    inferred, _ = infer_shapes(_skeleton(str(path)), est.resolved_inputs, str(path))
    gm = graph_memory(inferred, count_inputs=True)
    # The If branch's MatMul output (512×64 floats) is live inside the branch while If runs.
    assert gm.peak_bytes >= 512 * 64 * 4 * 2
    assert gm.n_nodes > 4  # subgraph nodes counted


def test_uninferable_custom_op_gets_a_note_not_a_crash(tmp_path: Path) -> None:
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["x", "w"], ["h"]),
         helper.make_node("Mystery", ["h"], ["y"], domain="com.example")],
        "custom", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 64])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
        [numpy_helper.from_array(np.ones((64, 64), dtype=np.float32), "w")])
    path = _save(graph, tmp_path / "custom.onnx", domains=(("com.example", 1),))
    est = estimate(read_onnx(path), Workload(batch=8), "onnxruntime-cpu", HW)
    assert any("unknown shape" in n or "shape inference failed" in n for n in est.notes)
    assert est.high_bytes > est.peak_bytes >= est.low_bytes > 0


def test_inference_is_cached_per_shapes(tmp_path: Path) -> None:
    path = om.symbolic_dims(tmp_path / "sym.onnx")
    sk = _skeleton(str(path))
    a, _ = infer_shapes(sk, {"x": (1, 2, 16)}, str(path))
    b, _ = infer_shapes(sk, {"x": (1, 2, 16)}, str(path))
    c, _ = infer_shapes(sk, {"x": (1, 3, 16)}, str(path))
    assert a is b
    assert c is not a
