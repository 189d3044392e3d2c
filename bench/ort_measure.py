"""Measure the real peak memory of one onnxruntime CPU session, in THIS (fresh) process.

Run as a child process, one per measurement, so nothing from an earlier model stays resident:

    python bench/ort_measure.py MODEL.onnx '{"x": [8, 3, 224, 224]}' [--runs 2]

Method (Linux):

1. ``import onnxruntime, numpy``; build one random array per graph input (the given shapes; the
   element type read from the session is not available yet, so the input types come from the
   ``--dtypes`` JSON, default float32).
2. **Baseline** = ``VmRSS`` now (a bare runtime that has not loaded the model, inputs already
   allocated by the caller). Then ``echo 5 > /proc/self/clear_refs`` resets the kernel's
   high-water mark ``VmHWM`` to the current RSS (Linux >= 4.0, proc(5)).
3. Create ``InferenceSession(MODEL, providers=["CPUExecutionProvider"])`` with default options
   (arena on, memory patterns on, ORT_ENABLE_ALL), record ``VmHWM`` (load peak) and ``VmRSS``.
4. ``session.run`` ``--runs`` times (default 2: the first run sizes the arena, the second uses
   the memory pattern), record ``VmHWM``.
5. Print one JSON line: ``peak_bytes = VmHWM_end - baseline`` and the parts.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from proc_memory import reply, reset_hwm, vm_status

from advisor.measure.child import random_feeds  # the app's own `advisor measure` feeds the same inputs


def measure(model: str, shapes: dict[str, list[int]], dtypes: dict[str, str], runs: int) -> dict[str, Any]:
    import onnxruntime as ort

    feeds = random_feeds(shapes, dtypes)
    base = vm_status()
    reset_hwm()
    after_reset = vm_status()
    opts = ort.SessionOptions()
    sess = ort.InferenceSession(model, sess_options=opts, providers=["CPUExecutionProvider"])
    loaded = vm_status()
    out_bytes = 0
    for _ in range(max(1, runs)):
        outs = sess.run(None, feeds)
        out_bytes = sum(int(getattr(o, "nbytes", 0)) for o in outs)
        del outs
    ran = vm_status()
    return {
        "baseline_rss_bytes": base["VmRSS"],
        "hwm_reset_ok": after_reset["VmHWM"] <= base["VmRSS"] + 4 * 1024 * 1024,
        "load_peak_bytes": loaded["VmHWM"] - base["VmRSS"],
        "load_rss_bytes": loaded["VmRSS"] - base["VmRSS"],
        "run_rss_bytes": ran["VmRSS"] - base["VmRSS"],
        "peak_bytes": ran["VmHWM"] - base["VmRSS"],
        "output_bytes": out_bytes,
        "input_bytes": sum(int(a.nbytes) for a in feeds.values()),
        "ort_version": ort.__version__,
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("model")
    ap.add_argument("shapes", help='JSON {"input": [d0, d1, ...]}')
    ap.add_argument("--dtypes", default="{}", help='JSON {"input": "int64"}; default float32')
    ap.add_argument("--runs", type=int, default=2)
    args = ap.parse_args(argv)
    return reply(lambda: measure(args.model, json.loads(args.shapes), json.loads(args.dtypes), args.runs))


if __name__ == "__main__":
    sys.exit(main())
