"""Hold an :class:`Estimate` against a target's memory: does it fit, and by how much.

Rules (issue 3): this machine is judged against memory *available now*; a catalog device or a
saved probe against its *total* memory (planning). GPUs keep a margin of max(1 GiB, 10%) for
fragmentation and other processes. Planning against a device's total RAM keeps an OS reserve.

What is held against the budget is the memory the run *needs* (``Estimate.required_bytes``), not
the peak it shows when memory is plentiful (issue 10). A model spread over several GPUs (tensor
parallelism, or ``device_map='auto'``) fits when every GPU's share fits that GPU.
"""

from __future__ import annotations

from typing import Literal

from advisor.estimator.types import GIB, MIB, Estimate, Fit, FitBasis, MemoryKind
from advisor.hardware.profile import GpuInfo, HardwareProfile

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


# NOTE: Metal lets one process keep at most MTLDevice.recommendedMaxWorkingSetSize of GPU memory
# resident; llama.cpp reports it as the GPU's total and free memory (ggml-metal-device.m
# ggml_metal_device_get_memory) and warns past it. Apple documents no formula; llama.cpp's own
# logs show exactly 2/3 of RAM on 8, 16 and 32 GB Macs (ggml-org/llama.cpp #5207, #2209, PR
# #2011), about 3/4 on 64 GB (#1870; "usually 0.75 * the total ram", ml-explore/mlx PR #64).
# `sudo sysctl iogpu.wired_limit_mb=N` (macOS 14+) raises it; a probe or hardware file that
# gives the Apple GPU less memory than the RAM is taken as that limit.
METAL_WORKING_SET_SMALL = 2 / 3
METAL_WORKING_SET_LARGE = 3 / 4
METAL_LARGE_RAM_BYTES = 48 * GIB


def metal_working_set(hardware: HardwareProfile) -> int:
    """The GPU working-set limit Metal gives one process on an Apple silicon ``hardware``."""
    ram = hardware.memory_total_bytes
    apple = next((g for g in hardware.gpus if g.vendor == "apple"), None)
    if apple is not None and apple.memory_total_bytes and apple.memory_total_bytes < ram:
        return apple.memory_total_bytes
    return int(ram * (METAL_WORKING_SET_LARGE if ram >= METAL_LARGE_RAM_BYTES else METAL_WORKING_SET_SMALL))


def fit(estimate: Estimate, hardware: HardwareProfile) -> Fit:
    """Hold what ``estimate`` needs (its ``required_bytes``) against ``hardware``'s memory."""
    if estimate.device == "cuda":
        return _fit_cuda(estimate, hardware)
    if estimate.device == "metal":
        limit = metal_working_set(hardware)
        capacity, _, basis = ram_budget(hardware)
        capacity = min(capacity, limit) if basis == "available" else limit  # live: what is free, too
        share = f"{limit / hardware.memory_total_bytes:.0%}" if hardware.memory_total_bytes else "part"
        return _fit(estimate, "unified", basis, f"Metal GPU working set ({share} of RAM)", capacity, 0)
    capacity, margin, basis = ram_budget(hardware)
    memory: MemoryKind = "unified" if hardware.unified_memory else "ram"
    return _fit(estimate, memory, basis, "RAM" if memory == "ram" else "unified RAM", capacity, margin)


def _fit_cuda(estimate: Estimate, hardware: HardwareProfile) -> Fit:
    nvidia = [g for g in hardware.gpus if g.vendor == "nvidia"]
    if not nvidia:
        why = f" ({hardware.gpu_unavailable_reason})" if hardware.gpu_unavailable_reason else ""
        return _fit(estimate, "gpu", "total", f"{hardware.name} has no NVIDIA GPU", 0, 0,
                    error=f"{estimate.runtime} needs an NVIDIA GPU and {hardware.name} has none{why}; "
                          "pick a CPU runtime (onnxruntime-cpu, pytorch-cpu, llama.cpp)")
    tp = max(1, estimate.tensor_parallel)
    n_used = max(tp, len(estimate.spread))
    if len(nvidia) < max(n_used, max((i + 1 for i, _ in estimate.spread), default=0)):
        have = f"{len(nvidia)} NVIDIA GPU" + ("s" if len(nvidia) != 1 else "")
        return _fit(estimate, "gpu", "total", f"needs {n_used} GPUs, has {have}", 0, 0)
    # Each GPU used holds its own share (all equal under tensor parallelism; device_map='auto'
    # gives each its own layers): the verdict is the tightest GPU's.
    shares = [b for _, b in estimate.spread] if estimate.spread else [estimate.required_bytes] * tp
    gpus = [nvidia[i] for i, _ in estimate.spread] if estimate.spread else nvidia[:n_used]
    budgets = [_gpu_capacity(g, hardware) for g in gpus]
    tight = min(range(n_used), key=lambda i: budgets[i][0] - gpu_margin(budgets[i][0]) - shares[i])
    gpu, (capacity, basis) = gpus[tight], budgets[tight]
    memory: MemoryKind = "gpu"
    if n_used == 1:
        label = f"GPU {gpu.index} · {gpu.name}"
    elif estimate.spread:
        label = f"{n_used}× {gpu.name} (device_map='auto'; GPU {gpu.index} is the tightest)"
    else:
        label = f"{n_used}× {gpu.name} (per GPU)"
    host_fits: bool | None = None
    if gpu.unified_memory or gpu.memory_total_bytes is None:
        memory = "unified"
        label = f"{gpu.name} (shared system RAM)"
    if estimate.host_bytes:
        ram_cap, ram_margin, _ = ram_budget(hardware)
        shared = estimate.required_bytes if memory == "unified" else 0
        host_fits = estimate.host_bytes + shared <= ram_cap - ram_margin
    shift = shares[tight] - estimate.required_bytes  # this GPU's share against the fullest one's
    return _fit(estimate, memory, basis, label, capacity, gpu_margin(capacity), host_fits, shift=shift,
                gpus=n_used)


def _gpu_capacity(gpu: GpuInfo, hardware: HardwareProfile) -> tuple[int, FitBasis]:
    """A GPU's memory to hold against: free now on this machine, else total; shared RAM when unified."""
    if gpu.unified_memory or gpu.memory_total_bytes is None:
        capacity, _, basis = ram_budget(hardware)
        return capacity, basis
    if hardware.is_live and gpu.memory_free_bytes is not None:
        return gpu.memory_free_bytes, "available"
    return gpu.memory_total_bytes, "total"


def _fit(
    estimate: Estimate,
    memory: MemoryKind,
    basis: FitBasis,
    label: str,
    capacity: int,
    margin: int,
    host_fits: bool | None = None,
    *,
    shift: int = 0,
    gpus: int = 1,
    error: str = "",
) -> Fit:
    budget = max(0, capacity - margin)
    need = estimate.required_bytes + shift
    need_low, need_high = estimate.required_low_bytes + shift, estimate.required_high_bytes + shift
    fits = not error and need <= budget and host_fits is not False
    certainty: Literal["sure", "likely", "unlikely", "no"]
    if need_high <= budget and fits:
        certainty = "sure"
    elif fits:
        certainty = "likely"
    elif not error and need_low <= budget and host_fits is not False:
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
        peak_bytes=estimate.peak_bytes + shift,
        low_bytes=estimate.low_bytes + shift,
        high_bytes=estimate.high_bytes + shift,
        headroom_bytes=budget - need,
        host_fits=host_fits,
        required_bytes=need,
        required_low_bytes=need_low,
        required_high_bytes=need_high,
        gpus=gpus,
        error=error,
    )
