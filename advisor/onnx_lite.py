"""The two parts of the onnx package the estimator uses — its protobuf classes and its C++ shape
inference — loaded without running ``onnx/__init__.py``.

``import onnx`` costs about a second on a small machine, nearly all of it ``import ml_dtypes``
(``onnx/__init__`` → ``onnx.helper`` → ``onnx._mapping``), whose extension init holds the GIL: on a
worker thread it still freezes the window (issue 15, measured by ``bench/speed.py``). Estimating a
model needs none of that. This module loads ``onnx.onnx_cpp2py_export`` (the compiled extension:
shape inference) and ``onnx.onnx_ml_pb2`` (the generated message classes) alone, in ~35 ms
(:mod:`advisor.submodules`: a later ``import onnx`` gets the very same modules and classes).
Where that fails (another layout of the package), it falls back to ``import onnx``.

The helpers below do what the estimator used ``onnx.helper`` and ``onnx.numpy_helper`` for, on
the numeric types shape computations use; other element types raise ``ValueError``.
"""

from __future__ import annotations

import importlib
import sys
import threading
from collections.abc import Iterable, Sequence
from types import ModuleType
from typing import TYPE_CHECKING, Any

from advisor.submodules import load_submodules, package_folder

if TYPE_CHECKING:
    import numpy as np
    import onnx

_CPP = "onnx.onnx_cpp2py_export"
_PB = "onnx.onnx_ml_pb2"
_lock = threading.Lock()
_loaded: tuple[ModuleType, ModuleType] | None = None

# TensorProto.DataType and AttributeProto.AttributeType codes (onnx/onnx.proto).
FLOAT, UINT8, INT8, UINT16, INT16, INT32, INT64, STRING, BOOL, FLOAT16, DOUBLE, UINT32, UINT64 = (
    1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13)
ATTR_FLOAT, ATTR_INT, ATTR_STRING, ATTR_TENSOR, ATTR_GRAPH = 1, 2, 3, 4, 5
ATTR_FLOATS, ATTR_INTS, ATTR_STRINGS, ATTR_TENSORS, ATTR_GRAPHS = 6, 7, 8, 9, 10
_NP = {FLOAT: "float32", UINT8: "uint8", INT8: "int8", UINT16: "uint16", INT16: "int16", INT32: "int32",
       INT64: "int64", BOOL: "bool", FLOAT16: "float16", DOUBLE: "float64", UINT32: "uint32", UINT64: "uint64"}
_CODE = {v: k for k, v in _NP.items()}  # numpy dtype name → element type
# Which typed field holds each type's values when raw_data is not used (onnx.proto TensorProto).
_FIELD = {FLOAT: "float_data", DOUBLE: "double_data", INT64: "int64_data", UINT32: "uint64_data",
          UINT64: "uint64_data"}


def _load_lite() -> tuple[ModuleType, ModuleType]:
    folder = package_folder("onnx")
    ext = sorted(p for p in folder.glob("onnx_cpp2py_export*") if p.suffix in (".so", ".pyd"))
    if not ext:
        raise ImportError(f"unexpected onnx layout in {folder}")
    loaded = load_submodules("onnx", {"onnx_cpp2py_export": ext[0], "onnx_ml_pb2": folder / "onnx_ml_pb2.py"})
    return loaded["onnx_cpp2py_export"], loaded["onnx_ml_pb2"]


def _modules() -> tuple[ModuleType, ModuleType]:
    global _loaded
    with _lock:
        if _loaded is None:
            full = sys.modules.get("onnx")
            if full is not None and hasattr(full, "ModelProto"):  # onnx itself is already imported
                _loaded = (sys.modules[_CPP], sys.modules[_PB])
            else:
                try:
                    _loaded = _load_lite()
                except (ImportError, OSError, AttributeError):
                    importlib.import_module("onnx")  # another layout: pay for the whole package
                    _loaded = (sys.modules[_CPP], sys.modules[_PB])
        return _loaded


def pb() -> Any:
    """The generated protobuf module (``onnx.onnx_ml_pb2``): ``pb().ModelProto()`` and so on."""
    return _modules()[1]


def parse_model(data: bytes) -> onnx.ModelProto:
    model: onnx.ModelProto = pb().ModelProto()
    model.ParseFromString(data)
    return model


def copy_model(model: onnx.ModelProto) -> onnx.ModelProto:
    out: onnx.ModelProto = pb().ModelProto()
    out.CopyFrom(model)
    return out


# Graphs of at least this many nodes, or skeletons this big, are inferred in a child process once
# isolate_large_inference() was called (the window does). Inference takes ~9 µs a node on chain
# graphs (87 ms at 10k nodes, 290 ms at 30k: measured) and ~13 ms per MB of skeleton on graphs of
# many small ops, so either bound is ~45 ms of GIL held at most in the window's process; the child
# adds ~0.1 s of start-up, spent waiting on a pipe with the GIL free.
ISOLATE_MIN_NODES = 5000
ISOLATE_MIN_BYTES = 4 << 20
_isolate_min: tuple[int, int] | None = None


def isolate_large_inference(min_nodes: int = ISOLATE_MIN_NODES, min_bytes: int = ISOLATE_MIN_BYTES) -> None:
    """Run shape inference of big graphs in a child process from now on.

    onnx's C++ shape inference holds the GIL for its whole run (0.3 s on a 30k-node graph,
    measured with a ticking thread: the tick stops as long), so on the window's worker thread it
    would freeze the event loop. In a child the worker only waits on a pipe, with the GIL free.
    A headless run needs none of that (nothing else runs while it waits) and stays in-process.
    """
    global _isolate_min
    _isolate_min = (min_nodes, min_bytes)


def infer_shapes(model: onnx.ModelProto) -> onnx.ModelProto:
    """``onnx.shape_inference.infer_shapes(model, check_type=False, strict_mode=False,
    data_prop=True)``: the same C++ call, through the bytes interface the Python wrapper uses
    (in a child process for big graphs after :func:`isolate_large_inference`).

    Raises:
        Exception: onnx's InferenceError/ValidationError (from the extension) on a bad graph.
    """
    data = model.SerializeToString()
    if _isolate_min is not None and (len(model.graph.node) >= _isolate_min[0] or len(data) >= _isolate_min[1]):
        out = _infer_in_child(data)
        if out is not None:
            return parse_model(out)
    return parse_model(_modules()[0].shape_inference.infer_shapes(data, False, False, True))


_CHILD_TIMEOUT_S = 600


def _infer_in_child(data: bytes) -> bytes | None:
    """The inferred model from ``python -m advisor.onnx_lite`` (bytes in, bytes out), or None when
    no child could run (a frozen app without a Python to start): then inference runs here."""
    import subprocess

    if getattr(sys, "frozen", False):  # a bundled app: sys.executable is the app, not a Python
        return None
    try:
        proc = subprocess.run([sys.executable, "-m", "advisor.onnx_lite"], input=data, capture_output=True,
                              timeout=_CHILD_TIMEOUT_S, check=False)
    except (OSError, subprocess.SubprocessError):
        return None
    if proc.returncode == 0:
        return proc.stdout
    message = proc.stderr.decode("utf-8", "replace").strip().splitlines()
    if proc.returncode == _INFERENCE_FAILED and message:
        raise RuntimeError(message[-1])  # the graph's problem, as inference in-process would say
    return None


_INFERENCE_FAILED = 3


def _child_main() -> int:
    data = sys.stdin.buffer.read()
    try:
        out = _modules()[0].shape_inference.infer_shapes(data, False, False, True)
    except Exception as exc:  # onnx's InferenceError and kin: the parent re-raises the message
        print(" ".join(f"{type(exc).__name__}: {exc}".split()), file=sys.stderr)
        return _INFERENCE_FAILED
    sys.stdout.buffer.write(out)
    return 0


def np_dtype(code: int) -> np.dtype[Any]:
    """The numpy dtype of an ONNX element type; ``ValueError`` for types numpy lacks (bfloat16...)."""
    import numpy as np  # numpy only where arrays are made: not for shape inference (its child process)

    try:
        return np.dtype(_NP[code])
    except KeyError:
        raise ValueError(f"ONNX element type {code} has no numpy dtype here") from None


def to_array(t: onnx.TensorProto) -> np.ndarray[Any, Any]:
    """A small embedded tensor's values (raw_data or its typed field), as ``numpy_helper.to_array``.

    Raises:
        ValueError: external data, segments, or an element type without a numpy dtype.
    """
    import numpy as np

    if t.data_location == 1 or t.HasField("segment"):
        raise ValueError(f"tensor {t.name!r}: data not embedded")
    dtype = np_dtype(t.data_type)
    dims = tuple(int(d) for d in t.dims)
    if t.HasField("raw_data"):
        return np.frombuffer(t.raw_data, dtype=dtype.newbyteorder("<")).astype(dtype).reshape(dims)
    values: Iterable[Any] = getattr(t, _FIELD.get(t.data_type, "int32_data"))
    if t.data_type == FLOAT16:  # stored as their bit patterns in int32_data
        return np.array(list(values), dtype=np.uint16).view(np.float16).reshape(dims)
    return np.array(list(values), dtype=dtype).reshape(dims)


def from_array(arr: np.ndarray[Any, Any], name: str) -> onnx.TensorProto:
    """A TensorProto holding ``arr`` as raw little-endian data, as ``numpy_helper.from_array``."""
    import numpy as np

    arr = np.asarray(arr)
    try:
        code = _CODE[arr.dtype.name]
    except KeyError:
        raise ValueError(f"numpy dtype {arr.dtype} has no ONNX element type here") from None
    t: onnx.TensorProto = pb().TensorProto()
    t.name = name
    t.data_type = code
    t.dims.extend(int(d) for d in arr.shape)
    t.raw_data = np.ascontiguousarray(arr).astype(arr.dtype.newbyteorder("<")).tobytes()
    return t


def make_tensor(name: str, code: int, dims: Sequence[int], values: Sequence[int]) -> onnx.TensorProto:
    """An int64/int32 tensor with its values in the typed field (``helper.make_tensor``)."""
    import numpy as np

    return from_array(np.asarray(values, dtype=np_dtype(code)).reshape(tuple(dims)), name)


def attribute_value(a: onnx.AttributeProto) -> Any:
    """The value of an attribute, by its declared type (``helper.get_attribute_value``)."""
    kind = a.type
    if kind == ATTR_FLOAT:
        return a.f
    if kind == ATTR_INT:
        return a.i
    if kind == ATTR_STRING:
        return a.s
    if kind == ATTR_TENSOR:
        return a.t
    if kind == ATTR_GRAPH:
        return a.g
    if kind in (ATTR_FLOATS, ATTR_INTS, ATTR_STRINGS, ATTR_TENSORS, ATTR_GRAPHS):
        return list({ATTR_FLOATS: a.floats, ATTR_INTS: a.ints, ATTR_STRINGS: a.strings,
                     ATTR_TENSORS: a.tensors, ATTR_GRAPHS: a.graphs}[kind])
    return None


def _attribute(name: str, value: Any) -> onnx.AttributeProto:
    import numpy as np

    a: Any = pb().AttributeProto()  # its .type is an enum wrapper in the stubs; the codes above are its values
    a.name = name
    msgs = pb()
    if isinstance(value, bool | int | np.integer):
        a.type, a.i = ATTR_INT, int(value)
    elif isinstance(value, float | np.floating):
        a.type, a.f = ATTR_FLOAT, float(value)
    elif isinstance(value, str | bytes):
        a.type, a.s = ATTR_STRING, value.encode() if isinstance(value, str) else value
    elif isinstance(value, msgs.TensorProto):
        a.type = ATTR_TENSOR
        a.t.CopyFrom(value)
    elif isinstance(value, msgs.GraphProto):
        a.type = ATTR_GRAPH
        a.g.CopyFrom(value)
    else:
        items = list(value)
        if all(isinstance(v, int | np.integer) for v in items):
            a.type = ATTR_INTS
            a.ints.extend(int(v) for v in items)
        elif all(isinstance(v, int | float | np.number) for v in items):
            a.type = ATTR_FLOATS
            a.floats.extend(float(v) for v in items)
        elif all(isinstance(v, str | bytes) for v in items):
            a.type = ATTR_STRINGS
            a.strings.extend(v.encode() if isinstance(v, str) else v for v in items)
        else:
            raise ValueError(f"attribute {name!r}: cannot encode {type(value).__name__}")
    out: onnx.AttributeProto = a
    return out


def make_node(op_type: str, inputs: Sequence[str], outputs: Sequence[str], name: str | None = None,
              **attrs: Any) -> onnx.NodeProto:
    """A NodeProto (``helper.make_node``); attributes in sorted order, None values left out."""
    node: onnx.NodeProto = pb().NodeProto()
    node.op_type = op_type
    node.input.extend(inputs)
    node.output.extend(outputs)
    if name:
        node.name = name
    node.attribute.extend(_attribute(k, v) for k, v in sorted(attrs.items()) if v is not None)
    return node


def make_tensor_value_info(name: str, code: int, shape: Sequence[int | str | None] | None) -> onnx.ValueInfoProto:
    """A ValueInfoProto of a tensor (``helper.make_tensor_value_info``): an empty ``shape`` is a
    scalar, None an unknown rank."""
    vi: onnx.ValueInfoProto = pb().ValueInfoProto()
    vi.name = name
    tt = vi.type.tensor_type
    tt.elem_type = code
    if shape is not None:
        tt.shape.SetInParent()
        for d in shape:
            dim = tt.shape.dim.add()
            if isinstance(d, int):
                dim.dim_value = d
            elif isinstance(d, str):
                dim.dim_param = d
    return vi


if __name__ == "__main__":
    raise SystemExit(_child_main())
