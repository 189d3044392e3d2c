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


_inferred: FileCache[tuple[onnx.ModelProto, str | None]] = FileCache(_CACHE_SIZE)


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
    import onnx

    model = onnx.ModelProto()
    model.CopyFrom(skeleton)
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
        inferred = onnx.shape_inference.infer_shapes(model, check_type=False, strict_mode=False,
                                                     data_prop=True)
        # Exporters compute reshape targets, ranges and slice ends from ``Shape`` at run time
        # (torch.onnx: ``x.view(b, t, h, d // h)``, ``arange(t)``, ``mask[:t, :t]``). onnx's data
        # propagation stops at Div, Where, Range, Sqrt...: evaluate those small integer
        # computations under the concrete input shapes, turn them into constants and infer again
        # (what onnxruntime's constant folding does once the shapes are known).
        for _ in range(_FOLD_ROUNDS):
            folded = fold_shape_values(inferred)
            if folded is None:
                break
            inferred = onnx.shape_inference.infer_shapes(folded, check_type=False, strict_mode=False,
                                                         data_prop=True)
    except Exception as exc:  # onnx raises InferenceError/ValidationError/RuntimeError variants
        return model, " ".join(f"{type(exc).__name__}: {exc}".split())[:300]
    return inferred, None


# NOTE: each round resolves one more level of shapes that depend on folded shapes: torch exports
# resolve in 1-2 rounds (bench/torch_models.py), but tf2onnx writes every Dense layer as a
# Tensordot whose Reshape target is computed from the previous layer's shape, so a chain of N
# Dense layers needs N rounds (magika's model: 4). Rounds stop as soon as nothing new folds.
_FOLD_ROUNDS = 16


def fold_shape_values(model: onnx.ModelProto) -> onnx.ModelProto | None:
    """A copy of ``model`` whose small shape computations are replaced by ``Constant`` nodes, or
    None when nothing new could be evaluated (see :mod:`advisor.estimator.shape_values`)."""
    import onnx
    from onnx import numpy_helper

    from advisor.estimator.shape_values import constant_values

    values = constant_values(model.graph)
    if not values:
        return None
    out = onnx.ModelProto()
    out.CopyFrom(model)
    nodes: list[onnx.NodeProto] = []
    replaced = 0
    for node in out.graph.node:
        if node.op_type != "Constant" and node.output and all(o in values for o in node.output if o):
            replaced += 1
            nodes.extend(onnx.helper.make_node("Constant", [], [o], value=numpy_helper.from_array(values[o], o))
                         for o in node.output if o)
        else:
            nodes.append(node)
    if not replaced:
        return None
    del out.graph.node[:]
    out.graph.node.extend(nodes)
    return out


def _static(value: onnx.ValueInfoProto) -> bool:
    dims = _dims(value)
    return dims is not None and all(isinstance(d, int) for d in dims)

