"""onnxruntime's NCHWc rewrite as the liveness walk sees it: padded blocked tensors, reorder copies."""

from __future__ import annotations

from advisor.estimator.mechanisms.liveness import Step, activation_peak
from advisor.estimator.mechanisms.ort_nchwc import blocked_bytes, nchwc_steps

MIB = 1024 * 1024


def test_blocked_tensors_round_channels_up_to_the_block() -> None:
    assert blocked_bytes((4, 36, 64, 64), 8) == 4 * 40 * 64 * 64 * 4
    assert blocked_bytes((1, 64, 10, 10), 16) == 64 * 100 * 4


def test_a_conv_chain_stays_blocked_and_reorders_only_at_its_edges() -> None:
    # x (plain, 32 ch) → Conv → Relu → Conv → Reshape → y. The first Conv reads a plain activation
    # with C >= block: ReorderInput; Relu follows blocked; Reshape needs NCHW: one ReorderOutput.
    shapes = {"x": (1, 32, 64, 64), "a": (1, 36, 64, 64), "r": (1, 36, 64, 64), "c": (1, 64, 64, 64),
              "y": (1, 64 * 64 * 64)}
    steps = [Step("Conv", ("x", "w1"), ("a",)), Step("Relu", ("a",), ("r",)), Step("Conv", ("r", "w2"), ("c",)),
             Step("Reshape", ("c", "s"), ("y",))]
    out, sizes = nchwc_steps(steps, shapes, nchwc_convs={"w1", "w2"}, weights={"w1", "w2", "s"},
                             graph_outputs=["y"], block=8)
    assert [s.op_type for s in out] == ["ReorderInput", "Conv", "Relu", "Conv", "ReorderOutput", "Reshape"]
    assert out[4].inputs == ("c#nchwc",) and out[4].outputs == ("c",)
    assert sizes["a#nchwc"] == 1 * 40 * 64 * 64 * 4  # 36 channels padded to 40
    assert sizes["x#nchwc"] == 32 * 64 * 64 * 4
    plain = {"x": MIB // 2, "a": 36 * 16384, "r": 36 * 16384, "c": MIB, "y": MIB}
    walk = activation_peak(out, {**plain, **sizes}, graph_inputs=["x"], graph_outputs=["y"],
                           weights={"w1", "w2", "s"}, count_inputs=False)
    # at the ReorderOutput: c#nchwc (1 MiB) and its plain copy c (1 MiB) are both live; without the
    # rewrite the walk would peak at r + c = 0.56 + 1 MiB
    assert walk.peak_bytes == 2 * MIB


def test_a_first_layer_conv_reads_the_plain_input_and_pools_need_whole_blocks() -> None:
    shapes = {"img": (1, 3, 32, 32), "a": (1, 16, 32, 32), "p": (1, 16, 16, 16), "q": (1, 12, 8, 8)}
    steps = [Step("Conv", ("img", "w"), ("a",)), Step("MaxPool", ("a",), ("p",)), Step("Conv", ("p", "v"), ("q",))]
    out, _ = nchwc_steps(steps, shapes, nchwc_convs={"w"}, weights={"w", "v"}, graph_outputs=["q"], block=8)
    # no ReorderInput for 3 input channels; the pool follows; the second Conv is not blocked (its
    # filter is not reordered), so the pool's output is reordered back for it.
    assert [s.op_type for s in out] == ["Conv", "MaxPool", "ReorderOutput", "Conv"]


def _residual_block() -> tuple[list[Step], dict[str, tuple[int, ...]]]:
    # x → Conv(w0) → h;  h → FusedConv(w1, Relu) → a;  a → Conv(w2) → c;  Add(a, c) → s;  Relu(s) → y
    # (a ResNet basic block after conv_activation_fusion; every map [1, 32, 64, 64] = 512 KiB)
    shape = (1, 32, 64, 64)
    shapes = dict.fromkeys(("x", "h", "a", "c", "s", "y"), shape)
    steps = [Step("Conv", ("x", "w0"), ("h",)), Step("FusedConv", ("h", "w1"), ("a",)),
             Step("Conv", ("a", "w2"), ("c",)), Step("Add", ("a", "c"), ("s",)), Step("Relu", ("s",), ("y",))]
    return steps, shapes


def test_a_residual_add_folds_into_the_conv_before_it() -> None:
    steps, shapes = _residual_block()
    out, sizes = nchwc_steps(steps, shapes, nchwc_convs={"w0", "w1", "w2"}, weights={"w0", "w1", "w2"},
                             graph_outputs=["y"], block=8)
    ops = [s.op_type for s in out]
    assert "Add" not in ops and ops.count("NchwcConvSum") == 1
    fused = next(s for s in out if s.op_type == "NchwcConvSum")
    assert fused.inputs == ("a#nchwc", "w2", "a#nchwc") and fused.outputs == ("s#nchwc",)
    plain = dict.fromkeys(shapes, 512 * 1024)
    walk = activation_peak(out, {**plain, **sizes}, graph_inputs=["x"], graph_outputs=["y"],
                           weights={"w0", "w1", "w2"}, count_inputs=False)
    # the Conv reads a and writes s (a is also its X, so it cannot write over it: two maps), then
    # the ReorderOutput of y adds the plain copy; a separate Add would have held a, c and s at once
    assert walk.peak_bytes == 2 * 512 * 1024


def test_a_conv_read_twice_keeps_its_add() -> None:
    steps, shapes = _residual_block()
    steps.append(Step("Relu", ("c",), ("z",)))  # c has a second reader: no fusion
    shapes["z"] = shapes["c"]
    out, _ = nchwc_steps(steps, shapes, nchwc_convs={"w0", "w1", "w2"}, weights={"w0", "w1", "w2"},
                         graph_outputs=["y", "z"], block=8)
    assert "Add" in [s.op_type for s in out] and "NchwcConvSum" not in [s.op_type for s in out]


def test_the_conv_writes_over_its_sum_when_that_is_the_sums_last_use() -> None:
    # Add(p, c) of two branches of x: p's Conv absorbs the Add, with c as its Sum
    shape = (1, 32, 64, 64)
    shapes = dict.fromkeys(("x", "p", "c", "s"), shape)
    steps = [Step("Conv", ("x", "wp"), ("p",)), Step("Conv", ("x", "wc"), ("c",)), Step("Add", ("p", "c"), ("s",))]
    out, sizes = nchwc_steps(steps, shapes, nchwc_convs={"wp", "wc"}, weights={"wp", "wc"}, graph_outputs=["s"],
                             block=8)
    plain = dict.fromkeys(shapes, 512 * 1024)
    walk = activation_peak(out, {**plain, **sizes}, graph_inputs=["x"], graph_outputs=["s"], weights={"wp", "wc"},
                           count_inputs=False)
    # p's Conv waits for its Sum c and writes s over c's buffer (c's last use, not its X): the
    # buffers are x#nchwc, c#nchwc (= s#nchwc) and the plain s; never more than two live at once
    assert walk.allocated_bytes == 3 * 512 * 1024 and walk.peak_bytes == 2 * 512 * 1024
    assert [s.op_type for s in out] == ["ReorderInput", "Conv", "NchwcConvSum", "ReorderOutput"]
