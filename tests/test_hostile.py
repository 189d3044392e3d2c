"""Hostile and broken files: each case is a clean one-line error (or a correct result), quickly."""

from __future__ import annotations

import json
import os
import struct
from pathlib import Path

import pytest
from onnx import TensorProto, helper

from advisor.errors import AdvisorError, ModelFormatError, escape_controls
from advisor.readers import read_model
from advisor.readers.limits import inside_store, json_depth_exceeds
from tests.builders.gguf_models import tiny_llama_gguf
from tests.builders.safetensors_models import tiny_llama_folder


def _st_file(path: Path, header: bytes) -> Path:
    path.write_bytes(struct.pack("<Q", len(header)) + header)
    return path


def _one_line_error(path: Path) -> str:
    with pytest.raises(AdvisorError) as info:
        read_model(path)
    text = str(info.value)
    assert "\n" not in text
    return text


def test_deep_json_in_safetensors_header(tmp_path: Path) -> None:
    deep = b'{"a": ' + b"[" * 100_000 + b"]" * 100_000 + b"}"
    assert "deeper than" in _one_line_error(_st_file(tmp_path / "m.safetensors", deep))


def test_deep_json_in_index_and_config(tmp_path: Path) -> None:
    (tmp_path / "model.safetensors.index.json").write_text('{"weight_map": ' + "[" * 100_000 + "]" * 100_000 + "}")
    assert "deeper than" in _one_line_error(tmp_path)
    cfg = tmp_path / "cfg"
    cfg.mkdir()
    _st_file(cfg / "model.safetensors", b'{"w": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]}}    ')
    with (cfg / "model.safetensors").open("ab") as f:
        f.write(b"\0" * 4)
    (cfg / "config.json").write_text('{"x": ' + "[" * 100_000 + "]" * 100_000 + "}")
    assert "deeper than" in _one_line_error(cfg)


def test_depth_check_counts_brackets_not_strings() -> None:
    assert not json_depth_exceeds(b'{"a": "' + b"[" * 1000 + b'"}')
    assert json_depth_exceeds(b"[" * 65 + b"]" * 65)
    assert not json_depth_exceeds(b"[" * 64 + b"]" * 64)


@pytest.mark.parametrize("value", ["Infinity", "NaN", "1000000000000", str(2**63), "1e308"])
def test_absurd_config_values(tmp_path: Path, value: str) -> None:
    _st_file(tmp_path / "model.safetensors", b'{"w": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]}}    ')
    with (tmp_path / "model.safetensors").open("ab") as f:
        f.write(b"\0" * 4)
    key = "hidden_size" if value == "1e308" else "num_hidden_layers"
    base = {"model_type": "llama", "num_hidden_layers": 2, "hidden_size": 64, "num_attention_heads": 4,
            "vocab_size": 100}
    text = json.dumps(base).replace(f'"{key}": {base[key]}', f'"{key}": {value}')
    (tmp_path / "config.json").write_text(text)
    assert key in _one_line_error(tmp_path)


def test_index_that_is_a_fifo_or_a_device(tmp_path: Path) -> None:
    (tmp_path / "model-00001-of-00001.safetensors").write_bytes(b"")
    os.mkfifo(tmp_path / "model.safetensors.index.json")
    assert "not a regular file" in _one_line_error(tmp_path)
    dev = tmp_path / "dev"
    dev.mkdir()
    (dev / "model-00001-of-00001.safetensors").write_bytes(b"")
    (dev / "model.safetensors.index.json").symlink_to("/dev/zero")
    assert "not a regular file" in _one_line_error(dev)


def _onnx_with(path: Path, init: TensorProto) -> Path:
    graph = helper.make_graph([helper.make_node("Identity", ["w"], ["y"])], "g", [],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)], [init])
    model = helper.make_model(graph)
    model.ir_version = 10
    path.write_bytes(model.SerializeToString())
    return path


def test_onnx_huge_dims_without_data(tmp_path: Path) -> None:
    t = TensorProto(name="w", data_type=TensorProto.FLOAT, dims=[2**62, 2**62])
    assert "overflow int64" in _one_line_error(_onnx_with(tmp_path / "m.onnx", t))
    t = TensorProto(name="w", data_type=TensorProto.FLOAT, dims=[1000, 1000])
    assert "no data" in _one_line_error(_onnx_with(tmp_path / "n.onnx", t))


def test_onnx_external_location_with_nul(tmp_path: Path) -> None:
    t = TensorProto(name="w", data_type=TensorProto.FLOAT, dims=[4], data_location=TensorProto.EXTERNAL)
    t.external_data.add(key="location", value="w\x00.bin")
    assert "not a file name" in _one_line_error(_onnx_with(tmp_path / "m.onnx", t))


def test_onnx_external_data_in_hf_cache_snapshot(tmp_path: Path) -> None:
    repo = tmp_path / "models--org--net"
    snap = repo / "snapshots" / ("a" * 40)
    blobs = repo / "blobs"
    snap.mkdir(parents=True)
    blobs.mkdir()
    (blobs / "b1").write_bytes(b"\0" * 16)
    (snap / "w.bin").symlink_to(Path("../../blobs/b1"))
    t = TensorProto(name="w", data_type=TensorProto.FLOAT, dims=[4], data_location=TensorProto.EXTERNAL)
    t.external_data.add(key="location", value="w.bin")
    profile = read_model(_onnx_with(snap / "m.onnx", t))
    assert profile.weight_bytes == 16
    assert inside_store(Path("w.bin"), snap)
    outside = tmp_path / "elsewhere"
    outside.write_bytes(b"\0" * 16)
    (snap / "x.bin").symlink_to(outside)
    assert not inside_store(Path("x.bin"), snap)
    assert not inside_store(Path("../../blobs/b1"), snap)  # climbing out by name is refused


def test_control_characters_in_names_are_escaped() -> None:
    err = ModelFormatError("bad\nthing", "/tmp/a\nb\x1b[31m.onnx")
    assert str(err) == "/tmp/a\\nb\\x1b[31m.onnx: bad thing"
    assert escape_controls("naïve") == "naïve"


def test_onnx_name_not_utf8(tmp_path: Path) -> None:
    model = helper.make_model(helper.make_graph([helper.make_node("Identity", ["x"], ["y"])], "g",
                                                [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1])],
                                                [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1])]))
    model.ir_version = 10
    data = model.SerializeToString().replace(b"\x12\x01y", b"\x12\x01\xf8")
    (tmp_path / "m.onnx").write_bytes(data)
    assert "UTF-8" in _one_line_error(tmp_path / "m.onnx")


def test_gguf_block_count_beyond_its_tensors(tmp_path: Path) -> None:
    path = tiny_llama_gguf(tmp_path / "m.gguf", extra={"{arch}.block_count": 8000})
    text = _one_line_error(path)
    assert "m.gguf" in text and "block_count is 8000" in text and "blk.1" in text


def test_hf_config_counts_more_layers_than_the_weights(tmp_path: Path) -> None:
    folder = tiny_llama_folder(tmp_path / "m")
    cfg = json.loads((folder / "config.json").read_text())
    (folder / "config.json").write_text(json.dumps({**cfg, "num_hidden_layers": 10000}))
    text = _one_line_error(folder)
    assert "config.json" in text and "num_hidden_layers is 10000" in text and "layer 1" in text
    # one shard of a sharded set, read alone, holds only some layers: not an error
    sharded = tiny_llama_folder(tmp_path / "s", n_layers=4, n_shards=2)
    first = sorted(sharded.glob("*.safetensors"))[0]
    assert read_model(first).arch is not None
