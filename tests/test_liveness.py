"""Liveness walk and allocator simulations, checked against sums done by hand."""

from __future__ import annotations

from advisor.estimator.mechanisms.liveness import Step, activation_peak, outer_reads
from advisor.estimator.runtimes.onnxruntime_weights import (
    arena_reserved_bytes,
    bfc_touched_bytes,
    pattern_block_bytes,
    second_run_growth_bytes,
)
from advisor.estimator.types import MIB


def test_chain_peak_is_the_largest_adjacent_pair() -> None:
    # x(10) -> A -> a(20) -> B -> b(30) -> C -> y(5); while B runs a and b are live: 50.
    steps = [Step("MatMul", ("x", "w1"), ("a",)), Step("MatMul", ("a", "w2"), ("b",)),
             Step("MatMul", ("b", "w3"), ("y",))]
    sizes = {"x": 10, "a": 20, "b": 30, "y": 5, "w1": 999, "w2": 999, "w3": 999}
    res = activation_peak(steps, sizes, graph_inputs=["x"], graph_outputs=["y"], weights=["w1", "w2", "w3"])
    assert res.peak_bytes == 50
    assert res.peak_step == 1
    assert res.allocated_bytes == 10 + 20 + 30 + 5
    # Counting the caller's input changes nothing here: x dies after step 0 (10+20 < 50).
    no_inputs = activation_peak(steps, sizes, graph_inputs=["x"], graph_outputs=["y"],
                                weights=["w1", "w2", "w3"], count_inputs=False)
    assert no_inputs.peak_bytes == 50


def test_diamond_keeps_both_branches_live() -> None:
    # x(4) -> a(8); a -> b(16), a -> c(32); b + c -> d(8).
    steps = [Step("Conv", ("x",), ("a",)), Step("Conv", ("a",), ("b",)), Step("Conv", ("a",), ("c",)),
             Step("Concat", ("b", "c"), ("d",))]
    sizes = {"x": 4, "a": 8, "b": 16, "c": 32, "d": 8}
    res = activation_peak(steps, sizes, graph_inputs=["x"], graph_outputs=["d"])
    # step 2: a (8) + b (16) + c (32) = 56; step 3: b + c + d = 56 too; the first one is reported.
    assert res.peak_bytes == 56
    assert res.peak_step == 2


def test_view_ops_allocate_nothing_and_extend_lifetime() -> None:
    steps = [Step("Conv", ("x",), ("a",)), Step("Reshape", ("a", "shape"), ("r",)),
             Step("Flatten", ("r",), ("f",)), Step("Conv", ("f",), ("y",))]
    sizes = {"x": 1, "a": 100, "r": 100, "f": 100, "y": 10}
    res = activation_peak(steps, sizes, graph_inputs=["x"], graph_outputs=["y"], weights=["shape"],
                          count_inputs=False)
    assert res.peak_bytes == 110  # a (viewed as f) + y, never 100 three times
    assert res.allocated_bytes == 110


def test_inplace_elementwise_reuses_a_dying_input() -> None:
    steps = [Step("Conv", ("x",), ("a",)), Step("Relu", ("a",), ("b",)), Step("Conv", ("b",), ("y",))]
    sizes = {"x": 0, "a": 64, "b": 64, "y": 8}
    assert activation_peak(steps, sizes, graph_outputs=["y"]).peak_bytes == 72
    assert activation_peak(steps, sizes, graph_outputs=["y"], inplace=False).peak_bytes == 128
    # Binary element-wise ops get a new buffer on onnxruntime's CPU EP (no MayInplace), unary
    # activations write over a dying input.
    steps3 = [Step("Conv", ("x",), ("a",)), Step("Add", ("a", "bias"), ("b",)), Step("Conv", ("b",), ("y",))]
    assert activation_peak(steps3, sizes, graph_outputs=["y"], weights=["bias"]).peak_bytes == 64 + 64
    # If the input lives on (read again later), Relu cannot write over it.
    steps2 = [*steps[:2], Step("Add", ("a", "b"), ("y",))]
    assert activation_peak(steps2, sizes, graph_outputs=["y"]).peak_bytes == 64 + 64 + 8


def test_scratch_is_added_while_its_node_runs() -> None:
    steps = [Step("Conv", ("x",), ("a",)), Step("If", ("a", "c"), ("y",), scratch_bytes=500)]
    sizes = {"x": 10, "a": 10, "y": 10, "c": 1}
    res = activation_peak(steps, sizes, graph_inputs=["x", "c"], graph_outputs=["y"], count_inputs=False)
    assert res.peak_bytes == 10 + 10 + 500
    assert res.peak_step == 1


def test_graph_outputs_live_to_the_end() -> None:
    steps = [Step("Conv", ("x",), ("early",)), Step("Conv", ("x",), ("mid",)), Step("Conv", ("mid",), ("z",))]
    sizes = {"x": 0, "early": 100, "mid": 1, "z": 1}
    res = activation_peak(steps, sizes, graph_inputs=["x"], graph_outputs=["early", "z"])
    assert res.peak_bytes == 102


def test_outer_reads_of_a_subgraph() -> None:
    nodes = [(("x", "w"), ("h",)), (("h", "outer_bias"), ("y",))]
    assert outer_reads(["w"], nodes) == {"x", "outer_bias"}


def test_pattern_block_best_fit_reuses_gaps() -> None:
    # a(128) at 0, b(64) at 128; a freed; c(128) fits a's gap at 0: 192 so far, not 320.
    # The output y(32, aligned to 64) comes while b and c still live (frees of a step follow its
    # allocations): placed at the end, 192 + 64.
    bufs = [(128, 0, 1, False), (64, 1, 3, False), (128, 2, 3, False), (32, 3, 4, True)]
    assert pattern_block_bytes(bufs) == 256
    assert pattern_block_bytes(bufs[:3]) == 192


def test_bfc_arena_grows_by_doubling_regions() -> None:
    assert arena_reserved_bytes(1 * MIB) == 1 * MIB
    assert arena_reserved_bytes(3 * MIB) == 3 * MIB
    assert arena_reserved_bytes(4 * MIB) == 7 * MIB
    # one 3 MiB request: the 1 MiB first region is too small -> doubled until it holds it, 4 MiB;
    # touched = 3 MiB.
    touched, reserved, small = bfc_touched_bytes([(3 * MIB, 0, 1, False)])
    assert (touched, reserved, small) == (3 * MIB, 4 * MIB, 3 * MIB)
    # A freed 40 MiB chunk (in a 64 MiB region) serves a later 60 MiB one, not a 100 MiB one.
    touched, reserved, _ = bfc_touched_bytes([(40 * MIB, 0, 0, False), (60 * MIB, 1, 1, False)])
    assert (touched, reserved) == (60 * MIB, 64 * MIB)
    touched, reserved, _ = bfc_touched_bytes([(40 * MIB, 0, 0, False), (100 * MIB, 1, 1, False)])
    assert (touched, reserved) == (140 * MIB, 192 * MIB)


def test_second_run_places_the_pattern_block_in_the_freed_arena() -> None:
    # First run: 40 MiB gets a 64 MiB region (doubled until it holds it; too small a rest to split
    # off), then (the 40 MiB chunk still live) 8 MiB a second 64 MiB region.
    bufs = [(40 * MIB, 0, 1, False), (8 * MIB, 1, 2, False)]
    untraced = [False, False]
    fits = second_run_growth_bytes(bufs, untraced, 30 * MIB)
    assert [(size, first) for size, first, _ in fits] == [(64 * MIB, 40 * MIB), (64 * MIB, 8 * MIB)]
    assert sum(g for _, _, g in fits) == 0
    # A block bigger than every region is a new region: all of it is new pages.
    too_big = second_run_growth_bytes(bufs, untraced, 200 * MIB)
    assert sum(g for _, _, g in too_big) == 200 * MIB


def test_second_run_output_displaced_by_the_block_touches_new_pages() -> None:
    # A 32 MiB graph output (not in the pattern) used the only region; the block takes it now.
    bufs = [(32 * MIB, 0, 1, True)]
    grown = second_run_growth_bytes(bufs, [True], 32 * MIB)
    assert sum(g for _, _, g in grown) == 32 * MIB
    assert sum(g for _, _, g in second_run_growth_bytes(bufs, [True], 0)) == 0
