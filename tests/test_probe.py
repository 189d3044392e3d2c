"""Probing this machine: /proc/cpuinfo parsing, Jetson and Apple silicon, NVML via the fake, the real probe."""

from __future__ import annotations

import shutil
from collections.abc import Sequence
from pathlib import Path

import pytest

from advisor.hardware.cpu import SystemFiles, parse_cpuinfo, probe_cpu
from advisor.hardware.nvml import NO_DRIVER_REASON, PynvmlApi
from advisor.hardware.probe import disk_free_bytes, jetson_model, probe
from tests.builders import fake_nvml, hardware

# NOTE: first processor block of /proc/cpuinfo on a 4th-gen Xeon (Sapphire Rapids) cloud VM.
X86_SAPPHIRE_RAPIDS = """\
processor\t: 0
vendor_id\t: GenuineIntel
cpu family\t: 6
model\t\t: 143
model name\t: Intel(R) Xeon(R) Platinum 8481C CPU @ 2.70GHz
flags\t\t: fpu vme de pse tsc msr pae mce cx8 apic sep mtrr sse sse2 ssse3 fma cx16 sse4_1 sse4_2 \
avx f16c rdrand avx2 bmi2 avx512f avx512dq avx512cd avx512bw avx512vl avx512_bf16 avx512vbmi \
avx512_vbmi2 gfni vaes avx512_vnni avx512_bitalg avx512_vpopcntdq avx_vnni avx512_fp16 amx_bf16 \
amx_tile amx_int8 arch_capabilities
bugs\t\t: spectre_v1 spectre_v2

processor\t: 1
model name\t: Intel(R) Xeon(R) Platinum 8481C CPU @ 2.70GHz
flags\t\t: fpu sse sse2
"""

# NOTE: an older laptop CPU (Haswell): AVX2 and FMA, nothing AVX-512.
X86_HASWELL = """\
processor\t: 0
model name\t: Intel(R) Core(TM) i5-4300U CPU @ 1.90GHz
flags\t\t: fpu sse sse2 ssse3 fma sse4_1 sse4_2 avx f16c avx2 bmi1 bmi2
"""

# NOTE: Raspberry Pi 5 (Cortex-A76, aarch64 kernel): no "model name", the core is in "CPU part".
ARM_PI5 = """\
processor\t: 0
BogoMIPS\t: 108.00
Features\t: fp asimd evtstrm aes pmull sha1 sha2 crc32 atomics fphp asimdhp cpuid asimdrdm lrcpc dcpop asimddp
CPU implementer\t: 0x41
CPU architecture: 8
CPU variant\t: 0x4
CPU part\t: 0xd0b
CPU revision\t: 1

Revision\t: d04170
Model\t\t: Raspberry Pi 5 Model B Rev 1.0
"""

# NOTE: Raspberry Pi 4 on 32-bit Raspberry Pi OS: the armhf kernel says "neon", not "asimd".
ARM_PI4_32BIT = """\
processor\t: 0
model name\t: ARMv7 Processor rev 3 (v7l)
BogoMIPS\t: 108.00
Features\t: half thumb fastmult vfp edsp neon vfpv3 tls vfpv4 idiva idivt vfpd32 lpae evtstrm crc32
CPU implementer\t: 0x41
CPU part\t: 0xd08
"""

# NOTE: AWS Graviton3 (Neoverse-V1): SVE, I8MM and BF16.
ARM_GRAVITON3 = """\
processor\t: 0
BogoMIPS\t: 2100.00
Features\t: fp asimd evtstrm aes pmull sha1 sha2 crc32 atomics fphp asimdhp cpuid asimdrdm jscvt fcma \
lrcpc dcpop sha3 sm3 sm4 asimddp sha512 sve asimdfhm dit uscat ilrcpc flagm ssbs paca pacg dcpodp svei8mm \
svebf16 i8mm bf16 dgh rng
CPU implementer\t: 0x41
CPU part\t: 0xd40
"""

JETSON_ORIN_CPUINFO = ARM_PI5.replace("0xd0b", "0xd42").replace("Model\t\t: Raspberry Pi 5 Model B Rev 1.0\n", "")


# -- /proc/cpuinfo ---------------------------------------------------------------------------------


def test_x86_sapphire_rapids_features_and_model() -> None:
    facts = parse_cpuinfo(X86_SAPPHIRE_RAPIDS)
    assert facts.model == "Intel(R) Xeon(R) Platinum 8481C CPU @ 2.70GHz"
    assert facts.features == (
        "avx", "avx2", "fma", "f16c", "avx512f", "avx512bw", "avx512_vnni", "avx512_bf16",
        "avx512_fp16", "avx_vnni", "amx_tile", "amx_bf16", "amx_int8",
    )  # fmt: skip


def test_x86_without_avx512_reports_only_what_it_has() -> None:
    facts = parse_cpuinfo(X86_HASWELL)
    assert facts.features == ("avx", "avx2", "fma", "f16c")
    assert "avx512f" not in facts.features


def test_arm_pi5_neon_and_dotprod_and_core_name() -> None:
    facts = parse_cpuinfo(ARM_PI5)
    assert facts.features == ("neon", "dotprod")
    assert facts.model == "Arm Cortex-A76"


def test_arm_32bit_neon_flag() -> None:
    facts = parse_cpuinfo(ARM_PI4_32BIT)
    assert facts.features == ("neon",)
    assert facts.model == "ARMv7 Processor rev 3 (v7l)"


def test_arm_graviton3_sve_i8mm_bf16_but_not_sve2() -> None:
    facts = parse_cpuinfo(ARM_GRAVITON3)
    assert facts.features == ("neon", "dotprod", "i8mm", "sve", "bf16")  # svei8mm/svebf16 are not i8mm/bf16
    assert facts.model == "Arm Neoverse-V1"


def test_empty_or_odd_cpuinfo_gives_nothing_rather_than_failing() -> None:
    assert parse_cpuinfo("") == parse_cpuinfo("garbage without colons\n\n")
    assert parse_cpuinfo("").features == () and parse_cpuinfo("").model is None


def test_probe_cpu_reads_the_injected_root(tmp_path: Path) -> None:
    _write(tmp_path, "proc/cpuinfo", ARM_PI5)
    cpu = probe_cpu(SystemFiles(root=tmp_path, system="Linux", machine="aarch64"))
    assert cpu.model == "Arm Cortex-A76"
    assert cpu.arch == "aarch64"
    assert cpu.features == ("neon", "dotprod")
    assert cpu.logical_cores is not None and cpu.logical_cores >= 1


def test_missing_cpuinfo_leaves_model_and_features_empty(tmp_path: Path) -> None:
    cpu = probe_cpu(SystemFiles(root=tmp_path, system="Linux", machine="x86_64"))
    assert cpu.model is None and cpu.features == ()


def test_macos_reads_sysctl_once(tmp_path: Path) -> None:
    asked: list[Sequence[str]] = []

    def sysctl(names: Sequence[str]) -> dict[str, str]:
        asked.append(names)
        return {
            "machdep.cpu.brand_string": "Apple M2",
            "hw.optional.AdvSIMD": "1",
            "hw.optional.arm.FEAT_DotProd": "1",
            "hw.optional.arm.FEAT_I8MM": "1",
            "hw.optional.arm.FEAT_BF16": "1",
            "hw.optional.avx2_0": "0",
        }

    cpu = probe_cpu(SystemFiles(root=tmp_path, system="Darwin", machine="arm64", sysctl=sysctl))
    assert len(asked) == 1
    assert cpu.model == "Apple M2"
    assert cpu.features == ("neon", "dotprod", "i8mm", "bf16")


# -- probe -----------------------------------------------------------------------------------------


def test_probe_with_fake_h100(tmp_path: Path) -> None:
    _write(tmp_path, "proc/cpuinfo", X86_SAPPHIRE_RAPIDS)
    fake = fake_nvml.h100()
    prof = probe(tmp_path, nvml=PynvmlApi(fake), files=SystemFiles(root=tmp_path, system="Linux", machine="x86_64"))
    assert prof.source == "probe" and prof.kind == "this-machine" and prof.is_live
    assert prof.name.startswith("This machine (")
    assert [g.name for g in prof.gpus] == ["NVIDIA H100 80GB HBM3"]
    assert prof.gpus[0].memory_total_bytes == 85520809984
    assert prof.has_cuda_gpu
    assert prof.gpu_unavailable_reason is None
    assert prof.driver_version == "580.159.04" and prof.cuda_version == "13.0"
    assert prof.unified_memory is False
    assert "amx_tile" in prof.cpu.features
    assert fake.calls["nvmlShutdown"] == 1 and fake.init_count == 0


def test_probe_without_driver_has_no_gpu_and_says_why(tmp_path: Path) -> None:
    prof = probe(tmp_path, nvml=PynvmlApi(fake_nvml.no_driver()), files=SystemFiles(root=tmp_path, system="Linux"))
    assert prof.gpus == ()
    assert prof.gpu_unavailable_reason == NO_DRIVER_REASON
    assert prof.driver_version is None and prof.cuda_version is None


def test_probe_shuts_nvml_down_even_when_a_query_blows_up(tmp_path: Path) -> None:
    class Exploding(fake_nvml.FakePynvml):
        def nvmlDeviceGetName(self, handle: fake_nvml.FakeHandle) -> str:
            raise RuntimeError("unexpected")

    fake = Exploding(fake_nvml.h100().queries)
    with pytest.raises(RuntimeError):
        probe(tmp_path, nvml=PynvmlApi(fake), files=SystemFiles(root=tmp_path, system="Linux"))
    assert fake.calls["nvmlShutdown"] == 1 and fake.init_count == 0


def test_jetson_with_nvml_memory_not_supported_gets_the_ram(tmp_path: Path) -> None:
    _write(tmp_path, "proc/cpuinfo", JETSON_ORIN_CPUINFO)
    _write(tmp_path, "proc/device-tree/model", "NVIDIA Jetson Orin Nano Developer Kit\x00")
    files = SystemFiles(root=tmp_path, system="Linux", machine="aarch64")
    prof = probe(tmp_path, nvml=PynvmlApi(fake_nvml.jetson_orin()), files=files)
    assert len(prof.gpus) == 1
    gpu = prof.gpus[0]
    assert gpu.name == "Orin (nvgpu)"
    assert gpu.unified_memory is True and prof.unified_memory is True
    assert gpu.memory_total_bytes == prof.memory_total_bytes
    assert gpu.memory_free_bytes == prof.memory_available_bytes
    assert gpu.compute_capability == "8.7"
    assert gpu.mig_mode is None  # NOT_SUPPORTED on Jetson
    assert prof.gpu_unavailable_reason is None
    assert prof.cuda_version == "12.6"
    assert prof.cpu.model == "Arm Cortex-A78AE"


def test_jetson_without_nvml_still_has_its_unified_gpu(tmp_path: Path) -> None:
    _write(tmp_path, "proc/device-tree/model", "NVIDIA Jetson AGX Orin Developer Kit\x00")
    files = SystemFiles(root=tmp_path, system="Linux", machine="aarch64")
    prof = probe(tmp_path, nvml=PynvmlApi(fake_nvml.no_driver()), files=files)
    assert [g.name for g in prof.gpus] == ["NVIDIA Jetson AGX Orin (integrated GPU)"]
    assert prof.gpus[0].memory_total_bytes == prof.memory_total_bytes
    assert prof.gpus[0].unified_memory and prof.gpus[0].compute_capability == "8.7"
    assert prof.gpu_unavailable_reason is None


def test_jetson_detected_from_tegra_release_alone(tmp_path: Path) -> None:
    _write(tmp_path, "etc/nv_tegra_release", "# R35 (release), REVISION: 4.1\n")
    assert jetson_model(SystemFiles(root=tmp_path)) == "NVIDIA Jetson"


def test_raspberry_pi_is_not_a_jetson(tmp_path: Path) -> None:
    _write(tmp_path, "proc/device-tree/model", "Raspberry Pi 5 Model B Rev 1.0\x00")
    assert jetson_model(SystemFiles(root=tmp_path)) is None
    prof = probe(tmp_path, nvml=PynvmlApi(fake_nvml.no_driver()), files=SystemFiles(root=tmp_path, system="Linux"))
    assert prof.gpus == () and prof.unified_memory is False


def test_apple_silicon_has_a_unified_apple_gpu(tmp_path: Path) -> None:
    files = SystemFiles(
        root=tmp_path, system="Darwin", machine="arm64",
        sysctl=lambda names: {"machdep.cpu.brand_string": "Apple M3 Pro", "hw.optional.neon": "1"},
    )  # fmt: skip
    prof = probe(tmp_path, nvml=PynvmlApi(fake_nvml.no_driver()), files=files)
    assert len(prof.gpus) == 1
    gpu = prof.gpus[0]
    assert (gpu.name, gpu.vendor, gpu.unified_memory) == ("Apple M3 Pro GPU", "apple", True)
    assert gpu.memory_total_bytes == prof.memory_total_bytes
    assert prof.unified_memory is True
    assert not prof.has_cuda_gpu


def test_intel_mac_has_no_apple_gpu(tmp_path: Path) -> None:
    files = SystemFiles(
        root=tmp_path,
        system="Darwin",
        machine="x86_64",
        sysctl=lambda names: {"hw.optional.avx2_0": "1", "hw.optional.fma": "1"},
    )
    prof = probe(tmp_path, nvml=PynvmlApi(fake_nvml.no_driver()), files=files)
    assert prof.gpus == () and prof.unified_memory is False
    assert prof.cpu.features == ("avx2", "fma")


def test_unreadable_files_leave_fields_empty(tmp_path: Path) -> None:
    (tmp_path / "proc" / "cpuinfo").mkdir(parents=True)  # reading it raises IsADirectoryError, even as root
    (tmp_path / "proc" / "device-tree" / "model").mkdir(parents=True)
    prof = probe(tmp_path, nvml=PynvmlApi(fake_nvml.no_driver()), files=SystemFiles(root=tmp_path, system="Linux"))
    assert prof.cpu.model is None and prof.cpu.features == ()
    assert prof.gpus == ()
    assert prof.memory_total_bytes > 0


def test_disk_free_of_a_folder_not_yet_made_is_its_parents(tmp_path: Path) -> None:
    free = disk_free_bytes(tmp_path / "models" / "not" / "yet")
    assert free is not None and free > 0


def test_disk_free_is_none_when_the_disk_cannot_be_read(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(path: object) -> None:
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(shutil, "disk_usage", refuse)
    assert disk_free_bytes(tmp_path) is None
    assert probe(tmp_path, nvml=PynvmlApi(fake_nvml.no_driver())).disk_free_bytes is None


def test_probe_on_this_machine_is_sane() -> None:
    prof = probe()
    assert prof.memory_total_bytes > 0
    assert prof.memory_available_bytes is not None
    assert 0 < prof.memory_available_bytes <= prof.memory_total_bytes
    assert prof.cpu.logical_cores is not None and prof.cpu.logical_cores >= 1
    assert prof.cpu.physical_cores is None or prof.cpu.physical_cores >= 1
    assert prof.cpu.arch
    assert prof.disk_free_bytes is not None and prof.disk_free_bytes > 0
    assert prof.swap_total_bytes is not None and prof.swap_total_bytes >= 0
    if prof.gpus:
        assert prof.gpu_unavailable_reason is None
    else:  # this project's CI machines have no GPU
        assert prof.gpu_unavailable_reason


# -- builders for other tests ----------------------------------------------------------------------


def test_hardware_builders() -> None:
    lap = hardware.laptop(ram_gib=16)
    assert lap.memory_total_bytes == 16 * 2**30 and lap.gpus == () and lap.kind == "laptop"
    box = hardware.gpu_box(vram_gib=24, n_gpus=2, ram_gib=64)
    assert [g.memory_total_bytes for g in box.gpus] == [24 * 2**30] * 2 and box.has_cuda_gpu
    assert box.memory_total_bytes == 64 * 2**30
    board = hardware.edge(ram_gib=8, unified=True)
    assert board.unified_memory and board.gpus[0].memory_total_bytes == board.memory_total_bytes
    assert hardware.edge(ram_gib=4, unified=False).gpus == ()
    live = hardware.this_machine(ram_gib=16, available_gib=6)
    assert live.is_live and live.memory_available_bytes == 6 * 2**30


def _write(root: Path, rel: str, text: str) -> None:
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
