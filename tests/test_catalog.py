"""The device catalog (resources/devices/*.json) and hardware files (what `advisor probe --out` writes)."""

from __future__ import annotations

import dataclasses
import json
import os
import re
from collections import defaultdict
from pathlib import Path
from typing import Any

import pytest

from advisor.errors import HardwareProfileError, UnknownDeviceError
from advisor.hardware.catalog import (
    catalog_entries,
    get_device,
    load_catalog,
    load_hardware_file,
    save_hardware_file,
)
from advisor.hardware.nvml import PynvmlApi
from advisor.hardware.probe import probe
from advisor.hardware.profile import HardwareProfile
from advisor.resources import resource
from tests.builders import fake_nvml, hardware

REQUIRED_IDS = {
    "rpi4-4gb", "rpi4-8gb", "rpi5-8gb", "rpi5-16gb", "jetson-orin-nano-8gb", "jetson-agx-orin-64gb",
    "macbook-air-m2-8gb", "macbook-pro-m3-36gb", "laptop-16gb-igpu", "laptop-rtx4060-8gb", "rtx4090-desktop",
    "aws-g4dn.xlarge", "aws-g4dn.12xlarge", "aws-g4dn.metal", "aws-g6.xlarge", "aws-g6.12xlarge",
    "aws-g6.48xlarge", "aws-g5.xlarge", "aws-g5.12xlarge", "aws-g5.48xlarge", "aws-p4d.24xlarge",
    "aws-p4de.24xlarge", "aws-p5.48xlarge",
    "gcp-g2-standard-8", "gcp-g2-standard-24", "gcp-g2-standard-48", "gcp-g2-standard-96",
    *(f"gcp-{family}-{n}g" for family in ("a2-highgpu", "a2-ultragpu", "a3-highgpu") for n in (1, 2, 4, 8)),
}  # fmt: skip

# GPU family → a pattern on the catalog's GPU names.
FAMILIES = {
    "T4": r"\bT4\b", "L4": r"\bL4\b", "A10G": r"\bA10G\b", "A100-40": r"A100 40GB",
    "A100-80": r"A100 80GB", "H100": r"H100",
}  # fmt: skip
ONLY_ONE_PROVIDER_SELLS = {"A10G"}  # AWS's own part (G5 instances)


def _family(gpu_name: str) -> str | None:
    return next((fam for fam, pattern in FAMILIES.items() if re.search(pattern, gpu_name)), None)


@pytest.fixture(scope="module")
def entries() -> list[dict[str, Any]]:
    return catalog_entries()


# -- the shipped catalog ---------------------------------------------------------------------------


def test_every_required_device_is_there(entries: list[dict[str, Any]]) -> None:
    ids = {e["id"] for e in entries}
    assert ids >= REQUIRED_IDS, f"missing: {sorted(REQUIRED_IDS - ids)}"
    gcp_t4_counts = {len(e["gpus"]) for e in entries if e["id"].startswith("gcp-n1-")}
    assert gcp_t4_counts == {1, 2, 4}


def test_ids_are_unique_lowercase_and_name_their_files(entries: list[dict[str, Any]]) -> None:
    ids = [e["id"] for e in entries]
    assert len(ids) == len(set(ids))
    assert all(i == i.lower() and " " not in i for i in ids)
    files = sorted(f.name for f in resource("devices").iterdir() if f.name.endswith(".json"))
    assert files == sorted(f"{i}.json" for i in ids)


def test_every_file_says_where_its_figures_come_from(entries: list[dict[str, Any]]) -> None:
    for e in entries:
        assert e["source"].strip(), e["id"]
        assert re.fullmatch(r"\d{4}-\d{2}-\d{2}", e["date_read"]), e["id"]
        assert "verify before buying" in e["note"], e["id"]


def test_every_cloud_entry_is_priced(entries: list[dict[str, Any]]) -> None:
    cloud = [e for e in entries if e["kind"] == "cloud"]
    assert len(cloud) >= 30
    for e in cloud:
        assert isinstance(e["price_per_hour_usd"], float | int) and e["price_per_hour_usd"] > 0, e["id"]
        assert e["provider"] in ("AWS", "GCP", "Azure") and e["region"], e["id"]
        assert f"list price as published by {e['provider']}" in e["note"], e["id"]
        assert e["gpus"], e["id"]
    for e in entries:
        if e["kind"] != "cloud":
            assert e["price_per_hour_usd"] is None, e["id"]


def test_each_gpu_family_is_sold_by_two_providers_in_several_sizes(entries: list[dict[str, Any]]) -> None:
    providers: dict[str, set[str]] = defaultdict(set)
    counts: dict[str, set[int]] = defaultdict(set)
    for e in entries:
        if e["kind"] != "cloud":
            continue
        families = {_family(g["name"]) for g in e["gpus"]}
        assert len(families) == 1 and None not in families, e["id"]
        (family,) = families
        assert family is not None
        providers[family].add(e["provider"])
        counts[family].add(len(e["gpus"]))
    for family in FAMILIES:
        wanted = 1 if family in ONLY_ONE_PROVIDER_SELLS else 2
        assert len(providers[family]) >= wanted, (family, providers[family])
        assert 1 in counts[family] and 8 in counts[family], (family, counts[family])
    assert counts["A100-40"] >= {1, 2, 4, 8} and counts["H100"] >= {1, 2, 4, 8}


def test_big_instances_have_the_gpus_their_names_promise() -> None:
    p4d, p4de, p5 = get_device("aws-p4d.24xlarge"), get_device("aws-p4de.24xlarge"), get_device("aws-p5.48xlarge")
    assert [_family(g.name) for g in p4d.gpus] == ["A100-40"] * 8
    assert [_family(g.name) for g in p4de.gpus] == ["A100-80"] * 8
    assert [_family(g.name) for g in p5.gpus] == ["H100"] * 8
    assert [_family(g.name) for g in get_device("gcp-g2-standard-96").gpus] == ["L4"] * 8
    # the H100 total is what NVML reported on a real H100 (tests/fixtures/nvml_h100.json)
    assert p5.gpus[0].memory_total_bytes == 85520809984
    a100_40 = p4d.gpus[0].memory_total_bytes
    assert a100_40 is not None and p4de.gpus[0].memory_total_bytes == 2 * a100_40


def test_prices_grow_with_gpu_count_within_a_family(entries: list[dict[str, Any]]) -> None:
    for prefix in ("gcp-a2-highgpu-", "gcp-a2-ultragpu-", "gcp-a3-highgpu-", "gcp-g2-standard-", "aws-g5."):
        family = sorted((len(e["gpus"]), e["price_per_hour_usd"]) for e in entries if e["id"].startswith(prefix))
        prices = [p for _, p in family]
        assert len(prices) >= 3 and prices == sorted(prices), prefix


def test_unified_devices_give_their_gpu_the_ram(entries: list[dict[str, Any]]) -> None:
    unified = [e for e in entries if e["unified_memory"]]
    assert {"jetson-orin-nano-8gb", "jetson-agx-orin-64gb", "macbook-air-m2-8gb"} <= {e["id"] for e in unified}
    for e in unified:
        assert e["gpus"] and all(g["unified_memory"] and g["memory_bytes"] == e["memory_bytes"] for g in e["gpus"])
    for e in entries:
        if not e["unified_memory"]:
            assert not any(g.get("unified_memory") for g in e["gpus"]), e["id"]


def test_catalog_profiles(entries: list[dict[str, Any]]) -> None:
    profiles = load_catalog()
    assert [p.device_id for p in profiles] == [e["id"] for e in entries]
    kinds = [p.kind for p in profiles]
    assert kinds == sorted(kinds, key=["edge", "laptop", "desktop", "cloud"].index)
    for p in profiles:
        assert p.source == "catalog" and not p.is_live
        assert p.memory_total_bytes > 0 and p.memory_available_bytes is None
        assert p.catalog_source and p.catalog_date
    mac = get_device("macbook-air-m2-8gb")
    assert mac.gpus[0].vendor == "apple" and mac.unified_memory and mac.cpu.arch == "arm64"
    pi = get_device("rpi5-8gb")
    assert pi.gpus == () and pi.memory_total_bytes == 8 * 2**30 and "dotprod" in pi.cpu.features
    g5 = get_device("aws-g5.xlarge")
    assert g5.price_per_hour_usd == 1.006 and g5.provider == "AWS" and g5.has_cuda_gpu
    assert g5.cpu.logical_cores == 4


def test_catalog_entries_are_json_ready_copies(entries: list[dict[str, Any]]) -> None:
    for e in entries:
        assert {"id", "name", "kind", "memory_bytes", "gpus", "unified_memory", "price_per_hour_usd"} <= set(e)
        assert all({"name", "memory_bytes"} <= set(g) for g in e["gpus"])
    json.dumps(entries)
    entries[0]["name"] = "changed"
    assert catalog_entries()[0]["name"] != "changed"


def test_get_device_ignores_case_and_suggests_close_ids() -> None:
    assert get_device("RPI5-8GB").device_id == "rpi5-8gb"
    with pytest.raises(UnknownDeviceError) as info:
        get_device("rpi5-8g")
    message = str(info.value)
    assert "rpi5-8gb" in message and "\n" not in message and "'rpi5-8g'" in message
    with pytest.raises(UnknownDeviceError, match="unknown device 'zzzzqqq'"):
        get_device("zzzzqqq")


# -- malformed catalog files -----------------------------------------------------------------------


def _good(device_id: str = "test-box") -> dict[str, Any]:
    return {
        "id": device_id, "name": "Test box", "kind": "desktop", "memory_bytes": 2**34,
        "gpus": [{"name": "NVIDIA Test", "memory_bytes": 2**33}], "unified_memory": False,
        "cpu": {"model": "x", "arch": "x86_64", "cores": 4, "features": ["avx2"]},
        "price_per_hour_usd": None, "provider": None, "region": None,
        "source": "test", "date_read": "2026-11-23", "note": "test",
    }  # fmt: skip


def _dir_with(tmp_path: Path, name: str, content: Any) -> Path:
    text = content if isinstance(content, str) else json.dumps(content)
    (tmp_path / name).write_text(text, encoding="utf-8")
    return tmp_path


def test_a_good_custom_catalog_loads(tmp_path: Path) -> None:
    (profile,) = load_catalog(_dir_with(tmp_path, "test-box.json", _good()))
    assert profile.device_id == "test-box" and profile.gpus[0].memory_total_bytes == 2**33


@pytest.mark.parametrize(
    ("change", "problem"),
    [
        ({"memory_bytes": "16 GB"}, "memory_bytes"),
        ({"memory_bytes": 0}, "memory_bytes"),
        ({"kind": "phone"}, "kind"),
        ({"source": ""}, "source"),
        ({"date_read": "last week"}, "date_read"),
        ({"gpus": [{"name": "x"}]}, "gpus[0]"),
        ({"gpus": {"name": "x"}}, "gpus"),
        ({"kind": "cloud"}, "price_per_hour_usd"),
        ({"price_per_hour_usd": -1}, "price_per_hour_usd"),
        ({"cpu": {"features": "avx2"}}, "features"),
    ],
)
def test_a_malformed_entry_is_an_error_naming_the_file(tmp_path: Path, change: dict[str, Any], problem: str) -> None:
    bad = {**_good(), **change}
    with pytest.raises(HardwareProfileError, match=re.escape(problem)) as info:
        load_catalog(_dir_with(tmp_path, "test-box.json", bad))
    assert "test-box.json" in str(info.value)


def test_bad_json_in_the_catalog_names_the_file(tmp_path: Path) -> None:
    with pytest.raises(HardwareProfileError, match=r"broken\.json.*not valid JSON"):
        load_catalog(_dir_with(tmp_path, "broken.json", "{not json"))


def test_uppercase_ids_and_misnamed_files_are_refused(tmp_path: Path) -> None:
    for sub in ("a", "b", "c"):
        (tmp_path / sub).mkdir()
    with pytest.raises(HardwareProfileError, match="lowercase"):
        load_catalog(_dir_with(tmp_path / "a", "Box.json", _good("Box")))
    with pytest.raises(HardwareProfileError, match=r"file name should be test-box\.json"):
        load_catalog(_dir_with(tmp_path / "b", "other.json", _good()))
    _dir_with(tmp_path / "c", "test-box.json", _good())
    _dir_with(tmp_path / "c", "README.txt", "not a device")
    assert len(load_catalog(tmp_path / "c")) == 1  # only *.json files are devices


def test_duplicate_ids_are_refused() -> None:
    class Dir:
        """Two files that claim the same id (a file system cannot hold two equal names)."""

        def __init__(self, items: list[Any]) -> None:
            self.items = items

        def iterdir(self) -> list[Any]:
            return self.items

    class File:
        def __init__(self, name: str, data: dict[str, Any]) -> None:
            self.name, self.data = name, data

        def read_text(self, encoding: str = "utf-8") -> str:
            return json.dumps(self.data)

    twins = Dir([File("test-box.json", _good()), File("test-box.json", _good())])
    with pytest.raises(HardwareProfileError, match="also used by"):
        load_catalog(twins)  # type: ignore[arg-type]


# -- hardware files --------------------------------------------------------------------------------


def test_probe_round_trips_through_a_file(tmp_path: Path) -> None:
    live = probe(tmp_path, nvml=PynvmlApi(fake_nvml.h100()))
    path = tmp_path / "probe.json"
    save_hardware_file(live, path)
    loaded = load_hardware_file(path)
    assert loaded == dataclasses.replace(live, source="file")
    assert loaded.gpus[0].name == "NVIDIA H100 80GB HBM3" and not loaded.is_live
    assert [p.name for p in tmp_path.iterdir()] == ["probe.json"]  # no temporary file left behind
    if os.name == "posix":
        assert path.stat().st_mode & 0o777 == 0o644  # not mkstemp's private 0600


@pytest.mark.parametrize(
    "profile",
    [hardware.laptop(), hardware.gpu_box(n_gpus=4), hardware.edge(), hardware.this_machine()],
    ids=["laptop", "gpu_box", "edge", "this_machine"],
)
def test_builder_and_catalog_profiles_round_trip(tmp_path: Path, profile: HardwareProfile) -> None:
    path = tmp_path / "hw.json"
    save_hardware_file(profile, path)
    assert load_hardware_file(path) == dataclasses.replace(profile, source="file")
    jetson = get_device("jetson-orin-nano-8gb")
    save_hardware_file(jetson, path)  # overwrites
    assert load_hardware_file(path) == dataclasses.replace(jetson, source="file")


def test_saving_into_a_missing_folder_is_a_readable_error(tmp_path: Path) -> None:
    target = tmp_path / "no" / "such" / "hw.json"
    with pytest.raises(HardwareProfileError, match="cannot write") as info:
        save_hardware_file(hardware.laptop(), target)
    assert str(target) in str(info.value)


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        ("{oops", "not valid JSON"),
        ("[1, 2]", "expected a JSON object"),
        ('{"name": "x", "kind": "laptop"}', "memory_total_bytes"),
        ('{"name": "x", "kind": "laptop", "memory_total_bytes": -5}', "memory_total_bytes"),
        ('{"name": "x", "kind": "laptop", "memory_total_bytes": 1024, "gpus": ["x"]}', "not a hardware profile"),
        ('{"name": "x", "kind": "laptop", "memory_total_bytes": 1024, "cpu": "fast"}', "not a hardware profile"),
        (
            '{"name": "x", "kind": "laptop", "memory_total_bytes": 1024, "gpus": [{"index": 0}]}',
            "not a hardware profile",
        ),
        ('{"name": "x", "kind": "toaster", "memory_total_bytes": 1024}', "unknown kind"),
        ('{"kind": "laptop", "memory_total_bytes": 1024}', "not a hardware profile"),
    ],
)
def test_bad_hardware_files_are_readable_errors(tmp_path: Path, content: str, problem: str) -> None:
    path = tmp_path / "hw.json"
    path.write_text(content, encoding="utf-8")
    with pytest.raises(HardwareProfileError, match=re.escape(problem)) as info:
        load_hardware_file(path)
    message = str(info.value)
    assert message.startswith(str(path)) and "\n" not in message


def test_missing_hardware_file(tmp_path: Path) -> None:
    with pytest.raises(HardwareProfileError, match="no such hardware file"):
        load_hardware_file(tmp_path / "nope.json")
    with pytest.raises(HardwareProfileError, match="cannot read"):
        load_hardware_file(tmp_path)  # a folder
