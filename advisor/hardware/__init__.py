"""What a machine has: probe this one, pick a catalog device, or read a saved probe.

Importing this package starts nothing: NVML is loaded only when a probe or a sampler asks.
The probe itself is ``from advisor.hardware.probe import probe`` (not re-exported here, so that
``advisor.hardware.probe`` always names the module, which tests patch).
"""

from __future__ import annotations

from advisor.hardware.catalog import (
    catalog_entries,
    get_device,
    load_catalog,
    load_hardware_file,
    save_hardware_file,
)
from advisor.hardware.cpu import SystemFiles, parse_cpuinfo
from advisor.hardware.nvml import GpuMemory, NvmlApi, PynvmlApi, UnavailableNvml, default_nvml
from advisor.hardware.profile import CpuInfo, GpuInfo, HardwareProfile, profile_from_dict
from advisor.hardware.sampler import GpuMemorySample, MemorySample, MemorySampler

__all__ = [
    "CpuInfo",
    "GpuInfo",
    "GpuMemory",
    "GpuMemorySample",
    "HardwareProfile",
    "MemorySample",
    "MemorySampler",
    "NvmlApi",
    "PynvmlApi",
    "SystemFiles",
    "UnavailableNvml",
    "catalog_entries",
    "default_nvml",
    "get_device",
    "load_catalog",
    "load_hardware_file",
    "parse_cpuinfo",
    "profile_from_dict",
    "save_hardware_file",
]
