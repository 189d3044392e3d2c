"""Read an ONNX model's structure and weight sizes without loading its weights.

:func:`read_onnx` walks the protobuf encoding of an ``mmap`` of the file (see
:mod:`advisor.readers.onnx_wire`): weights are measured (dims × element size, and where their data
sits) but never copied, so a 2 GB model is profiled in a few MB. For shape inference,
:func:`advisor.readers.onnx_skeleton.load_skeleton` gives a real ``onnx.ModelProto`` with the data
of big tensors left out. Field numbers are those of ``onnx/onnx.proto`` (onnx 1.23).
"""

from __future__ import annotations

import math
from collections import Counter
from pathlib import Path, PurePosixPath, PureWindowsPath
from typing import TYPE_CHECKING, Any, NamedTuple

from advisor.dtypes import ONNX_DTYPES, nbytes, onnx_dtype
from advisor.errors import ModelFormatError, UnknownDtypeError
from advisor.readers.limits import inside_store, product_fits_int64
from advisor.readers.onnx_wire import (
    LEN,
    MAX_GRAPH_DEPTH,
    TENSOR_DATA_FIELDS,
    VARINT,
    Buffer,
    Field,
    Pager,
    WireError,
    expect,
    iter_fields,
    mapped_onnx,
    read_ints,
    read_str,
    scalar_run,
    to_signed64,
)
from advisor.readers.profile import ModelProfile, TensorInfo, TensorSpec, layer_index, summarize_tensors

if TYPE_CHECKING:
    pass

# Graph names exporters write when the person gave none; the file stem says more.
_GENERIC_NAMES = frozenset({
    "", "main_graph", "torch_jit", "torch-jit-export", "torch_jit_export", "graph", "model",
    "tf2onnx", "onnx_graph", "default", "main",
})
_SHORT_DOC_CHARS = 300  # model doc_strings up to this long go into metadata
_STRING = 8  # TensorProto.STRING: no fixed element size, not counted as weights
_EXTERNAL = 1  # TensorProto.DataLocation.EXTERNAL
_ML_DOMAIN = "ai.onnx.ml"  # its ops keep their parameters in node attributes (see _Walk.ml_fields)
_VARINT_CONTINUATION = bytes(range(0x80, 0x100))  # bytes that do not end a varint
# Typed fields whose packed bytes are the little-endian values themselves, for these dtypes.
_FIXED_WIDTH = {4: ("float32", "complex64"), 10: ("float64", "complex128")}


class _Tensor(NamedTuple):
    """A TensorProto as found in the file: sizes and spans, never data."""

    name: str
    data_type: int
    dims: tuple[int, ...]
    data: Field | None  # the data field (raw_data or a typed field), if any
    external: dict[str, str]
    data_location: int


class _Walk:
    """One pass over a model's ModelProto, collecting everything :class:`ModelProfile` needs."""

    def __init__(self, path: Path, buf: Buffer, size: int, pager: Pager | None = None) -> None:
        self.path = path
        self.buf = buf
        self.size = size
        self.pager = pager
        # (name, dtype, shape, n_elements, nbytes, file, offset, fixed consumers or None)
        self.pending: list[tuple[str, str, tuple[int, ...], int, int, str, int | None,
                                 tuple[str, ...] | None]] = []
        self.consumers: dict[str, list[str]] = {}
        self.ops: Counter[str] = Counter()
        self.external_files: dict[str, int] = {}  # path → size, in first-use order
        self.n_strings = 0
        self.n_sparse = 0

    def fail(self, problem: str) -> ModelFormatError:
        return ModelFormatError(problem, self.path)

    # -- graphs and nodes -------------------------------------------------------------------
    def graph(self, f: Field, depth: int) -> tuple[str, list[TensorSpec], list[TensorSpec], set[str]]:
        """Walk a GraphProto; return its name, inputs, outputs and initializer names."""
        if depth > MAX_GRAPH_DEPTH:
            raise self.fail(f"subgraphs nested deeper than {MAX_GRAPH_DEPTH} levels")
        expect(f, LEN)
        buf, scope = self.buf, set[str]()
        name, inputs, outputs = "", list[TensorSpec](), list[TensorSpec]()
        pager = self.pager
        for g in iter_fields(buf, f.start, f.end):
            if pager is not None:
                pager.passed(g.tag_start)  # nothing before this field is read again
            if g.number == 1:
                self.node(g, scope, depth)
            elif g.number == 2:
                name = read_str(buf, g)
            elif g.number == 5:
                t = self.tensor(g)
                self.add(t, t.name, scope)
            elif g.number == 15:
                self.sparse(g, scope)
            elif g.number == 11:
                inputs.append(self.value_info(g))
            elif g.number == 12:
                outputs.append(self.value_info(g))
        return name, inputs, outputs, scope

    def node(self, f: Field, scope: set[str], depth: int) -> None:
        """Walk a NodeProto: count its op, note what it reads, collect tensors in its attributes."""
        expect(f, LEN)
        buf = self.buf
        op_type, node_name, domain = "", "", ""
        inputs: list[str] = []
        outputs: list[str] = []
        attrs: list[Field] = []
        for g in iter_fields(buf, f.start, f.end):
            if g.number == 1:
                inputs.append(read_str(buf, g))
            elif g.number == 2:
                outputs.append(read_str(buf, g))
            elif g.number == 3:
                node_name = read_str(buf, g)
            elif g.number == 4:
                op_type = read_str(buf, g)
            elif g.number == 5:
                attrs.append(expect(g, LEN))
            elif g.number == 7:
                domain = read_str(buf, g)
        self.ops[op_type] += 1
        for name in inputs:
            if name:
                self.consumers.setdefault(name, []).append(op_type)
        owner = node_name or (outputs[0] if outputs else op_type)
        ml = domain == _ML_DOMAIN
        for a in attrs:
            self.attribute(a, op_type, owner, outputs, scope, depth, ml=ml)

    def attribute(self, f: Field, op_type: str, owner: str, outputs: list[str], scope: set[str],
                  depth: int, *, ml: bool = False) -> None:
        """Collect the tensors and subgraphs of one AttributeProto (and, for ``ml`` nodes, its
        numeric arrays: see :meth:`ml_fields`)."""
        buf = self.buf
        fields = self.ml_fields(f, owner, op_type, scope) if ml else list(iter_fields(buf, f.start, f.end))
        attr_name = next((read_str(buf, g) for g in fields if g.number == 1), "")
        for g in fields:
            if g.number in (5, 10):  # t, tensors
                t = self.tensor(g)
                if op_type == "Constant" and attr_name == "value" and outputs:
                    self.add(t, outputs[0], scope)  # consumers find it by the node's output name
                else:
                    # ai.onnx.ml tensor attributes (nodes_values_as_tensor...) go by node.attribute,
                    # so the estimator finds them with the node's other arrays (advisor.estimator.mechanisms.ort_ml)
                    name = f"{owner}.{attr_name}" if ml else (t.name or f"{owner}.{attr_name}")
                    self.add(t, name, scope, fixed_consumers=(op_type,))
            elif g.number in (6, 11):  # g, graphs: If branches, Loop/Scan bodies
                self.graph(g, depth + 1)
            elif g.number in (22, 23):  # sparse_tensor, sparse_tensors
                self.sparse(g, scope, default_name=outputs[0] if outputs else owner)

    def ml_fields(self, f: Field, owner: str, op_type: str, scope: set[str]) -> list[Field]:
        """The fields of an ai.onnx.ml node's AttributeProto, its ``floats``/``ints`` counted as a
        1-D float32/int64 weight named ``<node>.<attribute>`` instead of returned.

        Those ops keep their parameters in attributes, not initializers (a TreeEnsemble's
        ``nodes_*``/``class_*`` arrays, a LinearClassifier's ``coefficients``, an SVM's
        ``support_vectors``), so they are the model's weights. Only lengths are read, never values:
        unpacked runs (onnx.proto is proto2: one field per value) by :func:`scalar_run`; a packed
        ``floats`` field holds 4 bytes per value; a packed ``ints`` field one varint per value
        (counted as its bytes below 0x80). Short ``strings`` (``nodes_modes``) are skipped in a tight
        loop. Packed floats are little-endian float32 in the file, so their offset is kept.
        """
        buf, end = self.buf, f.end
        fields: list[Field] = []
        n = {7: 0, 8: 0}
        spans: list[Field] = []
        pos = f.start
        while pos < end:
            tag = buf[pos]
            if tag == 0x4A:  # strings (field 9, LEN): one field per value, each short
                while pos + 1 < end and buf[pos] == 0x4A and buf[pos + 1] < 0x80:
                    pos += 2 + buf[pos + 1]
                if pos > end:
                    raise WireError("string runs past the end of its attribute", pos)
                if pos >= end or buf[pos] != 0x4A:
                    continue
            run = scalar_run(buf, pos, end) if tag in (0x3D, 0x40) else None  # floats (I32), ints (VARINT)
            if run is not None:
                n[run[0]] += run[1]
                pos = run[2]
                continue
            g = next(iter_fields(buf, pos, end))
            pos = g.end
            if g.number == 7 and g.wire_type == LEN:
                n[7] += (g.end - g.start) // 4
                spans.append(g)
            elif g.number == 8 and g.wire_type == LEN:
                n[8] += len(bytes(buf[g.start:g.end]).translate(None, _VARINT_CONTINUATION))
            else:
                fields.append(g)
        attr_name = next((read_str(buf, g) for g in fields if g.number == 1), "")
        name = f"{owner}.{attr_name}"
        for number, dt in ((7, "float32"), (8, "int64")):
            count = n[number]
            if not count or name in scope:
                continue
            scope.add(name)
            whole = number == 7 and len(spans) == 1 and spans[0].end - spans[0].start == 4 * count
            self.pending.append((name, dt, (count,), count, nbytes(dt, count), str(self.path),
                                 spans[0].start if whole else None, (op_type,)))
        return fields

    # -- tensors ---------------------------------------------------------------------------
    def tensor(self, f: Field) -> _Tensor:
        """Parse a TensorProto's header fields; data fields are only located."""
        expect(f, LEN)
        buf = self.buf
        name, data_type, location = "", 0, 0
        dims: list[int] = []
        data: Field | None = None
        external: dict[str, str] = {}
        for g in iter_fields(buf, f.start, f.end):
            if g.number == 1:
                dims.extend(read_ints(buf, g))
            elif g.number == 2:
                data_type = expect(g, VARINT).value
            elif g.number == 8:
                name = read_str(buf, g)
            elif g.number == 14:
                location = expect(g, VARINT).value
            elif g.number == 13:
                key, value = self.string_entry(g)
                external[key] = value
            elif g.number in TENSOR_DATA_FIELDS and (data is None or g.number == 9):
                data = g
        return _Tensor(name, data_type, tuple(dims), data, external, location)

    def sparse(self, f: Field, scope: set[str], default_name: str = "") -> None:
        """A SparseTensorProto: its values and indices are both stored, so both count."""
        expect(f, LEN)
        self.n_sparse += 1
        fields = iter_fields(self.buf, f.start, f.end)
        parts = {g.number: self.tensor(g) for g in fields if g.number in (1, 2)}
        values = parts.get(1)
        name = (values.name if values else "") or default_name
        if values is not None:
            self.add(values, name, scope)
        if 2 in parts:
            self.add(parts[2], f"{name}.indices", scope)

    def add(self, t: _Tensor, name: str, scope: set[str],
            fixed_consumers: tuple[str, ...] | None = None) -> None:
        """Count a stored tensor once per scope: size from dims and dtype, never from the data."""
        if name in scope:
            return
        scope.add(name)
        if t.data_type == _STRING:
            self.n_strings += 1
            return
        try:
            dt = onnx_dtype(t.data_type)
        except UnknownDtypeError as exc:
            raise self.fail(f"tensor {name!r}: {exc.problem}") from None
        if any(d < 0 for d in t.dims):
            raise self.fail(f"tensor {name!r} has a negative dimension {_dims(t.dims)}")
        if not product_fits_int64(t.dims):
            raise self.fail(f"tensor {name!r} dims {_dims(t.dims)} overflow int64: corrupt")
        n = math.prod(t.dims)
        size = nbytes(dt, n)
        offset: int | None
        if t.data_location == _EXTERNAL:
            file, offset = self.external(t, name, size)
        else:
            if n and t.data is None:
                # NOTE: onnx's checker requires exactly one value field (onnx/checker.cc check_tensor).
                raise self.fail(f"tensor {name!r} has dims {_dims(t.dims)} but no data: corrupt")
            if size > self.size:
                raise self.fail(f"tensor {name!r} dims {_dims(t.dims)} need {size} bytes, more than the "
                                f"whole file ({self.size} bytes): corrupt")
            file, offset = str(self.path), self.embedded_offset(t, name, dt, size)
        self.pending.append((name, dt, t.dims, n, size, file, offset, fixed_consumers))

    def embedded_offset(self, t: _Tensor, name: str, dt: str, size: int) -> int | None:
        """Where an embedded tensor's bytes sit in the model file, checking raw_data's length."""
        d = t.data
        if d is None:
            return None
        if d.number == 9:
            if d.end - d.start != size:
                raise self.fail(f"tensor {name!r}: raw_data holds {d.end - d.start} bytes, "
                                f"its dims and type say {size}")
            return d.start
        return d.start if d.wire_type == LEN and dt in _FIXED_WIDTH.get(d.number, ()) else None

    def external(self, t: _Tensor, name: str, size: int) -> tuple[str, int]:
        """Check an external-data reference without reading the data; return (file, offset)."""
        location = t.external.get("location", "")
        if not location:
            raise self.fail(f"tensor {name!r} has external data without a location")
        if (PurePosixPath(location).is_absolute() or PureWindowsPath(location).is_absolute()
                or PureWindowsPath(location).drive or location.startswith(("\\", "/"))):
            raise self.fail(f"tensor {name!r}: refusing absolute external data location {location!r}")
        if "\x00" in location or len(location) > 4096:
            raise self.fail(f"tensor {name!r}: external data location {location[:60]!r} is not a file name")
        folder = self.path.parent
        target = folder / location
        if not inside_store(Path(location), folder):
            raise self.fail(f"tensor {name!r}: refusing external data location {location!r} "
                            "outside the model's folder")
        try:
            offset = int(t.external.get("offset", "0"))
            length = int(t.external.get("length", str(size)))
        except ValueError:
            raise self.fail(f"tensor {name!r}: external data offset/length is not a number") from None
        if offset < 0 or length < size:
            raise self.fail(f"tensor {name!r}: external data length {length} at offset {offset} "
                            f"is shorter than its {size} bytes")
        key = str(target)
        if key not in self.external_files:
            try:
                self.external_files[key] = target.stat().st_size
            except OSError:
                raise self.fail(f"external data file {key} (tensor {name!r}) is missing") from None
            if not target.is_file():
                raise self.fail(f"external data file {key} (tensor {name!r}) is not a file")
        if self.external_files[key] < offset + length:
            raise self.fail(f"external data file {key} holds {self.external_files[key]} bytes, tensor "
                            f"{name!r} needs {offset + length}")
        return key, offset

    # -- small messages --------------------------------------------------------------------
    def string_entry(self, f: Field) -> tuple[str, str]:
        """A StringStringEntryProto as ``(key, value)``."""
        expect(f, LEN)
        key = value = ""
        for g in iter_fields(self.buf, f.start, f.end):
            if g.number == 1:
                key = read_str(self.buf, g)
            elif g.number == 2:
                value = read_str(self.buf, g)
        return key, value

    def value_info(self, f: Field) -> TensorSpec:
        """A graph input/output: symbolic dims by name, unknown dims None, unknown rank None."""
        expect(f, LEN)
        buf = self.buf
        name, dtype = "", "unknown"
        shape: tuple[int | str | None, ...] | None = None
        for g in iter_fields(buf, f.start, f.end):
            if g.number == 1:
                name = read_str(buf, g)
            elif g.number == 2:
                dtype, shape = self.type_proto(expect(g, LEN))
        return TensorSpec(name=name, shape=shape, dtype=dtype)

    def type_proto(self, f: Field) -> tuple[str, tuple[int | str | None, ...] | None]:
        buf = self.buf
        for g in iter_fields(buf, f.start, f.end):
            if g.number in (1, 8):  # tensor_type, sparse_tensor_type
                code, shape = 0, None
                for h in iter_fields(buf, expect(g, LEN).start, g.end):
                    if h.number == 1:
                        code = expect(h, VARINT).value
                    elif h.number == 2:
                        shape = self.shape(expect(h, LEN))
                return ONNX_DTYPES.get(code, "unknown" if code == 0 else f"onnx_type_{code}"), shape
            kind = {4: "sequence", 5: "map", 9: "optional", 7: "opaque"}.get(g.number)
            if kind:
                return kind, None
        return "unknown", None

    def shape(self, f: Field) -> tuple[int | str | None, ...]:
        buf = self.buf
        dims: list[int | str | None] = []
        for g in iter_fields(buf, f.start, f.end):
            if g.number != 1:
                continue
            dim: int | str | None = None
            for h in iter_fields(buf, expect(g, LEN).start, g.end):
                # A dim of -1 or 0, or a dim_param "?" / "-1", is how Paddle and other exporters
                # write a dynamic dim: unknown (None), as in advisor.estimator.mechanisms.shapes.
                if h.number == 1:
                    value = to_signed64(expect(h, VARINT).value)
                    dim = value if value > 0 else None
                elif h.number == 2:
                    text = read_str(buf, h).strip()
                    dim = None if text in ("", "?", "-1", "0") else text
            dims.append(dim)
        return tuple(dims)


def _dims(dims: tuple[int, ...]) -> str:
    text = str(list(dims))
    return text if len(text) <= 60 else text[:57] + "..."


def _model_fields(walk: _Walk) -> dict[str, Any]:
    """The ModelProto's own fields; the graph is walked, the rest is small."""
    buf, out = walk.buf, dict[str, Any](opsets={}, metadata={}, functions=[])
    for f in iter_fields(buf, 0, walk.size):
        n = f.number
        if n == 1:
            out["ir_version"] = to_signed64(expect(f, VARINT).value)
        elif n in (2, 3, 4):
            out[{2: "producer_name", 3: "producer_version", 4: "domain"}[n]] = read_str(buf, f)
        elif n == 5:
            out["model_version"] = to_signed64(expect(f, VARINT).value)
        elif n == 6 and expect(f, LEN).end - f.start <= _SHORT_DOC_CHARS:
            out["doc_string"] = read_str(buf, f)
        elif n == 7:
            out["graph"] = expect(f, LEN)
        elif n == 8:
            domain, version = "", 0
            for g in iter_fields(buf, expect(f, LEN).start, f.end):
                if g.number == 1:
                    domain = read_str(buf, g)
                elif g.number == 2:
                    version = to_signed64(expect(g, VARINT).value)
            out["opsets"][domain or "ai.onnx"] = version
        elif n == 14:
            key, value = walk.string_entry(f)
            out["metadata"][key] = value
        elif n == 25:
            out["functions"].append(expect(f, LEN))
    return out


def read_onnx(path: Path) -> ModelProfile:
    """Profile an ONNX model: weights by dtype, tensors, inputs/outputs, ops; weights never loaded.

    Counts every stored tensor: graph initializers (a duplicated name once per graph), sparse
    initializers, ``Constant`` node values (PaddlePaddle stores all weights that way), tensor
    attributes, and tensors in ``If``/``Loop``/``Scan`` subgraphs and model-local functions.

    Raises:
        ModelFormatError: the file is empty, not ONNX, truncated or corrupt; or its external data
            is missing, too short, or outside the model's folder.
    """
    path = Path(path)
    with mapped_onnx(path) as (mm, size):
        walk = _Walk(path, mm, size, Pager(mm))
        try:
            model = _model_fields(walk)
            if "graph" not in model:
                raise walk.fail("no graph: not an ONNX model (or an empty one)")
            graph_name, inputs, outputs, init_names = walk.graph(model["graph"], 0)
            for fn in model["functions"]:
                scope = set[str]()
                for g in iter_fields(mm, fn.start, fn.end):
                    if g.number == 7:
                        walk.node(g, scope, 1)
        except WireError as exc:
            raise walk.fail(f"not a valid ONNX file (corrupt or truncated protobuf: {exc})") from None
    tensors = tuple(
        TensorInfo(name, dt, shape, n, size, file, offset, layer=layer_index(name),
                   consumers=fixed or tuple(dict.fromkeys(walk.consumers.get(name, ()))))
        for name, dt, shape, n, size, file, offset, fixed in walk.pending
    )
    n_params, weight_bytes, params_by, bytes_by = summarize_tensors(tensors)
    files = (str(path), *walk.external_files)
    metadata: dict[str, Any] = dict(model["metadata"])
    for key in ("doc_string", "domain", "model_version"):
        if model.get(key):
            metadata[key] = model[key]
    others = {d: v for d, v in model["opsets"].items() if d not in ("ai.onnx", "")}
    if others:
        metadata["opsets"] = others
    notes: list[str] = []
    if walk.external_files:
        notes.append(f"weights partly or wholly in {len(walk.external_files)} external data file(s)")
    if walk.n_strings:
        notes.append(f"{walk.n_strings} string tensor(s) not counted as weights")
    if walk.n_sparse:
        notes.append(f"{walk.n_sparse} sparse tensor(s): values and indices counted as stored")
    producer = " ".join(p for p in (model.get("producer_name"), model.get("producer_version")) if p)
    return ModelProfile(
        path=str(path), format="onnx",
        name=path.stem if graph_name.strip().lower() in _GENERIC_NAMES else graph_name,
        n_params=n_params, weight_bytes=weight_bytes,
        params_by_dtype=params_by, weight_bytes_by_dtype=bytes_by,
        files=files, file_bytes=size + sum(walk.external_files.values()),
        tensors=tensors,
        inputs=tuple(s for s in inputs if s.name not in init_names),
        outputs=tuple(outputs),
        op_histogram=dict(walk.ops.most_common()),
        opset=model["opsets"].get("ai.onnx"),
        ir_version=model.get("ir_version"),
        producer=producer or None,
        metadata=metadata,
        notes=tuple(notes),
    )
