"""The JSON report: the document ``advisor plan --json`` prints, plus when and by what it was made."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from advisor._version import __version__
from advisor.analysis import Analysis
from advisor.plan.types import Plan
from advisor.report.context import utc_timestamp


def report_document(analysis: Analysis, plan: Plan, *, generated_at: datetime | None = None) -> dict[str, Any]:
    """``{**analysis.to_dict(), **plan.to_dict()}`` (the plan schema) with a ``report`` object added.

    ``report`` holds ``generated_at`` (ISO-8601, UTC), ``advisor_version`` and ``format``.
    """
    return {
        **analysis.to_dict(),
        **plan.to_dict(),
        "report": {
            "generated_at": utc_timestamp(generated_at).isoformat(),
            "advisor_version": __version__,
            "format": "json",
        },
    }


def render_json(analysis: Analysis, plan: Plan, *, generated_at: datetime | None = None) -> str:
    """The JSON report as text (``default=str`` as the CLI uses, for metadata values JSON lacks)."""
    doc = report_document(analysis, plan, generated_at=generated_at)
    return json.dumps(doc, indent=2, ensure_ascii=False, default=str) + "\n"
