"""What each weight is for, in llama.cpp's vocabulary, from its GGUF or Hugging Face name."""

from __future__ import annotations

import functools
import re

from advisor.readers.profile import TensorInfo

_ROLE_PATTERNS: tuple[tuple[str, re.Pattern[str]], ...] = tuple(
    (role, re.compile(pattern))
    for role, pattern in (
        ("output", r"(^|\.)(output|lm_head|embed_out)\.weight$"),
        ("token_embd", r"(token_embd|embed_tokens|tok_embeddings|word_embeddings|(^|\.)wte)\b"),
        ("router", r"(ffn_gate_inp|\.mlp\.gate\.weight|block_sparse_moe\.gate\.weight|\.router\.)"),
        ("attn_qkv", r"(attn_qkv|qkv_proj|query_key_value|\.c_attn\.|\.Wqkv\.)"),
        ("attn_v", r"(attn_v\.|\.v_proj\.)"),
        ("attn_k", r"(attn_k\.|\.k_proj\.)"),
        ("attn_output", r"(attn_output|\.o_proj\.|\.out_proj\.|attention\.dense\.)"),
        ("ffn_down", r"(ffn_down|down_proj|\.w2\.|\.fc2\.|mlp\.c_proj\.|dense_4h_to_h)"),
    )
)


def tensor_role(tensor: TensorInfo) -> str:
    """What a weight is for, in llama.cpp's vocabulary, from its GGUF or Hugging Face name.

    Returns one of ``vector`` (1-D: norms, biases), ``token_embd``, ``output``, ``router``,
    ``attn_qkv``, ``attn_v``, ``attn_k``, ``attn_output``, ``ffn_down`` or ``linear`` (any other
    matrix: q/gate/up projections, MLA's low-rank projections, experts).
    """
    if len(tensor.shape) < 2:
        return "vector"
    return _name_role(tensor.name)


@functools.lru_cache(maxsize=1 << 16)
def _name_role(name: str) -> str:
    # a plan prices every tensor for each option: the regexes run once per name, not per pricing
    for role, pattern in _ROLE_PATTERNS:
        if pattern.search(name):
            return role
    return "linear"


