"""Ready-made :class:`HardwareProfile` objects for tests: a laptop, a GPU box, an edge board.

    laptop(ram_gib=16)                          # x86 laptop, no GPU
    gpu_box(vram_gib=24, n_gpus=2, ram_gib=64)  # NVIDIA GPUs with their own memory
    edge(ram_gib=8, unified=True)               # Jetson-like board: the GPU uses the RAM
    this_machine(ram_gib=16, available_gib=6)   # a live probe ("available" means now)

Sizes are GiB (2**30 bytes).
"""

from __future__ import annotations

from advisor.hardware.profile import CpuInfo, GpuInfo, HardwareProfile

GIB = 1024**3

X86_FEATURES = ("avx", "avx2", "fma", "f16c")
ARM_FEATURES = ("neon", "dotprod")


def _bytes(gib: float) -> int:
    return int(gib * GIB)


def laptop(ram_gib: float = 16, *, cores: int = 8) -> HardwareProfile:
    """An x86 laptop with ``ram_gib`` of RAM and no GPU worth using."""
    return HardwareProfile(
        name=f"Test laptop ({ram_gib:g} GiB)",
        source="catalog",
        kind="laptop",
        device_id=f"test-laptop-{ram_gib:g}gb",
        memory_total_bytes=_bytes(ram_gib),
        cpu=CpuInfo(
            model="Test x86 CPU", arch="x86_64", physical_cores=cores, logical_cores=cores * 2, features=X86_FEATURES
        ),
        gpu_unavailable_reason="no NVIDIA driver found (NVML library not loadable)",
    )


def gpu_box(
    vram_gib: float = 24,
    n_gpus: int = 1,
    ram_gib: float = 64,
    *,
    kind: str = "desktop",
    price_per_hour_usd: float | None = None,
    gpu_name: str | None = None,
    compute_capability: str = "8.9",
) -> HardwareProfile:
    """A machine with ``n_gpus`` NVIDIA GPUs of ``vram_gib`` each and ``ram_gib`` of RAM.

    Pass ``kind="cloud"`` and a price for a cloud instance; ``gpu_name`` a real GPU's name (e.g.
    ``NVIDIA A100-SXM4-80GB``) for its bandwidth and compute in speed estimates.
    """
    if kind not in ("desktop", "cloud"):
        raise ValueError(f"gpu_box kind must be 'desktop' or 'cloud', not {kind!r}")
    gpus = tuple(
        GpuInfo(
            index=i,
            name=gpu_name or f"NVIDIA Test GPU {vram_gib:g}GB",
            memory_total_bytes=_bytes(vram_gib),
            compute_capability=compute_capability,
        )
        for i in range(n_gpus)
    )
    return HardwareProfile(
        name=f"Test GPU box ({n_gpus}× {vram_gib:g} GiB)",
        source="catalog",
        kind="cloud" if kind == "cloud" else "desktop",
        device_id=f"test-gpu-box-{n_gpus}x{vram_gib:g}gb",
        memory_total_bytes=_bytes(ram_gib),
        cpu=CpuInfo(
            model="Test x86 CPU",
            arch="x86_64",
            physical_cores=16,
            logical_cores=32,
            features=(*X86_FEATURES, "avx512f", "avx512bw", "avx512_vnni"),
        ),
        gpus=gpus,
        driver_version="580.159.04",
        cuda_version="13.0",
        price_per_hour_usd=price_per_hour_usd,
        provider="Test cloud" if kind == "cloud" else None,
    )


def edge(ram_gib: float = 8, unified: bool = True) -> HardwareProfile:
    """An Arm board; with ``unified`` a Jetson-like GPU whose memory is the RAM, else CPU only (a Pi)."""
    ram = _bytes(ram_gib)
    gpus = (
        (
            GpuInfo(
                index=0,
                name="NVIDIA Test Jetson GPU",
                memory_total_bytes=ram,
                compute_capability="8.7",
                unified_memory=True,
            ),
        )
        if unified
        else ()
    )
    return HardwareProfile(
        name=f"Test edge board ({ram_gib:g} GiB)",
        source="catalog",
        kind="edge",
        device_id=f"test-edge-{ram_gib:g}gb",
        memory_total_bytes=ram,
        cpu=CpuInfo(model="Arm Cortex-A78AE", arch="aarch64", physical_cores=6, logical_cores=6, features=ARM_FEATURES),
        gpus=gpus,
        unified_memory=unified,
    )


def this_machine(ram_gib: float = 16, available_gib: float = 8, *, swap_gib: float = 0) -> HardwareProfile:
    """A live probe of a GPU-less machine: ``available`` is what is free right now."""
    return HardwareProfile(
        name="This machine (test)",
        source="probe",
        kind="this-machine",
        memory_total_bytes=_bytes(ram_gib),
        memory_available_bytes=_bytes(available_gib),
        swap_total_bytes=_bytes(swap_gib),
        swap_used_bytes=0,
        disk_free_bytes=_bytes(100),
        cpu=CpuInfo(model="Test x86 CPU", arch="x86_64", physical_cores=4, logical_cores=8, features=X86_FEATURES),
        gpu_unavailable_reason="no NVIDIA driver found (NVML library not loadable)",
    )
