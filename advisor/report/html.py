"""The HTML reports: one self-contained page for browsers, and a Qt-friendly page for the PDF.

Both come from Jinja2 templates in ``resources/templates`` with autoescape on, so every string
from a model file or a path reaches the page as text. The browser page carries its CSS inline and
its images as ``data:`` URIs and makes no request of its own (a Content-Security-Policy says so
too). The PDF page keeps to the HTML subset ``QTextDocument`` lays out: tables, inline styles,
no flexbox or grid.
"""

from __future__ import annotations

import functools
from typing import Any, Literal

import jinja2

from advisor.resources import read_text

Variant = Literal["web", "qt"]
TEMPLATES: dict[str, str] = {"web": "report.html.j2", "qt": "report_qt.html.j2"}


def _load(name: str) -> str:
    return read_text("templates", name)


@functools.cache
def _environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FunctionLoader(_load),
        autoescape=True,  # every value is text: a model's name or metadata never becomes markup
        undefined=jinja2.StrictUndefined,  # a typo in a template fails loudly, not as a blank
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
    env.filters["nbsp"] = nbsp
    return env


def nbsp(value: object) -> str:
    """``value`` with its spaces made non-breaking, so "688.03 MiB" never wraps in a narrow cell."""
    return str(value).replace(" ", "\u00a0")


def render_html(ctx: dict[str, Any], variant: Variant = "web") -> str:
    """Render a context from :func:`advisor.report.context.build_context` as an HTML page.

    Args:
        ctx: the report context.
        variant: ``web`` for the self-contained page, ``qt`` for the page the PDF is printed from.
    """
    return _environment().get_template(TEMPLATES[variant]).render(**ctx)
