"""Hand-computed expectations for advisor.estimator.mechanisms.ort_kernels (onnxruntime CPU kernel scratch)."""

from __future__ import annotations

import pytest

from advisor.estimator.mechanisms.ort_kernels import (
    MLAS_CONV_WORKING_BUFFER_SIZE_PER_THREAD,
    conv_transpose_col_elems,
    cpu_kernel_scratch_bytes,
    default_intra_op_threads,
    mlas_conv_working_buffer_elems,
    nchwc_activation_bytes,
    nchwc_channels,
    nchwc_conv_applies,
)


def _conv(x: tuple[int, ...], w: tuple[int, ...], y: tuple[int, ...], *, k: int = 3, s: int = 1, pad: int = 1,
          group: int = 1, threads: int = 2, block: int | None = None, requested: bool = False) -> int:
    attrs: dict[str, object] = {"kernel_shape": [k, k], "strides": [s, s], "pads": [pad] * 4, "group": group}
    return cpu_kernel_scratch_bytes("Conv", attrs, [x, w, (w[0],)], [y], 4, threads=threads, nchwc_block=block,
                                    requested=requested)


def test_constant_is_128_by_128() -> None:
    # MLAS_SGEMM_STRIDEN * MLAS_SGEMM_STRIDEK = 128 * 128 (onnxruntime/core/mlas/lib/mlasi.h, convolve.cpp)
    assert MLAS_CONV_WORKING_BUFFER_SIZE_PER_THREAD == 16384


def test_conv3x3_c32_56sq_segmented_two_threads() -> None:
    # N=1, C=32 -> M=64, 3x3 pad 1, 56x56 out: K = 32*9 = 288, OutputSize = 3136, FilterCount 64 <= 3136
    # -> ExpandThenGemmSegmented. Complexity 64*3136*288 = 57.8e6 >= 64K*16 -> 16 threads, capped at 2;
    # StrideN = 1568 (already a multiple of 16) < 3136 -> 2 threads -> 2 * 16384 floats * 4 B = 131072 B.
    assert _conv((1, 32, 56, 56), (64, 32, 3, 3), (1, 64, 56, 56), threads=2) == 131072
    # one thread: 65536 B; four threads: StrideN = 784 = 49*16 -> 4 * 65536 = 262144 B
    assert _conv((1, 32, 56, 56), (64, 32, 3, 3), (1, 64, 56, 56), threads=1) == 65536
    assert _conv((1, 32, 56, 56), (64, 32, 3, 3), (1, 64, 56, 56), threads=4) == 262144


def test_small_conv_uses_fewer_threads() -> None:
    # N=1, C=1 -> M=1, 3x3 on 8x8: complexity 1*64*9 = 576 < 64K -> 1 thread -> 65536 B whatever threads.
    assert _conv((1, 1, 8, 8), (1, 1, 3, 3), (1, 1, 8, 8), threads=8) == 65536


def test_batched_conv_requested_vs_touched() -> None:
    # N=4, same conv, 2 threads: requested = min(2, 4) * max(3136*288 = 903168, 64*3136 = 200704, 16384)
    # = 1806336 floats = 7225344 B; touched = 2 * min(903168, 16384) * 4 = 131072 B.
    x, w, y = (4, 32, 56, 56), (64, 32, 3, 3), (4, 64, 56, 56)
    assert _conv(x, w, y, threads=2, requested=True) == 7225344
    assert _conv(x, w, y, threads=2) == 131072
    # 8 threads but only 4 images: 4 slices
    assert _conv(x, w, y, threads=8, requested=True) == 4 * 903168 * 4


def test_grouped_conv_requested() -> None:
    # N=1, group 2, C=64 -> M=64 at 112x112: per group C/g = 32, M/g = 32, K = 288, OutputSize = 12544;
    # requested = min(1 thread, 2) * max(12544*288, 32*12544, 16384) = 3612672 floats = 14450688 B.
    assert _conv((1, 64, 112, 112), (64, 32, 3, 3), (1, 64, 112, 112), group=2, threads=1, requested=True) == 14450688


def test_expand_then_gemm_when_filters_exceed_pixels() -> None:
    # C=256 -> M=512, 3x3 pad 1 on 14x14: OutputSize 196 < FilterCount 512 -> ExpandThenGemm:
    # OutputSize * K = 196 * 2304 = 451584 floats = 1806336 B (independent of threads).
    assert _conv((1, 256, 14, 14), (512, 256, 3, 3), (1, 512, 14, 14), threads=1) == 1806336
    assert _conv((1, 256, 14, 14), (512, 256, 3, 3), (1, 512, 14, 14), threads=4) == 1806336


def test_pointwise_conv_is_gemm_direct() -> None:
    assert _conv((4, 64, 56, 56), (64, 64, 1, 1), (4, 64, 56, 56), k=1, pad=0) == 0
    # 1x1 with stride 2 is not GemmDirect: segmented, 2 threads -> 131072 B
    assert _conv((1, 64, 112, 112), (64, 64, 1, 1), (1, 64, 56, 56), k=1, pad=0, s=2) == 131072


def test_kernel_spanning_input_width_is_gemm_direct() -> None:
    assert mlas_conv_working_buffer_elems(
        batch=1, group=1, in_channels_per_group=1, filter_count_per_group=8, kernel_shape=[3, 32],
        input_spatial=[32, 32], output_spatial=[30, 1], strides=[1, 1], pads=[0, 0, 0, 0], dilations=[1, 1],
        threads=2,
    ) == 0


def test_nchwc_conv_has_no_mlas_buffer() -> None:
    # C=32, M=64 with block 16: NCHWc conv, no working buffer
    assert _conv((1, 32, 56, 56), (64, 32, 3, 3), (1, 64, 56, 56), block=16) == 0
    # group 1 with C=24 (not a multiple of 16): ORT 1.32 pads the reordered input, still NCHWc
    assert _conv((1, 24, 56, 56), (64, 24, 3, 3), (1, 64, 56, 56), block=16) == 0
    # grouped (not depthwise) conv with C/g = 24 is not NCHWc: MLAS, N=1 group 2 -> requested
    # min(2, 2) * max(3136 * 216, 32 * 3136, 16384) = 2 * 677376 floats = 5419008 B
    assert _conv((1, 48, 56, 56), (64, 24, 3, 3), (1, 64, 56, 56), group=2, block=16, requested=True) == 5419008


def test_nchwc_conv_applies_rules() -> None:
    f = nchwc_conv_applies
    assert f(in_channels_per_group=3, out_channels=36, group=1, kernel_rank=2, block=16)  # C < block, M padded
    assert f(in_channels_per_group=40, out_channels=64, group=1, kernel_rank=2, block=16)  # C padded to 48
    assert not f(in_channels_per_group=24, out_channels=64, group=2, kernel_rank=2, block=16)
    assert f(in_channels_per_group=1, out_channels=64, group=64, kernel_rank=2, block=16)  # depthwise
    assert not f(in_channels_per_group=1, out_channels=40, group=40, kernel_rank=2, block=16)  # M % 16
    assert not f(in_channels_per_group=32, out_channels=64, group=1, kernel_rank=1, block=16)  # 1-D conv
    assert not f(in_channels_per_group=32, out_channels=64, group=1, kernel_rank=2, block=None)


def test_nchwc_activation_padding() -> None:
    # [1, 24, 56, 56] with block 16 -> 32 channels: 32 * 3136 * 4 = 401408 B (vs 301056 unpadded)
    assert nchwc_channels(24, 16) == 32
    assert nchwc_activation_bytes((1, 24, 56, 56), 4, 16) == 401408
    assert nchwc_activation_bytes((1, 24, 56, 56), 4, 8) == 301056
    assert nchwc_activation_bytes((8, 36, 10, 10), 4, 8) == 8 * 40 * 100 * 4


def test_conv_transpose_col_buffer() -> None:
    # C=64 -> M=32, 4x4 stride 2 on an 80x80 input: col = (32/1 * 16) * 6400 = 3276800 floats = 13107200 B,
    # one image at a time (batch and threads do not change it).
    assert conv_transpose_col_elems(out_channels=32, group=1, kernel_shape=[4, 4], input_spatial=[80, 80]) == 3276800
    for n, t in ((1, 1), (2, 4)):
        got = cpu_kernel_scratch_bytes("ConvTranspose", {"kernel_shape": [4, 4], "strides": [2, 2]},
                                       [(n, 64, 80, 80), (64, 32, 4, 4)], [(n, 32, 160, 160)], 4,
                                       threads=t, nchwc_block=16)
        assert got == 13107200


def test_softmax_transposes_when_axis_is_not_last() -> None:
    x = (2, 128, 128, 128)  # 4194304 elements; 2 temporaries of 16 MiB each = 33554432 B
    assert cpu_kernel_scratch_bytes("Softmax", {"axis": 1}, [x], [x], 4, threads=2, nchwc_block=None) == 33554432
    assert cpu_kernel_scratch_bytes("LogSoftmax", {"axis": -2}, [x], [x], 4, threads=2, nchwc_block=None) == 33554432
    assert cpu_kernel_scratch_bytes("Softmax", {"axis": -1}, [x], [x], 4, threads=2, nchwc_block=None) == 0
    # opset < 13: the axis flattens to 2-D, no transpose
    assert cpu_kernel_scratch_bytes("Softmax", {"axis": 1, "opset": 11}, [x], [x], 4, threads=2,
                                    nchwc_block=None) == 0


@pytest.mark.parametrize(
    ("op", "ins", "outs"),
    [
        ("Relu", [(4, 64, 112, 112)], [(4, 64, 112, 112)]),
        ("MatMul", [(8, 1024, 256), (256, 1024)], [(8, 1024, 1024)]),
        ("Gemm", [(4096, 512), (512, 512), (512,)], [(4096, 512)]),
        ("LayerNormalization", [(8, 1024, 768), (768,), (768,)], [(8, 1024, 768)]),
        ("Resize", [(4, 64, 80, 80), None, (4,)], [(4, 64, 160, 160)]),
        ("MaxPool", [(4, 64, 160, 160)], [(4, 64, 80, 80)]),
        ("AveragePool", [(4, 64, 160, 160)], [(4, 64, 80, 80)]),
        ("Add", [(4, 64), (64,)], [(4, 64)]),
    ],
)
def test_ops_without_scratch(op: str, ins: list[tuple[int, ...] | None], outs: list[tuple[int, ...] | None]) -> None:
    assert cpu_kernel_scratch_bytes(op, {}, ins, outs, 4, threads=4, nchwc_block=16) == 0


def test_unknown_shapes_give_zero() -> None:
    assert cpu_kernel_scratch_bytes("Conv", {}, [None, (64, 32, 3, 3)], [None], 4, threads=2, nchwc_block=None) == 0
    assert cpu_kernel_scratch_bytes("Softmax", {"axis": 1}, [None], [None], 4, threads=2, nchwc_block=None) == 0


def test_default_threads_are_physical_cores() -> None:
    assert default_intra_op_threads(2) == 2
    assert default_intra_op_threads(0) == 1
