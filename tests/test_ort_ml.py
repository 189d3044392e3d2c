"""ai.onnx.ml models: attribute-held parameters in the reader, their memory on onnxruntime CPU
(advisor.estimator.mechanisms.ort_ml), and shapes onnx cannot infer."""

from __future__ import annotations

from pathlib import Path

import onnx
from onnx import TensorProto, helper

from advisor.estimator import estimate
from advisor.estimator.mechanisms import ort_ml as ml
from advisor.estimator.runtimes.onnxruntime_weights import WeightTerms
from advisor.estimator.types import Workload
from advisor.readers.onnx_reader import read_onnx
from advisor.readers.onnx_wire import encode_varint, scalar_run
from tests.builders.hardware import laptop

# Three trees of depth 1 (a root and two leaves each): 9 nodes, 6 leaves, one weight per leaf.
_TREES, _PER_TREE = 3, 3


def _forest(path: Path) -> Path:
    ids = list(range(_PER_TREE)) * _TREES
    trees = [t for t in range(_TREES) for _ in range(_PER_TREE)]
    node = helper.make_node(
        "TreeEnsembleRegressor", ["X"], ["Y"], domain="ai.onnx.ml", name="forest",
        nodes_treeids=trees, nodes_nodeids=ids, nodes_featureids=[0, 0, 0] * _TREES,
        nodes_truenodeids=[1, 0, 0] * _TREES, nodes_falsenodeids=[2, 0, 0] * _TREES,
        nodes_values=[0.5, 0.0, 0.0] * _TREES, nodes_modes=["BRANCH_LEQ", "LEAF", "LEAF"] * _TREES,
        target_treeids=[t for t in range(_TREES) for _ in range(2)], target_nodeids=[1, 2] * _TREES,
        target_ids=[0] * 6, target_weights=[1.0, -1.0, 2.0, -2.0, 3.0, -3.0], n_targets=1,
        post_transform="NONE")
    graph = helper.make_graph([node], "g", [helper.make_tensor_value_info("X", TensorProto.FLOAT, ["N", 4])],
                              [helper.make_tensor_value_info("Y", TensorProto.FLOAT, ["N", 1])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17), helper.make_opsetid("ai.onnx.ml", 3)])
    model.ir_version = 10
    onnx.save(model, str(path))
    return path


def _scaler_mlp(path: Path) -> Path:
    """Scaler (no onnx shape function) → MatMul [4, 8]: skl2onnx's StandardScaler + MLP."""
    w = helper.make_tensor("w", TensorProto.FLOAT, [4, 8], [0.1] * 32)
    nodes = [helper.make_node("Scaler", ["X"], ["s"], domain="ai.onnx.ml", offset=[0.0] * 4, scale=[1.0] * 4),
             helper.make_node("MatMul", ["s", "w"], ["Y"])]
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("X", TensorProto.FLOAT, ["N", 4])],
                              [helper.make_tensor_value_info("Y", TensorProto.FLOAT, ["N", 8])], [w])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17), helper.make_opsetid("ai.onnx.ml", 1)])
    model.ir_version = 10
    onnx.save(model, str(path))
    return path


def test_reader_counts_attribute_arrays_as_weights(tmp_path: Path) -> None:
    prof = read_onnx(_forest(tmp_path / "f.onnx"))
    got = {t.name: (t.dtype, t.n_elements) for t in prof.tensors}
    assert got == {
        "forest.nodes_treeids": ("int64", 9), "forest.nodes_nodeids": ("int64", 9),
        "forest.nodes_featureids": ("int64", 9), "forest.nodes_truenodeids": ("int64", 9),
        "forest.nodes_falsenodeids": ("int64", 9), "forest.nodes_values": ("float32", 9),
        "forest.target_treeids": ("int64", 6), "forest.target_nodeids": ("int64", 6),
        "forest.target_ids": ("int64", 6), "forest.target_weights": ("float32", 6),
    }  # nodes_modes (strings) are not weights; n_targets is a scalar
    # 5·9 + 3·6 int64 = 63 → 504 B; 9 + 6 float32 = 15 → 60 B
    assert prof.n_params == 78 and prof.weight_bytes == 564
    assert all(t.consumers == ("TreeEnsembleRegressor",) for t in prof.tensors)


def test_scalar_run_counts_unpacked_records() -> None:
    # ints (field 8, VARINT): 1, 300 (2 bytes), -1 (10 bytes), 64 (0x40, same byte as the tag)
    ints = b"".join(b"\x40" + encode_varint(v) for v in (1, 300, (1 << 64) - 1, 64))
    floats = b"\x3d\x00\x00\x80\x3f" * 3  # field 7, I32
    buf = ints + floats + b"\x0a\x01a"  # then a name field
    assert scalar_run(buf, 0, len(buf)) == (8, 4, len(ints))
    assert scalar_run(buf, len(ints), len(buf)) == (7, 3, len(ints) + 15)
    assert scalar_run(buf, len(ints) + 15, len(buf)) is None  # a LEN field is not a scalar run


def test_tree_ensemble_bytes_by_hand(tmp_path: Path) -> None:
    prof = read_onnx(_forest(tmp_path / "f.onnx"))
    held, rest = ml.split_attribute_weights(prof.tensors)
    assert rest == [] and ml.tree_counts(held) == {"forest": (9, 6)}
    # resident = 3 protobuf copies × 564 B + 24 B × 9 TreeNodeElement + 16 B × 6 SparseValue
    #          = 1692 + 216 + 96 = 2004
    # transient = (240 − 24) × 9 + (48 − 16) × 6 = 1944 + 192 = 2136
    assert ml.attribute_bytes(held) == (2004, 2136, 564, 564)
    base = WeightTerms(100, 100, 10, 20, 0, 5)
    wt = ml.with_attribute_terms(base, held, "onnxruntime-cpu")
    assert (wt.stored_bytes, wt.resident_bytes, wt.load_extra_bytes, wt.retained_bytes) == (664, 2104, 2146, 2141)
    cuda = ml.with_attribute_terms(base, held, "onnxruntime-cuda")
    assert (cuda.stored_bytes, cuda.resident_bytes) == (664, 100)  # ML ops run on the CPU provider


def test_other_ml_op_keeps_a_kernel_copy(tmp_path: Path) -> None:
    prof = read_onnx(_scaler_mlp(tmp_path / "s.onnx"))
    held, rest = ml.split_attribute_weights(prof.tensors)
    assert sorted(t.name for t in held) == ["s.offset", "s.scale"]  # named by the node's output
    assert [t.name for t in rest] == ["w"]
    # (3 protobuf copies + 1 kernel vector) × 8 floats × 4 B = 128
    assert ml.attribute_bytes(held) == (128, 0, 32, 0)


def test_estimate_prices_trees_and_shapes_after_scaler(tmp_path: Path) -> None:
    hw = laptop()
    est = estimate(read_onnx(_forest(tmp_path / "f.onnx")), Workload(input_shapes={"X": (2, 4)}),
                   "onnxruntime-cpu", hw)
    assert est.weights_bytes == 2004
    path = _scaler_mlp(tmp_path / "s.onnx")
    est = estimate(read_onnx(path), Workload(input_shapes={"X": (4096, 4)}), "onnxruntime-cpu", hw)
    assert not any("unknown shape" in n for n in est.notes)
    assert est.activation_bytes >= 4096 * 8 * 4  # the MatMul output, sized through the Scaler


def test_complete_shapes_leaves_plain_models_alone(tmp_path: Path) -> None:
    model = onnx.load(str(_forest(tmp_path / "f.onnx")))
    model.graph.node[0].domain = ""  # not an ML node any more: nothing to do, same object back
    assert ml.complete_shapes(model) is model
