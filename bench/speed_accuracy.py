"""Predicted decode/prefill tokens/s against llama.cpp's own measurements.

    python bench/speed_accuracy.py

Two sets, both llama-bench runs (tg = decode tokens/s of 128 or 32 new tokens on an empty
context; pp = prompt tokens/s over 512 or 128 tokens):

* ``bench/data/llamacpp_published.json``: the tables llama.cpp's maintainers and users publish in
  the repository's discussions (Apple silicon: LLaMA-7B F16/Q8_0/Q4_0 per chip; CUDA GPUs), each
  row with its source URL. The chip's GPU is matched in ``resources/throughput.json`` by name.
* ``bench/results/llamacpp_speed_here.json``: llama-bench on this machine (CPU, built from source;
  ``bench/llamacpp_speed_measure.py``), on llama-architecture GGUF files of random weights,
  compared with the measured-host figures (the read benchmark of
  :func:`advisor.hardware.throughput.measured_host`).

Output: ``bench/results/speed_accuracy.txt`` (this script's stdout).

Each model is rebuilt here as a sparse GGUF of the same shape and types (LLaMA-7B: 32 layers,
4096 hidden, 11008 FFN, 32000 vocab; output.weight Q6_K as llama-quantize writes it for Q4_0/
Q8_0) and its speed predicted with :func:`advisor.estimator.speed.speed` on a profile of that chip.
Chips are split by name into a calibration half and a held-out half (a fixed rule: the CRC32 of
the chip name, even = calibration) before any constant was looked at; held-out figures are what
README quotes.
"""

from __future__ import annotations

import json
import statistics
import sys
import tempfile
import zlib
from dataclasses import replace
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from advisor.estimator import estimate  # noqa: E402
from advisor.estimator.speed import speed  # noqa: E402
from advisor.estimator.types import Workload  # noqa: E402
from advisor.hardware.catalog import get_device  # noqa: E402
from advisor.hardware.profile import CpuInfo, GpuInfo, HardwareProfile  # noqa: E402
from advisor.hardware.throughput import gpu_throughput, measured_host  # noqa: E402
from advisor.readers import read_model  # noqa: E402
from tests.builders import gguf_models  # noqa: E402

PUBLISHED = ROOT / "bench" / "data" / "llamacpp_published.json"
HERE = ROOT / "bench" / "results" / "llamacpp_speed_here.json"

# llama-quantize keeps output.weight at Q6_K for Q4_0/Q8_0 mixes (llama-quant.cpp, the output
# tensor rule) and F16 for F16; token_embd at the file type.
_OUT_TYPE = {"Q4_0": "Q6_K", "Q8_0": "Q8_0", "F16": "F16", "Q4_K_M": "Q6_K"}


def llama_gguf(folder: Path, *, n_layers: int, hidden: int, n_heads: int, n_kv_heads: int, ff: int, vocab: int,
               qtype: str) -> Path:
    path = folder / f"llama-{n_layers}x{hidden}-{qtype}.gguf"
    if path.exists():
        return path
    specs = gguf_models.llama_gguf_specs(n_layers=n_layers, hidden=hidden, n_heads=n_heads, n_kv_heads=n_kv_heads,
                                         vocab=vocab, ff=ff, qtype=qtype, embd_type=qtype,
                                         out_type=_OUT_TYPE.get(qtype, qtype))
    meta = {"{arch}.block_count": n_layers, "{arch}.embedding_length": hidden, "{arch}.feed_forward_length": ff,
            "{arch}.attention.head_count": n_heads, "{arch}.attention.head_count_kv": n_kv_heads,
            "{arch}.context_length": 4096}
    return gguf_models.sparse_gguf(path, specs, metadata=meta)


def chip_profile(row: dict[str, Any]) -> HardwareProfile | None:
    """A profile whose GPU is the published chip (matched in resources/throughput.json)."""
    chip = row["chip"]
    if row.get("backend", "").lower() in ("metal",) or chip.lower().startswith("apple"):
        cores = row.get("gpu_cores")
        name = f"{chip} GPU ({cores}-core)" if cores else f"{chip} GPU"
        gpu = GpuInfo(index=0, name=name, vendor="apple", memory_total_bytes=192 * 1024**3, unified_memory=True)
        base = get_device("macbook-pro-m3-36gb")
        hw = replace(base, name=chip, memory_total_bytes=192 * 1024**3, gpus=(gpu,), device_id=None)
    else:
        name = chip if chip.lower().startswith("nvidia") else f"NVIDIA {chip}"
        gpu = GpuInfo(index=0, name=name, memory_total_bytes=80 * 1024**3, compute_capability="8.9")
        base = get_device("rtx4090-desktop")
        hw = replace(base, name=chip, gpus=(gpu,), device_id=None)
    return hw if gpu_throughput(gpu) is not None else None


def held_out(chip: str) -> bool:
    return zlib.crc32(chip.encode()) % 2 == 1


def predict(model_path: Path, hw: HardwareProfile, *, tg: int, pp: int) -> tuple[float | None, float | None]:
    model = read_model(model_path)
    wl_tg = Workload(context=tg, seq_len=1)
    s_tg = speed(model, wl_tg, "llama.cpp", hw, estimate(model, wl_tg, "llama.cpp", hw))
    wl_pp = Workload(context=pp, seq_len=pp)
    s_pp = speed(model, wl_pp, "llama.cpp", hw, estimate(model, wl_pp, "llama.cpp", hw))
    return s_tg.decode_tokens_per_second, s_pp.prefill_tokens_per_second


def _err(pred: float | None, meas: float | None) -> float | None:
    if not pred or not meas:
        return None
    return (pred - meas) / meas * 100


def _summary(label: str, errs: list[float]) -> str:
    if not errs:
        return f"{label}: no cases"
    absd = sorted(abs(e) for e in errs)
    return (f"{label}: {len(errs)} cases, median |err| {statistics.median(absd):.0f} %, max |err| {absd[-1]:.0f} %, "
            f"median signed {statistics.median(errs):+.0f} %")


def published(folder: Path) -> None:
    if not PUBLISHED.exists():
        print(f"(no {PUBLISHED.relative_to(ROOT)})")
        return
    rows = json.loads(PUBLISHED.read_text())["rows"]
    print("# llama.cpp published llama-bench tables (LLaMA-7B; tg128 decode, pp512 prefill), predicted vs measured")
    print(f"{'chip':28} {'quant':6} {'half':5} {'tg meas':>8} {'tg pred':>8} {'err%':>6}   {'pp meas':>8} "
          f"{'pp pred':>8} {'err%':>6}")
    errs: dict[tuple[str, bool], list[float]] = {}
    for row in rows:
        hw = chip_profile(row)
        qtype = row["quant"].upper()
        if hw is None or qtype not in _OUT_TYPE:
            print(f"{row['chip']:28} {qtype:6} (no throughput row or unknown type: skipped)")
            continue
        path = llama_gguf(folder, n_layers=32, hidden=4096, n_heads=32, n_kv_heads=32, ff=11008, vocab=32000,
                          qtype=qtype)
        tg, pp = predict(path, hw, tg=128, pp=512)
        half = held_out(row["chip"])
        e_tg, e_pp = _err(tg, row.get("tg128")), _err(pp, row.get("pp512"))
        for kind, e in (("tg", e_tg), ("pp", e_pp)):
            if e is not None:
                errs.setdefault((kind, half), []).append(e)
        print(f"{row['chip']:28} {qtype:6} {'held' if half else 'calib':5} {row.get('tg128') or 0:8.1f} "
              f"{tg or 0:8.1f} {e_tg if e_tg is not None else 0:+6.0f}   {row.get('pp512') or 0:8.0f} {pp or 0:8.0f} "
              f"{e_pp if e_pp is not None else 0:+6.0f}")
    for kind in ("tg", "pp"):
        for half in (False, True):
            print(_summary(f"{kind} {'held-out' if half else 'calibration'}", errs.get((kind, half), [])))


def here() -> None:
    if not HERE.exists():
        print(f"(no {HERE.relative_to(ROOT)})")
        return
    data = json.loads(HERE.read_text())
    host = measured_host("bench", 2)
    print(f"\n# llama-bench on this machine ({data.get('cpu')}, llama.cpp {data.get('llama_cpp_commit')}); "
          f"measured host {host.memory_bandwidth / 1e9:.1f} GB/s (2 cores reading at once), "
          f"{host.flops / 1e9:.0f} GFLOP/s. No constant was fitted to these runs: all are held out.")
    hw = HardwareProfile(name="this machine", source="probe", kind="this-machine", memory_total_bytes=24 * 1024**3,
                         cpu=CpuInfo(model="bench", arch="x86_64", physical_cores=2, logical_cores=2))
    errs: list[float] = []
    with tempfile.TemporaryDirectory() as tmp:
        for row in data["rows"]:
            model_file = Path(row.get("path", ""))
            if not model_file.exists():
                print(f"{row['model']}: model file {model_file} not here (rebuild with the helper script): skipped")
                continue
            model = read_model(model_file)
            wl = Workload(context=32, seq_len=1)
            s = speed(model, wl, "llama.cpp", hw, estimate(model, wl, "llama.cpp", hw))
            e = _err(s.decode_tokens_per_second, row["tg32"])
            all_cores = row.get("threads") == 2
            if e is not None and all_cores:
                errs.append(e)
            print(f"{row['model']:24} {row['quant']:6} t={row['threads']} tg32 {row['tg32']:7.1f} pred "
                  f"{s.decode_tokens_per_second or 0:7.1f} {e or 0:+5.0f} %"
                  + ("" if all_cores else "   (1 thread: the estimate assumes all cores; not counted)"))
        del tmp
    print(_summary("this machine, 2 threads", errs))


def main() -> int:
    folder = ROOT / "bench" / "out" / "speed"
    folder.mkdir(parents=True, exist_ok=True)
    published(folder)
    here()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
