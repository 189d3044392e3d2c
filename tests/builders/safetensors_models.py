"""Write safetensors files and Hugging Face style folders with numpy only (no ``safetensors`` package).

Two kinds: real small weights (:func:`write_safetensors`, :func:`tiny_llama_folder`), and real-shaped
headers over SPARSE data (:func:`write_sparse_safetensors`, :func:`llama_folder`): the data region is
made with ``os.truncate`` so a 141 GB Llama-3-70B-shaped folder costs a few hundred KB of disk.
"""

from __future__ import annotations

import json
import math
import os
import struct
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

# numpy dtype → safetensors dtype string
_NP_TO_ST = {
    "float64": "F64", "float32": "F32", "float16": "F16", "int64": "I64", "int32": "I32",
    "int16": "I16", "int8": "I8", "uint64": "U64", "uint32": "U32", "uint16": "U16", "uint8": "U8",
    "bool": "BOOL",
}
# safetensors dtype string → bytes per element (for sparse specs)
ST_SIZES = {"F64": 8, "F32": 4, "F16": 2, "BF16": 2, "I64": 8, "I32": 4, "I16": 2, "I8": 1, "U8": 1,
            "U16": 2, "U32": 4, "U64": 8, "BOOL": 1, "F8_E4M3": 1, "F8_E5M2": 1}

Spec = tuple[str, tuple[int, ...]]  # (safetensors dtype, shape)


def header_bytes(entries: Mapping[str, Any]) -> bytes:
    """The 8-byte length prefix and the JSON header, padded with spaces to 8 bytes as safetensors does."""
    raw = json.dumps(entries, separators=(",", ":")).encode()
    raw += b" " * (-len(raw) % 8)
    return struct.pack("<Q", len(raw)) + raw


def _entries(specs: Mapping[str, Spec], metadata: Mapping[str, str] | None) -> tuple[dict[str, Any], int]:
    entries: dict[str, Any] = {}
    if metadata is not None:
        entries["__metadata__"] = dict(metadata)
    offset = 0
    for name, (dt, shape) in specs.items():
        n = ST_SIZES[dt] * math.prod(shape)
        entries[name] = {"dtype": dt, "shape": list(shape), "data_offsets": [offset, offset + n]}
        offset += n
    return entries, offset


def write_safetensors(
    path: str | Path, tensors: Mapping[str, np.ndarray], metadata: Mapping[str, str] | None = None,
    dtypes: Mapping[str, str] | None = None,
) -> Path:
    """Write real tensors. ``dtypes`` overrides a tensor's dtype string (``{"w": "BF16"}`` over uint16 data)."""
    dtypes = dtypes or {}
    specs = {n: (dtypes.get(n) or _NP_TO_ST[str(a.dtype)], tuple(a.shape)) for n, a in tensors.items()}
    entries, _ = _entries(specs, metadata)
    p = Path(path)
    with p.open("wb") as f:
        f.write(header_bytes(entries))
        for a in tensors.values():
            f.write(np.ascontiguousarray(a).tobytes())
    return p


def write_sparse_safetensors(
    path: str | Path, specs: Mapping[str, Spec], metadata: Mapping[str, str] | None = None
) -> Path:
    """Write a real header whose data region is a hole of the right size (``os.truncate``)."""
    entries, data_len = _entries(specs, metadata)
    head = header_bytes(entries)
    p = Path(path)
    p.write_bytes(head)
    os.truncate(p, len(head) + data_len)
    return p


def llama_specs(
    n_layers: int, hidden: int, n_heads: int, n_kv_heads: int, vocab: int, intermediate: int,
    dtype: str = "BF16", head_dim: int | None = None, tie: bool = False,
) -> dict[str, Spec]:
    """Tensor names and shapes of a transformers LlamaForCausalLM checkpoint."""
    hd = head_dim or hidden // n_heads
    specs: dict[str, Spec] = {"model.embed_tokens.weight": (dtype, (vocab, hidden))}
    for i in range(n_layers):
        pre = f"model.layers.{i}."
        specs.update({
            pre + "self_attn.q_proj.weight": (dtype, (n_heads * hd, hidden)),
            pre + "self_attn.k_proj.weight": (dtype, (n_kv_heads * hd, hidden)),
            pre + "self_attn.v_proj.weight": (dtype, (n_kv_heads * hd, hidden)),
            pre + "self_attn.o_proj.weight": (dtype, (hidden, n_heads * hd)),
            pre + "mlp.gate_proj.weight": (dtype, (intermediate, hidden)),
            pre + "mlp.up_proj.weight": (dtype, (intermediate, hidden)),
            pre + "mlp.down_proj.weight": (dtype, (hidden, intermediate)),
            pre + "input_layernorm.weight": (dtype, (hidden,)),
            pre + "post_attention_layernorm.weight": (dtype, (hidden,)),
        })
    specs["model.norm.weight"] = (dtype, (hidden,))
    if not tie:
        specs["lm_head.weight"] = (dtype, (vocab, hidden))
    return specs


def llama_config(
    n_layers: int, hidden: int, n_heads: int, n_kv_heads: int, vocab: int, intermediate: int,
    tie: bool = False, **extra: Any,
) -> dict[str, Any]:
    """A LlamaConfig-shaped ``config.json``."""
    return {
        "architectures": ["LlamaForCausalLM"], "model_type": "llama", "num_hidden_layers": n_layers,
        "hidden_size": hidden, "num_attention_heads": n_heads, "num_key_value_heads": n_kv_heads,
        "vocab_size": vocab, "intermediate_size": intermediate, "max_position_embeddings": 8192,
        "tie_word_embeddings": tie, "torch_dtype": "bfloat16", "rms_norm_eps": 1e-5, **extra,
    }


def write_sharded(
    folder: Path, specs: Mapping[str, Spec], n_shards: int, *, sparse: bool = True, with_index: bool = True,
    arrays: Mapping[str, np.ndarray] | None = None, dtypes: Mapping[str, str] | None = None,
) -> list[Path]:
    """Split ``specs`` (or real ``arrays``) over ``n_shards`` files of about equal bytes, with an index."""
    sizes = {n: ST_SIZES[dt] * math.prod(shape) for n, (dt, shape) in specs.items()}
    total = sum(sizes.values())
    groups: list[list[str]] = [[] for _ in range(n_shards)]
    acc = 0
    for name, size in sizes.items():
        groups[min(n_shards - 1, acc * n_shards // max(total, 1))].append(name)
        acc += size
    paths: list[Path] = []
    weight_map: dict[str, str] = {}
    for i, names in enumerate(groups):
        fname = f"model-{i + 1:05d}-of-{n_shards:05d}.safetensors"
        if arrays is not None:
            write_safetensors(folder / fname, {n: arrays[n] for n in names}, {"format": "pt"}, dtypes)
        else:
            write_sparse_safetensors(folder / fname, {n: specs[n] for n in names}, {"format": "pt"})
        weight_map.update(dict.fromkeys(names, fname))
        paths.append(folder / fname)
    if with_index:
        index = {"metadata": {"total_size": total}, "weight_map": weight_map}
        (folder / "model.safetensors.index.json").write_text(json.dumps(index, indent=2))
    return paths


def llama_folder(
    path: str | Path, n_layers: int = 80, hidden: int = 8192, n_heads: int = 64, n_kv_heads: int = 8,
    vocab: int = 128256, intermediate: int = 28672, n_shards: int = 30, sparse: bool = True,
    tie: bool = False,
) -> Path:
    """A Llama-3-70B-shaped HF folder (defaults): config.json, index, bf16 shards with sparse data."""
    folder = Path(path)
    folder.mkdir(parents=True, exist_ok=True)
    cfg = llama_config(n_layers, hidden, n_heads, n_kv_heads, vocab, intermediate, tie=tie)
    (folder / "config.json").write_text(json.dumps(cfg, indent=2))
    specs = llama_specs(n_layers, hidden, n_heads, n_kv_heads, vocab, intermediate, tie=tie)
    if sparse:
        write_sharded(folder, specs, n_shards)
    else:
        rng = np.random.default_rng(0)
        arrays = {n: rng.integers(0, 2**16, size=s, dtype=np.uint16) for n, (_, s) in specs.items()}
        write_sharded(folder, specs, n_shards, arrays=arrays, dtypes=dict.fromkeys(specs, "BF16"))
    return folder


def tiny_llama_folder(
    path: str | Path, n_layers: int = 2, hidden: int = 64, n_heads: int = 4, n_kv_heads: int = 2,
    vocab: int = 128, intermediate: int = 96, n_shards: int = 1, with_index: bool = True,
    with_config: bool = True, seed: int = 0,
) -> Path:
    """A small Llama folder with REAL float32 weights (random), single-file or sharded."""
    folder = Path(path)
    folder.mkdir(parents=True, exist_ok=True)
    specs = llama_specs(n_layers, hidden, n_heads, n_kv_heads, vocab, intermediate, dtype="F32")
    rng = np.random.default_rng(seed)
    arrays = {n: rng.standard_normal(s).astype(np.float32) for n, (_, s) in specs.items()}
    if with_config:
        cfg = llama_config(n_layers, hidden, n_heads, n_kv_heads, vocab, intermediate, torch_dtype="float32")
        (folder / "config.json").write_text(json.dumps(cfg))
    if n_shards == 1:
        write_safetensors(folder / "model.safetensors", arrays, {"format": "pt"})
    else:
        write_sharded(folder, specs, n_shards, arrays=arrays, with_index=with_index)
    return folder


def gemma2_config() -> dict[str, Any]:
    """google/gemma-2-9b's config.json (the fields that matter)."""
    return {
        "architectures": ["Gemma2ForCausalLM"], "model_type": "gemma2", "num_hidden_layers": 42,
        "hidden_size": 3584, "num_attention_heads": 16, "num_key_value_heads": 8, "head_dim": 256,
        "intermediate_size": 14336, "vocab_size": 256000, "max_position_embeddings": 8192,
        "sliding_window": 4096, "torch_dtype": "float32",
    }


def mixtral_config() -> dict[str, Any]:
    """mistralai/Mixtral-8x7B-v0.1's config.json (the fields that matter)."""
    return {
        "architectures": ["MixtralForCausalLM"], "model_type": "mixtral", "num_hidden_layers": 32,
        "hidden_size": 4096, "num_attention_heads": 32, "num_key_value_heads": 8, "intermediate_size": 14336,
        "vocab_size": 32000, "max_position_embeddings": 32768, "num_local_experts": 8,
        "num_experts_per_tok": 2, "sliding_window": None, "tie_word_embeddings": False,
        "torch_dtype": "bfloat16",
    }


def deepseek_v3_config(**overrides: Any) -> dict[str, Any]:
    """deepseek-ai/DeepSeek-V3's config.json (the fields that matter)."""
    cfg = {
        "architectures": ["DeepseekV3ForCausalLM"], "model_type": "deepseek_v3", "num_hidden_layers": 61,
        "hidden_size": 7168, "num_attention_heads": 128, "num_key_value_heads": 128,
        "intermediate_size": 18432, "moe_intermediate_size": 2048, "vocab_size": 129280,
        "max_position_embeddings": 163840, "n_routed_experts": 256, "n_shared_experts": 1,
        "num_experts_per_tok": 8, "kv_lora_rank": 512, "q_lora_rank": 1536, "qk_rope_head_dim": 64,
        "qk_nope_head_dim": 128, "v_head_dim": 128, "first_k_dense_replace": 3, "torch_dtype": "bfloat16",
    }
    cfg.update(overrides)
    return cfg


def gemma2_like(path: str | Path, n_layers: int = 4) -> Path:
    """A Gemma2 folder (config + sparse bf16 shards, llama-style names, tied embeddings)."""
    cfg = {**gemma2_config(), "num_hidden_layers": n_layers}
    specs = llama_specs(n_layers, cfg["hidden_size"], 16, 8, cfg["vocab_size"], cfg["intermediate_size"],
                        head_dim=256, tie=True)
    return _config_folder(path, cfg, specs, n_shards=2)


def mixtral_like(path: str | Path, n_layers: int = 32) -> Path:
    """A Mixtral-8x7B-shaped folder (config + sparse bf16 shards with per-expert weights)."""
    cfg = {**mixtral_config(), "num_hidden_layers": n_layers}
    h, inter, v = cfg["hidden_size"], cfg["intermediate_size"], cfg["vocab_size"]
    specs = llama_specs(n_layers, h, 32, 8, v, inter)
    moe: dict[str, Spec] = {}
    for name, spec in specs.items():
        if ".mlp." in name:
            continue
        moe[name] = spec
        if name.endswith("o_proj.weight"):
            pre = name.removesuffix("self_attn.o_proj.weight") + "block_sparse_moe."
            moe[pre + "gate.weight"] = ("BF16", (8, h))
            for e in range(8):
                moe[f"{pre}experts.{e}.w1.weight"] = ("BF16", (inter, h))
                moe[f"{pre}experts.{e}.w2.weight"] = ("BF16", (h, inter))
                moe[f"{pre}experts.{e}.w3.weight"] = ("BF16", (inter, h))
    return _config_folder(path, cfg, moe, n_shards=19)


def deepseek_like(path: str | Path, n_layers: int = 4, n_experts: int = 8) -> Path:
    """A small DeepSeek-V3-style folder: MLA attention and routed experts, sparse bf16 shards."""
    cfg = deepseek_v3_config(num_hidden_layers=n_layers, n_routed_experts=n_experts, hidden_size=1024,
                             num_attention_heads=16, num_key_value_heads=16, vocab_size=4096,
                             intermediate_size=2048, moe_intermediate_size=256, first_k_dense_replace=1,
                             q_lora_rank=256, kv_lora_rank=128, num_experts_per_tok=2)
    h, heads = cfg["hidden_size"], cfg["num_attention_heads"]
    qk = cfg["qk_nope_head_dim"] + cfg["qk_rope_head_dim"]
    specs: dict[str, Spec] = {"model.embed_tokens.weight": ("BF16", (cfg["vocab_size"], h))}
    for i in range(n_layers):
        pre = f"model.layers.{i}."
        specs[pre + "self_attn.q_a_proj.weight"] = ("BF16", (cfg["q_lora_rank"], h))
        specs[pre + "self_attn.q_b_proj.weight"] = ("BF16", (heads * qk, cfg["q_lora_rank"]))
        specs[pre + "self_attn.kv_a_proj_with_mqa.weight"] = ("BF16", (128 + 64, h))
        specs[pre + "self_attn.kv_b_proj.weight"] = ("BF16", (heads * (128 + 128), 128))
        specs[pre + "self_attn.o_proj.weight"] = ("BF16", (h, heads * 128))
        inter = cfg["intermediate_size"] if i < cfg["first_k_dense_replace"] else cfg["moe_intermediate_size"]
        experts = [f"mlp.experts.{e}." for e in range(n_experts)] if i >= 1 else ["mlp."]
        for e in experts:
            specs[pre + e + "gate_proj.weight"] = ("BF16", (inter, h))
            specs[pre + e + "up_proj.weight"] = ("BF16", (inter, h))
            specs[pre + e + "down_proj.weight"] = ("BF16", (h, inter))
    specs["lm_head.weight"] = ("BF16", (cfg["vocab_size"], h))
    return _config_folder(path, cfg, specs, n_shards=3)


def _config_folder(path: str | Path, cfg: dict[str, Any], specs: Mapping[str, Spec], n_shards: int) -> Path:
    folder = Path(path)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "config.json").write_text(json.dumps(cfg, indent=2))
    write_sharded(folder, specs, n_shards)
    return folder
