"""The verdict's words, shared by the window, the terminal, the chart and the reports."""

from __future__ import annotations

from advisor.estimator.fit import fit
from advisor.estimator.types import GIB, Estimate
from advisor.verdict import CERTAINTY_TEXT, certainty_text, verdict_words
from tests.builders.hardware import gpu_box, laptop


def _estimate(peak_gib: float, device: str = "cpu", tp: int = 1) -> Estimate:
    peak = int(peak_gib * GIB)
    return Estimate(runtime="pytorch-cuda" if device == "cuda" else "pytorch-cpu", device=device,  # type: ignore[arg-type]
                    weights_bytes=peak, activation_bytes=0, kv_cache_bytes=0, overhead_bytes=0,
                    peak_bytes=peak, low_bytes=int(peak * 0.9), high_bytes=int(peak * 1.1), tensor_parallel=tp)


def test_fits_and_short_by() -> None:
    hw = laptop(16)  # planning: 16 GiB minus max(512 MiB, 10 %) = 14.4 GiB usable
    assert verdict_words(fit(_estimate(4), hw), decimals=1) == ("Fits", "10.4 GiB headroom")
    assert verdict_words(fit(_estimate(20), hw), decimals=1) == ("Does not fit", "short by 5.6 GiB")


def test_no_memory_to_hold_it_against_says_why() -> None:
    f = fit(_estimate(10, "cuda", tp=4), gpu_box(24, n_gpus=1))
    word, why = verdict_words(f)
    assert word == "Does not fit" and "needs 4 GPUs" in why


def test_every_certainty_has_words() -> None:
    hw = laptop(16)
    seen = {fit(_estimate(g), hw).certainty for g in (4, 13.5, 15, 20)}
    assert seen == set(CERTAINTY_TEXT)
    assert certainty_text(fit(_estimate(4), hw)).startswith("sure")
