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
from advisor.estimator.mechanisms.shapes import infer_shapes, resolve_inputs
from advisor.estimator.runtimes.onnxruntime import _skeleton
from advisor.estimator.runtimes.onnxruntime_graph import graph_memory
from advisor.estimator.runtimes.onnxruntime_weights import CUDA_CONTEXT_BYTES
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
    # While Concat runs: x (3·10·8 floats = 960 B) + y (1920 B). z views y; Relu's result is a
    # graph output, which ORT never writes in place over an input (kAllocateOutput): while Relu
    # runs y and out are live, 3840 B; all buffers 960 + 1920 + 1920.
    assert gm.peak_bytes == 1920 + 1920
    assert gm.sum_bytes == 960 + 1920 + 1920


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
    assert cpu.weights_bytes >= 2 * profile.weight_bytes * 0.9  # fp32 copies replace the fp16 weights
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


def _torch_style_attention(path: Path, d: int = 64, heads: int = 4) -> Path:
    """``x.view(b, t, h, d // h)`` as torch.onnx exports it: Shape → Gather → Div → Concat → Reshape,
    plus ``arange(t)`` (Range) and a ``Where`` on shape values — ops onnx's data propagation skips."""
    n = helper.make_node
    c = helper.make_tensor
    nodes = [
        n("Shape", ["x"], ["s"]),
        n("Constant", [], ["i0"], value=c("i0", TensorProto.INT64, [], [0])),
        n("Constant", [], ["i1"], value=c("i1", TensorProto.INT64, [], [1])),
        n("Constant", [], ["i2"], value=c("i2", TensorProto.INT64, [], [2])),
        n("Constant", [], ["h"], value=c("h", TensorProto.INT64, [], [heads])),
        n("Constant", [], ["ax"], value=c("ax", TensorProto.INT64, [1], [0])),
        n("Gather", ["s", "i0"], ["b"], axis=0), n("Gather", ["s", "i1"], ["t"], axis=0),
        n("Gather", ["s", "i2"], ["dd"], axis=0), n("Div", ["dd", "h"], ["hd"]),
        n("Equal", ["hd", "i0"], ["z"]), n("Where", ["z", "i1", "hd"], ["hd2"]),
        *(n("Unsqueeze", [v, "ax"], [v + "_u"]) for v in ("b", "t", "h", "hd2")),
        n("Concat", ["b_u", "t_u", "h_u", "hd2_u"], ["shape4"], axis=0),
        n("MatMul", ["x", "w"], ["q"]), n("Reshape", ["q", "shape4"], ["q4"]),
        n("Transpose", ["q4"], ["qt"], perm=[0, 2, 1, 3]),
        n("Range", ["i0", "t", "i1"], ["pos"]), n("Cast", ["pos"], ["posf"], to=TensorProto.FLOAT),
        n("Mul", ["qt", "one"], ["y"]),
    ]
    graph = helper.make_graph(
        nodes, "torch_style", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", "seq", d])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None),
         helper.make_tensor_value_info("posf", TensorProto.FLOAT, None)],
        [numpy_helper.from_array(np.ones((d, d), dtype=np.float32), "w"),
         numpy_helper.from_array(np.ones((1,), dtype=np.float32), "one")])
    return _save(graph, path)


def test_torch_style_shape_computations_resolve(tmp_path: Path) -> None:
    path = _torch_style_attention(tmp_path / "attn.onnx")
    sk = _skeleton(str(path))
    inferred, problem = infer_shapes(sk, {"x": (2, 10, 64)}, str(path))
    assert problem is None
    gm = graph_memory(inferred, count_inputs=False)
    assert gm.unknown_tensors == 0
    dims = {v.name: [d.dim_value for d in v.type.tensor_type.shape.dim]
            for v in (*inferred.graph.value_info, *inferred.graph.output)}
    assert dims["qt"] == [2, 4, 10, 16]
    assert dims["posf"] == [10]
    est = estimate(read_onnx(path), Workload(batch=2, seq_len=10), "onnxruntime-cpu", HW)
    assert not any("unknown shape" in note for note in est.notes)


def test_shape_values_evaluates_only_small_known_tensors(tmp_path: Path) -> None:
    from advisor.estimator.mechanisms.shape_values import constant_values

    path = _torch_style_attention(tmp_path / "attn.onnx")
    inferred = onnx.shape_inference.infer_shapes(onnx.load(str(path)))  # symbolic: batch, seq unknown
    values = constant_values(inferred.graph)
    assert "s" not in values  # Shape of a tensor whose dims are symbolic stays unknown
    assert "q" not in values and "y" not in values  # activations never evaluated
    concrete, _ = infer_shapes(_skeleton(str(path)), {"x": (3, 5, 64)}, str(path))
    assert not any(n.op_type in ("Shape", "Div", "Where", "Range") for n in concrete.graph.node)


def test_nchwc_filters_cost_extra_load_copies_on_x86_only(tmp_path: Path) -> None:
    from advisor.estimator.runtimes.onnxruntime_weights import nchwc_filter
    from advisor.hardware.profile import CpuInfo

    assert nchwc_filter((4, 64, 64), 1)
    assert nchwc_filter((4, 64, 3), 1)  # the first layer reads the NCHW image directly
    assert nchwc_filter((4, 96, 1), 96)  # depthwise
    assert not nchwc_filter((4, 60, 64), 1)
    assert not nchwc_filter((4, 64, 4), 16)  # grouped, not depthwise
    assert not nchwc_filter((3, 64, 64), 1)  # Conv1d
    path = om.cnn(tmp_path / "cnn.onnx", channels=64)
    profile = read_onnx(path)
    wl = Workload(batch=1, image_size=8)  # tiny activations: the load's copies decide the peak
    x86 = estimate(profile, wl, "onnxruntime-cpu", replace(HW, cpu=CpuInfo(arch="x86_64")))
    arm = estimate(profile, wl, "onnxruntime-cpu", replace(HW, cpu=CpuInfo(arch="aarch64")))
    conv_bytes = sum(t.nbytes for t in profile.tensors if len(t.shape) == 4)
    assert x86.peak_bytes - arm.peak_bytes >= conv_bytes


def test_big_gather_table_makes_no_load_transient() -> None:
    from advisor.estimator.runtimes.onnxruntime_weights import weight_terms
    from advisor.readers.profile import TensorInfo

    big = 100 * 2**20

    def table(consumer: str) -> TensorInfo:
        return TensorInfo(name="emb", dtype="float32", shape=(big // 4,), n_elements=big // 4, nbytes=big,
                          file="m.onnx", consumers=(consumer,))

    gathered = weight_terms([table("Gather")], "onnxruntime-cpu")
    packed = weight_terms([table("MatMul")], "onnxruntime-cpu")
    assert gathered.load_extra_bytes == 0
    assert packed.load_extra_bytes == big


def test_memory_pattern_leaves_out_graph_outputs(tmp_path: Path) -> None:
    path = om.mlp(tmp_path / "mlp.onnx", hidden=64, layers=2, in_features=64, out_features=4096)
    sk = _skeleton(str(path))
    inferred, _ = infer_shapes(sk, {v.name: (512, 64) for v in sk.graph.input}, str(path))
    gm = graph_memory(inferred, count_inputs=False)
    assert gm.output_bytes == 512 * 4096 * 4
    assert gm.pattern_low_bytes < gm.peak_bytes  # the 8 MiB graph output is not in the block
    # The second run's new pages come from the arena simulation: here the block (8 MiB of hidden
    # activations + alignment) is bigger than each 8 MiB region the first run freed, so it is a
    # new region and all of it is new pages.
    assert gm.pattern_block_bytes == sum(g for _, _, g in gm.arena_regions) == gm.pattern_low_bytes > 0


def test_run_reuses_only_heap_leftovers_as_big_as_its_arena_regions() -> None:
    from advisor.estimator.mechanisms.glibc_heap import MMAP_THRESHOLD_MIN_BYTES
    from advisor.estimator.runtimes.onnxruntime_weights import weight_terms
    from advisor.readers.profile import TensorInfo

    def weight(name: str, nbytes: int) -> TensorInfo:
        return TensorInfo(name=name, dtype="float32", shape=(nbytes // 4,), n_elements=nbytes // 4,
                          nbytes=nbytes, file="m.onnx", consumers=("MatMul",))

    many_small = weight_terms([weight(f"w{i}", 2 * 2**20) for i in range(8)], "onnxruntime-cpu")
    one_big = weight_terms([weight("w", 16 * 2**20)], "onnxruntime-cpu")
    beyond_heap = weight_terms([weight("w", 64 * 2**20)], "onnxruntime-cpu")
    assert many_small.retained_bytes == one_big.retained_bytes > 0
    assert many_small.largest_freed_bytes == 2 * 2**20
    assert one_big.largest_freed_bytes == 16 * 2**20
    assert beyond_heap.largest_freed_bytes == MMAP_THRESHOLD_MIN_BYTES


def test_custom_op_widens_the_range_compared_with_a_known_op(tmp_path: Path) -> None:
    def build(op: str, domain: str) -> Path:
        graph = helper.make_graph(
            [helper.make_node("MatMul", ["x", "w"], ["h"]), helper.make_node(op, ["h"], ["y"], domain=domain)],
            op, [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 256])],
            [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
            [numpy_helper.from_array(np.ones((256, 1024), dtype=np.float32), "w")])
        return _save(graph, tmp_path / f"{op}.onnx", domains=(("com.example", 1),))

    wl = Workload(batch=4096)
    known = estimate(read_onnx(build("Relu", "")), wl, "onnxruntime-cpu", HW)
    custom = estimate(read_onnx(build("Mystery", "com.example")), wl, "onnxruntime-cpu", HW)
    assert not any("unknown shape" in n for n in known.notes)
    assert any("unknown shape" in n for n in custom.notes)
    assert custom.high_bytes - custom.peak_bytes > known.high_bytes - known.peak_bytes


def test_constant_folding_keeps_only_the_folded_values_a_computing_node_reads(tmp_path: Path) -> None:
    # w (1 MiB) → Transpose → Reshape → MatMul: onnxruntime folds the chain into ONE new
    # initializer (1 MiB) and drops w and the intermediate: no net extra weight bytes.
    w = numpy_helper.from_array(np.zeros((512, 512), np.float32), "w")
    shape = numpy_helper.from_array(np.array([512, 512], np.int64), "shape")
    graph = helper.make_graph(
        [helper.make_node("Transpose", ["w"], ["wt"]), helper.make_node("Reshape", ["wt", "shape"], ["wr"]),
         helper.make_node("MatMul", ["x", "wr"], ["y"])],
        "fold", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [4, 512])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [4, 512])], [w, shape])
    path = _save(graph, tmp_path / "fold.onnx")
    inferred, _ = infer_shapes(_skeleton(str(path)), {"x": (4, 512)}, str(path))
    assert graph_memory(inferred, count_inputs=False).fold_extra_bytes == 0
    # A weight folded out of a Constant node and kept by a second reader adds its folded copy.
    c = helper.make_node("Constant", [], ["k"], value=numpy_helper.from_array(np.zeros((512, 512), np.float32)))
    graph2 = helper.make_graph(
        [c, helper.make_node("Transpose", ["k"], ["kt"]), helper.make_node("MatMul", ["x", "kt"], ["a"]),
         helper.make_node("MatMul", ["a", "k"], ["y"])],
        "fold2", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [4, 512])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [4, 512])], [])
    path2 = _save(graph2, tmp_path / "fold2.onnx")
    inferred2, _ = infer_shapes(_skeleton(str(path2)), {"x": (4, 512)}, str(path2))
    assert graph_memory(inferred2, count_inputs=False).fold_extra_bytes == 512 * 512 * 4


def test_sizes_shape_inference_misses_follow_from_ops_that_keep_the_element_count(tmp_path: Path) -> None:
    # A custom-domain op onnx cannot infer, then Reshape (to a computed target onnx cannot
    # see: a graph input), Transpose and Relu: each keeps the element count of its input.
    graph = helper.make_graph(
        [helper.make_node("Relu", ["x"], ["a"]),
         helper.make_node("Reshape", ["a", "target"], ["b"]),
         helper.make_node("Transpose", ["b"], ["c"]),
         helper.make_node("Add", ["c", "c"], ["y"])],
        "prop", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [64, 1024]),
                 helper.make_tensor_value_info("target", TensorProto.INT64, [2])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)])
    path = _save(graph, tmp_path / "prop.onnx")
    inferred, _ = infer_shapes(_skeleton(str(path)), {"x": (64, 1024), "target": (2,)}, str(path))
    gm = graph_memory(inferred, count_inputs=False)
    assert gm.unknown_tensors == 0
    # a (256 KiB) is viewed as b and dies at the Transpose; c and y (256 KiB each) at the Add.
    assert gm.peak_bytes == 2 * 64 * 1024 * 4
