"""Issue 10: the verdict holds the memory a run *needs*, not the peak it shows when memory is plentiful.

Built models only: GGUF files written here (real or sparse), safetensors folders of zeros.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import pytest

from advisor.analysis import analyze
from advisor.estimator import estimate
from advisor.estimator.fit import GPU_MARGIN_FRACTION, GPU_MARGIN_MIN_BYTES, fit, gpu_margin, metal_working_set
from advisor.estimator.types import GIB, MIB, Estimate, Workload
from advisor.hardware.catalog import get_device
from advisor.hardware.profile import CpuInfo, GpuInfo, HardwareProfile
from advisor.plan import make_plan
from advisor.readers import read_model
from advisor.readers.gguf_reader import read_gguf
from advisor.readers.profile import ModelProfile
from advisor.units import format_bytes
from advisor.verdict import verdict_tone, verdict_words
from tests.builders import gguf_models, safetensors_models
from tests.builders.hardware import gpu_box, laptop

AVX2 = CpuInfo(arch="x86_64", features=("avx", "avx2", "fma", "f16c"))


def _on(cpu: CpuInfo, ram_gib: float = 16) -> HardwareProfile:
    return dataclasses.replace(laptop(ram_gib), cpu=cpu)


def _gguf(tmp_path: Path, qtype: str, *, tied: bool = False, name: str = "m") -> ModelProfile:
    specs = gguf_models.llama_gguf_specs(n_layers=2, hidden=256, n_heads=4, n_kv_heads=2, vocab=3000, ff=512,
                                         qtype=qtype, embd_type=qtype, out_type=None if tied else qtype)
    meta = {"{arch}.block_count": 2, "{arch}.context_length": 4096, "{arch}.embedding_length": 256,
            "{arch}.feed_forward_length": 512, "{arch}.attention.head_count": 4,
            "{arch}.attention.head_count_kv": 2}
    path = gguf_models.write_gguf(tmp_path / f"{name}.gguf", specs, metadata=meta,
                                  tokens=[f"tok{i}" for i in range(3000)])
    return read_gguf(path)


def _matmul_bytes(prof: ModelProfile) -> int:
    return sum(t.nbytes for t in prof.tensors if len(t.shape) == 2 and t.name != "token_embd.weight")


# --------------------------------------------------------------------------- llama.cpp on a CPU

def test_repacked_file_pages_are_in_the_peak_but_not_in_the_need(tmp_path: Path) -> None:
    prof = _gguf(tmp_path, "Q4_0")
    e = estimate(prof, Workload(context=1024), "llama.cpp", _on(AVX2))
    embd = next(t.nbytes for t in prof.tensors if t.name == "token_embd.weight")
    droppable = e.peak_bytes - e.required_bytes
    # the file pages of the repacked matrices (less output.weight's: llama.cpp unmaps the file's
    # head and tail outside the mapped tensors) and the embedding table (GET_ROWS reads a row per
    # token) are what the OS can drop
    out = next(t.nbytes for t in prof.tensors if t.name == "output.weight")
    assert droppable == _matmul_bytes(prof) - out + embd
    assert e.required_low_bytes <= e.required_bytes <= e.required_high_bytes
    assert "drops when memory is short" in e.required_note


def test_a_type_nothing_repacks_needs_its_matrices_resident(tmp_path: Path) -> None:
    prof = _gguf(tmp_path, "Q8_0")  # x86 has no Q8_0 repack kernel: every token reads the mapping
    e = estimate(prof, Workload(context=1024), "llama.cpp", _on(AVX2))
    assert e.required_bytes >= e.peak_bytes - (prof.file_bytes - prof.weight_bytes) - prof.tensors[0].nbytes
    assert e.required_bytes >= _matmul_bytes(prof) + e.kv_cache_bytes


@pytest.mark.parametrize("flags", [{"use_mmap": False}, {"mlock": True}])
def test_no_mmap_and_mlock_need_the_whole_peak(tmp_path: Path, flags: dict[str, bool]) -> None:
    prof = _gguf(tmp_path, "Q4_0")
    e = estimate(prof, Workload(context=1024, **flags), "llama.cpp", _on(AVX2))
    assert e.required_bytes == e.peak_bytes
    if flags.get("mlock"):
        assert "--mlock pins" in e.required_note


def test_no_mmap_holds_each_weight_once(tmp_path: Path) -> None:
    prof = _gguf(tmp_path, "Q4_0")
    mapped = estimate(prof, Workload(context=1024), "llama.cpp", _on(AVX2))
    anon = estimate(prof, Workload(context=1024, use_mmap=False), "llama.cpp", _on(AVX2))
    assert anon.peak_bytes < mapped.peak_bytes  # no mapped copy of the repacked matrices
    assert any("--no-mmap" in n for n in anon.notes)


def test_no_repack_keeps_one_copy(tmp_path: Path) -> None:
    prof = _gguf(tmp_path, "Q4_0")
    repacked = estimate(prof, Workload(context=1024), "llama.cpp", _on(AVX2))
    plain = estimate(prof, Workload(context=1024, repack=False), "llama.cpp", _on(AVX2))
    out = next(t.nbytes for t in prof.tensors if t.name == "output.weight")
    assert repacked.peak_bytes - plain.peak_bytes == _matmul_bytes(prof) - out  # output.weight: the unmapped tail
    assert plain.required_bytes == pytest.approx(repacked.required_bytes, abs=64 * 1024)


def test_a_tied_output_is_repacked_as_a_second_copy(tmp_path: Path) -> None:
    prof = _gguf(tmp_path, "Q4_0", tied=True)
    embd = next(t.nbytes for t in prof.tensors if t.name == "token_embd.weight")
    e = estimate(prof, Workload(context=1024), "llama.cpp", _on(AVX2))
    plain = estimate(prof, Workload(context=1024, repack=False), "llama.cpp", _on(AVX2))
    assert e.peak_bytes - plain.peak_bytes == _matmul_bytes(prof) + embd


def test_the_verdict_holds_the_need_not_the_peak(tmp_path: Path) -> None:
    prof = _gguf(tmp_path, "Q4_0")
    e = estimate(prof, Workload(context=1024), "llama.cpp", _on(AVX2))
    between = (e.required_bytes + e.peak_bytes) // 2
    assert e.required_bytes < between < e.peak_bytes
    live = dataclasses.replace(_on(AVX2), source="probe", kind="this-machine", memory_available_bytes=between)
    f = fit(e, live)
    assert f.fits
    assert f.headroom_bytes == between - e.required_bytes and f.peak_bytes == e.peak_bytes


def test_llama3_8b_q4_k_m_fits_a_raspberry_pi_5(tmp_path: Path) -> None:
    folder = safetensors_models.llama_folder(
        tmp_path / "Llama-3-8B", n_layers=32, hidden=4096, n_heads=32, n_kv_heads=8, vocab=128256,
        intermediate=14336, n_shards=4,
    )
    analysis = analyze(read_model(folder), get_device("rpi5-8gb"), Workload(context=4096))
    plan = make_plan(analysis, catalog=())
    q4 = next(o for o in plan.options if o.title == "convert to GGUF Q4_K_M (llama.cpp)")
    assert q4.fits and q4.estimate is not None and q4.required_bytes is not None
    e = q4.estimate
    # the need: the weights once, the KV cache, the compute buffer, the runtime — no second copy
    parts = e.weights_bytes + e.kv_cache_bytes + e.activation_bytes
    assert parts <= q4.required_bytes <= parts + 64 * MIB
    assert e.weights_bytes < 4.4 * GIB  # Q4_K_M of 8.03 B parameters, the embedding rows not read dropped
    assert e.peak_bytes > q4.required_bytes + 3 * GIB  # the RSS still shows the repacked file pages
    ranked = [o for o in plan.options if o.fits and o.kind == "quantize"]
    assert ranked.index(q4) < next(i for i, o in enumerate(ranked) if "Q3_K_M" in o.title)


def test_sliding_window_layers_follow_the_front_end(tmp_path: Path) -> None:
    n = 12
    pattern = [bool((i + 1) % 6) for i in range(n)]
    specs = gguf_models.llama_gguf_specs(n_layers=n, hidden=256, n_heads=4, n_kv_heads=2, vocab=256, ff=512,
                                         qtype="Q8_0")
    meta = {"{arch}.block_count": n, "{arch}.context_length": 32768, "{arch}.embedding_length": 256,
            "{arch}.feed_forward_length": 512, "{arch}.attention.head_count": 4,
            "{arch}.attention.head_count_kv": 2, "{arch}.attention.sliding_window": 512,
            "{arch}.attention.sliding_window_pattern": pattern}
    path = gguf_models.write_gguf(tmp_path / "swa.gguf", specs, metadata=meta,
                                  tokens=[f"t{i}" for i in range(256)])
    prof = read_gguf(path)
    server = estimate(prof, Workload(context=8192), "llama.cpp", _on(AVX2))
    python = estimate(prof, Workload(context=8192, swa_full=True), "llama.cpp", _on(AVX2))
    per_cell_layer = 2 * 2 * 64 * 2  # K and V, 2 KV heads × 64, f16
    swa_layers = sum(pattern)
    # llama-server: window + ubatch cells on a sliding layer; llama-cpp-python: the whole context
    assert python.kv_cache_bytes - server.kv_cache_bytes == swa_layers * (8192 - 1024) * per_cell_layer
    assert server.high_bytes >= python.peak_bytes - 4 * MIB  # the front end unknown: the high end covers it
    assert any("swa_full" in n for n in server.notes)


# --------------------------------------------------------------------------- the verdict's rules

def test_gpu_margin_is_the_larger_of_one_gib_and_ten_percent() -> None:
    assert GPU_MARGIN_MIN_BYTES == GIB and GPU_MARGIN_FRACTION == 0.10
    assert gpu_margin(80 * GIB) == 8 * GIB  # min() would give 1 GiB
    assert gpu_margin(4 * GIB) == GIB  # min() would give 0.4 GiB
    e = Estimate(runtime="pytorch-cuda", device="cuda", weights_bytes=0, activation_bytes=0, kv_cache_bytes=0,
                 overhead_bytes=0, peak_bytes=75 * GIB, low_bytes=75 * GIB, high_bytes=75 * GIB)
    assert not fit(e, gpu_box(80)).fits  # 75 GiB > 80 − 8


def test_likely_is_amber_not_green() -> None:
    e = Estimate(runtime="llama.cpp", device="cpu", weights_bytes=0, activation_bytes=0, kv_cache_bytes=0,
                 overhead_bytes=0, peak_bytes=10 * GIB, low_bytes=9 * GIB, high_bytes=20 * GIB)
    f = fit(e, laptop(16))
    assert f.fits and f.certainty == "likely"
    assert verdict_tone(f) == "warn"
    assert verdict_tone(dataclasses.replace(f, certainty="sure")) == "good"


def test_a_cuda_runtime_without_an_nvidia_gpu_is_a_clear_error(tmp_path: Path) -> None:
    folder = safetensors_models.tiny_llama_folder(tmp_path / "tiny")
    analysis = analyze(read_model(folder), get_device("rpi5-8gb"), Workload(context=512), runtime="pytorch-cuda")
    word, why = verdict_words(analysis.fit)
    assert not analysis.fit.fits and word == "Cannot run"
    assert "needs an NVIDIA GPU" in why and "Raspberry Pi 5" in why and "0 B" not in why
    assert verdict_tone(analysis.fit) == "bad"


# --------------------------------------------------------------------------- unified memory

def _mac(ram_gib: int, gpu_gib: int | None = None) -> HardwareProfile:
    ram = ram_gib * GIB
    gpu = GpuInfo(index=0, name="Apple M-series GPU", vendor="apple", unified_memory=True,
                  memory_total_bytes=(gpu_gib or ram_gib) * GIB)
    return HardwareProfile(name=f"Mac {ram_gib} GB", source="catalog", kind="laptop", memory_total_bytes=ram,
                           cpu=CpuInfo(arch="arm64", features=("neon", "dotprod", "i8mm")), gpus=(gpu,),
                           unified_memory=True)


def test_metal_working_set_is_two_thirds_or_three_quarters_or_what_the_probe_saw() -> None:
    assert metal_working_set(_mac(16)) == 16 * GIB * 2 // 3
    assert metal_working_set(_mac(64)) == 48 * GIB
    assert metal_working_set(_mac(32, gpu_gib=28)) == 28 * GIB  # iogpu.wired_limit_mb set


def test_llama_cpp_on_apple_silicon_runs_on_metal_under_its_limit(tmp_path: Path) -> None:
    prof = _gguf(tmp_path, "Q4_0")
    mac = _mac(16)
    e = estimate(prof, Workload(context=1024), "llama.cpp", mac)
    assert e.device == "metal" and e.required_bytes == e.peak_bytes  # GPU buffers are wired: nothing to drop
    assert e.weights_bytes == prof.weight_bytes  # the mapped file, used by the GPU in place: no repacked copy
    f = fit(e, mac)
    assert f.memory == "unified" and f.budget_bytes == metal_working_set(mac) and "Metal" in f.label
    assert any("iogpu.wired_limit_mb" in n for n in e.notes)  # how to raise it


# --------------------------------------------------------------------------- what the window draws

def test_the_chart_shows_droppable_pages_and_marks_the_need(qtbot: Any, tmp_path: Path) -> None:
    from advisor.ui.breakdown_chart import DROPPABLE, BreakdownChart, breakdown_rows, verdict_text

    prof = _gguf(tmp_path, "Q4_0")
    analysis = analyze(prof, _on(AVX2), Workload(context=1024), runtime="llama.cpp")
    (row,) = breakdown_rows(analysis)
    parts = dict(row.parts)
    e = analysis.estimate
    assert parts[DROPPABLE] == e.peak_bytes - e.required_bytes == e.reclaimable_bytes > 0
    assert parts["weights"] == e.weights_bytes and list(dict(row.parts))[-1] == DROPPABLE
    assert row.required_bytes == e.required_bytes < row.peak_bytes == e.peak_bytes
    assert f"needs {format_bytes(e.required_bytes)}" in verdict_text(analysis)
    chart = BreakdownChart()
    qtbot.addWidget(chart)
    chart.set_analysis(analysis)
    labels = [i.toPlainText() for i in chart.plot_widget.getPlotItem().items if hasattr(i, "toPlainText")]
    assert any("peak shown" in t and f"needs {format_bytes(e.required_bytes)}" in t for t in labels)


def test_jetson_is_one_pool_drawn_as_one_bar(tmp_path: Path) -> None:
    from advisor.ui.breakdown_chart import breakdown_rows

    folder = safetensors_models.tiny_llama_folder(tmp_path / "tiny")
    jetson = get_device("jetson-orin-nano-8gb")
    analysis = analyze(read_model(folder), jetson, Workload(context=512), runtime="pytorch-cuda")
    assert analysis.fit.memory == "unified" and analysis.estimate.host_bytes
    (row,) = breakdown_rows(analysis)  # one bar, not GPU + host RAM
    assert dict(row.parts)["CPU side (same RAM)"] == analysis.estimate.host_bytes
    assert row.capacity_bytes == jetson.memory_total_bytes
    assert row.required_bytes == analysis.estimate.required_bytes + analysis.estimate.host_bytes


def test_the_plan_offers_loading_flags_that_lower_the_need(tmp_path: Path) -> None:
    prof = _gguf(tmp_path, "Q4_0")
    pinned = analyze(prof, _on(AVX2), Workload(context=1024, mlock=True), runtime="llama.cpp")
    plan = make_plan(pinned, catalog=())
    unpin = next(o for o in plan.options if o.title == "Load without --mlock")
    assert unpin.required_bytes is not None and unpin.required_bytes < pinned.estimate.required_bytes
    assert "--mlock" not in unpin.how_to and "llama-server" in unpin.how_to
    as_is = next(o for o in plan.options if o.kind == "as-is")
    assert "--load-mode mmap+mlock" in as_is.how_to  # the command says what was estimated
    mapped = analyze(prof, _on(AVX2), Workload(context=1024), runtime="llama.cpp")
    titles = [o.title for o in make_plan(mapped, catalog=()).options]
    assert "Load without --mlock" not in titles


def test_the_window_edits_llama_cpp_loading(qtbot: Any, tmp_path: Path) -> None:
    from advisor.ui.model_panel import WorkloadEditor

    prof = _gguf(tmp_path, "Q4_0")
    editor = WorkloadEditor()
    qtbot.addWidget(editor)
    editor.set_model(prof, Workload(context=1024, mlock=True))
    assert editor.loading.currentText() == "mapped, pinned (--mlock)"
    edited: list[Workload] = []
    editor.workloadEdited.connect(edited.append)
    editor.loading.setCurrentIndex(2)
    assert edited and not edited[-1].use_mmap and not edited[-1].mlock
