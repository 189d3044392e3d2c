"""NVIDIA GPUs through NVML, behind a small interface so the app goes on without a driver.

Design after Vorta's ``network_status`` (an abstract probe, the platform module imported lazily
inside a factory, a do-nothing fallback) and glances' NVIDIA card plugin (every metric read on its
own; a metric that raises ``NVMLError`` becomes ``None`` and the GPU is kept).

:class:`PynvmlApi` works over any object with pynvml's function names: the real ``pynvml`` module
by default, or the fake in ``tests/builders/fake_nvml.py``, so tests run this very code.
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

from advisor.hardware.profile import GpuInfo

T = TypeVar("T")

NO_DRIVER_REASON = "no NVIDIA driver found (NVML library not loadable)"
NO_MODULE_REASON = "nvidia-ml-py is not installed, so NVIDIA GPUs cannot be queried"
NO_GPU_REASON = "the NVIDIA driver reports no GPU"


@dataclass(frozen=True)
class GpuMemory:
    """Memory of one GPU now, in bytes; None where NVML cannot say (Jetson)."""

    total_bytes: int | None
    used_bytes: int | None
    free_bytes: int | None


class NvmlApi(Protocol):
    """What the probe and the sampler need from NVML.

    Call :meth:`start` first (idempotent) and :meth:`shutdown` at the end (always safe).
    """

    def start(self) -> str | None:
        """Initialise; None when GPUs can be queried, else why not (a sentence for a person)."""
        ...

    def shutdown(self) -> None:
        """Release NVML; safe to call twice or without :meth:`start`."""
        ...

    def driver_version(self) -> str | None: ...

    def cuda_version(self) -> str | None: ...

    def device_count(self) -> int: ...

    def device_info(self, index: int) -> GpuInfo:
        """Everything the probe reports for GPU ``index``; unreadable fields are None."""
        ...

    def memory(self, index: int) -> GpuMemory:
        """Memory of GPU ``index`` now: one cheap NVML call, for the live sampler."""
        ...


class UnavailableNvml:
    """The do-nothing fallback: no GPUs, and a reason."""

    def __init__(self, reason: str) -> None:
        self.reason = reason

    def start(self) -> str | None:
        return self.reason

    def shutdown(self) -> None:
        return None

    def driver_version(self) -> str | None:
        return None

    def cuda_version(self) -> str | None:
        return None

    def device_count(self) -> int:
        return 0

    def device_info(self, index: int) -> GpuInfo:
        raise IndexError(f"no NVIDIA GPU {index}: {self.reason}")

    def memory(self, index: int) -> GpuMemory:
        return GpuMemory(None, None, None)


class PynvmlApi:
    """:class:`NvmlApi` over the ``pynvml`` module (nvidia-ml-py) or an object shaped like it.

    Args:
        module: the pynvml module or a fake of it; None imports ``pynvml`` lazily in :meth:`start`.
    """

    def __init__(self, module: Any | None = None) -> None:
        self._module: Any = module  # pynvml or a fake; None until start() imports it
        self._started = False
        self._reason: str | None = None
        self._handles: list[Any] = []

    # -- life cycle ---------------------------------------------------------------------------
    def start(self) -> str | None:
        if self._started or self._reason is not None:
            return self._reason
        if self._module is None:
            if not _driver_library_loads():
                self._reason = NO_DRIVER_REASON
                return self._reason
            try:
                import pynvml  # lazy: the driver library loads only when asked
            except ImportError:
                self._reason = NO_MODULE_REASON
                return self._reason
            self._module = pynvml
        nv = self._module
        try:
            nv.nvmlInit()
        except nv.NVMLError as exc:
            self._reason = _init_failure_reason(nv, exc)
            return self._reason
        except OSError as exc:  # a broken library on disk
            self._reason = f"NVML could not start ({exc})"
            return self._reason
        self._started = True
        count = self._read(nv.nvmlDeviceGetCount)
        if count is None:
            self._reason = "NVML could not count the GPUs"
        elif count == 0:
            self._reason = NO_GPU_REASON
        self._handles = [self._read(nv.nvmlDeviceGetHandleByIndex, i) for i in range(count or 0)]
        return self._reason

    def shutdown(self) -> None:
        if not self._started:
            return
        self._started = False
        self._handles = []
        with contextlib.suppress(self._module.NVMLError, OSError):  # nothing left we could act on
            self._module.nvmlShutdown()

    # -- queries ------------------------------------------------------------------------------
    def driver_version(self) -> str | None:
        if not self._started:
            return None
        return _text(self._read(self._module.nvmlSystemGetDriverVersion))

    def cuda_version(self) -> str | None:
        if not self._started:
            return None
        return format_cuda_version(self._read(self._module.nvmlSystemGetCudaDriverVersion_v2))

    def device_count(self) -> int:
        return len(self._handles)

    def device_info(self, index: int) -> GpuInfo:
        handle = self._handle(index)
        nv = self._module
        mem = self.memory(index)
        cc = self._on(handle, nv.nvmlDeviceGetCudaComputeCapability)
        mig = self._on(handle, nv.nvmlDeviceGetMigMode)
        return GpuInfo(
            index=index,
            name=_text(self._on(handle, nv.nvmlDeviceGetName)) or f"NVIDIA GPU {index}",
            vendor="nvidia",
            memory_total_bytes=mem.total_bytes,
            memory_used_bytes=mem.used_bytes,
            memory_free_bytes=mem.free_bytes,
            compute_capability=_format_cc(cc),
            mig_mode=_mig_enabled(mig),
            uuid=_text(self._on(handle, nv.nvmlDeviceGetUUID)),
        )

    def memory(self, index: int) -> GpuMemory:
        handle = self._handle(index)
        info = self._on(handle, self._module.nvmlDeviceGetMemoryInfo)
        if info is None:
            return GpuMemory(None, None, None)
        return GpuMemory(
            total_bytes=_int_attr(info, "total"),
            used_bytes=_int_attr(info, "used"),
            free_bytes=_int_attr(info, "free"),
        )

    # -- helpers ------------------------------------------------------------------------------
    def _handle(self, index: int) -> Any:
        if not self._started or not 0 <= index < len(self._handles):
            raise IndexError(f"no NVIDIA GPU {index} (NVML has {len(self._handles)})")
        return self._handles[index]

    def _on(self, handle: Any, fn: Callable[[Any], T]) -> T | None:
        """``fn(handle)``, or None without a handle (the GPU could not be opened)."""
        return None if handle is None else self._read(fn, handle)

    def _read(self, fn: Callable[..., T], *args: Any) -> T | None:
        """One metric: its value, or None when NVML says it is unsupported or failed (glances)."""
        try:
            return fn(*args)
        except (self._module.NVMLError, OSError, UnicodeDecodeError):
            return None


def default_nvml() -> NvmlApi:
    """The NVML to use on this machine: pynvml, imported when first started."""
    return PynvmlApi()


def format_cuda_version(value: Any) -> str | None:
    """NVML's CUDA driver version integer (12080) as "12.8"; None stays None."""
    if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
        return None
    return f"{value // 1000}.{(value % 1000) // 10}"


def _driver_library_loads() -> bool:
    """Whether the NVML library pynvml would load is there (Linux: ``libnvidia-ml.so.1``, the
    name nvidia-ml-py's ``_LoadNvmlLibrary`` opens); elsewhere assumed, and pynvml decides.

    A machine without the NVIDIA driver then skips importing pynvml (12 ms of a first verdict)
    only to have ``nvmlInit`` fail with NVML_ERROR_LIBRARY_NOT_FOUND.
    """
    if not sys.platform.startswith("linux"):
        return True
    import ctypes

    try:
        ctypes.CDLL("libnvidia-ml.so.1")
    except OSError:
        return False
    return True


def _init_failure_reason(nv: Any, exc: BaseException) -> str:
    value = getattr(exc, "value", None)
    if value == getattr(nv, "NVML_ERROR_LIBRARY_NOT_FOUND", 12):
        return NO_DRIVER_REASON
    if value == getattr(nv, "NVML_ERROR_DRIVER_NOT_LOADED", 9):
        return "the NVIDIA driver is installed but not loaded"
    if value == getattr(nv, "NVML_ERROR_NO_PERMISSION", 4):
        return "no permission to query the NVIDIA driver"
    return f"NVML could not start ({exc})"


def _text(value: Any) -> str | None:
    if isinstance(value, bytes):  # nvidia-ml-py before 11.515 returned bytes
        value = value.decode("utf-8", errors="replace")
    if not isinstance(value, str):
        return None
    return value.strip() or None


def _int_attr(obj: Any, name: str) -> int | None:
    value = getattr(obj, name, None)
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _format_cc(value: Any) -> str | None:
    if isinstance(value, tuple | list) and len(value) == 2 and all(isinstance(v, int) for v in value):
        return f"{value[0]}.{value[1]}"
    return None


def _mig_enabled(value: Any) -> bool | None:
    """nvmlDeviceGetMigMode answers (current, pending); current 1 means MIG is on."""
    if isinstance(value, tuple | list) and value and isinstance(value[0], int):
        return value[0] == 1
    return None
