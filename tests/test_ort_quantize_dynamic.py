"""The plan's int8 dynamic quantization is priced as the graph ``quantize_dynamic`` writes.

The option is estimated before anyone runs the quantizer; these tests run onnxruntime's own
quantizer on built models and hold the option's estimate to the estimate of the file it writes.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import onnx
import pytest

from advisor.estimator import estimate
from advisor.estimator.types import Workload
from advisor.plan.quantize import DYNAMIC_OP_TYPES, onnx_int8
from advisor.readers import read_model
from tests.builders import onnx_models
from tests.builders.hardware import this_machine


def _quantized(src: Path, dst: Path) -> Path:
    from onnxruntime.quantization import QuantType, quantize_dynamic

    quantize_dynamic(src, dst, weight_type=QuantType.QInt8, op_types_to_quantize=list(DYNAMIC_OP_TYPES))
    model = onnx.load(dst)
    model.ir_version = 10  # onnx 1.23 writes 14, which onnxruntime <= 1.32 refuses
    onnx.save(model, dst)
    return dst


def _float_model(kind: str, path: Path) -> tuple[Path, dict[str, tuple[int, ...]]]:
    if kind == "cnn":  # Conv chains (not fused) and a Gemm (rewritten as MatMul + Add)
        return onnx_models.cnn(path, channels=32), {"x": (2, 3, 64, 64)}
    return onnx_models.mlp(path, hidden=512, layers=4, in_features=256), {"x": (64, 256)}


@pytest.mark.parametrize("kind", ["cnn", "mlp"])
def test_int8_dynamic_option_matches_the_file_the_quantizer_writes(tmp_path: Path, kind: str) -> None:
    src, shapes = _float_model(kind, tmp_path / "float.onnx")
    hw = this_machine()
    wl = Workload(input_shapes=shapes)
    option = onnx_int8(read_model(src), static=False).profile
    real = read_model(_quantized(src, tmp_path / "int8.onnx"))
    planned, written = (estimate(p, wl, "onnxruntime-cpu", hw) for p in (option, real))
    assert planned.weights_bytes == pytest.approx(written.weights_bytes, rel=0.01)
    assert planned.activation_bytes == pytest.approx(written.activation_bytes, rel=0.01)
    assert planned.peak_bytes == pytest.approx(written.peak_bytes, rel=0.01)


def test_conv_integer_chain_adds_activations_the_float_graph_lacks(tmp_path: Path) -> None:
    # ConvInteger is not fused: its uint8 input copy, int32 output and float Cast output all live
    src = onnx_models.cnn(tmp_path / "float.onnx", channels=32)
    wl = Workload(input_shapes={"x": (2, 3, 64, 64)})
    option = onnx_int8(read_model(src), static=False).profile
    unrewritten = replace(option, graph_rewrite="")
    hw = this_machine()
    with_chain = estimate(option, wl, "onnxruntime-cpu", hw).activation_bytes
    without = estimate(unrewritten, wl, "onnxruntime-cpu", hw).activation_bytes
    # conv1's output [2, 32, 64, 64] is 1 MiB as float: its int32 twin is alive beside the Cast's
    assert with_chain - without >= 2 * 32 * 64 * 64 * 4


def test_a_conv_net_at_full_resolution_is_not_offered_dynamic_int8(tmp_path: Path) -> None:
    # Measured here (bench/ort_measure.py, onnxruntime 1.32, x86-64): this net at [2, 3, 224, 224]
    # peaks at 177.5 MB in float32 and 238.2 MB after quantize_dynamic — its ConvInteger chains
    # hold an int32 and a float copy of every conv output (estimates: 168.4 and 230.2 MB)
    from advisor.analysis import analyze
    from advisor.plan import make_plan

    src = onnx_models.cnn(tmp_path / "cnn.onnx", channels=128, seed=7)
    plan = make_plan(analyze(read_model(src), this_machine(), Workload(batch=2)), catalog=())
    assert not [o for o in plan.options if o.apply_action == "onnx-int8-dynamic"]
    assert any("int8 dynamic quantization" in n for n in plan.notes)
    assert [o for o in plan.options if o.kind == "quantize" and "static" in o.title]  # QDQ still helps
