"""A cheap live memory sampler for the app's memory plot (called about once a second).

NVML is started once, on the first sample, and its device handles are kept; each sample then
costs one ``psutil`` read for RAM, one for swap and one NVML memory query per GPU (about 6 µs
each on an H100, see ``call_cost_microseconds_per_1000_calls`` in tests/fixtures/nvml_h100.json).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from types import TracebackType

import psutil

from advisor.hardware.nvml import NvmlApi, default_nvml


@dataclass(frozen=True)
class GpuMemorySample:
    """One GPU's memory at one moment; None where the driver cannot say (Jetson)."""

    index: int
    name: str
    used_bytes: int | None
    total_bytes: int | None


@dataclass(frozen=True)
class MemorySample:
    """RAM, swap and GPU memory at ``time_s`` (a :func:`time.monotonic` reading).

    ``ram_used_bytes`` is total minus available: what a person means by "used" (the kernel's
    own "used" leaves out caches that it would drop, but counts nothing a program could get back).
    """

    time_s: float
    ram_used_bytes: int
    ram_total_bytes: int
    ram_available_bytes: int
    swap_used_bytes: int | None
    swap_total_bytes: int | None
    gpus: tuple[GpuMemorySample, ...] = ()


class MemorySampler:
    """Samples RAM, swap and NVIDIA GPU memory; use as a context manager or call :meth:`close`.

    Args:
        nvml: the NVML to ask; the real one when None. Without NVML it samples RAM and swap only.
        clock: the monotonic clock (tests may pass their own).
    """

    def __init__(self, nvml: NvmlApi | None = None, clock: Callable[[], float] = time.monotonic) -> None:
        self._nvml = nvml
        self._clock = clock
        self._opened = False
        self._closed = False
        self._gpu_names: tuple[str, ...] = ()
        self._reason: str | None = None

    @property
    def gpu_unavailable_reason(self) -> str | None:
        """Why no GPU is sampled (None before the first sample or when GPUs are sampled)."""
        return self._reason

    def sample(self) -> MemorySample:
        """Read memory now. After :meth:`close` it samples RAM and swap only."""
        self._open()
        vm = psutil.virtual_memory()
        total, available = int(vm.total), int(vm.available)
        swap_used: int | None
        swap_total: int | None
        try:
            sw = psutil.swap_memory()
            swap_used, swap_total = int(sw.used), int(sw.total)
        except (OSError, RuntimeError):
            swap_used = swap_total = None
        gpus: tuple[GpuMemorySample, ...] = ()
        if self._nvml is not None and not self._closed:
            gpus = tuple(self._gpu_sample(i, name) for i, name in enumerate(self._gpu_names))
        return MemorySample(
            time_s=self._clock(),
            ram_used_bytes=total - available,
            ram_total_bytes=total,
            ram_available_bytes=available,
            swap_used_bytes=swap_used,
            swap_total_bytes=swap_total,
            gpus=gpus,
        )

    def close(self) -> None:
        """Shut NVML down (once); later samples have no GPUs."""
        if self._closed:
            return
        self._closed = True
        if self._opened and self._nvml is not None:
            self._nvml.shutdown()

    def __enter__(self) -> MemorySampler:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def _open(self) -> None:
        if self._opened or self._closed:
            return
        self._opened = True
        if self._nvml is None:
            self._nvml = default_nvml()
        self._reason = self._nvml.start()
        count = self._nvml.device_count()
        self._gpu_names = tuple(self._nvml.device_info(i).name for i in range(count))
        if count:
            self._reason = None

    def _gpu_sample(self, index: int, name: str) -> GpuMemorySample:
        assert self._nvml is not None  # checked by the caller
        mem = self._nvml.memory(index)
        return GpuMemorySample(index=index, name=name, used_bytes=mem.used_bytes, total_bytes=mem.total_bytes)
