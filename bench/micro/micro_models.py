"""One-op micro-models built with onnx.helper (``ir_version = 10``, opset 17) for kernel_scratch.py.

``build(op, params)`` returns ``(model, {input_name: shape})``. Weights are random float32 initializers,
so their bytes are real (nothing is shared or compressed).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper


def _model(nodes: list[onnx.NodeProto], inputs: dict[str, list[int]], outputs: list[str],
           inits: dict[str, np.ndarray], opset: int = 17) -> onnx.ModelProto:
    g = helper.make_graph(
        nodes, "micro",
        [helper.make_tensor_value_info(k, TensorProto.FLOAT, v) for k, v in inputs.items()],
        [helper.make_tensor_value_info(o, TensorProto.FLOAT, None) for o in outputs],
        [numpy_helper.from_array(a.astype(np.float32), k) for k, a in inits.items()],
    )
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", opset)])
    m.ir_version = 10
    return m


def build(op: str, p: dict[str, Any]) -> tuple[onnx.ModelProto, dict[str, list[int]]]:
    rng = np.random.default_rng(1)
    if op in ("Conv", "ConvRelu"):
        n, c, h, w = p.get("N", 1), p["C"], p["H"], p.get("W", p["H"])
        m, k, s, g = p["M"], p.get("k", 3), p.get("stride", 1), p.get("group", 1)
        pad = p.get("pad", k // 2)
        wt = rng.standard_normal((m, c // g, k, k))
        attrs = {"kernel_shape": [k, k], "strides": [s, s], "pads": [pad] * 4, "group": g}
        nodes = [helper.make_node("Conv", ["x", "w", "b"], ["y" if op == "Conv" else "t"], **attrs)]
        if op == "ConvRelu":
            nodes.append(helper.make_node("Relu", ["t"], ["y"]))
        return _model(nodes, {"x": [n, c, h, w]}, ["y"], {"w": wt, "b": rng.standard_normal(m)}), {"x": [n, c, h, w]}
    if op == "ConvTranspose":
        n, c, h, w = p.get("N", 1), p["C"], p["H"], p.get("W", p["H"])
        m, k, s = p["M"], p.get("k", 4), p.get("stride", 2)
        pad = p.get("pad", (k - s) // 2)
        wt = rng.standard_normal((c, m, k, k))
        node = helper.make_node("ConvTranspose", ["x", "w"], ["y"], kernel_shape=[k, k], strides=[s, s], pads=[pad] * 4)
        return _model([node], {"x": [n, c, h, w]}, ["y"], {"w": wt}), {"x": [n, c, h, w]}
    if op in ("MaxPool", "AveragePool"):
        shape, k, s = p["shape"], p.get("k", 3), p.get("stride", 2)
        node = helper.make_node(op, ["x"], ["y"], kernel_shape=[k, k], strides=[s, s], pads=[k // 2] * 4)
        return _model([node], {"x": shape}, ["y"], {}), {"x": shape}
    if op == "Resize":
        shape, scale, mode = p["shape"], p.get("scale", 2.0), p.get("mode", "nearest")
        scales = np.array([1, 1, scale, scale], dtype=np.float32)
        node = helper.make_node("Resize", ["x", "", "scales"], ["y"], mode=mode)
        return _model([node], {"x": shape}, ["y"], {"scales": scales}), {"x": shape}
    if op in ("Softmax", "LogSoftmax"):
        shape, axis = p["shape"], p.get("axis", -1)
        node = helper.make_node(op, ["x"], ["y"], axis=axis)
        return _model([node], {"x": shape}, ["y"], {}), {"x": shape}
    if op == "LayerNormalization":
        shape = p["shape"]
        d = shape[-1]
        node = helper.make_node(op, ["x", "g", "b"], ["y"], axis=-1)
        return _model([node], {"x": shape}, ["y"], {"g": np.ones(d), "b": np.zeros(d)}), {"x": shape}
    if op == "MatMul":
        a, b = p["a"], p["b"]
        if p.get("b_const", False):
            node = helper.make_node("MatMul", ["a", "w"], ["y"])
            return _model([node], {"a": a}, ["y"], {"w": rng.standard_normal(b)}), {"a": a}
        node = helper.make_node("MatMul", ["a", "bb"], ["y"])
        return _model([node], {"a": a, "bb": b}, ["y"], {}), {"a": a, "bb": b}
    if op == "Gemm":
        m_, k_, n_ = p["M"], p["K"], p["N"]
        node = helper.make_node("Gemm", ["a", "w", "c"], ["y"], transB=p.get("transB", 1))
        wshape = [n_, k_] if p.get("transB", 1) else [k_, n_]
        return (_model([node], {"a": [m_, k_]}, ["y"], {"w": rng.standard_normal(wshape), "c": np.zeros(n_)}),
                {"a": [m_, k_]})
    if op == "Einsum":
        eq, shapes = p["equation"], p["shapes"]
        names = [f"i{j}" for j in range(len(shapes))]
        node = helper.make_node("Einsum", names, ["y"], equation=eq)
        ins = dict(zip(names, shapes, strict=True))
        return _model([node], ins, ["y"], {}, opset=17), ins
    if op == "Relu":
        shape = p["shape"]
        return _model([helper.make_node("Relu", ["x"], ["y"])], {"x": shape}, ["y"], {}), {"x": shape}
    raise ValueError(op)
