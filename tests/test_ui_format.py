"""Byte formatting (advisor.units) and the verdict's words (advisor.ui.format), without Qt."""

from __future__ import annotations

import pytest

from advisor.estimator.types import GIB, MIB, Fit
from advisor.ui.format import (
    certainty_line,
    headroom_text,
    parse_shape,
    peak_change,
    shape_text,
    verdict_headline,
    verdict_tone,
)
from advisor.units import format_bytes, format_bytes_range, format_count, format_price


def _fit(peak: int, budget: int, certainty: str = "sure", fits: bool | None = None) -> Fit:
    return Fit(
        fits=peak <= budget if fits is None else fits, certainty=certainty, memory="gpu",  # type: ignore[arg-type]
        basis="total", label="GPU 0 · Test", capacity_bytes=budget + GIB, margin_bytes=GIB,
        budget_bytes=budget, peak_bytes=peak, low_bytes=peak - GIB // 2, high_bytes=peak + GIB,
        headroom_bytes=budget - peak,
    )


@pytest.mark.parametrize(("n", "text"), [
    (8_000_000_000, "7.45 GiB"),
    (0, "0 B"),
    (1023, "1023 B"),
    (1024, "1.00 KiB"),
    (5 * MIB + MIB // 2, "5.50 MiB"),
    (-int(3.4 * GIB), "-3.40 GiB"),
    (None, "—"),
])
def test_format_bytes(n: int | None, text: str) -> None:
    assert format_bytes(n) == text


def test_format_helpers() -> None:
    assert format_bytes(int(6.25 * GIB), decimals=1) == "6.2 GiB"
    assert format_bytes_range(int(8.7 * GIB), int(10.4 * GIB)) == "8.7–10.4 GiB"
    assert format_count(7_241_732_096) == "7.24 B"
    assert format_count(999) == "999"
    assert format_price(2.489) == "$2.49/h"
    assert format_price(None) == ""


def test_verdict_headline_fits_and_short() -> None:
    assert verdict_headline(_fit(peak=4 * GIB, budget=int(10.2 * GIB))) == "Fits — 6.2 GiB headroom"
    short = _fit(peak=int(13.4 * GIB), budget=10 * GIB, certainty="no")
    assert verdict_headline(short) == "Does not fit — short by 3.4 GiB"
    assert verdict_tone(short) == "bad"
    assert certainty_line(short).startswith("Certainty: no")


def test_tone_follows_certainty() -> None:
    assert verdict_tone(_fit(4 * GIB, 10 * GIB, "sure")) == "good"
    assert verdict_tone(_fit(11 * GIB, 10 * GIB, "unlikely")) == "warn"


def test_shapes() -> None:
    assert shape_text(("batch", 3, None)) == "[batch, 3, ?]"
    assert shape_text(None) == "unknown rank"
    assert parse_shape(" 1, 3 ,224,224 ") == (1, 3, 224, 224)
    assert parse_shape("[2x128]") == (2, 128)
    assert parse_shape("") is None
    with pytest.raises(ValueError, match="'a' is not a whole number"):
        parse_shape("1,a")


def test_plan_cells() -> None:
    assert peak_change(2 * GIB, GIB) == "2.0 GiB → 1.0 GiB"
    assert peak_change(None, GIB) == "1.0 GiB"
    assert peak_change(GIB, None) == "—"
    assert headroom_text(-GIB) == "−1.0 GiB"
    assert headroom_text(GIB) == "+1.0 GiB"
