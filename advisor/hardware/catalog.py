"""The device catalog (``resources/devices/*.json``, one file per device) and hardware files.

A catalog file describes a machine someone might run a model on: an edge board, a laptop, a
desktop, or a cloud instance with its on-demand price. Hardware files are what
``advisor probe --out`` writes (:meth:`HardwareProfile.to_dict` as JSON) for use on another machine.
"""

from __future__ import annotations

import copy
import difflib
import json
import os
import re
import tempfile
from functools import lru_cache
from importlib.resources.abc import Traversable
from pathlib import Path
from typing import Any, get_args

from advisor.errors import HardwareProfileError, UnknownDeviceError
from advisor.hardware.profile import (
    CpuInfo,
    DeviceKind,
    GpuInfo,
    HardwareProfile,
    profile_from_dict,
)
from advisor.resources import resource

CATALOG_KINDS = ("edge", "laptop", "desktop", "cloud")
_ID = re.compile(r"^[a-z0-9][a-z0-9._-]*$")
_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_GPU_VENDORS = ("nvidia", "apple", "integrated")

Entry = dict[str, Any]


def load_catalog(directory: Traversable | Path | None = None) -> tuple[HardwareProfile, ...]:
    """Every catalog device as a profile (source "catalog"): edge, laptops, desktops, then cloud.

    Args:
        directory: a folder of device files; the shipped ``resources/devices`` when None.

    Raises:
        HardwareProfileError: a file is malformed (the message names it) or two files share an id.
    """
    return tuple(_to_profile(e) for e in _entries(directory))


def catalog_entries(directory: Traversable | Path | None = None) -> list[Entry]:
    """The catalog's JSON objects (copies), in :func:`load_catalog` order, for ``advisor devices --json``."""
    return [copy.deepcopy(e) for e in _entries(directory)]


def get_device(device_id: str, directory: Traversable | Path | None = None) -> HardwareProfile:
    """The catalog device with this id (case does not matter).

    Raises:
        UnknownDeviceError: no such id; the message suggests close ones.
    """
    entries = _entries(directory)
    wanted = device_id.strip().lower()
    for entry in entries:
        if entry["id"] == wanted:
            return _to_profile(entry)
    ids = [e["id"] for e in entries]
    close = difflib.get_close_matches(wanted, ids, n=3, cutoff=0.5)
    hint = f"; did you mean {', '.join(close)}?" if close else ""
    raise UnknownDeviceError(f"unknown device {device_id!r}{hint} (`advisor devices` lists the {len(ids)} known ids)")


def load_hardware_file(path: str | Path) -> HardwareProfile:
    """Read a profile that ``advisor probe --out`` (or :func:`save_hardware_file`) wrote.

    Raises:
        HardwareProfileError: missing or unreadable file, bad JSON, or not a hardware profile.
    """
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise HardwareProfileError("no such hardware file", path) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise HardwareProfileError(f"cannot read the hardware file ({exc})", path) from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise HardwareProfileError(f"not valid JSON (line {exc.lineno}: {exc.msg})", path) from None
    try:
        profile = profile_from_dict(data, source="file")
    except HardwareProfileError as exc:
        raise HardwareProfileError(exc.problem, path) from None
    except (TypeError, ValueError, AttributeError) as exc:
        raise HardwareProfileError(f"not a hardware profile ({exc})", path) from None
    if not isinstance(profile.name, str) or not profile.name:
        raise HardwareProfileError("not a hardware profile (no name)", path)
    if profile.kind not in get_args(DeviceKind):
        raise HardwareProfileError(f"unknown kind {profile.kind!r}", path)
    return profile


def save_hardware_file(profile: HardwareProfile, path: str | Path) -> None:
    """Write ``profile`` as JSON, atomically (a temporary file beside it, then ``os.replace``).

    Raises:
        HardwareProfileError: the folder is missing or not writable.
    """
    target = Path(path)
    text = json.dumps(profile.to_dict(), indent=2, ensure_ascii=False) + "\n"
    tmp: str | None = None
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            out.write(text)
            out.flush()
            os.fsync(out.fileno())
        # mkstemp makes the file private (0600); a probe file is meant to be shared like any other
        Path(tmp).chmod(target.stat().st_mode & 0o777 if target.exists() else 0o644)
        Path(tmp).replace(target)  # os.replace: atomic on POSIX and Windows
        tmp = None
    except OSError as exc:
        raise HardwareProfileError(f"cannot write the hardware file ({exc.strerror or exc})", path) from None
    finally:
        if tmp is not None:
            Path(tmp).unlink(missing_ok=True)


# -- reading and checking catalog files -------------------------------------------------------


def _entries(directory: Traversable | Path | None) -> tuple[Entry, ...]:
    if directory is None:
        return _shipped_entries()
    return _read_entries(directory)


@lru_cache(maxsize=1)
def _shipped_entries() -> tuple[Entry, ...]:
    return _read_entries(resource("devices"))


def _read_entries(directory: Traversable | Path) -> tuple[Entry, ...]:
    try:
        files = sorted((f for f in directory.iterdir() if f.name.endswith(".json")), key=lambda f: f.name)
    except OSError as exc:
        raise HardwareProfileError(f"cannot list the device catalog ({exc})", str(directory)) from None
    entries: list[Entry] = []
    seen: dict[str, str] = {}
    for file in files:
        entry = _read_entry(file)
        if entry["id"] in seen:
            raise HardwareProfileError(f"device id {entry['id']!r} is also used by {seen[entry['id']]}", file.name)
        seen[entry["id"]] = file.name
        entries.append(entry)
    order = {kind: i for i, kind in enumerate(CATALOG_KINDS)}
    entries.sort(key=lambda e: (order[e["kind"]], e.get("price_per_hour_usd") or 0.0, e["memory_bytes"], e["id"]))
    return tuple(entries)


def _read_entry(file: Traversable) -> Entry:
    name = f"devices/{file.name}"
    try:
        data = json.loads(file.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as exc:
        raise HardwareProfileError(f"cannot read the catalog file ({exc})", name) from None
    except json.JSONDecodeError as exc:
        raise HardwareProfileError(f"not valid JSON (line {exc.lineno}: {exc.msg})", name) from None
    problem = _check_entry(data)
    if problem:
        raise HardwareProfileError(f"bad catalog entry: {problem}", name)
    if f"{data['id']}.json" != file.name:
        raise HardwareProfileError(f"the file name should be {data['id']}.json (its id)", name)
    return dict(data)


def _check_entry(d: Any) -> str | None:
    """The first problem with a catalog object, or None when it is well formed."""
    if not isinstance(d, dict):
        return "expected a JSON object"
    for key in ("id", "name", "kind", "source", "date_read"):
        if not isinstance(d.get(key), str) or not d[key].strip():
            return f"{key!r} must be a non-empty string"
    if not _ID.match(d["id"]):
        return f"id {d['id']!r} must be lowercase letters, digits, '.', '-' or '_'"
    if d["kind"] not in CATALOG_KINDS:
        return f"kind {d['kind']!r} must be one of {', '.join(CATALOG_KINDS)}"
    if not _DATE.match(d["date_read"]):
        return "'date_read' must be a date like 2026-11-23"
    if not _positive_int(d.get("memory_bytes")):
        return "'memory_bytes' must be a positive integer"
    if not isinstance(d.get("unified_memory", False), bool):
        return "'unified_memory' must be true or false"
    price = d.get("price_per_hour_usd")
    if price is not None and (isinstance(price, bool) or not isinstance(price, int | float) or price <= 0):
        return "'price_per_hour_usd' must be a positive number or null"
    if d["kind"] == "cloud" and (price is None or not d.get("provider") or not d.get("region")):
        return "a cloud entry needs 'price_per_hour_usd', 'provider' and 'region'"
    gpus = d.get("gpus", [])
    if not isinstance(gpus, list):
        return "'gpus' must be a list"
    for i, g in enumerate(gpus):
        if not isinstance(g, dict) or not isinstance(g.get("name"), str) or not _positive_int(g.get("memory_bytes")):
            return f"gpus[{i}] needs a 'name' and a positive integer 'memory_bytes'"
        if g.get("vendor", "nvidia") not in _GPU_VENDORS:
            return f"gpus[{i}] vendor must be one of {', '.join(_GPU_VENDORS)}"
    cpu = d.get("cpu", {})
    if not isinstance(cpu, dict) or not isinstance(cpu.get("features", []), list):
        return "'cpu' must be an object whose 'features' is a list"
    for key in ("cores", "threads"):
        if cpu.get(key) is not None and not _positive_int(cpu[key]):
            return f"cpu.{key} must be a positive integer"
    return None


def _positive_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value > 0


def _to_profile(d: Entry) -> HardwareProfile:
    cpu = d.get("cpu", {})
    cores = cpu.get("cores")
    return HardwareProfile(
        name=d["name"],
        source="catalog",
        kind=d["kind"],
        device_id=d["id"],
        memory_total_bytes=d["memory_bytes"],
        cpu=CpuInfo(
            model=cpu.get("model"),
            arch=cpu.get("arch"),
            physical_cores=cores,
            logical_cores=cpu.get("threads", cores),
            features=tuple(str(f) for f in cpu.get("features", ())),
        ),
        gpus=tuple(
            GpuInfo(
                index=i,
                name=g["name"],
                vendor=g.get("vendor", "nvidia"),
                memory_total_bytes=g["memory_bytes"],
                compute_capability=g.get("compute_capability"),
                unified_memory=bool(g.get("unified_memory", False)),
            )
            for i, g in enumerate(d.get("gpus", []))
        ),
        unified_memory=bool(d.get("unified_memory", False)),
        price_per_hour_usd=float(d["price_per_hour_usd"]) if d.get("price_per_hour_usd") is not None else None,
        provider=d.get("provider"),
        catalog_source=d["source"],
        catalog_date=d["date_read"],
    )
