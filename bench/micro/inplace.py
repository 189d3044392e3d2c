"""Which onnxruntime CPU kernels write their output over their input (``MayInplace``), measured.

    python bench/micro/inplace.py

For each op, a three-node graph ``Relu(x) → OP → Relu`` on a [1024, 1024] float tensor (4 MiB)
runs once at ``ORT_DISABLE_ALL`` (no fusion) with the profiler on; the arena's bytes in use right
after OP (``mem_bytes_requested_in_use`` in the profile) are 4 MiB when OP wrote over its dying
input and 8 MiB when it took a new buffer. Binary ops read a 1-element constant as their second
input. The estimator's ``advisor.estimator.mechanisms.liveness.INPLACE_OPS`` is this measurement (Relu,
skipped here because its neighbours are Relu, measured in place after a Conv).
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto, helper, numpy_helper

UNARY = ("Relu", "LeakyRelu", "Sigmoid", "Tanh", "Elu", "Selu", "HardSigmoid", "Softplus", "Softsign",
         "ThresholdedRelu", "Clip", "Neg", "Abs", "Exp", "Log", "Sqrt", "Reciprocal", "Floor", "Ceil", "Erf",
         "Softmax", "LogSoftmax", "Round", "Sign", "Sin", "Cos")
BINARY = ("Add", "Sub", "Mul", "Div", "Pow", "Sum", "Max", "Min", "Mean")
MIB = 1024 * 1024


def _graph(op: str) -> onnx.ModelProto:
    nodes = [helper.make_node("Relu", ["x"], ["c"])]
    if op in BINARY:
        nodes.append(helper.make_node(op, ["c", "k"], ["y"]))
    else:
        nodes.append(helper.make_node(op, ["c"], ["y"]))
    nodes.append(helper.make_node("Relu", ["y"], ["z"]))
    k = numpy_helper.from_array(np.full((1,), 0.5, np.float32), "k")
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1024, 1024])],
                              [helper.make_tensor_value_info("z", TensorProto.FLOAT, None)], [k])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 10
    return model


def in_use_after(op: str, tmp: Path) -> float:
    """MiB the arena holds right after ``op`` ran (profiler), in the Relu → op → Relu graph."""
    path = tmp / f"{op}.onnx"
    onnx.save(_graph(op), str(path))
    opts = ort.SessionOptions()
    opts.enable_profiling = True
    opts.profile_file_prefix = str(tmp / op)
    opts.log_severity_level = 3
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    sess = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
    sess.run(None, {"x": np.random.default_rng(0).random((1024, 1024), dtype=np.float32)})
    events = json.loads(Path(sess.end_profiling()).read_text())
    node = next(e for e in events if e.get("cat") == "Node" and e["name"].endswith("_kernel_time")
                and e["args"]["op_name"] == op)
    return int(node["args"]["mem_bytes_requested_in_use"]) / MIB


def main() -> int:
    print(f"onnxruntime {ort.__version__}: MiB in the arena after OP (4 = in place, 8 = new buffer)")
    with tempfile.TemporaryDirectory() as tmp:
        for op in (*UNARY, *BINARY):
            if op == "Relu":
                continue  # the neighbours are Relu: the middle node would be ambiguous
            mib = in_use_after(op, Path(tmp))
            print(f"{op:16s} {mib:5.1f}  {'in place' if mib < 6 else 'new buffer'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
