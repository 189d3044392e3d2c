"""The graph ``onnxruntime.quantization.quantize_dynamic`` writes, built from the float graph.

The plan prices int8 dynamic quantization before anyone runs the quantizer: its weights are
re-typed in the profile (:func:`advisor.plan.quantize.onnx_int8`), but what runs changes too, and
so do the activations. onnxruntime 1.32's quantizer (onnxruntime/quantization/operators/matmul.py
``MatMulInteger.quantize``, conv.py ``ConvInteger.quantize``, onnx_quantizer.py
``_get_dynamic_input_quantization_params``) replaces

* ``MatMul(A, W) -> Y`` by ``DynamicQuantizeLinear(A) -> A_quantized, A_scale, A_zero_point``;
  ``MatMulInteger(A_quantized, W_quantized, A_zero_point, W_zero_point) -> int32``;
  ``Cast(to=float)``; ``Mul(A_scale, W_scale)``; ``Mul(cast, scales) -> Y``. A Gemm is first
  rewritten as MatMul (+ Add of its bias) (onnx_quantizer.py ``replace_gemm_with_matmul``);
* ``Conv(X, W, B) -> Y`` by the same chain around ``ConvInteger`` (no bias input), then
  ``Reshape(B, [1, C, 1, …])`` and ``Add``.

One ``DynamicQuantizeLinear`` serves every node that reads the same activation (the quantizer's
``quantized_value_map``). The rewritten graph goes through the same walk as a quantized file:
onnxruntime then fuses ``DynamicQuantizeLinear -> MatMulInteger -> Cast -> Mul`` into
``DynamicQuantizeMatMul`` (:func:`advisor.estimator.mechanisms.ort_quant.fused_away_tensors`),
while a ConvInteger chain stays unfused: its uint8 input copy, int32 output and float Cast/Mul
outputs are all run-time activations (bench/micro/QUANT.md, finding 7), which is what the
estimate of the float graph with int8 weights left out.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import onnx

QUANTIZED_OPS = ("MatMul", "Gemm", "Conv")


def dynamic_int8_graph(model: onnx.ModelProto, weights: frozenset[str]) -> onnx.ModelProto:
    """A copy of the shape-inferred ``model`` with the nodes reading ``weights`` (their weight
    input) rewritten as ``quantize_dynamic`` writes them; new tensors get their shapes here."""
    from advisor import onnx_lite as helper

    out = helper.copy_model(model)
    g = out.graph
    info = {vi.name: vi for vi in (*g.input, *g.value_info, *g.output)}
    inits = {t.name: t for t in g.initializer}
    readers: dict[str, int] = {}
    for node in g.node:
        for name in node.input:
            readers[name] = readers.get(name, 0) + 1

    def value(name: str, like: str, elem: int) -> None:
        src = info.get(like)
        if src is None or not src.type.HasField("tensor_type"):
            return
        vi = helper.pb().ValueInfoProto()
        vi.CopyFrom(src)
        vi.name = name
        vi.type.tensor_type.elem_type = elem
        g.value_info.append(vi)

    def scalar(name: str, elem: int) -> None:
        g.value_info.append(helper.make_tensor_value_info(name, elem, []))

    def initializer(name: str, elem: int, dims: list[int]) -> None:
        t = helper.pb().TensorProto()  # dims and type only: the data left out, as in a skeleton
        t.name, t.data_type = name, elem
        t.dims.extend(dims)
        g.initializer.append(t)

    quantized_inputs: set[str] = set()
    new_nodes: list[onnx.NodeProto] = []
    done: set[str] = set()
    for node in g.node:
        w = node.input[1] if node.op_type in QUANTIZED_OPS and len(node.input) > 1 else ""
        if w not in weights or w not in inits or _gemm_transposes_a(node):
            new_nodes.append(node)
            continue
        a, y = node.input[0], node.output[0]
        wq, ws, wz = f"{w}_quantized", f"{w}_scale", f"{w}_zero_point"
        if w not in done:
            initializer(wq, helper.INT8, list(inits[w].dims))
            initializer(ws, helper.FLOAT, [])
            initializer(wz, helper.INT8, [])
            done.add(w)
        aq, a_s, az = f"{a}_quantized", f"{a}_scale", f"{a}_zero_point"
        if a not in quantized_inputs:
            new_nodes.append(helper.make_node("DynamicQuantizeLinear", [a], [aq, a_s, az], name=f"{a}_QuantizeLinear"))
            value(aq, a, helper.UINT8)
            scalar(a_s, helper.FLOAT)
            scalar(az, helper.UINT8)
            quantized_inputs.add(a)
        base = f"{node.name}_quant" if node.name else y
        integer = f"{y}_output_quantized"
        op = "ConvInteger" if node.op_type == "Conv" else "MatMulInteger"
        attrs = {at.name: helper.attribute_value(at) for at in node.attribute} if op == "ConvInteger" else {}
        new_nodes.append(helper.make_node(op, [aq, wq, az, wz], [integer], name=base, **attrs))
        value(integer, y, helper.INT32)
        cast = f"{integer}_cast_output"
        new_nodes.append(helper.make_node("Cast", [integer], [cast], to=helper.FLOAT, name=f"{base}_cast"))
        value(cast, y, helper.FLOAT)
        scales = f"{base}_scales_mul:0"
        new_nodes.append(helper.make_node("Mul", [a_s, ws], [scales], name=f"{base}_scales_mul"))
        scalar(scales, helper.FLOAT)
        bias = node.input[2] if len(node.input) > 2 and node.input[2] else ""
        scaled = f"{y}quant_scaled_output" if bias else y
        new_nodes.append(helper.make_node("Mul", [cast, scales], [scaled], name=f"{base}_output_scale_mul"))
        if bias:
            value(scaled, y, helper.FLOAT)
            if node.op_type == "Conv":
                rank = len(inits[w].dims)
                shape = helper.make_tensor(f"{y}_bias_reshape_shape", helper.INT64, [rank],
                                           [1, -1] + [1] * (rank - 2))
                g.initializer.append(shape)
                reshaped = f"{y}_bias_reshape_output"
                new_nodes.append(helper.make_node("Reshape", [bias, shape.name], [reshaped]))
                value(reshaped, bias, helper.FLOAT)
                bias = reshaped
            new_nodes.append(helper.make_node("Add", [scaled, bias], [y], name=f"{base}_bias_add"))
        readers[w] -= 1
    del g.node[:]
    g.node.extend(_topological_sort(new_nodes, [*(t.name for t in g.initializer), *(v.name for v in g.input)]))
    kept = [t for t in g.initializer if t.name not in done or readers.get(t.name, 0) > 0]
    del g.initializer[:]
    g.initializer.extend(kept)
    return out


def _topological_sort(nodes: list[onnx.NodeProto], sources: list[str]) -> list[onnx.NodeProto]:
    """The order ``quantize_dynamic`` saves nodes in (onnxruntime/quantization/onnx_model.py
    ``ONNXModel.topological_sort``, called by ``save_model_to_file``): nodes without inputs, then
    those the sorted initializer and graph-input names complete, then breadth-first over outputs.

    The order matters to the estimate: onnxruntime runs a graph in its stored topological order,
    and the memory-pattern block it plans follows the order tensors are allocated in.
    """
    deps = [sum(1 for n in node.input if n) for node in nodes]
    readers: dict[str, list[int]] = {}
    ordered = [node for node, d in zip(nodes, deps, strict=True) if d == 0]
    for i, node in enumerate(nodes):
        if deps[i]:
            for name in node.input:
                if name:
                    readers.setdefault(name, []).append(i)

    def release(name: str) -> None:
        for i in readers.get(name, ()):
            deps[i] -= 1
            if deps[i] == 0:
                ordered.append(nodes[i])

    for name in sorted(set(sources)):
        release(name)
    start = 0
    while start < len(ordered):
        for name in ordered[start].output:
            release(name)
        start += 1
    return ordered


def _gemm_transposes_a(node: onnx.NodeProto) -> bool:
    """A Gemm with ``transA`` is left float by the quantizer (it rewrites only transA = 0)."""
    return node.op_type == "Gemm" and any(at.name == "transA" and at.i for at in node.attribute)
