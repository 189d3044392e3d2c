"""NVML through the fake pynvml module: the real PynvmlApi code path, replaying a recorded H100."""

from __future__ import annotations

import sys
from typing import Any

import psutil
import pytest

from advisor.hardware import nvml as nvml_mod
from advisor.hardware.nvml import (
    NO_DRIVER_REASON,
    NO_GPU_REASON,
    NO_MODULE_REASON,
    PynvmlApi,
    UnavailableNvml,
    format_cuda_version,
)
from advisor.hardware.sampler import MemorySampler
from tests.builders import fake_nvml
from tests.builders.fake_nvml import FakePynvml


@pytest.fixture
def recorded() -> dict[str, Any]:
    return fake_nvml.load_fixture()


def _started(fake: FakePynvml) -> PynvmlApi:
    api = PynvmlApi(fake)
    assert api.start() is None
    return api


def test_fixture_copy_in_repo_matches_preferred_location() -> None:
    path = fake_nvml.fixture_path()
    assert path is not None, "tests/fixtures/nvml_h100.json should ship with the repo"
    assert path.parent.name == "fixtures" and path.parents[1].name == "tests"


def test_h100_device_info_is_what_the_fixture_recorded(recorded: dict[str, Any]) -> None:
    fake = fake_nvml.h100()
    api = _started(fake)
    dev = recorded["queries"]["devices"][0]
    gpu = api.device_info(0)
    assert gpu.name == dev["name"] == "NVIDIA H100 80GB HBM3"
    assert gpu.vendor == "nvidia"
    assert gpu.memory_total_bytes == dev["memory_info"]["total"]
    assert gpu.memory_used_bytes == dev["memory_info"]["used"]
    assert gpu.memory_free_bytes == dev["memory_info"]["free"]
    assert gpu.compute_capability == "9.0"
    assert gpu.mig_mode is False  # recorded [0, 0]
    assert gpu.uuid == dev["uuid"]
    assert gpu.unified_memory is False
    assert api.device_count() == recorded["queries"]["device_count"] == 1
    assert api.driver_version() == recorded["queries"]["driver_version"] == "580.159.04"
    assert api.cuda_version() == "13.0"  # recorded 13000, as nvidia-smi prints "CUDA Version : 13.0"
    api.shutdown()
    assert fake.init_count == 0


def test_busy_answers_show_the_held_memory(recorded: dict[str, Any]) -> None:
    fake = fake_nvml.h100()
    api = _started(fake)
    idle = api.memory(0)
    fake.state = "busy"
    busy = api.memory(0)
    api.shutdown()
    assert busy.used_bytes == recorded["busy"]["memory_info"]["used"]
    assert busy.free_bytes == recorded["busy"]["memory_info"]["free"]
    assert idle.used_bytes is not None and busy.used_bytes is not None
    # the process held 10 GiB (plus its CUDA context): used grows by at least that much
    assert busy.used_bytes - idle.used_bytes >= recorded["busy"]["held_bytes_by_test"]
    assert busy.total_bytes == idle.total_bytes


@pytest.mark.parametrize(
    ("failing", "field"),
    [
        ("nvmlDeviceGetMigMode", "mig_mode"),
        ("nvmlDeviceGetCudaComputeCapability", "compute_capability"),
        ("nvmlDeviceGetUUID", "uuid"),
        ("nvmlDeviceGetMemoryInfo", "memory_total_bytes"),
    ],
)
def test_one_unsupported_metric_becomes_none_and_the_gpu_is_kept(failing: str, field: str) -> None:
    fake = fake_nvml.h100(fail={failing: fake_nvml.NVML_ERROR_NOT_SUPPORTED})
    api = _started(fake)
    gpu = api.device_info(0)
    api.shutdown()
    assert getattr(gpu, field) is None
    assert gpu.name == "NVIDIA H100 80GB HBM3"  # the rest is still read
    if failing != "nvmlDeviceGetMemoryInfo":
        assert gpu.memory_total_bytes == 85520809984
    assert fake.calls[failing] == 1


def test_failing_name_falls_back_to_a_placeholder() -> None:
    fake = fake_nvml.h100(fail={"nvmlDeviceGetName": fake_nvml.NVML_ERROR_GPU_IS_LOST})
    api = _started(fake)
    assert api.device_info(0).name == "NVIDIA GPU 0"
    api.shutdown()


def test_failing_cuda_and_driver_versions_are_none() -> None:
    fake = fake_nvml.h100(
        fail={
            "nvmlSystemGetCudaDriverVersion_v2": fake_nvml.NVML_ERROR_NOT_SUPPORTED,
            "nvmlSystemGetDriverVersion": fake_nvml.NVML_ERROR_NOT_SUPPORTED,
        }
    )
    api = _started(fake)
    assert api.cuda_version() is None and api.driver_version() is None
    assert api.device_count() == 1
    api.shutdown()


def test_library_not_found_means_no_gpus_and_a_reason() -> None:
    fake = fake_nvml.no_driver()
    api = PynvmlApi(fake)
    assert api.start() == NO_DRIVER_REASON == "no NVIDIA driver found (NVML library not loadable)"
    assert api.device_count() == 0
    assert api.driver_version() is None and api.cuda_version() is None
    api.shutdown()  # safe without a successful init
    assert fake.calls["nvmlShutdown"] == 0  # nothing was initialised, nothing to shut down


def test_driver_not_loaded_has_its_own_reason() -> None:
    fake = FakePynvml({}, fail={"nvmlInit": fake_nvml.NVML_ERROR_DRIVER_NOT_LOADED})
    reason = PynvmlApi(fake).start()
    assert reason is not None and "not loaded" in reason


def test_driver_with_no_gpu_says_so() -> None:
    fake = FakePynvml({"device_count": 0, "devices": []})
    api = PynvmlApi(fake)
    assert api.start() == NO_GPU_REASON
    api.shutdown()
    assert fake.calls["nvmlShutdown"] == 1 and fake.init_count == 0


def test_missing_pynvml_module_gives_a_reason(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(nvml_mod, "_driver_library_loads", lambda: True)  # a driver, but no nvidia-ml-py
    monkeypatch.setitem(sys.modules, "pynvml", None)  # makes `import pynvml` raise ImportError
    assert PynvmlApi().start() == NO_MODULE_REASON
    assert nvml_mod.default_nvml().start() == NO_MODULE_REASON


def test_no_driver_library_gives_its_reason_without_importing_pynvml(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(nvml_mod, "_driver_library_loads", lambda: False)
    monkeypatch.setitem(sys.modules, "pynvml", None)  # an import would raise: it is not attempted
    assert PynvmlApi().start() == nvml_mod.NO_DRIVER_REASON


def test_start_is_idempotent_and_handles_are_kept() -> None:
    fake = fake_nvml.h100()
    api = _started(fake)
    assert api.start() is None
    for _ in range(3):
        api.memory(0)
    api.shutdown()
    api.shutdown()
    assert fake.calls["nvmlInit"] == 1
    assert fake.calls["nvmlDeviceGetHandleByIndex"] == 1
    assert fake.calls["nvmlShutdown"] == 1


def test_queries_after_shutdown_raise_index_error_not_nvml_error() -> None:
    api = _started(fake_nvml.h100())
    api.shutdown()
    with pytest.raises(IndexError):
        api.memory(0)
    with pytest.raises(IndexError):
        UnavailableNvml("x").device_info(0)


@pytest.mark.parametrize(("raw", "text"), [(12080, "12.8"), (13000, "13.0"), (11040, "11.4"), (0, None), (None, None)])
def test_cuda_version_format(raw: int | None, text: str | None) -> None:
    assert format_cuda_version(raw) == text


def test_bytes_names_from_old_pynvml_are_decoded() -> None:
    class OldPynvml(FakePynvml):
        def nvmlDeviceGetName(self, handle: fake_nvml.FakeHandle) -> bytes:  # type: ignore[override]
            return super().nvmlDeviceGetName(handle).encode()

    old = OldPynvml(fake_nvml.h100().queries)
    api = _started(old)
    assert api.device_info(0).name == "NVIDIA H100 80GB HBM3"
    api.shutdown()


# -- the live sampler ------------------------------------------------------------------------------


class _VM:
    def __init__(self, total: int, available: int) -> None:
        self.total, self.available = total, available


class _Swap:
    def __init__(self, total: int, used: int) -> None:
        self.total, self.used = total, used


def test_sampler_ram_used_is_total_minus_available(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(psutil, "virtual_memory", lambda: _VM(16 * 2**30, 10 * 2**30))
    monkeypatch.setattr(psutil, "swap_memory", lambda: _Swap(4 * 2**30, 2**30))
    ticks = iter([5.0, 6.0])
    with MemorySampler(nvml=UnavailableNvml("no driver"), clock=lambda: next(ticks)) as sampler:
        first, second = sampler.sample(), sampler.sample()
    assert first.ram_used_bytes == 6 * 2**30
    assert first.ram_total_bytes == 16 * 2**30 and first.ram_available_bytes == 10 * 2**30
    assert first.swap_used_bytes == 2**30 and first.swap_total_bytes == 4 * 2**30
    assert first.gpus == ()
    assert (first.time_s, second.time_s) == (5.0, 6.0)
    assert sampler.gpu_unavailable_reason == "no driver"


def test_sampler_follows_the_gpu_from_idle_to_busy(recorded: dict[str, Any]) -> None:
    fake = fake_nvml.h100()
    sampler = MemorySampler(nvml=PynvmlApi(fake))
    idle = sampler.sample()
    fake.state = "busy"
    busy = sampler.sample()
    sampler.close()
    assert [g.name for g in idle.gpus] == ["NVIDIA H100 80GB HBM3"]
    assert idle.gpus[0].used_bytes == recorded["queries"]["devices"][0]["memory_info"]["used"]
    assert busy.gpus[0].used_bytes == recorded["busy"]["memory_info"]["used"]
    assert busy.gpus[0].total_bytes == recorded["busy"]["memory_info"]["total"]
    assert sampler.gpu_unavailable_reason is None
    assert busy.time_s >= idle.time_s


def test_sampler_inits_nvml_once_keeps_handles_and_closes_once() -> None:
    fake = fake_nvml.h100()
    sampler = MemorySampler(nvml=PynvmlApi(fake))
    assert fake.calls["nvmlInit"] == 0  # nothing happens before the first sample
    for _ in range(5):
        sampler.sample()
    assert fake.calls["nvmlInit"] == 1
    assert fake.calls["nvmlDeviceGetHandleByIndex"] == 1
    assert fake.calls["nvmlDeviceGetMemoryInfo"] == 1 + 5  # device_info once, then once per sample
    sampler.close()
    sampler.close()
    assert fake.calls["nvmlShutdown"] == 1 and fake.init_count == 0
    assert sampler.sample().gpus == ()  # closed: RAM and swap only, NVML not reopened
    assert fake.calls["nvmlInit"] == 1


def test_sampler_without_driver_samples_ram_only() -> None:
    with MemorySampler(nvml=PynvmlApi(fake_nvml.no_driver())) as sampler:
        sample = sampler.sample()
    assert sample.gpus == ()
    assert sample.ram_total_bytes > 0
    assert 0 <= sample.ram_used_bytes <= sample.ram_total_bytes
    assert sampler.gpu_unavailable_reason == NO_DRIVER_REASON


def test_sampler_on_jetson_reports_unknown_gpu_memory_as_none() -> None:
    with MemorySampler(nvml=PynvmlApi(fake_nvml.jetson_orin())) as sampler:
        gpu = sampler.sample().gpus[0]
    assert gpu.name == "Orin (nvgpu)"
    assert gpu.used_bytes is None and gpu.total_bytes is None
