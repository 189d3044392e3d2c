"""safetensors reader: exact counts from headers, sharded sets and HF folders, and every bad-header case."""

from __future__ import annotations

import json
import math
import pathlib
import resource
import struct
import time
from pathlib import Path

import numpy as np
import pytest

from advisor.errors import ModelFormatError, UnknownDtypeError
from advisor.readers import read_model
from advisor.readers.hf_config import parse_config
from advisor.readers.safetensors_reader import MAX_HEADER_BYTES, read_header, read_safetensors
from tests.builders.safetensors_models import (
    deepseek_like,
    deepseek_v3_config,
    gemma2_config,
    gemma2_like,
    header_bytes,
    llama_folder,
    mixtral_config,
    mixtral_like,
    tiny_llama_folder,
    write_safetensors,
    write_sparse_safetensors,
)
from tests.expect import model_error as _error


def llama_params(n_layers: int, hidden: int, heads: int, kv: int, vocab: int, inter: int, tie: bool) -> int:
    """Parameters of a Llama checkpoint from its config, written out independently of the builder."""
    hd = hidden // heads
    attn = hidden * heads * hd * 2 + hidden * kv * hd * 2  # q, o ; k, v
    per_layer = attn + 3 * hidden * inter + 2 * hidden
    return vocab * hidden * (1 if tie else 2) + n_layers * per_layer + hidden


def test_single_file_counts_bytes_offsets_and_metadata(tmp_path: Path) -> None:
    arrays = {
        "model.layers.3.mlp.up.weight": np.arange(12, dtype=np.float32).reshape(3, 4),
        "b16": np.arange(5, dtype=np.float16),
        "q": np.ones((2, 2), dtype=np.int8),
        "bf": np.arange(7, dtype=np.uint16),
    }
    f = write_safetensors(tmp_path / "weights.safetensors", arrays, {"format": "pt"}, dtypes={"bf": "BF16"})
    p = read_model(f)
    assert p.format == "safetensors"
    assert p.name == "weights"
    assert p.params_by_dtype == {"float32": 12, "float16": 5, "int8": 4, "bfloat16": 7}
    assert p.weight_bytes_by_dtype == {"float32": 48, "float16": 10, "int8": 4, "bfloat16": 14}
    assert (p.n_params, p.weight_bytes) == (28, 76)
    assert p.files == (str(f.absolute()),)
    assert p.file_bytes == f.stat().st_size
    assert p.metadata["format"] == "pt"
    raw = f.read_bytes()
    for t in p.tensors:  # offsets point at each tensor's bytes
        assert t.offset is not None
        assert raw[t.offset:t.offset + t.nbytes] == arrays[t.name].tobytes()
    by_name = {t.name: t for t in p.tensors}
    assert by_name["model.layers.3.mlp.up.weight"].layer == 3
    assert by_name["model.layers.3.mlp.up.weight"].shape == (3, 4)
    assert by_name["q"].layer is None
    assert p.arch is None


def test_hf_folder_single_file_with_config(tmp_path: Path) -> None:
    folder = tiny_llama_folder(tmp_path / "tiny-llama")
    p = read_model(folder)
    expected = llama_params(2, 64, 4, 2, 128, 96, tie=False)
    assert (p.n_params, p.weight_bytes) == (expected, 4 * expected)
    assert p.name == "tiny-llama"
    assert p.path == str(folder)
    assert p.arch is not None and (p.arch.n_layers, p.arch.n_kv_heads, p.arch.head_dim) == (2, 2, 16)
    assert p.metadata["model_type"] == "llama" and p.metadata["architectures"] == ["LlamaForCausalLM"]
    assert p.metadata["torch_dtype"] == "float32"


@pytest.mark.parametrize("with_index", [True, False])
def test_sharded_folder_with_and_without_index(tmp_path: Path, with_index: bool) -> None:
    folder = tiny_llama_folder(tmp_path / "m", n_shards=3, with_index=with_index)
    p = read_model(folder)
    expected = llama_params(2, 64, 4, 2, 128, 96, tie=False)
    assert (p.n_params, p.weight_bytes) == (expected, 4 * expected)
    assert [Path(f).name for f in p.files] == [f"model-0000{i}-of-00003.safetensors" for i in (1, 2, 3)]
    assert len({t.file for t in p.tensors}) == 3
    assert p.file_bytes == sum(Path(f).stat().st_size for f in p.files)


def test_index_file_opened_directly_and_one_shard_opens_the_set(tmp_path: Path) -> None:
    folder = tiny_llama_folder(tmp_path / "m", n_shards=3)
    whole = read_model(folder / "model.safetensors.index.json")
    assert whole.n_params == llama_params(2, 64, 4, 2, 128, 96, tie=False)
    one = read_model(folder / "model-00002-of-00003.safetensors")
    assert (one.n_params, one.weight_bytes, len(one.files)) == (whole.n_params, whole.weight_bytes, 3)
    assert any("read the whole set of 3" in n for n in one.notes)
    assert one.arch is not None and one.path.endswith("model-00002-of-00003.safetensors")


def test_a_shard_without_an_index_opens_its_siblings(tmp_path: Path) -> None:
    folder = tiny_llama_folder(tmp_path / "m", n_shards=3, with_index=False)
    one = read_model(folder / "model-00001-of-00003.safetensors")
    assert one.n_params == llama_params(2, 64, 4, 2, 128, 96, tie=False) and len(one.files) == 3
    assert any("whole set of 3 shards beside it" in n for n in one.notes)


@pytest.mark.parametrize("with_index", [True, False])
def test_a_shard_whose_siblings_are_gone_is_a_partial_model_not_a_verdict(tmp_path: Path, with_index: bool) -> None:
    folder = tiny_llama_folder(tmp_path / "m", n_shards=3, with_index=with_index)
    (folder / "model-00003-of-00003.safetensors").unlink()
    with pytest.raises(ModelFormatError, match=r"partial model: one of 3 shards.*model-00003-of-00003"):
        read_model(folder / "model-00001-of-00003.safetensors")


def test_a_shard_name_announcing_absurdly_many_shards_is_refused_at_once(tmp_path: Path) -> None:
    path = tmp_path / "model-00001-of-999999999999.safetensors"
    write_safetensors(path, {"x": np.zeros(4, np.float32)})
    with pytest.raises(ModelFormatError, match="more than any model has"):
        read_model(path)


def test_index_ignores_unlisted_safetensors_and_checks_total_size(tmp_path: Path) -> None:
    folder = tiny_llama_folder(tmp_path / "m", n_shards=2)
    write_safetensors(folder / "consolidated.safetensors", {"x": np.zeros(10, np.float32)})
    index = json.loads((folder / "model.safetensors.index.json").read_text())
    index["metadata"]["total_size"] += 1
    (folder / "model.safetensors.index.json").write_text(json.dumps(index))
    p = read_model(folder)
    assert p.n_params == llama_params(2, 64, 4, 2, 128, 96, tie=False)
    assert any("consolidated.safetensors" in n for n in p.notes)
    assert any("total_size" in n for n in p.notes)


def test_llama3_70b_shaped_sparse_folder(tmp_path: Path) -> None:
    folder = llama_folder(tmp_path / "Meta-Llama-3-70B")
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    start = time.perf_counter()
    p = read_model(folder)
    print(f"70B-shaped folder read in {time.perf_counter() - start:.3f} s")
    expected = llama_params(80, 8192, 64, 8, 128256, 28672, tie=False)
    assert expected == 70_553_706_496
    assert (p.n_params, p.weight_bytes) == (expected, 2 * expected)
    assert p.weight_bytes_by_dtype == {"bfloat16": 2 * expected}
    assert len(p.files) == 30 and len(p.tensors) == 723
    assert p.file_bytes == sum(Path(f).stat().st_size for f in p.files) > 141e9
    assert p.arch is not None and (p.arch.n_layers, p.arch.n_kv_heads, p.arch.vocab_size) == (80, 8, 128256)
    # 141 GB of (sparse) data: reading any of it would show in the peak RSS
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - rss_before < 200 * 1024


def test_header_read_reads_only_the_header(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    f = write_safetensors(tmp_path / "w.safetensors", {"w": np.zeros((256, 256), np.float32)})
    header_len = struct.unpack("<Q", f.read_bytes()[:8])[0]
    read_sizes: list[int] = []
    real_open = pathlib.Path.open

    def spy_open(self: Path, *args: object, **kwargs: object):  # type: ignore[no-untyped-def]
        fh = real_open(self, *args, **kwargs)  # type: ignore[arg-type]
        real_read = fh.read

        def read(n: int = -1) -> bytes:
            read_sizes.append(n)
            return real_read(n)

        fh.read = read
        return fh

    monkeypatch.setattr(pathlib.Path, "open", spy_open)
    read_header(f)
    assert read_sizes == [8, header_len]


def test_family_folders(tmp_path: Path) -> None:
    mix = read_model(mixtral_like(tmp_path / "mixtral"))
    assert mix.n_params == 46_702_792_704  # Mixtral-8x7B's published total
    assert mix.arch is not None and (mix.arch.n_experts, mix.arch.n_experts_per_token) == (8, 2)
    gem = read_model(gemma2_like(tmp_path / "gemma2"))
    assert gem.arch is not None and gem.arch.tie_word_embeddings and gem.arch.sliding_window == 4096
    assert not any(t.name == "lm_head.weight" for t in gem.tensors)
    ds = read_model(deepseek_like(tmp_path / "ds"))
    assert ds.arch is not None and ds.arch.is_mla and ds.arch.n_experts == 8


def test_quantized_config_is_summarised_with_a_note(tmp_path: Path) -> None:
    folder = tiny_llama_folder(tmp_path / "q")
    cfg = json.loads((folder / "config.json").read_text())
    cfg["quantization_config"] = {"quant_method": "gptq", "bits": 4, "group_size": 128}
    (folder / "config.json").write_text(json.dumps(cfg))
    p = read_model(folder)
    assert p.metadata["quantization"] == "gptq 4-bit, group 128"
    assert any("quantized" in n for n in p.notes)


def test_hf_cache_snapshot_is_named_after_the_repo(tmp_path: Path) -> None:
    snap = tmp_path / "models--org--Tiny-Model" / "snapshots" / ("a" * 40)
    p = read_model(tiny_llama_folder(snap))
    assert p.name == "org/Tiny-Model"


def test_folder_without_config_notes_unknown_architecture(tmp_path: Path) -> None:
    p = read_model(tiny_llama_folder(tmp_path / "m", with_config=False))
    assert p.arch is None
    assert any("no config.json" in n for n in p.notes)


# --- bad input ------------------------------------------------------------------------------


def _raw_file(tmp_path: Path, data: bytes, name: str = "bad.safetensors") -> Path:
    f = tmp_path / name
    f.write_bytes(data)
    return f


def test_missing_shard_is_named(tmp_path: Path) -> None:
    folder = tiny_llama_folder(tmp_path / "m", n_shards=3)
    (folder / "model-00002-of-00003.safetensors").unlink()
    assert "missing shard model-00002-of-00003.safetensors" in _error(folder).replace(str(folder), "")


def test_too_short_and_truncated_header(tmp_path: Path) -> None:
    assert "too short" in _error(_raw_file(tmp_path, b"\x01\x02\x03"))
    body = b'{"a": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]}}'
    cut = struct.pack("<Q", len(body)) + body[:20]
    assert "past the end of the file" in _error(_raw_file(tmp_path, cut))


def test_header_length_over_limit(tmp_path: Path) -> None:
    f = tmp_path / "huge.safetensors"
    f.write_bytes(struct.pack("<Q", MAX_HEADER_BYTES + 1) + b"{")
    import os

    os.truncate(f, MAX_HEADER_BYTES + 100)  # the file is big enough: the limit itself is the problem
    assert "100 MB" in _error(f)
    assert "100 MB" in _error(_raw_file(tmp_path, b"\xff" * 8 + b"{}", "neg.safetensors"))  # -1 as i64


@pytest.mark.parametrize("body", [b"{not json at all}", b"[1, 2, 3]", b"\xff\xfe{}", b"  hello "])
def test_garbage_header(tmp_path: Path, body: bytes) -> None:
    msg = _error(_raw_file(tmp_path, struct.pack("<Q", len(body)) + body))
    assert "JSON" in msg


def test_offsets_past_end_of_file(tmp_path: Path) -> None:
    f = write_safetensors(tmp_path / "w.safetensors", {"a": np.zeros(4, np.float32), "b": np.zeros(8, np.float32)})
    data = f.read_bytes()
    f.write_bytes(data[:-4])  # a truncated download
    assert "'b'" in _error(f) and "past the end" in _error(f)


@pytest.mark.parametrize(
    ("entry", "needle"),
    [
        ({"dtype": "F32", "shape": [2], "data_offsets": [0, 4]}, "do not match"),
        ({"dtype": "F32", "shape": [1], "data_offsets": [8, 4]}, "do not match"),
        ({"dtype": "F32", "shape": [-1], "data_offsets": [0, 4]}, "shape"),
        ({"dtype": "F32", "shape": [1], "data_offsets": [0]}, "data_offsets"),
        ({"shape": [1], "data_offsets": [0, 4]}, "no dtype"),
        ("nope", "not a JSON object"),
    ],
)
def test_inconsistent_entries(tmp_path: Path, entry: object, needle: str) -> None:
    f = _raw_file(tmp_path, header_bytes({"t": entry}) + b"\0" * 16)
    assert needle in _error(f)


def test_overlapping_tensors(tmp_path: Path) -> None:
    entries = {"a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]},
               "b": {"dtype": "F32", "shape": [2], "data_offsets": [4, 12]}}
    assert "overlapping" in _error(_raw_file(tmp_path, header_bytes(entries) + b"\0" * 16))


def test_unknown_dtype(tmp_path: Path) -> None:
    entries = {"w": {"dtype": "F6_E2M3", "shape": [4], "data_offsets": [0, 3]}}
    msg = _error(_raw_file(tmp_path, header_bytes(entries) + b"\0" * 8), UnknownDtypeError)
    assert "'w'" in msg and "F6_E2M3" in msg


def test_malformed_config_and_index(tmp_path: Path) -> None:
    folder = tiny_llama_folder(tmp_path / "m")
    (folder / "config.json").write_text("{ not json")
    with pytest.raises(ModelFormatError, match=r"config\.json"):
        read_model(folder)
    (folder / "config.json").write_text(json.dumps({"model_type": "llama", "num_hidden_layers": "many",
                                                    "hidden_size": 8, "num_attention_heads": 2,
                                                    "vocab_size": 4}))
    with pytest.raises(ModelFormatError, match=r"config\.json.*num_hidden_layers"):
        read_model(folder)
    sharded = tiny_llama_folder(tmp_path / "s", n_shards=2)
    (sharded / "model.safetensors.index.json").write_text(json.dumps({"weight_map": []}))
    with pytest.raises(ModelFormatError, match="weight_map"):
        read_model(sharded)


def test_reader_called_directly_on_missing_path(tmp_path: Path) -> None:
    with pytest.raises(ModelFormatError, match="no such file"):
        read_safetensors(tmp_path / "nope.safetensors")


def test_sparse_writer_matches_real_writer_layout(tmp_path: Path) -> None:
    real = write_safetensors(tmp_path / "r.safetensors", {"a": np.zeros((3, 5), np.float16)})
    sparse = write_sparse_safetensors(tmp_path / "s.safetensors", {"a": ("F16", (3, 5))})
    assert real.read_bytes() == sparse.read_bytes()
    assert read_model(sparse).weight_bytes == 2 * math.prod((3, 5))


# --- config.json → LlmArchitecture ------------------------------------------------------------


def _cfg(**kw: object) -> dict[str, object]:
    base: dict[str, object] = {"model_type": "llama", "num_hidden_layers": 32, "hidden_size": 4096,
                               "num_attention_heads": 32, "vocab_size": 32000}
    base.update(kw)
    return base


def test_config_llama3_gqa_and_defaults() -> None:
    a = parse_config(_cfg(num_key_value_heads=8, vocab_size=128256, intermediate_size=14336,
                          max_position_embeddings=8192, torch_dtype="bfloat16", tie_word_embeddings=False))
    assert a is not None
    assert (a.n_kv_heads, a.head_dim, a.vocab_size, a.max_positions) == (8, 128, 128256, 8192)
    assert (a.intermediate_size, a.torch_dtype, a.tie_word_embeddings) == (14336, "bfloat16", False)
    plain = parse_config(_cfg(head_dim=None, dtype="float16"))
    assert plain is not None and (plain.n_kv_heads, plain.head_dim, plain.torch_dtype) == (32, 128, "float16")
    assert not plain.is_moe and not plain.is_mla and plain.sliding_window is None


def test_config_mistral_every_layer_slides() -> None:
    a = parse_config(_cfg(model_type="mistral", num_key_value_heads=8, sliding_window=4096))
    assert a is not None and (a.sliding_window, a.layer_types) == (4096, ())


def test_config_qwen2_sliding_switch_and_max_window_layers() -> None:
    off = parse_config(_cfg(model_type="qwen2", sliding_window=32768, use_sliding_window=False))
    assert off is not None and off.sliding_window is None
    none_slide = parse_config(_cfg(model_type="qwen2", num_hidden_layers=4, sliding_window=4096,
                                   use_sliding_window=True, max_window_layers=4))
    assert none_slide is not None and none_slide.sliding_window is None
    half = parse_config(_cfg(model_type="qwen2", num_hidden_layers=4, sliding_window=4096,
                             use_sliding_window=True, max_window_layers=2))
    assert half is not None and half.layer_types == ("full_attention",) * 2 + ("sliding_attention",) * 2


def test_config_qwen3_explicit_layer_types() -> None:
    kinds = ["sliding_attention", "full_attention", "sliding_attention"]
    a = parse_config(_cfg(model_type="qwen3", num_hidden_layers=3, head_dim=128, sliding_window=4096,
                          layer_types=kinds))
    assert a is not None and a.layer_types == tuple(kinds) and a.head_dim == 128


def test_config_gemma_family() -> None:
    g1 = parse_config(_cfg(model_type="gemma", num_hidden_layers=28, hidden_size=3072, num_attention_heads=16,
                           num_key_value_heads=16, head_dim=256, vocab_size=256000))
    assert g1 is not None and g1.head_dim == 256 and g1.tie_word_embeddings  # Gemma ties by default
    g2 = parse_config(gemma2_config())
    assert g2 is not None and g2.sliding_window == 4096 and len(g2.layer_types) == 42
    assert g2.layer_types[:2] == ("sliding_attention", "full_attention")
    assert g2.layer_types.count("full_attention") == 21
    g3 = parse_config({"model_type": "gemma3", "torch_dtype": "bfloat16",
                       "architectures": ["Gemma3ForConditionalGeneration"],
                       "vision_config": {"model_type": "siglip_vision_model", "hidden_size": 1152},
                       "text_config": {"model_type": "gemma3_text", "num_hidden_layers": 12, "hidden_size": 2560,
                                       "num_attention_heads": 8, "num_key_value_heads": 4, "head_dim": 256,
                                       "vocab_size": 262208, "sliding_window": 1024,
                                       "sliding_window_pattern": 6}})
    assert g3 is not None and g3.model_type == "gemma3_text" and g3.torch_dtype == "bfloat16"
    assert [i for i, k in enumerate(g3.layer_types) if k == "full_attention"] == [5, 11]
    g3_default = parse_config({"model_type": "gemma3_text", "num_hidden_layers": 6, "hidden_size": 640,
                               "num_attention_heads": 4, "vocab_size": 1000, "sliding_window": 512})
    assert g3_default is not None and g3_default.layer_types[-1] == "full_attention"


def test_config_phi3_gpt2_neox() -> None:
    phi = parse_config(_cfg(model_type="phi3", hidden_size=3072, sliding_window=2047, vocab_size=32064))
    assert phi is not None and phi.sliding_window == 2047 and phi.head_dim == 96
    gpt2 = parse_config({"model_type": "gpt2", "n_layer": 12, "n_head": 12, "n_embd": 768, "n_positions": 1024,
                         "vocab_size": 50257, "n_inner": None})
    assert gpt2 is not None
    assert (gpt2.n_layers, gpt2.n_heads, gpt2.hidden_size, gpt2.max_positions) == (12, 12, 768, 1024)
    assert gpt2.intermediate_size == 3072 and gpt2.tie_word_embeddings and gpt2.n_kv_heads == 12
    neox = parse_config({"model_type": "gpt_neox", "num_hidden_layers": 16, "hidden_size": 2048,
                         "num_attention_heads": 8, "intermediate_size": 8192, "vocab_size": 50304,
                         "max_position_embeddings": 2048})
    assert neox is not None and (neox.head_dim, neox.n_kv_heads, neox.tie_word_embeddings) == (256, 8, False)


def test_config_falcon_variants() -> None:
    f7 = parse_config({"model_type": "falcon", "num_hidden_layers": 32, "hidden_size": 4544,
                       "num_attention_heads": 71, "vocab_size": 65024, "multi_query": True})
    assert f7 is not None and (f7.n_kv_heads, f7.head_dim, f7.intermediate_size) == (1, 64, 4 * 4544)
    f40 = parse_config({"model_type": "falcon", "num_hidden_layers": 60, "hidden_size": 8192,
                        "num_attention_heads": 128, "num_kv_heads": 8, "new_decoder_architecture": True,
                        "vocab_size": 65024})
    assert f40 is not None and f40.n_kv_heads == 8
    rw = parse_config({"model_type": "falcon", "n_layer": 60, "hidden_size": 8192, "n_head": 128,
                       "n_head_kv": 8, "vocab_size": 65024, "new_decoder_architecture": True})
    assert rw is not None and (rw.n_layers, rw.n_kv_heads) == (60, 8)


def test_config_moe_and_mla() -> None:
    mix = parse_config(mixtral_config())
    assert mix is not None and mix.is_moe and (mix.n_experts, mix.n_experts_per_token) == (8, 2)
    assert mix.sliding_window is None
    qmoe = parse_config(_cfg(model_type="qwen2_moe", num_experts=60, num_experts_per_tok=4))
    assert qmoe is not None and (qmoe.n_experts, qmoe.n_experts_per_token) == (60, 4)
    ds = parse_config(deepseek_v3_config())
    assert ds is not None and ds.is_mla and ds.is_moe
    assert (ds.kv_lora_rank, ds.qk_rope_head_dim, ds.v_head_dim, ds.head_dim) == (512, 64, 128, 192)
    assert (ds.n_experts, ds.n_experts_per_token, ds.n_layers) == (256, 8, 61)


@pytest.mark.parametrize(
    "cfg",
    [
        {"model_type": "bert", "num_hidden_layers": 12, "hidden_size": 768, "num_attention_heads": 12,
         "vocab_size": 30522},
        {"model_type": "vit", "num_hidden_layers": 12, "hidden_size": 768, "num_attention_heads": 12},
        {"model_type": "clip", "text_config": {"num_hidden_layers": 12, "hidden_size": 512,
                                               "num_attention_heads": 8, "vocab_size": 49408}},
        {"model_type": "whisper", "d_model": 384, "encoder_layers": 4, "decoder_layers": 4,
         "is_encoder_decoder": True, "vocab_size": 51865},
        {"model_type": "t5", "d_model": 512, "num_layers": 6, "num_heads": 8, "vocab_size": 32128,
         "is_encoder_decoder": True},
        {"model_type": "resnet"},
    ],
)
def test_config_not_a_decoder_llm(cfg: dict[str, object]) -> None:
    assert parse_config(cfg) is None


def test_config_bad_value_names_the_key() -> None:
    with pytest.raises(ModelFormatError, match="num_attention_heads"):
        parse_config(_cfg(num_attention_heads=-4), source="x/config.json")
    with pytest.raises(ModelFormatError, match="positive"):
        parse_config(_cfg(num_attention_heads=0))


def test_config_folder_not_llm_gets_a_note(tmp_path: Path) -> None:
    folder = tiny_llama_folder(tmp_path / "bert")
    (folder / "config.json").write_text(json.dumps({"model_type": "bert", "hidden_size": 64}))
    p = read_model(folder)
    assert p.arch is None and any("bert" in n and "not a decoder" in n for n in p.notes)
