"""GGUF reader: exact bytes for every ggml type, metadata → architecture, splits, and corrupt files."""

from __future__ import annotations

import math
import resource
import struct
from pathlib import Path

import gguf
import numpy as np
import pytest
from gguf import GGML_QUANT_SIZES, GGMLQuantizationType, GGUFWriter

from advisor.errors import ModelFormatError, UnknownDtypeError, UnsupportedFormatError
from advisor.readers import read_model
from advisor.readers.gguf_reader import read_gguf
from tests.builders.gguf_models import llama_gguf_specs, sparse_gguf, tiny_llama_gguf, write_gguf
from tests.expect import model_error as _error

# Every ggml type the gguf package knows, with a row length that is whole blocks of it.
ALL_TYPES = [t for t in GGMLQuantizationType if t in GGML_QUANT_SIZES]


@pytest.mark.parametrize("qtype", ALL_TYPES, ids=lambda t: t.name)
def test_every_ggml_type_bytes_and_name(tmp_path: Path, qtype: GGMLQuantizationType) -> None:
    block, block_bytes = GGML_QUANT_SIZES[qtype]
    shape = (3, 2 * max(block, 1))
    f = write_gguf(tmp_path / "t.gguf", {"w": (qtype.name, shape)})
    p = read_model(f)
    (t,) = p.tensors
    assert t.dtype == qtype.name.lower().replace("f32", "float32").replace("bf16", "bfloat16").replace(
        "f16", "float16").replace("f64", "float64").replace("i8", "int8").replace("i16", "int16").replace(
        "i32", "int32").replace("i64", "int64")
    assert t.shape == shape and t.n_elements == math.prod(shape)
    assert t.nbytes == math.prod(shape) // block * block_bytes
    assert p.weight_bytes_by_dtype == {t.dtype: t.nbytes}
    (ref,) = gguf.GGUFReader(f).tensors  # the gguf package agrees on bytes and offset
    assert (t.nbytes, t.offset) == (ref.n_bytes, ref.data_offset)


def test_tiny_llama_exact_bytes_by_dtype_and_offsets(tmp_path: Path) -> None:
    f = tiny_llama_gguf(tmp_path / "tiny-Q4_K_M.gguf")
    p = read_model(f)
    hidden, ff, vocab, layers, kv_dim = 256, 512, 64, 2, 2 * 64
    q4k = layers * (2 * hidden * hidden + 2 * kv_dim * hidden + 3 * hidden * ff)
    assert p.params_by_dtype == {"q8_0": vocab * hidden, "float32": (2 * layers + 1) * hidden,
                                 "q4_k": q4k, "float16": vocab * hidden}
    assert p.weight_bytes_by_dtype == {"q8_0": vocab * hidden // 32 * 34, "float32": 4 * (2 * layers + 1) * hidden,
                                       "q4_k": q4k // 256 * 144, "float16": 2 * vocab * hidden}
    assert p.n_params == sum(p.params_by_dtype.values())
    assert p.file_bytes == f.stat().st_size and p.files == (str(f.absolute()),)
    ref = {t.name: t for t in gguf.GGUFReader(f).tensors}
    for t in p.tensors:
        assert t.offset == ref[t.name].data_offset
        assert t.shape == tuple(reversed(ref[t.name].shape.tolist()))  # numpy order, rows first
    assert {t.name: t.layer for t in p.tensors}["blk.1.ffn_up.weight"] == 1


def test_metadata_to_architecture(tmp_path: Path) -> None:
    p = read_model(tiny_llama_gguf(tmp_path / "m.gguf", ctx=8192))
    a = p.arch
    assert a is not None and a.model_type == "llama"
    assert (a.n_layers, a.hidden_size, a.n_heads, a.n_kv_heads, a.head_dim) == (2, 256, 4, 2, 64)
    assert (a.vocab_size, a.max_positions, a.intermediate_size) == (64, 8192, 512)
    assert not a.tie_word_embeddings and not a.is_moe and a.sliding_window is None
    assert p.name == "Tiny Llama"
    assert p.metadata["file_type"] == "Q4_K_M" and p.metadata["quantization_version"] == 2
    assert p.metadata["gguf_version"] == 3 and p.metadata["general.architecture"] == "llama"


def test_tied_output_vocab_from_embedding_and_explicit_key_length(tmp_path: Path) -> None:
    specs = llama_gguf_specs(n_layers=1, vocab=96, out_type=None)
    meta = {"{arch}.block_count": 1, "{arch}.embedding_length": 256, "{arch}.attention.head_count": 4,
            "{arch}.attention.key_length": 128, "{arch}.attention.value_length": 96}
    p = read_model(write_gguf(tmp_path / "t.gguf", specs, metadata=meta))
    assert p.arch is not None and p.arch.tie_word_embeddings
    assert (p.arch.vocab_size, p.arch.head_dim, p.arch.v_head_dim, p.arch.n_kv_heads) == (96, 128, 96, 4)
    assert p.name == "t"  # no general.name: the file stem


def test_sliding_window_moe_and_mla_metadata(tmp_path: Path) -> None:
    base = {"{arch}.block_count": 4, "{arch}.embedding_length": 256, "{arch}.attention.head_count": 4}
    tensors = {"token_embd.weight": ("F16", (8, 256))}
    g2 = read_model(write_gguf(tmp_path / "g2.gguf", tensors, arch="gemma2",
                               metadata={**base, "{arch}.attention.sliding_window": 4096}))
    assert g2.arch is not None and g2.arch.sliding_window == 4096
    assert g2.arch.layer_types == ("sliding_attention", "full_attention") * 2
    pat = read_model(write_gguf(tmp_path / "g3.gguf", tensors, arch="gemma3",
                                metadata={**base, "{arch}.attention.sliding_window": 512,
                                          "{arch}.attention.sliding_window_pattern": [True, True, True, False]}))
    assert pat.arch is not None and pat.arch.layer_types[-1] == "full_attention"
    moe = read_model(write_gguf(tmp_path / "moe.gguf", tensors, arch="deepseek2",
                                metadata={**base, "{arch}.expert_count": 64, "{arch}.expert_used_count": 6,
                                          "{arch}.attention.kv_lora_rank": 512, "{arch}.rope.dimension_count": 64,
                                          "{arch}.attention.key_length_mla": 192,
                                          "{arch}.attention.value_length_mla": 128}))
    a = moe.arch
    assert a is not None and a.is_moe and a.is_mla
    assert (a.n_experts, a.n_experts_per_token, a.kv_lora_rank, a.qk_rope_head_dim) == (64, 6, 512, 64)
    assert (a.head_dim, a.v_head_dim) == (192, 128)


def test_non_llm_gguf_has_no_architecture(tmp_path: Path) -> None:
    p = read_model(write_gguf(tmp_path / "mmproj.gguf", {"v.w": ("F16", (4, 32))}, arch="clip"))
    assert p.arch is None and any("not a decoder LLM" in n for n in p.notes)
    q = read_model(write_gguf(tmp_path / "bare.gguf", {"w": ("F32", (4,))}))
    assert q.arch is None and any("lacks" in n for n in q.notes)


def test_split_files_are_read_together(tmp_path: Path) -> None:
    specs = llama_gguf_specs(n_layers=2)
    meta = {"llama.block_count": 2, "llama.embedding_length": 256, "llama.attention.head_count": 4}
    whole = read_model(write_gguf(tmp_path / "whole.gguf", specs, metadata=meta))
    w = GGUFWriter(tmp_path / "split.gguf", "llama", split_max_tensors=8)
    for key, value in meta.items():
        w.add_uint32(key, value)
    from tests.builders.gguf_models import tensor_array

    for i, (name, (tname, shape)) in enumerate(specs.items()):
        data, raw = tensor_array(tname, shape, seed=i)
        w.add_tensor(name, data, raw_dtype=raw)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    splits = sorted(tmp_path.glob("split-*-of-*.gguf"))
    assert len(splits) == 3
    for opened in (splits[0], splits[1], tmp_path):
        if opened == tmp_path:
            (tmp_path / "whole.gguf").unlink()
        p = read_model(opened)
        assert (p.n_params, p.weight_bytes) == (whole.n_params, whole.weight_bytes)
        assert [Path(f).name for f in p.files] == [s.name for s in splits]
        assert p.arch is not None and p.arch.n_layers == 2
    splits[2].unlink()
    with pytest.raises(ModelFormatError, match=r"missing split file split-00003-of-00003\.gguf"):
        read_model(splits[0])


def test_tensor_data_is_never_read(tmp_path: Path) -> None:
    """A 6 GB GGUF whose data is a hole: reading it must not fault its pages in."""
    f = sparse_gguf(tmp_path / "big.gguf", {"token_embd.weight": ("Q4_K", (128256, 8192)),
                                            "blk.0.ffn_up.weight": ("BF16", (4 * 28672, 8192)),
                                            "blk.0.ffn_down.weight": ("F32", (8192, 28672 * 4))},
                    metadata={"{arch}.block_count": 1})
    assert f.stat().st_size > 6e9
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    p = read_model(f)
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - rss_before < 100 * 1024  # KiB
    assert p.weight_bytes == 128256 * 8192 // 256 * 144 + 2 * 4 * 28672 * 8192 + 4 * 8192 * 28672 * 4


# --- corrupt files ---------------------------------------------------------------------------------


def _first_tensor_name_at(data: bytes) -> int:
    return data.index(b"token_embd.weight", data.index(b"tokenizer.ggml.tokens"))


@pytest.mark.parametrize(
    ("cut", "needle"),
    [
        (lambda d: 2, "not a GGUF file"),
        (lambda d: 12, "truncated"),
        (lambda d: 60, "more than 60 bytes can hold"),
        (lambda d: d.index(b"tokenizer.ggml.tokens") + 300, "file ends inside the array tokenizer.ggml.tokens"),
        (lambda d: _first_tensor_name_at(d) + 6, "file ends inside the tensor infos"),
        (lambda d: len(d) - 50, "past the end of the file"),
    ],
    ids=["magic", "counts", "count-check", "metadata", "tensor-infos", "data"],
)
def test_truncated_at_every_stage(tmp_path: Path, cut: object, needle: str) -> None:
    f = tiny_llama_gguf(tmp_path / "t.gguf")
    data = f.read_bytes()
    f.write_bytes(data[: cut(data)])  # type: ignore[operator]
    assert needle in _error(f)


def _patch(f: Path, offset: int, raw: bytes) -> None:
    data = bytearray(f.read_bytes())
    data[offset:offset + len(raw)] = raw
    f.write_bytes(bytes(data))


def test_bad_magic_version_and_empty(tmp_path: Path) -> None:
    f = tiny_llama_gguf(tmp_path / "t.gguf")
    _patch(f, 0, b"GGML")
    assert "not a GGUF file" in _error(f)
    g = tiny_llama_gguf(tmp_path / "v.gguf")
    _patch(g, 4, struct.pack("<I", 1))
    assert "version 1" in _error(g, UnsupportedFormatError)
    empty = tmp_path / "empty.gguf"
    empty.write_bytes(b"")
    assert "not a GGUF file" in _error(empty)


def test_corrupt_array_length_fails_instead_of_looping(tmp_path: Path) -> None:
    f = tiny_llama_gguf(tmp_path / "t.gguf")
    data = f.read_bytes()
    key = data.index(b"tokenizer.ggml.tokens") + len(b"tokenizer.ggml.tokens")
    _patch(f, key + 4 + 4, struct.pack("<Q", 2**60))  # value type, item type, then the count
    assert "array tokenizer.ggml.tokens" in _error(f)


def test_unknown_tensor_type_and_huge_counts(tmp_path: Path) -> None:
    f = write_gguf(tmp_path / "t.gguf", {"w": ("F32", (4,))})
    data = f.read_bytes()
    name_end = data.index(b"w\x01\x00\x00\x00") + 1  # name, n_dims=1
    _patch(f, name_end + 4 + 8, struct.pack("<I", 99))  # after n_dims and the one dim
    msg = _error(f, UnknownDtypeError)
    assert "'w'" in msg and "99" in msg
    g = write_gguf(tmp_path / "c.gguf", {"w": ("F32", (4,))})
    _patch(g, 8, struct.pack("<Q", 2**40))  # tensor count
    assert "corrupt" in _error(g)


def test_quant_row_must_be_whole_blocks(tmp_path: Path) -> None:
    f = write_gguf(tmp_path / "t.gguf", {"w": ("Q8_0", (2, 64))})
    data = f.read_bytes()
    dims_at = data.index(b"w\x02\x00\x00\x00") + 5
    _patch(f, dims_at, struct.pack("<Q", 48))  # ne[0] = 48 is not whole blocks of 32
    assert "blocks" in _error(f)


def test_reader_called_directly_on_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ModelFormatError, match="no such file"):
        read_gguf(tmp_path / "nope.gguf")


def test_big_endian_header_is_read(tmp_path: Path) -> None:
    from gguf import GGUFEndian

    w = GGUFWriter(tmp_path / "be.gguf", "llama", endianess=GGUFEndian.BIG)
    w.add_uint32("llama.block_count", 3)
    tensor_data = np.ones((2, 8), dtype=np.float32)
    w.add_tensor("w", tensor_data)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    p = read_model(tmp_path / "be.gguf")
    assert p.tensors[0].shape == (2, 8) and p.weight_bytes == tensor_data.nbytes
    assert p.metadata["gguf_version"] == 3
    assert (tmp_path / "be.gguf").stat().st_size == p.file_bytes
