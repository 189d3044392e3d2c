"""The plan as a report to hand on: HTML, PDF, Markdown or JSON (:func:`write_report`).

Every format carries the whole answer — model, target, verdict, breakdown, live memory picture
(when the app gives one), the plan with its commands, and the assumptions — from one context
(:mod:`advisor.report.context`). Files are written atomically (:mod:`advisor.report.atomic`).

The core stays Qt-free: the PDF is printed by a renderer the front passes in
(``advisor.ui.pdf.html_to_pdf``), which receives a Qt-friendly HTML page and a path.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from datetime import datetime
from pathlib import Path

from advisor.analysis import Analysis
from advisor.errors import ReportError
from advisor.plan.types import Plan
from advisor.report.atomic import atomic_write, atomic_write_text

__all__ = ["FORMATS", "PdfRenderer", "check_destination", "write_report"]

FORMATS: dict[str, str] = {
    ".html": "html",
    ".htm": "html",
    ".pdf": "pdf",
    ".md": "markdown",
    ".markdown": "markdown",
    ".json": "json",
}

PdfRenderer = Callable[[str, Path], None]


def check_destination(out: Path) -> str:
    """The report format ``out`` asks for, once its folder is known to take a new file.

    Raises:
        ReportError: an extension not in :data:`FORMATS` (the message lists them), a folder that
            does not exist or is not a folder, or one this process cannot create files in.
    """
    out = Path(out)
    fmt = FORMATS.get(out.suffix.lower())
    if fmt is None:
        choices = ", ".join(FORMATS)
        got = f"{out.suffix!r}" if out.suffix else "no extension"
        raise ReportError(f"unknown report format ({got}); use one of {choices}", out)
    folder = out.parent
    if out.is_dir():
        raise ReportError("is a folder; give a file name such as report.html", out)
    if not folder.exists():
        raise ReportError("folder does not exist", folder)
    if not folder.is_dir():
        raise ReportError("is not a folder, so the report cannot be written inside it", folder)
    if not os.access(folder, os.W_OK | os.X_OK):
        raise ReportError("folder is not writable", folder)
    # os.access answers for permission bits only; a read-only mount, a full disk or an ACL shows
    # only when a file is really created.
    try:
        fd, probe = tempfile.mkstemp(dir=folder, prefix=".advisor-write-test.", suffix=".tmp")
        os.close(fd)
        Path(probe).unlink()
    except OSError as exc:
        raise ReportError(f"folder is not writable ({exc.strerror or exc})", folder) from None
    return fmt


def write_report(
    analysis: Analysis,
    plan: Plan,
    out: Path,
    *,
    images: dict[str, bytes] | None = None,
    pdf_renderer: PdfRenderer | None = None,
    generated_at: datetime | None = None,
) -> Path:
    """Write the report for ``analysis`` and ``plan`` to ``out``; the format follows the extension.

    Args:
        analysis: the model held against its target.
        plan: the ranked options (from :func:`advisor.plan.make_plan`).
        out: ``.html``/``.htm``, ``.pdf``, ``.md``/``.markdown`` or ``.json``.
        images: PNGs to show: ``"breakdown"`` (the breakdown chart), ``"live"`` (the live memory
            plot). Not embedded in Markdown or JSON.
        pdf_renderer: ``(html, path) -> None`` that prints a page to a PDF (the fronts pass
            ``advisor.ui.pdf.html_to_pdf``); required for ``.pdf``.
        generated_at: the time shown in the report (default: now), in UTC.

    Returns:
        ``out``, complete. On any failure nothing is left at ``out`` that was not there before.

    Raises:
        ReportError: bad destination, a PDF without a renderer, or the file cannot be written.
    """
    out = Path(out)
    fmt = check_destination(out)
    renderer = pdf_renderer
    if fmt == "pdf" and renderer is None:
        raise ReportError("writing a PDF needs the Qt PDF renderer (advisor.ui.pdf.html_to_pdf)", out)
    try:
        if fmt == "json":
            from advisor.report.json_report import render_json

            return atomic_write_text(out, render_json(analysis, plan, generated_at=generated_at))
        from advisor.report.context import build_context

        ctx = build_context(analysis, plan, images=images, generated_at=generated_at)
        if fmt == "markdown":
            from advisor.report.markdown import render_markdown

            return atomic_write_text(out, render_markdown(ctx))
        from advisor.report.html import render_html

        if fmt == "html":
            return atomic_write_text(out, render_html(ctx, "web"))
        page = render_html(ctx, "qt")
        pdf = renderer if renderer is not None else _no_renderer
        return atomic_write(out, lambda tmp: pdf(page, tmp))
    except OSError as exc:
        raise ReportError(f"could not write the report ({exc.strerror or exc})", out) from None


def _no_renderer(_html: str, out: Path) -> None:  # pragma: no cover — write_report checks first
    raise ReportError("no PDF renderer", out)
