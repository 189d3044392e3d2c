"""Working buffers that onnxruntime's CPU kernels allocate and that are not graph tensors.

Pure functions over plain shapes (no onnx/onnxruntime import). Every constant cites the onnxruntime
source; "bench" means measured with ``bench/micro/kernel_scratch.py`` (one-op micro-models, one fresh
process each, ``VmHWM`` above baseline with ``enable_cpu_mem_arena=False`` and
``enable_mem_pattern=False``; onnxruntime 1.32.0, x86-64 AVX2, 2 cores), findings and figures in
``bench/micro/README.md``.

Where such a buffer lives (for the liveness walk): every scratch buffer here is taken from the
kernel's temp-space allocator (``OpKernelContext::GetTempSpaceAllocator`` = the CPU EP allocator,
i.e. the BFC arena when the arena is on) inside ``Compute``, and released when ``Compute`` returns.
It is therefore alive only while its node runs, together with the node's inputs and outputs; it is
NOT part of the memory-pattern block (the planner only sees graph tensors), so from the second run
on it is an extra arena allocation next to the pattern block, each run.

NCHWc (x86-64, ``ORT_ENABLE_ALL``) does not add scratch but rewrites Conv/pooling into
``com.microsoft.nchwc`` nodes whose activations have the channel count rounded up to the NCHWc block
and adds ``ReorderInput``/``ReorderOutput`` copies at the boundaries (see :func:`nchwc_conv_applies`
and :func:`nchwc_activation_bytes`).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

from advisor.units import round_up

# onnxruntime/core/mlas/lib/mlasi.h: MLAS_SGEMM_STRIDEN / MLAS_SGEMM_STRIDEK (128 each).
MLAS_SGEMM_STRIDEN = 128
MLAS_SGEMM_STRIDEK = 128
# onnxruntime/core/mlas/lib/convolve.cpp: MLAS_CONV_WORKING_BUFFER_SIZE_PER_THREAD
# = MLAS_SGEMM_STRIDEN * MLAS_SGEMM_STRIDEK elements (16384 floats = 64 KiB).
MLAS_CONV_WORKING_BUFFER_SIZE_PER_THREAD = MLAS_SGEMM_STRIDEN * MLAS_SGEMM_STRIDEK
# onnxruntime/core/mlas/lib/mlasi.h: MLAS_MAXIMUM_THREAD_COUNT.
MLAS_MAXIMUM_THREAD_COUNT = 16
# onnxruntime/core/mlas/lib/mlasi.h: MLAS_SGEMM_THREAD_COMPLEXITY = 64 * 1024 multiplies per thread.
MLAS_SGEMM_THREAD_COMPLEXITY = 64 * 1024
# onnxruntime/core/mlas/lib/mlasi.h: MLAS_SGEMM_STRIDEN_THREAD_ALIGN.
MLAS_SGEMM_STRIDEN_THREAD_ALIGN = 16
# MlasNchwcGetBlockSize (onnxruntime/core/mlas/lib/snchwc.cpp, platform.cpp): 16 floats with AVX-512F,
# 8 with AVX2/AVX; NCHWc is not used on other targets (block 0 -> NchwcTransformer does nothing).
NCHWC_BLOCK_AVX512 = 16
NCHWC_BLOCK_AVX2 = 8

_CONV_OPS = frozenset({"Conv", "FusedConv"})


def default_intra_op_threads(physical_cores: int) -> int:
    """The intra-op degree of parallelism a default session gets.

    ``intra_op_num_threads = 0`` -> ``CreateThreadPoolHelper`` (onnxruntime/core/util/thread_utils.cc)
    sizes the pool from ``Env::GetDefaultThreadAffinities()`` = one entry per *physical* core
    (``PosixEnv::GetNumPhysicalCpuCores`` via cpuinfo, onnxruntime/core/platform/posix/env.cc); a pool of
    size <= 1 is not created (nullptr). MLAS sees ``ThreadPool::DegreeOfParallelism`` =
    ``NumThreads() + 1`` (the caller thread joins), i.e. the pool size, or 1 without a pool
    (onnxruntime/core/common/threadpool.cc).

    Args:
        physical_cores: physical cores of the machine (not SMT siblings).

    Returns:
        The thread count MLAS divides work by (>= 1).
    """
    return max(1, physical_cores)


def mlas_conv_working_buffer_elems(
    *,
    batch: int,
    group: int,
    in_channels_per_group: int,
    filter_count_per_group: int,
    kernel_shape: Sequence[int],
    input_spatial: Sequence[int],
    output_spatial: Sequence[int],
    strides: Sequence[int],
    pads: Sequence[int],
    dilations: Sequence[int],
    threads: int,
    touched: bool = True,
) -> int:
    """Elements of the float Conv working buffer: requested (``WorkingBufferSize``) or touched.

    Source: onnxruntime/core/mlas/lib/convolve.cpp ``MlasConvPrepare`` computes ``WorkingBufferSize``;
    ``Conv<float>::Compute`` (onnxruntime/core/providers/cpu/nn/conv.cc) allocates
    ``sizeof(float) * WorkingBufferSize`` bytes from the temp-space allocator and frees it when Compute
    returns. Algorithms (``K = C/group * prod(kernel)``, ``OutputSize = prod(output_spatial)``):

    * ``GemmDirect`` (all strides 1, no padding, and a 1x1 kernel, or a C=1 kernel spanning the input
      width/height): 0.
    * ``ExpandThenGemm`` (``FilterCount > OutputSize``): the whole im2col matrix ``OutputSize * K``,
      all of it written by ``MlasConvIm2Col`` (touched = requested).
    * ``ExpandThenGemmSegmented`` (otherwise), batch 1 and group 1: ``TargetThreadCount * 128*128``
      (64 KiB a thread), TargetThreadCount = min(complexity / 64K + 1, 16, threads) trimmed by the N
      slicing (touched = requested).
    * ``ExpandThenGemmSegmented`` with ``BatchCount > 1 or GroupCount > 1``: requested =
      ``min(threads, batch*group) * max(OutputSize*K, FilterCount*OutputSize, 128*128)``, but each
      thread's slice is only filled panel by panel by ``MlasConvOperation`` (im2col of at most
      ``MLAS_SGEMM_STRIDEN * MLAS_SGEMM_STRIDEK`` elements at the slice start,
      ``MlasConvExpandThenGemmSegmentedThreaded``), so only ``min(threads, batch*group) *
      min(OutputSize*K, 128*128)`` elements are ever touched. Bench (``conv_b4_3x3_t1/t2/t4``): a
      27.6/55.1/110.3 MiB request shows as <= 0.3 MiB of RSS, independent of threads.

    Args:
        batch: N.
        group: the ``group`` attribute.
        in_channels_per_group: C / group.
        filter_count_per_group: M / group.
        kernel_shape: spatial kernel dims (1 to 3 of them).
        input_spatial: spatial input dims.
        output_spatial: spatial output dims.
        strides: per spatial dim.
        pads: ``[begin..., end...]`` (2 x rank).
        dilations: per spatial dim.
        threads: intra-op degree of parallelism (``ThreadPool::DegreeOfParallelism``).
        touched: True (default) for the elements that become resident (RSS), False for the
            allocation request (what the arena must find room for; virtual beyond the touched part).

    Returns:
        Number of float elements (multiply by 4 for bytes).
    """
    dims = len(kernel_shape)
    output_size = math.prod(output_spatial)
    k = in_channels_per_group * math.prod(kernel_shape)
    strides_one = all(s == 1 for s in strides)
    pad_zero = all(p == 0 for p in pads)
    dil_one = all(d == 1 for d in dilations)
    threads = max(1, threads)
    if strides_one and pad_zero:
        if k == in_channels_per_group:
            return 0  # pointwise: GemmDirect on the input tensor
        if dims in (1, 2) and dil_one and in_channels_per_group == 1:
            ks = list(kernel_shape) if dims == 2 else [1, kernel_shape[0]]
            ins = list(input_spatial) if dims == 2 else [1, input_spatial[0]]
            if ks[1] == ins[1] or (ks[0] == ins[0] and ks[1] == 1):
                return 0  # GemmDirect with TransB / ldb = input width
    if filter_count_per_group > output_size:
        return output_size * k  # ExpandThenGemm
    if batch > 1 or group > 1:
        workers = min(threads, batch * group)
        if touched:
            return workers * min(output_size * k, MLAS_CONV_WORKING_BUFFER_SIZE_PER_THREAD)
        per_thread = max(
            output_size * k, filter_count_per_group * output_size, MLAS_CONV_WORKING_BUFFER_SIZE_PER_THREAD
        )
        return workers * per_thread
    complexity = float(filter_count_per_group) * float(output_size) * float(k)
    if complexity < float(MLAS_SGEMM_THREAD_COMPLEXITY * MLAS_MAXIMUM_THREAD_COUNT):
        target = int(complexity / float(MLAS_SGEMM_THREAD_COMPLEXITY)) + 1
    else:
        target = MLAS_MAXIMUM_THREAD_COUNT
    target = min(target, threads)
    stride_n = -(-output_size // target)
    if target > 1:
        align = MLAS_SGEMM_STRIDEN_THREAD_ALIGN
        stride_n = (stride_n + align - 1) // align * align
        if stride_n >= output_size:
            target = 1
        elif stride_n * (target - 1) >= output_size:
            target -= 1
    return target * MLAS_CONV_WORKING_BUFFER_SIZE_PER_THREAD


def conv_transpose_col_elems(
    *, out_channels: int, group: int, kernel_shape: Sequence[int], input_spatial: Sequence[int]
) -> int:
    """Elements of the ConvTranspose col buffer (one image, reused across the batch and groups).

    Source: onnxruntime/core/providers/cpu/nn/conv_transpose.cc ``ConvTranspose<float>::DoConvTranspose``:
    ``col_buffer_size = kernel_dim * input_image_size`` with ``kernel_dim = M / group * prod(kernel)``,
    allocated from the temp-space allocator for the node's Compute. Independent of threads and batch
    (bench: ``convT_*``).

    Args:
        out_channels: M (output channels, ``W.shape[1] * group``).
        group: the ``group`` attribute.
        kernel_shape: spatial kernel dims.
        input_spatial: spatial input dims.

    Returns:
        Number of elements (times the element size for bytes).
    """
    return out_channels // max(1, group) * math.prod(kernel_shape) * math.prod(input_spatial)


def nchwc_channels(channels: int, block: int) -> int:
    """``channels`` rounded up to the NCHWc block (nchwc_transformer.cc: ``nchwc_output_channels``)."""
    return round_up(channels, block)


def nchwc_activation_bytes(shape: Sequence[int], elem_bytes: int, block: int) -> int:
    """Bytes of an NCHWc activation tensor ``[N, ceil(C/block)*block, H, W]``.

    Applies to the outputs of ``com.microsoft.nchwc`` Conv / MaxPool / AveragePool / Global*Pool /
    Upsample nodes and of ``ReorderInput`` (all in NCHWc layout), NOT to the NCHW graph tensors before
    ``ReorderInput`` / after ``ReorderOutput``. Padded channels come from a ``group == 1`` Conv: its M
    need not be a multiple of the block (``TransformConv`` rounds the filter to
    ``nchwc_output_channels``), and in onnxruntime 1.32 its input C need not be either (ReorderInput
    pads it); grouped/depthwise Convs and pools require C % block == 0.
    Source: onnxruntime/core/optimizer/nchwc_transformer.cc ``NchwcTransformerImpl::TransformConv``;
    bench ``nchwc_*`` (M=36 with block 8 -> 40 channels).

    Args:
        shape: the logical NCHW shape ``[N, C, spatial...]``.
        elem_bytes: bytes per element (4, NCHWc is float only).
        block: NCHWc block size (16 AVX-512F, 8 AVX2).

    Returns:
        Bytes of the padded tensor.
    """
    if len(shape) < 2:
        return math.prod(shape) * elem_bytes
    return shape[0] * nchwc_channels(shape[1], block) * math.prod(shape[2:]) * elem_bytes


def nchwc_conv_applies(
    *, in_channels_per_group: int, out_channels: int, group: int, kernel_rank: int, block: int | None
) -> bool:
    """Whether ``NchwcTransformer`` rewrites this (float, constant-weight) Conv into the NCHWc domain.

    Source: onnxruntime/core/optimizer/nchwc_transformer.cc ``NchwcTransformerImpl::TransformConv``:
    2-D kernels only (4-D filter); ``group > 1``: M % block == 0 and either depthwise (C/group == 1,
    M == group) or C/group and M/group multiples of the block; ``group == 1``: always in onnxruntime
    1.32 — C < block reads the NCHW input directly (no ReorderInput), otherwise ``ReorderInput`` pads C
    up to the block (bench ``conv_b4_c20_all_t2``: C=20 with block 8 became ReorderInput -> NCHWc Conv ->
    ReorderOutput, the reordered input holding 24 channels; older sources required C % block == 0).
    Level ``ORT_ENABLE_ALL`` only, x86-64 only.

    Args:
        in_channels_per_group: ``W.shape[1]``.
        out_channels: ``W.shape[0]``.
        group: the ``group`` attribute.
        kernel_rank: number of spatial dims.
        block: NCHWc block size, or None when NCHWc is off (other CPU, lower optimization level).

    Returns:
        True when the Conv runs as an NCHWc kernel (no MLAS working buffer).
    """
    if not block or kernel_rank != 2:
        return False
    if group > 1:
        if out_channels % block:
            return False
        if in_channels_per_group == 1 and out_channels == group:
            return True
        return not (in_channels_per_group % block or out_channels % group or (out_channels // group) % block)
    return True


def _ints(attrs: Mapping[str, object], name: str, default: list[int]) -> list[int]:
    v = attrs.get(name)
    if isinstance(v, (list, tuple)) and v:
        return [int(x) for x in v]
    return default


def _int(attrs: Mapping[str, object], name: str, default: int) -> int:
    v = attrs.get(name)
    return int(v) if isinstance(v, int) else default


def cpu_kernel_scratch_bytes(
    op_type: str,
    attrs: Mapping[str, object],
    input_shapes: Sequence[tuple[int, ...] | None],
    output_shapes: Sequence[tuple[int, ...] | None],
    elem_bytes: int,
    *,
    threads: int,
    nchwc_block: int | None,
    requested: bool = False,
) -> int:
    """Bytes of the non-graph working buffer a CPU kernel takes for one node's ``Compute``.

    By default the bytes that become resident (what adds to RSS while the node runs); with
    ``requested=True`` the allocation request the arena sees (differs only for the batched/grouped
    MLAS Conv, whose huge request is mostly never touched).

    Modelled (everything else returns 0; bench found no other scratch above one page for Relu,
    MaxPool/AveragePool, Resize, MatMul incl. batched broadcast, Gemm, LayerNormalization, Softmax on
    the last axis):

    * ``Conv`` / ``FusedConv`` (float): :func:`mlas_conv_working_buffer_elems` * 4 unless
      :func:`nchwc_conv_applies` (NCHWc kernels take no working buffer, onnxruntime/core/mlas/lib/
      snchwc.cpp ``MlasNchwcConv``). Non-float Conv (``Conv<T>``, conv.cc) uses an im2col buffer of
      ``C/group * prod(kernel) * OutputSize`` elements unless 1x1/stride 1/no pad.
    * ``ConvTranspose``: :func:`conv_transpose_col_elems` * elem_bytes.
    * ``Softmax`` / ``LogSoftmax`` (opset >= 13, axis not last): the kernel transposes the input to a
      temporary and computes into a second temporary (onnxruntime/core/providers/cpu/math/softmax.cc
      ``Softmax<T>::ComputeImplOpset13``): 2 x input bytes. Needs ``attrs["opset"] >= 13`` (default 13).

    Args:
        op_type: the node's op type (ONNX domain, or FusedConv from com.microsoft).
        attrs: the node's attributes as plain Python values (ints / lists of ints); may also hold
            ``"opset"`` for Softmax.
        input_shapes: static input shapes (None where unknown), in node input order.
        output_shapes: static output shapes (None where unknown).
        elem_bytes: bytes per element of the op's main type (4 for float).
        threads: intra-op degree of parallelism (see :func:`default_intra_op_threads`).
        nchwc_block: NCHWc block size when the NCHWc transformer is active (x86-64, ORT_ENABLE_ALL),
            else None.

    Returns:
        Scratch bytes (0 for ops without scratch or when a needed shape is unknown).
    """
    x = input_shapes[0] if input_shapes else None
    y = output_shapes[0] if output_shapes else None
    if op_type in _CONV_OPS:
        w = input_shapes[1] if len(input_shapes) > 1 else None
        if x is None or w is None or y is None or len(x) < 3 or len(w) != len(x):
            return 0
        rank = len(x) - 2
        group = _int(attrs, "group", 1)
        kernel = _ints(attrs, "kernel_shape", list(w[2:]))
        strides = _ints(attrs, "strides", [1] * rank)
        dil = _ints(attrs, "dilations", [1] * rank)
        pads = _ints(attrs, "pads", [0] * (2 * rank))
        auto_pad = attrs.get("auto_pad")
        if isinstance(auto_pad, (str, bytes)) and auto_pad not in ("NOTSET", b"NOTSET", "VALID", b"VALID"):
            pads = [1] * (2 * rank)  # SAME_*: some padding (only "nonzero" matters for the algorithm choice)
        if elem_bytes == 4 and nchwc_conv_applies(
            in_channels_per_group=w[1], out_channels=w[0], group=group, kernel_rank=rank, block=nchwc_block
        ):
            return 0
        if elem_bytes != 4 or not 1 <= rank <= 3:
            if math.prod(kernel) == 1 and all(s == 1 for s in strides) and all(p == 0 for p in pads):
                return 0
            return x[1] // group * math.prod(kernel) * math.prod(y[2:]) * elem_bytes
        elems = mlas_conv_working_buffer_elems(
            batch=x[0], group=group, in_channels_per_group=x[1] // group, filter_count_per_group=w[0] // group,
            kernel_shape=kernel, input_spatial=x[2:], output_spatial=y[2:], strides=strides, pads=pads,
            dilations=dil, threads=threads, touched=not requested,
        )
        return elems * 4
    if op_type == "ConvTranspose":
        w = input_shapes[1] if len(input_shapes) > 1 else None
        if x is None or w is None or len(x) < 3:
            return 0
        group = _int(attrs, "group", 1)
        kernel = _ints(attrs, "kernel_shape", list(w[2:]))
        return conv_transpose_col_elems(
            out_channels=w[1] * group, group=group, kernel_shape=kernel, input_spatial=x[2:]
        ) * elem_bytes
    if op_type in ("Softmax", "LogSoftmax"):
        if x is None or not x:
            return 0
        opset = _int(attrs, "opset", 13)
        axis = _int(attrs, "axis", -1 if opset >= 13 else 1)
        if axis < 0:
            axis += len(x)
        if opset >= 13 and axis != len(x) - 1:
            return 2 * math.prod(x) * elem_bytes
        return 0
    return 0
