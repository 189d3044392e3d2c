"""The LLM estimator: PyTorch (HF generate) and llama.cpp peaks, offload, tensor parallel, re-pricing."""

from __future__ import annotations

import dataclasses

import pytest

from advisor.dtypes import nbytes
from advisor.errors import WorkloadError
from advisor.estimator import estimate
from advisor.estimator.runtimes import pytorch_parts as to
from advisor.estimator.runtimes import reprice_weights
from advisor.estimator.runtimes.llamacpp_plan import gguf_tensor_bytes
from advisor.estimator.runtimes.llamacpp_roles import tensor_role
from advisor.estimator.types import Estimate, Workload
from advisor.readers.profile import LlmArchitecture, ModelProfile, TensorInfo, layer_index, summarize_tensors
from tests.builders.hardware import gpu_box, laptop

MIB = 1024**2
GIB = 1024**3

LLAMA3_8B = LlmArchitecture(model_type="llama", n_layers=32, hidden_size=4096, n_heads=32, n_kv_heads=8,
                            head_dim=128, vocab_size=128256, max_positions=8192, intermediate_size=14336,
                            torch_dtype="bfloat16")
# a small Llama-shaped model keeps the tests fast; dims are multiples of 256 like real ones
TINY = LlmArchitecture(model_type="llama", n_layers=8, hidden_size=512, n_heads=8, n_kv_heads=2, head_dim=64,
                       vocab_size=32000, max_positions=2048, intermediate_size=1536, torch_dtype="bfloat16")


def _t(name: str, shape: tuple[int, ...], dtype: str, file: str) -> TensorInfo:
    n = 1
    for d in shape:
        n *= d
    return TensorInfo(name=name, dtype=dtype, shape=shape, n_elements=n, nbytes=nbytes(dtype, n), file=file,
                      layer=layer_index(name))


def llama_profile(arch: LlmArchitecture = TINY, *, dtype: str = "bfloat16", gguf: bool = False,
                  tied: bool = False, experts: int = 0, name: str = "test-llama") -> ModelProfile:
    """A Llama-shaped model as a reader would describe it (HF names, or GGUF names with ``gguf``)."""
    h, q, kv = arch.hidden_size, arch.n_heads * arch.head_dim, arch.n_kv_heads * arch.head_dim
    inter = arch.intermediate_size or 4 * h
    f = "model.gguf" if gguf else "model-00001-of-00001.safetensors"
    vec = "float32" if gguf else dtype
    tensors = [_t("token_embd.weight" if gguf else "model.embed_tokens.weight", (arch.vocab_size, h), dtype, f)]
    for i in range(arch.n_layers):
        p = f"blk.{i}." if gguf else f"model.layers.{i}."
        names = (("attn_q", "attn_k", "attn_v", "attn_output", "ffn_gate", "ffn_up", "ffn_down", "attn_norm",
                  "ffn_norm") if gguf else
                 ("self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj", "self_attn.o_proj", "mlp.gate_proj",
                  "mlp.up_proj", "mlp.down_proj", "input_layernorm", "post_attention_layernorm"))
        shapes = ((q, h), (kv, h), (kv, h), (h, q), (inter, h), (inter, h), (h, inter), (h,), (h,))
        for j, (n, s) in enumerate(zip(names, shapes, strict=True)):
            if experts and j in (4, 5, 6):
                for e in range(experts):
                    tensors.append(_t(f"{p}mlp.experts.{e}.{n.split('.')[-1]}.weight", s, dtype, f))
                continue
            tensors.append(_t(f"{p}{n}.weight", s, vec if len(s) == 1 else dtype, f))
        if experts:
            tensors.append(_t(f"{p}mlp.gate.weight", (experts, h), dtype, f))
    tensors.append(_t("output_norm.weight" if gguf else "model.norm.weight", (h,), vec, f))
    if not tied:
        tensors.append(_t("output.weight" if gguf else "lm_head.weight", (arch.vocab_size, h), dtype, f))
    n_params, wbytes, by_params, by_bytes = summarize_tensors(tensors)
    if experts:
        arch = dataclasses.replace(arch, n_experts=experts, n_experts_per_token=2)
    return ModelProfile(path=f"/models/{name}", format="gguf" if gguf else "safetensors", name=name,
                        n_params=n_params, weight_bytes=wbytes, params_by_dtype=by_params,
                        weight_bytes_by_dtype=by_bytes, files=(f,), file_bytes=wbytes, tensors=tuple(tensors),
                        arch=arch)


def _ok(e: Estimate) -> Estimate:
    assert 0 < e.low_bytes <= e.peak_bytes <= e.high_bytes
    return e


# --------------------------------------------------------------------------- PyTorch


def test_pytorch_cuda_adds_the_cuda_context_cpu_does_not() -> None:
    prof = llama_profile()
    wl = Workload(context=1024, seq_len=512)
    cpu = _ok(estimate(prof, wl, "pytorch-cpu", laptop()))
    gpu = _ok(estimate(prof, wl, "pytorch-cuda", gpu_box()))
    assert cpu.device == "cpu" and cpu.host_bytes is None
    assert gpu.device == "cuda" and gpu.host_bytes is not None and gpu.host_bytes > 0
    assert gpu.overhead_bytes >= 621 * MIB > cpu.overhead_bytes
    assert gpu.weights_bytes == cpu.weights_bytes == prof.weight_bytes  # bf16 loaded as bf16
    assert gpu.peak_bytes > cpu.peak_bytes
    assert gpu.kv_cache_bytes == 2 * TINY.n_layers * TINY.n_kv_heads * TINY.head_dim * 2 * 1024


def test_pytorch_peak_is_the_sum_of_its_parts() -> None:
    e = _ok(estimate(llama_profile(), Workload(context=2048, seq_len=1024), "pytorch-cpu", laptop()))
    assert e.peak_bytes == e.weights_bytes + e.kv_cache_bytes + e.activation_bytes + e.overhead_bytes
    assert e.activation_bytes > 0


def test_llama3_8b_on_cuda_is_in_the_known_ballpark() -> None:
    # 16.1 GB of bf16 weights + 1 GiB KV at 8k + ~0.7 GiB CUDA context/workspace: ~17.9 GiB
    e = _ok(estimate(llama_profile(LLAMA3_8B), Workload(context=8192, seq_len=4096), "pytorch-cuda", gpu_box(80)))
    assert e.kv_cache_bytes == 1 * GIB
    assert 16.5 * GIB < e.peak_bytes < 20 * GIB
    assert e.high_bytes - e.low_bytes < 0.25 * e.peak_bytes


def test_batch_grows_kv_linearly_in_the_estimate() -> None:
    prof = llama_profile()
    one = estimate(prof, Workload(batch=1, context=1024), "pytorch-cuda", gpu_box())
    four = estimate(prof, Workload(batch=4, context=1024), "pytorch-cuda", gpu_box())
    assert four.kv_cache_bytes == 4 * one.kv_cache_bytes
    assert four.peak_bytes > one.peak_bytes


def test_context_none_uses_a_noted_default() -> None:
    e = estimate(llama_profile(), Workload(), "pytorch-cpu", laptop())
    assert any("no context given" in n and "512-token prompt" in n for n in e.notes)
    assert e.resolved_inputs["tokens"] == (1, 1024)
    ll = estimate(llama_profile(), Workload(), "llama.cpp", laptop())
    assert any("-c 4096" in n for n in ll.notes)
    assert ll.resolved_inputs["tokens"] == (1, 2048)  # capped at the model's 2048 positions


def test_tensor_parallel_reduces_per_gpu_peak() -> None:
    prof = llama_profile(LLAMA3_8B)
    wl = Workload(context=4096)
    one = _ok(estimate(prof, wl, "pytorch-cuda", gpu_box(80)))
    two = _ok(estimate(prof, dataclasses.replace(wl, tensor_parallel=2), "pytorch-cuda", gpu_box(80, n_gpus=2)))
    assert two.tensor_parallel == 2
    assert two.peak_bytes < one.peak_bytes
    assert two.kv_cache_bytes == one.kv_cache_bytes // 2
    assert two.weights_bytes < 0.55 * one.weights_bytes
    assert any("gpu_memory_utilization" in n for n in two.notes)
    ll_one = estimate(prof, wl, "llama.cpp", gpu_box(80))
    ll_two = _ok(estimate(prof, dataclasses.replace(wl, tensor_parallel=2), "llama.cpp", gpu_box(80, n_gpus=2)))
    assert ll_two.peak_bytes < ll_one.peak_bytes


def test_int8_and_nf4_touch_linear_weights_only() -> None:
    prof = llama_profile()
    bf16, _ = reprice_weights(prof, None, "pytorch-cuda")
    int8, desc = reprice_weights(prof, "int8", "pytorch-cuda")
    nf4, _ = reprice_weights(prof, "nf4", "pytorch-cuda")
    assert bf16 == prof.weight_bytes
    assert nf4 < int8 < bf16
    assert "Linear" in desc and "lm_head" in desc
    # embeddings, lm_head and norms keep 2 B per element; linear weights 1 B + an fp32 scale per row
    kept = sum(t.nbytes for t in prof.tensors if tensor_role(t) in ("token_embd", "output", "vector"))
    linear = [t for t in prof.tensors if tensor_role(t) not in ("token_embd", "output", "vector")]
    assert int8 == kept + sum(t.n_elements + 4 * t.shape[0] for t in linear)
    assert nf4 == kept + sum(t.n_elements // 2 + 4 * (t.n_elements // 64) for t in linear)
    e8 = estimate(prof, Workload(context=1024, weight_dtype="int8"), "pytorch-cuda", gpu_box())
    e16 = estimate(prof, Workload(context=1024), "pytorch-cuda", gpu_box())
    assert e8.weights_bytes == int8 and e8.peak_bytes < e16.peak_bytes


def test_float32_cast_doubles_the_weights() -> None:
    prof = llama_profile()
    f32, desc = reprice_weights(prof, "float32", "pytorch-cpu")
    assert f32 == 2 * prof.weight_bytes and "float32" in desc


def test_gguf_type_on_pytorch_and_fp8_kv_on_llamacpp_are_refused() -> None:
    with pytest.raises(WorkloadError, match="PyTorch cannot load"):
        estimate(llama_profile(), Workload(weight_dtype="q4_k_m"), "pytorch-cuda", gpu_box())
    with pytest.raises(WorkloadError, match="no fp8 KV cache"):
        estimate(llama_profile(), Workload(kv_cache_dtype="fp8"), "llama.cpp", gpu_box())


def test_moe_keeps_every_expert_resident() -> None:
    moe = llama_profile(experts=8)
    dense = llama_profile()
    e = estimate(moe, Workload(context=1024), "pytorch-cuda", gpu_box())
    assert e.weights_bytes == moe.weight_bytes
    h, inter = TINY.hidden_size, TINY.intermediate_size or 0
    expert_bytes = 8 * 3 * h * inter * 2 * TINY.n_layers
    assert moe.weight_bytes - dense.weight_bytes == expert_bytes - 3 * h * inter * 2 * TINY.n_layers + (
        8 * h * 2 * TINY.n_layers)
    assert e.kv_cache_bytes == estimate(dense, Workload(context=1024), "pytorch-cuda", gpu_box()).kv_cache_bytes


def test_non_llm_safetensors_notes_unknown_activations() -> None:
    prof = dataclasses.replace(llama_profile(), arch=None, name="encoder")
    e = _ok(estimate(prof, Workload(), "pytorch-cpu", laptop()))
    assert e.activation_bytes == 0 and e.kv_cache_bytes == 0
    assert any("activations are unknown" in n for n in e.notes)
    assert e.high_bytes >= e.peak_bytes + prof.weight_bytes // 2


def test_padded_cpu_batch_puts_math_kernel_scores_in_the_high_end() -> None:
    prof = llama_profile()
    one = estimate(prof, Workload(batch=1, context=2048, seq_len=2000), "pytorch-cpu", laptop())
    two = estimate(prof, Workload(batch=2, context=2048, seq_len=2000), "pytorch-cpu", laptop())
    assert any("math kernel" in n and "high end" in n for n in two.notes)
    assert not any("high end" in n and "math kernel" in n for n in one.notes)
    # scores: 2 sequences × 8 heads × 2000² × 4 B × 2 (scores + softmax) ≈ 488 MiB
    assert (two.high_bytes - two.peak_bytes) - (one.high_bytes - one.peak_bytes) > 400 * MIB


def test_cpu_dtype_conversion_peaks_while_loading() -> None:
    # bf16 file loaded as float32: the fp32 copies and every bf16 page they were read from are resident
    # until from_pretrained closes the files: 100 MiB of runtime + 2 W + W.
    prof = llama_profile()
    w = prof.weight_bytes
    same = estimate(prof, Workload(context=1024), "pytorch-cpu", laptop())
    f32 = _ok(estimate(prof, Workload(context=1024, weight_dtype="float32"), "pytorch-cpu", laptop()))
    assert f32.weights_bytes == 2 * same.weights_bytes == 2 * w
    assert f32.peak_bytes == 100 * MIB + 3 * w
    assert f32.peak_bytes > f32.weights_bytes + f32.kv_cache_bytes + f32.activation_bytes + f32.overhead_bytes
    assert any("while loading" in n for n in f32.notes)
    assert same.peak_bytes == same.weights_bytes + same.kv_cache_bytes + same.activation_bytes + 128 * MIB
    assert not any("while loading" in n for n in same.notes)


def test_cpu_untied_embedding_counts_only_looked_up_pages() -> None:
    arch = dataclasses.replace(TINY, vocab_size=128000)
    untied = llama_profile(arch)
    embed = 128000 * 512 * 2  # 125 MiB
    # 64 tokens × 512 KiB windows over a 125 MiB table: 125 × (1 − e^(−32/125)) ≈ 28.2 MiB resident
    e = _ok(estimate(untied, Workload(context=64, seq_len=60), "pytorch-cpu", laptop()))
    gap = untied.weight_bytes - e.weights_bytes
    assert 96 * MIB < gap < 98 * MIB
    assert e.high_bytes >= e.peak_bytes + gap
    assert any("untied input embedding" in n for n in e.notes)
    # a long context reads (nearly) the whole table; a tied one is read whole by lm_head anyway
    long = estimate(untied, Workload(context=2048), "pytorch-cpu", laptop())
    assert long.weights_bytes == untied.weight_bytes
    tied = llama_profile(arch, tied=True)
    t = estimate(tied, Workload(context=64, seq_len=60), "pytorch-cpu", laptop())
    assert t.weights_bytes == tied.weight_bytes == untied.weight_bytes - embed


def test_cpu_moe_experts_fused_at_load_keep_their_source_pages() -> None:
    prof = llama_profile(experts=8)
    h, inter = TINY.hidden_size, TINY.intermediate_size or 0
    experts = 8 * 3 * h * inter * 2 * TINY.n_layers
    e = _ok(estimate(prof, Workload(context=1024), "pytorch-cpu", laptop()))
    # fused copies + the mapped expert pages (the file still backs the other weights' views)
    assert e.weights_bytes == prof.weight_bytes + experts
    assert any("source pages resident" in n for n in e.notes)
    # cast to float32: everything is copied, the file is closed after loading
    f32 = _ok(estimate(prof, Workload(context=1024, weight_dtype="float32"), "pytorch-cpu", laptop()))
    assert f32.weights_bytes == 2 * prof.weight_bytes
    # load: copies + source + the cast fp32 expert pieces still waiting on the loader's threads
    assert f32.peak_bytes == 100 * MIB + 3 * prof.weight_bytes + 2 * experts


def test_sliding_layers_hold_the_whole_prompt_after_prefill() -> None:
    # DynamicSlidingWindowLayer keeps a view of the full prompt's K/V until the first decode step
    arch = dataclasses.replace(TINY, model_type="mistral", sliding_window=256)
    e = _ok(estimate(llama_profile(arch), Workload(context=2048, seq_len=2000), "pytorch-cpu", laptop()))
    per_token = TINY.n_layers * 2 * TINY.n_kv_heads * TINY.head_dim * 2  # layers × K+V × KV heads × dim × bf16
    assert e.kv_cache_bytes == 256 * per_token  # what stays while decoding
    # the prefill (2000 tokens of K/V in every layer + activations) is the peak, as without a window
    full = estimate(llama_profile(), Workload(context=2048, seq_len=2000), "pytorch-cpu", laptop())
    assert full.kv_cache_bytes == 2048 * per_token
    assert e.peak_bytes == full.peak_bytes


def test_cpu_heap_keeps_the_attention_blocks_through_the_mlp() -> None:
    # TINY, 1 × 1024 tokens, bf16: hidden 1 MiB ×3, q 1 MiB ×2, k+v 0.5 MiB, rotated k/v 0.25 MiB,
    # attention output 1 MiB, cos/sin 0.25 MiB = 7 MiB kept; MLP 3 × 1024 × 1536 × 2 B = 9 MiB + 3 hidden
    cpu = to.prefill_activations(TINY, batch=1, prompt=1024, act_bytes=2, cuda=False)
    gpu = to.prefill_activations(TINY, batch=1, prompt=1024, act_bytes=2, cuda=True)
    assert gpu.nominal_bytes == 12 * MIB
    assert cpu.nominal_bytes == 12 * MIB + 7 * MIB
    # 64 × 1024 tokens: hidden-sized blocks (64 MiB) are above glibc's 32 MiB mmap ceiling and are
    # returned; only k+v (32 MiB), rotated k/v (16 MiB) and cos/sin (16 MiB) stay in the heap
    big = to.prefill_activations(TINY, batch=64, prompt=1024, act_bytes=2, cuda=False)
    big_gpu = to.prefill_activations(TINY, batch=64, prompt=1024, act_bytes=2, cuda=True)
    assert big.nominal_bytes - big_gpu.nominal_bytes == 64 * MIB


# --------------------------------------------------------------------------- llama.cpp


def test_llamacpp_all_layers_on_gpu_vs_split() -> None:
    prof = llama_profile(LLAMA3_8B, gguf=True, dtype="q4_k")
    full = _ok(estimate(prof, Workload(context=4096), "llama.cpp", gpu_box(24)))
    split = _ok(estimate(prof, Workload(context=4096, gpu_layers=16), "llama.cpp", gpu_box(24)))
    embd = next(t.nbytes for t in prof.tensors if t.name == "token_embd.weight")
    out = next(t.nbytes for t in prof.tensors if t.name == "output.weight")
    assert full.device == split.device == "cuda"
    assert full.host_bytes is not None and split.host_bytes is not None
    assert full.host_bytes >= embd  # token_embd stays in RAM even with -ngl 999
    assert split.host_bytes > full.host_bytes + prof.weight_bytes // 3
    assert split.peak_bytes < full.peak_bytes
    assert full.weights_bytes == prof.weight_bytes - embd
    assert split.weights_bytes < (prof.weight_bytes - embd - out) // 2 + 1
    assert full.overhead_bytes >= 527 * MIB
    assert any("-ngl 16" in n for n in split.notes)


def test_llamacpp_cpu_counts_mapped_weights() -> None:
    prof = llama_profile(gguf=True, dtype="q8_0")
    e = _ok(estimate(prof, Workload(context=1024), "llama.cpp", laptop()))
    assert e.device == "cpu" and e.weights_bytes + e.reclaimable_bytes == prof.weight_bytes  # resident once loaded
    embd = next(t.nbytes for t in prof.tensors if "embed_tokens" in t.name or "token_embd" in t.name)
    assert e.reclaimable_bytes == embd  # GET_ROWS reads a row per token: its other pages can go
    assert any("memory-mapped" in n for n in e.notes)


def test_llamacpp_ctx_is_total_over_sequences() -> None:
    prof = llama_profile(gguf=True, dtype="q8_0")
    e = estimate(prof, Workload(batch=4, context=1000, kv_cache_dtype="f16"), "llama.cpp", laptop())
    cells = 4096  # 4 × 1000 padded to 256
    assert e.kv_cache_bytes == TINY.n_layers * cells * 2 * TINY.n_kv_heads * TINY.head_dim * 2
    assert any("-c 4096 -np 4" in n for n in e.notes)


def test_llamacpp_quantized_kv_shrinks_the_cache() -> None:
    prof = llama_profile(gguf=True, dtype="q8_0")
    f16 = estimate(prof, Workload(context=2048), "llama.cpp", laptop())
    q8 = estimate(prof, Workload(context=2048, kv_cache_dtype="q8_0"), "llama.cpp", laptop())
    q4 = estimate(prof, Workload(context=2048, kv_cache_dtype="q4_0"), "llama.cpp", laptop())
    assert q4.kv_cache_bytes < q8.kv_cache_bytes < f16.kv_cache_bytes
    assert q8.kv_cache_bytes * 32 == f16.kv_cache_bytes * 17  # 34 B per 32 values vs 64 B


def test_llamacpp_compute_buffer_without_flash_attention_is_the_high_end() -> None:
    prof = llama_profile(LLAMA3_8B, gguf=True, dtype="q4_k")
    e = estimate(prof, Workload(context=8192), "llama.cpp", gpu_box(24))
    scores = 8192 * 512 * 32 * 4  # n_ctx × n_ubatch × n_head × f32
    assert e.high_bytes - e.peak_bytes > scores - e.activation_bytes
    assert 200 * MIB < e.activation_bytes < 400 * MIB  # logits of a 512-token ubatch dominate with FA


def test_q4_k_m_mix_keeps_output_and_some_layers_higher() -> None:
    prof = llama_profile(LLAMA3_8B)
    priced, desc = gguf_tensor_bytes(prof, "q4_k_m")
    types = {t.name: dt for t, dt, _ in priced}
    assert types["lm_head.weight"] == "q6_k"
    assert types["model.embed_tokens.weight"] == "q4_k"
    assert types["model.layers.0.self_attn.v_proj.weight"] == "q6_k"  # first eighth: more bits
    assert types["model.layers.5.self_attn.v_proj.weight"] == "q4_k"
    assert types["model.layers.0.mlp.down_proj.weight"] == "q6_k"
    assert types["model.layers.0.self_attn.q_proj.weight"] == "q4_k"
    assert types["model.layers.0.input_layernorm.weight"] == "float32"
    assert "q6_k" in desc
    q4, _ = reprice_weights(prof, "q4_k_m", "llama.cpp")
    q8, _ = reprice_weights(prof, "q8_0", "llama.cpp")
    f16, _ = reprice_weights(prof, None, "llama.cpp")
    assert q4 < q8 < f16
    assert 4.5 < q4 * 8 / prof.n_params < 5.2  # Q4_K_M averages ~4.9 bits on Llama-3-8B


def test_llamacpp_ignores_mistral_v01_sliding_window() -> None:
    arch = dataclasses.replace(TINY, model_type="mistral", sliding_window=512)
    e = estimate(llama_profile(arch), Workload(context=2048), "llama.cpp", laptop())
    assert e.kv_cache_bytes == TINY.n_layers * 2048 * 2 * TINY.n_kv_heads * TINY.head_dim * 2
    assert any("ignores" in n for n in e.notes)
    hf = estimate(llama_profile(arch), Workload(context=2048), "pytorch-cpu", laptop())
    assert hf.kv_cache_bytes == TINY.n_layers * 512 * 2 * TINY.n_kv_heads * TINY.head_dim * 2


def test_gemma_style_sliding_layers_in_llamacpp() -> None:
    kinds = tuple("sliding_attention" if (i + 1) % 2 else "full_attention" for i in range(TINY.n_layers))
    arch = dataclasses.replace(TINY, model_type="gemma2", sliding_window=256, layer_types=kinds)
    e = estimate(llama_profile(arch, gguf=True, dtype="q8_0"), Workload(context=4096), "llama.cpp", laptop())
    per_cell = 2 * TINY.n_kv_heads * TINY.head_dim * 2
    swa_cells = 768  # pad(256 + 512, 256)
    assert e.kv_cache_bytes == per_cell * (4 * 4096 + 4 * swa_cells)


def test_tied_embeddings_are_duplicated_on_the_gpu() -> None:
    prof = llama_profile(gguf=True, dtype="q8_0", tied=True)
    e = estimate(prof, Workload(context=1024), "llama.cpp", gpu_box())
    assert e.weights_bytes == prof.weight_bytes  # output = a GPU copy of token_embd


def test_pytorch_gpu_layers_offload_moves_weights_to_ram() -> None:
    prof = llama_profile()
    full = estimate(prof, Workload(context=1024), "pytorch-cuda", gpu_box())
    half = _ok(estimate(prof, Workload(context=1024, gpu_layers=4), "pytorch-cuda", gpu_box()))
    layer = sum(t.nbytes for t in prof.tensors if t.layer == 7)
    assert full.host_bytes is not None and half.host_bytes is not None
    assert half.host_bytes - full.host_bytes == 4 * layer  # 4 layers in RAM, same staging
    assert half.weights_bytes == full.weights_bytes - 4 * layer
    assert half.peak_bytes < full.peak_bytes
    assert any("4 of 8 layers stay in RAM" in n for n in half.notes)


def test_gguf_without_architecture_is_weights_plus_runtime() -> None:
    prof = dataclasses.replace(llama_profile(gguf=True, dtype="q8_0"), arch=None)
    e = _ok(estimate(prof, Workload(), "llama.cpp", gpu_box()))
    assert e.weights_bytes == prof.weight_bytes and e.kv_cache_bytes == 0
    assert e.overhead_bytes >= 527 * MIB
    assert any("activations are unknown" in n for n in e.notes)


def test_reprice_weights_without_a_tensor_list_keeps_stored_bytes() -> None:
    prof = dataclasses.replace(llama_profile(), tensors=())
    assert reprice_weights(prof, "int8", "pytorch-cuda") == (prof.weight_bytes,
                                                             "weights as stored (the file lists no tensors)")


def test_moe_note_says_all_experts_are_resident() -> None:
    e = estimate(llama_profile(experts=8), Workload(context=512), "llama.cpp", laptop())
    assert any("all 8 experts are resident" in n for n in e.notes)
    assert not any("experts" in n for n in estimate(llama_profile(), Workload(context=512), "llama.cpp",
                                                    laptop()).notes)
