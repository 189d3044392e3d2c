"""onnxruntime's ai.onnx.ml operators (scikit-learn models via skl2onnx): parameters held in node
attributes, the tree-ensemble kernels' own structures, and the shapes onnx cannot infer.

The reader (:meth:`advisor.readers.onnx_reader._Walk.ml_fields`) lists every ``floats``/``ints``
attribute of an ai.onnx.ml node as a 1-D float32/int64 weight named ``<node>.<attribute>``, read by
that op. Those are not initializers: onnxruntime never turns them into OrtValues, never frees
them after load, and a tree-ensemble kernel builds its own node array from them. So they are
taken out of :func:`advisor.estimator.runtimes.onnxruntime_weights.weight_terms` and priced here (CPU; "bench"
means ``bench/micro/ml_ops.py``, onnxruntime 1.32.0, this project's machine, VmHWM above the
bare-runtime baseline, as ``bench/ort_measure.py``):

* **Attribute copies**: onnxruntime holds each attribute array about three times after load: the
  ``ModelProto`` the ``InferenceSession`` parsed and keeps (``model_proto_``,
  onnxruntime/core/session/inference_session.h: "used to hold the ModelProto parsed in an
  applicable ctor"), the ``Model``'s graph proto, and each ``Node``'s ``NodeAttributes`` copy
  (onnxruntime/core/graph/graph.cc ``AddNode``). Most ML kernels then copy their arrays once more
  into ``std::vector`` members (``GetAttrsOrDefault``; Scaler's ``scale_``/``offset_``).
  NOTE: bench, a Scaler with 2·2M and 2·4M float attributes: 3.87× the attribute bytes resident
  after load (60.4 / 118.2 MiB for 15.3 / 30.5 MiB of floats), nothing returned.
* **Tree ensembles** (TreeEnsembleClassifier/Regressor, TreeEnsemble;
  onnxruntime/core/providers/cpu/ml/tree_ensemble_common.h ``Init``): the kernel builds
  ``nodes_`` (``TreeNodeElement<float>``: int feature_id, float value, an 8-byte pointer-or-weight
  union, uint8 flags → 24 bytes, tree_ensemble_aggregator.h) and ``weights_``
  (``SparseValue<float>``: int64 index + float → 16 bytes), through transient copies of every
  attribute (``GetAttrsOrDefault`` vectors, ``nodes_modes`` as ``std::vector<std::string>``), an
  ``unordered_map`` from (tree, node) ids to positions, index vectors and a sorted copy of the
  leaf targets. NOTE: bench, synthetic forests (50-600 trees, depth 8-9, 1-20 weights per
  leaf, 25k-307k nodes, batch 1): the load peak is 3× the attribute bytes + 240 B per node + 48 B
  per leaf weight, within 3 % on each of the 10 (per node 408 B and per leaf weight 131 B in all
  for skl2onnx's layout: six int64 and two float arrays per node, three int64 and one float per
  weight). The load peak is the session's peak; the run adds little for regressors (65536 rows
  through 300 trees: +0.2 MiB) but ~100-300 B per row for classifiers, not modelled (200 trees,
  10 classes, 16384 rows: +4.3 MiB).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import replace
from typing import TYPE_CHECKING

from advisor.estimator.runtimes.onnxruntime_weights import WeightTerms
from advisor.readers.profile import TensorInfo

if TYPE_CHECKING:
    import onnx

ML_DOMAIN = "ai.onnx.ml"
TREE_OPS = frozenset({"TreeEnsembleClassifier", "TreeEnsembleRegressor", "TreeEnsemble"})
# ai.onnx.ml ops whose attributes hold arrays (onnx/defs/traditionalml/defs.cc).
ML_OPS = TREE_OPS | frozenset({
    "ArrayFeatureExtractor", "Binarizer", "CastMap", "CategoryMapper", "DictVectorizer", "FeatureVectorizer",
    "Imputer", "LabelEncoder", "LinearClassifier", "LinearRegressor", "Normalizer", "OneHotEncoder",
    "SVMClassifier", "SVMRegressor", "Scaler", "ZipMap",
})

# NOTE: protobuf copies of each attribute array held after load (see the module docstring; the
# Scaler bench holds 3.87× its float attributes, one of them the kernel's vectors).
ATTRIBUTE_COPIES = 3
# NOTE: ML kernels other than tree ensembles keep one std::vector copy of their arrays.
KERNEL_COPIES = 1
# NOTE: bench/micro/ml_ops.py fit, on top of ATTRIBUTE_COPIES × the attribute bytes: per tree node
# (TreeNodeElement 24 B resident; nodes_modes strings, the id map and index vectors transient)
# and per leaf weight (SparseValue 16 B resident; the sorted (tree, node, index) copy and the
# vectors' growth transient).
TREE_NODE_BYTES = 240
TREE_WEIGHT_BYTES = 48
TREE_NODE_RESIDENT_BYTES = 24  # sizeof(TreeNodeElement<float>), tree_ensemble_aggregator.h
TREE_WEIGHT_RESIDENT_BYTES = 16  # sizeof(SparseValue<float>)

# Attribute arrays, one per node, that count a tree ensemble's nodes and leaf weights (ai.onnx.ml
# opset 1-3 names; opset 5's TreeEnsemble lists interior nodes and leaves apart).
_NODE_ATTRS = ("nodes_treeids", "nodes_nodeids")
_WEIGHT_ATTRS = ("class_ids", "target_ids", "class_treeids", "target_treeids")
_V5_INTERIOR, _V5_LEAVES = "nodes_featureids", "leaf_targetids"


def is_attribute_weight(t: TensorInfo) -> bool:
    """Whether the reader made ``t`` from an ai.onnx.ml node's attribute (``<node>.<attribute>``)."""
    return len(t.consumers) == 1 and t.consumers[0] in ML_OPS and "." in t.name


def split_attribute_weights(tensors: Iterable[TensorInfo]) -> tuple[list[TensorInfo], list[TensorInfo]]:
    """``(attribute-held weights, the rest)``: the first are priced by :func:`with_attribute_terms`."""
    held: list[TensorInfo] = []
    rest: list[TensorInfo] = []
    for t in tensors:
        (held if is_attribute_weight(t) else rest).append(t)
    return held, rest


def tree_counts(held: Iterable[TensorInfo]) -> dict[str, tuple[int, int]]:
    """Tree-ensemble node → (tree nodes, leaf weights), from the lengths of its attribute arrays."""
    by_node: dict[str, dict[str, int]] = {}
    for t in held:
        if t.consumers[0] in TREE_OPS:
            node, _, attr = t.name.rpartition(".")
            by_node.setdefault(node, {})[attr] = t.n_elements
    out: dict[str, tuple[int, int]] = {}
    for node, attrs in by_node.items():
        if _V5_LEAVES in attrs:
            leaves = attrs[_V5_LEAVES]
            out[node] = (attrs.get(_V5_INTERIOR, 0) + leaves, leaves)
            continue
        nodes = next((attrs[a] for a in _NODE_ATTRS if a in attrs), 0)
        weights = next((attrs[a] for a in _WEIGHT_ATTRS if a in attrs), 0)
        out[node] = (nodes, weights)
    return out


def attribute_bytes(held: Iterable[TensorInfo]) -> tuple[int, int, int, int]:
    """``(resident, transient, stored, in tree ensembles)`` bytes of attribute-held weights on CPU."""
    held = list(held)
    stored = sum(t.nbytes for t in held)
    tree_attr = sum(t.nbytes for t in held if t.consumers[0] in TREE_OPS)
    other_attr = stored - tree_attr
    resident = ATTRIBUTE_COPIES * tree_attr + (ATTRIBUTE_COPIES + KERNEL_COPIES) * other_attr
    transient = 0
    for nodes, weights in tree_counts(held).values():
        resident += TREE_NODE_RESIDENT_BYTES * nodes + TREE_WEIGHT_RESIDENT_BYTES * weights
        transient += ((TREE_NODE_BYTES - TREE_NODE_RESIDENT_BYTES) * nodes
                      + (TREE_WEIGHT_BYTES - TREE_WEIGHT_RESIDENT_BYTES) * weights)
    return resident, transient, stored, tree_attr


def with_attribute_terms(wt: WeightTerms, held: Iterable[TensorInfo], runtime: str) -> WeightTerms:
    """``wt`` (from the other weights) with the attribute-held weights' memory added.

    On CPU the resident copies are held for the session's life; the tree kernels' transient
    structures are freed after load into glibc's heap, where the run can reuse them (as
    ``retained_bytes``). On CUDA the ai.onnx.ml ops run on the CPU provider (onnxruntime has no
    CUDA kernels for them), so only the stored bytes count, on the host.
    """
    held = list(held)
    if not held:
        return wt
    resident, transient, stored, _ = attribute_bytes(held)
    if runtime != "onnxruntime-cpu":
        return replace(wt, stored_bytes=wt.stored_bytes + stored)
    return replace(wt, stored_bytes=wt.stored_bytes + stored, resident_bytes=wt.resident_bytes + resident,
                   load_extra_bytes=wt.load_extra_bytes + transient,
                   load_extra_high_bytes=wt.load_extra_high_bytes + int(transient * 1.3),
                   retained_bytes=wt.retained_bytes + transient)


# -- shapes onnx cannot infer ---------------------------------------------------------------

_SAME_SHAPE = frozenset({"Scaler", "Normalizer", "Imputer", "Binarizer"})
_FLOAT = 1
_INT64 = 7
_CLASSIFIERS = frozenset({"TreeEnsembleClassifier", "LinearClassifier", "SVMClassifier"})
_MAX_ROUNDS = 8


def _static_shape(vi: onnx.ValueInfoProto) -> tuple[int, list[int]] | None:
    if not vi.type.HasField("tensor_type") or not vi.type.tensor_type.HasField("shape"):
        return None
    dims = [d.dim_value if d.HasField("dim_value") and d.dim_value > 0 else -1 for d in vi.type.tensor_type.shape.dim]
    return (vi.type.tensor_type.elem_type, dims) if all(d > 0 for d in dims) else None


def _attr_int(node: onnx.NodeProto, name: str, default: int) -> int:
    return next((int(a.i) for a in node.attribute if a.name == name), default)


def _ml_outputs(node: onnx.NodeProto, shape: list[int], elem: int) -> list[tuple[int, list[int]] | None]:
    """Types and shapes of an ai.onnx.ml op's outputs where onnx infers none (None: left alone)."""
    rows = shape[0] if len(shape) == 2 else 1
    op = node.op_type
    if op in _SAME_SHAPE:
        return [((elem if op in ("Imputer", "Binarizer") else _FLOAT), list(shape))]
    if op == "LinearRegressor":
        return [(_FLOAT, [rows, _attr_int(node, "targets", 1)])]
    if op == "SVMRegressor":
        return [(_FLOAT, [rows, 1])]
    if op == "TreeEnsembleRegressor":
        return [(_FLOAT, [rows, _attr_int(node, "n_targets", 1)])]
    if op in _CLASSIFIERS:
        # label [N] (int64 labels only: string labels have no fixed size) and scores [N, classes]
        # (onnxruntime writes two columns for a binary classifier too)
        ints = next((len(a.ints) for a in node.attribute if a.name == "classlabels_int64s"), 0)
        strings = next((len(a.strings) for a in node.attribute if a.name == "classlabels_strings"), 0)
        classes = max(2, ints or strings)
        return [(_INT64, [rows]) if ints else None, (_FLOAT, [rows, classes])]
    return []


def complete_shapes(model: onnx.ModelProto) -> onnx.ModelProto:
    """``model`` with the outputs of ai.onnx.ml ops that onnx cannot shape (Scaler, Normalizer,
    Imputer, LinearRegressor, SVMRegressor, TreeEnsembleRegressor-1; the classifiers' label and
    scores, which onnx types but leaves unsized) given static shapes, and shape inference run again
    from there; ``model`` itself when none needs it (never modified).

    Without it, a scikit-learn pipeline's Scaler (onnx has no shape function for it) leaves every
    tensor after it unknown, each bounded by the largest known one (the input), so the network
    behind it counts as a few input-sized tensors whatever its width.
    """
    if not any(n.domain == ML_DOMAIN for n in model.graph.node):
        return model
    from advisor import onnx_lite

    out = model
    for _ in range(_MAX_ROUNDS):
        g = out.graph
        known = {vi.name: s for vi in (*g.input, *g.value_info, *g.output) if (s := _static_shape(vi))}
        add = []
        for node in g.node:
            src = known.get(node.input[0]) if node.domain == ML_DOMAIN and node.input else None
            if src is None:
                continue
            for name, got in zip(node.output, _ml_outputs(node, src[1], src[0]), strict=False):
                if name and got is not None and name not in known:
                    add.append(onnx_lite.make_tensor_value_info(name, got[0], got[1]))
        if not add:
            return out
        if out is model:
            out = onnx_lite.copy_model(model)
        for vi in out.graph.output:  # recomputed from the new shapes
            if _static_shape(vi) is None:
                vi.type.tensor_type.ClearField("shape")
        keep = [vi for vi in out.graph.value_info if _static_shape(vi) is not None]
        del out.graph.value_info[:]
        out.graph.value_info.extend([*keep, *add])
        try:
            out = onnx_lite.infer_shapes(out)
        except Exception:  # onnx raises several error types; keep what was known
            return out
    return out


__all__ = [
    "ATTRIBUTE_COPIES", "KERNEL_COPIES", "ML_OPS", "TREE_NODE_BYTES", "TREE_OPS", "TREE_WEIGHT_BYTES",
    "attribute_bytes", "complete_shapes", "is_attribute_weight", "split_attribute_weights", "tree_counts",
    "with_attribute_terms",
]
