"""How fast, and in how little memory, the ONNX reader profiles a big model with embedded weights.

Builds (once) an ONNX MLP of at least ``--size-mb`` MB whose weights are embedded ``raw_data``,
streaming each weight to disk in chunks so the builder never holds the model in memory. Then, each
in a fresh subprocess, measures wall time and peak resident memory (VmHWM from /proc/self/status,
minus the value after imports) of:

(a) ``advisor.readers.onnx_reader.read_onnx``;
(b) ``advisor.readers.onnx_reader.load_skeleton``;
(c) ``onnx.load`` of the same file (the baseline the reader avoids: ~2× the file size).

Usage: ``.venv/bin/python bench/read_speed.py [--size-mb 600] [--out bench/out] [--repeat 3]``
"""

from __future__ import annotations

import argparse
import json
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
from onnx import TensorProto, helper

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from advisor.readers.onnx_wire import LEN, encode_varint  # noqa: E402

HIDDEN = 4096  # each weight is HIDDEN × HIDDEN float32 = 64 MiB
CHUNK_ROWS = 256  # rows written per chunk: 4 MiB


def build(path: Path, size_mb: int) -> Path:
    """Write an MLP of ≥ ``size_mb`` MB with embedded weights, one chunk of one weight at a time.

    The graph is serialized by onnx without weight data; each initializer is then written as a
    GraphProto field 5 (TensorProto: dims, data_type, name, then raw_data = field 9 streamed).
    Protobuf accepts fields in any order, so this is a valid ModelProto that ``onnx.load`` reads.
    """
    layers = math.ceil(size_mb * 1_000_000 / (HIDDEN * HIDDEN * 4))
    nodes, x = [], "x"
    for i in range(layers):
        nodes.append(helper.make_node("MatMul", [x, f"layers.{i}.weight"], [f"h{i}"]))
        x = f"h{i}"
    graph = helper.make_graph(nodes, "read_speed",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", HIDDEN])],
                              [helper.make_tensor_value_info(x, TensorProto.FLOAT, ["batch", HIDDEN])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)],
                              producer_name="bench/read_speed.py")
    model.ir_version = 10
    small_graph = graph.SerializeToString()
    data_bytes = HIDDEN * HIDDEN * 4
    headers = [TensorProto(name=f"layers.{i}.weight", data_type=TensorProto.FLOAT,
                           dims=[HIDDEN, HIDDEN]).SerializeToString() for i in range(layers)]
    raw_field = encode_varint(9 << 3 | LEN) + encode_varint(data_bytes)
    tensor_lens = [len(h) + len(raw_field) + data_bytes for h in headers]
    graph_len = len(small_graph) + sum(len(encode_varint(5 << 3 | LEN) + encode_varint(n)) + n
                                       for n in tensor_lens)
    model.ClearField("graph")
    rng = np.random.default_rng(0)
    with path.open("wb") as out:
        out.write(model.SerializeToString())
        out.write(encode_varint(7 << 3 | LEN) + encode_varint(graph_len) + small_graph)
        for header, n in zip(headers, tensor_lens, strict=True):
            out.write(encode_varint(5 << 3 | LEN) + encode_varint(n) + header + raw_field)
            for _ in range(HIDDEN // CHUNK_ROWS):
                out.write((rng.standard_normal((CHUNK_ROWS, HIDDEN), dtype=np.float32) * 0.02).tobytes())
    return path


# Runs in a fresh interpreter: imports, reset and read VmHWM, the operation, VmHWM again.
_PROBE = """
import json, sys, time
sys.path.insert(0, sys.argv[3])
from pathlib import Path
import onnx
from advisor.readers.onnx_reader import load_skeleton, read_onnx

def status(key):
    for line in open("/proc/self/status"):
        if line.startswith(key + ":"):
            return int(line.split()[1]) * 1024
    raise RuntimeError("no " + key)

op, path = sys.argv[1], Path(sys.argv[2])
try:  # reset VmHWM to the current RSS (Linux >= 4.0, man 5 proc: /proc/pid/clear_refs)
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")
except OSError:
    pass
base = status("VmHWM")
t0 = time.perf_counter()
if op == "read_onnx":
    result = read_onnx(path).weight_bytes
elif op == "load_skeleton":
    result = load_skeleton(path).ByteSize()
else:
    result = onnx.load(str(path)).ByteSize()
seconds = time.perf_counter() - t0
print(json.dumps({"seconds": seconds, "peak_bytes": status("VmHWM") - base, "result": result}))
"""


def measure(op: str, path: Path) -> dict[str, float]:
    """Run one operation in a fresh interpreter; return its time, peak RSS above baseline, result."""
    proc = subprocess.run([sys.executable, "-c", _PROBE, op, str(path), str(REPO)],
                          capture_output=True, text=True, check=True)
    result: dict[str, float] = json.loads(proc.stdout.strip().splitlines()[-1])
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-mb", type=int, default=600, help="model size in MB (default 600)")
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "out", help="folder for the model")
    parser.add_argument("--repeat", type=int, default=3, help="runs per operation; best time is shown")
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / f"embedded_{args.size_mb}mb.onnx"
    if not path.exists():
        print(f"building {path} ...", flush=True)
        build(path, args.size_mb)
    size = path.stat().st_size
    print(f"model: {path} ({size / 1e6:.0f} MB, weights embedded)")
    print(f"{'operation':<14} {'best ms':>9} {'peak RSS MB':>12} {'peak / file':>12}")
    for op in ("read_onnx", "load_skeleton", "onnx.load"):
        runs = [measure(op, path) for _ in range(args.repeat)]
        best = min(r["seconds"] for r in runs)
        peak = max(r["peak_bytes"] for r in runs)
        print(f"{op:<14} {best * 1e3:>9.1f} {peak / 1e6:>12.1f} {peak / size:>11.1%}")
        if op == "read_onnx":
            layers = math.ceil(args.size_mb * 1_000_000 / (HIDDEN * HIDDEN * 4))
            assert runs[0]["result"] == layers * HIDDEN * HIDDEN * 4, "read_onnx miscounted the weights"
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
