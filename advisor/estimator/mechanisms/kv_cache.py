"""The KV cache of a decoder LLM, as pure functions of its architecture.

The naive ``2 × layers × heads × head_dim × bytes × tokens`` is wrong for most modern models
(published comparisons put it at −81 % to +682 %), because:

* grouped-query attention caches ``n_kv_heads`` heads, not ``n_heads``;
* sliding-window layers (Mistral-7B-v0.1, Gemma 2/3, Cohere2, gpt-oss) keep at most ``window``
  tokens, and models mix them with full-attention layers (``LlmArchitecture.layer_types``);
* multi-head latent attention (DeepSeek-V2/V3) caches one compressed latent of
  ``kv_lora_rank + qk_rope_head_dim`` values per token per layer, not K and V per head.

How a runtime lays the cache out differs, so every function takes the *cells* (token slots) per
layer and an MLA layout; the runtime modules decide the cells (per sequence for vLLM/HF, one
unified pool of ``n_ctx`` for llama.cpp).
"""

from __future__ import annotations

from typing import Literal

from advisor.dtypes import nbytes
from advisor.errors import WorkloadError
from advisor.estimator.types import KV_CACHE_DTYPES
from advisor.readers.profile import LlmArchitecture

# KV element types (llama.cpp ``-ctk`` names and vLLM's ``fp8``) → the dtype table's names.
# NOTE: q8_0 = 34 B per 32 values, q4_0 = 18 B per 32 (ggml block_q8_0 / block_q4_0);
# vLLM's ``--kv-cache-dtype fp8`` is float8_e4m3 (1 B) with per-tensor scales.
_KV_TABLE = {
    "f32": "float32", "f16": "float16", "bf16": "bfloat16",
    "q8_0": "q8_0", "q4_0": "q4_0", "fp8": "float8_e4m3fn",
}
_KV_ALIASES = {
    "float32": "f32", "fp32": "f32", "float16": "f16", "fp16": "f16", "half": "f16",
    "bfloat16": "bf16", "fp8_e4m3": "fp8", "float8_e4m3fn": "fp8", "float8": "fp8", "auto": "",
}

MlaLayout = Literal["latent", "latent+v", "expanded"]
"""How an MLA model's cache is stored.

* ``latent`` — one tensor of ``kv_lora_rank + qk_rope_head_dim`` per token per layer (vLLM,
  SGLang, DeepSeek's own inference code).
* ``latent+v`` — llama.cpp's ``llama_kv_cache`` allocates ``cache_k_l`` of ``n_embd_k_gqa``
  (= kv_lora_rank + rope) and ``cache_v_l`` of ``n_embd_v_gqa`` (= kv_lora_rank) per layer.
* ``expanded`` — Hugging Face transformers' DeepseekV2/V3 attention caches the decompressed
  per-head keys (``qk_nope + qk_rope``) and values (``v_head_dim``) like plain MHA.
"""

SLIDING = "sliding_attention"


def kv_dtype_name(name: str | None, default: str) -> str:
    """The KV type for ``name`` in :data:`KV_CACHE_DTYPES` spelling (``default`` when None/"auto").

    Raises:
        WorkloadError: a type the estimator does not know.
    """
    if name is None:
        return default
    key = name.strip().lower()
    key = _KV_ALIASES.get(key, key) or default
    if key not in KV_CACHE_DTYPES:
        raise WorkloadError(f"unknown KV-cache type {name!r}; choose one of {', '.join(KV_CACHE_DTYPES)}")
    return key


def row_bytes(kv_dtype: str, n_values: int) -> int:
    """Bytes of one token's row of ``n_values`` values in ``kv_dtype`` (whole quant blocks)."""
    if n_values <= 0:
        return 0
    return nbytes(_KV_TABLE[kv_dtype_name(kv_dtype, "f16")], n_values)


def sliding_layers(arch: LlmArchitecture) -> tuple[bool, ...]:
    """For each layer, whether it is a sliding-window layer.

    ``layer_types`` wins when given; otherwise a set ``sliding_window`` means every layer slides
    (Mistral-7B-v0.1), as :class:`LlmArchitecture` documents.
    """
    if arch.layer_types:
        kinds = [t == SLIDING for t in arch.layer_types[: arch.n_layers]]
        kinds += [False] * (arch.n_layers - len(kinds))
        return tuple(kinds) if arch.sliding_window else (False,) * arch.n_layers
    return (arch.sliding_window is not None,) * arch.n_layers


def kv_heads_per_device(arch: LlmArchitecture, tensor_parallel: int = 1) -> int:
    """KV heads each GPU holds when the heads are split over ``tensor_parallel`` GPUs.

    NOTE: vLLM (``get_num_kv_heads``) gives each rank ``max(1, n_kv_heads // tp)``: when there
    are fewer KV heads than GPUs they are replicated, so the cache stops shrinking.
    """
    tp = max(1, tensor_parallel)
    return max(1, -(-arch.n_kv_heads // tp))


def kv_values_per_token(
    arch: LlmArchitecture,
    mla_layout: MlaLayout = "latent",
    tensor_parallel: int = 1,
) -> tuple[int, int]:
    """(K values, V values) one token stores in one layer; V is 0 when one tensor holds both."""
    if arch.is_mla:
        rank = arch.kv_lora_rank or 0
        rope = arch.qk_rope_head_dim or 0
        if mla_layout == "latent":
            # NOTE: the latent is not split over tensor-parallel ranks (vLLM's MLA backend keeps
            # the whole 576-wide latent on every rank).
            return rank + rope, 0
        if mla_layout == "latent+v":
            return rank + rope, rank
        heads = max(1, -(-arch.n_heads // max(1, tensor_parallel)))
        return heads * arch.head_dim, heads * (arch.v_head_dim or arch.head_dim)
    heads = kv_heads_per_device(arch, tensor_parallel)
    v_dim = arch.v_head_dim or arch.head_dim
    return heads * arch.head_dim, heads * v_dim


def layer_kv_bytes(
    arch: LlmArchitecture,
    cells: int,
    kv_dtype: str,
    *,
    mla_layout: MlaLayout = "latent",
    tensor_parallel: int = 1,
) -> int:
    """Bytes of one layer's cache holding ``cells`` token slots."""
    k_vals, v_vals = kv_values_per_token(arch, mla_layout, tensor_parallel)
    return cells * (row_bytes(kv_dtype, k_vals) + row_bytes(kv_dtype, v_vals))


def layer_cells(arch: LlmArchitecture, sequences: int, tokens: int) -> tuple[int, ...]:
    """Token slots per layer when each of ``sequences`` holds ``tokens`` (vLLM/HF convention).

    A sliding layer keeps ``min(tokens, window)`` per sequence.
    """
    window = arch.sliding_window
    return tuple(
        sequences * (min(tokens, window) if slides and window else tokens)
        for slides in sliding_layers(arch)
    )


def kv_cache_bytes(
    arch: LlmArchitecture,
    *,
    sequences: int,
    tokens: int,
    kv_dtype: str = "f16",
    mla_layout: MlaLayout = "latent",
    tensor_parallel: int = 1,
) -> int:
    """The whole cache for ``sequences`` sequences of ``tokens`` tokens each.

    Args:
        arch: the model's architecture.
        sequences: concurrent sequences (batch).
        tokens: tokens per sequence (prompt + generated).
        kv_dtype: one of :data:`KV_CACHE_DTYPES`.
        mla_layout: see :data:`MlaLayout` (ignored for non-MLA models).
        tensor_parallel: GPUs the heads are split over; the result is then per GPU.
    """
    per_layer = layer_kv_bytes(arch, 1, kv_dtype, mla_layout=mla_layout, tensor_parallel=tensor_parallel)
    return per_layer * sum(layer_cells(arch, sequences, tokens))


def kv_bytes_per_token(arch: LlmArchitecture, kv_dtype: str = "f16", mla_layout: MlaLayout = "latent") -> int:
    """Bytes one more token adds to one sequence's cache, over all full-attention layers."""
    per_layer = layer_kv_bytes(arch, 1, kv_dtype, mla_layout=mla_layout)
    return per_layer * sum(1 for slides in sliding_layers(arch) if not slides)


def naive_kv_cache_bytes(arch: LlmArchitecture, *, sequences: int, tokens: int, kv_dtype: str = "f16") -> int:
    """The textbook ``2 × layers × n_heads × head_dim × bytes × tokens`` (for comparison only)."""
    return 2 * arch.n_layers * sequences * tokens * row_bytes(kv_dtype, arch.n_heads * arch.head_dim)
