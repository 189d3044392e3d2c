"""onnxruntime's fixed cost per run and per node (the dispatch term of the speed model).

    python bench/micro/ort_dispatch.py

A chain of N ``Relu`` nodes on a [1, 16] float tensor does almost no work, so the time of one
``InferenceSession.run`` is the fixed cost of a run from Python (binding inputs and outputs) plus
N times the cost of dispatching one node (onnxruntime's SequentialExecutor). One intra-op
thread, graph optimization off (so the chain is not folded), best of 5 × 2000 runs after a
warm-up. The slope and intercept of a least-squares line are what
``advisor.estimator.speed.ORT_NODE_SECONDS`` / ``ORT_RUN_SECONDS`` state for the CPU.
"""

from __future__ import annotations

import time

import numpy as np
import onnxruntime as ort
from onnx import TensorProto, helper


def chain(n: int) -> bytes:
    nodes = [helper.make_node("Relu", [f"t{i}"], [f"t{i + 1}"]) for i in range(n)]
    graph = helper.make_graph(nodes, "chain", [helper.make_tensor_value_info("t0", TensorProto.FLOAT, [1, 16])],
                              [helper.make_tensor_value_info(f"t{n}", TensorProto.FLOAT, [1, 16])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 10  # onnx 1.23 writes 14, which onnxruntime <= 1.32 refuses
    return model.SerializeToString()


def seconds_per_run(n: int, runs: int = 2000, repeats: int = 5) -> float:
    so = ort.SessionOptions()
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    so.intra_op_num_threads = 1
    sess = ort.InferenceSession(chain(n), so, providers=["CPUExecutionProvider"])
    x = {"t0": np.ones((1, 16), np.float32)}
    for _ in range(200):
        sess.run(None, x)
    best = float("inf")
    for _ in range(repeats):
        t = time.perf_counter()
        for _ in range(runs):
            sess.run(None, x)
        best = min(best, (time.perf_counter() - t) / runs)
    return best


def main() -> int:
    ns = (1, 10, 100, 400)
    ts = [seconds_per_run(n) for n in ns]
    for n, t in zip(ns, ts, strict=True):
        print(f"{n:4d} nodes: {t * 1e6:7.2f} µs a run")
    slope, intercept = np.polyfit(ns, ts, 1)
    print(f"onnxruntime {ort.__version__}: {slope * 1e6:.2f} µs a node + {intercept * 1e6:.1f} µs a run")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
