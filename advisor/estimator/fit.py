"""Hold an :class:`Estimate` against a target's memory: does it fit, and by how much.

Rules (issue 3): this machine is judged against memory *available now*; a catalog device or a
saved probe against its *total* memory (planning). GPUs keep a margin of max(1 GiB, 10%) for
fragmentation and other processes. Planning against a device's total RAM keeps an OS reserve.
"""

from __future__ import annotations

from typing import Literal

from advisor.estimator.types import GIB, MIB, Estimate, Fit, FitBasis, MemoryKind
from advisor.hardware.profile import HardwareProfile

# NOTE: a GPU keeps max(1 GiB, 10 %) free: allocator fragmentation, other processes, and the
# runtime's workspace spikes (issue 3's rule; vLLM's default gpu_memory_utilization=0.9 agrees).
GPU_MARGIN_MIN_BYTES = 1 * GIB
GPU_MARGIN_FRACTION = 0.10
# NOTE: planning against a device's total RAM, the OS and its services hold some: a fresh
# Raspberry Pi OS Lite boots at about 150-250 MiB, a desktop OS at 2-4 GiB. max(512 MiB, 10 %)
# covers the headless edge case and is conservative enough for a laptop's 16 GiB.
RAM_RESERVE_MIN_BYTES = 512 * MIB
RAM_RESERVE_FRACTION = 0.10


def ram_budget(hardware: HardwareProfile) -> tuple[int, int, FitBasis]:
    """System RAM the model may use: (capacity, margin, basis)."""
    if hardware.is_live and hardware.memory_available_bytes is not None:
        return hardware.memory_available_bytes, 0, "available"
    total = hardware.memory_total_bytes
    return total, max(RAM_RESERVE_MIN_BYTES, int(total * RAM_RESERVE_FRACTION)), "total"


def gpu_margin(capacity_bytes: int) -> int:
    """The margin kept free on a GPU of ``capacity_bytes``."""
    return max(GPU_MARGIN_MIN_BYTES, int(capacity_bytes * GPU_MARGIN_FRACTION))


def fit(estimate: Estimate, hardware: HardwareProfile) -> Fit:
    """Compare ``estimate`` with the memory it needs on ``hardware``."""
    memory: MemoryKind
    host_fits: bool | None = None
    if estimate.device == "cuda":
        nvidia = [g for g in hardware.gpus if g.vendor == "nvidia"]
        tp = max(1, estimate.tensor_parallel)
        if len(nvidia) < tp:
            have = f"{len(nvidia)} NVIDIA GPU" + ("s" if len(nvidia) != 1 else "")
            return _fit(estimate, "gpu", "total", f"needs {tp} GPUs, has {have}", 0, 0)
        gpus = nvidia[:tp]
        smallest = min(gpus, key=lambda g: g.memory_total_bytes or hardware.memory_total_bytes)
        label = f"GPU {smallest.index} · {smallest.name}" if tp == 1 else f"{tp}× {smallest.name} (per GPU)"
        if smallest.unified_memory or smallest.memory_total_bytes is None:
            capacity, _, basis = ram_budget(hardware)
            memory = "unified"
            label = f"{smallest.name} (shared system RAM)"
        else:
            memory = "gpu"
            free = smallest.memory_free_bytes
            if hardware.is_live and free is not None:
                capacity, basis = free, "available"
            else:
                capacity, basis = smallest.memory_total_bytes, "total"
        if estimate.host_bytes:
            ram_cap, ram_margin, _ = ram_budget(hardware)
            shared = estimate.peak_bytes if memory == "unified" else 0
            host_fits = estimate.host_bytes + shared <= ram_cap - ram_margin
        return _fit(estimate, memory, basis, label, capacity, gpu_margin(capacity), host_fits)
    capacity, margin, basis = ram_budget(hardware)
    memory = "unified" if hardware.unified_memory else "ram"
    return _fit(estimate, memory, basis, "RAM" if memory == "ram" else "unified RAM", capacity, margin)


def _fit(
    estimate: Estimate,
    memory: MemoryKind,
    basis: FitBasis,
    label: str,
    capacity: int,
    margin: int,
    host_fits: bool | None = None,
) -> Fit:
    budget = max(0, capacity - margin)
    fits = estimate.peak_bytes <= budget and host_fits is not False
    certainty: Literal["sure", "likely", "unlikely", "no"]
    if estimate.high_bytes <= budget and fits:
        certainty = "sure"
    elif fits:
        certainty = "likely"
    elif estimate.low_bytes <= budget and host_fits is not False:
        certainty = "unlikely"
    else:
        certainty = "no"
    return Fit(
        fits=fits,
        certainty=certainty,
        memory=memory,
        basis=basis,
        label=label,
        capacity_bytes=capacity,
        margin_bytes=margin,
        budget_bytes=budget,
        peak_bytes=estimate.peak_bytes,
        low_bytes=estimate.low_bytes,
        high_bytes=estimate.high_bytes,
        headroom_bytes=budget - estimate.peak_bytes,
        host_fits=host_fits,
    )
