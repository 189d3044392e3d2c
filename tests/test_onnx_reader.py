"""The ONNX reader: exact weight counts without loading weights, refusals, and skeletons."""

from __future__ import annotations

import builtins
import os
import pathlib
import tracemalloc
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

from advisor.errors import ModelFormatError
from advisor.readers.onnx_reader import read_onnx
from advisor.readers.onnx_skeleton import load_skeleton
from tests.builders import onnx_models as om

# -- an independent reference: onnx.load + numpy_helper over every stored tensor ---------------


def _reference(path: Path) -> tuple[dict[str, int], dict[str, int], set[str]]:
    """params and bytes by dtype, and names, summed over the fully loaded model."""
    model = onnx.load(str(path))
    params: Counter[str] = Counter()
    nbytes: Counter[str] = Counter()
    names: set[str] = set()

    def add(t: TensorProto, key: str, scope: set[str]) -> None:
        if key in scope:
            return
        scope.add(key)
        names.add(key)
        arr = numpy_helper.to_array(t)
        dt = arr.dtype.name
        params[dt] += arr.size
        nbytes[dt] += (arr.size + 1) // 2 if dt in ("int4", "uint4") else arr.nbytes

    def graph(g: onnx.GraphProto) -> None:
        scope: set[str] = set()
        for t in g.initializer:
            add(t, t.name, scope)
        for sp in g.sparse_initializer:
            add(sp.values, sp.values.name, scope)
            add(sp.indices, sp.values.name + ".indices", scope)
        for node in g.node:
            for a in node.attribute:
                if a.type == onnx.AttributeProto.TENSOR:
                    add(a.t, node.output[0] if node.op_type == "Constant" else a.t.name, scope)
                for sub in [a.g] if a.type == onnx.AttributeProto.GRAPH else list(a.graphs):
                    graph(sub)

    graph(model.graph)
    return dict(params), dict(nbytes), names


@pytest.fixture(params=sorted(om.ALL_BUILDERS))
def built(request: pytest.FixtureRequest, tmp_path: Path) -> Path:
    return om.ALL_BUILDERS[request.param](tmp_path / f"{request.param}.onnx")


def test_counts_match_full_load(built: Path) -> None:
    params, nbytes, names = _reference(built)
    prof = read_onnx(built)
    assert prof.format == "onnx"
    assert prof.params_by_dtype == params
    assert prof.weight_bytes_by_dtype == nbytes
    assert prof.n_params == sum(params.values()) > 0
    assert prof.weight_bytes == sum(nbytes.values())
    assert {t.name for t in prof.tensors} == names
    assert prof.file_bytes == sum(Path(f).stat().st_size for f in prof.files)
    assert prof.ir_version == 10 and prof.opset in (17, 21)
    assert prof.producer == "advisor-tests 1.0"


def test_builders_run_in_onnxruntime(built: Path) -> None:
    sess = ort.InferenceSession(str(built), providers=["CPUExecutionProvider"])
    feeds: dict[str, np.ndarray] = {}
    for i in sess.get_inputs():
        if i.type == "tensor(int64)":
            feeds[i.name] = np.array(2, dtype=np.int64)
        else:
            shape = [d if isinstance(d, int) else 8 for d in i.shape]
            feeds[i.name] = np.ones(shape, dtype=np.float16 if "float16" in i.type else np.float32)
    (out, *_) = sess.run(None, feeds)
    assert np.isfinite(out).all()


def test_embedded_offsets_point_at_the_data(tmp_path: Path) -> None:
    path = om.tiny_transformer_block(tmp_path / "t.onnx")
    blob = path.read_bytes()
    model = onnx.load(str(path))
    prof = read_onnx(path)
    by_name = {t.name: t for t in prof.tensors}
    for init in model.graph.initializer:
        info = by_name[init.name]
        assert info.offset is not None and info.file == str(path)
        assert blob[info.offset:info.offset + info.nbytes] == numpy_helper.to_array(init).tobytes()
    assert by_name["layers.0.q.weight"].layer == 0
    assert by_name["layers.0.q.weight"].consumers == ("MatMul",)
    assert by_name["heads_shape"].consumers == ("Reshape",)


def test_constant_node_weights_counted(tmp_path: Path) -> None:
    prof = read_onnx(om.constant_mlp(tmp_path / "paddle.onnx", hidden=48, layers=3))
    assert prof.n_params == 32 * 48 + 48 + 48 * 48 + 48 + 48 * 10 + 10
    assert prof.op_histogram["Constant"] == 6
    w = next(t for t in prof.tensors if t.name == "layers.1.weight")
    assert w.shape == (48, 48) and w.consumers == ("MatMul",) and w.layer == 1


def test_subgraph_weights_and_ops_counted(tmp_path: Path) -> None:
    prof = read_onnx(om.control_flow(tmp_path / "cf.onnx", width=8))
    names = {t.name for t in prof.tensors}
    assert {"then.weight", "else.weight", "loop.weight", "zero"} == names
    assert prof.n_params == 3 * 64 + 1
    assert prof.op_histogram["MatMul"] == 3  # one per branch, one in the loop body
    assert prof.op_histogram["Tanh"] == 1 and prof.op_histogram["If"] == 1
    assert [s.name for s in prof.inputs] == ["x", "n"]


def test_shared_initializer_counted_once(tmp_path: Path) -> None:
    prof = read_onnx(om.shared_initializer(tmp_path / "s.onnx", width=16))
    assert prof.n_params == 256 and len(prof.tensors) == 1
    assert prof.tensors[0].consumers == ("MatMul",)
    assert prof.op_histogram["MatMul"] == 2


def test_duplicate_initializer_name_counted_once_per_scope(tmp_path: Path) -> None:
    model = onnx.load(str(om.shared_initializer(tmp_path / "s.onnx", width=16)))
    model.graph.initializer.append(model.graph.initializer[0])
    dup = tmp_path / "dup.onnx"
    dup.write_bytes(model.SerializeToString())
    assert read_onnx(dup).n_params == 256


def test_sparse_initializer_values_and_indices(tmp_path: Path) -> None:
    model = onnx.load(str(om.shared_initializer(tmp_path / "s.onnx", width=4)))
    values = numpy_helper.from_array(np.arange(3, dtype=np.float32), "sp.weight")
    indices = numpy_helper.from_array(np.array([0, 5, 9], dtype=np.int64), "")
    model.graph.sparse_initializer.append(helper.make_sparse_tensor(values, indices, [4, 4]))
    path = tmp_path / "sparse.onnx"
    path.write_bytes(model.SerializeToString())
    prof = read_onnx(path)
    assert prof.params_by_dtype == _reference(path)[0] == {"float32": 16 + 3, "int64": 3}
    assert any("sparse" in n for n in prof.notes)


def test_symbolic_and_unknown_dims_kept(tmp_path: Path) -> None:
    prof = read_onnx(om.symbolic_dims(tmp_path / "sym.onnx"))
    assert prof.inputs[0].shape == ("batch", "seq", 16) and prof.inputs[0].dtype == "float32"
    assert prof.outputs[0].shape == ("batch", None, 16)
    cnn = read_onnx(om.cnn(tmp_path / "cnn.onnx"))
    assert cnn.inputs[0].shape == ("batch", 3, "height", "width")


def test_initializers_listed_as_inputs_are_not_model_inputs(tmp_path: Path) -> None:
    prof = read_onnx(om.mlp(tmp_path / "old.onnx", initializers_as_inputs=True))
    assert [s.name for s in prof.inputs] == ["x"]


def test_name_metadata_and_generic_graph_names(tmp_path: Path) -> None:
    assert read_onnx(om.tiny_transformer_block(tmp_path / "block.onnx")).name == "block"  # "main_graph"
    model = onnx.load(str(om.mlp(tmp_path / "m.onnx")))
    model.doc_string = "a small MLP"
    helper.set_model_props(model, {"license": "MIT"})
    model.opset_import.append(helper.make_opsetid("ai.onnx.ml", 3))
    path = tmp_path / "meta.onnx"
    onnx.save(model, str(path))
    prof = read_onnx(path)
    assert prof.name == "mlp"
    assert prof.metadata["license"] == "MIT" and prof.metadata["doc_string"] == "a small MLP"
    assert prof.metadata["opsets"] == {"ai.onnx.ml": 3} and prof.opset == 17


def test_string_tensor_noted_not_counted(tmp_path: Path) -> None:
    model = onnx.load(str(om.shared_initializer(tmp_path / "s.onnx", width=4)))
    model.graph.initializer.append(helper.make_tensor("labels", TensorProto.STRING, [2], [b"a", b"b"]))
    path = tmp_path / "str.onnx"
    path.write_bytes(model.SerializeToString())
    prof = read_onnx(path)
    assert prof.n_params == 16 and any("string" in n for n in prof.notes)


# -- external data ----------------------------------------------------------------------------


def test_external_data_counted_and_located(tmp_path: Path) -> None:
    path = om.external_mlp(tmp_path / "ext.onnx")
    data = tmp_path / "ext.onnx.data"
    prof = read_onnx(path)
    assert prof.files == (str(path), str(data))
    assert prof.file_bytes == path.stat().st_size + data.stat().st_size
    assert prof.params_by_dtype == _reference(path)[0]
    model = onnx.load(str(path), load_external_data=False)
    offsets = {t.name: int({e.key: e.value for e in t.external_data}["offset"])
               for t in model.graph.initializer}
    assert {t.name: t.offset for t in prof.tensors} == offsets
    assert all(t.file == str(data) for t in prof.tensors)


def _external_model(folder: Path, location: str, n_elements: int = 1024, *, name: str = "m.onnx") -> Path:
    """A model whose one weight lives in external data at ``location`` (the file is not written)."""
    t = TensorProto(name="big.weight", data_type=TensorProto.FLOAT, dims=[n_elements])
    for key, value in {"location": location, "offset": "0", "length": str(4 * n_elements)}.items():
        t.external_data.add(key=key, value=value)
    t.data_location = TensorProto.EXTERNAL
    graph = helper.make_graph(
        [helper.make_node("Add", ["x", "big.weight"], ["y"])], "ext",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [n_elements])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [n_elements])], initializer=[t])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 10
    path = folder / name
    path.write_bytes(model.SerializeToString())
    return path


def _record_opens(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    opened: list[str] = []
    real_open, real_path_open = builtins.open, pathlib.Path.open

    def spy_open(file: Any, *args: Any, **kwargs: Any) -> Any:
        opened.append(str(file))
        return real_open(file, *args, **kwargs)

    def spy_path_open(self: Path, *args: Any, **kwargs: Any) -> Any:
        opened.append(str(self))
        return real_path_open(self, *args, **kwargs)

    monkeypatch.setattr(builtins, "open", spy_open)
    monkeypatch.setattr(pathlib.Path, "open", spy_path_open)
    return opened


def test_huge_sparse_external_data_never_read(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    n = 2 << 30  # 8 GiB of float32, in a sparse file that takes no disk space
    path = _external_model(tmp_path, "huge.bin", n)
    (tmp_path / "huge.bin").touch()
    os.truncate(tmp_path / "huge.bin", 4 * n)
    opened = _record_opens(monkeypatch)
    prof = read_onnx(path)
    skeleton = load_skeleton(path)
    assert prof.weight_bytes == 4 * n and prof.n_params == n
    assert prof.tensors[0].file == str(tmp_path / "huge.bin") and prof.tensors[0].offset == 0
    assert not any("huge.bin" in f for f in opened)
    entries = {e.key: e.value for e in skeleton.graph.initializer[0].external_data}
    assert entries["location"] == "huge.bin" and list(skeleton.graph.initializer[0].dims) == [n]


@pytest.mark.parametrize(("location", "problem"), [
    ("../outside.bin", "outside the model's folder"),
    ("sub/../../outside.bin", "outside the model's folder"),
    ("/etc/hostname", "absolute"),
    ("C:\\weights.bin", "absolute"),
])
def test_refuses_locations_outside_the_folder(tmp_path: Path, location: str, problem: str) -> None:
    folder = tmp_path / "model"
    folder.mkdir()
    (tmp_path / "outside.bin").write_bytes(b"\0" * 4096)
    path = _external_model(folder, location)
    with pytest.raises(ModelFormatError, match=problem) as exc:
        read_onnx(path)
    assert str(path) in str(exc.value)


def test_refuses_symlink_out_of_the_folder(tmp_path: Path) -> None:
    folder = tmp_path / "model"
    folder.mkdir()
    (tmp_path / "outside.bin").write_bytes(b"\0" * 4096)
    (folder / "w.bin").symlink_to(tmp_path / "outside.bin")
    with pytest.raises(ModelFormatError, match="outside the model's folder"):
        read_onnx(_external_model(folder, "w.bin"))


def test_missing_or_short_external_file(tmp_path: Path) -> None:
    path = _external_model(tmp_path, "weights.bin", 1024)
    with pytest.raises(ModelFormatError, match=r"weights\.bin.*missing"):
        read_onnx(path)
    (tmp_path / "weights.bin").write_bytes(b"\0" * 1000)
    with pytest.raises(ModelFormatError, match=r"weights\.bin holds 1000 bytes"):
        read_onnx(path)
    (tmp_path / "weights.bin").write_bytes(b"\0" * 4096)
    assert read_onnx(path).weight_bytes == 4096


# -- bad files ------------------------------------------------------------------------------


def _bad_files(tmp_path: Path) -> list[Path]:
    good = om.tiny_transformer_block(tmp_path / "good.onnx").read_bytes()
    files = {
        "empty.onnx": b"",
        "random.onnx": np.random.default_rng(0).bytes(4096),
        "text.onnx": b"this is not a model\n" * 50,
        "half.onnx": good[: len(good) // 2],
        "head.onnx": good[:200],
        "almost.onnx": good[:-1],
    }
    for name, blob in files.items():
        (tmp_path / name).write_bytes(blob)
    return [tmp_path / n for n in files]


@pytest.mark.parametrize("reader", [read_onnx, load_skeleton])
def test_bad_files_raise_one_line_model_format_error(tmp_path: Path, reader: Any) -> None:
    for path in [*_bad_files(tmp_path), tmp_path / "missing.onnx", tmp_path]:
        with pytest.raises(ModelFormatError) as exc:
            reader(path)
        message = str(exc.value)
        assert str(path) in message and "\n" not in message, message


def test_raw_data_length_mismatch_and_unknown_dtype(tmp_path: Path) -> None:
    model = onnx.load(str(om.shared_initializer(tmp_path / "s.onnx", width=4)))
    model.graph.initializer[0].raw_data = b"\0" * 10
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(model.SerializeToString())
    with pytest.raises(ModelFormatError, match="raw_data holds 10 bytes"):
        read_onnx(bad)
    model.graph.initializer[0].data_type = 99
    bad.write_bytes(model.SerializeToString())
    with pytest.raises(ModelFormatError, match="99"):
        read_onnx(bad)


def test_reading_does_not_copy_the_weights(tmp_path: Path) -> None:
    path = om.mlp(tmp_path / "big.onnx", hidden=2048, layers=3, in_features=2048)  # ~34 MB
    assert path.stat().st_size > 30_000_000
    for fn in (read_onnx, load_skeleton):
        tracemalloc.start()
        fn(path)
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        assert peak < 2_000_000, (fn.__name__, peak)


# -- skeletons ------------------------------------------------------------------------------


def _inferred(model: onnx.ModelProto) -> dict[str, Any]:
    out = onnx.shape_inference.infer_shapes(model, data_prop=True, strict_mode=True)
    shapes: dict[str, Any] = {}

    def collect(g: onnx.GraphProto) -> None:
        for vi in [*g.value_info, *g.output]:
            shapes[vi.name] = (vi.type.tensor_type.elem_type, [
                d.dim_value if d.HasField("dim_value") else d.dim_param
                for d in vi.type.tensor_type.shape.dim])
        for node in g.node:
            for a in node.attribute:
                for sub in [a.g] if a.type == onnx.AttributeProto.GRAPH else list(a.graphs):
                    collect(sub)

    collect(out.graph)
    return shapes


@pytest.mark.parametrize("builder", ["tiny_transformer_block", "cnn", "control_flow", "constant_mlp",
                                     "mlp", "int4_weights", "external_mlp"])
def test_skeleton_shape_inference_matches_full_model(tmp_path: Path, builder: str) -> None:
    path = om.ALL_BUILDERS[builder](tmp_path / f"{builder}.onnx")
    full = onnx.load(str(path))
    skeleton = load_skeleton(path, keep_data_bytes=64)
    assert skeleton.ByteSize() < full.ByteSize()  # the big data really went
    shapes = _inferred(skeleton)
    assert shapes == _inferred(full)
    assert len(shapes) > len(full.graph.output)  # inference produced value_info


def test_skeleton_keeps_small_tensors_and_drops_big_ones(tmp_path: Path) -> None:
    skeleton = load_skeleton(om.tiny_transformer_block(tmp_path / "t.onnx"), keep_data_bytes=64)
    inits = {t.name: t for t in skeleton.graph.initializer}
    assert list(numpy_helper.to_array(inits["heads_shape"])) == [0, 0, 4, 8]
    q = inits["layers.0.q.weight"]
    assert list(q.dims) == [32, 32] and q.data_type == TensorProto.FLOAT and not q.raw_data
    loop_body = next(n for n in load_skeleton(om.control_flow(tmp_path / "cf.onnx"), keep_data_bytes=8)
                     .graph.node if n.op_type == "Loop").attribute[0].g
    assert list(loop_body.initializer[0].dims) == [8, 8] and not loop_body.initializer[0].raw_data


def test_the_pager_unmaps_whole_pages_behind_the_walk_once_a_window_has_passed() -> None:
    import mmap as mmap_mod

    from advisor.readers.onnx_wire import Pager

    calls: list[tuple[int, int, int]] = []

    class FakeMap:
        def madvise(self, option: int, start: int, length: int) -> None:
            calls.append((option, start, length))

    pager = Pager(FakeMap(), window=3 * mmap_mod.PAGESIZE)  # type: ignore[arg-type]
    for pos in (100, 2 * mmap_mod.PAGESIZE, 3 * mmap_mod.PAGESIZE + 7, 4 * mmap_mod.PAGESIZE, 9 * mmap_mod.PAGESIZE):
        pager.passed(pos)
    page = mmap_mod.PAGESIZE
    assert calls == [(mmap_mod.MADV_DONTNEED, 0, 3 * page), (mmap_mod.MADV_DONTNEED, 3 * page, 6 * page)]


def test_reading_a_model_of_many_tensors_releases_the_pages_it_passed(tmp_path: Path,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    from advisor.readers import onnx_reader, onnx_skeleton
    from advisor.readers.onnx_wire import Pager

    released: list[int] = []

    class Recording(Pager):
        def __init__(self, mm: Any) -> None:
            super().__init__(mm, window=64 * 1024)

        def passed(self, pos: int) -> None:
            before = self.released
            super().passed(pos)
            if self.released != before:
                released.append(self.released)

    monkeypatch.setattr(onnx_reader, "Pager", Recording)
    monkeypatch.setattr(onnx_skeleton, "Pager", Recording)
    path = om.mlp(tmp_path / "m.onnx", hidden=256, layers=12)  # 12 weights of 256 KiB
    size = path.stat().st_size
    profile = read_onnx(path)
    assert len(released) >= 10 and released == sorted(released) and released[-1] <= size
    released.clear()
    load_skeleton(path)
    assert len(released) >= 10
    assert profile.weight_bytes > size // 2  # the pages dropped held weights the walk skipped
