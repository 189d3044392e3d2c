"""Speed estimates: the roofline over where each layer lives, FLOPs from the graph, the measured host."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import onnx
import pytest
from onnx import TensorProto, helper

from advisor.analysis import analyze
from advisor.estimator import estimate
from advisor.estimator import speed as speed_module
from advisor.estimator.runtimes.onnxruntime_graph import node_flops
from advisor.estimator.speed import BANDWIDTH_EFFICIENCY, speed
from advisor.estimator.types import Workload
from advisor.hardware import throughput
from advisor.hardware.catalog import get_device, load_catalog
from advisor.readers import read_model
from tests.builders import gguf_models, onnx_models, safetensors_models
from tests.builders.hardware import gpu_box, this_machine


def _llama_7b_gguf(path: Path, qtype: str = "Q4_0") -> Path:
    specs = gguf_models.llama_gguf_specs(n_layers=32, hidden=4096, n_heads=32, n_kv_heads=32, vocab=32000,
                                         ff=11008, qtype=qtype, embd_type=qtype, out_type="Q6_K")
    meta = {"{arch}.block_count": 32, "{arch}.embedding_length": 4096, "{arch}.feed_forward_length": 11008,
            "{arch}.attention.head_count": 32, "{arch}.attention.head_count_kv": 32, "{arch}.context_length": 4096}
    return gguf_models.sparse_gguf(path, specs, metadata=meta)


def test_every_catalog_device_has_throughput_figures_with_a_source() -> None:
    for hw in load_catalog():
        host = throughput.host_throughput(hw)
        assert host is not None and host.memory_bandwidth > 0 and host.flops > 0, hw.device_id
        assert host.source.startswith("http"), hw.device_id
        for gpu in hw.gpus:
            if gpu.vendor in ("nvidia", "apple"):
                g = throughput.gpu_throughput(gpu)
                assert g is not None and g.memory_bandwidth > 0 and g.flops > 0, gpu.name
                assert g.source.startswith("http"), gpu.name


def test_llm_decode_is_bandwidth_bound_on_the_gpu(tmp_path: Path) -> None:
    model = read_model(_llama_7b_gguf(tmp_path / "llama7b-q4_0.gguf"))
    hw = get_device("rtx4090-desktop")
    a = analyze(model, hw, Workload(context=512), "llama.cpp")
    s = speed(model, a.workload, a.runtime, hw, a.estimate)
    assert s.decode_tokens_per_second is not None and s.prefill_tokens_per_second is not None
    gpu = throughput.gpu_throughput(hw.gpus[0])
    assert gpu is not None
    # never above the roofline: every weight of the layers read once per token
    layer_bytes = sum(t.nbytes for t in model.tensors if t.layer is not None)
    roof = gpu.memory_bandwidth * BANDWIDTH_EFFICIENCY["cuda"] / layer_bytes
    assert 0.5 * roof < s.decode_tokens_per_second <= roof
    assert s.prefill_tokens_per_second > 10 * s.decode_tokens_per_second
    assert "GPU memory" in s.basis


def test_every_layer_adds_its_launch_time_to_each_decode_step(tmp_path: Path,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    model = read_model(_llama_7b_gguf(tmp_path / "llama7b-q4_0.gguf"))
    hw = get_device("rtx4090-desktop")
    a = analyze(model, hw, Workload(context=512), "llama.cpp")
    with_launches = speed(model, a.workload, a.runtime, hw, a.estimate).decode_tokens_per_second
    monkeypatch.setitem(speed_module.LAYER_STEP_SECONDS, "cuda", 0.0)
    bandwidth_only = speed(model, a.workload, a.runtime, hw, a.estimate).decode_tokens_per_second
    assert with_launches and bandwidth_only
    assert 1 / with_launches - 1 / bandwidth_only == pytest.approx(32 * 62e-6, rel=1e-6)


def test_llamacpp_quantized_prompt_follows_the_cuda_cores_not_the_tensor_cores(tmp_path: Path) -> None:
    q4 = read_model(_llama_7b_gguf(tmp_path / "llama7b-q4_0.gguf"))
    f16 = read_model(_llama_7b_gguf(tmp_path / "llama7b-f16.gguf", "F16"))
    hw = get_device("rtx4090-desktop")
    wl = Workload(context=512, seq_len=512)
    pp_q4 = speed(q4, wl, "llama.cpp", hw, estimate(q4, wl, "llama.cpp", hw)).prefill_tokens_per_second
    pp_f16 = speed(f16, wl, "llama.cpp", hw, estimate(f16, wl, "llama.cpp", hw)).prefill_tokens_per_second
    gpu = throughput.gpu_throughput(hw.gpus[0])
    assert pp_q4 and pp_f16 and gpu and gpu.simt_flops
    ops_per_token = gpu.simt_flops * speed_module.MMQ_OPS_PER_SIMT_FLOP / pp_q4
    assert 2 * 6.4e9 < ops_per_token < 2 * 7.2e9  # ≈ 2 × the 6.7 B parameters, plus attention
    assert pp_f16 == pytest.approx(gpu.flops * speed_module.COMPUTE_EFFICIENCY["cuda"] / ops_per_token, rel=0.02)


def test_a_cpu_only_box_decodes_at_its_ram_speed(tmp_path: Path) -> None:
    model = read_model(_llama_7b_gguf(tmp_path / "llama7b-q4_0.gguf"))
    pi = get_device("rpi5-8gb")
    a = analyze(model, pi, Workload(context=512), "llama.cpp")
    s = speed(model, a.workload, a.runtime, pi, a.estimate)
    host = throughput.host_throughput(pi)
    assert host and s.decode_tokens_per_second and s.prefill_tokens_per_second
    layer_bytes = sum(t.nbytes for t in model.tensors if t.layer is not None)
    roof = host.memory_bandwidth * BANDWIDTH_EFFICIENCY["cpu"] / layer_bytes
    assert 0.5 * roof < s.decode_tokens_per_second <= roof
    assert "system RAM" in s.basis


def test_layers_offloaded_to_the_cpu_slow_decode_to_system_ram_speed(tmp_path: Path,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    for unit in ("cuda", "cpu"):  # the bandwidth terms alone (launch times: the test above)
        monkeypatch.setitem(speed_module.LAYER_STEP_SECONDS, unit, 0.0)
    model = read_model(_llama_7b_gguf(tmp_path / "llama7b-q4_0.gguf"))
    hw = get_device("rtx4090-desktop")
    full = analyze(model, hw, Workload(context=512), "llama.cpp")
    half = analyze(model, hw, Workload(context=512, gpu_layers=16), "llama.cpp")
    fast = speed(model, full.workload, "llama.cpp", hw, full.estimate).decode_tokens_per_second
    slow = speed(model, half.workload, "llama.cpp", hw, half.estimate).decode_tokens_per_second
    assert fast and slow
    host = throughput.host_throughput(hw)
    gpu = throughput.gpu_throughput(hw.gpus[0])
    assert host and gpu
    ratio = gpu.memory_bandwidth / host.memory_bandwidth
    # half the layers at system-RAM speed: slower by about (1 + ratio)/2 (within the head's share)
    assert fast / slow == pytest.approx((1 + ratio * BANDWIDTH_EFFICIENCY["cuda"] / BANDWIDTH_EFFICIENCY["cpu"]) / 2,
                                        rel=0.2)


def test_tensor_parallel_reads_in_parallel_but_a_layer_split_does_not(tmp_path: Path) -> None:
    folder = safetensors_models.llama_folder(tmp_path / "llama70b")
    model = read_model(folder)
    box = gpu_box(80, n_gpus=4, ram_gib=512, gpu_name="NVIDIA A100-SXM4-80GB", compute_capability="8.0")
    wl = Workload(context=4096, tensor_parallel=4)
    est = estimate(model, wl, "pytorch-cuda", box)
    tp4 = speed(model, wl, "pytorch-cuda", box, est).decode_tokens_per_second
    tp2 = speed(model, replace(wl, tensor_parallel=2), "pytorch-cuda", box,
                estimate(model, replace(wl, tensor_parallel=2), "pytorch-cuda", box)).decode_tokens_per_second
    assert tp4 and tp2 and 1.5 < tp4 / tp2 < 2.0  # all-reduces keep it under the ideal 2×
    gguf = read_model(_llama_7b_gguf(tmp_path / "llama7b-f16.gguf", "F16"))
    one = Workload(context=512)
    split = Workload(context=512, tensor_parallel=2)
    s1 = speed(gguf, one, "llama.cpp", box, estimate(gguf, one, "llama.cpp", box)).decode_tokens_per_second
    s2 = speed(gguf, split, "llama.cpp", box, estimate(gguf, split, "llama.cpp", box)).decode_tokens_per_second
    assert s1 and s2 and s2 == pytest.approx(s1, rel=0.05)  # llama.cpp's GPUs take turns


def test_moe_reads_only_the_experts_a_token_is_routed_to(tmp_path: Path) -> None:
    model = read_model(safetensors_models.mixtral_like(tmp_path / "mixtral", n_layers=8))
    assert model.arch is not None and model.arch.n_experts > model.arch.n_experts_per_token
    box = gpu_box(80, gpu_name="NVIDIA H100 80GB HBM3", compute_capability="9.0")
    wl = Workload(context=1024)
    est = estimate(model, wl, "pytorch-cuda", box)
    moe = speed(model, wl, "pytorch-cuda", box, est).decode_tokens_per_second
    gpu = throughput.gpu_throughput(box.gpus[0])
    assert moe and gpu
    dense_roof = gpu.memory_bandwidth * BANDWIDTH_EFFICIENCY["cuda"] / est.weights_bytes
    assert moe > 2 * dense_roof  # top-2 of 8 experts: far less than all weights per token


def test_conv_and_matmul_flops_from_the_graph() -> None:
    conv = helper.make_node("Conv", ["x", "w"], ["y"])
    shapes = {"x": (1, 3, 32, 32), "w": (8, 3, 3, 3), "y": (1, 8, 30, 30)}
    assert node_flops(conv, shapes) == 2 * (3 * 3 * 3) * (8 * 30 * 30)
    mm = helper.make_node("MatMul", ["a", "b"], ["c"])
    assert node_flops(mm, {"a": (4, 16, 64), "b": (64, 32), "c": (4, 16, 32)}) == 2 * 4 * 16 * 32 * 64
    gemm = helper.make_node("Gemm", ["a", "b"], ["c"], transA=1)
    assert node_flops(gemm, {"a": (64, 16), "b": (64, 32), "c": (16, 32)}) == 2 * 16 * 32 * 64
    assert node_flops(helper.make_node("Relu", ["a"], ["b"]), {"a": (10,), "b": (10,)}) == 0
    assert node_flops(mm, {}) == 0  # unknown shapes: nothing claimed


def test_onnx_model_gets_inferences_per_second(tmp_path: Path) -> None:
    path = onnx_models.mlp(tmp_path / "mlp.onnx", hidden=256, layers=3, in_features=128)
    model = read_model(path)
    hw = get_device("rpi5-8gb")
    a = analyze(model, hw, Workload(batch=8))
    # three MatMuls: 128→256, 256→256, 256→10 at batch 8 (2 FLOPs per multiply-add)
    assert a.estimate.flops == 2 * 8 * (128 * 256 + 256 * 256 + 256 * 10)
    s = speed(model, a.workload, a.runtime, hw, a.estimate)
    assert s.inferences_per_second is not None and s.inferences_per_second > 0
    assert "GFLOP" in s.basis


def test_this_machines_bandwidth_is_measured_once_and_cached(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ADVISOR_CACHE_DIR", str(tmp_path))
    throughput.measured_host.cache_clear()
    calls = []
    monkeypatch.setattr(throughput, "_read_bandwidth", lambda threads: calls.append(threads) or 12e9)
    monkeypatch.setattr(throughput, "_matmul_flops", lambda: 50e9)
    hw = this_machine()
    first = throughput.host_throughput(hw)
    throughput.measured_host.cache_clear()
    second = throughput.host_throughput(hw)
    assert first and second and first.measured and second.memory_bandwidth == 12e9
    assert calls == [hw.cpu.physical_cores]  # all cores at once; the second lookup read the file
    cached = json.loads((tmp_path / "host_throughput.json").read_text())
    assert next(iter(cached.values()))["bandwidth"] == 12e9
    throughput.measured_host.cache_clear()


def test_the_read_benchmark_measures_something_plausible() -> None:
    bw = throughput._read_bandwidth(2, size=16 * 1024**2, repeats=2)
    assert 1e8 < bw < 1e13


def test_unknown_gpu_says_so_instead_of_guessing(tmp_path: Path) -> None:
    model = read_model(_llama_7b_gguf(tmp_path / "llama7b-q4_0.gguf"))
    box = gpu_box(24, gpu_name="NVIDIA Imaginary GPU 9000")
    a = analyze(model, box, Workload(context=512), "llama.cpp")
    s = speed(model, a.workload, "llama.cpp", box, a.estimate)
    assert s.decode_tokens_per_second is None and "not estimated" in s.basis
    assert s.to_dict() == {"basis": s.basis}


def test_onnx_saved_model_flops_survive_a_batch(tmp_path: Path) -> None:
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 3, 16, 16])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 4, 14, 14])
    w = onnx.numpy_helper.from_array(__import__("numpy").ones((4, 3, 3, 3), "float32"), "w")
    graph = helper.make_graph([helper.make_node("Conv", ["x", "w"], ["y"])], "g", [x], [y], [w])
    path = onnx_models.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), tmp_path / "c.onnx")
    model = read_model(path)
    hw = get_device("rpi5-8gb")
    a1, a4 = (analyze(model, hw, Workload(input_shapes={"x": (n, 3, 16, 16)})) for n in (1, 4))
    one, four = a1.estimate.flops, a4.estimate.flops
    assert one == 2 * 27 * 4 * 14 * 14 and four == 4 * one
    # a tiny net is dispatch-bound: a batch of 4 shares one run's fixed cost, so more samples/s
    s1, s4 = (speed(model, a.workload, a.runtime, hw, a.estimate) for a in (a1, a4))
    assert s1.inferences_per_second and s4.inferences_per_second
    assert 2 * s1.inferences_per_second < s4.inferences_per_second <= 4 * s1.inferences_per_second
    assert "batch 4" in s4.basis
