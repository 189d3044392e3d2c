"""onnxruntime's CPU fusions as the liveness walk sees them: the fused pattern's intermediates vanish."""

from __future__ import annotations

from advisor.estimator.mechanisms.liveness import Step, activation_peak
from advisor.estimator.mechanisms.ort_fusions import fuse_steps


def _ops(steps: list[Step]) -> list[str]:
    return [s.op_type for s in steps]


def _fuse(steps: list[Step], weights: set[str], outputs: list[str], **kw: object) -> list[Step]:
    fused, _ = fuse_steps(steps, weights=weights, graph_outputs=outputs, shapes=kw.get("shapes", {}),  # type: ignore[arg-type]
                          perms=kw.get("perms", {}), sizes={})  # type: ignore[arg-type]
    return fused


def test_silu_becomes_quick_gelu_and_holds_two_tensors_not_three() -> None:
    steps = [Step("Conv", ("x", "w"), ("c",)), Step("Sigmoid", ("c",), ("s",)), Step("Mul", ("c", "s"), ("m",)),
             Step("Conv", ("m", "w2"), ("y",))]
    fused = _fuse(steps, {"w", "w2"}, ["y"])
    assert _ops(fused) == ["Conv", "QuickGelu", "Conv"]
    sizes = {"x": 0, "c": 100, "s": 100, "m": 100, "y": 1}
    assert activation_peak(steps, sizes, graph_outputs=["y"], weights=["w", "w2"], count_inputs=False).peak_bytes == 300
    assert activation_peak(fused, sizes, graph_outputs=["y"], weights=["w", "w2"], count_inputs=False).peak_bytes == 200


def test_erf_gelu_in_both_orders_is_one_gelu() -> None:
    # x * (1 + erf(x / sqrt2)) * 0.5
    a = [Step("Div", ("x", "k"), ("d",)), Step("Erf", ("d",), ("e",)), Step("Add", ("e", "one"), ("p",)),
         Step("Mul", ("x", "p"), ("q",)), Step("Mul", ("q", "half"), ("y",))]
    assert _ops(_fuse(a, {"k", "one", "half"}, ["y"])) == ["Gelu"]
    # (0.5 * x) * (1 + erf(x / sqrt2))
    b = [Step("Mul", ("x", "half"), ("h",)), Step("Div", ("x", "k"), ("d",)), Step("Erf", ("d",), ("e",)),
         Step("Add", ("e", "one"), ("p",)), Step("Mul", ("h", "p"), ("y",))]
    fused = _fuse(b, {"k", "one", "half"}, ["y"])
    assert _ops(fused) == ["Gelu"] and fused[0].inputs == ("x",) and fused[0].outputs == ("y",)


def test_layer_norm_and_skip_layer_norm() -> None:
    steps = [Step("Add", ("a", "b"), ("x",)), Step("ReduceMean", ("x",), ("m",)), Step("Sub", ("x", "m"), ("d",)),
             Step("Pow", ("d", "two"), ("p",)), Step("ReduceMean", ("p",), ("v",)), Step("Add", ("v", "eps"), ("ve",)),
             Step("Sqrt", ("ve",), ("s",)), Step("Div", ("d", "s"), ("n",)), Step("Mul", ("n", "g"), ("ng",)),
             Step("Add", ("ng", "beta"), ("y",))]
    fused = _fuse(steps, {"two", "eps", "g", "beta"}, ["y"])
    assert _ops(fused) == ["SkipLayerNormalization"]
    assert fused[0].inputs == ("a", "b", "g", "beta") and fused[0].outputs == ("y",)


def test_matmul_scale_only_for_a_scalar_and_transpose_only_of_the_last_two_axes() -> None:
    steps = [Step("Transpose", ("k",), ("kt",)), Step("MatMul", ("q", "kt"), ("s",)), Step("Mul", ("s", "c"), ("y",))]
    fused = _fuse(steps, {"c"}, ["y"], shapes={"c": ()}, perms={"kt": (0, 1, 3, 2)})
    assert _ops(fused) == ["FusedMatMul"] and fused[0].inputs == ("q", "k")
    vector = _fuse(steps, {"c"}, ["y"], shapes={"c": (64,)}, perms={"kt": (0, 2, 1, 3)})
    assert _ops(vector) == ["Transpose", "MatMul", "Mul"]


def test_an_activation_between_convs_folds_into_the_first_and_graph_outputs_stay() -> None:
    steps = [Step("Conv", ("x", "w"), ("c",)), Step("BatchNormalization", ("c", "g", "b", "m", "v"), ("n",)),
             Step("Clip", ("n", "lo", "hi"), ("r",)), Step("Conv", ("r", "w2"), ("y",))]
    weights = {"w", "w2", "g", "b", "m", "v", "lo", "hi"}
    fused = _fuse(steps, weights, ["y"])
    assert _ops(fused) == ["FusedConv", "Conv"] and fused[0].outputs == ("r",)
    # a tensor the caller receives is never fused away: the BN still folds (the Conv writes n), the
    # Clip stays
    assert _ops(_fuse(steps, weights, ["y", "n"])) == ["Conv", "Clip", "Conv"]


def test_a_hardswish_no_conv_absorbed_runs_as_hardsigmoid_then_mul() -> None:
    steps = [Step("Conv", ("x", "w"), ("c",)), Step("Add", ("c", "b"), ("a",)), Step("HardSwish", ("a",), ("y",)),
             Step("Conv", ("p", "w2"), ("q",)), Step("HardSwish", ("q",), ("z",))]
    fused, made = fuse_steps(steps, weights={"w", "w2", "b"}, graph_outputs=["y", "z"], shapes={}, perms={},
                             sizes={"y": 64, "z": 64})
    # after the Add it is inlined (its HardSigmoid a tensor as big as y); after a Conv it is the Conv's activation
    assert _ops(fused) == ["Conv", "Add", "HardSigmoid", "Mul", "FusedConv"]
    assert made == {"y/HardSigmoid": 64}
