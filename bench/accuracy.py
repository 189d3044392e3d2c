"""Accuracy of the ONNX peak-memory estimator against onnxruntime CPU, measured.

    python bench/accuracy.py            # full set (~10 min on 2 cores)
    python bench/accuracy.py --quick    # a subset (~3 min)
    python bench/accuracy.py --no-torch # only the hand-built graphs (torch models need `pip install torch`)

Builds a varied model set in a temporary folder (tests/builders/onnx_models.py, the builders
below, and torch-exported models from bench/torch_models.py when torch imports), predicts each
case with ``advisor.estimator.estimate`` and measures it with
``bench/ort_measure.py`` in ONE fresh subprocess per case (see that file for the exact baseline:
VmRSS after ``import onnxruntime, numpy`` and building the input arrays; peak = VmHWM after
session creation + 2 runs − baseline). Prints predicted vs measured, the signed error, whether
the measurement fell inside [low, high], and the median / max |error|; also what the two naive
rules would have said (weights only; every tensor summed).
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from advisor.estimator import estimate  # noqa: E402
from advisor.estimator.mechanisms.shapes import infer_shapes, resolve_inputs  # noqa: E402
from advisor.estimator.runtimes.onnxruntime import _skeleton  # noqa: E402
from advisor.estimator.runtimes.onnxruntime_graph import graph_memory  # noqa: E402
from advisor.estimator.types import MIB, Workload  # noqa: E402
from advisor.hardware.profile import HardwareProfile  # noqa: E402
from advisor.readers.onnx_reader import read_onnx  # noqa: E402
from tests.builders import onnx_models as om  # noqa: E402

_NP = {"float32": "float32", "float16": "float16", "int64": "int64", "int32": "int32", "bool": "bool"}


def _save(graph: onnx.GraphProto, path: Path, opset: int = 17) -> Path:
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = 10
    onnx.save(model, str(path))
    return path


def _w(rng: np.random.Generator, *shape: int) -> np.ndarray:
    return (rng.standard_normal(shape) * 0.05).astype(np.float32)


def vgg(path: Path, *, width: int = 32, blocks: int = 4, classes: int = 1000) -> Path:
    """Conv-Relu-Conv-Relu-MaxPool blocks, then Flatten → Gemm on ``[N, 3, 224, 224]`` (fixed HW)."""
    rng = np.random.default_rng(10)
    nodes, inits, x, cin = [], [], "x", 3
    for b in range(blocks):
        cout = width * 2**b
        for j in range(2):
            w = f"b{b}.conv{j}.weight"
            inits += [numpy_helper.from_array(_w(rng, cout, cin, 3, 3), w),
                      numpy_helper.from_array(_w(rng, cout), f"b{b}.conv{j}.bias")]
            nodes += [helper.make_node("Conv", [x, w, f"b{b}.conv{j}.bias"], [f"c{b}{j}"], pads=[1, 1, 1, 1]),
                      helper.make_node("Relu", [f"c{b}{j}"], [f"r{b}{j}"])]
            x, cin = f"r{b}{j}", cout
        nodes.append(helper.make_node("MaxPool", [x], [f"p{b}"], kernel_shape=[2, 2], strides=[2, 2]))
        x = f"p{b}"
    side = 224 // 2**blocks
    inits.append(numpy_helper.from_array(_w(rng, classes, cin * side * side), "fc.weight"))
    nodes += [helper.make_node("Flatten", [x], ["flat"]),
              helper.make_node("Gemm", ["flat", "fc.weight"], ["y"], transB=1)]
    graph = helper.make_graph(nodes, "vgg", [helper.make_tensor_value_info("x", TensorProto.FLOAT,
                                                                           ["N", 3, 224, 224])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", classes])], inits)
    return _save(graph, path)


def rnn(path: Path, *, op: str = "LSTM", hidden: int = 512, inp: int = 256, layers: int = 2) -> Path:
    """Stacked LSTM/GRU over ``x: [seq, batch, inp]`` (ONNX layout)."""
    rng = np.random.default_rng(11)
    gates = 4 if op == "LSTM" else 3
    nodes, inits, x, width = [], [], "x", inp
    for i in range(layers):
        inits += [numpy_helper.from_array(_w(rng, 1, gates * hidden, width), f"l{i}.W"),
                  numpy_helper.from_array(_w(rng, 1, gates * hidden, hidden), f"l{i}.R"),
                  numpy_helper.from_array(_w(rng, 1, 2 * gates * hidden), f"l{i}.B")]
        nodes += [helper.make_node(op, [x, f"l{i}.W", f"l{i}.R", f"l{i}.B"], [f"Y{i}"], hidden_size=hidden),
                  helper.make_node("Squeeze", [f"Y{i}", "axis1"], [f"s{i}"])]
        x, width = f"s{i}", hidden
    inits.append(numpy_helper.from_array(np.array([1], dtype=np.int64), "axis1"))
    graph = helper.make_graph(nodes, op.lower(), [helper.make_tensor_value_info("x", TensorProto.FLOAT,
                                                                                ["seq", "batch", inp])],
                              [helper.make_tensor_value_info(x, TensorProto.FLOAT, None)], inits)
    return _save(graph, path)


def transformer(path: Path, *, d: int = 512, layers: int = 4, vocab: int = 8000, heads: int = 8) -> Path:
    """Token embedding (Gather on int64 ids) → N post-norm attention+MLP blocks → LM head."""
    rng = np.random.default_rng(12)
    hd = d // heads
    n = helper.make_node
    inits = [numpy_helper.from_array(_w(rng, vocab, d), "embed"),
             numpy_helper.from_array(np.array([0, 0, heads, hd], dtype=np.int64), "hs"),
             numpy_helper.from_array(np.array([0, 0, d], dtype=np.int64), "ms"),
             numpy_helper.from_array(np.array(1 / np.sqrt(hd), dtype=np.float32), "scale"),
             numpy_helper.from_array(_w(rng, d, vocab), "head")]
    nodes = [n("Gather", ["embed", "ids"], ["h0"])]
    x = "h0"
    for i in range(layers):
        p = f"l{i}."
        for nm, shp in (("q", (d, d)), ("k", (d, d)), ("v", (d, d)), ("o", (d, d)), ("up", (d, 4 * d)),
                        ("down", (4 * d, d)), ("g1", (d,)), ("b1", (d,)), ("g2", (d,)), ("b2", (d,))):
            inits.append(numpy_helper.from_array(_w(rng, *shp), p + nm))
        for k in "qkv":
            nodes += [n("MatMul", [x, p + k], [p + k + "f"]), n("Reshape", [p + k + "f", "hs"], [p + k + "4"]),
                      n("Transpose", [p + k + "4"], [p + k + "h"], perm=[0, 2, 3, 1] if k == "k" else [0, 2, 1, 3])]
        nodes += [n("MatMul", [p + "qh", p + "kh"], [p + "s"]), n("Mul", [p + "s", "scale"], [p + "ss"]),
                  n("Softmax", [p + "ss"], [p + "pr"], axis=-1), n("MatMul", [p + "pr", p + "vh"], [p + "c"]),
                  n("Transpose", [p + "c"], [p + "ct"], perm=[0, 2, 1, 3]),
                  n("Reshape", [p + "ct", "ms"], [p + "cm"]), n("MatMul", [p + "cm", p + "o"], [p + "a"]),
                  n("Add", [x, p + "a"], [p + "r1"]),
                  n("LayerNormalization", [p + "r1", p + "g1", p + "b1"], [p + "n1"], axis=-1),
                  n("MatMul", [p + "n1", p + "up"], [p + "u"]), n("Gelu", [p + "u"], [p + "g"], domain=""),
                  n("MatMul", [p + "g", p + "down"], [p + "dn"]), n("Add", [p + "n1", p + "dn"], [p + "r2"]),
                  n("LayerNormalization", [p + "r2", p + "g2", p + "b2"], [p + "out"], axis=-1)]
        x = p + "out"
    nodes.append(n("MatMul", [x, "head"], ["logits"]))
    graph = helper.make_graph(nodes, "transformer",
                              [helper.make_tensor_value_info("ids", TensorProto.INT64, ["batch", "seq"])],
                              [helper.make_tensor_value_info("logits", TensorProto.FLOAT,
                                                             ["batch", "seq", vocab])], inits)
    return _save(graph, path, opset=20)


@dataclass(frozen=True)
class Case:
    name: str
    build: Callable[[Path], Path]
    workloads: tuple[Workload, ...]
    quick: bool = False


def _b(*batches: int, **kw: object) -> tuple[Workload, ...]:
    return tuple(Workload(batch=b, **kw) for b in batches)  # type: ignore[arg-type]


def cases() -> list[Case]:
    return [
        Case("mlp-1k", lambda p: om.mlp(p, hidden=1024, layers=6, in_features=1024), _b(1, 256, 4096), True),
        Case("mlp-4k", lambda p: om.mlp(p, hidden=4096, layers=4, in_features=4096), _b(1, 64, 1024)),
        Case("mlp-8k", lambda p: om.mlp(p, hidden=8192, layers=2, in_features=2048), _b(1, 512)),
        Case("const-mlp-2k", lambda p: om.constant_mlp(p, hidden=2048, layers=4), _b(1, 2048), True),
        Case("fp16-mlp-2k", lambda p: om.fp16_mlp(p, hidden=2048, layers=4, in_features=1024), _b(1, 1024), True),
        Case("ext-mlp-2k", lambda p: om.external_mlp(p, hidden=2048, layers=5), _b(1, 2048), True),
        Case("shared-w", lambda p: om.shared_initializer(p, width=3072), _b(1, 1024)),
        Case("cnn-small", lambda p: om.cnn(p, channels=32), _b(1, 8, 32, image_size=224), True),
        Case("vgg-w32", lambda p: vgg(p, width=32), _b(1, 4, 16), True),
        Case("vgg-w64", lambda p: vgg(p, width=64, blocks=5), _b(1, 8)),
        Case("attn-block-1k", lambda p: om.tiny_transformer_block(p, d_model=1024, n_heads=16, d_ff=4096),
             _b(1, 8, seq_len=512), True),
        Case("transformer-512x4", lambda p: transformer(p), _b(1, 8, 32, seq_len=256), True),
        Case("transformer-1k x6", lambda p: transformer(p, d=1024, layers=6, vocab=32000, heads=16),
             _b(1, 4, seq_len=512)),
        Case("lstm-1k", lambda p: rnn(p, hidden=1024, inp=512), _b(1, 32, seq_len=256), True),
        Case("gru-512", lambda p: rnn(p, op="GRU", hidden=512, layers=3), _b(4, 64, seq_len=512)),
        Case("if-loop-1k", lambda p: om.control_flow(p, width=1024),
             tuple(Workload(batch=b, input_shapes={"n": ()}) for b in (1, 2048))),
    ]


def torch_cases() -> list[Case]:
    """Models exported by torch (bench/torch_models.py); empty when torch is not installed."""
    try:
        import torch_models as tm
    except ImportError:
        return []
    img = {"image_size": 224}
    return [
        Case("t-resnet18", tm.resnet18, _b(1, 8, 32, **img), True),
        Case("t-mobilenet_v2", tm.mobilenet_v2, _b(1, 16, **img) + _b(4, image_size=320)),
        Case("t-unet", tm.unet, _b(1, 4, image_size=256) + _b(2, image_size=384), True),
        Case("t-vit_small", tm.vit_small, _b(1, 8, 32)),
        Case("t-vit_small fp16", lambda p: tm.vit_small(p, half=True), _b(1, 8)),
        Case("t-bert6", tm.bert, _b(1, 8, seq_len=128) + _b(4, seq_len=512), True),
        Case("t-bert6 fp16", lambda p: tm.bert(p, half=True), _b(1, seq_len=128) + _b(4, seq_len=512)),
        Case("t-gpt2", tm.gpt2, _b(1, seq_len=128) + _b(4, seq_len=256) + _b(1, seq_len=1024)),
        Case("t-lstm_lm", tm.lstm_lm, _b(1, 16, seq_len=256), True),
    ]


def feeds_for(path: Path, workload: Workload) -> tuple[dict[str, list[int]], dict[str, str]]:
    """Concrete input shapes (as the estimator resolved them) and numpy dtypes for the measurer."""
    skeleton = _skeleton(str(path))
    ins = resolve_inputs(skeleton, workload, str(path))
    dtypes = {}
    for v in skeleton.graph.input:
        if v.name in ins.shapes:
            elem = v.type.tensor_type.elem_type
            dtypes[v.name] = _NP.get(helper.tensor_dtype_to_np_dtype(elem).name, "float32")
    return {k: list(v) for k, v in ins.shapes.items()}, dtypes


def naive(path: Path, workload: Workload, weight_bytes: int) -> int:
    """'Sum every tensor' (weights + every activation), what graph-summing tools report."""
    skeleton = _skeleton(str(path))
    ins = resolve_inputs(skeleton, workload, str(path))
    inferred, _ = infer_shapes(skeleton, ins.shapes, str(path))
    return weight_bytes + graph_memory(inferred, count_inputs=True).sum_bytes


REPEATS = 2  # NOTE: the same case measured twice varies by up to ~±15 % (heap reuse depends on timing)


def _measure(path: Path, shapes: dict[str, list[int]], dtypes: dict[str, str]) -> dict[str, object]:
    """One measurement in a fresh child process (bench/ort_measure.py)."""
    proc = subprocess.run([sys.executable, str(ROOT / "bench" / "ort_measure.py"), str(path),
                           json.dumps(shapes), "--dtypes", json.dumps(dtypes)],
                          capture_output=True, text=True, check=False)
    if not proc.stdout.strip():
        return {"error": proc.stderr.strip()[-200:]}
    out: dict[str, object] = json.loads(proc.stdout.strip().splitlines()[-1])
    return out


def run(quick: bool, use_torch: bool, only: str | None) -> int:
    hw = HardwareProfile(name="bench", source="probe", kind="this-machine", memory_total_bytes=24 * 1024 * MIB)
    rows: list[tuple[float, bool]] = []
    ratios: list[tuple[float, float]] = []  # (min, max) measured / predicted per case
    print(f"{'model':20s} {'workload':18s} {'weights':>8s} {'measured':>9s} {'predicted':>9s} {'err':>7s}"
          f" {'low..high':>15s} in  {'w-only':>7s} {'sum-all':>7s}  noise")
    with tempfile.TemporaryDirectory(prefix="advisor-bench-") as tmp:
        for case in cases() + (torch_cases() if use_torch else []):
            if (quick and not case.quick) or (only and not case.name.startswith(only)):
                continue
            path = case.build(Path(tmp) / f"{case.name.replace(' ', '_')}.onnx")
            profile = read_onnx(path)
            for wl in case.workloads:
                shapes, dtypes = feeds_for(path, wl)
                est = estimate(profile, wl, "onnxruntime-cpu", hw)
                label = next((f"{k[:5]}={'x'.join(map(str, v))}" for k, v in shapes.items() if v), "")[:18]
                results = [_measure(path, shapes, dtypes) for _ in range(REPEATS)]
                failed = [r["error"] for r in results if "error" in r]
                if failed:
                    print(f"{case.name:20s} {label:18s} MEASUREMENT FAILED: {failed[0]}")
                    continue
                peaks = [int(r["peak_bytes"]) for r in results]
                meas = int(statistics.mean(peaks))
                err = (est.peak_bytes - meas) / meas
                inside = all(est.low_bytes <= m <= est.high_bytes for m in peaks)
                spread = (max(peaks) - min(peaks)) / meas
                rows.append((err, inside))
                ratios.append((min(peaks) / est.peak_bytes, max(peaks) / est.peak_bytes))
                w_only = (profile.weight_bytes - meas) / meas
                sum_all = (naive(path, wl, profile.weight_bytes) - meas) / meas
                print(f"{case.name:20s} {label:18s} {profile.weight_bytes / MIB:7.1f}M {meas / MIB:8.1f}M "
                      f"{est.peak_bytes / MIB:8.1f}M {err:+7.1%} "
                      f"{est.low_bytes / MIB:7.0f}..{est.high_bytes / MIB:<7.0f}"
                      f" {'yes' if inside else 'NO '} {w_only:+7.0%} {sum_all:+7.0%}  ±{spread / 2:.0%}", flush=True)
    errs = [abs(e) for e, _ in rows]
    print()
    print(f"cases: {len(rows)}   median |error| {statistics.median(errs):.1%}   max |error| {max(errs):.1%}   "
          f"inside [low, high]: {sum(i for _, i in rows)}/{len(rows)}")
    if ratios:
        from real_accuracy import fit_ratios

        lo, hi = fit_ratios([a for a, _ in ratios], [b for _, b in ratios])
        print(f"range factors this set implies (95 % of its cases inside): low x{lo:.3f}, high x{hi:.3f} "
              "(the CPU range takes the wider of these and bench/real_accuracy.py --fit-range's)")
    return 0 if rows else 1


def main() -> int:
    ap = argparse.ArgumentParser(description="ONNX peak-memory estimator vs onnxruntime CPU, measured")
    ap.add_argument("--quick", action="store_true", help="a subset of the models")
    ap.add_argument("--no-torch", action="store_true",
                    help="skip the torch-exported models (they need torch; skipped anyway without it)")
    ap.add_argument("--only", help="only the cases whose name starts with this")
    args = ap.parse_args()
    t0 = time.monotonic()
    import onnxruntime

    print(f"onnxruntime {onnxruntime.__version__}, onnx {onnx.__version__}, python {sys.version.split()[0]}")
    print("baseline = VmRSS after `import onnxruntime, numpy` + building the input arrays; "
          "measured = VmHWM after session + 2 runs − baseline;\n"
          f"each case measured {REPEATS}× in fresh processes: mean shown, 'in' = every one inside [low, high]\n")
    rc = run(args.quick, not args.no_torch, args.only)
    print(f"\nwall time {time.monotonic() - t0:.0f} s")
    return rc


if __name__ == "__main__":
    sys.exit(main())
