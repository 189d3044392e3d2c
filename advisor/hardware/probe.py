"""Probe this machine: CPU, RAM, swap, free disk, and GPUs (NVIDIA via NVML, Jetson, Apple silicon).

The probe never fails because one source is missing: an unreadable file or an unsupported NVML
metric leaves that field ``None``; no NVIDIA driver leaves no NVIDIA GPU and says why in
``gpu_unavailable_reason``.
"""

from __future__ import annotations

import shutil
import socket
from pathlib import Path

import psutil

from advisor.errors import HardwareProfileError
from advisor.hardware.cpu import SystemFiles, probe_cpu
from advisor.hardware.nvml import NvmlApi, default_nvml
from advisor.hardware.profile import GpuInfo, HardwareProfile

# Jetson model name (lowercase substring) → CUDA compute capability; first match wins.
# NOTE: from https://developer.nvidia.com/cuda-gpus (Jetson products).
JETSON_COMPUTE_CAPABILITY: tuple[tuple[str, str], ...] = (
    ("orin", "8.7"), ("xavier", "7.2"), ("tx2", "6.2"), ("tx1", "5.3"), ("nano", "5.3"),
)  # fmt: skip


def probe(
    disk_path: str | Path = ".",
    nvml: NvmlApi | None = None,
    files: SystemFiles | None = None,
) -> HardwareProfile:
    """Read what this machine has, now.

    Args:
        disk_path: where free disk space is measured (the nearest existing folder counts).
        nvml: the NVML to ask about NVIDIA GPUs; the real one (pynvml) when None.
        files: where /proc and the device tree are read from; the real root when None.

    Raises:
        HardwareProfileError: only when even the size of the RAM cannot be read.
    """
    files = files if files is not None else SystemFiles()
    cpu = probe_cpu(files)
    ram_total, ram_available = _ram(files)
    swap_total, swap_used = _swap()
    gpus, reason, driver, cuda = _nvidia_gpus(nvml if nvml is not None else default_nvml())

    jetson = jetson_model(files)
    if jetson is not None:
        gpus = _jetson_gpus(jetson, gpus, ram_total, ram_available)
        reason = None
    is_apple_silicon = files.os_name() == "Darwin" and files.arch() in ("arm64", "aarch64")
    if is_apple_silicon:
        model = cpu.model if cpu.model and cpu.model.startswith("Apple") else "Apple"
        gpus = (*gpus, _unified_gpu(len(gpus), f"{model} GPU", "apple", ram_total, ram_available, None))

    return HardwareProfile(
        name=f"This machine ({_hostname()})",
        source="probe",
        kind="this-machine",
        memory_total_bytes=ram_total,
        memory_available_bytes=ram_available,
        swap_total_bytes=swap_total,
        swap_used_bytes=swap_used,
        disk_free_bytes=disk_free_bytes(disk_path),
        cpu=cpu,
        gpus=gpus,
        gpu_unavailable_reason=reason,
        driver_version=driver,
        cuda_version=cuda,
        unified_memory=jetson is not None or is_apple_silicon,
    )


def jetson_model(files: SystemFiles) -> str | None:
    """The Jetson's model name ("NVIDIA Jetson Orin Nano Developer Kit"), or None if not a Jetson."""
    model = (files.read_text("/proc/device-tree/model") or "").replace("\x00", "").strip()
    if "jetson" in model.lower():
        return model
    if files.exists("/etc/nv_tegra_release"):
        return model or "NVIDIA Jetson"
    return None


def disk_free_bytes(path: str | Path) -> int | None:
    """Free space where ``path`` is (or would be: the nearest existing parent), None if unknown."""
    try:
        here = Path(path).expanduser().absolute()
        while not here.exists() and here != here.parent:
            here = here.parent
        return shutil.disk_usage(here).free
    except (OSError, ValueError):
        return None


def _nvidia_gpus(nvml: NvmlApi) -> tuple[tuple[GpuInfo, ...], str | None, str | None, str | None]:
    """(GPUs, reason there are none, driver version, CUDA version); NVML is always shut down."""
    try:
        reason = nvml.start()
        gpus = tuple(nvml.device_info(i) for i in range(nvml.device_count()))
        return gpus, (reason if not gpus else None), nvml.driver_version(), nvml.cuda_version()
    finally:
        nvml.shutdown()


def _jetson_gpus(
    model: str, gpus: tuple[GpuInfo, ...], ram_total: int, ram_available: int | None
) -> tuple[GpuInfo, ...]:
    """A Jetson's GPU shares the RAM: NVML cannot size it (NOT_SUPPORTED), so the RAM is its memory."""
    lower = model.lower()
    cc = next((cc for key, cc in JETSON_COMPUTE_CAPABILITY if key in lower), None)
    if not gpus:  # no NVML on this JetPack: name the GPU after the board
        board = model.removesuffix("Developer Kit").strip()
        return (_unified_gpu(0, f"{board} (integrated GPU)", "nvidia", ram_total, ram_available, cc),)
    return tuple(
        _unified_gpu(g.index, g.name, g.vendor, ram_total, ram_available, g.compute_capability or cc, g) for g in gpus
    )


def _unified_gpu(
    index: int,
    name: str,
    vendor: str,
    ram_total: int,
    ram_available: int | None,
    cc: str | None,
    base: GpuInfo | None = None,
) -> GpuInfo:
    used = ram_total - ram_available if ram_available is not None else None
    return GpuInfo(
        index=index,
        name=name,
        vendor=vendor,
        memory_total_bytes=ram_total,
        memory_used_bytes=used,
        memory_free_bytes=ram_available,
        compute_capability=cc,
        mig_mode=base.mig_mode if base else None,
        unified_memory=True,
        uuid=base.uuid if base else None,
    )


def _ram(files: SystemFiles) -> tuple[int, int | None]:
    try:
        vm = psutil.virtual_memory()
        return int(vm.total), int(vm.available)
    except (OSError, RuntimeError, AttributeError):
        pass
    total = _meminfo_bytes(files, "MemTotal")
    if total is None or total <= 0:
        raise HardwareProfileError("cannot read the size of this machine's RAM")
    return total, _meminfo_bytes(files, "MemAvailable")


def _meminfo_bytes(files: SystemFiles, key: str) -> int | None:
    for line in (files.read_text("/proc/meminfo") or "").splitlines():
        name, _, rest = line.partition(":")
        parts = rest.split()
        if name.strip() == key and parts and parts[0].isdigit():
            return int(parts[0]) * 1024  # /proc/meminfo counts kB (KiB)
    return None


def _swap() -> tuple[int | None, int | None]:
    try:
        sw = psutil.swap_memory()
        return int(sw.total), int(sw.used)
    except (OSError, RuntimeError, AttributeError):
        return None, None


def _hostname() -> str:
    try:
        return socket.gethostname() or "unknown host"
    except OSError:
        return "unknown host"
