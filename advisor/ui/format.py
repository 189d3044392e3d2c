"""Words and numbers the window shows, built from core results (no Qt, no decisions).

Everything here only rephrases what the core computed (:class:`~advisor.estimator.types.Fit`,
:class:`~advisor.estimator.types.Estimate`, plan options) for a person; byte sizes go through
:mod:`advisor.units` like the CLI's.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from advisor.units import format_bytes, format_bytes_range
from advisor.verdict import Tone, certainty_text, verdict_tone, verdict_words

__all__ = ["Tone", "verdict_tone"]


def verdict_headline(fit: Any) -> str:
    """One line: ``"Fits — 6.2 GiB headroom"`` or ``"Does not fit — short by 3.4 GiB"``."""
    word, amount = verdict_words(fit, decimals=1)
    return f"{word} — {amount}"


def verdict_detail(analysis: Any) -> str:
    """The estimate's range and where it is held: ``"peak 9.3 GiB, range 8.7–10.4 GiB, on GPU 0 · …"``."""
    fit, est = analysis.fit, analysis.estimate
    if fit.error:
        return f"{analysis.hardware.name} · {est.runtime}"
    basis = "available now" if fit.basis == "available" else "total"
    need = (f"needs {format_bytes(fit.required_bytes, decimals=1)}, range "
            f"{format_bytes_range(fit.required_low_bytes, fit.required_high_bytes)}")
    parts = [
        (f"{need} (peak shown {format_bytes(fit.peak_bytes, decimals=1)})" if fit.required_bytes != fit.peak_bytes
         else f"{need}") + f", on {fit.label}",
        f"budget {format_bytes(fit.budget_bytes, decimals=1)} of {format_bytes(fit.capacity_bytes, decimals=1)} "
        f"{basis}",
        f"{analysis.hardware.name} · {est.runtime}",
    ]
    if est.tensor_parallel > 1:
        parts.append(f"per GPU over {est.tensor_parallel}")
    if est.spread:
        parts.append("spread by device_map='auto': " + ", ".join(f"GPU {i} {format_bytes(b, decimals=1)}"
                                                                  for i, b in est.spread))
    if fit.host_fits is False:
        parts.append(f"host RAM short for {format_bytes(est.host_bytes, decimals=1)}")
    return " · ".join(parts)


def certainty_line(fit: Any) -> str:
    """``"Certainty: likely — …"``."""
    return "Certainty: " + certainty_text(fit)


def shape_text(shape: Sequence[Any] | None) -> str:
    """``[batch, 3, 224, 224]``; ``?`` for unknown dims; ``unknown rank`` when there is no shape."""
    if shape is None:
        return "unknown rank"
    return "[" + ", ".join("?" if d is None else str(d) for d in shape) + "]"


def parse_shape(text: str) -> tuple[int, ...] | None:
    """``"1, 3, 224, 224"`` → ``(1, 3, 224, 224)``; empty → None (let the workload decide).

    Raises:
        ValueError: a part that is not a whole number of 0 or more (message names it).
    """
    text = text.strip().strip("[]()")
    if not text:
        return None
    dims = []
    for part in text.replace("x", ",").replace("×", ",").split(","):
        part = part.strip()
        if not part.isdigit():
            raise ValueError(f"{part!r} is not a whole number")
        dims.append(int(part))
    return tuple(dims)


def peak_change(before_bytes: int | None, after_bytes: int | None) -> str:
    """``"9.3 GiB → 4.1 GiB"`` (or just the one known side)."""
    if after_bytes is None:
        return "—"
    if before_bytes is None or before_bytes == after_bytes:
        return format_bytes(after_bytes, decimals=1)
    return f"{format_bytes(before_bytes, decimals=1)} → {format_bytes(after_bytes, decimals=1)}"


def headroom_text(headroom_bytes: int | None) -> str:
    """``"+6.2 GiB"`` / ``"−3.4 GiB"`` / ``"—"``."""
    if headroom_bytes is None:
        return "—"
    sign = "+" if headroom_bytes >= 0 else "−"
    return f"{sign}{format_bytes(abs(headroom_bytes), decimals=1)}"
