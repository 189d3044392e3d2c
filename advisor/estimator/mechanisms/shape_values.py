"""Evaluate a graph's small shape computations (``Shape`` → ``Gather`` → ``Div`` → ``Concat`` ...).

Exporters compute reshape targets, ranges, slice bounds and scales from ``Shape`` at run time.
Once the inputs' shapes are concrete, those integer computations are constants; onnx's own data
propagation evaluates only a few ops (Shape, Gather, Concat, Add, Sub, Mul...), so a model exported
by torch (``x.view(b, t, h, d // h)``: a ``Div``; ``expand(x.shape[0], -1, -1)``: a ``Where``;
``arange(t)``: a ``Range``) keeps unknown dims. This module evaluates every node whose inputs are
all known small tensors with numpy, following the ONNX operator definitions, so those dims resolve.
Only tensors of at most :data:`MAX_ELEMENTS` elements are evaluated: activations never are.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import numpy as np

from advisor import onnx_lite

if TYPE_CHECKING:
    import onnx

MAX_ELEMENTS = 4096
"""Largest tensor evaluated (shape vectors, ranges over a sequence, scalars)."""

Array = np.ndarray[Any, Any]


def _attr(node: onnx.NodeProto, name: str, default: Any = None) -> Any:
    for a in node.attribute:
        if a.name == name:
            return onnx_lite.attribute_value(a)
    return default


def _shape(node: onnx.NodeProto, dims: list[int]) -> Array:
    start, end = _attr(node, "start", 0), _attr(node, "end", None)
    return np.array(dims[start:end] if end is not None else dims[start:], dtype=np.int64)


def _slice(node: onnx.NodeProto, x: Array, *args: Array) -> Array:
    starts, ends = args[0], args[1]
    axes = args[2] if len(args) > 2 and args[2].size else np.arange(len(starts))
    steps = args[3] if len(args) > 3 and args[3].size else np.ones(len(starts), dtype=np.int64)
    index = [slice(None)] * x.ndim
    for s, e, a, st in zip(starts, ends, axes, steps, strict=True):
        index[int(a)] = slice(int(s), int(e), int(st))
    return x[tuple(index)]


def _div(a: Array, b: Array) -> Array:
    if np.issubdtype(a.dtype, np.integer):
        return np.trunc(a / b).astype(a.dtype)  # ONNX integer Div truncates
    return np.asarray(a / b, dtype=a.dtype)


def _cast(node: onnx.NodeProto, x: Array) -> Array:
    return x.astype(onnx_lite.np_dtype(_attr(node, "to")))


def _unsqueeze(x: Array, axes: Array) -> Array:
    out = x
    for a in sorted(int(v) if v >= 0 else int(v) + x.ndim + len(axes) for v in axes):
        out = np.expand_dims(out, a)
    return out


def _squeeze(x: Array, axes: Array | None = None) -> Array:
    return np.squeeze(x, axis=tuple(int(a) for a in axes)) if axes is not None and axes.size else np.squeeze(x)


def _const_of_shape(node: onnx.NodeProto, shape: Array) -> Array:
    value = _attr(node, "value")
    fill = onnx_lite.to_array(value).reshape(-1)[0] if value is not None else np.float32(0)
    return np.full(tuple(int(d) for d in shape), fill, dtype=np.asarray(fill).dtype)


def _reshape(x: Array, shape: Array) -> Array:
    dims = [int(x.shape[i]) if d == 0 else int(d) for i, d in enumerate(shape)]
    return x.reshape(dims)


_OPS: dict[str, Callable[..., Array]] = {
    "Gather": lambda n, x, i: np.take(x, i.astype(np.int64), axis=_attr(n, "axis", 0)),
    "Unsqueeze": lambda n, x, *a: _unsqueeze(x, a[0] if a else np.array(_attr(n, "axes"))),
    "Squeeze": lambda n, x, *a: _squeeze(x, a[0] if a else (np.array(_attr(n, "axes"))
                                                           if _attr(n, "axes") else None)),
    "Concat": lambda n, *xs: np.concatenate([np.atleast_1d(x) for x in xs], axis=_attr(n, "axis", 0)),
    "Slice": _slice,
    "Cast": _cast,
    "Add": lambda n, a, b: np.asarray(a + b, dtype=a.dtype),
    "Sub": lambda n, a, b: np.asarray(a - b, dtype=a.dtype),
    "Mul": lambda n, a, b: np.asarray(a * b, dtype=a.dtype),
    "Div": lambda n, a, b: _div(a, b),
    "Neg": lambda n, a: -a,
    "Abs": lambda n, a: np.abs(a),
    "Sqrt": lambda n, a: np.sqrt(a),
    "Reciprocal": lambda n, a: np.asarray(1 / a, dtype=a.dtype),
    "Floor": lambda n, a: np.floor(a),
    "Ceil": lambda n, a: np.ceil(a),
    "Min": lambda n, *xs: np.minimum.reduce(np.broadcast_arrays(*xs)),
    "Max": lambda n, *xs: np.maximum.reduce(np.broadcast_arrays(*xs)),
    "Equal": lambda n, a, b: np.equal(a, b),
    "Less": lambda n, a, b: np.less(a, b),
    "Greater": lambda n, a, b: np.greater(a, b),
    "Not": lambda n, a: np.logical_not(a),
    "And": lambda n, a, b: np.logical_and(a, b),
    "Or": lambda n, a, b: np.logical_or(a, b),
    "Where": lambda n, c, a, b: np.asarray(np.where(c, a, b)),
    "Identity": lambda n, a: a,
    "Range": lambda n, s, e, d: np.arange(s, e, d, dtype=np.asarray(s).dtype),
    "ConstantOfShape": _const_of_shape,
    "Reshape": lambda n, x, s: _reshape(x, s),
    "Expand": lambda n, x, s: x * np.ones(tuple(int(d) for d in s), dtype=x.dtype),
    "ReduceProd": lambda n, x, *a: np.prod(x, keepdims=bool(_attr(n, "keepdims", 1))),
}


def _dims(vi: onnx.ValueInfoProto) -> list[int] | None:
    t = vi.type.tensor_type
    if not vi.type.HasField("tensor_type") or not t.HasField("shape"):
        return None
    dims = [d.dim_value if d.HasField("dim_value") else -1 for d in t.shape.dim]
    return None if any(d < 0 for d in dims) else dims


def _small(value: Any) -> Array | None:
    arr = np.asarray(value)
    return arr if arr.size <= MAX_ELEMENTS and arr.dtype != object else None


def constant_values(graph: onnx.GraphProto) -> dict[str, Array]:
    """Values of the non-``Constant`` nodes' outputs that are computable now (main graph only).

    Known: small initializers and ``Constant`` nodes (whose data the skeleton kept), and
    ``Shape``/``Size`` of tensors whose shape inference already made concrete. A node is evaluated
    when all its inputs are known and its op is one numpy can follow here; failures are skipped.
    """
    known: dict[str, Array] = {}
    for t in graph.initializer:
        if t.data_location != 1 and (t.raw_data or t.int64_data or t.int32_data or t.float_data):
            try:
                arr = _small(onnx_lite.to_array(t))
            except ValueError:  # bfloat16 and other types numpy lacks: not a shape value
                continue
            if arr is not None:
                known[t.name] = arr
    measured = {n.input[0] for n in graph.node if n.op_type in ("Shape", "Size") and n.input}
    dims = {vi.name: d for vi in (*graph.input, *graph.value_info, *graph.output)
            if vi.name in measured and (d := _dims(vi)) is not None}  # only what Shape/Size read
    out: dict[str, Array] = {}
    for node in graph.node:
        if node.domain not in ("", "ai.onnx") or len(node.output) != 1:
            continue
        name = node.output[0]
        try:
            if node.op_type == "Constant":
                value = _attr(node, "value")
                if value is not None and (value.raw_data or value.int64_data or value.float_data or value.int32_data
                                          or not value.dims):
                    arr = _small(onnx_lite.to_array(value))
                    if arr is not None:
                        known[name] = arr
                continue
            if node.op_type in ("Shape", "Size"):
                d = dims.get(node.input[0])
                if d is None:
                    continue
                result = _shape(node, d) if node.op_type == "Shape" else np.array(int(np.prod(d)), dtype=np.int64)
            else:
                fn = _OPS.get(node.op_type)
                ins = list(node.input)
                if fn is None or not ins or any(n and n not in known for n in ins):
                    continue
                args = [known[n] if n else np.array([], dtype=np.int64) for n in ins]
                result = fn(node, *args)
        except Exception:  # any computation numpy cannot follow leaves the value unknown
            continue
        arr = _small(result)
        if arr is not None:
            known[name] = arr
            out[name] = arr
    return out
