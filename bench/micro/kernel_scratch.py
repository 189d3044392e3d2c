"""Measure the working buffers of onnxruntime CPU kernels on one-op micro-models, against ort_kernels.

    .venv/bin/python bench/micro/kernel_scratch.py [--only SUBSTR] [--default-arena]

Each case builds a one-op model (bench/micro/micro_models.py) and measures it in a fresh child process
(bench/micro/_child.py, the method of bench/ort_measure.py: VmHWM above the baseline after the session
and 2 runs). By default the arena and the memory pattern are OFF, so every tensor and buffer is its own
malloc and the peak is the plain sum of what is alive together:

    residual = peak - peak(Relu with the case's output shape) - weights

The reference Relu (same threads / level / runs) has the same session cost and the same output
allocation (and the same glibc effect of freeing run 1's output: a freed mmap-ed block raises the
mmap threshold, so run 2's output comes from fresh heap pages while run 1's freed chunk stays
resident: up to 2x the output for outputs < 32 MiB); ``weights`` = initializer bytes (once).
Columns ``r1``/``r2``: residual with 1 run and with 2 runs (the ort_measure.py method).
The residual is what the graph tensors do not explain: kernel scratch (predicted by
``advisor.estimator.mechanisms.ort_kernels.cpu_kernel_scratch_bytes``) or, for NCHWc cases, the reordered
activations (predicted with ``nchwc_activation_bytes``). Prints one line a case: measured residual vs predicted, MiB.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from advisor.estimator.mechanisms.ort_kernels import (  # noqa: E402
    cpu_kernel_scratch_bytes,
    nchwc_activation_bytes,
    nchwc_conv_applies,
)

CHILD = Path(__file__).resolve().parent / "_child.py"
MIB = 1024 * 1024


def child(spec: dict[str, Any]) -> dict[str, Any]:
    out = subprocess.run([sys.executable, str(CHILD), json.dumps(spec)], capture_output=True, text=True, check=False)
    line = out.stdout.strip().splitlines()[-1] if out.stdout.strip() else json.dumps({"error": out.stderr[-400:]})
    return dict(json.loads(line))


def conv_out(h: int, k: int, s: int, pad: int) -> int:
    return (h + 2 * pad - k) // s + 1


def predict(op: str, p: dict[str, Any], threads: int, block: int | None) -> int:
    """Predicted residual (bytes) of one case."""
    if op in ("Conv", "ConvRelu"):
        n, c, h, m = p.get("N", 1), p["C"], p["H"], p["M"]
        k, s, g = p.get("k", 3), p.get("stride", 1), p.get("group", 1)
        pad = p.get("pad", k // 2)
        ho = conv_out(h, k, s, pad)
        attrs: dict[str, object] = {"kernel_shape": [k, k], "strides": [s, s], "pads": [pad] * 4, "group": g}
        scratch = cpu_kernel_scratch_bytes(
            "Conv", attrs, [(n, c, h, h), (m, c // g, k, k)], [(n, m, ho, ho)], 4, threads=threads, nchwc_block=block
        )
        if nchwc_conv_applies(in_channels_per_group=c // g, out_channels=m, group=g, kernel_rank=2, block=block):
            assert block is not None
            y = n * m * ho * ho * 4
            y_pad = nchwc_activation_bytes((n, m, ho, ho), 4, block)
            x_re = nchwc_activation_bytes((n, c, h, h), 4, block) if c >= block else 0
            return max(x_re + y_pad, y_pad + y) - y + scratch
        return scratch
    if op == "ConvTranspose":
        n, c, h, m, k = p.get("N", 1), p["C"], p["H"], p["M"], p.get("k", 4)
        return cpu_kernel_scratch_bytes("ConvTranspose", {"kernel_shape": [k, k]}, [(n, c, h, h), (c, m, k, k)],
                                        [None], 4, threads=threads, nchwc_block=block)
    if op in ("Softmax", "LogSoftmax"):
        return cpu_kernel_scratch_bytes(op, {"axis": p.get("axis", -1), "opset": 17}, [tuple(p["shape"])], [None], 4,
                                        threads=threads, nchwc_block=block)
    if op in ("MaxPool", "AveragePool") and block and p["shape"][1] % block == 0:
        n, c, h = p["shape"][0], p["shape"][1], p["shape"][2]
        ho = conv_out(h, p.get("k", 3), p.get("stride", 2), p.get("k", 3) // 2)
        # ReorderInput copy + NCHWc output alive at the pool node; NCHWc output + y at ReorderOutput.
        x, y = n * c * h * h * 4, n * c * ho * ho * 4
        return max(x + y, 2 * y) - y
    return 0


CONV = [
    # name, params, level, threads
    ("conv_b1_3x3_mlas", {"C": 32, "H": 112, "M": 64}, "extended", 2),
    ("conv_b1_1x1_mlas", {"C": 64, "H": 112, "M": 64, "k": 1, "pad": 0}, "extended", 2),
    ("conv_b1_expand_mlas", {"C": 256, "H": 14, "M": 512}, "extended", 2),
    ("conv_b4_3x3_t1", {"N": 4, "C": 64, "H": 112, "M": 64}, "extended", 1),
    ("conv_b4_3x3_t2", {"N": 4, "C": 64, "H": 112, "M": 64}, "extended", 2),
    ("conv_b4_3x3_t4", {"N": 4, "C": 64, "H": 112, "M": 64}, "extended", 4),
    ("conv_b4_3x3_t0(default)", {"N": 4, "C": 64, "H": 112, "M": 64}, "extended", 0),
    ("conv_b4_7x7s2_t2", {"N": 4, "C": 16, "H": 224, "M": 32, "k": 7, "stride": 2}, "extended", 2),
    ("conv_b4_1x1_t2", {"N": 4, "C": 64, "H": 112, "M": 64, "k": 1, "pad": 0}, "extended", 2),
    ("conv_b4_1x1s2_t2", {"N": 4, "C": 64, "H": 112, "M": 64, "k": 1, "pad": 0, "stride": 2}, "extended", 2),
    ("conv_g2_3x3_t1", {"C": 64, "H": 112, "M": 64, "group": 2}, "extended", 1),
    ("conv_g2_3x3_t2", {"C": 64, "H": 112, "M": 64, "group": 2}, "extended", 2),
    ("conv_dw_3x3_t2_mlas", {"C": 64, "H": 112, "M": 64, "group": 64}, "extended", 2),
    ("conv_b4_dw_3x3_t2_mlas", {"N": 4, "C": 64, "H": 112, "M": 64, "group": 64}, "extended", 2),
    ("conv_b4_c20_all_t2", {"N": 4, "C": 20, "H": 112, "M": 32}, "all", 2),
    ("nchwc_b1_3x3", {"C": 32, "H": 112, "M": 64}, "all", 2),
    ("nchwc_b4_3x3_t2", {"N": 4, "C": 64, "H": 112, "M": 64}, "all", 2),
    ("nchwc_b4_dw_t2", {"N": 4, "C": 64, "H": 112, "M": 64, "group": 64}, "all", 2),
    ("nchwc_m36_pad", {"N": 4, "C": 32, "H": 112, "M": 36}, "all", 2),
    ("nchwc_c3_m36_pad", {"N": 4, "C": 3, "H": 224, "M": 36, "stride": 2}, "all", 2),
]
OTHER = [
    ("convT_4x4s2", "ConvTranspose", {"C": 64, "H": 80, "M": 32}, "all", 2),
    ("convT_4x4s2_b2_t1", "ConvTranspose", {"N": 2, "C": 64, "H": 80, "M": 32}, "all", 1),
    ("softmax_last", "Softmax", {"shape": [2, 128, 128, 128], "axis": -1}, "all", 2),
    ("softmax_axis1", "Softmax", {"shape": [2, 128, 128, 128], "axis": 1}, "all", 2),
    ("logsoftmax_axis2", "LogSoftmax", {"shape": [2, 128, 128, 128], "axis": 2}, "all", 2),
    ("maxpool_ext", "MaxPool", {"shape": [4, 64, 160, 160]}, "extended", 2),
    ("maxpool_nchwc", "MaxPool", {"shape": [4, 64, 160, 160]}, "all", 2),
    ("avgpool_nchwc", "AveragePool", {"shape": [4, 64, 160, 160]}, "all", 2),
    ("resize_nearest", "Resize", {"shape": [4, 64, 80, 80], "mode": "nearest"}, "all", 2),
    ("resize_linear", "Resize", {"shape": [4, 64, 80, 80], "mode": "linear"}, "all", 2),
    ("matmul_bcastB", "MatMul", {"a": [8, 1024, 256], "b": [256, 1024]}, "all", 2),
    ("matmul_bcastA", "MatMul", {"a": [1024, 256], "b": [8, 256, 1024]}, "all", 2),
    ("matmul_4d", "MatMul", {"a": [8, 8, 512, 64], "b": [8, 8, 64, 512]}, "all", 2),
    ("matmul_bcast_4d_3d", "MatMul", {"a": [8, 8, 512, 64], "b": [8, 64, 512]}, "all", 2),
    ("gemm", "Gemm", {"M": 4096, "K": 512, "N": 512}, "all", 2),
    ("layernorm", "LayerNormalization", {"shape": [8, 1024, 768]}, "all", 2),
    ("einsum_bmm", "Einsum", {"equation": "bij,bjk->bik", "shapes": [[8, 1024, 256], [8, 256, 1024]]}, "all", 2),
    ("einsum_attn", "Einsum", {"equation": "bhid,bhjd->bhij", "shapes": [[2, 8, 512, 64], [2, 8, 512, 64]]}, "all", 2),
    ("einsum_perm", "Einsum", {"equation": "bchw->bhwc", "shapes": [[4, 64, 160, 160]]}, "all", 2),
]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    ap.add_argument("--only", default="")
    ap.add_argument("--default-arena", action="store_true", help="arena + memory pattern ON (the default session)")
    ap.add_argument("--block", type=int, default=8, help="NCHWc block of this CPU (8 AVX2, 16 AVX-512F)")
    ap.add_argument("--json", default="")
    args = ap.parse_args(argv)
    mem = {"arena": args.default_arena, "pattern": args.default_arena}
    cases = [(n, "Conv", p, lv, t) for n, p, lv, t in CONV] + OTHER
    rows = []
    print(f"{'case':28s} {'peak2':>8s} {'out':>7s} {'wts':>6s} {'r1':>8s} {'r2':>8s} {'pred':>8s}  MiB")
    for name, op, p, level, threads in cases:
        if args.only and args.only not in name:
            continue
        resid = {}
        r: dict[str, Any] = {}
        for runs in (1, 2):
            r = child({"op": op, "params": p, "threads": threads, "level": level, "runs": runs, **mem})
            if "error" in r:
                break
            ref = child({"op": "Relu", "params": {"shape": r["output_shapes"][0]}, "threads": threads,
                         "level": level, "runs": runs, **mem})
            resid[runs] = int(r["peak_bytes"]) - int(ref["peak_bytes"]) - int(r["weight_bytes"])
        if "error" in r:
            print(name, r["error"])
            continue
        eff_threads = threads if threads else 2  # default = physical cores (2 on the bench machine)
        block = args.block if level == "all" else None
        pred = predict(op, p, eff_threads, block)
        rows.append({"case": name, "op": op, "params": p, "level": level, "threads": threads, **r,
                     "residual_1run_bytes": resid[1], "residual_2runs_bytes": resid[2], "predicted_bytes": pred})
        print(f"{name:28s} {r['peak_bytes'] / MIB:8.2f} {r['output_bytes'] / MIB:7.2f} {r['weight_bytes'] / MIB:6.2f} "
              f"{resid[1] / MIB:8.2f} {resid[2] / MIB:8.2f} {pred / MIB:8.2f}", flush=True)
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
