"""The presenter: model + target + runtime + workload → analysis and plan, errors keep the old state."""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from pytestqt.qtbot import QtBot

from advisor.cancel import CancelToken, ProgressFn
from advisor.estimator.types import Workload
from advisor.ui.presenter import THIS_MACHINE, Core, Presenter, device_key, file_key
from advisor.ui.tasks import ImmediateRunner, TaskRunner
from tests.builders import hardware as hw
from tests.test_ui_guard import qt_leak_guard  # noqa: F401 - autouse fixture

BIG_BATCH = 65536  # NOTE: ~525 MiB of activations for the mlp below: more than the tight laptop's budget


def core_with(machine: Any = None, **overrides: Any) -> Core:
    """The real core, with "this machine" replaced by a recorded profile (tests never probe the host)."""
    real = Core()
    machine = machine or hw.this_machine(ram_gib=16, available_gib=8)

    def resolve(key: str) -> Any:
        return machine if key == THIS_MACHINE else real.resolve_target(key)

    return dataclasses.replace(real, resolve_target=resolve, **overrides)


@pytest.fixture
def presenter(qapp: object) -> Iterator[Presenter]:
    p = Presenter(ImmediateRunner(), core_with())
    yield p
    assert p.shutdown()


@pytest.fixture
def threaded(qapp: object) -> Iterator[Presenter]:
    p = Presenter(TaskRunner(), core_with())
    yield p
    assert p.shutdown()


def test_open_then_target_gives_analysis_and_plan(presenter: Presenter, model_path: Path, qtbot: QtBot) -> None:
    busy: list[bool] = []
    presenter.busyChanged.connect(lambda b, _w: busy.append(b))
    with qtbot.assertNotEmitted(presenter.analysisChanged):
        presenter.open_path(model_path)  # no target yet: nothing to hold it against
    assert presenter.model.name == "mlp"
    with qtbot.waitSignals([presenter.targetChanged, presenter.analysisChanged, presenter.planChanged]), \
            qtbot.assertNotEmitted(presenter.errorOccurred):
        presenter.set_target(device_key("rpi5-8gb"))
    assert presenter.analysis.hardware.device_id == "rpi5-8gb"
    assert presenter.analysis.fit.fits
    assert presenter.plan.options
    assert busy[0] is True and busy[-1] is False


def test_workload_change_is_debounced_into_one_estimate(threaded: Presenter, model_path: Path,
                                                        tight_file: Path, qtbot: QtBot) -> None:
    with qtbot.waitSignal(threaded.planChanged, timeout=10_000):
        threaded.set_target(file_key(tight_file))
        threaded.open_path(model_path)
    assert threaded.analysis.fit.fits
    seen: list[Any] = []
    threaded.analysisChanged.connect(seen.append)
    for batch in (2, 64, 1024, BIG_BATCH):  # typing in the spin box
        threaded.set_workload(Workload(batch=batch))
    with qtbot.waitSignal(threaded.planChanged, timeout=10_000):
        pass
    assert [a.workload.batch for a in seen] == [BIG_BATCH]
    assert not threaded.analysis.fit.fits


def test_bad_workload_reports_and_keeps_the_analysis(presenter: Presenter, model_path: Path, qtbot: QtBot) -> None:
    presenter.set_target(device_key("rpi5-8gb"))
    presenter.open_path(model_path)
    before = presenter.analysis
    with qtbot.waitSignal(presenter.errorOccurred) as err, qtbot.assertNotEmitted(presenter.analysisChanged):
        presenter.set_workload(Workload(batch=0), debounce=False)
    assert "batch must be at least 1" in err.args[0]
    assert "\n" not in err.args[0]
    assert presenter.analysis is before


def test_corrupt_file_keeps_the_previous_model(presenter: Presenter, model_path: Path, tmp_path: Path,
                                               qtbot: QtBot) -> None:
    presenter.set_target(device_key("rpi5-8gb"))
    presenter.open_path(model_path)
    model, analysis = presenter.model, presenter.analysis
    bad = tmp_path / "broken.onnx"
    bad.write_bytes(b"\x08\x07garbage that is not a protobuf" * 3)
    with qtbot.waitSignal(presenter.errorOccurred) as err, qtbot.assertNotEmitted(presenter.modelChanged):
        presenter.open_path(bad)
    assert "broken.onnx" in err.args[0]
    assert presenter.model is model and presenter.analysis is analysis


def test_runtime_choice_is_used(presenter: Presenter, model_path: Path, qtbot: QtBot) -> None:
    presenter.set_target(device_key("rtx4090-desktop"))
    with qtbot.waitSignal(presenter.runtimesChanged) as runtimes:
        presenter.open_path(model_path)
    assert "onnxruntime-cpu" in runtimes.args[0]
    assert presenter.analysis.runtime == "onnxruntime-cuda"  # the core's default with an NVIDIA GPU
    with qtbot.waitSignal(presenter.analysisChanged):
        presenter.set_runtime("onnxruntime-cpu")
    assert presenter.analysis.runtime == "onnxruntime-cpu"
    assert presenter.analysis.fit.memory == "ram"


def test_unknown_remembered_target_falls_back_to_this_machine(presenter: Presenter, qtbot: QtBot) -> None:
    with qtbot.waitSignal(presenter.errorOccurred) as err, qtbot.waitSignal(presenter.targetChanged) as changed:
        presenter.set_target(device_key("no-such-device"))
    assert "no-such-device" in err.args[0]
    assert changed.args[0] == THIS_MACHINE
    assert presenter.hardware.is_live


def test_sparsity_scan_reports_progress(presenter: Presenter, model_path: Path, qtbot: QtBot) -> None:
    presenter.set_target(device_key("rpi5-8gb"))
    presenter.open_path(model_path)
    fractions: list[float] = []
    presenter.progressed.connect(lambda f, _m: fractions.append(f))
    with qtbot.waitSignal(presenter.sparsityScanned) as scanned:
        presenter.scan_sparsity()
    assert scanned.args[0].n_elements == presenter.model.n_params
    assert fractions[-1] == 1.0


def test_cancel_a_long_scan(model_path: Path, qtbot: QtBot, qapp: object) -> None:
    started = threading.Event()

    def slow_scan(_model: Any, progress: ProgressFn, cancel: CancelToken) -> None:
        started.set()
        while True:  # a scan of a huge model, checking the token between chunks
            cancel.raise_if_cancelled()
            progress(0.1, "scanning")
            threading.Event().wait(0.005)

    p = Presenter(TaskRunner(), core_with(scan_sparsity=slow_scan))
    try:
        with qtbot.waitSignal(p.modelChanged, timeout=10_000):
            p.open_path(model_path)
        p.scan_sparsity()
        assert started.wait(5)
        assert p.busy
        with qtbot.waitSignal(p.busyChanged, check_params_cb=lambda b, _w: not b), \
                qtbot.assertNotEmitted(p.sparsityScanned), qtbot.assertNotEmitted(p.errorOccurred):
            p.cancel()
        assert not p.busy
        assert p.model is not None
    finally:
        assert p.shutdown()


def test_the_verdict_comes_before_the_plan_and_a_replaced_estimates_plan_is_dropped(
        qapp: object, model_path: Path, qtbot: QtBot) -> None:
    gate = threading.Event()
    real = Core()

    def slow_plan(analysis: Any) -> Any:
        assert gate.wait(10), "the test never let the plan finish"
        return real.make_plan(analysis)

    p = Presenter(TaskRunner(), core_with(make_plan=slow_plan))
    order: list[str] = []
    p.analysisChanged.connect(lambda a: order.append(f"analysis {a.workload.batch}"))
    p.planChanged.connect(lambda plan: order.append(f"plan {_as_is_batch(plan)}"))
    try:
        with qtbot.waitSignal(p.analysisChanged, timeout=10_000):
            p.set_target(THIS_MACHINE)
            p.open_path(model_path)
        assert p.plan is None and p.planning  # the plan is still being made: the verdict did not wait
        with qtbot.waitSignal(p.errorOccurred, timeout=2_000) as refused:
            p.export_report(model_path.with_suffix(".html"))
        assert "still being made" in refused.args[0]
        with qtbot.waitSignal(p.analysisChanged, timeout=10_000):
            p.set_workload(Workload(batch=3))
            p.reanalyze()  # without the debounce
        gate.set()
        qtbot.waitUntil(lambda: not p.planning, timeout=10_000)
        qtbot.wait(50)
        assert order[:2] == ["analysis 1", "analysis 3"] and order[2:] == ["plan 3"]  # the batch-1 plan was dropped
        assert _as_is_batch(p.plan) == 3
    finally:
        gate.set()
        assert p.shutdown()


def _as_is_batch(plan: Any) -> int | None:
    return next((o.workload.batch for o in plan.options if o.kind == "as-is"), None) if plan else None
