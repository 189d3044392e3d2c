"""Child process of kernel_scratch.py: build one micro-model, measure one session in THIS process.

    python bench/micro/_child.py '<json spec>'

Method as bench/ort_measure.py: model bytes and random feeds are built BEFORE the baseline; baseline = VmRSS,
``clear_refs`` resets VmHWM, then session + ``runs`` runs; ``peak_bytes`` = VmHWM - baseline. Prints one JSON line.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from micro_models import build
from proc_memory import reply, reset_hwm, vm_status


def measure(spec: dict[str, Any]) -> dict[str, Any]:
    import numpy as np
    import onnxruntime as ort

    model, feeds_shapes = build(spec["op"], spec.get("params", {}))
    data = model.SerializeToString()
    rng = np.random.default_rng(0)
    feeds = {k: rng.standard_normal(v).astype(np.float32) for k, v in feeds_shapes.items()}
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = int(spec.get("threads", 0))
    opts.inter_op_num_threads = 1
    opts.enable_cpu_mem_arena = bool(spec.get("arena", True))
    opts.enable_mem_pattern = bool(spec.get("pattern", True))
    level = spec.get("level", "all")
    opts.graph_optimization_level = {
        "disable": ort.GraphOptimizationLevel.ORT_DISABLE_ALL,
        "basic": ort.GraphOptimizationLevel.ORT_ENABLE_BASIC,
        "extended": ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED,
        "all": ort.GraphOptimizationLevel.ORT_ENABLE_ALL,
    }[level]
    if spec.get("dump"):
        opts.optimized_model_filepath = spec["dump"]
    base = vm_status()
    reset_hwm()
    sess = ort.InferenceSession(data, sess_options=opts, providers=["CPUExecutionProvider"])
    loaded = vm_status()
    out_bytes = 0
    out_shapes: list[list[int]] = []
    for _ in range(int(spec.get("runs", 2))):
        outs = sess.run(None, feeds)
        out_bytes = sum(int(o.nbytes) for o in outs)
        out_shapes = [list(o.shape) for o in outs]
        del outs
    ran = vm_status()
    weight_bytes = sum(int(np.prod(t.dims)) * 4 for t in model.graph.initializer)
    return {
        "load_peak_bytes": loaded["VmHWM"] - base["VmRSS"],
        "peak_bytes": ran["VmHWM"] - base["VmRSS"],
        "run_rss_bytes": ran["VmRSS"] - base["VmRSS"],
        "output_bytes": out_bytes,
        "output_shapes": out_shapes,
        "input_bytes": sum(int(a.nbytes) for a in feeds.values()),
        "weight_bytes": weight_bytes,
    }


if __name__ == "__main__":
    sys.exit(reply(lambda: measure(json.loads(sys.argv[1]))))
