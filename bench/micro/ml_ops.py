"""What onnxruntime's ai.onnx.ml tree ensembles cost in memory, measured on synthetic forests.

    python bench/micro/ml_ops.py                # the default grid, one fresh process per case
    python bench/micro/ml_ops.py --quick        # a few cases

Each case is a ``TreeEnsembleClassifier`` (``C`` class weights on every leaf, as skl2onnx writes a
RandomForestClassifier) or a ``TreeEnsembleRegressor`` (one target weight per leaf, a gradient
boosting stage) of ``T`` full binary trees of depth ``d`` (``2^(d+1) - 1`` nodes each) over 64
float features, written with ``onnx.helper`` the way skl2onnx writes them (hitrates and
missing-value tracks included). It is measured like ``bench/ort_measure.py`` (it IS that script,
run as a child: fresh process, VmHWM above the bare-runtime baseline after session + 2 runs), so
the per-node and per-weight costs can be separated by varying ``T``, ``d`` and ``C`` while the
batch stays at 1, and the per-row cost by varying the batch.

Prints one line per case and a least-squares fit of ``load_rss = a + b·nodes + c·weights`` and
``peak = …`` (MiB, bytes per node, bytes per weight entry).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

HERE = Path(__file__).resolve().parent
MEASURE = HERE.parent / "ort_measure.py"
MIB = 1024 * 1024
N_FEATURES = 64


def forest(kind: str, trees: int, depth: int, classes: int, *, hitrates: bool = True) -> Any:
    """A tree-ensemble model of ``trees`` full binary trees of ``depth`` (see the module docstring)."""
    import onnx
    from onnx import TensorProto, helper

    rng = np.random.default_rng(0)
    per_tree = 2 ** (depth + 1) - 1
    first_leaf = 2 ** depth - 1
    node_ids = np.arange(per_tree)
    inner = node_ids < first_leaf
    attrs: dict[str, Any] = {
        "nodes_treeids": np.repeat(np.arange(trees), per_tree).tolist(),
        "nodes_nodeids": np.tile(node_ids, trees).tolist(),
        "nodes_featureids": np.where(np.tile(inner, trees), rng.integers(0, N_FEATURES, trees * per_tree), 0).tolist(),
        "nodes_values": rng.standard_normal(trees * per_tree).astype(np.float32).tolist(),
        "nodes_modes": ["BRANCH_LEQ" if i else "LEAF" for i in np.tile(inner, trees)],
        "nodes_truenodeids": np.tile(np.where(inner, 2 * node_ids + 1, 0), trees).tolist(),
        "nodes_falsenodeids": np.tile(np.where(inner, 2 * node_ids + 2, 0), trees).tolist(),
    }
    if hitrates:
        attrs["nodes_hitrates"] = np.ones(trees * per_tree, np.float32).tolist()
        attrs["nodes_missing_value_tracks_true"] = np.zeros(trees * per_tree, np.int64).tolist()
    leaves = np.arange(first_leaf, per_tree)
    per_leaf = classes if kind == "clf" else 1
    w_tree = np.repeat(np.arange(trees), len(leaves) * per_leaf)
    w_node = np.tile(np.repeat(leaves, per_leaf), trees)
    w_id = np.tile(np.arange(per_leaf), trees * len(leaves))
    w_val = rng.random(len(w_tree)).astype(np.float32)
    x = helper.make_tensor_value_info("X", TensorProto.FLOAT, ["N", N_FEATURES])
    if kind == "clf":
        node = helper.make_node("TreeEnsembleClassifier", ["X"], ["label", "probabilities"], domain="ai.onnx.ml",
                                class_treeids=w_tree.tolist(), class_nodeids=w_node.tolist(), class_ids=w_id.tolist(),
                                class_weights=w_val.tolist(), classlabels_int64s=list(range(classes)),
                                post_transform="NONE", **attrs)
        outs = [helper.make_tensor_value_info("label", TensorProto.INT64, ["N"]),
                helper.make_tensor_value_info("probabilities", TensorProto.FLOAT, ["N", classes])]
    else:
        node = helper.make_node("TreeEnsembleRegressor", ["X"], ["variable"], domain="ai.onnx.ml",
                                target_treeids=w_tree.tolist(), target_nodeids=w_node.tolist(),
                                target_ids=w_id.tolist(), target_weights=w_val.tolist(), n_targets=1,
                                aggregate_function="SUM", post_transform="NONE", **attrs)
        outs = [helper.make_tensor_value_info("variable", TensorProto.FLOAT, ["N", 1])]
    graph = helper.make_graph([node], "forest", [x], outs)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17), helper.make_opsetid("ai.onnx.ml", 3)])
    model.ir_version = 10
    onnx.checker.check_model(model)
    return model


def measure(path: Path, batch: int) -> dict[str, Any]:
    out = subprocess.run([sys.executable, str(MEASURE), str(path), json.dumps({"X": [batch, N_FEATURES]})],
                         capture_output=True, text=True, check=False)
    return dict(json.loads(out.stdout.strip().splitlines()[-1]))


GRID = [  # (kind, trees, depth, classes, batch)
    ("clf", 1, 1, 10, 1),
    ("clf", 50, 8, 10, 1), ("clf", 100, 8, 10, 1), ("clf", 200, 8, 10, 1), ("clf", 200, 9, 10, 1),
    ("clf", 200, 8, 2, 1), ("clf", 200, 8, 20, 1),
    ("reg", 100, 8, 1, 1), ("reg", 300, 8, 1, 1), ("reg", 600, 8, 1, 1), ("reg", 300, 9, 1, 1),
    ("clf", 200, 8, 10, 4096), ("clf", 200, 8, 10, 16384), ("reg", 300, 8, 1, 65536),
]
QUICK = [("clf", 1, 1, 10, 1), ("clf", 100, 8, 10, 1), ("clf", 200, 8, 10, 1), ("reg", 300, 8, 1, 1)]


def main(argv: list[str] | None = None) -> int:
    import onnx

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true")
    args = ap.parse_args(argv)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        print(f"{'kind':4s} {'trees':>5s} {'depth':>5s} {'C':>3s} {'batch':>6s} {'nodes':>7s} {'weights':>8s} "
              f"{'file':>7s} {'load_peak':>9s} {'load_rss':>9s} {'peak':>7s}  (MiB)")
        for kind, trees, depth, classes, batch in QUICK if args.quick else GRID:
            path = Path(tmp) / f"{kind}-{trees}-{depth}-{classes}.onnx"
            if not path.exists():
                onnx.save(forest(kind, trees, depth, classes), str(path))
            r = measure(path, batch)
            nodes = trees * (2 ** (depth + 1) - 1)
            weights = trees * 2 ** depth * (classes if kind == "clf" else 1)
            rows.append((kind, batch, nodes, weights, r))
            print(f"{kind:4s} {trees:5d} {depth:5d} {classes:3d} {batch:6d} {nodes:7d} {weights:8d} "
                  f"{path.stat().st_size / MIB:7.2f} {r['load_peak_bytes'] / MIB:9.2f} "
                  f"{r['load_rss_bytes'] / MIB:9.2f} {r['peak_bytes'] / MIB:7.2f}", flush=True)
    fit = [(n, w, r) for _, b, n, w, r in rows if b == 1]
    if len(fit) >= 3:
        a = np.array([[1.0, n, w] for n, w, _ in fit])
        for key in ("load_rss_bytes", "load_peak_bytes", "peak_bytes"):
            y = np.array([r[key] for _, _, r in fit], dtype=float)
            coef = np.linalg.lstsq(a, y, rcond=None)[0]
            print(f"fit {key:16s}: {coef[0] / MIB:6.2f} MiB + {coef[1]:7.1f} B/node + {coef[2]:6.1f} B/weight")
        # advisor.estimator.mechanisms.ort_ml: 3 protobuf copies of the attribute bytes (per node six int64 and
        # two float arrays = 56 B, per weight three int64 and one float = 28 B) + the kernel's part
        print(f"  after 3 x attribute bytes: {coef[1] - 3 * 56:.0f} B/node, {coef[2] - 3 * 28:.0f} B/weight "
              "(advisor.estimator.mechanisms.ort_ml TREE_NODE_BYTES / TREE_WEIGHT_BYTES, peak)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
