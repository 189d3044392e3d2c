"""The verdict in words, written once for every front (window banner, terminal, chart title, reports).

A :class:`~advisor.estimator.types.Fit` says whether a predicted peak fits; this module says it the
way a person reads it: ``Fits — 6.2 GiB headroom`` / ``Does not fit — short by 3.4 GiB``, and how
sure that is.
"""

from __future__ import annotations

from typing import Literal

from advisor.estimator.types import Fit
from advisor.units import format_bytes

Tone = Literal["good", "warn", "bad", "neutral"]

# How each certainty is coloured: only "sure" is green; "likely" fits but the top of the range
# would not, so it is amber like "unlikely" (issue 10). Every front uses this one table.
CERTAINTY_TONE: dict[str, Tone] = {"sure": "good", "likely": "warn", "unlikely": "warn", "no": "bad"}

# What each Fit.certainty means, in the person's words.
CERTAINTY_TEXT: dict[str, str] = {
    "sure": "sure — even the top of the estimate's range fits",
    "likely": "likely — the predicted peak fits, but the top of the range would not",
    "unlikely": "unlikely — the predicted peak does not fit, but the bottom of the range would",
    "no": "no — even the bottom of the estimate's range does not fit",
}


def verdict_words(fit: Fit, *, decimals: int = 2) -> tuple[str, str]:
    """``("Fits", "6.2 GiB headroom")`` or ``("Does not fit", "short by 3.4 GiB")``.

    When there is no memory to hold it against at all (a CUDA runtime on a machine without the GPUs
    it needs), the second part says why instead of a meaningless shortfall.
    """
    if fit.fits:
        return "Fits", f"{format_bytes(fit.headroom_bytes, decimals=decimals)} headroom"
    if fit.error:
        return "Cannot run", fit.error
    if fit.capacity_bytes <= 0:
        return "Does not fit", fit.label
    return "Does not fit", f"short by {format_bytes(-fit.headroom_bytes, decimals=decimals)}"


def certainty_text(fit: Fit) -> str:
    """How sure the verdict is, e.g. ``"likely — the predicted peak fits, but …"``."""
    return CERTAINTY_TEXT.get(fit.certainty, fit.certainty)


def verdict_tone(fit: Fit) -> Tone:
    """How the verdict is coloured: good (sure to fit), warn (borderline), bad (does not fit)."""
    if fit.error:
        return "bad"
    tone = CERTAINTY_TONE.get(fit.certainty, "neutral")
    if fit.fits and fit.host_fits is False:
        return "warn"
    return tone
