"""Workload → concrete input shapes → every tensor's shape, by ONNX shape inference.

Explicit ``input_shapes`` win. Otherwise each symbolic dim of a graph input is filled from the
workload by its name: batch-like names (and an unnamed first dim) take ``batch``; sequence-like
names take ``seq_len`` (or ``context``); height/width-like names take ``image_size``. A dim that
stays unknown is set to 1 and reported, never guessed silently.

The concrete shapes are written into a copy of the model's skeleton (structure without weight
data, :func:`advisor.readers.onnx_skeleton.load_skeleton`) and ``onnx.shape_inference`` with data
propagation resolves output dims that are expressions of input dims (Concat along a symbolic
axis, Reshape to -1). The result is cached per (path, mtime, shapes): the plan re-estimates the
same model many times (a binary search over batch).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING

from advisor import onnx_lite
from advisor.errors import WorkloadError
from advisor.estimator.file_cache import FileCache, file_key
from advisor.estimator.types import Workload

if TYPE_CHECKING:
    import onnx

Shape = tuple[int, ...]

_BATCH_RE = re.compile(r"(^|[^a-z])(batch|bs|n|b|num_seq|sequences)([^a-z]|$)|batch", re.IGNORECASE)
_SEQ_RE = re.compile(r"seq|sequence|token|length|len|past|total|context|ctx|step|time", re.IGNORECASE)
_HW_RE = re.compile(r"height|width|^h$|^w$|img|image|size|resolution", re.IGNORECASE)

_CACHE_SIZE = 32


@dataclass(frozen=True)
class InputShapes:
    """The concrete input shapes and what had to be assumed to get them.

    Attributes:
        shapes: input name → concrete shape.
        unknown_dims: ``"input:dim"`` labels of dims no workload field resolved (set to 1).
        notes: plain-language remarks, one per assumption.
    """

    shapes: dict[str, Shape]
    unknown_dims: tuple[str, ...]
    notes: tuple[str, ...]


def graph_inputs(model: onnx.ModelProto) -> list[onnx.ValueInfoProto]:
    """The real inputs of the main graph (old exporters also list initializers as inputs)."""
    inits = {t.name for t in model.graph.initializer}
    return [v for v in model.graph.input if v.name not in inits]


def _dims(value: onnx.ValueInfoProto) -> list[int | str | None] | None:
    t = value.type.tensor_type
    if not t.HasField("shape"):
        return None
    out: list[int | str | None] = []
    for d in t.shape.dim:
        if d.HasField("dim_value") and d.dim_value > 0:
            out.append(int(d.dim_value))
        elif d.HasField("dim_param") and d.dim_param.strip() not in _ANONYMOUS_DIMS:
            out.append(d.dim_param)
        else:
            # NOTE: exporters write a dynamic dim as dim_value -1 (paddle2onnx, older tf2onnx),
            # dim_value 0, dim_param "?" / "-1" (Paddle, some converters) or an empty dim; ONNX
            # itself says an unset dim is unknown (onnx/IR.md "Tensor shapes"). All are symbolic.
            out.append(None)
    return out


# dim_param spellings that name no dimension: they are positional unknowns, not names.
_ANONYMOUS_DIMS = frozenset({"", "?", "-1", "0", "None", "none", "unk", "unknown"})


# NOTE: defaults for symbolic dims the workload leaves open, so a first look at an image or text
# model is realistic instead of a 1×1 image: 224×224 is the ImageNet input size most vision
# exporters declare (torchvision, timm defaults); 128 tokens is a common text-encoder sequence
# (sentence-transformers' max_seq_length for MiniLM-class models). Each use is noted and listed
# in ``unknown_dims``, so a person sees it was assumed and can set --image-size / --seq.
DEFAULT_IMAGE_SIZE = 224
DEFAULT_SEQ_LEN = 128


def _fill(name: str | None, axis: int, rank: int, workload: Workload) -> tuple[int | None, int | None]:
    """The workload's value for a symbolic dim, by its name (or position when unnamed).

    Returns ``(value, None)`` when the workload gives it, ``(None, default)`` when only a default applies,
    and ``(None, None)`` when nothing is known.
    """
    label = name or ""
    seq = workload.seq_len or workload.context
    if label and _BATCH_RE.search(label) and not _SEQ_RE.search(label):
        return workload.batch, None
    if label and _SEQ_RE.search(label):
        return (seq, None) if seq else (None, DEFAULT_SEQ_LEN)
    if label and _HW_RE.search(label):
        return (workload.image_size, None) if workload.image_size else (None, DEFAULT_IMAGE_SIZE)
    if axis == 0:
        return workload.batch, None  # NOTE: exporters put the batch first (torch.onnx dynamic_axes, tf2onnx)
    if axis >= rank - 2 and rank == 4:
        # an unnamed spatial dim of an NCHW image input
        return (workload.image_size, None) if workload.image_size else (None, DEFAULT_IMAGE_SIZE)
    if axis == 1 and rank in (2, 3):
        return (seq, None) if seq else (None, DEFAULT_SEQ_LEN)
    return None, None


def resolve_inputs(model: onnx.ModelProto, workload: Workload, path: str = "") -> InputShapes:
    """Concrete shapes for every graph input of ``model`` under ``workload``.

    Raises:
        WorkloadError: an explicit shape names an input that does not exist, or has the wrong rank.
    """
    inputs = graph_inputs(model)
    by_name = {v.name: v for v in inputs}
    for name, shape in workload.input_shapes.items():
        if name not in by_name:
            known = ", ".join(sorted(by_name)) or "none"
            raise WorkloadError(f"the model has no input named {name!r} (inputs: {known})", path or None)
        dims = _dims(by_name[name])
        if dims is not None and len(dims) != len(shape):
            raise WorkloadError(
                f"input {name!r} has rank {len(dims)} ({_show(dims)}) but the given shape "
                f"{list(shape)} has rank {len(shape)}", path or None)
        if dims is not None:
            for d, given in zip(dims, shape, strict=True):
                if isinstance(d, int) and d != given:
                    raise WorkloadError(
                        f"input {name!r} has fixed shape {_show(dims)}; the given shape "
                        f"{list(shape)} does not match it", path or None)
    shapes: dict[str, Shape] = {}
    unknown: list[str] = []
    notes: list[str] = []
    for value in inputs:
        if value.name in workload.input_shapes:
            shapes[value.name] = tuple(int(d) for d in workload.input_shapes[value.name])
            continue
        dims = _dims(value)
        if dims is None:
            unknown.append(f"{value.name}:*")
            notes.append(f"input {value.name!r} has no declared shape; assumed a scalar — "
                         "give it with --input NAME=D0,D1,...")
            shapes[value.name] = ()
            continue
        concrete: list[int] = []
        for axis, d in enumerate(dims):
            if isinstance(d, int) and d > 0:
                concrete.append(d)
                continue
            filled, default = _fill(d if isinstance(d, str) else None, axis, len(dims), workload)
            if filled is None:
                label = d if isinstance(d, str) else f"#{axis}"
                unknown.append(f"{value.name}:{label}")
                if default is not None:
                    flag = "--image-size" if default == DEFAULT_IMAGE_SIZE else "--seq"
                    notes.append(f"dim {label!r} of input {value.name!r} not given; assumed {default} "
                                 f"(set it with {flag} or --input)")
                else:
                    notes.append(f"dim {label!r} of input {value.name!r} unknown; assumed 1")
                filled = default or 1
            concrete.append(filled)
        shapes[value.name] = tuple(concrete)
    return InputShapes(shapes, tuple(unknown), tuple(notes))


def _show(dims: list[int | str | None]) -> str:
    return "[" + ", ".join("?" if d is None else str(d) for d in dims) + "]"


# NOTE: an inferred 30k-node graph holds ~60 MiB of protobuf: the cache is bounded by the models'
# encoded size too (the memory of the objects is a small multiple of it).
_CACHE_BYTES = 256 << 20
_inferred: FileCache[tuple[onnx.ModelProto, str | None]] = FileCache(
    _CACHE_SIZE, weigh=lambda result: result[0].ByteSize(), max_weight=_CACHE_BYTES)


def infer_shapes(skeleton: onnx.ModelProto, shapes: dict[str, Shape],
                 path: str = "") -> tuple[onnx.ModelProto, str | None]:
    """Shape-infer ``skeleton`` with its inputs fixed to ``shapes``; cached per (path, mtime, shapes).

    Returns:
        (inferred model, problem): ``problem`` is None on success, else one line saying why
        inference failed (the un-inferred copy is returned then, so callers degrade, not crash).
    """
    try:
        key = (*file_key(path), tuple(sorted(shapes.items()))) if path else None
    except OSError:
        key = None
    if key is None:
        return _infer(skeleton, shapes)
    return _inferred.get_or_make(key, lambda: _infer(skeleton, shapes))


def _infer(skeleton: onnx.ModelProto, shapes: dict[str, Shape]) -> tuple[onnx.ModelProto, str | None]:
    model = onnx_lite.copy_model(skeleton)
    for value in model.graph.input:
        if value.name not in shapes:
            continue
        tt = value.type.tensor_type
        tt.shape.Clear()
        for d in shapes[value.name]:
            tt.shape.dim.add().dim_value = d
    # Declared symbolic shapes of outputs/value_info may contradict the concrete inputs (and make
    # inference fail): drop them and let inference recompute; fully static ones stay (they help
    # past ops inference does not know, such as custom-domain ops).
    keep = [v for v in model.graph.value_info if _static(v)]
    del model.graph.value_info[:]
    model.graph.value_info.extend(keep)
    for value in model.graph.output:
        if not _static(value):
            value.type.tensor_type.ClearField("shape")
    try:
        inferred = onnx_lite.infer_shapes(model)
        # Exporters compute reshape targets, ranges and slice ends from ``Shape`` at run time
        # (torch.onnx: ``x.view(b, t, h, d // h)``, ``arange(t)``, ``mask[:t, :t]``). onnx's data
        # propagation stops at Div, Where, Range, Sqrt...: evaluate those small integer
        # computations under the concrete input shapes, turn them into constants and infer again
        # (what onnxruntime's constant folding does once the shapes are known).
        for _ in range(_FOLD_ROUNDS):
            folded = fold_shape_values(inferred)
            if folded is None:
                break
            inferred = onnx_lite.infer_shapes(folded)
        inferred = settle_loop_states(inferred)
        # ai.onnx.ml ops onnx has no shape function for (Scaler, tree ensembles...)
        from advisor.estimator.mechanisms.ort_ml import complete_shapes

        inferred = complete_shapes(inferred)
    except Exception as exc:  # onnx raises InferenceError/ValidationError/RuntimeError variants
        return model, " ".join(f"{type(exc).__name__}: {exc}".split())[:300]
    return inferred, None


# NOTE: each round resolves one more level of shapes that depend on folded shapes: torch exports
# resolve in 1-2 rounds (bench/torch_models.py), but tf2onnx writes every Dense layer as a
# Tensordot whose Reshape target is computed from the previous layer's shape, so a chain of N
# Dense layers needs N rounds. Rounds stop as soon as nothing new folds.
_FOLD_ROUNDS = 16


def fold_shape_values(model: onnx.ModelProto) -> onnx.ModelProto | None:
    """A copy of ``model`` whose small shape computations are replaced by ``Constant`` nodes, or
    None when nothing new could be evaluated (see :mod:`advisor.estimator.mechanisms.shape_values`)."""
    from advisor.estimator.mechanisms.shape_values import constant_values

    values = constant_values(model.graph)
    if not values:
        return None
    out = onnx_lite.copy_model(model)
    nodes: list[onnx.NodeProto] = []
    replaced = 0
    for node in out.graph.node:
        if node.op_type != "Constant" and node.output and all(o in values for o in node.output if o):
            replaced += 1
            nodes.extend(onnx_lite.make_node("Constant", [], [o], value=onnx_lite.from_array(values[o], o))
                         for o in node.output if o)
        else:
            nodes.append(node)
    if not replaced:
        return None
    del out.graph.node[:]
    out.graph.node.extend(nodes)
    return out


# NOTE: each round drops the seeds whose body output came out with another shape; a Loop has
# few loop-carried values whose shape changes, and each round removes at least one.
_LOOP_ROUNDS = 4
# Trip counts exporters write for an unbounded ``while`` (torch: INT64_MAX, tf2onnx: INT32_MAX):
# no bound on the scan outputs' length.
_UNBOUNDED_TRIPS = 2**31 - 1


def _concrete(value: onnx.ValueInfoProto) -> list[int] | None:
    t = value.type.tensor_type
    if not value.type.HasField("tensor_type") or not t.HasField("shape"):
        return None
    dims = [int(d.dim_value) if d.HasField("dim_value") else -1 for d in t.shape.dim]
    return None if any(d < 0 for d in dims) else dims


def _set_dims(value: onnx.ValueInfoProto, dims: list[int]) -> None:
    shape = value.type.tensor_type.shape
    shape.Clear()
    for d in dims:
        shape.dim.add().dim_value = d


def _loops(graph: onnx.GraphProto) -> list[tuple[onnx.GraphProto, onnx.NodeProto]]:
    """(enclosing graph, Loop node) for every Loop, nested ones included."""
    out: list[tuple[onnx.GraphProto, onnx.NodeProto]] = []
    for node in graph.node:
        if node.op_type == "Loop" and node.domain in ("", "ai.onnx"):
            out.append((graph, node))
        for attr in node.attribute:
            for sub in (*([attr.g] if attr.HasField("g") else []), *attr.graphs):
                out.extend(_loops(sub))
    return out


def _body(node: onnx.NodeProto) -> onnx.GraphProto | None:
    return next((a.g for a in node.attribute if a.name == "body" and a.HasField("g")), None)


def _outer_dims(graph: onnx.GraphProto) -> dict[str, list[int]]:
    dims = {t.name: [int(d) for d in t.dims] for t in graph.initializer}
    for vi in (*graph.input, *graph.value_info, *graph.output):
        if (d := _concrete(vi)) is not None:
            dims[vi.name] = d
    for node in graph.node:
        if node.op_type == "Constant" and node.output:
            value = next((a.t for a in node.attribute if a.name == "value" and a.HasField("t")), None)
            if value is not None:
                dims[node.output[0]] = [int(d) for d in value.dims]
    return dims


def _trip_count(graph: onnx.GraphProto, name: str) -> int | None:
    """The constant max trip count ``M`` of a Loop (an initializer or ``Constant`` with data), else None."""
    if not name:
        return None
    tensors = [t for t in graph.initializer if t.name == name]
    tensors += [a.t for n in graph.node if n.op_type == "Constant" and list(n.output) == [name]
                for a in n.attribute if a.name == "value" and a.HasField("t")]
    for t in tensors:
        if t.data_location == 1 or not (t.raw_data or t.int64_data or t.int32_data):
            continue
        try:
            values = onnx_lite.to_array(t).reshape(-1)
        except ValueError:
            continue
        if values.size == 1:
            return int(values[0])
    return None


def _seed(model: onnx.ModelProto, rejected: set[tuple[int, int]]) -> tuple[onnx.ModelProto, set[tuple[int, int]]]:
    """A copy whose Loop bodies' loop-carried inputs take their initial values' concrete shapes
    (except the ``(loop index, state index)`` pairs in ``rejected``), and the pairs seeded."""
    out = onnx_lite.copy_model(model)
    seeded: set[tuple[int, int]] = set()
    for k, (graph, node) in enumerate(_loops(out.graph)):
        body = _body(node)
        if body is None:
            continue
        dims = _outer_dims(graph)
        for j, outer in enumerate(node.input[2:]):
            if (k, j) in rejected or 2 + j >= len(body.input) or outer not in dims:
                continue
            value = body.input[2 + j]
            if _concrete(value) is None and value.type.HasField("tensor_type"):
                old = value.type.tensor_type.shape
                if len(old.dim) and len(old.dim) != len(dims[outer]):
                    continue
                _set_dims(value, dims[outer])
                seeded.add((k, j))
    return out, seeded


def settle_loop_states(model: onnx.ModelProto) -> onnx.ModelProto:
    """Shapes of Loop outputs whose loop-carried state keeps its shape from iteration to iteration.

    onnx's Loop inference clears the loop-carried inputs' shapes before inferring the body ("shape
    may change across iterations", onnx/defs/controlflow/utils.cc ``LoopInferenceFunction``) and
    gives the Loop's outputs no shape, so a decoder loop (a recurrent cell and output buffers
    updated by ScatterElements step by step, as paddle2onnx writes them) leaves every tensor in
    the body and every Loop output unknown. Seed each loop-carried body input with its initial
    value's concrete shape and infer again: where the body then returns that same shape, the shape
    is a fixed point (by induction it holds in every iteration), so the body's tensors are sized
    and the Loop output has it too. A seed whose body output comes out different (a growing
    state, a Concat per step) is dropped. Scan outputs (body outputs after the states, stacked
    per iteration by ORT's ``LoopImpl::ConcatenateLoopOutput``, onnxruntime/core/providers/cpu/
    controlflow/loop.cc) get ``[M, *per-iteration shape]`` when the trip count ``M`` is a constant:
    the most iterations the loop can run.
    """
    rejected: set[tuple[int, int]] = set()
    for _ in range(_LOOP_ROUNDS):
        seeded_model, seeded = _seed(model, rejected)
        if not seeded:
            return _loop_outputs(model)
        inferred = onnx_lite.infer_shapes(seeded_model)
        unstable: set[tuple[int, int]] = set()
        for k, (_, node) in enumerate(_loops(inferred.graph)):
            body = _body(node)
            for j in range(len(node.input) - 2):
                if (k, j) in seeded and body is not None and \
                        _concrete(body.output[1 + j]) != _concrete(body.input[2 + j]):
                    unstable.add((k, j))
        if unstable:
            rejected |= unstable
            continue
        return _loop_outputs(inferred)
    return _loop_outputs(model)


def _loop_outputs(model: onnx.ModelProto) -> onnx.ModelProto:
    """Write the shapes of Loop outputs that follow from a settled body, and infer once more."""
    added = 0
    for graph, node in _loops(model.graph):
        body = _body(node)
        if body is None:
            continue
        have = {vi.name for vi in (*graph.value_info, *graph.output) if _concrete(vi) is not None}
        n_states = len(node.input) - 2
        trips = _trip_count(graph, node.input[0]) if node.input else None
        for i, name in enumerate(node.output):
            if not name or name in have or 1 + i >= len(body.output):
                continue
            per = _concrete(body.output[1 + i])
            if i < n_states:
                dims = per if per is not None and per == _concrete(body.input[2 + i]) else None
            else:
                dims = [trips, *per] if per is not None and trips is not None and \
                    0 <= trips < _UNBOUNDED_TRIPS else None
            if dims is None:
                continue
            value = next((vi for vi in (*graph.value_info, *graph.output) if vi.name == name), None)
            if value is None:
                value = graph.value_info.add()
                value.name = name
                value.type.tensor_type.elem_type = body.output[1 + i].type.tensor_type.elem_type
            _set_dims(value, dims)
            added += 1
    if not added:
        return model
    return onnx_lite.infer_shapes(model)


def _static(value: onnx.ValueInfoProto) -> bool:
    dims = _dims(value)
    return dims is not None and all(isinstance(d, int) for d in dims)

