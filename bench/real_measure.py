"""Measure the real-model accuracy set (bench/real_models.py) with onnxruntime on CPU.

    python bench/real_measure.py                       # every case not yet in the results file
    python bench/real_measure.py --only ppocrv4-det    # one model (repeatable flag)
    python bench/real_measure.py --repeats 3 --force   # re-measure cases already there

Each case is measured ``--repeats`` times (default 3), each time in a fresh
``python bench/ort_measure.py MODEL SHAPES --dtypes DTYPES`` child (see that file for the method).
Results are merged into bench/results/real_models_measured.json after every case, so a partial run is
usable; a failing measurement is recorded with its error.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from importlib import metadata
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))

from real_models import MODELS, SPLIT, RealModel, Shapes, fetch  # noqa: E402

RESULTS = ROOT / "bench" / "results" / "real_models_measured.json"
CHILD = ROOT / "bench" / "ort_measure.py"
TIMEOUT_S = 300


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def about() -> str:
    libc, libc_ver = platform.libc_ver()
    return (
        "Measured peak memory of onnxruntime CPU sessions on real trained public ONNX models shipped inside "
        "PyPI wheels (bench/real_models.py). Each measurement in a fresh process (bench/ort_measure.py): "
        "baseline = VmRSS after importing onnxruntime and numpy and building the random inputs; peak = VmHWM "
        "(reset via /proc/self/clear_refs) after creating an InferenceSession with default options (CPU EP, "
        "ORT_ENABLE_ALL, arena on, memory pattern on) and running it twice; peaks_bytes = peak - baseline, one "
        "per repeat; load_peak_bytes = the same after session creation only. "
        f"Machine: {_cpu_model()}, {os.cpu_count()} cores, {platform.system()} {platform.release()}, "
        f"{libc} {libc_ver}, Python {platform.python_version()}, onnxruntime {metadata.version('onnxruntime')}, "
        f"numpy {metadata.version('numpy')}, measured {dt.date.today().isoformat()}."
    )


def _key(model: str, inputs: dict[str, Any]) -> str:
    return json.dumps([model, {k: list(v) for k, v in inputs.items()}], sort_keys=True)


def load() -> dict[str, Any]:
    if RESULTS.exists():
        data: dict[str, Any] = json.loads(RESULTS.read_text())
        return data
    return {"about": "", "cases": []}


def save(data: dict[str, Any]) -> None:
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    tmp = RESULTS.with_suffix(".tmp")
    tmp.write_text(json.dumps(data, indent=1) + "\n")
    tmp.replace(RESULTS)


def measure_once(path: Path, shapes: Shapes, dtypes: dict[str, str]) -> dict[str, Any]:
    cmd = [sys.executable, str(CHILD), str(path), json.dumps({k: list(v) for k, v in shapes.items()}),
           "--dtypes", json.dumps(dtypes)]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=TIMEOUT_S, cwd=ROOT)
    except subprocess.TimeoutExpired:
        return {"error": f"timeout after {TIMEOUT_S} s"}
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("{")]
    if not lines:
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-3:]
        return {"error": f"exit {proc.returncode}: {' | '.join(tail)}"}
    reply: dict[str, Any] = json.loads(lines[-1])
    return reply


def measure_case(model: RealModel, shapes: Shapes, dtypes: dict[str, str], repeats: int) -> dict[str, Any]:
    case: dict[str, Any] = {
        "model": model.name, "family": model.family, "exporter": model.exporter, "split": SPLIT[model.family],
        "inputs": {k: list(v) for k, v in shapes.items()}, "dtypes": dtypes, "source": model.source(),
    }
    try:
        path = fetch(model)
    except Exception as exc:
        case["error"] = f"fetch: {type(exc).__name__}: {exc}"
        return case
    runs = [measure_once(path, shapes, dtypes) for _ in range(repeats)]
    errors = [r["error"] for r in runs if "error" in r]
    good = [r for r in runs if "error" not in r]
    if errors:
        case["error"] = errors[0]
    if good:
        peaks = [int(r["peak_bytes"]) for r in good]
        case.update({
            "peaks_bytes": peaks,
            "median_peak_bytes": int(statistics.median(peaks)),
            "load_peak_bytes": [int(r["load_peak_bytes"]) for r in good],
            "output_bytes": good[0]["output_bytes"],
            "input_bytes": good[0]["input_bytes"],
            "hwm_reset_ok": all(r["hwm_reset_ok"] for r in good),
            "ort_version": good[0]["ort_version"],
            "file_bytes": path.stat().st_size,
        })
    return case


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--only", action="append", help="model name (repeatable); default: all")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--force", action="store_true", help="re-measure cases already in the results file")
    args = ap.parse_args(argv)

    names = {m.name for m in MODELS}
    unknown = set(args.only or []) - names
    if unknown:
        ap.error(f"unknown model(s): {', '.join(sorted(unknown))}")
    data = load()
    data["about"] = about()
    done = {_key(c["model"], c["inputs"]): i for i, c in enumerate(data["cases"])}
    for model in MODELS:
        if args.only and model.name not in args.only:
            continue
        for shapes in model.workloads:
            key = _key(model.name, shapes)
            if key in done and not args.force and "error" not in data["cases"][done[key]]:
                continue
            t0 = time.perf_counter()
            case = measure_case(model, shapes, dict(model.dtypes), args.repeats)
            secs = time.perf_counter() - t0
            if key in done:
                data["cases"][done[key]] = case
            else:
                done[key] = len(data["cases"])
                data["cases"].append(case)
            save(data)
            peaks = case.get("peaks_bytes", [])
            shown = " ".join(f"{p / 2**20:.1f}" for p in peaks)
            err = f"  ERROR {case['error']}" if "error" in case else ""
            print(f"{model.name:28} {json.dumps(case['inputs']):48} peaks MiB [{shown}] {secs:5.1f}s{err}",
                  flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
