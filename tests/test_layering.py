"""The core never imports Qt: only advisor/ui/ may (DEVELOPERS.md; napari enforces the same with import-linter).

Two checks: an AST scan of every module's imports (direct imports), and a subprocess that runs
the headless CLI and then looks at ``sys.modules`` (transitive imports).
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PKG = ROOT / "advisor"
QT_ROOTS = {"PySide6", "PyQt5", "PyQt6", "PySide2", "pyqtgraph", "shiboken6", "qtpy"}
CORE_PACKAGES = ("readers", "hardware", "estimator", "plan", "report")


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


def _modules() -> list[Path]:
    return sorted(p for p in PKG.rglob("*.py") if "ui" not in p.relative_to(PKG).parts[:1])


def test_scan_sees_modules() -> None:
    # Guard against a scan that silently checks nothing.
    assert len(_modules()) >= 10


@pytest.mark.parametrize("path", _modules(), ids=lambda p: str(p.relative_to(ROOT)))
def test_no_qt_outside_ui(path: Path) -> None:
    offending = {n for n in _imports(path) if n.split(".")[0] in QT_ROOTS}
    assert not offending, f"{path.relative_to(ROOT)} imports {sorted(offending)}; only advisor/ui/ may import Qt"


@pytest.mark.parametrize("package", CORE_PACKAGES)
def test_core_never_imports_ui(package: str) -> None:
    for path in (PKG / package).rglob("*.py"):
        offending = {n for n in _imports(path) if n == "advisor.ui" or n.startswith("advisor.ui.")}
        assert not offending, f"{path.relative_to(ROOT)} imports {sorted(offending)}"


def test_detector_catches_qt_import(tmp_path: Path) -> None:
    bad = tmp_path / "bad.py"
    bad.write_text("from PySide6.QtCore import QObject\nimport pyqtgraph as pg\n", encoding="utf-8")
    assert {n.split(".")[0] for n in _imports(bad)} & QT_ROOTS == {"PySide6", "pyqtgraph"}


def test_headless_cli_loads_no_qt() -> None:
    code = (
        "import sys\n"
        "from advisor.cli import run\n"
        "rc = run(['devices', '--json'])\n"
        "import advisor.readers, advisor.hardware.probe, advisor.estimator, advisor.plan, advisor.report\n"
        f"loaded = sorted(m for m in sys.modules if m.split('.')[0] in {sorted(QT_ROOTS)!r})\n"
        "print('QT:', loaded, file=sys.stderr)\n"
        "sys.exit(rc if not loaded else 99)\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=False)
    assert proc.returncode == 0, proc.stderr
