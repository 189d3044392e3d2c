"""`advisor measure`: a real run in a capped child process, held against the prediction."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from dataclasses import replace
from pathlib import Path

import psutil
import pytest

from advisor.analysis import analyze
from advisor.cancel import Cancelled, CancelToken
from advisor.cli import run
from advisor.estimator.types import MIB, Workload
from advisor.measure import MeasureError, cap, measure
from advisor.measure.store import load_all
from advisor.readers import read_model
from tests.builders import onnx_models
from tests.builders.hardware import this_machine

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT / "resources" / "samples" / "sample-convnet.onnx"


def _bench_peak(path: Path, shapes: dict[str, list[int]]) -> int:
    out = subprocess.run([sys.executable, str(ROOT / "bench" / "ort_measure.py"), str(path), json.dumps(shapes)],
                         capture_output=True, text=True, check=True, timeout=120)
    return int(json.loads(out.stdout.strip().splitlines()[-1])["peak_bytes"])


def _children() -> list[psutil.Process]:
    return [p for p in psutil.Process().children(recursive=True) if p.is_running()
            and p.status() != psutil.STATUS_ZOMBIE]


def test_sample_model_measured_like_the_benchmark_and_stored(tmp_path: Path) -> None:
    profile = read_model(SAMPLE)
    m = measure(profile, Workload(), hardware=this_machine())
    # fresh processes of the same run differ by a few MB (onnxruntime's thread pool and glibc's
    # per-thread arenas): ~10 % of the 30 MB sample, so it is held to the benchmark loosely, and a
    # run of ~200 MB, where those MB are noise, to 5 %
    bench = _bench_peak(SAMPLE, {"pixel_values": [1, 3, 224, 224]})
    assert abs(m.peak_bytes - bench) <= max(0.05 * bench, 4 * MIB), (m.peak_bytes, bench)
    bigger = onnx_models.cnn(tmp_path / "cnn.onnx", channels=64)
    shapes = {"x": [2, 3, 224, 224]}
    big = measure(read_model(bigger), Workload(input_shapes={"x": (2, 3, 224, 224)}), hardware=this_machine(),
                  store=False)
    assert big.peak_bytes == pytest.approx(_bench_peak(bigger, shapes), rel=0.05)
    assert m.runtime == "onnxruntime-cpu" and m.runtime_version.startswith("onnxruntime ")
    assert m.workload["input_shapes"] == {"pixel_values": [1, 3, 224, 224]}
    assert [p for _, p in m.phases][:2] == ["load", "run"] and m.samples and m.duration_s > 0
    assert abs(m.error_pct) < 25 and m.predicted.peak_bytes > 0
    stored = load_all()
    assert len(stored) == 1 and stored[0]["measured_peak_bytes"] == m.peak_bytes
    assert "samples" not in stored[0]
    assert not _children()


def test_the_next_estimate_here_shows_the_measurement_and_is_corrected() -> None:
    profile = read_model(SAMPLE)
    hw = this_machine()
    before = analyze(profile, hw, Workload())
    m = measure(profile, Workload(), hardware=hw)
    after = analyze(profile, hw, Workload())
    assert after.estimate.peak_bytes == m.peak_bytes
    assert after.estimate.low_bytes < m.peak_bytes < after.estimate.high_bytes
    assert any(n.startswith("measured here on") for n in after.estimate.notes)
    assert after.estimate.weights_bytes == before.estimate.weights_bytes  # the overhead term absorbs it
    other = analyze(profile, hw, Workload(batch=2))
    assert other.estimate.peak_bytes != m.peak_bytes
    assert any("another workload" in n for n in other.estimate.notes)
    catalog = analyze(profile, replace(hw, source="catalog"), Workload())
    assert not any("measured here" in n for n in catalog.estimate.notes)  # other targets: the estimate


def test_refused_when_the_prediction_does_not_fit_what_is_available(tmp_path: Path) -> None:
    profile = read_model(SAMPLE)
    with pytest.raises(MeasureError, match=r"not measured .* available now"):
        measure(profile, Workload(batch=64), hardware=this_machine(), available_bytes=600 * MIB)
    assert not load_all() and not _children()


def test_a_run_over_its_cap_is_reported_and_nothing_else_is_touched() -> None:
    profile = read_model(SAMPLE)
    with pytest.raises(MeasureError, match="memory cap of"):
        measure(profile, Workload(batch=16), hardware=this_machine(), cap_bytes=40 * MIB)
    assert not load_all() and not _children()
    if cap.CGROUP_V1.is_dir():
        assert not [p for p in cap.CGROUP_V1.iterdir() if p.name.startswith("memory-advisor-")]


def test_address_space_cap_where_no_cgroup_can_be_made(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(cap, "CGROUP_V1", tmp_path / "none-v1")
    monkeypatch.setattr(cap, "CGROUP_V2", tmp_path / "none-v2")
    path = onnx_models.mlp(tmp_path / "mlp.onnx", hidden=256, layers=3)
    m = measure(read_model(path), Workload(batch=4), hardware=this_machine())
    assert m.cap_kind == "rlimit" and m.peak_bytes > 0
    big = onnx_models.mlp(tmp_path / "big.onnx", hidden=2048, layers=4)  # 48 MiB of weights
    with pytest.raises(MeasureError, match="memory cap"):
        measure(read_model(big), Workload(batch=4), hardware=this_machine(), cap_bytes=8 * MIB)
    assert not _children()


def test_cancel_kills_the_child_at_once(tmp_path: Path) -> None:
    path = onnx_models.mlp(tmp_path / "slow.onnx", hidden=2048, layers=6)
    token = CancelToken()
    started = threading.Event()

    def on_phase(_t: float, phase: str) -> None:
        if phase == "load":
            started.set()

    errors: list[BaseException] = []

    def go() -> None:
        try:
            measure(read_model(path), Workload(batch=4096), hardware=this_machine(), cancel=token,
                    on_phase=on_phase)
        except BaseException as exc:
            errors.append(exc)

    worker = threading.Thread(target=go)
    worker.start()
    assert started.wait(60)
    token.cancel()
    worker.join(30)
    assert not worker.is_alive() and errors and isinstance(errors[0], Cancelled)
    assert not _children() and not load_all()


def test_cli_prints_measured_and_predicted(capsys: pytest.CaptureFixture[str]) -> None:
    assert run(["measure", str(SAMPLE)]) == 0
    out = capsys.readouterr().out
    assert "predicted" in out and "measured" in out and "peak" in out and "onnxruntime 1.32" in out.replace("(", " ")
    assert run(["measure", str(SAMPLE), "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)["measurement"]
    assert doc["measured_peak_bytes"] > 0 and doc["predicted_peak_bytes"] > 0 and "error_pct" in doc


def test_cli_errors_are_one_line_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"\x07garbage")
    assert run(["measure", str(bad)]) == 2
    assert str(bad) in capsys.readouterr().err
    pytest.importorskip("gguf")
    from tests.builders import gguf_models

    specs = gguf_models.llama_gguf_specs(n_layers=2, hidden=64, n_heads=4, n_kv_heads=4, vocab=256, ff=128,
                                         qtype="Q8_0", embd_type="Q8_0", out_type="Q8_0")
    gguf = gguf_models.sparse_gguf(tmp_path / "tiny.gguf", specs)
    code = run(["measure", str(gguf)])
    err = capsys.readouterr().err
    try:
        import llama_cpp  # noqa: F401
    except ImportError:
        assert code == 2 and "pip install llama-cpp-python" in err and err.count("\n") == 1


def test_a_workload_too_big_for_here_is_extrapolated_from_two_smaller_runs(tmp_path: Path) -> None:
    from advisor.measure import MARGIN_FRACTION, MIN_MARGIN_BYTES

    path = onnx_models.cnn(tmp_path / "cnn.onnx", channels=32)
    profile = read_model(path)
    hw = this_machine()
    full_wl = Workload(input_shapes={"x": (512, 3, 64, 64)})
    full = analyze(profile, hw, full_wl, learn=False).estimate.required_bytes
    half = analyze(profile, hw, Workload(input_shapes={"x": (256, 3, 64, 64)}), learn=False).estimate.required_bytes
    margin = max(MIN_MARGIN_BYTES, int(MARGIN_FRACTION * hw.memory_total_bytes))
    m = measure(profile, full_wl, hardware=hw, available_bytes=margin + (half + full) // 2)
    assert [x.workload["input_shapes"]["x"][0] for x in m.extrapolated_from] == [128, 256]
    assert m.scale == "batch 128 and 256 of 512"
    a, b = (x.peak_bytes for x in m.extrapolated_from)
    assert m.peak_bytes == b + 2 * (b - a)  # the line through (128, a) and (256, b), at 512
    assert m.predicted.required_bytes == full
    assert load_all()[-1]["scale"] == m.scale and not _children()


@pytest.mark.skipif(not (cap.CGROUP_V1.is_dir() and os.access(cap.CGROUP_V1, os.W_OK)),
                    reason="needs a writable cgroup v1 memory controller (root)")
def test_required_memory_is_the_least_cap_the_run_completes_in() -> None:
    profile = read_model(SAMPLE)
    m = measure(profile, Workload(), hardware=this_machine(), required=True)
    assert m.required_bytes is not None and 0 < m.required_bytes <= 1.1 * m.peak_bytes
    assert load_all()[-1]["measured_required_bytes"] == m.required_bytes
    assert not [p for p in cap.CGROUP_V1.iterdir() if p.name.startswith("memory-advisor-")]
    assert not _children()


def test_required_needs_a_cgroup(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(cap, "CGROUP_V1", tmp_path / "none-v1")
    monkeypatch.setattr(cap, "CGROUP_V2", tmp_path / "none-v2")
    with pytest.raises(MeasureError, match="needs a memory cgroup"):
        measure(read_model(SAMPLE), Workload(), hardware=this_machine(), required=True)


def test_pytorch_cpu_generate_is_measured_or_says_what_to_install(tmp_path: Path) -> None:
    import importlib.util

    from tests.builders import safetensors_models

    folder = safetensors_models.llama_folder(tmp_path / "tiny", n_layers=2, hidden=256, n_heads=4, n_kv_heads=4,
                                             vocab=1000, intermediate=512, n_shards=1)
    profile = read_model(folder)
    wl = Workload(context=64, seq_len=32)
    if importlib.util.find_spec("torch") is None or importlib.util.find_spec("transformers") is None:
        with pytest.raises(MeasureError, match="pip install torch transformers"):
            measure(profile, wl, "pytorch-cpu", hardware=this_machine())
        return
    m = measure(profile, wl, "pytorch-cpu", hardware=this_machine())
    assert m.runtime_version.startswith("torch ") and m.peak_bytes > profile.weight_bytes
    assert abs(m.error_pct) < 40


def test_reports_carry_the_measurement(tmp_path: Path) -> None:
    from advisor.plan import make_plan
    from advisor.report import write_report

    profile = read_model(SAMPLE)
    hw = this_machine()
    measure(profile, Workload(), hardware=hw)
    a = analyze(profile, hw, Workload())
    plan = make_plan(a, catalog=())
    for ext in ("md", "html"):
        out = write_report(a, plan, tmp_path / f"r.{ext}")
        text = Path(out).read_text(encoding="utf-8")
        assert "Measured" in text and "measured here on" in text
