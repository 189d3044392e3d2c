"""Measure the real device-memory peak of one onnxruntime-cuda session (needs an NVIDIA GPU).

    python bench/gpu_measure.py MODEL.onnx '{"x": [8, 3, 224, 224]}' [--dtypes JSON] [--runs 2]

Same protocol as ``bench/ort_measure.py``, on the GPU, in THIS (fresh) process:

1. ``import onnxruntime, numpy`` and ``pynvml`` (nvidia-ml-py); build the input arrays on the host.
2. **Baseline** = this process's device memory per NVML (``nvmlDeviceGetComputeRunningProcesses``:
   ``usedGpuMemory``, what nvidia-smi shows) — normally 0: no CUDA context exists yet, so the
   context is part of what is measured, as the estimator's ``peak_bytes`` defines it.
3. Create ``InferenceSession(MODEL, providers=["CUDAExecutionProvider"])`` (defaults: BFC arena,
   kNextPowerOfTwo, cuDNN EXHAUSTIVE search), run ``--runs`` times; a sampler thread polls NVML every
   5 ms throughout, because the device has no high-water mark of its own.
4. Print one JSON line: ``peak_bytes`` (device, max sample − baseline), ``host_peak_bytes``
   (VmHWM − baseline RSS), and the parts.

Exits with code 2 and a clear message when there is no GPU, no NVIDIA driver, no nvidia-ml-py,
or an onnxruntime without the CUDA provider.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import threading
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from proc_memory import reset_hwm, vm_status


def _no_gpu(reason: str) -> int:
    print(json.dumps({"error": f"no GPU measurement: {reason}"}))
    print(f"gpu_measure: {reason}", file=sys.stderr)
    return 2


def _process_bytes(nvml: Any, handle: Any) -> int:
    pid = os.getpid()
    for fn in ("nvmlDeviceGetComputeRunningProcesses", "nvmlDeviceGetComputeRunningProcesses_v3"):
        getter = getattr(nvml, fn, None)
        if getter is None:
            continue
        try:
            for p in getter(handle):
                if p.pid == pid and p.usedGpuMemory is not None:
                    return int(p.usedGpuMemory)
            return 0
        except nvml.NVMLError:
            continue
    return 0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("model")
    ap.add_argument("shapes", help='JSON {"input": [d0, d1, ...]}')
    ap.add_argument("--dtypes", default="{}")
    ap.add_argument("--runs", type=int, default=2)
    ap.add_argument("--device", type=int, default=0)
    args = ap.parse_args(argv)
    try:
        import pynvml as nvml
    except ImportError:
        return _no_gpu("nvidia-ml-py (pynvml) is not installed")
    try:
        nvml.nvmlInit()
        if nvml.nvmlDeviceGetCount() <= args.device:
            return _no_gpu(f"no NVIDIA GPU with index {args.device}")
        handle = nvml.nvmlDeviceGetHandleByIndex(args.device)
    except nvml.NVMLError as exc:
        return _no_gpu(f"NVML unavailable ({exc}); no NVIDIA GPU or driver on this machine")
    import numpy as np
    import onnxruntime as ort

    if "CUDAExecutionProvider" not in ort.get_available_providers():
        return _no_gpu(f"onnxruntime {ort.__version__} has no CUDAExecutionProvider (install onnxruntime-gpu)")
    rng = np.random.default_rng(0)
    dtypes = json.loads(args.dtypes)
    feeds = {}
    for name, shape in json.loads(args.shapes).items():
        dt = np.dtype(dtypes.get(name, "float32"))
        feeds[name] = (rng.standard_normal(shape).astype(dt) if dt.kind == "f"
                       else rng.integers(0, 2, size=shape).astype(dt))
    base_dev = _process_bytes(nvml, handle)
    base = vm_status()
    reset_hwm()
    peak = [base_dev]
    stop = threading.Event()

    def sample() -> None:
        while not stop.is_set():
            peak[0] = max(peak[0], _process_bytes(nvml, handle))
            time.sleep(0.005)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    try:
        sess = ort.InferenceSession(args.model, providers=[("CUDAExecutionProvider", {"device_id": args.device})])
        loaded_dev = _process_bytes(nvml, handle)
        for _ in range(max(1, args.runs)):
            sess.run(None, feeds)
    finally:
        stop.set()
        sampler.join()
    end_dev = _process_bytes(nvml, handle)
    peak[0] = max(peak[0], end_dev)
    host = vm_status()
    print(json.dumps({
        "baseline_device_bytes": base_dev, "load_device_bytes": loaded_dev - base_dev,
        "end_device_bytes": end_dev - base_dev, "peak_bytes": peak[0] - base_dev,
        "host_peak_bytes": host["VmHWM"] - base["VmRSS"], "ort_version": ort.__version__,
        "gpu": str(nvml.nvmlDeviceGetName(handle)),
    }))
    return 0


if __name__ == "__main__":
    sys.exit(main())
