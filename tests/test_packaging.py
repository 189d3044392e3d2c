"""The wheel carries every package and every resource folder (pyproject lists them by hand)."""

from __future__ import annotations

import tomllib
from pathlib import Path

from advisor.resources import resource

ROOT = Path(__file__).resolve().parents[1]


def _config() -> dict[str, object]:
    with (ROOT / "pyproject.toml").open("rb") as fh:
        return tomllib.load(fh)


def test_every_package_is_listed() -> None:
    listed = set(_config()["tool"]["setuptools"]["packages"])  # type: ignore[index]
    on_disk = {
        ".".join(p.parent.relative_to(ROOT).parts) for p in (ROOT / "advisor").rglob("__init__.py")
    }
    on_disk |= {"advisor_resources"} | {
        f"advisor_resources.{d.name}" for d in (ROOT / "resources").iterdir() if d.is_dir() and d.name != "__pycache__"
    }
    assert on_disk == listed


def test_resources_are_reachable_through_the_helper() -> None:
    assert resource("samples", "sample-convnet.onnx").is_file()
    assert any(p.name.endswith(".json") for p in resource("devices").iterdir())
    assert resource("templates", "report.html.j2").is_file()
    assert resource("icons", "io.github.memoryadvisor.MemoryAdvisor.svg").is_file()


def test_one_version() -> None:
    from advisor import __version__

    assert _config()["project"]["dynamic"] == ["version"]  # type: ignore[index]
    assert __version__.count(".") == 2
