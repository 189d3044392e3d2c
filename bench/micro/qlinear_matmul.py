"""Arena bytes of onnxruntime's CPU QLinearMatMul and of an inlined HardSwish, measured.

    python bench/micro/qlinear_matmul.py

1. ``QLinearMatMul(A, B)`` with a uint8 graph input A ([M, K], caller-owned, not in the arena) and a
   constant int8 B ([K, N], pre-packed): the arena's in-use peak during the node is the uint8
   output (M·N bytes) plus the int32 product buffer ``M·N·4`` that ``QLinearMatMul::Compute``
   takes from the temp-space allocator (quantize_linear_matmul.cc), as BFC chunks (a chunk less
   than twice the request is not split, so a big request can count more than it asked).
2. ``Relu(x) → HardSwish → Relu`` on [1, 32, 320, 320] floats: the CPU EP has no HardSwish kernel,
   the session inlines its function body (HardSigmoid, Mul); the optimized graph and the in-use
   bytes after the Mul (x + HardSigmoid + Mul outputs) show it.

Figures (onnxruntime 1.32.0, 2-core AMD EPYC): [4096, 1024] × [1024, 1024]: peak 21.0 MiB =
4 MiB output + 16 MiB int32 (+1 MiB); [98304, 257] × [257, 128]: peak 80.0 MiB = 12 MiB output +
48 MiB int32 + 20 MiB unsplit chunk slack. HardSwish: HardSigmoid + Mul in the optimized graph.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto, helper, numpy_helper

MIB = 1024 * 1024


def _profile(model: onnx.ModelProto, feeds: dict[str, np.ndarray], tmp: Path) -> list[dict[str, object]]:
    so = ort.SessionOptions()
    so.enable_profiling = True
    so.profile_file_prefix = str(tmp / "prof")
    so.optimized_model_filepath = str(tmp / "opt.onnx")
    sess = ort.InferenceSession(model.SerializeToString(), so, providers=["CPUExecutionProvider"])
    sess.run(None, feeds)
    events = json.loads(Path(sess.end_profiling()).read_text())
    return [e for e in events if e.get("cat") == "Node" and str(e["name"]).endswith("_kernel_time")]


def qlinear_matmul(m: int, k: int, n: int, tmp: Path) -> tuple[float, float]:
    """(arena in-use peak during QLinearMatMul, its uint8 output) in MiB."""
    rng = np.random.default_rng(0)
    inits = [numpy_helper.from_array(rng.integers(-127, 127, (k, n)).astype(np.int8), "B"),
             numpy_helper.from_array(np.array(0.02, np.float32), "as"),
             numpy_helper.from_array(np.array(128, np.uint8), "az"),
             numpy_helper.from_array(np.array(0.01, np.float32), "bs"),
             numpy_helper.from_array(np.array(0, np.int8), "bz"),
             numpy_helper.from_array(np.array(0.05, np.float32), "ys"),
             numpy_helper.from_array(np.array(128, np.uint8), "yz")]
    nodes = [helper.make_node("QLinearMatMul", ["A", "as", "az", "B", "bs", "bz", "ys", "yz"], ["Y"])]
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("A", TensorProto.UINT8, ["M", k])],
                              [helper.make_tensor_value_info("Y", TensorProto.UINT8, ["M", n])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    rows = _profile(model, {"A": rng.integers(0, 255, (m, k)).astype(np.uint8)}, tmp)
    args = rows[0]["args"]
    assert isinstance(args, dict)
    return int(args["mem_in_use_peak"]) / MIB, int(args["output_size"]) / MIB


def hardswish(tmp: Path) -> tuple[list[str], float]:
    """(ops of the optimized graph, arena MiB in use after the inlined Mul)."""
    shape = [1, 32, 320, 320]
    nodes = [helper.make_node("Relu", ["x"], ["a"]), helper.make_node("HardSwish", ["a"], ["b"]),
             helper.make_node("Relu", ["b"], ["y"])]
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, shape)],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, shape)])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 14)])
    model.ir_version = 8
    rows = _profile(model, {"x": np.random.rand(*shape).astype(np.float32)}, tmp)
    ops = [n.op_type for n in onnx.load(str(tmp / "opt.onnx")).graph.node]
    mul = next(r for r in rows if isinstance(r["args"], dict) and r["args"]["op_name"] == "Mul")
    assert isinstance(mul["args"], dict)
    return ops, int(mul["args"]["mem_bytes_requested_in_use"]) / MIB


def main() -> None:
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        for m, k, n in ((4096, 1024, 1024), (98304, 257, 128), (24576, 512, 256)):
            peak, out = qlinear_matmul(m, k, n, tmp)
            print(f"QLinearMatMul [{m}, {k}] x [{k}, {n}]: peak {peak:.1f} MiB = output {out:.1f} "
                  f"+ int32 {m * n * 4 / MIB:.1f} + {peak - out - m * n * 4 / MIB:.1f}")
        ops, in_use = hardswish(tmp)
        print(f"HardSwish [1, 32, 320, 320] (12.5 MiB): optimized graph {ops}; in use after the Mul {in_use:.1f} MiB")


if __name__ == "__main__":
    main()
