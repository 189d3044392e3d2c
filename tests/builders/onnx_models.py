"""Small, real, deterministic ONNX models for tests and benchmarks.

Every builder writes a model that passes ``onnx.checker`` (full check, with shape inference) and
that onnxruntime runs, with ``ir_version = 10`` (onnx 1.23 writes 14, which onnxruntime 1.32
refuses) and opset 17 unless the model needs a newer op. Each returns the path it wrote. Weights
come from a seeded numpy generator, so two calls write the same bytes.

Weight names follow the ``layers.<i>.`` convention so :func:`advisor.readers.profile.layer_index`
finds them.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

OPSET = 17
IR_VERSION = 10  # NOTE: onnxruntime 1.32 refuses IR 14, the default of onnx 1.23.


def save(model: onnx.ModelProto, path: Path, **save_kwargs: object) -> Path:
    """Check and save ``model`` with the IR version onnxruntime accepts; return ``path``."""
    model.ir_version = IR_VERSION
    onnx.checker.check_model(model, full_check=True)
    path = Path(path)
    onnx.save_model(model, str(path), **save_kwargs)  # type: ignore[arg-type]
    return path


def _model(graph: onnx.GraphProto, opset: int = OPSET) -> onnx.ModelProto:
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)],
                              producer_name="advisor-tests", producer_version="1.0")
    model.ir_version = IR_VERSION
    return model


def _rand(rng: np.random.Generator, shape: tuple[int, ...], dtype: type | np.dtype) -> np.ndarray:
    return (rng.standard_normal(shape) * 0.1).astype(dtype)


def _mlp_graph(hidden: int, layers: int, in_features: int, out_features: int, dtype: type | np.dtype,
               seed: int, constants: bool, name: str) -> onnx.GraphProto:
    """MatMul → Add → Relu per layer; weights as initializers, or as Constant nodes."""
    rng = np.random.default_rng(seed)
    elem = helper.np_dtype_to_tensor_dtype(np.dtype(dtype))
    nodes: list[onnx.NodeProto] = []
    inits: list[onnx.TensorProto] = []
    x, width = "x", in_features
    for i in range(layers):
        out = out_features if i == layers - 1 else hidden
        w = numpy_helper.from_array(_rand(rng, (width, out), dtype), f"layers.{i}.weight")
        b = numpy_helper.from_array(_rand(rng, (out,), dtype), f"layers.{i}.bias")
        for t in (w, b):
            if constants:
                nodes.append(helper.make_node("Constant", [], [t.name], value=t, name=f"const_{t.name}"))
            else:
                inits.append(t)
        nodes.append(helper.make_node("MatMul", [x, w.name], [f"mm{i}"]))
        y = "y" if i == layers - 1 else f"h{i}"
        nodes.append(helper.make_node("Add", [f"mm{i}", b.name], [y if i == layers - 1 else f"a{i}"]))
        if i < layers - 1:
            nodes.append(helper.make_node("Relu", [f"a{i}"], [y]))
        x, width = y, out
    return helper.make_graph(
        nodes, name,
        [helper.make_tensor_value_info("x", elem, ["batch", in_features])],
        [helper.make_tensor_value_info("y", elem, ["batch", out_features])],
        initializer=inits,
    )


def mlp(path: Path, *, hidden: int = 64, layers: int = 3, in_features: int = 32, out_features: int = 10,
        dtype: type | np.dtype = np.float32, seed: int = 0, initializers_as_inputs: bool = False) -> Path:
    """A multi-layer perceptron with input ``x: [batch, in_features]``.

    ``initializers_as_inputs`` also lists the weights as graph inputs, as IR < 4 exporters did.
    """
    graph = _mlp_graph(hidden, layers, in_features, out_features, dtype, seed, False, "mlp")
    if initializers_as_inputs:
        graph.input.extend(helper.make_tensor_value_info(t.name, t.data_type, t.dims)
                           for t in graph.initializer)
    return save(_model(graph), path)


def fp16_mlp(path: Path, **kwargs: object) -> Path:
    """:func:`mlp` in float16."""
    return mlp(path, dtype=np.float16, **kwargs)  # type: ignore[arg-type]


def constant_mlp(path: Path, *, hidden: int = 48, layers: int = 3, seed: int = 1) -> Path:
    """:func:`mlp` with every weight in a ``Constant`` node, as PaddlePaddle's exporter writes them."""
    graph = _mlp_graph(hidden, layers, 32, 10, np.float32, seed, True, "paddle_style")
    return save(_model(graph), path)


def external_mlp(path: Path, *, hidden: int = 64, layers: int = 3, one_file: bool = True,
                 seed: int = 2) -> Path:
    """:func:`mlp` with its weights in external data next to ``path`` (``<name>.data`` if one file)."""
    graph = _mlp_graph(hidden, layers, 32, 10, np.float32, seed, False, "external")
    path = Path(path)
    return save(_model(graph), path, save_as_external_data=True, all_tensors_to_one_file=one_file,
                location=f"{path.name}.data" if one_file else None, size_threshold=0)


def shared_initializer(path: Path, *, width: int = 16, seed: int = 3) -> Path:
    """One weight ``shared.weight`` read by two MatMuls (tied weights): stored once."""
    rng = np.random.default_rng(seed)
    w = numpy_helper.from_array(_rand(rng, (width, width), np.float32), "shared.weight")
    nodes = [
        helper.make_node("MatMul", ["x", "shared.weight"], ["h"]),
        helper.make_node("Relu", ["h"], ["r"]),
        helper.make_node("MatMul", ["r", "shared.weight"], ["y"]),
    ]
    graph = helper.make_graph(
        nodes, "shared",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", width])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", width])],
        initializer=[w],
    )
    return save(_model(graph), path)


def cnn(path: Path, *, channels: int = 8, classes: int = 10, seed: int = 4) -> Path:
    """Conv → Relu → Conv → GlobalAveragePool → Flatten → Gemm on ``[batch, 3, height, width]``."""
    rng = np.random.default_rng(seed)
    weights = {
        "conv1.weight": _rand(rng, (channels, 3, 3, 3), np.float32),
        "conv1.bias": _rand(rng, (channels,), np.float32),
        "conv2.weight": _rand(rng, (channels * 2, channels, 3, 3), np.float32),
        "conv2.bias": _rand(rng, (channels * 2,), np.float32),
        "fc.weight": _rand(rng, (classes, channels * 2), np.float32),
        "fc.bias": _rand(rng, (classes,), np.float32),
    }
    nodes = [
        helper.make_node("Conv", ["x", "conv1.weight", "conv1.bias"], ["c1"], pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["c1"], ["r1"]),
        helper.make_node("Conv", ["r1", "conv2.weight", "conv2.bias"], ["c2"], strides=[2, 2]),
        helper.make_node("GlobalAveragePool", ["c2"], ["p"]),
        helper.make_node("Flatten", ["p"], ["f"]),
        helper.make_node("Gemm", ["f", "fc.weight", "fc.bias"], ["y"], transB=1),
    ]
    graph = helper.make_graph(
        nodes, "cnn",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 3, "height", "width"])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", classes])],
        initializer=[numpy_helper.from_array(a, n) for n, a in weights.items()],
    )
    return save(_model(graph), path)


def symbolic_dims(path: Path) -> Path:
    """Input ``x: [batch, seq, 16]`` and output ``y`` with one dim that has neither value nor name."""
    w = numpy_helper.from_array(np.eye(16, dtype=np.float32), "proj.weight")
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["x", "proj.weight"], ["y"])], "symbolic",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", "seq", 16])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", None, 16])],
        initializer=[w],
    )
    return save(_model(graph), path)


def control_flow(path: Path, *, width: int = 8, seed: int = 5) -> Path:
    """An ``If`` whose branches hold weights (an initializer and a Constant) and a ``Loop`` whose
    body holds a weight; the loop runs ``n`` (an int64 input) times over ``x: [batch, width]``."""
    rng = np.random.default_rng(seed)
    f32 = TensorProto.FLOAT
    then_w = numpy_helper.from_array(_rand(rng, (width, width), np.float32), "then.weight")
    else_w = numpy_helper.from_array(_rand(rng, (width, width), np.float32), "else.weight")
    then_g = helper.make_graph([helper.make_node("MatMul", ["x", "then.weight"], ["t_out"])], "then_branch",
                               [], [helper.make_tensor_value_info("t_out", f32, ["batch", width])],
                               initializer=[then_w])
    else_g = helper.make_graph(
        [helper.make_node("Constant", [], ["else.weight"], value=else_w),
         helper.make_node("MatMul", ["x", "else.weight"], ["e_out"])], "else_branch",
        [], [helper.make_tensor_value_info("e_out", f32, ["batch", width])])
    body_w = numpy_helper.from_array(_rand(rng, (width, width), np.float32), "loop.weight")
    body = helper.make_graph(
        [helper.make_node("MatMul", ["state_in", "loop.weight"], ["mm"]),
         helper.make_node("Tanh", ["mm"], ["state_out"]),
         helper.make_node("Identity", ["cond_in"], ["cond_out"])], "loop_body",
        [helper.make_tensor_value_info("iter", TensorProto.INT64, []),
         helper.make_tensor_value_info("cond_in", TensorProto.BOOL, []),
         helper.make_tensor_value_info("state_in", f32, ["batch", width])],
        [helper.make_tensor_value_info("cond_out", TensorProto.BOOL, []),
         helper.make_tensor_value_info("state_out", f32, ["batch", width])],
        initializer=[body_w])
    nodes = [
        helper.make_node("ReduceSum", ["x"], ["s"], keepdims=0),
        helper.make_node("Greater", ["s", "zero"], ["pos"]),
        helper.make_node("If", ["pos"], ["branch"], then_branch=then_g, else_branch=else_g),
        helper.make_node("Loop", ["n", "", "branch"], ["y"], body=body),
    ]
    graph = helper.make_graph(
        nodes, "control_flow",
        [helper.make_tensor_value_info("x", f32, ["batch", width]),
         helper.make_tensor_value_info("n", TensorProto.INT64, [])],
        [helper.make_tensor_value_info("y", f32, ["batch", width])],
        initializer=[numpy_helper.from_array(np.array(0.0, dtype=np.float32), "zero")],
    )
    return save(_model(graph), path)


def int4_weights(path: Path, *, rows: int = 16, cols: int = 7, seed: int = 6) -> Path:
    """An int4 weight (odd element count, so packing rounds up) dequantized then used by MatMul."""
    rng = np.random.default_rng(seed)
    q = helper.make_tensor("layers.0.qweight", TensorProto.INT4, [rows, cols],
                           rng.integers(-8, 8, size=rows * cols).tolist())
    scale = numpy_helper.from_array(np.array(0.05, dtype=np.float32), "layers.0.scale")
    graph = helper.make_graph(
        [helper.make_node("DequantizeLinear", ["layers.0.qweight", "layers.0.scale"], ["w"]),
         helper.make_node("MatMul", ["x", "w"], ["y"])], "int4",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", rows])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", cols])],
        initializer=[q, scale],
    )
    return save(_model(graph, opset=21), path)


def tiny_transformer_block(path: Path, *, d_model: int = 32, n_heads: int = 4, d_ff: int = 64,
                           seed: int = 7) -> Path:
    """One pre-norm attention + MLP block on ``x: [batch, seq, d_model]`` (Reshape with constants)."""
    rng = np.random.default_rng(seed)
    head = d_model // n_heads
    p = "layers.0."
    w = {f"{p}{n}": _rand(rng, s, np.float32) for n, s in [
        ("ln1.weight", (d_model,)), ("ln1.bias", (d_model,)), ("q.weight", (d_model, d_model)),
        ("k.weight", (d_model, d_model)), ("v.weight", (d_model, d_model)),
        ("o.weight", (d_model, d_model)), ("ln2.weight", (d_model,)), ("ln2.bias", (d_model,)),
        ("up.weight", (d_model, d_ff)), ("down.weight", (d_ff, d_model))]}
    inits = [numpy_helper.from_array(a, n) for n, a in w.items()]
    inits += [numpy_helper.from_array(np.array([0, 0, n_heads, head], dtype=np.int64), "heads_shape"),
              numpy_helper.from_array(np.array([0, 0, d_model], dtype=np.int64), "merge_shape"),
              numpy_helper.from_array(np.array(1.0 / np.sqrt(head), dtype=np.float32), "scale")]
    n = helper.make_node
    nodes = [n("LayerNormalization", ["x", f"{p}ln1.weight", f"{p}ln1.bias"], ["ln1"], axis=-1)]
    for k in "qkv":
        nodes += [n("MatMul", ["ln1", f"{p}{k}.weight"], [f"{k}_flat"]),
                  n("Reshape", [f"{k}_flat", "heads_shape"], [f"{k}_4d"]),
                  n("Transpose", [f"{k}_4d"], [f"{k}_h"], perm=[0, 2, 3, 1] if k == "k" else [0, 2, 1, 3])]
    nodes += [
        n("MatMul", ["q_h", "k_h"], ["scores_raw"]), n("Mul", ["scores_raw", "scale"], ["scores"]),
        n("Softmax", ["scores"], ["probs"], axis=-1), n("MatMul", ["probs", "v_h"], ["ctx_h"]),
        n("Transpose", ["ctx_h"], ["ctx_t"], perm=[0, 2, 1, 3]),
        n("Reshape", ["ctx_t", "merge_shape"], ["ctx"]), n("MatMul", ["ctx", f"{p}o.weight"], ["attn"]),
        n("Add", ["x", "attn"], ["res1"]),
        n("LayerNormalization", ["res1", f"{p}ln2.weight", f"{p}ln2.bias"], ["ln2"], axis=-1),
        n("MatMul", ["ln2", f"{p}up.weight"], ["up"]), n("Relu", ["up"], ["act"]),
        n("MatMul", ["act", f"{p}down.weight"], ["down"]), n("Add", ["res1", "down"], ["y"]),
    ]
    graph = helper.make_graph(
        nodes, "main_graph",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", "seq", d_model])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", "seq", d_model])],
        initializer=inits,
    )
    return save(_model(graph), path)


ALL_BUILDERS = {
    "mlp": mlp, "fp16_mlp": fp16_mlp, "constant_mlp": constant_mlp, "external_mlp": external_mlp,
    "shared_initializer": shared_initializer, "cnn": cnn, "symbolic_dims": symbolic_dims,
    "control_flow": control_flow, "int4_weights": int4_weights,
    "tiny_transformer_block": tiny_transformer_block,
}
"""Every builder by name, each callable as ``builder(path)`` with its defaults."""
