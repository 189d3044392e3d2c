"""Mechanisms found on real public models (issue 9), each pinned with a hand-computed figure.

* a Loop whose loop-carried state keeps its shape (paddle2onnx's SLANet decoder);
* data-dependent tensors bounded by the ScatterElements / Tile / Reshape that read them;
* HardSwish, which onnxruntime's CPU EP runs as its function body (HardSigmoid, Mul);
* the int32 product buffer of a QDQ MatMul fused into QLinearMatMul.
"""

from __future__ import annotations

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from advisor.estimator.mechanisms.shapes import infer_shapes
from advisor.estimator.runtimes.onnxruntime_graph import KernelTarget, _Walker, graph_memory

X86 = KernelTarget(threads=2, nchwc_block=8)


def _model(graph: onnx.GraphProto, opset: int = 17) -> onnx.ModelProto:
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = 8
    return model


def _dims(model: onnx.ModelProto, name: str) -> list[int] | None:
    for vi in (*model.graph.value_info, *model.graph.output):
        if vi.name == name and vi.type.tensor_type.HasField("shape"):
            dims = vi.type.tensor_type.shape.dim
            if all(d.HasField("dim_value") for d in dims):
                return [d.dim_value for d in dims]
    return None


def _loop_model(*, grow: bool = False) -> onnx.ModelProto:
    """``Loop(M=5)`` over a [1, 8, 16] float state declared ``[?, 8, 16]`` in the body (as
    paddle2onnx writes it), plus a per-iteration [4] scan output; ``grow`` makes the state a
    Concat along axis 0 (its shape changes every iteration)."""
    one = numpy_helper.from_array(np.ones((1, 8, 16), np.float32), "one")
    step = numpy_helper.from_array(np.ones(4, np.float32), "step")
    body_nodes = [helper.make_node("Identity", ["cond_in"], ["cond_out"]),
                  helper.make_node("Concat", ["state", "one"], ["state_out"], axis=0) if grow else
                  helper.make_node("Add", ["state", "one"], ["state_out"]),
                  helper.make_node("Identity", ["step"], ["scan_out"])]
    body = helper.make_graph(
        body_nodes, "body",
        [helper.make_tensor_value_info("i", TensorProto.INT64, []),
         helper.make_tensor_value_info("cond_in", TensorProto.BOOL, []),
         helper.make_tensor_value_info("state", TensorProto.FLOAT, ["d0", 8, 16])],
        [helper.make_tensor_value_info("cond_out", TensorProto.BOOL, []),
         helper.make_tensor_value_info("state_out", TensorProto.FLOAT, ["d1", 8, 16]),
         helper.make_tensor_value_info("scan_out", TensorProto.FLOAT, [4])],
        [one, step])
    nodes = [helper.make_node("Relu", ["x"], ["s0"]),
             helper.make_node("Loop", ["M", "c"], [], body=body)]
    nodes[1].input.append("s0")
    nodes[1].output.extend(["final", "scan"])
    nodes.append(helper.make_node("Relu", ["final"], ["y"]))
    graph = helper.make_graph(
        nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 8, 16])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None),
         helper.make_tensor_value_info("scan", TensorProto.FLOAT, None)],
        [numpy_helper.from_array(np.array(5, np.int64), "M"), numpy_helper.from_array(np.array(True), "c")])
    return _model(graph)


def test_loop_state_that_keeps_its_shape_sizes_the_loop_outputs() -> None:
    inferred, problem = infer_shapes(_loop_model(), {"x": (1, 8, 16)})
    assert problem is None
    # the state: [1, 8, 16] in, Add keeps it, so every iteration and the Loop output are [1, 8, 16]
    assert _dims(inferred, "final") == [1, 8, 16]
    assert _dims(inferred, "y") == [1, 8, 16]
    # the scan output stacks one [4] per iteration, at most M = 5 of them
    assert _dims(inferred, "scan") == [5, 4]
    gm = graph_memory(inferred, count_inputs=False)
    assert gm.unknown_tensors == 0
    assert gm.output_bytes == 1 * 8 * 16 * 4 + 5 * 4 * 4  # y 512 B + scan 80 B


def test_growing_loop_state_stays_unknown() -> None:
    inferred, problem = infer_shapes(_loop_model(grow=True), {"x": (1, 8, 16)})
    assert problem is None
    assert _dims(inferred, "final") is None  # [1 + i, 8, 16]: no fixed point, not guessed
    assert _dims(inferred, "scan") == [5, 4]


def _scatter_model() -> onnx.ModelProto:
    """``ScatterElements(data [1, 501, 30], Tile(Reshape(Range(0, n)), [1, 1, 30]), Expand(u, ...))``:
    indices and updates have data-dependent shapes (n is a run-time value)."""
    inits = [numpy_helper.from_array(np.array(0, np.int64), "zero"),
             numpy_helper.from_array(np.array(1, np.int64), "one"),
             numpy_helper.from_array(np.array([1, -1, 1], np.int64), "shape3"),
             numpy_helper.from_array(np.array([1, 1, 30], np.int64), "reps"),
             numpy_helper.from_array(np.ones((1, 1, 30), np.float32), "u")]
    nodes = [helper.make_node("Relu", ["data"], ["d"]),
             helper.make_node("Range", ["zero", "n", "one"], ["r"]),
             helper.make_node("Reshape", ["r", "shape3"], ["r3"]),
             helper.make_node("Tile", ["r3", "reps"], ["idx"]),
             helper.make_node("Shape", ["idx"], ["idx_shape"]),
             helper.make_node("Expand", ["u", "idx_shape"], ["upd"]),
             helper.make_node("ScatterElements", ["d", "idx", "upd"], ["y"], axis=1)]
    graph = helper.make_graph(
        nodes, "g", [helper.make_tensor_value_info("data", TensorProto.FLOAT, [1, 501, 30]),
                     helper.make_tensor_value_info("n", TensorProto.INT64, [])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 501, 30])], inits)
    return _model(graph)


def test_scatter_elements_bounds_its_data_dependent_indices_and_updates() -> None:
    inferred, _ = infer_shapes(_scatter_model(), {"data": (1, 501, 30), "n": ()})
    w = _Walker(inferred)
    elems = 1 * 501 * 30  # no more indices/updates than data elements (no duplicates allowed)
    assert w.known["upd"] == elems * 4  # float updates
    assert w.known["idx"] == elems * 8  # int64 indices
    assert w.known["r3"] == elems * 8  # Tile never shrinks its input
    assert w.known["r"] == elems * 8  # Reshape keeps the element count
    assert graph_memory(inferred, count_inputs=False).unknown_tensors == 0


def test_hardswish_runs_as_hardsigmoid_then_mul() -> None:
    shape = [1, 32, 64, 64]
    t = 1 * 32 * 64 * 64 * 4  # 512 KiB per tensor
    nodes = [helper.make_node("Relu", ["x"], ["a"]), helper.make_node("HardSwish", ["a"], ["y"])]
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, shape)],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, shape)])
    inferred, _ = infer_shapes(_model(graph, 14), {"x": tuple(shape)})
    gm = graph_memory(inferred, count_inputs=False, kernels=X86)  # the CPU EP's session inlines it
    # while the inlined Mul runs: a (read by both halves), HardSigmoid(a), and y
    assert gm.peak_bytes == 3 * t


def _qdq_matmul_model(m: int, k: int, n: int) -> onnx.ModelProto:
    """float X → Q → DQ → MatMul(·, DQ(int8 W)) → Q → DQ: ORT fuses it into QLinearMatMul."""
    inits = [numpy_helper.from_array(np.ones((k, n), np.int8), "w_q"),
             numpy_helper.from_array(np.array(0.1, np.float32), "s"),
             numpy_helper.from_array(np.array(128, np.uint8), "zu"),
             numpy_helper.from_array(np.array(0, np.int8), "zs")]
    nodes = [helper.make_node("QuantizeLinear", ["x", "s", "zu"], ["xq"]),
             helper.make_node("DequantizeLinear", ["xq", "s", "zu"], ["xd"]),
             helper.make_node("DequantizeLinear", ["w_q", "s", "zs"], ["wd"]),
             helper.make_node("MatMul", ["xd", "wd"], ["mm"]),
             helper.make_node("QuantizeLinear", ["mm", "s", "zu"], ["yq"]),
             helper.make_node("DequantizeLinear", ["yq", "s", "zu"], ["y"])]
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [m, k])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [m, n])], inits)
    return _model(graph, 13)


def test_qlinear_matmul_takes_an_int32_product_buffer() -> None:
    m, k, n = 256, 64, 32
    inferred, _ = infer_shapes(_qdq_matmul_model(m, k, n), {"x": (m, k)})
    w = _Walker(inferred, X86)
    steps, _ = w.steps(inferred.graph)
    mm = next(s for s in steps if s.op_type == "MatMul")
    assert mm.scratch_bytes == m * n * 4  # QLinearMatMul::Compute: M·N int32 from the arena
    # without the fusion (no kernel target: no QDQ rules applied) the float MatMul has no buffer
    plain = _Walker(inferred)
    assert next(s for s in plain.steps(inferred.graph)[0] if s.op_type == "MatMul").scratch_bytes == 0


def test_hardswish_right_after_a_conv_is_fused_not_inlined() -> None:
    # ConvActivationFusion folds it into the Conv (activation=HardSwish): no HardSigmoid tensor
    shape = [1, 8, 32, 32]
    t = 1 * 8 * 32 * 32 * 4
    w = numpy_helper.from_array(np.ones((8, 8, 1, 1), np.float32), "w")
    nodes = [helper.make_node("Conv", ["x", "w"], ["c"]), helper.make_node("HardSwish", ["c"], ["y"])]
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, shape)],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, shape)], [w])
    inferred, _ = infer_shapes(_model(graph, 14), {"x": tuple(shape)})
    walker = _Walker(inferred)
    assert [s.op_type for s in walker.steps(inferred.graph)[0]] == ["Conv", "HardSwish"]
    assert graph_memory(inferred, count_inputs=False).peak_bytes == 2 * t  # c and y, as before
