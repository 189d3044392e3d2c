"""The two charts (live memory plot, breakdown bars), the sampling timer, and headless PNG rendering."""

from __future__ import annotations

import os
import struct
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from PySide6.QtGui import QColor, QPalette

from advisor.analysis import Analysis
from advisor.estimator.fit import fit
from advisor.estimator.types import GIB, Estimate, Workload
from advisor.hardware.profile import GpuInfo, HardwareProfile
from advisor.hardware.sampler import GpuMemorySample, MemorySample
from advisor.readers.profile import ModelProfile
from advisor.ui.breakdown_chart import BreakdownChart, breakdown_rows
from advisor.ui.live_memory import LiveMemory
from advisor.ui.memory_plot import MemoryPlot, Prediction, prediction_for
from advisor.ui.render import PNG_MAGIC, render_memory_png

REPO = Path(__file__).resolve().parents[1]


# -- inputs ---------------------------------------------------------------------------------------


def make_sample(t: float, ram_gib: float, gpus: tuple[tuple[float, float | None], ...] = ()) -> MemorySample:
    """A sample on a made-up 16 GiB machine; ``gpus`` are (used GiB, total GiB or None)."""
    ram = int(ram_gib * GIB)
    return MemorySample(
        time_s=t,
        ram_used_bytes=ram,
        ram_total_bytes=16 * GIB,
        ram_available_bytes=16 * GIB - ram,
        swap_used_bytes=GIB // 2,
        swap_total_bytes=2 * GIB,
        gpus=tuple(
            GpuMemorySample(i, "Test GPU", int(u * GIB), None if tot is None else int(tot * GIB))
            for i, (u, tot) in enumerate(gpus)
        ),
    )


def make_analysis(device: str = "cpu", live: bool = False, host_gib: float | None = None) -> Analysis:
    model = ModelProfile(
        path="/models/tiny.safetensors",
        format="safetensors",
        name="tiny-llm",
        n_params=3_000_000_000,
        weight_bytes=6 * GIB,
        params_by_dtype={"bf16": 3_000_000_000},
        weight_bytes_by_dtype={"bf16": 6 * GIB},
        files=("/models/tiny.safetensors",),
        file_bytes=6 * GIB,
    )
    hw = HardwareProfile(
        name="test box",
        source="probe" if live else "catalog",
        kind="this-machine" if live else "desktop",
        memory_total_bytes=32 * GIB,
        memory_available_bytes=20 * GIB if live else None,
        gpus=(GpuInfo(0, "Test GPU", memory_total_bytes=24 * GIB, memory_free_bytes=20 * GIB),),
    )
    est = Estimate(
        runtime="pytorch-cuda" if device == "cuda" else "pytorch-cpu",
        device="cuda" if device == "cuda" else "cpu",
        weights_bytes=6 * GIB,
        activation_bytes=GIB,
        kv_cache_bytes=2 * GIB,
        overhead_bytes=GIB // 2,
        peak_bytes=int(9.5 * GIB),
        low_bytes=9 * GIB,
        high_bytes=11 * GIB,
        host_bytes=None if host_gib is None else int(host_gib * GIB),
    )
    return Analysis(model, hw, Workload(), est.runtime, est, fit(est, hw))


class FakeSampler:
    """Hands out made-up samples (or raises), and records whether it was closed."""

    def __init__(self, fail: bool = False) -> None:
        self.fail = fail
        self.calls = 0
        self.closed = 0

    def sample(self) -> MemorySample:
        self.calls += 1
        if self.fail:
            raise OSError("probe exploded\nsecond line")
        return make_sample(float(self.calls), 4.0)

    def close(self) -> None:
        self.closed += 1


def png_size(data: bytes) -> tuple[int, int]:
    assert data[:8] == PNG_MAGIC
    width, height = struct.unpack(">II", data[16:24])  # IHDR follows the magic and chunk header
    return width, height


def dark_palette() -> QPalette:
    pal = QPalette(QColor("#2b2b2b"), QColor("#1e1e1e"))
    for role in (QPalette.ColorRole.WindowText, QPalette.ColorRole.Text):
        pal.setColor(role, QColor("#e8e8e8"))
    pal.setColor(QPalette.ColorRole.Base, QColor("#1e1e1e"))
    return pal


@pytest.fixture
def live(qtbot: Any) -> Iterator[tuple[LiveMemory, FakeSampler]]:
    sampler = FakeSampler()
    lm = LiveMemory(sampler, refresh_ms=250)
    yield lm, sampler
    lm.close()
    assert not lm.is_running  # no timer left running after a test


# -- LiveMemory -----------------------------------------------------------------------------------


def test_live_memory_emits_samples_from_the_timer(qtbot: Any, live: tuple[LiveMemory, FakeSampler]) -> None:
    lm, sampler = live
    with qtbot.waitSignal(lm.sampled, timeout=2000) as first:
        lm.start()
    assert isinstance(first.args[0], MemorySample)
    with qtbot.waitSignal(lm.sampled, timeout=3000) as second:
        pass  # the timer, not start(), delivers this one
    assert second.args[0].time_s > first.args[0].time_s
    assert sampler.calls >= 2


def test_live_memory_refresh_is_bounded(live: tuple[LiveMemory, FakeSampler]) -> None:
    lm, _ = live
    assert lm.set_refresh_ms(10) == LiveMemory.MIN_REFRESH_MS == 250
    assert lm.set_refresh_ms(10**7) == LiveMemory.MAX_REFRESH_MS == 10_000
    assert lm.set_refresh_ms(1500) == 1500
    assert lm.refresh_ms == 1500
    assert LiveMemory(FakeSampler()).refresh_ms == 1000


def test_live_memory_stop_and_close(qtbot: Any, live: tuple[LiveMemory, FakeSampler]) -> None:
    lm, sampler = live
    lm.start()
    assert lm.is_running
    lm.stop()
    assert not lm.is_running
    with qtbot.assertNotEmitted(lm.sampled):
        lm.close()
        lm.close()
        lm.sample_now()  # closed: nothing sampled
        lm.start()
    assert sampler.closed == 1
    assert not lm.is_running


def test_live_memory_failure_is_reported_once_and_sampling_goes_on(qtbot: Any) -> None:
    sampler = FakeSampler(fail=True)
    lm = LiveMemory(sampler, refresh_ms=250)
    failures: list[str] = []
    lm.failed.connect(failures.append)
    try:
        with qtbot.waitSignal(lm.failed, timeout=2000), qtbot.assertNotEmitted(lm.sampled):
            lm.start()
        lm.sample_now()
        lm.sample_now()
        assert failures == ["reading memory use failed: probe exploded"]
        assert lm.is_running  # the timer goes on
        sampler.fail = False
        with qtbot.waitSignal(lm.sampled, timeout=2000):
            lm.sample_now()
        sampler.fail = True
        lm.sample_now()  # a new streak is reported again
        assert len(failures) == 2
    finally:
        lm.close()


# -- MemoryPlot -----------------------------------------------------------------------------------


@pytest.fixture
def plot(qtbot: Any) -> MemoryPlot:
    widget = MemoryPlot(capacity=100)
    qtbot.addWidget(widget)
    return widget


def test_memory_plot_records_samples_in_gib(plot: MemoryPlot) -> None:
    for i in range(5):
        plot.add_sample(make_sample(10.0 + i, 2.0 + i, gpus=((1.5, 8.0),)))
    assert [c.name() for c in plot.curves] == ["RAM used", "swap used", "GPU 0 used (Test GPU)"]
    x, ram = plot.curves[0].getOriginalDataset()
    assert len(x) == len(ram) == 5
    assert ram[-1] == pytest.approx(6.0)
    assert plot.curves[1].getOriginalDataset()[1][-1] == pytest.approx(0.5)
    assert plot.curves[2].getOriginalDataset()[1][-1] == pytest.approx(1.5)
    assert [line.value() for line in plot.capacity_lines] == [pytest.approx(16.0), pytest.approx(8.0)]
    assert plot.status_text().startswith("Now: 6.0 / 16.0 GiB RAM")
    plot.add_sample(make_sample(15.0, 3.0, gpus=((1.5, 8.0),)))
    assert len(plot.curves[0].getOriginalDataset()[0]) == 6


def test_memory_plot_says_why_there_is_no_prediction(plot: MemoryPlot) -> None:
    plot.add_sample(make_sample(1.0, 9.0))
    plot.set_prediction(4 * GIB, 3 * GIB, 6 * GIB, "ram", None, "tiny-llm")
    plot.clear_prediction("drawn when the target is This machine")
    assert not plot.prediction_line.isVisible()
    assert plot.status_text().endswith("drawn when the target is This machine")
    plot.clear_prediction()
    assert "target" not in plot.status_text()


def test_memory_plot_prediction_line_sits_at_current_plus_peak(plot: MemoryPlot) -> None:
    plot.add_sample(make_sample(1.0, 9.0))
    plot.set_prediction(4 * GIB, 3 * GIB, 6 * GIB, "ram", None, "tiny-llm")
    assert plot.prediction_line.isVisible()
    assert plot.prediction_line.value() == pytest.approx(13.0)
    assert plot._band.getRegion() == (pytest.approx(12.0), pytest.approx(15.0))
    assert plot.status_text() == "Now: 9.0 / 16.0 GiB RAM · with model: 13.0 GiB (fits)"
    plot.add_sample(make_sample(2.0, 11.0))  # the line follows current use
    assert plot.prediction_line.value() == pytest.approx(15.0)
    assert plot.status_text().endswith("(may not fit)")
    plot.add_sample(make_sample(3.0, 13.0))
    assert plot.status_text().endswith("with model: 17.0 GiB (does not fit)")
    assert plot.plot_widget.getPlotItem().viewRange()[1][1] >= 19.0  # the band's top is in view
    plot.clear_prediction()
    assert not plot.prediction_line.isVisible()
    assert "with model" not in plot.status_text()


def test_memory_plot_judges_the_need_but_draws_the_peak(plot: MemoryPlot) -> None:
    plot.add_sample(make_sample(1.0, 9.0))
    # llama.cpp-like: a 9 GiB peak of which 4 GiB are file pages the OS can drop
    plot.set_prediction(9 * GIB, 8 * GIB, 10 * GIB, "ram", None, "q4-llm", 5 * GIB, 6 * GIB)
    assert plot.prediction_line.value() == pytest.approx(18.0)  # the reading it will show
    assert plot.status_text() == "Now: 9.0 / 16.0 GiB RAM · with model: 18.0 GiB, needs 14.0 GiB (fits)"


def test_memory_plot_prediction_on_a_gpu(plot: MemoryPlot) -> None:
    plot.add_sample(make_sample(1.0, 9.0, gpus=((1.0, 8.0), (2.0, 24.0))))
    plot.set_prediction(10 * GIB, 9 * GIB, 12 * GIB, "gpu", 1, "tiny-llm")
    assert plot.prediction_line.value() == pytest.approx(12.0)
    assert plot.status_text() == "Now: 2.0 / 24.0 GiB on GPU 1 · with model: 12.0 GiB (fits)"
    plot.set_prediction(10 * GIB, 9 * GIB, 12 * GIB, "gpu", 7, "tiny-llm")  # a GPU the sampler lacks
    assert not plot.prediction_line.isVisible()
    assert "not sampled" in plot.status_text()


def test_memory_plot_pause_freezes_display_but_records(plot: MemoryPlot) -> None:
    for i in range(3):
        plot.add_sample(make_sample(float(i), 4.0))
    plot.set_paused(True)
    frozen_status = plot.status_text()
    for i in range(3, 7):
        plot.add_sample(make_sample(float(i), 5.0))
    assert len(plot.buffer) == 7
    assert len(plot.curves[0].getOriginalDataset()[0]) == 3
    assert plot.status_text() == frozen_status
    plot.set_paused(False)
    x, ram = plot.curves[0].getOriginalDataset()
    assert len(x) == 7
    assert ram[-1] == pytest.approx(5.0)


def test_memory_plot_window_and_history(plot: MemoryPlot) -> None:
    for i in range(100 + 20):  # capacity is 100: the oldest 20 are gone
        plot.add_sample(make_sample(float(i), 4.0))
    assert len(plot.curves[0].getOriginalDataset()[0]) == 100
    plot.set_window_s(60)
    x_range = plot.plot_widget.getPlotItem().viewRange()[0]
    assert x_range[1] - x_range[0] == pytest.approx(60.0)
    assert plot._window_combo.currentText() == "1 min"
    plot.set_window_s(None)
    x_range = plot.plot_widget.getPlotItem().viewRange()[0]
    assert x_range == [pytest.approx(20.0), pytest.approx(119.0)]
    assert plot._window_combo.currentText() == "All"


def test_memory_plot_rebuilds_curves_when_gpus_change(plot: MemoryPlot) -> None:
    plot.add_sample(make_sample(1.0, 4.0))
    assert len(plot.curves) == 2
    plot.add_sample(make_sample(2.0, 4.0, gpus=((1.0, None),)))  # unknown total: no capacity line
    assert len(plot.curves) == 3
    assert len(plot.capacity_lines) == 1
    assert "GPU 0: 1.0 / ? GiB" in plot.status_text()


def test_memory_plot_exports_png(plot: MemoryPlot) -> None:
    plot.resize(700, 400)
    for i in range(30):
        plot.add_sample(make_sample(float(i), 4.0 + i / 10))
    plot.set_prediction(4 * GIB, 3 * GIB, 6 * GIB, "ram", None, "tiny-llm")
    width, height = png_size(plot.export_png())
    assert width > 100 and height > 100


def test_prediction_for_uses_this_machine_only() -> None:
    assert prediction_for(make_analysis("cuda")) is None  # a catalog device is not on this plot
    pred = prediction_for(make_analysis("cuda", live=True))
    assert pred == Prediction(int(9.5 * GIB), 9 * GIB, 11 * GIB, "gpu", 0, "tiny-llm")


# -- BreakdownChart -------------------------------------------------------------------------------


@pytest.fixture
def chart(qtbot: Any) -> BreakdownChart:
    widget = BreakdownChart()
    qtbot.addWidget(widget)
    return widget


def test_breakdown_parts_sum_to_the_estimate(chart: BreakdownChart) -> None:
    analysis = make_analysis("cpu")
    chart.set_analysis(analysis)
    est = analysis.estimate
    (row,) = chart.rows
    assert dict(row.parts) == {
        "weights": est.weights_bytes,
        "activations": est.activation_bytes,
        "KV cache": est.kv_cache_bytes,
        "runtime overhead": est.overhead_bytes,
    }
    drawn = sum(bar.opts["width"][0] for bar in chart.bars.values())
    parts = est.weights_bytes + est.activation_bytes + est.kv_cache_bytes + est.overhead_bytes
    assert drawn == pytest.approx(parts / GIB)
    assert chart.bars["activations"].opts["x0"][0] == pytest.approx(est.weights_bytes / GIB)  # stacked
    xs, _ = chart.capacity_lines[0].getOriginalDataset()
    assert list(xs) == [pytest.approx(analysis.fit.capacity_bytes / GIB)] * 2
    assert row.budget_bytes == analysis.fit.budget_bytes
    err = chart.error_bars[0].opts
    assert err["x"][0] - err["left"][0] == pytest.approx(est.low_bytes / GIB)
    assert err["x"][0] + err["right"][0] == pytest.approx(est.high_bytes / GIB)


def test_breakdown_zooms_in_on_a_small_model(chart: BreakdownChart) -> None:
    from dataclasses import replace

    from advisor.estimator.types import MIB

    big = make_analysis("cpu")
    est = replace(big.estimate, weights_bytes=6 * MIB, activation_bytes=5 * MIB, kv_cache_bytes=0,
                  overhead_bytes=11 * MIB, peak_bytes=22 * MIB, low_bytes=17 * MIB, high_bytes=34 * MIB)
    small = replace(big, estimate=est, fit=fit(est, big.hardware))
    chart.set_analysis(small)
    assert chart.zoomed
    drawn = sum(bar.opts["width"][0] for bar in chart.bars.values())
    assert drawn == pytest.approx(22.0)  # in MiB now, so the parts are visible
    (_x_min, x_max), _ = chart.plot_widget.getPlotItem().viewRange()
    assert 34 < x_max < 60  # the range's top is on screen, the 32 GiB capacity is not
    chart.set_analysis(big)
    assert not chart.zoomed


def test_breakdown_gpu_runtime_adds_a_host_ram_bar(chart: BreakdownChart) -> None:
    analysis = make_analysis("cuda", host_gib=3.0)
    chart.set_analysis(analysis)
    gpu_row, host_row = chart.rows
    assert gpu_row.capacity_bytes == 24 * GIB
    assert gpu_row.margin_bytes == analysis.fit.margin_bytes
    assert host_row.parts == (("host RAM (offload, staging)", 3 * GIB),)
    assert host_row.capacity_bytes == 32 * GIB  # catalog device: its total RAM
    caps = [line.getOriginalDataset()[0][0] for line in chart.capacity_lines]
    assert caps == [pytest.approx(24.0), pytest.approx(32.0)]
    assert breakdown_rows(make_analysis("cuda")) == (gpu_row,)  # no host part, no host bar


def test_breakdown_clears_and_follows_the_palette(chart: BreakdownChart) -> None:
    chart.set_analysis(make_analysis("cpu"))
    chart.setPalette(dark_palette())
    assert chart.plot_widget.backgroundBrush().color() == QColor("#1e1e1e")
    assert chart.bars  # redrawn in the new colors
    chart.set_analysis(None)
    assert chart.rows == () and chart.bars == {} and chart.capacity_lines == []


def test_breakdown_exports_png_at_the_asked_size(chart: BreakdownChart) -> None:
    chart.set_analysis(make_analysis("cuda", host_gib=3.0))
    assert png_size(chart.export_png(900, 360)) == (900, 360)
    assert png_size(chart.export_png(640))[0] == 640


# -- headless rendering ---------------------------------------------------------------------------


def test_render_breakdown_png_without_a_qapplication(tmp_path: Path) -> None:
    out = tmp_path / "chart.png"
    script = (
        "import sys\n"
        "from PySide6.QtWidgets import QApplication\n"
        "from tests.test_ui_charts import make_analysis\n"
        "from advisor.ui.render import render_breakdown_png\n"
        "assert QApplication.instance() is None\n"
        f"open({str(out)!r}, 'wb').write(render_breakdown_png(make_analysis('cuda', host_gib=2.0)))\n"
    )
    env = {k: v for k, v in os.environ.items() if k not in ("QT_QPA_PLATFORM", "DISPLAY", "WAYLAND_DISPLAY")}
    proc = subprocess.run(
        [sys.executable, "-c", script], cwd=REPO, env=env, capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0, proc.stderr
    assert png_size(out.read_bytes()) == (900, 320)


def test_render_memory_png(qtbot: Any) -> None:
    samples = [make_sample(float(i), 4.0 + (i % 7) / 7, gpus=((2.0, 8.0),)) for i in range(90)]
    pred = Prediction(3 * GIB, 2 * GIB, 4 * GIB, "gpu", 0, "tiny-llm")
    assert png_size(render_memory_png(samples, pred, width=800, height=400))[0] == 800
