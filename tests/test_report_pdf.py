"""The PDF report: printed by Qt (QTextDocument + QPdfWriter), read back with pypdf."""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any

import pytest
from pypdf import PdfReader

from advisor.analysis import Analysis, analyze
from advisor.cli import run
from advisor.errors import ReportError
from advisor.estimator.types import Workload
from advisor.hardware.catalog import get_device
from advisor.plan import make_plan
from advisor.plan.types import Plan
from advisor.readers import read_model
from advisor.report import write_report
from advisor.ui.pdf import embed_data_images, html_to_pdf
from tests.builders import hardware, onnx_models
from tests.test_report import IMG, SCRIPT, hostile_onnx

DEVICE = "jetson-orin-nano-8gb"


def pdf_text(path: Path) -> str:
    """All the PDF's text with whitespace normalised (table cells wrap titles over lines)."""
    reader = PdfReader(str(path))
    return " ".join(" ".join((page.extract_text() or "").split()) for page in reader.pages)


def pdf_image_count(path: Path) -> int:
    return sum(len(page.images) for page in PdfReader(str(path)).pages)


@pytest.fixture
def mlp_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return onnx_models.mlp(tmp_path_factory.mktemp("model") / "mlp.onnx")


def _pipeline(path: Path, target: Any) -> tuple[Analysis, Plan]:
    analysis = analyze(read_model(path), target, Workload())
    return analysis, make_plan(analysis)


def test_cli_pdf_has_the_name_and_every_option(tmp_path: Path, mlp_path: Path, qapp: Any) -> None:
    out = tmp_path / "report.pdf"
    assert run(["report", str(mlp_path), "-o", str(out), "--device", DEVICE]) == 0
    assert out.read_bytes().startswith(b"%PDF")
    text = pdf_text(out)
    analysis, plan = _pipeline(mlp_path, get_device(DEVICE))
    assert "Memory report: mlp" in text
    assert analysis.hardware.name in text
    assert plan.options, "the plan should offer options to check"
    for option in plan.options:
        assert " ".join(option.title.split()) in text, option.title
    assert pdf_image_count(out) >= 1  # the breakdown chart the CLI draws
    assert sorted(p.name for p in tmp_path.iterdir()) == ["report.pdf"]


def test_pdf_with_the_images_the_app_passes(tmp_path: Path, mlp_path: Path, qapp: Any) -> None:
    from advisor.ui.render import render_breakdown_png, render_memory_png

    analysis, plan = _pipeline(mlp_path, hardware.laptop())
    images = {"breakdown": render_breakdown_png(analysis), "live": render_memory_png([])}
    out = write_report(analysis, plan, tmp_path / "r.pdf", images=images, pdf_renderer=html_to_pdf)
    assert pdf_image_count(out) == 2
    text = pdf_text(out)
    assert "Predicted peak memory, by part" in text and "Live memory" in text
    assert "Fits" in text and "How to" in text and "Assumptions" in text
    assert len(PdfReader(str(out)).pages) >= 2


def test_pdf_shows_hostile_text_as_text(tmp_path: Path, qapp: Any) -> None:
    analysis, plan = _pipeline(hostile_onnx(tmp_path / "hostile.onnx"), hardware.laptop())
    out = write_report(analysis, plan, tmp_path / "r.pdf", pdf_renderer=html_to_pdf)
    text = pdf_text(out)
    assert SCRIPT in text and IMG in text


def test_pdf_renderer_failing_leaves_nothing(tmp_path: Path, mlp_path: Path, qapp: Any,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    analysis, plan = _pipeline(mlp_path, hardware.laptop())

    def print_then_fail(page: str, out: Path) -> None:
        html_to_pdf(page, out)  # a whole PDF is in the temp file...
        raise KeyboardInterrupt  # ...when Ctrl+C arrives

    with pytest.raises(KeyboardInterrupt):
        write_report(analysis, plan, tmp_path / "r.pdf", pdf_renderer=print_then_fail)
    assert list(tmp_path.iterdir()) == []


def test_unwritable_pdf_path_is_an_error(tmp_path: Path, qapp: Any) -> None:
    with pytest.raises(OSError, match="could not write a PDF"):
        html_to_pdf("<p>x</p>", tmp_path / "missing" / "r.pdf")


def test_data_images_become_resources(qapp: Any) -> None:
    from PySide6.QtGui import QTextDocument

    from tests.test_report import tiny_png

    doc = QTextDocument()
    uri = "data:image/png;base64," + base64.b64encode(tiny_png()).decode()
    out = embed_data_images(doc, f'<img src="{uri}"><img src="data:image/png;base64,bm90IGEgcG5n">')
    assert "data:" not in out
    assert 'src="advisor-image://1"' in out and 'src=""' in out  # the broken one is dropped


def test_write_report_refuses_pdf_without_qt_renderer(tmp_path: Path, mlp_path: Path) -> None:
    analysis, plan = _pipeline(mlp_path, hardware.laptop())
    with pytest.raises(ReportError, match="html_to_pdf"):
        write_report(analysis, plan, tmp_path / "r.pdf")
