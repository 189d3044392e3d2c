"""A fake ``pynvml`` module that replays what a real NVIDIA H100 answered (tests/fixtures/nvml_h100.json).

The fake has pynvml's function names, so ``advisor.hardware.nvml.PynvmlApi(fake)`` runs the same
code as on a real machine. Errors are pynvml's own ``NVMLError`` classes; any call can be made to
fail with a chosen NVML error code (``fail={"nvmlDeviceGetMigMode": NVML_ERROR_NOT_SUPPORTED}``),
and an answer recorded as ``{"error": "NVMLError_NotSupported"}`` is raised as that error.

    fake = h100()                       # idle H100
    fake.state = "busy"                 # the fixture's "busy" answers (10 GiB held by a process)
    no_driver()                         # nvmlInit raises NVMLError_LibraryNotFound
    jetson_orin()                       # memory queries raise NOT_SUPPORTED, like a Jetson
"""

from __future__ import annotations

import copy
import json
from collections import Counter
from collections.abc import Mapping
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pynvml
import pytest

FIXTURE_NAME = "nvml_h100.json"
# The repo's own copy first; the shared fixtures folder beside the checkout second.
FIXTURE_CANDIDATES = (
    Path(__file__).resolve().parents[1] / "fixtures" / FIXTURE_NAME,
    Path(__file__).resolve().parents[2] / "shared" / "fixtures" / FIXTURE_NAME,
)

NVML_ERROR_NOT_SUPPORTED = pynvml.NVML_ERROR_NOT_SUPPORTED
NVML_ERROR_LIBRARY_NOT_FOUND = pynvml.NVML_ERROR_LIBRARY_NOT_FOUND
NVML_ERROR_DRIVER_NOT_LOADED = pynvml.NVML_ERROR_DRIVER_NOT_LOADED
NVML_ERROR_GPU_IS_LOST = pynvml.NVML_ERROR_GPU_IS_LOST


def fixture_path() -> Path | None:
    """Where the recorded H100 answers are, or None when neither copy exists."""
    return next((p for p in FIXTURE_CANDIDATES if p.is_file()), None)


def load_fixture() -> dict[str, Any]:
    """The recorded H100 answers; skips the calling test when the file is missing."""
    path = fixture_path()
    if path is None:
        pytest.skip(f"{FIXTURE_NAME} not found in tests/fixtures/ or ../shared/fixtures/")
    data: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return data


class FakeHandle:
    """What nvmlDeviceGetHandleByIndex returns: it only knows its index."""

    def __init__(self, index: int) -> None:
        self.index = index

    def __repr__(self) -> str:
        return f"FakeHandle({self.index})"


class FakePynvml:
    """An object shaped like the ``pynvml`` module, answering from recorded queries.

    Args:
        queries: the fixture's ``queries`` object (driver_version, cuda_driver_version, devices...).
        busy: answers that replace device 0's when :attr:`state` is "busy" (the fixture's ``busy``).
        fail: function name → NVML error code that the call raises.
    """

    NVMLError = pynvml.NVMLError
    NVMLError_LibraryNotFound = pynvml.NVMLError_LibraryNotFound
    NVMLError_NotSupported = pynvml.NVMLError_NotSupported
    NVMLError_Uninitialized = pynvml.NVMLError_Uninitialized
    NVML_ERROR_NOT_SUPPORTED = pynvml.NVML_ERROR_NOT_SUPPORTED
    NVML_ERROR_LIBRARY_NOT_FOUND = pynvml.NVML_ERROR_LIBRARY_NOT_FOUND
    NVML_ERROR_DRIVER_NOT_LOADED = pynvml.NVML_ERROR_DRIVER_NOT_LOADED
    NVML_ERROR_NO_PERMISSION = pynvml.NVML_ERROR_NO_PERMISSION
    NVML_TEMPERATURE_GPU = pynvml.NVML_TEMPERATURE_GPU

    def __init__(
        self,
        queries: Mapping[str, Any],
        busy: Mapping[str, Any] | None = None,
        fail: Mapping[str, int] | None = None,
    ) -> None:
        self.queries = copy.deepcopy(dict(queries))
        self.busy = copy.deepcopy(dict(busy or {}))
        self.fail: dict[str, int] = dict(fail or {})
        self.state = "idle"
        self.calls: Counter[str] = Counter()
        self.init_count = 0  # NVML counts nvmlInit/nvmlShutdown pairs

    # -- life cycle ---------------------------------------------------------------------------
    def nvmlInit(self) -> None:
        self._enter("nvmlInit", needs_init=False)
        self.init_count += 1

    def nvmlShutdown(self) -> None:
        self._enter("nvmlShutdown")
        self.init_count -= 1

    # -- system -------------------------------------------------------------------------------
    def nvmlSystemGetDriverVersion(self) -> str:
        return str(self._system("nvmlSystemGetDriverVersion", "driver_version"))

    def nvmlSystemGetNVMLVersion(self) -> str:
        return str(self._system("nvmlSystemGetNVMLVersion", "nvml_version"))

    def nvmlSystemGetCudaDriverVersion(self) -> int:
        return int(self._system("nvmlSystemGetCudaDriverVersion", "cuda_driver_version"))

    def nvmlSystemGetCudaDriverVersion_v2(self) -> int:
        return int(self._system("nvmlSystemGetCudaDriverVersion_v2", "cuda_driver_version"))

    def nvmlDeviceGetCount(self) -> int:
        return int(self._system("nvmlDeviceGetCount", "device_count"))

    def nvmlDeviceGetHandleByIndex(self, index: int) -> FakeHandle:
        self._enter("nvmlDeviceGetHandleByIndex")
        if not 0 <= index < len(self.queries.get("devices", [])):
            raise pynvml.NVMLError(pynvml.NVML_ERROR_INVALID_ARGUMENT)
        return FakeHandle(index)

    # -- devices ------------------------------------------------------------------------------
    def nvmlDeviceGetName(self, handle: FakeHandle) -> str:
        return str(self._device("nvmlDeviceGetName", handle, "name"))

    def nvmlDeviceGetUUID(self, handle: FakeHandle) -> str:
        return str(self._device("nvmlDeviceGetUUID", handle, "uuid"))

    def nvmlDeviceGetMemoryInfo(self, handle: FakeHandle, version: int | None = None) -> SimpleNamespace:
        key = "memory_info" if version is None else "memory_info_v2"
        return SimpleNamespace(**self._device("nvmlDeviceGetMemoryInfo", handle, key))

    def nvmlDeviceGetCudaComputeCapability(self, handle: FakeHandle) -> tuple[int, int]:
        major, minor = self._device("nvmlDeviceGetCudaComputeCapability", handle, "cuda_compute_capability")
        return int(major), int(minor)

    def nvmlDeviceGetMigMode(self, handle: FakeHandle) -> list[int]:
        return list(self._device("nvmlDeviceGetMigMode", handle, "mig_mode"))

    def nvmlDeviceGetUtilizationRates(self, handle: FakeHandle) -> SimpleNamespace:
        return SimpleNamespace(**self._device("nvmlDeviceGetUtilizationRates", handle, "utilization"))

    def nvmlDeviceGetTemperature(self, handle: FakeHandle, sensor: int) -> int:
        return int(self._device("nvmlDeviceGetTemperature", handle, "temperature"))

    def nvmlDeviceGetPowerUsage(self, handle: FakeHandle) -> int:
        return int(self._device("nvmlDeviceGetPowerUsage", handle, "power_usage_mw"))

    def nvmlDeviceGetComputeRunningProcesses(self, handle: FakeHandle) -> list[SimpleNamespace]:
        procs = self._device("nvmlDeviceGetComputeRunningProcesses", handle, "compute_processes")
        return [SimpleNamespace(**p) for p in procs]

    # -- replay -------------------------------------------------------------------------------
    def _enter(self, fn: str, needs_init: bool = True) -> None:
        self.calls[fn] += 1
        if fn in self.fail:
            raise pynvml.NVMLError(self.fail[fn])
        if needs_init and self.init_count <= 0:
            raise pynvml.NVMLError(pynvml.NVML_ERROR_UNINITIALIZED)

    def _system(self, fn: str, key: str) -> Any:
        self._enter(fn)
        return _replay(self.queries.get(key, _NOT_RECORDED))

    def _device(self, fn: str, handle: FakeHandle, key: str) -> Any:
        self._enter(fn)
        answers = self.queries["devices"][handle.index]
        if self.state == "busy" and handle.index == 0 and key in self.busy:
            answers = self.busy
        return _replay(answers.get(key, _NOT_RECORDED))


_NOT_RECORDED = {"error": "NVMLError_NotSupported", "message": "not recorded in the fixture"}


def _replay(value: Any) -> Any:
    """A recorded answer; a recorded failure is raised as the pynvml error class it names."""
    if isinstance(value, dict) and "error" in value:
        raise getattr(pynvml, value["error"])()
    return copy.deepcopy(value)


def h100(fail: Mapping[str, int] | None = None) -> FakePynvml:
    """The recorded H100 (idle; set ``state = "busy"`` for the busy answers)."""
    data = load_fixture()
    return FakePynvml(data["queries"], busy=data.get("busy"), fail=fail)


def no_driver() -> FakePynvml:
    """A machine without the NVIDIA driver: nvmlInit raises NVMLError_LibraryNotFound."""
    return FakePynvml({"device_count": 0, "devices": []}, fail={"nvmlInit": NVML_ERROR_LIBRARY_NOT_FOUND})


def jetson_orin() -> FakePynvml:
    """A Jetson Orin on JetPack 6: NVML names the GPU but its memory queries are NOT_SUPPORTED."""
    not_supported = {"error": "NVMLError_NotSupported", "message": "Not Supported"}
    return FakePynvml(
        {
            "driver_version": "540.4.0",
            "cuda_driver_version": 12060,
            "device_count": 1,
            "devices": [
                {
                    "name": "Orin (nvgpu)",
                    "uuid": not_supported,
                    "memory_info": not_supported,
                    "memory_info_v2": not_supported,
                    "cuda_compute_capability": [8, 7],
                    "mig_mode": not_supported,
                }
            ],
        }
    )
