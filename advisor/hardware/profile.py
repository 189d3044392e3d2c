"""What a machine has: :class:`HardwareProfile` and its parts, and their JSON form.

A profile comes from probing this machine, from the device catalog, or from a file that
``advisor probe --out`` wrote on another machine. Unknown values are ``None``, never guessed.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from typing import Any, Literal

from advisor.errors import HardwareProfileError

DeviceKind = Literal["this-machine", "edge", "laptop", "desktop", "cloud"]
ProfileSource = Literal["probe", "catalog", "file"]

SCHEMA_VERSION = 1


@dataclass(frozen=True)
class CpuInfo:
    """The CPU: model, cores, and the ISA features that matter for inference."""

    model: str | None = None
    arch: str | None = None  # "x86_64", "aarch64", "arm64"
    physical_cores: int | None = None
    logical_cores: int | None = None
    features: tuple[str, ...] = ()  # e.g. ("avx2", "avx512f", "avx512_vnni", "amx_tile", "neon")


@dataclass(frozen=True)
class GpuInfo:
    """One accelerator. Memory figures are None when the driver cannot say (e.g. Jetson)."""

    index: int
    name: str
    vendor: str = "nvidia"  # "nvidia", "apple", "integrated"
    memory_total_bytes: int | None = None
    memory_used_bytes: int | None = None
    memory_free_bytes: int | None = None
    compute_capability: str | None = None  # "9.0"
    mig_mode: bool | None = None
    unified_memory: bool = False  # memory is the system RAM (Jetson, Apple silicon, iGPU)
    uuid: str | None = None


@dataclass(frozen=True)
class HardwareProfile:
    """A machine: this one (probed), a catalog device, or a saved probe of another machine.

    Attributes:
        name: display name ("This machine (host)", "Raspberry Pi 5 (8 GB)").
        source: ``probe`` (this machine, live), ``catalog`` or ``file``.
        kind: ``this-machine``, ``edge``, ``laptop``, ``desktop``, ``cloud``.
        device_id: the catalog id, when from the catalog.
        memory_total_bytes: system RAM.
        memory_available_bytes: RAM available now (probe only; None for catalog devices).
        swap_total_bytes / swap_used_bytes: swap, when known.
        disk_free_bytes: free disk at the probed path.
        gpus: accelerators; for unified-memory devices their memory is the system RAM.
        gpu_unavailable_reason: why there are no NVIDIA GPUs ("no NVIDIA driver", ...).
        driver_version / cuda_version: NVIDIA driver and CUDA versions.
        unified_memory: GPU and CPU share the system RAM.
        price_per_hour_usd: on-demand price (cloud).
        provider: cloud provider or vendor.
        catalog_source / catalog_date: where the catalog entry's figures come from, and when read.
    """

    name: str
    source: ProfileSource
    kind: DeviceKind
    memory_total_bytes: int
    cpu: CpuInfo = field(default_factory=CpuInfo)
    device_id: str | None = None
    memory_available_bytes: int | None = None
    swap_total_bytes: int | None = None
    swap_used_bytes: int | None = None
    disk_free_bytes: int | None = None
    gpus: tuple[GpuInfo, ...] = ()
    gpu_unavailable_reason: str | None = None
    driver_version: str | None = None
    cuda_version: str | None = None
    unified_memory: bool = False
    price_per_hour_usd: float | None = None
    provider: str | None = None
    catalog_source: str | None = None
    catalog_date: str | None = None

    @property
    def is_live(self) -> bool:
        """True when figures were read from this machine now (so "available" means now)."""
        return self.source == "probe"

    @property
    def has_cuda_gpu(self) -> bool:
        return any(g.vendor == "nvidia" for g in self.gpus)

    def to_dict(self) -> dict[str, Any]:
        """JSON form; :func:`profile_from_dict` reads it back."""
        out = asdict(self)
        out["schema_version"] = SCHEMA_VERSION
        out["cpu"]["features"] = list(self.cpu.features)
        out["gpus"] = [asdict(g) for g in self.gpus]
        return out


def profile_from_dict(data: Any, source: ProfileSource = "file") -> HardwareProfile:
    """Build a profile from :meth:`HardwareProfile.to_dict` output.

    Raises:
        HardwareProfileError: when required fields are missing or have the wrong type.
    """
    if not isinstance(data, dict):
        raise HardwareProfileError("not a hardware profile (expected a JSON object)")
    try:
        cpu_raw = dict(data.get("cpu") or {})
        cpu_raw["features"] = tuple(cpu_raw.get("features") or ())
        cpu = CpuInfo(**_known(CpuInfo, cpu_raw))
        gpus = tuple(GpuInfo(**_known(GpuInfo, g)) for g in data.get("gpus") or ())
        kw = _known(HardwareProfile, data)
        kw.update(cpu=cpu, gpus=gpus, source=source)
        total = kw.get("memory_total_bytes")
        if not isinstance(total, int) or total <= 0:
            raise HardwareProfileError("memory_total_bytes must be a positive integer")
        for g in gpus:
            if g.memory_total_bytes is not None and (
                not isinstance(g.memory_total_bytes, int) or g.memory_total_bytes <= 0
            ):
                raise HardwareProfileError(f"GPU {g.name!r} has an invalid memory_total_bytes")
        return HardwareProfile(**kw)
    except TypeError as exc:
        raise HardwareProfileError(f"not a hardware profile ({exc})") from None


def _known(cls: type, raw: dict[str, Any]) -> dict[str, Any]:
    """Keep only the keys ``cls`` declares (files from newer versions may carry more)."""
    names = {f.name for f in fields(cls)}
    return {k: v for k, v in raw.items() if k in names}
