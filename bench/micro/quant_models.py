"""Micro-benchmark: peak memory of int8-quantized ONNX models on onnxruntime CPU (issue 9, part 2).

    python bench/micro/quant_models.py                 # all models, all sizes (~10 min on 2 cores)
    python bench/micro/quant_models.py --quick         # the smallest and the largest size only
    python bench/micro/quant_models.py --only mlp      # one family (mlp, conv, block, wonly)
    python bench/micro/quant_models.py --dump DIR      # keep the models and ORT's optimized graphs

Builds small float32 graphs with ``onnx.helper`` (a MatMul chain, a Conv chain, a tiny transformer
block, and a hand-made weight-only ``DequantizeLinear -> MatMul`` graph), quantizes them with
``onnxruntime.quantization`` (``quantize_dynamic``: DynamicQuantizeLinear + MatMulInteger /
ConvInteger; ``quantize_static`` QDQ: QuantizeLinear/DequantizeLinear pairs; ``quantize_static``
QOperator: QLinearMatMul/QLinearConv), dumps ORT's optimized graph
(``SessionOptions.optimized_model_filepath``) at ORT_ENABLE_ALL and ORT_ENABLE_BASIC, and measures
each model in ONE fresh child process per case the way ``bench/ort_measure.py`` does (baseline =
``VmRSS`` after ``import onnxruntime, numpy`` and the inputs; ``clear_refs`` 5; load peak =
``VmHWM`` after ``InferenceSession``; peak = ``VmHWM`` after 2 runs; all above the baseline).

For each case it prints the measured figures next to

* ``naive``: what a graph-tensor walk says today: the stored initializers plus a float32
  activation for every ``DequantizeLinear`` of a constant weight (they all come first in the
  topological order, so they are live together);
* ``rules``: what :mod:`advisor.estimator.mechanisms.ort_quant` implies: the resident weight bytes after load
  (:func:`~advisor.estimator.mechanisms.ort_quant.resident_weight_bytes`) and the float32 weight copies that
  exist during a run (:func:`~advisor.estimator.mechanisms.ort_quant.runtime_dequantized_bytes`).

Weight terms are made to dominate: batch 8 (MatMul) or a 1x?x8x8 image (Conv), so activations are
a few hundred KiB at most.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

MIB = 1024 * 1024
BATCH = 8


# --------------------------------------------------------------------------------------- builders
def _save(graph: Any, path: Path) -> Path:
    import onnx
    from onnx import helper

    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 10
    onnx.save(model, str(path))
    return path


def _w(shape: tuple[int, ...], seed: int) -> Any:
    import numpy as np

    rng = np.random.default_rng(seed)
    return (rng.standard_normal(shape) * 0.05).astype(np.float32)


def _matmul_relu(nodes: list[Any], cur: str, i: int, n: int) -> str:
    """Append ``MatMul(cur, w{i})`` and, between layers, a Relu; the name of the new tensor."""
    from onnx import helper

    nodes.append(helper.make_node("MatMul", [cur, f"w{i}"], [f"m{i}"]))
    if i == n - 1:
        return f"m{i}"
    nodes.append(helper.make_node("Relu", [f"m{i}"], [f"r{i}"]))
    return f"r{i}"


def _chain(nodes: list[Any], inits: list[Any], cur: str, k: int, name: str,
           path: Path) -> tuple[Path, dict[str, list[int]]]:
    from onnx import TensorProto, helper

    g = helper.make_graph(nodes, name, [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["B", k])],
                          [helper.make_tensor_value_info(cur, TensorProto.FLOAT, ["B", k])], inits)
    return _save(g, path), {"x": [BATCH, k]}


def mlp(path: Path, k: int, n: int = 3) -> tuple[Path, dict[str, list[int]]]:
    """``n`` MatMuls [B, k] x [k, k] with Relu between: weights n * 4k^2 bytes float32."""
    from onnx import numpy_helper

    nodes, inits, cur = [], [], "x"
    for i in range(n):
        inits.append(numpy_helper.from_array(_w((k, k), i), f"w{i}"))
        cur = _matmul_relu(nodes, cur, i, n)
    return _chain(nodes, inits, cur, k, "mlp", path)


def conv(path: Path, c: int, n: int = 3) -> tuple[Path, dict[str, list[int]]]:
    """``n`` 3x3 Convs c -> c (pads 1, bias) with Relu between on a [1, c, 8, 8] image."""
    import numpy as np
    from onnx import TensorProto, helper, numpy_helper

    nodes, inits, cur = [], [], "x"
    for i in range(n):
        inits.append(numpy_helper.from_array(_w((c, c, 3, 3), i), f"w{i}"))
        inits.append(numpy_helper.from_array(np.zeros(c, np.float32), f"b{i}"))
        nodes.append(helper.make_node("Conv", [cur, f"w{i}", f"b{i}"], [f"c{i}"], pads=[1, 1, 1, 1]))
        cur = f"c{i}"
        if i < n - 1:
            nodes.append(helper.make_node("Relu", [cur], [f"r{i}"]))
            cur = f"r{i}"
    g = helper.make_graph(nodes, "conv", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, c, 8, 8])],
                          [helper.make_tensor_value_info(cur, TensorProto.FLOAT, [1, c, 8, 8])], inits)
    return _save(g, path), {"x": [1, c, 8, 8]}


def block(path: Path, d: int, seq: int = 16) -> tuple[Path, dict[str, list[int]]]:
    """A single-head transformer block on [1, seq, d]: LayerNorm, Q/K/V/O projections (MatMul + Add),
    Softmax attention, residual, LayerNorm, a 4d feed-forward (MatMul + Add, Relu, MatMul + Add).
    Weights 12 d^2 floats."""
    import numpy as np
    from onnx import TensorProto, helper, numpy_helper

    inits = [numpy_helper.from_array(np.ones(d, np.float32), "ln_s"),
             numpy_helper.from_array(np.zeros(d, np.float32), "ln_b"),
             numpy_helper.from_array(np.array(1.0 / np.sqrt(d), np.float32), "scale")]
    nodes = [helper.make_node("LayerNormalization", ["x", "ln_s", "ln_b"], ["h0"], axis=-1)]

    def proj(name: str, src: str, din: int, dout: int, seed: int) -> str:
        inits.append(numpy_helper.from_array(_w((din, dout), seed), f"{name}_w"))
        inits.append(numpy_helper.from_array(np.zeros(dout, np.float32), f"{name}_b"))
        nodes.append(helper.make_node("MatMul", [src, f"{name}_w"], [f"{name}_mm"]))
        nodes.append(helper.make_node("Add", [f"{name}_mm", f"{name}_b"], [name]))
        return name

    q, k, v = proj("q", "h0", d, d, 1), proj("k", "h0", d, d, 2), proj("v", "h0", d, d, 3)
    nodes += [helper.make_node("Transpose", [k], ["kt"], perm=[0, 2, 1]),
              helper.make_node("MatMul", [q, "kt"], ["qk"]),
              helper.make_node("Mul", ["qk", "scale"], ["qks"]),
              helper.make_node("Softmax", ["qks"], ["p"], axis=-1),
              helper.make_node("MatMul", ["p", v], ["att"])]
    o = proj("o", "att", d, d, 4)
    nodes += [helper.make_node("Add", ["x", o], ["res1"]),
              helper.make_node("LayerNormalization", ["res1", "ln_s", "ln_b"], ["h1"], axis=-1)]
    f1 = proj("f1", "h1", d, 4 * d, 5)
    nodes.append(helper.make_node("Relu", [f1], ["f1r"]))
    f2 = proj("f2", "f1r", 4 * d, d, 6)
    nodes.append(helper.make_node("Add", ["res1", f2], ["y"]))
    g = helper.make_graph(nodes, "block", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, seq, d])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, seq, d])], inits)
    return _save(g, path), {"x": [1, seq, d]}


def weight_only(path: Path, k: int, n: int = 3) -> tuple[Path, dict[str, list[int]]]:
    """Hand-made weight-only QDQ: ``DequantizeLinear(int8 W) -> MatMul`` with float32 activations
    (no QuantizeLinear on the activations, the layout of weight-only int8 exports)."""
    import numpy as np
    from onnx import helper, numpy_helper

    nodes, inits, cur = [], [], "x"
    rng = np.random.default_rng(0)
    for i in range(n):
        inits.append(numpy_helper.from_array(rng.integers(-127, 128, (k, k)).astype(np.int8), f"wq{i}"))
        inits.append(numpy_helper.from_array(np.array(0.001, np.float32), f"ws{i}"))
        inits.append(numpy_helper.from_array(np.array(0, np.int8), f"wz{i}"))
        nodes.append(helper.make_node("DequantizeLinear", [f"wq{i}", f"ws{i}", f"wz{i}"], [f"w{i}"]))
        cur = _matmul_relu(nodes, cur, i, n)
    return _chain(nodes, inits, cur, k, "wonly", path)


Builder = Callable[[Path, int], tuple[Path, dict[str, list[int]]]]
FAMILIES: dict[str, tuple[Builder, list[int]]] = {
    # int8 weights: 3 MiB, 48 MiB, 192 MiB
    "mlp": (mlp, [1024, 4096, 8192]),
    # int8 weights: 6.75 MiB, 27 MiB, 108 MiB
    "conv": (conv, [512, 1024, 2048]),
    # int8 weights: 12 MiB, 48 MiB, 147 MiB
    "block": (block, [1024, 2048, 3584]),
    # int8 weights: 3 MiB, 48 MiB, 192 MiB
    "wonly": (weight_only, [1024, 4096, 8192]),
}


# --------------------------------------------------------------------------------------- quantize
class _Reader:
    """Two random calibration batches for ``quantize_static``."""

    def __init__(self, shapes: dict[str, list[int]]) -> None:
        import numpy as np

        rng = np.random.default_rng(1)
        self._it: Iterator[dict[str, Any]] = iter(
            [{n: rng.standard_normal(s).astype(np.float32) for n, s in shapes.items()} for _ in range(2)])

    def get_next(self) -> dict[str, Any] | None:
        return next(self._it, None)


def quantize(src: Path, shapes: dict[str, list[int]], how: str) -> Path:
    """``how``: dyn (quantize_dynamic, int8 weights), qdq / qop (quantize_static, QDQ / QOperator)."""
    import logging

    from onnxruntime.quantization import (
        CalibrationDataReader,
        QuantFormat,
        QuantType,
        quantize_dynamic,
        quantize_static,
    )

    logging.getLogger().setLevel(logging.ERROR)
    dst = src.with_name(f"{src.stem}.{how}.onnx")
    if how == "dyn":
        quantize_dynamic(str(src), str(dst), weight_type=QuantType.QInt8)
    else:
        reader = _Reader(shapes)
        CalibrationDataReader.register(_Reader)
        fmt = QuantFormat.QDQ if how == "qdq" else QuantFormat.QOperator
        quantize_static(str(src), str(dst), reader, quant_format=fmt)  # type: ignore[arg-type]
    return dst


def optimized_graph(model: Path, level: str) -> Any:
    """ORT's optimized graph (``optimized_model_filepath``) at ``level`` ('all' / 'basic')."""
    import onnx
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.log_severity_level = 3
    so.graph_optimization_level = (ort.GraphOptimizationLevel.ORT_ENABLE_ALL if level == "all"
                                   else ort.GraphOptimizationLevel.ORT_ENABLE_BASIC)
    out = model.with_name(f"{model.stem}.opt-{level}.onnx")
    so.optimized_model_filepath = str(out)
    ort.InferenceSession(str(model), so, providers=["CPUExecutionProvider"])
    return onnx.load(str(out)).graph


# --------------------------------------------------------------------------------------- measure
def child(model: str, shapes: dict[str, list[int]], level: str, runs: int) -> dict[str, Any]:
    """bench/ort_measure.py's method, with the optimization level as a parameter."""
    import numpy as np
    import onnxruntime as ort
    from proc_memory import reset_hwm, vm_status

    rng = np.random.default_rng(0)
    feeds = {n: rng.standard_normal(s).astype(np.float32) for n, s in shapes.items()}
    base = vm_status()
    reset_hwm()
    opts = ort.SessionOptions()
    if level == "basic":
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_BASIC
    sess = ort.InferenceSession(model, sess_options=opts, providers=["CPUExecutionProvider"])
    loaded = vm_status()
    for _ in range(max(1, runs)):
        outs = sess.run(None, feeds)
        del outs
    ran = vm_status()
    return {"load_peak": loaded["VmHWM"] - base["VmRSS"], "load_rss": loaded["VmRSS"] - base["VmRSS"],
            "run_rss": ran["VmRSS"] - base["VmRSS"], "peak": ran["VmHWM"] - base["VmRSS"]}


def measure(model: Path, shapes: dict[str, list[int]], level: str) -> dict[str, Any]:
    proc = subprocess.run([sys.executable, __file__, "--child", str(model), json.dumps(shapes), level],
                          capture_output=True, text=True, timeout=600, check=False)
    try:
        return dict(json.loads(proc.stdout.strip().splitlines()[-1]))
    except (IndexError, json.JSONDecodeError):
        return {"error": proc.stderr[-400:]}


# --------------------------------------------------------------------------------------- report
def _init_bytes(t: Any) -> int:
    from onnx import helper

    n = 1
    for d in t.dims:
        n *= d
    return n * helper.tensor_dtype_to_np_dtype(t.data_type).itemsize


def naive_bytes(graph: Any) -> tuple[int, int]:
    """(stored initializer bytes, float32 DequantizeLinear-of-weight outputs counted as activations)."""
    from advisor.estimator.mechanisms.ort_quant import dequantized_weight_bytes

    return sum(_init_bytes(t) for t in graph.initializer), sum(dequantized_weight_bytes(graph).values())


def structure_check(graph: Any, opt: Any, level: str) -> str:
    """Compare the rules with ORT's optimized graph: weight-DQ outputs that vanished vs
    :func:`~advisor.estimator.mechanisms.ort_quant.fused_dequantize_outputs`, and every quantization tensor
    that vanished vs :func:`~advisor.estimator.mechanisms.ort_quant.fused_away_tensors` (names ORT keeps)."""
    from advisor.estimator.mechanisms import ort_quant as q

    alive = {x for n in opt.node for x in (*n.input, *n.output)} | {o.name for o in opt.output}
    weight_dq = set(q.dequantized_weight_bytes(graph))
    gone_dq = {t for t in weight_dq if t not in alive}
    pred_dq = q.fused_dequantize_outputs(graph, level=level)
    quant_ops = {"DequantizeLinear", "QuantizeLinear", "DynamicQuantizeLinear", "MatMulInteger", "Cast"}
    quant_tensors = {o for n in graph.node if n.op_type in quant_ops for o in n.output}
    quant_tensors |= {n.output[0] for n in graph.node if any(i in quant_tensors for i in n.input)}
    # QDQS8ToU8Transformer (qdq_s8_to_u8.cc) renames int8 Q outputs to uint8 ones of the same size
    q_outs = {n.output[0] for n in graph.node if n.op_type == "QuantizeLinear"}
    gone = {t for t in quant_tensors - q_outs if t not in alive}
    pred = q.fused_away_tensors(graph, level=level) - q_outs
    dq_ok = "dq ok" if gone_dq == set(pred_dq) else f"dq MISMATCH gone {sorted(gone_dq)} pred {sorted(pred_dq)}"
    missed, extra = sorted(gone - pred), sorted(pred - gone)
    t_ok = "tensors ok" if not extra and not missed else f"tensors missed {missed[:4]} extra {extra[:4]}"
    return f"{dq_ok}, {t_ok} ({len(gone)} gone)"


def _ops(graph: Any) -> str:
    from collections import Counter

    return " ".join(f"{op}x{n}" if n > 1 else op for op, n in Counter(n.op_type for n in graph.node).items())


def run_case(family: str, size: int, how: str, work: Path, dump: bool) -> list[str]:
    from advisor.estimator.mechanisms import ort_quant as q

    builder, _ = FAMILIES[family]
    src, shapes = builder(work / f"{family}{size}.onnx", size)
    model = src if how in ("fp32", "hand") else quantize(src, shapes, how)
    import onnx

    graph = onnx.load(str(model)).graph
    stored, naive_dq = naive_bytes(graph)
    lines = []
    for level in ("all", "basic"):
        opt = optimized_graph(model, level)
        m = measure(model, shapes, level)
        if "error" in m:
            lines.append(f"{family}{size:<5} {how:4} {level:5} ERROR {m['error']}")
            continue
        resident = q.resident_weight_bytes(graph, level=level)
        run_dq = q.runtime_dequantized_bytes(graph, level=level)
        opt_init = sum(_init_bytes(t) for t in opt.initializer)
        check = structure_check(graph, opt, level)
        lines.append(
            f"{family}{size:<5} {how:4} {level:5} stored {stored / MIB:7.1f}  naive {(stored + naive_dq) / MIB:7.1f}"
            f"  rules {resident / MIB:7.1f} + run {run_dq / MIB:6.1f} | load_peak {m['load_peak'] / MIB:7.1f}"
            f"  load_rss {m['load_rss'] / MIB:7.1f}  peak {m['peak'] / MIB:7.1f}  run_rss {m['run_rss'] / MIB:7.1f}"
            f" | opt-init {opt_init / MIB:6.1f} | {check} | {_ops(opt)}")
        print(lines[-1], flush=True)
    if not dump:
        for f in work.glob(f"{family}{size}*"):
            f.unlink()
    return lines


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--child", nargs=3, metavar=("MODEL", "SHAPES", "LEVEL"), help=argparse.SUPPRESS)
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--only", choices=sorted(FAMILIES))
    ap.add_argument("--how", default="fp32,dyn,qdq,qop", help="comma list of fp32, dyn, qdq, qop")
    ap.add_argument("--dump", type=Path, help="keep models and optimized graphs here")
    args = ap.parse_args(argv)
    if args.child:
        from proc_memory import reply

        model, shapes, level = args.child
        return reply(lambda: child(model, json.loads(shapes), level, 2))
    families = [args.only] if args.only else list(FAMILIES)
    with tempfile.TemporaryDirectory() as tmp:
        work = args.dump or Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        for fam in families:
            sizes = FAMILIES[fam][1]
            if args.quick:
                sizes = [sizes[0], sizes[-1]]
            hows = ["hand"] if fam == "wonly" else args.how.split(",")
            for size in sizes:
                for how in hows:
                    run_case(fam, size, how, work, args.dump is not None)
    return 0


if __name__ == "__main__":
    sys.exit(main())
