"""Rules of advisor.estimator.mechanisms.ort_quant on small hand-built quantized graphs (hand-computed values)."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from advisor.estimator.mechanisms import ort_quant as q

K, N = 64, 48  # int8 weight [K, N] = 3072 bytes; its float32 copy 12288 bytes


def _init(name: str, dims: list[int], dtype: int) -> onnx.TensorProto:
    # metadata only, like the estimator's skeleton (no raw data)
    t = onnx.TensorProto()
    t.name, t.data_type = name, dtype
    t.dims.extend(dims)
    return t


def _scalars() -> list[onnx.TensorProto]:
    return [numpy_helper.from_array(np.array(0.1, np.float32), "s"),
            numpy_helper.from_array(np.array(0, np.int8), "zw"),
            numpy_helper.from_array(np.array(128, np.uint8), "za")]


def _graph(nodes: list[onnx.NodeProto], inits: list[onnx.TensorProto], out: str = "y") -> onnx.GraphProto:
    return helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [8, K])],
                             [helper.make_tensor_value_info(out, TensorProto.FLOAT, None)], inits)


def qdq_matmul(q_after: bool = True) -> onnx.GraphProto:
    """x -> Q -> DQ -> MatMul(DQ(W)) [-> Q -> DQ] -> y : the layout quantize_static(QDQ) writes."""
    nodes = [helper.make_node("QuantizeLinear", ["x", "s", "za"], ["xq"]),
             helper.make_node("DequantizeLinear", ["xq", "s", "za"], ["xd"]),
             helper.make_node("DequantizeLinear", ["w", "s", "zw"], ["wd"]),
             helper.make_node("MatMul", ["xd", "wd"], ["m" if q_after else "y"])]
    if q_after:
        nodes += [helper.make_node("QuantizeLinear", ["m", "s", "za"], ["mq"]),
                  helper.make_node("DequantizeLinear", ["mq", "s", "za"], ["y"])]
    return _graph(nodes, [_init("w", [K, N], TensorProto.INT8), *_scalars()])


def weight_only_matmul() -> onnx.GraphProto:
    """x (float) -> MatMul(DQ(W)) -> y : weight-only int8, no activation QDQ."""
    nodes = [helper.make_node("DequantizeLinear", ["w", "s", "zw"], ["wd"]),
             helper.make_node("MatMul", ["x", "wd"], ["y"])]
    return _graph(nodes, [_init("w", [K, N], TensorProto.INT8), *_scalars()])


def dynamic_matmul() -> onnx.GraphProto:
    """What quantize_dynamic writes for one MatMul."""
    nodes = [helper.make_node("DynamicQuantizeLinear", ["x"], ["xq", "xs", "xz"]),
             helper.make_node("Mul", ["xs", "ws"], ["sc"]),
             helper.make_node("MatMulInteger", ["xq", "w", "xz", "zw"], ["mi"]),
             helper.make_node("Cast", ["mi"], ["mf"], to=TensorProto.FLOAT),
             helper.make_node("Mul", ["mf", "sc"], ["y"])]
    inits = [_init("w", [K, N], TensorProto.INT8), numpy_helper.from_array(np.array(0.1, np.float32), "ws"),
             numpy_helper.from_array(np.array(0, np.int8), "zw")]
    return _graph(nodes, inits)


def qdq_conv(q_after: bool = True) -> onnx.GraphProto:
    """x -> Q -> DQ -> Conv(DQ(W [32, 16, 3, 3])) -> Q -> DQ."""
    nodes = [helper.make_node("QuantizeLinear", ["x", "s", "za"], ["xq"]),
             helper.make_node("DequantizeLinear", ["xq", "s", "za"], ["xd"]),
             helper.make_node("DequantizeLinear", ["w", "s", "zw"], ["wd"]),
             helper.make_node("Conv", ["xd", "wd"], ["c" if q_after else "y"], pads=[1, 1, 1, 1])]
    if q_after:
        nodes += [helper.make_node("QuantizeLinear", ["c", "s", "za"], ["cq"]),
                  helper.make_node("DequantizeLinear", ["cq", "s", "za"], ["y"])]
    return _graph(nodes, [_init("w", [32, 16, 3, 3], TensorProto.INT8), *_scalars()])


def test_dequantized_weight_bytes_counts_float_copies_of_weights_only() -> None:
    # the activation DQs (xd, and y) are not weights; wd is K*N float32
    assert q.dequantized_weight_bytes(qdq_matmul()) == {"wd": K * N * 4}


def test_dequantized_weight_bytes_follows_the_scale_type() -> None:
    g = weight_only_matmul()
    g.initializer.remove(next(t for t in g.initializer if t.name == "s"))
    g.initializer.append(numpy_helper.from_array(np.array(0.1, np.float16), "s"))
    assert q.dequantized_weight_bytes(g) == {"wd": K * N * 2}


@pytest.mark.parametrize("q_after", [True, False])
def test_qdq_matmul_weight_dq_is_fused_at_all(q_after: bool) -> None:
    # QLinearMatMul (Q after) or MatMulIntegerToFloat (no Q): both read the int8 weight directly
    g = qdq_matmul(q_after)
    assert q.fused_dequantize_outputs(g) == frozenset({"wd"})
    assert q.fused_dequantize_outputs(g, level="extended") == frozenset({"wd"})
    assert q.runtime_dequantized_bytes(g) == 0


def test_no_fusion_at_basic_so_the_weight_dq_runs_every_inference() -> None:
    g = qdq_matmul()
    assert q.fused_dequantize_outputs(g, level="basic") == frozenset()
    assert q.runtime_dequantized_bytes(g, level="basic") == K * N * 4
    assert q.fused_away_tensors(g, level="disabled") == frozenset()


def test_weight_only_dq_is_never_fused() -> None:
    # MatMulSelector needs DQ on both inputs: a float x leaves DQ(W) as a per-run node
    g = weight_only_matmul()
    assert q.fused_dequantize_outputs(g) == frozenset()
    assert q.runtime_dequantized_bytes(g) == K * N * 4


def test_conv_needs_a_quantize_after_it() -> None:
    assert q.fused_dequantize_outputs(qdq_conv(True)) == frozenset({"wd"})
    assert q.fused_dequantize_outputs(qdq_conv(False)) == frozenset()
    assert q.runtime_dequantized_bytes(qdq_conv(False)) == 32 * 16 * 9 * 4


def test_fused_away_tensors_of_a_qlinear_matmul() -> None:
    # both DQ outputs and the float MatMul output vanish; the uint8 Q outputs and y remain
    assert q.fused_away_tensors(qdq_matmul(True)) == frozenset({"xd", "wd", "m"})
    # MatMulIntegerToFloat: the float output stays
    assert q.fused_away_tensors(qdq_matmul(False)) == frozenset({"xd", "wd"})


def test_fused_away_tensors_of_dynamic_quantize_matmul() -> None:
    # DynamicQuantizeMatMul replaces DQL + MatMulInteger + Cast + the two Muls; y is its output
    g = dynamic_matmul()
    assert q.fused_away_tensors(g) == frozenset({"xq", "xs", "xz", "mi", "mf", "sc"})
    assert q.fused_away_tensors(g, level="basic") == frozenset()


def test_dynamic_quantize_linear_kept_when_another_consumer_is_not_fused() -> None:
    g = dynamic_matmul()
    g.node.append(helper.make_node("Identity", ["xq"], ["xq2"]))
    assert "xq" not in q.fused_away_tensors(g)
    assert {"mi", "mf"} <= q.fused_away_tensors(g)


def test_prepack_adds_only_padding_and_column_sums() -> None:
    # MlasGemmPackBSize: round16(48) = 48, round4(64) = 64: 48*64 + 48*4 bytes; minus the stored 3072
    for g in (qdq_matmul(), dynamic_matmul()):
        assert q.quantized_prepack_bytes(g) == {"w": 48 * 4}
    # N = 50 -> 64 columns: 64*64 + 64*4 - 64*50
    g = dynamic_matmul()
    g.initializer[0].dims[:] = [64, 50]
    assert q.quantized_prepack_bytes(g) == {"w": 64 * 64 + 64 * 4 - 64 * 50}


def test_prepack_not_done_for_an_unfused_dq_weight() -> None:
    assert q.quantized_prepack_bytes(weight_only_matmul()) == {}
    assert q.quantized_prepack_bytes(qdq_matmul(), level="basic") == {}


def test_qlinear_conv_prepack_per_group() -> None:
    # Conv [32, 16, 3, 3]: B is (K = 16*9 = 144, N = 32): 32*144 + 32*4 - 4608
    assert q.quantized_prepack_bytes(qdq_conv()) == {"w": 32 * 4}


def test_resident_weight_bytes_has_no_float_copy() -> None:
    scalars = 4 + 1 + 1
    assert q.resident_weight_bytes(qdq_matmul()) == K * N + 48 * 4 + scalars
    assert q.resident_weight_bytes(weight_only_matmul()) == K * N + scalars


def test_s8_to_u8_only_when_opted_in() -> None:
    assert q.s8_to_u8_weights(dynamic_matmul()) == frozenset()
    assert q.s8_to_u8_weights(dynamic_matmul(), avx2_precision_mode=True) == frozenset({"w"})


def test_unknown_level_is_an_error() -> None:
    with pytest.raises(ValueError):
        q.fused_dequantize_outputs(qdq_matmul(), level="max")


def test_shared_int8_activation_blocks_matmul_fusion_on_x86() -> None:
    # int8 activation (zero point int8) whose DQ feeds two MatMuls: QDQS8ToU8 cannot convert it
    g = qdq_matmul(False)
    g.initializer.append(numpy_helper.from_array(np.array(0, np.int8), "zs"))
    for n in g.node:
        if n.op_type in ("QuantizeLinear", "DequantizeLinear") and n.input[0] in ("x", "xq"):
            n.input[2] = "zs"
    assert q.fused_dequantize_outputs(g) == frozenset({"wd"})  # single consumer: converted to uint8
    g.node.append(helper.make_node("MatMul", ["xd", "wd"], ["y2"]))
    assert q.fused_dequantize_outputs(g) == frozenset()
    assert q.fused_dequantize_outputs(g, int8_allowed=True) == frozenset({"wd"})  # ARM


def test_add_of_int8_weight_and_converted_activation_is_not_fused() -> None:
    nodes = [helper.make_node("QuantizeLinear", ["x", "s", "zw"], ["xq"]),
             helper.make_node("DequantizeLinear", ["xq", "s", "zw"], ["xd"]),
             helper.make_node("DequantizeLinear", ["b", "s", "zw"], ["bd"]),
             helper.make_node("Add", ["xd", "bd"], ["a"]),
             helper.make_node("QuantizeLinear", ["a", "s", "zw"], ["aq"]),
             helper.make_node("DequantizeLinear", ["aq", "s", "zw"], ["y"])]
    g = _graph(nodes, [_init("b", [K], TensorProto.INT8), *_scalars()])
    assert q.fused_dequantize_outputs(g) == frozenset()
    assert q.runtime_dequantized_bytes(g) == K * 4
