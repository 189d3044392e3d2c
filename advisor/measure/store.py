"""Measurements kept on disk, and what the next estimate of the same model learns from them.

One JSON line per measurement in ``measurements.jsonl`` under the user's data folder
(``$ADVISOR_DATA_DIR``, else ``$XDG_DATA_HOME/memory-advisor``, else
``~/.local/share/memory-advisor``: the XDG Base Directory spec). A line is keyed by the model's
fingerprint (:func:`fingerprint`), the runtime and its version, the workload as it ran and the
machine, and holds the measured and predicted figures.

:func:`correction` finds the latest measurement of the same model, runtime, workload and
machine; :func:`advisor.analysis.analyze` then shows "measured here" and replaces the runtime
overhead term by what the measurement leaves once the predicted weights, activations and KV
cache are taken out (the weights and the activation walk are exact mechanisms; the overhead —
allocator slack, library state — is what varies from machine to machine).
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from advisor.estimator.types import Estimate, Workload
    from advisor.hardware.profile import HardwareProfile
    from advisor.measure import Measurement
    from advisor.readers.profile import ModelProfile

_CHUNK = 1024 * 1024
_FILE = "measurements.jsonl"


def data_dir() -> Path:
    """Where measurements are kept (see the module doc)."""
    explicit = os.environ.get("ADVISOR_DATA_DIR")
    if explicit:
        return Path(explicit)
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "memory-advisor"


def fingerprint(profile: ModelProfile) -> str:
    """A hash of the model's files: each file's size and its first, middle and last MiB.

    Reading three MiB per file keeps this instant on a 70 GB checkpoint; a changed weight shows in
    the sampled bytes or the size in practice (formats store a header with every tensor's offset).
    Cached per (file, size, mtime) within the process.
    """
    names = tuple(profile.files or (profile.path,))
    stamps = []
    for name in names:
        try:
            st = Path(name).stat()
            stamps.append((name, st.st_size, st.st_mtime_ns))
        except OSError:
            stamps.append((name, -1, 0))
    return _fingerprint(tuple(stamps))


@functools.lru_cache(maxsize=64)
def _fingerprint(stamps: tuple[tuple[str, int, int], ...]) -> str:
    h = hashlib.sha256()
    for name, _, _ in stamps:
        path = Path(name)
        try:
            size = path.stat().st_size
            h.update(f"{path.name}:{size}".encode())
            with path.open("rb") as f:
                for offset in sorted({0, max(0, size // 2 - _CHUNK // 2), max(0, size - _CHUNK)}):
                    f.seek(offset)
                    h.update(f.read(_CHUNK))
        except OSError:
            h.update(f"{name}:unreadable".encode())
    return h.hexdigest()[:32]


def save(profile: ModelProfile, m: Measurement) -> Path | None:
    """Append ``m`` to the store; None (and nothing written) when the folder is not writable."""
    doc = {"fingerprint": fingerprint(profile), **m.to_dict()}
    doc.pop("samples", None)  # the curve is for the window; the store keeps the figures
    path = data_dir() / _FILE
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("a", encoding="utf-8") as f:
            f.write(json.dumps(doc) + "\n")
    except OSError:
        return None
    return path


def load_all() -> list[dict[str, Any]]:
    """Every stored measurement, oldest first (unreadable lines skipped)."""
    path = data_dir() / _FILE
    out: list[dict[str, Any]] = []
    with contextlib.suppress(OSError):
        for line in path.read_text(encoding="utf-8").splitlines():
            with contextlib.suppress(ValueError):
                doc = json.loads(line)
                if isinstance(doc, dict) and "measured_peak_bytes" in doc:
                    out.append(doc)
    return out


@dataclass(frozen=True)
class Correction:
    """What a stored measurement says about an estimate.

    Attributes:
        measured_peak_bytes / predicted_peak_bytes: the stored run's figures.
        when / runtime_version: when it ran, with which engine.
        same_workload: it ran exactly this workload (the estimate can be corrected), not only
            the same model.
    """

    measured_peak_bytes: int
    predicted_peak_bytes: int
    when: str
    runtime_version: str
    same_workload: bool
    measured_required_bytes: int | None = None


def correction(profile: ModelProfile, runtime: str, workload: dict[str, Any], machine: str) -> Correction | None:
    """The latest measurement of this model and runtime on ``machine`` (this workload first)."""
    stored = load_all()
    if not stored:
        return None
    fp = fingerprint(profile)
    mine = [d for d in stored if d.get("fingerprint") == fp and d.get("runtime") == runtime
            and d.get("machine") == machine]
    if not mine:
        return None
    key = json.loads(json.dumps(workload))  # as stored: tuples are lists
    same = [d for d in mine if d.get("workload") == key]
    doc = (same or mine)[-1]
    req = doc.get("measured_required_bytes")
    return Correction(int(doc["measured_peak_bytes"]), int(doc["predicted_peak_bytes"]), str(doc.get("when", "")),
                      str(doc.get("runtime_version", "")), bool(same), int(req) if req is not None else None)


# NOTE: the same run measured twice in fresh processes differs by a few hundred KiB to ~2 %
# (allocator and page-cache timing); the corrected range keeps that spread around the measurement.
RERUN_SPREAD = 0.03


def learned(profile: ModelProfile, runtime: str, workload: Workload, est: Estimate,
            hardware: HardwareProfile) -> Estimate:
    """``est`` corrected by a stored measurement of this very run on this machine, with a note;
    a measurement of another workload of the model is only quoted."""
    from dataclasses import replace

    from advisor.measure import machine_key, workload_key
    from advisor.units import format_bytes

    found = correction(profile, runtime, workload_key(workload, est), machine_key(hardware))
    if found is None:
        return est
    measured = found.measured_peak_bytes
    err = (est.peak_bytes - measured) / max(1, measured) * 100
    when = found.when.replace("T", " ")[:16]
    if not found.same_workload:
        return replace(est, notes=(*est.notes, f"measured here ({when}, another workload of this model): "
                                   f"{format_bytes(measured)} peak; this workload is not measured"))
    delta = measured - est.peak_bytes
    note = (f"measured here on {when} ({found.runtime_version}): peak {format_bytes(measured)}; the estimate "
            f"alone says {format_bytes(est.peak_bytes)} ({err:+.1f} %), so the runtime overhead term is corrected "
            f"by {'+' if delta >= 0 else '−'}{format_bytes(abs(delta))} and the range is the measurement ± "
            f"{RERUN_SPREAD * 100:.0f} %")
    if found.measured_required_bytes is not None:
        note += f"; it ran at full speed in {format_bytes(found.measured_required_bytes)} (measured required)"
    low, high = int(measured * (1 - RERUN_SPREAD)), int(measured * (1 + RERUN_SPREAD))
    return replace(est, peak_bytes=measured, overhead_bytes=max(0, est.overhead_bytes + delta), low_bytes=low,
                   high_bytes=high, required_range=None, notes=(*est.notes, note))
