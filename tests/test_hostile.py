"""Hostile and broken files: each case is a clean one-line error (or a correct result), quickly."""

from __future__ import annotations

import json
import os
import struct
from pathlib import Path

import pytest
from onnx import TensorProto, helper

from advisor.analysis import analyze, resolve_target
from advisor.errors import AdvisorError, ModelFormatError, escape_controls
from advisor.estimator.types import Workload
from advisor.readers import read_model
from advisor.readers.limits import inside_store, json_depth_exceeds
from advisor.readers.onnx_wire import encode_len_field, encode_varint
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


def test_depth_check_agrees_below_and_above_the_size_it_hands_to_numpy() -> None:
    from advisor.readers.limits import _LOOP_BRACKETS

    for pairs in (_LOOP_BRACKETS // 4, _LOOP_BRACKETS):  # a loop under the bound, numpy over it
        flat = b"[" + b"[1]," * pairs + b"[]]"
        assert not json_depth_exceeds(flat)
        assert json_depth_exceeds(flat[:-1] + b"[" * 64 + b"]" * 65)


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
    # one shard of a sharded set opens the whole set, which holds every layer: not an error
    sharded = tiny_llama_folder(tmp_path / "s", n_layers=4, n_shards=2)
    first = sorted(sharded.glob("*.safetensors"))[0]
    assert read_model(first).arch is not None and len(read_model(first).files) == 2


@pytest.mark.parametrize(("name", "count", "expect"), [
    ("m-00001-of-00002.gguf", 10**9, "split.count 1000000000 does not match"),
    ("m.gguf", 10**9, "its name is not"),
    ("m-00001-of-99999.gguf", 99_999, "missing split file m-00002-of-99999.gguf"),
])
def test_gguf_split_count_is_checked_before_any_list_is_built(tmp_path: Path, name: str, count: int,
                                                              expect: str) -> None:
    path = tiny_llama_gguf(tmp_path / name, extra={"split.count": count, "split.no": 0})
    assert expect in _one_line_error(path)


def _deep_subgraph_bytes(levels: int) -> bytes:
    """A GraphProto whose node holds a graph attribute whose node holds one, ``levels`` deep.

    Encoded by hand, each level's prefix computed from the inner length, so the file is a few
    bytes per level (building it with onnx.helper copies every inner graph into each outer one).
    """
    def head(number: int, payload_len: int) -> bytes:
        return encode_varint(number << 3 | 2) + encode_varint(payload_len)

    inner = 0  # the innermost graph is empty
    prefixes: list[bytes] = []
    for _ in range(levels):
        attr_head = head(1, 1) + b"b" + encode_varint(20 << 3) + encode_varint(5)  # name "b", type GRAPH
        attr_len = len(attr_head) + len(head(6, inner)) + inner
        node_head = head(4, 2) + b"If"  # op_type
        node_len = len(node_head) + len(head(5, attr_len)) + attr_len
        prefixes.append(head(1, node_len) + node_head + head(5, attr_len) + attr_head + head(6, inner))
        inner = len(head(1, node_len)) + node_len
    body = b"".join(reversed(prefixes))
    assert len(body) == inner
    return body


@pytest.mark.parametrize("where", ["graph", "training_info"])
def test_onnx_subgraphs_nested_100000_deep(tmp_path: Path, where: str) -> None:
    body = _deep_subgraph_bytes(100_000)
    body_len = len(body)
    opset = encode_len_field(8, encode_varint(2 << 3) + encode_varint(17))
    if where == "graph":
        model = encode_varint(1 << 3) + encode_varint(10) + opset + encode_varint(7 << 3 | 2) + encode_varint(body_len)
    else:  # TrainingInfoProto.algorithm (field 2) inside ModelProto.training_info (field 20)
        algo = encode_varint(2 << 3 | 2) + encode_varint(body_len)
        model = (encode_varint(1 << 3) + encode_varint(10) + opset + encode_len_field(7, b"")
                 + encode_varint(20 << 3 | 2) + encode_varint(len(algo) + body_len) + algo)
    path = tmp_path / "deep.onnx"
    path.write_bytes(model + body)
    with pytest.raises(AdvisorError) as info:  # the reader skips training_info; the graph walk does not
        analyze(read_model(path), resolve_target("rpi5-8gb", None), Workload())
    assert "nested deeper than 64 levels" in str(info.value) and "\n" not in str(info.value)


def test_config_with_a_huge_flat_list_of_objects(tmp_path: Path) -> None:
    # bench/fuzz.py found this one hanging (safetensors #24591): the depth check removed one level
    # of brackets per pass over the whole text; it now takes one running count
    folder = tiny_llama_folder(tmp_path / "m")
    cfg = json.loads((folder / "config.json").read_text())
    (folder / "config.json").write_text(json.dumps({**cfg, "architectures": [{}] * 200_000}))
    assert read_model(folder).arch is not None


def test_a_shard_named_as_one_of_a_set_is_not_judged_alone(tmp_path: Path) -> None:
    sharded = tiny_llama_folder(tmp_path / "s", n_layers=4, n_shards=2, with_index=False)
    first = sorted(sharded.glob("*.safetensors"))[0]
    assert first.name.endswith("-of-00002.safetensors")
    assert read_model(first).arch is not None
