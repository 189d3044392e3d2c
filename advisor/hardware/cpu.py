"""The CPU: model and the ISA features that matter for inference, from /proc/cpuinfo or sysctl.

Everything here reads through a :class:`SystemFiles` so tests can point it at a fake root
(a temporary folder with ``proc/cpuinfo``, ``proc/device-tree/model``...) and a fake ``sysctl``.
A file that cannot be read gives ``None``; nothing here raises on a missing or odd file.
"""

from __future__ import annotations

import platform
import subprocess
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import psutil

from advisor.hardware.profile import CpuInfo

SysctlReader = Callable[[Sequence[str]], dict[str, str]]

# x86 flags that change how fast (or whether) inference kernels run, in the order we report them.
# NOTE: names as the Linux kernel prints them in /proc/cpuinfo (arch/x86/include/asm/cpufeatures.h).
X86_FEATURES: tuple[str, ...] = (
    "avx", "avx2", "fma", "f16c", "avx512f", "avx512bw", "avx512_vnni", "avx512_bf16",
    "avx512_fp16", "avx_vnni", "amx_tile", "amx_bf16", "amx_int8",
)  # fmt: skip

# Arm: /proc/cpuinfo "Features" token → the name we report. "asimd" is what aarch64 calls NEON;
# 32-bit kernels (Raspberry Pi OS armhf) print "neon". "asimddp" is the dot-product extension.
# NOTE: token names from the Linux kernel, arch/arm64/kernel/cpuinfo.c (hwcap_str).
ARM_FEATURES: tuple[tuple[str, str], ...] = (
    ("asimd", "neon"), ("neon", "neon"), ("asimddp", "dotprod"), ("i8mm", "i8mm"),
    ("sve", "sve"), ("sve2", "sve2"), ("bf16", "bf16"),
)  # fmt: skip

# macOS: sysctl key → the name we report (the same names as on Linux).
# NOTE: keys from Apple's "Determining Instruction Set Characteristics" developer article.
MACOS_FEATURES: tuple[tuple[str, str], ...] = (
    ("hw.optional.avx1_0", "avx"), ("hw.optional.avx2_0", "avx2"), ("hw.optional.fma", "fma"),
    ("hw.optional.f16c", "f16c"), ("hw.optional.avx512f", "avx512f"),
    ("hw.optional.avx512bw", "avx512bw"), ("hw.optional.avx512vnni", "avx512_vnni"),
    ("hw.optional.neon", "neon"), ("hw.optional.AdvSIMD", "neon"),
    ("hw.optional.arm.FEAT_DotProd", "dotprod"), ("hw.optional.arm.FEAT_I8MM", "i8mm"),
    ("hw.optional.arm.FEAT_BF16", "bf16"),
)  # fmt: skip

# Arm Ltd (implementer 0x41) "CPU part" → core name, for aarch64 kernels that print no model name.
# NOTE: from the Linux kernel, arch/arm64/include/asm/cputype.h (ARM_CPU_PART_*).
ARM_CPU_PARTS: dict[str, str] = {
    "0xd03": "Cortex-A53", "0xd04": "Cortex-A35", "0xd05": "Cortex-A55", "0xd07": "Cortex-A57",
    "0xd08": "Cortex-A72", "0xd09": "Cortex-A73", "0xd0a": "Cortex-A75", "0xd0b": "Cortex-A76",
    "0xd0c": "Neoverse-N1", "0xd0d": "Cortex-A77", "0xd40": "Neoverse-V1", "0xd41": "Cortex-A78",
    "0xd42": "Cortex-A78AE", "0xd44": "Cortex-X1", "0xd46": "Cortex-A510", "0xd47": "Cortex-A710",
    "0xd48": "Cortex-X2", "0xd49": "Neoverse-N2", "0xd4b": "Cortex-A78C", "0xd4f": "Neoverse-V2",
}  # fmt: skip


def run_sysctl(names: Sequence[str]) -> dict[str, str]:
    """Ask macOS ``sysctl`` for several keys in one process; unknown keys are simply absent."""
    try:
        done = subprocess.run(["sysctl", *names], capture_output=True, text=True, timeout=5, check=False)
    except (OSError, subprocess.SubprocessError):
        return {}
    out: dict[str, str] = {}
    for line in done.stdout.splitlines():
        key, sep, value = line.partition(":")
        if sep:
            out[key.strip()] = value.strip()
    return out


@dataclass(frozen=True)
class SystemFiles:
    """Where the probe reads the platform from; tests swap in a fake root, OS and ``sysctl``.

    Attributes:
        root: the file-system root that ``/proc``, ``/etc`` and the device tree hang from.
        system: ``platform.system()`` ("Linux", "Darwin", "Windows"); read lazily when None.
        machine: ``platform.machine()`` ("x86_64", "aarch64", "arm64"); read lazily when None.
        sysctl: reads macOS sysctl keys; runs ``sysctl`` when None.
    """

    root: Path = Path("/")
    system: str | None = None
    machine: str | None = None
    sysctl: SysctlReader | None = None

    def read_text(self, path: str) -> str | None:
        """Text of ``path`` (absolute, under :attr:`root`), or None when it cannot be read."""
        try:
            return (self.root / path.lstrip("/")).read_text(encoding="utf-8", errors="replace")
        except OSError:
            return None

    def exists(self, path: str) -> bool:
        try:
            return (self.root / path.lstrip("/")).exists()
        except OSError:
            return False

    def os_name(self) -> str:
        return self.system if self.system is not None else platform.system()

    def arch(self) -> str | None:
        machine = self.machine if self.machine is not None else platform.machine()
        return machine or None

    def read_sysctl(self, names: Sequence[str]) -> dict[str, str]:
        reader = self.sysctl if self.sysctl is not None else run_sysctl
        return reader(names)


@dataclass(frozen=True)
class CpuFacts:
    """What /proc/cpuinfo (or sysctl) says: a model name and the inference-relevant features."""

    model: str | None
    features: tuple[str, ...]


def parse_cpuinfo(text: str) -> CpuFacts:
    """Read the model name and the features we care about from /proc/cpuinfo text (x86 or Arm)."""
    fields: dict[str, str] = {}
    for line in text.splitlines():
        key, sep, value = line.partition(":")
        key = key.strip().lower()
        if sep and key and key not in fields:  # the first processor block is enough
            fields[key] = value.strip()
    if "flags" in fields:  # x86
        tokens = set(fields["flags"].split())
        features = tuple(f for f in X86_FEATURES if f in tokens)
    else:  # Arm
        tokens = set(fields.get("features", "").split())
        found = {name for token, name in ARM_FEATURES if token in tokens}
        features = tuple(dict.fromkeys(name for _, name in ARM_FEATURES if name in found))
    return CpuFacts(model=_model_name(fields), features=features)


def _model_name(fields: dict[str, str]) -> str | None:
    for key in ("model name", "cpu model", "processor"):  # "processor" names the core on armv7
        value = fields.get(key, "")
        if value and not value.isdigit():
            return value
    if fields.get("cpu implementer", "").lower() == "0x41":
        part = ARM_CPU_PARTS.get(fields.get("cpu part", "").lower())
        if part:
            return f"Arm {part}"
    return None


def macos_cpu_facts(files: SystemFiles) -> CpuFacts:
    """Model and features of a Mac, from one ``sysctl`` call."""
    keys = ["machdep.cpu.brand_string", *(key for key, _ in MACOS_FEATURES)]
    values = files.read_sysctl(keys)
    found = {name for key, name in MACOS_FEATURES if values.get(key, "").strip() == "1"}
    order = [*X86_FEATURES, *(name for _, name in ARM_FEATURES)]
    features = tuple(dict.fromkeys(f for f in order if f in found))
    return CpuFacts(model=values.get("machdep.cpu.brand_string") or None, features=features)


def probe_cpu(files: SystemFiles) -> CpuInfo:
    """The CPU of this machine: model, arch, cores (psutil) and ISA features."""
    if files.os_name() == "Darwin":
        facts = macos_cpu_facts(files)
    else:
        text = files.read_text("/proc/cpuinfo")
        facts = parse_cpuinfo(text) if text is not None else CpuFacts(None, ())
    physical, logical = _core_counts()
    return CpuInfo(
        # platform.processor() names the CPU on Windows only ("Intel64 Family 6 ..."); on Linux it is the arch
        model=facts.model or (platform.processor() or None if files.os_name() == "Windows" else None),
        arch=files.arch(),
        physical_cores=physical,
        logical_cores=logical,
        features=facts.features,
    )


def _core_counts() -> tuple[int | None, int | None]:
    try:
        return psutil.cpu_count(logical=False), psutil.cpu_count(logical=True)
    except (OSError, RuntimeError):
        return None, None
