"""How fast a device reads memory and computes: the figures a speed estimate divides by.

Catalog and probed GPUs are looked up by name, CPUs by model, in ``resources/throughput.json``
(datasheet peaks, each row with its source; the first matching row wins). This machine's RAM
bandwidth and matrix throughput are measured instead — a short copy and a matrix product with
numpy, about a quarter of a second — once, then cached on disk (``$ADVISOR_CACHE_DIR``, else
``$XDG_CACHE_HOME/memory-advisor``, else ``~/.cache/memory-advisor``) under the CPU's model and
core count.
"""

from __future__ import annotations

import json
import os
import re
import time
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

from advisor.hardware.profile import GpuInfo, HardwareProfile
from advisor.resources import read_text

GB = 1e9
TERA = 1e12


@dataclass(frozen=True)
class Throughput:
    """Peak rates of one memory + compute unit.

    Attributes:
        name: what the figures are for ("NVIDIA H100 SXM5 80GB", "this machine (measured)").
        memory_bandwidth: bytes/s its memory delivers at peak (datasheet), or as measured.
        flops: dense operations/s its matrix units do at peak: GPUs in fp16/bf16 on tensor
            cores, CPUs in fp32 SIMD (as measured for this machine).
        fp8_flops / int8_ops: dense fp8 / int8 tensor rates, None where the hardware has none.
        simt_flops: a GPU's fp32 rate on its shader (CUDA) cores, None when not known.
        source: where the figures come from (a URL, or "measured here").
        measured: the figures were measured on this machine, not read from a datasheet.
    """

    name: str
    memory_bandwidth: float
    flops: float
    source: str
    fp8_flops: float | None = None
    int8_ops: float | None = None
    simt_flops: float | None = None
    measured: bool = False


@lru_cache(maxsize=1)
def _table() -> dict[str, Any]:
    data: dict[str, Any] = json.loads(read_text("throughput.json"))
    return data


def _match(rows: list[dict[str, Any]], text: str | None) -> dict[str, Any] | None:
    if not text:
        return None
    return next((r for r in rows if re.search(r["match"], text, re.IGNORECASE)), None)


def gpu_throughput(gpu: GpuInfo) -> Throughput | None:
    """The datasheet rates of ``gpu`` (matched by name), or None for a GPU the table lacks."""
    row = _match(_table()["gpus"], gpu.name)
    if row is None:
        return None
    return Throughput(
        name=row["name"], memory_bandwidth=row["memory_bandwidth_gb_s"] * GB, flops=row["fp16_tflops"] * TERA,
        source=row["source"], fp8_flops=_tera(row.get("fp8_tflops")), int8_ops=_tera(row.get("int8_tops")),
        simt_flops=_tera(row.get("fp32_tflops")),
    )


def _tera(value: float | None) -> float | None:
    return value * TERA if value else None


def host_throughput(hardware: HardwareProfile) -> Throughput | None:
    """The CPU and system RAM of ``hardware``: measured when it is this machine, else from the table.

    A catalog row gives the socket's peak DRAM bandwidth (channels × transfer rate × 8 bytes)
    and the peak fp32 rate (FLOPs per cycle per core × clock × the profile's physical cores);
    a row may give a device its own bandwidth (``by_device``: two boards with one CPU).
    """
    if hardware.is_live:
        return measured_host(hardware.cpu.model or "", hardware.cpu.physical_cores or 1)
    row = _match(_table()["hosts"], hardware.cpu.model)
    if row is None:
        return None
    bandwidth = (row.get("by_device") or {}).get(hardware.device_id or "", row["memory_bandwidth_gb_s"])
    cores = hardware.cpu.physical_cores or 1
    flops = row["fp32_flops_per_cycle_per_core"] * row["clock_ghz"] * 1e9 * cores
    return Throughput(name=row["name"], memory_bandwidth=bandwidth * GB, flops=flops, source=row["source"])


def cache_dir() -> Path:
    """Where the advisor keeps what it measured once (created on first write)."""
    explicit = os.environ.get("ADVISOR_CACHE_DIR")
    if explicit:
        return Path(explicit)
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "memory-advisor"


_METHOD = "read-all-cores"  # what the cached figures measured (older entries are measured again)


@lru_cache(maxsize=4)
def measured_host(cpu_model: str, cores: int) -> Throughput:
    """This machine's RAM bandwidth and fp32 matrix rate, measured once and cached on disk."""
    key = f"{cpu_model}|{cores}"
    path = cache_dir() / "host_throughput.json"
    cached: dict[str, Any] = {}
    try:
        cached = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        cached = {}
    entry = cached.get(key) if isinstance(cached, dict) else None
    if not (isinstance(entry, dict) and entry.get("method") == _METHOD and entry.get("bandwidth", 0) > 0
            and entry.get("flops", 0) > 0):
        entry = {"bandwidth": _read_bandwidth(cores), "flops": _matmul_flops(), "method": _METHOD,
                 "when": time.strftime("%Y-%m-%d")}
        cached = cached if isinstance(cached, dict) else {}
        cached[key] = entry
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(json.dumps(cached, indent=1), encoding="utf-8")
        except OSError:
            pass  # a read-only home: measure again next time
    return Throughput(name="this machine (measured)", memory_bandwidth=float(entry["bandwidth"]),
                      flops=float(entry["flops"]), source=f"measured here on {entry.get('when', '?')} "
                      f"({cores} cores reading 256 MiB at once; float32 matrix product)", measured=True)


def _read_bandwidth(threads: int = 1, size: int = 256 * 1024**2, repeats: int = 4) -> float:
    """Bytes/s that ``threads`` cores stream from RAM at once, each summing its own share of a
    ``size``-byte float32 array far larger than the last-level cache; best of ``repeats``.

    This is what a decode step does: every thread reads its rows of the weights once, with a
    little arithmetic per byte. numpy's reductions release the GIL, so the threads run in
    parallel. One core alone cannot reach a socket's bandwidth (its outstanding cache misses
    bound it, Little's law: McCalpin, "Memory Bandwidth and Machine Balance", 1995), so all the
    cores the runtime would use are measured together.
    """
    import threading

    import numpy as np

    threads = max(1, threads)
    parts = [np.ones(size // threads // 4, dtype=np.float32) for _ in range(threads)]
    best = float("inf")
    for _ in range(repeats):
        start = threading.Barrier(threads + 1)

        def work(a: Any, start: threading.Barrier = start) -> None:
            start.wait()
            a.sum()

        workers = [threading.Thread(target=work, args=(a,), daemon=True) for a in parts]
        for w in workers:
            w.start()
        t0 = time.perf_counter()
        start.wait()
        for w in workers:
            w.join()
        best = min(best, time.perf_counter() - t0)
    return sum(a.nbytes for a in parts) / max(best, 1e-9)


def _matmul_flops(n: int = 1024, repeats: int = 3) -> float:
    """fp32 operations/s of an n×n matrix product through numpy's BLAS (2·n³ per product)."""
    import numpy as np

    a = np.ones((n, n), dtype=np.float32)
    b = np.ones((n, n), dtype=np.float32)
    a @ b  # warm the BLAS threads
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        a @ b
        best = min(best, time.perf_counter() - t0)
    return 2 * n**3 / max(best, 1e-9)
