"""The headless front: exit codes, one-line errors, JSON documents, and the probe → --hardware round trip."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from advisor.cli import parse_input_spec, run
from advisor.errors import WorkloadError
from tests.builders import onnx_models
from tests.builders.safetensors_models import llama_folder

ROOT = Path(__file__).resolve().parents[1]


def _run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    rc = run(list(argv))
    out, err = capsys.readouterr()
    return rc, out, err


@pytest.fixture
def cnn_model(tmp_path: Path) -> Path:
    return onnx_models.cnn(tmp_path / "cnn.onnx")


def test_parse_input_spec() -> None:
    assert parse_input_spec("x=1,3,224,224") == ("x", (1, 3, 224, 224))
    assert parse_input_spec("sr=") == ("sr", ())
    for bad in ("x", "=1,2", "x=1,a", "x=-1"):
        with pytest.raises(WorkloadError):
            parse_input_spec(bad)


def test_analyze_json_schema(capsys: pytest.CaptureFixture[str], cnn_model: Path) -> None:
    rc, out, err = _run(capsys, "analyze", str(cnn_model), "--device", "rpi5-8gb", "--batch", "4", "--json")
    assert rc == 0, err
    doc = json.loads(out)
    model = doc["model"]
    assert model["format"] == "onnx"
    assert model["params"] > 0 and model["weight_bytes"] == sum(model["weight_bytes_by_dtype"].values())
    assert {"name", "shape", "dtype"} <= set(model["inputs"][0])
    est = doc["estimate"]
    for key in ("runtime", "weights_bytes", "activation_bytes", "kv_cache_bytes", "overhead_bytes",
                "peak_bytes", "low_bytes", "high_bytes", "notes"):
        assert key in est
    assert est["low_bytes"] <= est["peak_bytes"] <= est["high_bytes"]
    assert isinstance(doc["fits"], bool)
    assert doc["fit"]["basis"] == "total"  # a catalog device is judged on its total memory
    assert doc["target"]["device_id"] == "rpi5-8gb"


def test_batch_changes_the_estimate(capsys: pytest.CaptureFixture[str], cnn_model: Path) -> None:
    peaks = []
    for batch in ("1", "64"):
        rc, out, _ = _run(capsys, "analyze", str(cnn_model), "--device", "rpi5-8gb", "--batch", batch, "--json")
        assert rc == 0
        peaks.append(json.loads(out)["estimate"]["activation_bytes"])
    assert peaks[1] > peaks[0]


def test_human_output_leads_with_the_verdict(capsys: pytest.CaptureFixture[str], cnn_model: Path) -> None:
    rc, out, _ = _run(capsys, "analyze", str(cnn_model), "--device", "rpi4-4gb")
    assert rc == 0
    assert out.splitlines()[0].startswith(("FITS", "DOES NOT FIT"))


@pytest.mark.parametrize(
    ("argv", "needle"),
    [
        (["analyze", "{bad}"], "{bad}"),
        (["analyze", "{missing}"], "{missing}"),
        (["analyze", "{model}", "--device", "no-such-device"], "no-such-device"),
        (["analyze", "{model}", "--batch", "0"], "batch"),
        (["analyze", "{model}", "--input", "nope=1,2"], "nope"),
        (["analyze", "{model}", "--hardware", "{bad}"], "{bad}"),
        (["analyze", "{pickle}"], "pickle"),
    ],
)
def test_bad_input_is_one_line_exit_2(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, cnn_model: Path, argv: list[str], needle: str
) -> None:
    bad = tmp_path / "corrupt.onnx"
    bad.write_bytes(cnn_model.read_bytes()[:300])
    pickle = tmp_path / "pytorch_model.bin"
    pickle.write_bytes(b"\x80\x04not really")
    subs = {"bad": str(bad), "missing": str(tmp_path / "nope.onnx"), "model": str(cnn_model), "pickle": str(pickle)}
    rc, out, err = _run(capsys, *(a.format(**subs) for a in argv))
    assert rc == 2
    assert out == ""
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("advisor: error:"), err
    assert needle.format(**subs).lower() in lines[0].lower()
    assert "Traceback" not in err


def test_probe_out_round_trips_through_hardware(capsys: pytest.CaptureFixture[str], tmp_path: Path,
                                               cnn_model: Path) -> None:
    hw = tmp_path / "me.json"
    rc, _, err = _run(capsys, "probe", "--out", str(hw))
    assert rc == 0, err
    saved = json.loads(hw.read_text())
    rc, out, err = _run(capsys, "analyze", str(cnn_model), "--hardware", str(hw), "--json")
    assert rc == 0, err
    doc = json.loads(out)
    assert doc["target"]["source"] == "file"
    assert doc["target"]["memory_total_bytes"] == saved["memory_total_bytes"]
    assert doc["fit"]["basis"] == "total"


def test_devices_json(capsys: pytest.CaptureFixture[str]) -> None:
    rc, out, _ = _run(capsys, "devices", "--json")
    assert rc == 0
    entries = json.loads(out)
    ids = {e["id"] for e in entries}
    assert {"rpi4-4gb", "jetson-orin-nano-8gb", "rtx4090-desktop"} <= ids
    for e in entries:
        assert {"id", "name", "kind", "memory_bytes", "gpus", "unified_memory"} <= set(e)
        if e["kind"] == "cloud":
            assert e["price_per_hour_usd"] > 0


def test_no_subcommand_without_display_prints_analysis(tmp_path: Path) -> None:
    env = {k: v for k, v in __import__("os").environ.items() if k not in ("DISPLAY", "WAYLAND_DISPLAY",
                                                                          "QT_QPA_PLATFORM")}
    sample = ROOT / "resources" / "samples" / "sample-convnet.onnx"
    proc = subprocess.run([sys.executable, "-m", "advisor", str(sample)], capture_output=True, text=True,
                          env=env, cwd=tmp_path, check=False, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "no display" in proc.stderr
    assert proc.stdout.splitlines()[0].startswith(("FITS", "DOES NOT FIT"))


def test_a_folder_holding_one_onnx_model_is_analyzed(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    folder = tmp_path / "exported"
    folder.mkdir()
    onnx_models.cnn(folder / "model.onnx")
    rc, out, err = _run(capsys, "plan", str(folder), "--device", "rpi5-8gb", "--json")
    assert rc == 0, err
    doc = json.loads(out)
    assert doc["model"]["format"] == "onnx" and doc["options"]


def test_a_model_folder_keeps_its_path_and_commands_name_the_model_file(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    from tests.builders.gguf_models import tiny_llama_gguf

    folder = tmp_path / "gguf-folder"
    folder.mkdir()
    gguf = tiny_llama_gguf(folder / "tiny.gguf")
    rc, out, err = _run(capsys, "plan", str(folder), "--device", "rpi4-4gb", "--context", "4096", "--json")
    assert rc == 0, err
    doc = json.loads(out)
    assert doc["model"]["path"] == str(folder)  # what the person opened
    commands = "\n".join(o["how_to"] for o in doc["options"])
    assert str(gguf) in commands and f"-m {folder} " not in commands


def _paddle_style_cnn(path: Path) -> Path:
    """A conv net whose input is written as Paddle does: ``[-1, 3, ?, ?]`` (dim_value -1, dim_param "?")."""
    import numpy as np
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [-1, 3, "?", "?"])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, None)
    w = numpy_helper.from_array(np.ones((8, 3, 3, 3), dtype=np.float32), "w")
    graph = helper.make_graph([helper.make_node("Conv", ["x", "w"], ["y"], pads=[1, 1, 1, 1])], "g", [x], [y], [w])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 10
    onnx.save(model, str(path))
    return path


def test_dynamic_dims_written_as_minus_one_or_question_mark_take_the_given_shape(
        capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    path = _paddle_style_cnn(tmp_path / "paddle.onnx")
    rc, out, err = _run(capsys, "analyze", str(path), "--input", "x=1,3,48,192", "--json")
    assert rc == 0, err
    doc = json.loads(out)
    assert doc["estimate"]["resolved_inputs"] == {"x": [1, 3, 48, 192]}
    assert doc["model"]["inputs"][0]["shape"] == [None, 3, None, None]
    # A fixed dim still has to match.
    rc, _, err = _run(capsys, "analyze", str(path), "--input", "x=1,4,48,192")
    assert rc == 2 and "fixed shape [?, 3, ?, ?]" in err
    # Without --input, the -1 batch takes --batch and the open image dims the image size.
    rc, out, err = _run(capsys, "analyze", str(path), "--batch", "2", "--image-size", "64", "--json")
    assert rc == 0, err
    assert json.loads(out)["estimate"]["resolved_inputs"] == {"x": [2, 3, 64, 64]}


@pytest.mark.parametrize("command", ["analyze", "plan"])
def test_check_answers_with_the_exit_code(capsys: pytest.CaptureFixture[str], tmp_path: Path, cnn_model: Path,
                                          command: str) -> None:

    big = llama_folder(tmp_path / "70b", n_shards=4)  # 70B-shaped bf16, sparse: 141 GB of weights
    assert _run(capsys, command, str(cnn_model), "--device", "rpi5-8gb", "--check") == (0, "", "")
    assert _run(capsys, command, str(big), "--device", "rpi5-8gb", "--check") == (1, "", "")
    rc, out, _ = _run(capsys, command, str(big), "--device", "rpi5-8gb", "--check", "--json")
    assert rc == 1 and json.loads(out)["fit"]["fits"] is False
    rc, _, err = _run(capsys, command, str(tmp_path / "nope.onnx"), "--check")
    assert rc == 2 and err.startswith("advisor: error:")


def test_gpu_layers_flag_reaches_the_estimate(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:

    model = llama_folder(tmp_path / "8b", n_layers=32, hidden=4096, n_heads=32, n_kv_heads=8, intermediate=14336,
                         n_shards=2)
    base = ["analyze", str(model), "--device", "rtx4090-desktop", "--runtime", "pytorch-cuda", "--json"]
    peaks = {}
    for n in (None, 8):
        rc, out, _ = _run(capsys, *base, *([] if n is None else ["--gpu-layers", str(n)]))
        assert rc == 0
        doc = json.loads(out)
        peaks[n] = doc["estimate"]["peak_bytes"]
    assert doc["workload"]["gpu_layers"] == 8
    assert peaks[8] < peaks[None] / 2  # 24 of 32 layers' weights stay in RAM
    rc, _, err = _run(capsys, *base, "--gpu-layers", "-1")
    assert rc == 2 and "GPU layers must be 0 or more" in err
