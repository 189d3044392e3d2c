"""Write small real GGUF files with gguf-py's ``GGUFWriter``.

Plain tensors (F32, F16) are numpy arrays; quantized ones (Q8_0, Q4_K, ...) are written as raw
uint8 blocks with ``raw_dtype=``, which is how llama.cpp's converters write pre-quantized data.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
from gguf import GGML_QUANT_SIZES, GGMLQuantizationType, GGUFWriter, LlamaFileType

# (ggml type name, numpy shape with the row (innermost) dimension last)
TensorSpec = tuple[str, tuple[int, ...]]

_PLAIN = {"F32": np.float32, "F16": np.float16, "F64": np.float64, "I8": np.int8, "I16": np.int16,
          "I32": np.int32, "I64": np.int64}


def tensor_array(type_name: str, shape: tuple[int, ...], seed: int = 0) -> tuple[np.ndarray, Any]:
    """Data for one tensor and the ``raw_dtype`` to pass (None for plain numpy types)."""
    rng = np.random.default_rng(seed)
    if type_name in _PLAIN:
        return rng.standard_normal(shape).astype(_PLAIN[type_name]), None
    qtype = GGMLQuantizationType[type_name]
    block, block_bytes = GGML_QUANT_SIZES[qtype]
    if shape[-1] % block:
        raise ValueError(f"row {shape[-1]} is not whole {type_name} blocks of {block}")
    byte_shape = (*shape[:-1], shape[-1] // block * block_bytes)
    return rng.integers(0, 256, size=byte_shape, dtype=np.uint8), qtype


def write_gguf(
    path: str | Path, tensors: Mapping[str, TensorSpec], *, arch: str = "llama",
    metadata: Mapping[str, Any] | None = None, tokens: list[str] | None = None, name: str | None = None,
    file_type: int | None = None,
) -> Path:
    """Write a GGUF file. ``metadata`` keys with ``{arch}`` are formatted; ints go in as uint32."""
    p = Path(path)
    w = GGUFWriter(p, arch)
    if name is not None:
        w.add_name(name)
    if file_type is not None:
        w.add_file_type(file_type)
        w.add_quantization_version(2)
    for key, value in (metadata or {}).items():
        key = key.format(arch=arch)
        if isinstance(value, bool):
            w.add_bool(key, value)
        elif isinstance(value, int):
            w.add_uint32(key, value)
        elif isinstance(value, float):
            w.add_float32(key, value)
        elif isinstance(value, str):
            w.add_string(key, value)
        else:
            w.add_array(key, value)
    if tokens is not None:
        w.add_tokenizer_model("gpt2")
        w.add_token_list(tokens)
    for i, (tname, (type_name, shape)) in enumerate(tensors.items()):
        data, raw = tensor_array(type_name, shape, seed=i)
        w.add_tensor(tname, data, raw_dtype=raw)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return p


def llama_gguf_specs(
    n_layers: int = 2, hidden: int = 256, n_heads: int = 4, n_kv_heads: int = 2, vocab: int = 64,
    ff: int = 512, qtype: str = "Q4_K", embd_type: str = "Q8_0", out_type: str | None = "F16",
) -> dict[str, TensorSpec]:
    """llama.cpp's tensor names for a llama model; ``out_type=None`` leaves output.weight out (tied)."""
    hd = hidden // n_heads
    specs: dict[str, TensorSpec] = {"token_embd.weight": (embd_type, (vocab, hidden))}
    for i in range(n_layers):
        specs.update({
            f"blk.{i}.attn_norm.weight": ("F32", (hidden,)),
            f"blk.{i}.attn_q.weight": (qtype, (n_heads * hd, hidden)),
            f"blk.{i}.attn_k.weight": (qtype, (n_kv_heads * hd, hidden)),
            f"blk.{i}.attn_v.weight": (qtype, (n_kv_heads * hd, hidden)),
            f"blk.{i}.attn_output.weight": (qtype, (hidden, n_heads * hd)),
            f"blk.{i}.ffn_norm.weight": ("F32", (hidden,)),
            f"blk.{i}.ffn_gate.weight": (qtype, (ff, hidden)),
            f"blk.{i}.ffn_up.weight": (qtype, (ff, hidden)),
            f"blk.{i}.ffn_down.weight": (qtype, (hidden, ff)),
        })
    specs["output_norm.weight"] = ("F32", (hidden,))
    if out_type is not None:
        specs["output.weight"] = (out_type, (vocab, hidden))
    return specs


def tiny_llama_gguf(
    path: str | Path, n_layers: int = 2, hidden: int = 256, n_heads: int = 4, n_kv_heads: int = 2,
    vocab: int = 64, ff: int = 512, qtype: str = "Q4_K", ctx: int = 4096, tied: bool = False,
    extra: Mapping[str, Any] | None = None,
) -> Path:
    """A small llama GGUF (Q4_K blocks, Q8_0 embeddings, F16 output, F32 norms) with llama metadata."""
    specs = llama_gguf_specs(n_layers, hidden, n_heads, n_kv_heads, vocab, ff, qtype,
                             out_type=None if tied else "F16")
    meta = {
        "{arch}.block_count": n_layers, "{arch}.context_length": ctx, "{arch}.embedding_length": hidden,
        "{arch}.feed_forward_length": ff, "{arch}.attention.head_count": n_heads,
        "{arch}.attention.head_count_kv": n_kv_heads, "{arch}.rope.dimension_count": hidden // n_heads,
        **(extra or {}),
    }
    return write_gguf(path, specs, metadata=meta, tokens=[f"t{i}" for i in range(vocab)],
                      name="Tiny Llama", file_type=int(LlamaFileType.MOSTLY_Q4_K_M))


def sparse_gguf(path: str | Path, tensors: Mapping[str, TensorSpec], *, arch: str = "llama",
                metadata: Mapping[str, Any] | None = None) -> Path:
    """A GGUF whose header is real and whose tensor data is a hole (``os.truncate``): gigabytes, no disk."""
    import os

    p = Path(path)
    w = GGUFWriter(p, arch)
    for key, value in (metadata or {}).items():
        w.add_uint32(key.format(arch=arch), value)
    data_bytes = 0
    for tname, (type_name, shape) in tensors.items():
        qtype = GGMLQuantizationType[type_name]
        block, block_bytes = GGML_QUANT_SIZES[qtype]
        nbytes = int(np.prod(shape)) // block * block_bytes
        w.add_tensor_info(tname, shape, np.dtype(np.float32), nbytes, raw_dtype=qtype)
        data_bytes += GGUFWriter.ggml_pad(nbytes, 32)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_ti_data_to_file()
    w.close()
    os.truncate(p, GGUFWriter.ggml_pad(p.stat().st_size, 32) + data_bytes)
    return p
