"""Print a report page to PDF with Qt: ``QTextDocument`` + ``QPdfWriter``, no WebEngine, no browser.

The core (:func:`advisor.report.write_report`) stays Qt-free and receives :func:`html_to_pdf` as
its ``pdf_renderer``. The page it passes is the Qt-friendly variant of the report
(``resources/templates/report_qt.html.j2``): tables and inline styles, which ``QTextDocument``
lays out well. Images arrive as ``data:`` URIs and are handed to the document as resources, so
nothing is fetched.
"""

from __future__ import annotations

import base64
import binascii
import re
from pathlib import Path

from PySide6.QtCore import QMarginsF, QUrl
from PySide6.QtGui import QFont, QImage, QPageLayout, QPageSize, QPdfWriter, QTextDocument

from advisor.ui.render import ensure_qapp

# NOTE: QTextDocument.print_ puts its own 2 cm margin inside the page of a document that is not
# paginated yet, and draws the page numbers in it (Qt 6 qtextdocument.cpp, QTextDocument::print).
# So the writer adds none: A4 with 2 cm margins leaves 170 mm of text, about 640 px at the 96 dpi
# images are sized in, which the report template's 600 px images fit.
PAGE_MARGIN_MM = 0.0
PDF_RESOLUTION_DPI = 300
_DATA_URI_RE = re.compile(r"""src=(["'])data:image/(?:png|jpeg|gif);base64,([A-Za-z0-9+/=\s]+)\1""")
_PDF_MAGIC = b"%PDF"


def embed_data_images(document: QTextDocument, html: str) -> str:
    """Register each ``data:`` image of ``html`` as a resource of ``document``; return the HTML
    with those ``src`` attributes pointing at the resources.

    ``QTextDocument`` does not decode ``data:`` URLs by itself in every Qt version; resources it
    always finds.
    """
    count = 0

    def swap(match: re.Match[str]) -> str:
        nonlocal count
        try:
            raw = base64.b64decode("".join(match.group(2).split()), validate=True)
        except (binascii.Error, ValueError):
            return 'src=""'
        image = QImage.fromData(raw)
        if image.isNull():
            return 'src=""'
        count += 1
        name = f"advisor-image://{count}"
        document.addResource(QTextDocument.ResourceType.ImageResource, QUrl(name), image)
        return f'src="{name}"'

    return _DATA_URI_RE.sub(swap, html)


def html_to_pdf(html: str, out: Path) -> None:
    """Print ``html`` to an A4 PDF at ``out`` (page numbers at the foot of each page).

    Creates the QApplication (offscreen when there is no display) if none exists.

    Raises:
        OSError: the PDF could not be written at ``out``.
    """
    ensure_qapp()
    out = Path(out)
    document = QTextDocument()
    font = document.defaultFont()
    # NOTE: without this, Latin text is shaped with the font's ligatures, and the PDF's text reads
    # back "ﬁts"/"ﬂoat16" (U+FB01/U+FB02): searching or copying "fits" from the PDF would fail.
    font.setStyleStrategy(QFont.StyleStrategy.PreferNoShaping)
    document.setDefaultFont(font)
    document.setHtml(embed_data_images(document, html))
    writer = QPdfWriter(str(out))
    writer.setResolution(PDF_RESOLUTION_DPI)
    writer.setPageSize(QPageSize(QPageSize.PageSizeId.A4))
    writer.setPageMargins(
        QMarginsF(PAGE_MARGIN_MM, PAGE_MARGIN_MM, PAGE_MARGIN_MM, PAGE_MARGIN_MM), QPageLayout.Unit.Millimeter
    )
    writer.setTitle(document.metaInformation(QTextDocument.MetaInformation.DocumentTitle))
    writer.setCreator("Memory Advisor")
    document.print_(writer)
    del writer  # QPdfWriter finishes and closes the file when it is destroyed
    try:
        with out.open("rb") as fh:
            ok = fh.read(len(_PDF_MAGIC)) == _PDF_MAGIC
    except OSError:
        ok = False
    if not ok:
        raise OSError(f"Qt could not write a PDF to {out}")
