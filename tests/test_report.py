"""The report: HTML, Markdown and JSON from the real pipeline, escaping, destinations, atomic writes.

The PDF (printed by Qt) is tested in test_report_pdf.py; nothing here imports Qt.
"""

from __future__ import annotations

import base64
import html
import json
import os
import re
import signal
import struct
import subprocess
import sys
import time
import zlib
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import markupsafe
import numpy as np
import pytest
from onnx import TensorProto, helper, numpy_helper

from advisor.analysis import Analysis, analyze
from advisor.cli import run
from advisor.errors import ReportError
from advisor.estimator.types import Workload
from advisor.plan import make_plan
from advisor.plan.types import Plan
from advisor.readers import read_model
from advisor.report import FORMATS, check_destination, write_report
from advisor.report import atomic as atomic_mod
from advisor.report.markdown import fenced, md_text
from tests.builders import gguf_models, hardware, onnx_models

SCRIPT = "<script>alert(1)</script>"
IMG = "<img src=x onerror=alert(1)>"
WHEN = datetime(2025, 3, 4, 5, 6, 7, tzinfo=UTC)
DEVICE = "rpi5-8gb"


def tiny_png(rgb: tuple[int, int, int] = (0, 114, 178)) -> bytes:
    """A valid 2×2 PNG, built by hand so this file needs no Qt."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    row = b"\x00" + bytes(rgb) * 2
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", 2, 2, 8, 2, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(row * 2)) + chunk(b"IEND", b""))


def hostile_onnx(path: Path) -> Path:
    """A model whose graph name, input name, producer, doc_string and metadata are HTML/Markdown attacks."""
    w = numpy_helper.from_array(np.ones((4, 4), np.float32), "layers.0.weight")
    node = helper.make_node("MatMul", [IMG, "layers.0.weight"], ["y"])
    graph = helper.make_graph(
        [node], SCRIPT,
        [helper.make_tensor_value_info(IMG, TensorProto.FLOAT, ["batch", 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 4])],
        initializer=[w],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], producer_name=SCRIPT)
    model.doc_string = f"doc {SCRIPT} | `tick` {IMG} [x](javascript:alert(1))"
    helper.set_model_props(model, {SCRIPT: IMG, "license": "a|b `c`"})
    return onnx_models.save(model, path)


def pipeline(model_path: Path, target: Any = None) -> tuple[Analysis, Plan]:
    analysis = analyze(read_model(model_path), target or hardware.laptop(), Workload())
    return analysis, make_plan(analysis)


@pytest.fixture
def mlp_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The model lives in its own folder, so ``tmp_path`` holds only what a test writes."""
    return onnx_models.mlp(tmp_path_factory.mktemp("model") / "mlp.onnx")


@pytest.fixture
def mlp_result(mlp_path: Path) -> tuple[Analysis, Plan]:
    return pipeline(mlp_path)


def norm(text: str) -> str:
    return " ".join(text.split())


# --- every format, from the command line ------------------------------------------------------


@pytest.mark.parametrize("ext", [".html", ".htm", ".md", ".markdown", ".json"])
def test_cli_writes_every_format(tmp_path: Path, mlp_path: Path, ext: str, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / f"report{ext}"
    assert run(["report", str(mlp_path), "-o", str(out), "--device", DEVICE]) == 0
    assert f"wrote {out}" in capsys.readouterr().out
    text = out.read_text(encoding="utf-8")
    analysis, plan = pipeline(mlp_path, _catalog(DEVICE))
    if FORMATS[ext] == "json":
        doc = json.loads(text)
        assert doc["model"]["name"] == "mlp" and doc["target"]["device_id"] == DEVICE
        assert [o["title"] for o in doc["options"]] == [o.title for o in plan.options]
    else:
        flat = norm(html.unescape(text).replace("\\", ""))
        assert "mlp" in flat and analysis.hardware.name in flat
        for option in plan.options:
            assert norm(option.title) in flat
    assert [p.name for p in tmp_path.iterdir() if p.name.endswith(".part")] == []


def _catalog(device_id: str) -> Any:
    from advisor.hardware.catalog import get_device

    return get_device(device_id)


def test_cli_unknown_extension_fails_before_work(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "report.docx"
    # The model does not even exist: the destination is checked first.
    assert run(["report", str(tmp_path / "missing.onnx"), "-o", str(out)]) == 2
    err = capsys.readouterr().err
    assert "unknown report format" in err and ".html" in err and ".pdf" in err and ".md" in err and ".json" in err
    assert list(tmp_path.iterdir()) == []


def test_cli_folder_under_a_file(tmp_path: Path, mlp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    blocker = tmp_path / "file.txt"
    blocker.write_text("not a folder")
    assert run(["report", str(mlp_path), "-o", str(blocker / "out.html"), "--device", DEVICE]) == 2
    err = capsys.readouterr().err
    assert str(blocker) in err and "not a folder" in err
    assert "Traceback" not in err


# --- content ----------------------------------------------------------------------------------


def test_html_carries_the_whole_answer(tmp_path: Path, mlp_result: tuple[Analysis, Plan]) -> None:
    analysis, plan = mlp_result
    breakdown, live = tiny_png((0, 114, 178)), tiny_png((230, 159, 0))
    out = write_report(analysis, plan, tmp_path / "r.html", images={"breakdown": breakdown, "live": live},
                       generated_at=WHEN)
    page = out.read_text(encoding="utf-8")
    text = norm(html.unescape(re.sub(r"<[^>]+>", " ", page)))
    from advisor.textout import verdict_line
    from advisor.units import format_bytes

    assert norm(verdict_line(analysis)) in text
    assert "2025-03-04 05:06 UTC" in text and "Memory Advisor 0.1.0" in text
    for figure in (analysis.estimate.weights_bytes, analysis.estimate.peak_bytes, analysis.estimate.low_bytes):
        assert format_bytes(figure) in text
    for option in plan.options:
        assert norm(option.title) in text and norm(option.risk_reason) in text
        assert str(markupsafe.escape(option.how_to.strip("\n"))) in page  # the command, line breaks kept
    for note in analysis.estimate.notes:
        assert norm(note) in text
    assert analysis.hardware.name in text and "Test x86 CPU" in text
    assert "x" in text and "[batch, 32]" in text  # the input and its shape
    # Both images embedded as data URIs, with their captions; the verdict comes before the plan.
    assert f"data:image/png;base64,{base64.b64encode(breakdown).decode()}" in page
    assert f"data:image/png;base64,{base64.b64encode(live).decode()}" in page
    assert "Live memory" in text
    assert page.index("Fits") < page.index("<h2>Plan</h2>")


def test_html_is_self_contained(tmp_path: Path, mlp_result: tuple[Analysis, Plan]) -> None:
    out = write_report(*mlp_result, tmp_path / "r.html", images={"breakdown": tiny_png()})
    page = out.read_text(encoding="utf-8")
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:|//)""", page, re.IGNORECASE)
    assert "<link" not in page and "@import" not in page and "url(" not in page
    assert "<script" not in page.lower()
    assert "prefers-color-scheme: dark" in page and "@media print" in page


def test_images_that_are_not_png_are_left_out(tmp_path: Path, mlp_result: tuple[Analysis, Plan]) -> None:
    out = write_report(*mlp_result, tmp_path / "r.html", images={"breakdown": b"GIF89a...", "live": b""})
    assert "data:image" not in out.read_text(encoding="utf-8")


def test_hostile_model_is_escaped_everywhere(tmp_path: Path) -> None:
    analysis, plan = pipeline(hostile_onnx(tmp_path / "hostile.onnx"))
    assert analysis.model.name == SCRIPT  # the attack really reaches the report
    page = write_report(analysis, plan, tmp_path / "r.html").read_text(encoding="utf-8")
    assert "<script" not in page.lower()
    assert "<img src=x" not in page and "onerror=alert(1)>" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "&lt;img src=x onerror=alert(1)&gt;" in page
    text = html.unescape(re.sub(r"<[^>]+>", " ", page))
    assert SCRIPT in text and IMG in text  # shown as text: in the title, inputs and metadata

    md = write_report(analysis, plan, tmp_path / "r.md").read_text(encoding="utf-8")
    prose = re.sub(r"^(`{3,}).*?^\1$", "", md, flags=re.MULTILINE | re.DOTALL)  # code blocks are literal
    assert "<script" not in prose.lower() and "<img" not in prose
    assert re.search(r"(?<!\\)\]\(javascript", prose) is None and "[x\\](javascript" in prose  # no live link
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in md
    for line in prose.splitlines():
        if line.startswith("| doc_string"):
            assert line.count(" | ") == 1 and "\\|" in line and "\\`tick\\`" in line  # still two cells


def test_markdown_has_tables_and_code_blocks(tmp_path: Path, mlp_result: tuple[Analysis, Plan]) -> None:
    analysis, plan = mlp_result
    md = write_report(analysis, plan, tmp_path / "r.md", images={"breakdown": tiny_png()}).read_text(encoding="utf-8")
    assert md.startswith("# Memory report: mlp\n")
    assert "| # | Kind | Option | Fits | Needs | Peak | Headroom | Speed | Risk | Price |" in md
    assert "| ---: | --- | --- | --- | ---: | ---: | ---: | ---: | --- | --- |" in md  # numbers right-aligned
    assert "HTML/PDF report" in md and "data:image" not in md
    blocks = re.findall(r"^(`{3,})\n(.*?)\n\1$", md, flags=re.MULTILINE | re.DOTALL)
    assert [b[1] for b in blocks] == [o.how_to.strip("\n") for o in plan.options if o.how_to.strip()]
    assert md.index("## Verdict") < md.index("## Plan")
    for note in analysis.estimate.notes:
        assert md_text(note) in md


def test_markdown_escaping() -> None:
    assert md_text("a|b") == "a\\|b"
    assert md_text("`x`") == "\\`x\\`"
    assert md_text("[a](http://x)") == "[a\\](http\\://x)"
    # bare URLs, www. domains and e-mail addresses stay text (no GFM autolink)
    assert md_text("see https://evil.example") == "see https\\://evil.example"
    assert md_text("www.evil.example") == "www\\.evil.example"
    assert md_text("me@evil.example") == "me\\@evil.example"
    assert md_text("[batch, 32]") == "[batch, 32]"
    assert md_text("line\nbreak") == "line break"
    code = "echo ```not the end```"
    block = fenced(code)
    assert block.startswith("````\n") and block.endswith("\n````")


def test_json_is_the_plan_schema_plus_report(tmp_path: Path, mlp_result: tuple[Analysis, Plan]) -> None:
    analysis, plan = mlp_result
    out = write_report(analysis, plan, tmp_path / "r.json", generated_at=WHEN)
    doc = json.loads(out.read_text(encoding="utf-8"))
    report = doc.pop("report")
    assert report == {"generated_at": "2025-03-04T05:06:07+00:00", "advisor_version": "0.1.0", "format": "json"}
    expected = json.loads(json.dumps({**analysis.to_dict(), **plan.to_dict()}, default=str))
    assert doc == expected


def test_json_times_are_utc(tmp_path: Path, mlp_result: tuple[Analysis, Plan]) -> None:
    local = datetime(2025, 3, 4, 7, 6, 7, tzinfo=timezone(timedelta(hours=2)))
    out = write_report(*mlp_result, tmp_path / "r.json", generated_at=local)
    assert json.loads(out.read_text())["report"]["generated_at"] == "2025-03-04T05:06:07+00:00"


def test_llm_that_does_not_fit(tmp_path: Path) -> None:
    model = gguf_models.tiny_llama_gguf(tmp_path / "tiny.gguf")
    analysis = analyze(read_model(model), hardware.edge(ram_gib=0.05, unified=False), Workload(context=4096))
    plan = make_plan(analysis)
    assert not analysis.fit.fits
    for ext in (".html", ".md"):
        text = norm(html.unescape(write_report(analysis, plan, tmp_path / f"r{ext}").read_text()))
        assert "Does not fit — short by" in text
        assert "Architecture" in text and "llama: 2 layers" in text
        assert "Tiny Llama" in text


# --- destinations -----------------------------------------------------------------------------


@pytest.mark.parametrize(("name", "fmt"), [("a.HTML", "html"), ("a.htm", "html"), ("a.pdf", "pdf"),
                                           ("a.md", "markdown"), ("a.markdown", "markdown"), ("a.json", "json")])
def test_check_destination_formats(tmp_path: Path, name: str, fmt: str) -> None:
    assert check_destination(tmp_path / name) == fmt
    assert list(tmp_path.iterdir()) == []  # the write probe leaves nothing


@pytest.mark.parametrize("name", ["report.txt", "report", "report.html.bak"])
def test_unknown_extension(tmp_path: Path, mlp_result: tuple[Analysis, Plan], name: str) -> None:
    with pytest.raises(ReportError, match=r"unknown report format.*\.html.*\.pdf.*\.md.*\.json"):
        write_report(*mlp_result, tmp_path / name)
    assert list(tmp_path.iterdir()) == []


def test_missing_folder(tmp_path: Path) -> None:
    with pytest.raises(ReportError, match="folder does not exist") as info:
        check_destination(tmp_path / "nope" / "r.html")
    assert str(tmp_path / "nope") in str(info.value)


def test_destination_is_a_folder(tmp_path: Path) -> None:
    (tmp_path / "r.html").mkdir()
    with pytest.raises(ReportError, match="is a folder"):
        check_destination(tmp_path / "r.html")


def test_folder_without_write_permission(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Tests run as root, where chmod does not stop writes; answer as an unwritable folder would.
    monkeypatch.setattr(os, "access", lambda *_a, **_k: False)
    with pytest.raises(ReportError, match="not writable") as info:
        check_destination(tmp_path / "r.md")
    assert str(tmp_path) in str(info.value)


def test_folder_that_refuses_a_real_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """os.access says yes (a read-only mount, an ACL); the probe file says no."""

    def refuse(*_a: Any, **_k: Any) -> Any:
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr("advisor.report.tempfile.mkstemp", refuse)
    with pytest.raises(ReportError, match=r"not writable.*Permission denied"):
        check_destination(tmp_path / "r.md")


def test_pdf_without_renderer(tmp_path: Path, mlp_result: tuple[Analysis, Plan]) -> None:
    with pytest.raises(ReportError, match="PDF"):
        write_report(*mlp_result, tmp_path / "r.pdf")
    assert list(tmp_path.iterdir()) == []


# --- atomic writes ----------------------------------------------------------------------------


def _leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


def test_interrupted_renderer_leaves_nothing(tmp_path: Path, mlp_result: tuple[Analysis, Plan]) -> None:
    def half_then_interrupt(page: str, out: Path) -> None:
        out.write_text(page[: len(page) // 2])
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        write_report(*mlp_result, tmp_path / "r.pdf", pdf_renderer=half_then_interrupt)
    assert _leftovers(tmp_path) == []


def test_failed_write_keeps_the_old_report(tmp_path: Path, mlp_result: tuple[Analysis, Plan],
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    out = tmp_path / "r.md"
    out.write_text("the old report")

    def full_disk(_path: Path) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(atomic_mod, "_fsync_file", full_disk)
    with pytest.raises(ReportError, match="No space left on device"):
        write_report(*mlp_result, out)
    assert out.read_text() == "the old report"
    assert _leftovers(tmp_path) == ["r.md"]


def test_interrupted_serializer_leaves_nothing(tmp_path: Path, mlp_result: tuple[Analysis, Plan],
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    real_write_bytes = Path.write_bytes

    def write_half(self: Path, data: bytes) -> int:
        real_write_bytes(self, data[: len(data) // 2])
        raise KeyboardInterrupt

    monkeypatch.setattr(Path, "write_bytes", write_half)
    with pytest.raises(KeyboardInterrupt):
        write_report(*mlp_result, tmp_path / "r.json")
    monkeypatch.undo()
    assert _leftovers(tmp_path) == []


def test_written_report_is_readable_by_others(tmp_path: Path, mlp_result: tuple[Analysis, Plan]) -> None:
    out = write_report(*mlp_result, tmp_path / "r.html")
    assert out.stat().st_mode & 0o044 == 0o044  # not mkstemp's 0600: a report is for sharing


def test_a_killed_writers_temp_is_swept_on_the_next_write(tmp_path: Path) -> None:
    out = tmp_path / "plan [v2].md"
    code = ("import sys, time\nfrom pathlib import Path\nfrom advisor.report.atomic import atomic_write\n"
            "def w(tmp):\n    tmp.write_text('half')\n    print('writing', flush=True)\n    time.sleep(60)\n"
            "atomic_write(Path(sys.argv[1]), w)\n")
    child = subprocess.Popen([sys.executable, "-c", code, str(out)], stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout is not None and child.stdout.readline().strip() == "writing"
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait()
    left = list(tmp_path.glob("*.part"))
    assert len(left) == 1 and f".{child.pid}-" in left[0].name  # SIGKILL: nothing could clean up
    ours = tmp_path / f".{out.name}.{os.getpid()}-{atomic_mod._host_tag()}.abc123.part"  # a live writer's
    old = tmp_path / f".{out.name}.legacy.part"  # no owner in the name: judged by age
    fresh = tmp_path / f".{out.name}.recent.part"
    other = tmp_path / f".other.md.{child.pid}-{atomic_mod._host_tag()}.x.part"  # another target's
    for p in (ours, old, fresh, other):
        p.write_text("x")
    os.utime(old, (time.time() - 2 * 86400,) * 2)
    atomic_mod.atomic_write_text(out, "whole")
    assert out.read_text() == "whole"
    assert sorted(p.name for p in tmp_path.glob(".*.part")) == sorted(p.name for p in (ours, fresh, other))
