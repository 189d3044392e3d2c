"""llama.cpp on a CPU: mmap, repacking, the KV cache, the compute buffer and the range.

The mechanisms were measured with bench/llamacpp_accuracy.py (llama-cpp-python 0.3.36); these
tests check that the estimator applies them, on real GGUF files built here.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from advisor.estimator import estimate
from advisor.estimator.runtimes.llamacpp_cpu import (
    ComputeShape,
    compute_buffer_bytes,
    cpu_peak_parts,
    is_repacked,
    repacked_types,
    work_buffer_bytes,
)
from advisor.estimator.runtimes.llamacpp_plan import gguf_tensor_bytes, plan_llamacpp
from advisor.estimator.types import Workload
from advisor.hardware.profile import CpuInfo
from advisor.readers.gguf_reader import read_gguf
from advisor.readers.profile import LlmArchitecture, ModelProfile
from tests.builders.gguf_models import llama_gguf_specs, write_gguf
from tests.builders.hardware import laptop

AVX2 = CpuInfo(arch="x86_64", features=("avx", "avx2", "fma", "f16c"))
OLD_X86 = CpuInfo(arch="x86_64", features=("sse4_2", "avx"))
ARM = CpuInfo(arch="aarch64", features=("neon", "asimddp"))
ARCH = LlmArchitecture(model_type="llama", n_layers=4, hidden_size=512, n_heads=8, n_kv_heads=2, head_dim=64,
                       vocab_size=4000, intermediate_size=1536)


def _gguf(tmp_path: Path, qtype: str, *, vocab: int = 3000, name: str = "m") -> ModelProfile:
    specs = llama_gguf_specs(n_layers=2, hidden=256, n_heads=4, n_kv_heads=2, vocab=vocab, ff=512, qtype=qtype,
                             embd_type=qtype, out_type=qtype)
    meta = {"{arch}.block_count": 2, "{arch}.context_length": 4096, "{arch}.embedding_length": 256,
            "{arch}.feed_forward_length": 512, "{arch}.attention.head_count": 4,
            "{arch}.attention.head_count_kv": 2}
    path = write_gguf(tmp_path / f"{name}.gguf", specs, metadata=meta, tokens=[f"tok{i}" for i in range(vocab)])
    return read_gguf(path)


def _on(cpu: CpuInfo):  # type: ignore[no-untyped-def]
    return dataclasses.replace(laptop(), cpu=cpu)


def test_repacked_types_follow_the_isa() -> None:
    x86 = repacked_types(AVX2)
    arm = repacked_types(ARM)
    assert x86 is not None and arm is not None
    assert "q4_0" in x86 and "q8_0" not in x86  # x86 has no Q8_0 repack kernel
    assert "q8_0" in arm and "q4_0" in arm
    assert repacked_types(OLD_X86) == frozenset()
    assert repacked_types(CpuInfo()) is None


def test_q4_0_weights_count_twice_on_avx2_but_not_q8_0(tmp_path: Path) -> None:
    q4 = _gguf(tmp_path, "Q4_0", name="q4")
    q8 = _gguf(tmp_path, "Q8_0", name="q8")
    wl = Workload(context=1024)
    q4_avx2 = estimate(q4, wl, "llama.cpp", _on(AVX2))
    q4_old = estimate(q4, wl, "llama.cpp", _on(OLD_X86))
    repacked = sum(t.nbytes for t in q4.tensors if len(t.shape) == 2 and t.name != "token_embd.weight")
    assert q4_avx2.overhead_bytes == q4_old.overhead_bytes  # the runtime's own
    # the need holds the weights once: repacked (AVX2) or read from the mapping (no repack kernels)
    assert q4_avx2.required_bytes == q4_old.required_bytes
    # both copies resident (RSS), except output.weight: the file's tail is unmapped after load
    tail = next(t.nbytes for t in q4.tensors if t.name == "output.weight")
    assert q4_avx2.peak_bytes - q4_old.peak_bytes >= repacked - tail > 0
    assert any("CPU_REPACK" in n for n in q4_avx2.notes)
    q8_avx2 = estimate(q8, wl, "llama.cpp", _on(AVX2))
    q8_old = estimate(q8, wl, "llama.cpp", _on(OLD_X86))
    assert q8_avx2.overhead_bytes == q8_old.overhead_bytes
    # unknown ISA: the copy may or may not exist, so it widens the high end only
    unknown = estimate(q4, wl, "llama.cpp", _on(CpuInfo()))
    assert unknown.high_bytes >= q4_old.high_bytes + repacked
    assert unknown.peak_bytes == q4_old.peak_bytes


def test_mmap_makes_the_whole_file_resident(tmp_path: Path) -> None:
    prof = _gguf(tmp_path, "F16", vocab=20000)  # a big vocabulary: metadata worth counting
    assert prof.file_bytes > prof.weight_bytes
    e = estimate(prof, Workload(context=512), "llama.cpp", _on(AVX2))
    # resident: the whole file (metadata too, while loading); needed: all but the embedding rows
    # no token reads and the metadata
    assert e.peak_bytes >= prof.file_bytes
    embd = next(t.nbytes for t in prof.tensors if t.name == "token_embd.weight")
    assert e.weights_bytes == prof.weight_bytes - embd


def test_repacked_tensors_at_the_file_end_are_unmapped_after_load(tmp_path: Path) -> None:
    prof = _gguf(tmp_path, "Q4_0")
    priced, _ = gguf_tensor_bytes(prof, None)
    parts = cpu_peak_parts(prof, ARCH, priced, n_ctx=512, n_seq=1, kv_bytes=0, prompt=8, cpu=AVX2)
    out = next(t for t in prof.tensors if t.name == "output.weight")
    assert is_repacked(out, "q4_0", frozenset({"q4_0"}))
    assert parts.mapped_run_bytes <= prof.file_bytes - out.nbytes
    no_mmap = cpu_peak_parts(prof, ARCH, priced, n_ctx=512, n_seq=1, kv_bytes=0, prompt=8, cpu=AVX2,
                             use_mmap=False)
    assert no_mmap.weights_bytes + no_mmap.repacked_bytes == prof.weight_bytes
    assert no_mmap.staging_bytes == max(t.nbytes for t in prof.tensors if t.name != "token_embd.weight"
                                        and len(t.shape) == 2)


def test_kv_cache_is_whole_but_compute_follows_the_prompt(tmp_path: Path) -> None:
    prof = _gguf(tmp_path, "Q8_0")
    full = estimate(prof, Workload(context=4096), "llama.cpp", _on(AVX2))
    short = estimate(prof, Workload(context=4096, seq_len=64), "llama.cpp", _on(AVX2))
    assert short.kv_cache_bytes == full.kv_cache_bytes  # cleared at start: every page touched
    assert short.activation_bytes < full.activation_bytes
    assert full.low_bytes <= short.peak_bytes <= full.peak_bytes


def test_compute_buffer_grows_with_cells_and_without_flash_attention() -> None:
    a = compute_buffer_bytes(ARCH, ComputeShape(512, 4096, 512), flash_attn=True)
    b = compute_buffer_bytes(ARCH, ComputeShape(512, 8192, 512), flash_attn=True)
    nofa = compute_buffer_bytes(ARCH, ComputeShape(512, 8192, 512), flash_attn=False)
    assert b > a
    assert nofa - b >= 8192 * 512 * ARCH.n_heads * 4  # the f32 scores
    # without flash attention the scores are also converted to f16 for the V product
    assert work_buffer_bytes(ARCH, ComputeShape(512, 8192, 1), {"float16"}, flash_attn=False) >= 2 * 8192 * 512 * 8
    assert work_buffer_bytes(ARCH, ComputeShape(512, 8192, 1), {"float32"}, flash_attn=True) == 0


@pytest.mark.parametrize(("context", "batch", "cells"), [(1000, 4, 4096), (100, 3, 768), (2048, 1, 2048)])
def test_context_is_padded_per_stream(context: int, batch: int, cells: int) -> None:
    prof = ModelProfile(path="x.gguf", format="gguf", name="x", n_params=0, weight_bytes=0, params_by_dtype={},
                        weight_bytes_by_dtype={}, files=(), file_bytes=0, arch=ARCH)
    plan = plan_llamacpp(prof, ARCH, context=context, batch=batch, kv_dtype="f16", weight_dtype=None,
                         gpu_layers=None, cuda=False)
    assert plan.n_ctx == cells


def test_runtime_allowance_is_fixed_plus_per_vocabulary_entry(tmp_path: Path) -> None:
    # RUNTIME_BYTES (12 MiB: graph metadata, thread stacks, heap) + RUNTIME_PER_TOKEN_BYTES (160 B per
    # vocabulary entry: llama-vocab.cpp's id_to_token strings and token_to_id map): 12 MiB + 3000 x 160 B.
    prof = _gguf(tmp_path, "Q8_0", vocab=3000)
    assert prof.arch is not None
    priced, _ = gguf_tensor_bytes(prof, None)
    p = cpu_peak_parts(prof, prof.arch, priced, n_ctx=512, n_seq=1, kv_bytes=0, prompt=16, cpu=AVX2)
    assert p.runtime_bytes == 12 * 1024 * 1024 + 3000 * 160
    # the whole file is mapped (MAP_POPULATE) and Q8_0 is not repacked on AVX2
    assert p.weights_bytes == prof.file_bytes and p.repacked_bytes == 0
    assert p.output_bytes == 3000 * 4
