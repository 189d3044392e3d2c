"""KV-cache formulas: MHA, GQA, sliding windows, MLA, quantized caches, batch and tensor parallel."""

from __future__ import annotations

import dataclasses

import pytest

from advisor.errors import WorkloadError
from advisor.estimator.mechanisms.kv_cache import (
    kv_bytes_per_token,
    kv_cache_bytes,
    kv_dtype_name,
    kv_values_per_token,
    naive_kv_cache_bytes,
    row_bytes,
    sliding_layers,
)
from advisor.readers.profile import LlmArchitecture

GIB = 1024**3
MIB = 1024**2

LLAMA2_7B = LlmArchitecture(model_type="llama", n_layers=32, hidden_size=4096, n_heads=32, n_kv_heads=32,
                            head_dim=128, vocab_size=32000, max_positions=4096)
LLAMA3_8B = LlmArchitecture(model_type="llama", n_layers=32, hidden_size=4096, n_heads=32, n_kv_heads=8,
                            head_dim=128, vocab_size=128256, max_positions=8192, intermediate_size=14336)
MISTRAL_V01 = LlmArchitecture(model_type="mistral", n_layers=32, hidden_size=4096, n_heads=32, n_kv_heads=8,
                              head_dim=128, vocab_size=32000, sliding_window=4096)
GEMMA2_9B = LlmArchitecture(
    model_type="gemma2", n_layers=42, hidden_size=3584, n_heads=16, n_kv_heads=8, head_dim=256,
    vocab_size=256000, sliding_window=4096,
    layer_types=tuple("sliding_attention" if (i + 1) % 2 else "full_attention" for i in range(42)),
)
DEEPSEEK_V3 = LlmArchitecture(
    model_type="deepseek_v3", n_layers=61, hidden_size=7168, n_heads=128, n_kv_heads=128, head_dim=192,
    vocab_size=129280, kv_lora_rank=512, qk_rope_head_dim=64, v_head_dim=128, n_experts=256,
    n_experts_per_token=8,
)


def test_mha_matches_the_textbook_formula() -> None:
    # 2 (K,V) × 32 layers × 32 heads × 128 × 2 B × 4096 tokens = 2 GiB
    got = kv_cache_bytes(LLAMA2_7B, sequences=1, tokens=4096, kv_dtype="f16")
    assert got == 2 * GIB
    assert got == naive_kv_cache_bytes(LLAMA2_7B, sequences=1, tokens=4096, kv_dtype="f16")


def test_gqa_llama3_8b_is_exactly_one_gib_at_8k_bf16() -> None:
    got = kv_cache_bytes(LLAMA3_8B, sequences=1, tokens=8192, kv_dtype="bf16")
    assert got == 1 * GIB
    # the naive formula counts all 32 query heads: 4× too much
    assert naive_kv_cache_bytes(LLAMA3_8B, sequences=1, tokens=8192, kv_dtype="bf16") == 4 * got


def test_mistral_sliding_window_caps_tokens() -> None:
    at_window = kv_cache_bytes(MISTRAL_V01, sequences=1, tokens=4096, kv_dtype="f16")
    assert at_window == 2 * 32 * 8 * 128 * 2 * 4096
    assert kv_cache_bytes(MISTRAL_V01, sequences=1, tokens=32768, kv_dtype="f16") == at_window
    below = kv_cache_bytes(MISTRAL_V01, sequences=1, tokens=1000, kv_dtype="f16")
    assert below == 2 * 32 * 8 * 128 * 2 * 1000
    assert all(sliding_layers(MISTRAL_V01))


def test_gemma2_alternates_sliding_and_full_layers() -> None:
    kinds = sliding_layers(GEMMA2_9B)
    assert kinds[0] and not kinds[1] and sum(kinds) == 21
    per_token_layer = 2 * 8 * 256 * 2
    got = kv_cache_bytes(GEMMA2_9B, sequences=1, tokens=8192, kv_dtype="bf16")
    assert got == per_token_layer * (21 * 8192 + 21 * 4096)
    # only the 21 global layers grow with more tokens
    assert kv_bytes_per_token(GEMMA2_9B, "bf16") == 21 * per_token_layer


def test_mla_deepseek_v3_caches_576_values_per_token_per_layer() -> None:
    assert kv_values_per_token(DEEPSEEK_V3, "latent") == (576, 0)
    one_token = kv_cache_bytes(DEEPSEEK_V3, sequences=1, tokens=1, kv_dtype="bf16")
    assert one_token == 61 * 576 * 2
    # llama.cpp's K 576 + V 512, and transformers' decompressed 128 heads × (192 + 128)
    assert kv_values_per_token(DEEPSEEK_V3, "latent+v") == (576, 512)
    assert kv_values_per_token(DEEPSEEK_V3, "expanded") == (128 * 192, 128 * 128)
    naive = naive_kv_cache_bytes(DEEPSEEK_V3, sequences=1, tokens=1, kv_dtype="bf16")
    assert naive > 40 * one_token


@pytest.mark.parametrize(
    ("kv_dtype", "row"),
    [("f32", 4096), ("f16", 2048), ("bf16", 2048), ("fp8", 1024), ("q8_0", 32 * 34), ("q4_0", 32 * 18)],
)
def test_quantized_cache_row_bytes(kv_dtype: str, row: int) -> None:
    # Llama-3-8B: one token's K row in one layer is 8 heads × 128 = 1024 values
    assert row_bytes(kv_dtype, 1024) == row
    got = kv_cache_bytes(LLAMA3_8B, sequences=1, tokens=8192, kv_dtype=kv_dtype)
    assert got == 2 * 32 * 8192 * row


def test_q8_0_and_q4_0_round_up_to_whole_blocks() -> None:
    assert row_bytes("q8_0", 33) == 2 * 34
    assert row_bytes("q4_0", 1) == 18


def test_batch_grows_kv_linearly() -> None:
    one = kv_cache_bytes(LLAMA3_8B, sequences=1, tokens=2048, kv_dtype="bf16")
    assert kv_cache_bytes(LLAMA3_8B, sequences=4, tokens=2048, kv_dtype="bf16") == 4 * one


def test_moe_does_not_change_the_cache() -> None:
    moe = dataclasses.replace(LLAMA3_8B, n_experts=8, n_experts_per_token=2)
    assert kv_cache_bytes(moe, sequences=1, tokens=512) == kv_cache_bytes(LLAMA3_8B, sequences=1, tokens=512)


def test_tensor_parallel_splits_kv_heads_until_they_run_out() -> None:
    full = kv_cache_bytes(LLAMA3_8B, sequences=1, tokens=1024, kv_dtype="bf16")
    assert kv_cache_bytes(LLAMA3_8B, sequences=1, tokens=1024, kv_dtype="bf16", tensor_parallel=2) == full // 2
    assert kv_cache_bytes(LLAMA3_8B, sequences=1, tokens=1024, kv_dtype="bf16", tensor_parallel=8) == full // 8
    # 16 GPUs, 8 KV heads: each GPU still holds one whole head
    assert kv_cache_bytes(LLAMA3_8B, sequences=1, tokens=1024, kv_dtype="bf16", tensor_parallel=16) == full // 8
    # MLA's latent is not split
    mla = kv_cache_bytes(DEEPSEEK_V3, sequences=1, tokens=64, kv_dtype="bf16")
    assert kv_cache_bytes(DEEPSEEK_V3, sequences=1, tokens=64, kv_dtype="bf16", tensor_parallel=8) == mla


def test_kv_dtype_names() -> None:
    assert kv_dtype_name(None, "bf16") == "bf16"
    assert kv_dtype_name("float16", "bf16") == "f16"
    assert kv_dtype_name("auto", "f16") == "f16"
    assert kv_dtype_name("Q8_0", "f16") == "q8_0"
    with pytest.raises(WorkloadError, match="unknown KV-cache type"):
        kv_dtype_name("q3_k", "f16")


def test_layer_types_without_a_window_mean_no_sliding() -> None:
    odd = dataclasses.replace(GEMMA2_9B, sliding_window=None)
    assert not any(sliding_layers(odd))
    assert kv_cache_bytes(odd, sequences=1, tokens=8192) == 42 * 8192 * 2 * 8 * 256 * 2


def test_mla_per_token_is_far_below_a_mib() -> None:
    assert kv_bytes_per_token(DEEPSEEK_V3, "bf16") < 1 * MIB
