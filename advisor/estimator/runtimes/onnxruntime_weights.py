"""What onnxruntime adds around a model's weights and activations, on CPU and on CUDA.

Every constant says where it comes from. "bench" means measured on this project's machine
(x86-64, 2 cores, Linux, glibc malloc, onnxruntime 1.32.0 CPU) with ``bench/ort_measure.py``
(one fresh process per measurement, ``VmHWM`` above the bare-runtime baseline); the figures across
the model set are in ``bench/results/accuracy_cpu.txt`` (``python bench/accuracy.py``).

Mechanisms, CPU (``onnxruntime-cpu``):

* **Session**: a fixed cost (graph, kernels, thread pool, allocator bookkeeping) plus a little per node.
* **Weights at load**: ORT parses the ModelProto (every weight once in protobuf), converts each
  initializer into an OrtValue, constant-folds, and pre-packs MatMul/Gemm/Conv weights for MLAS.
  The protobuf copy and the pre-pack originals are freed as it goes, so the *resident* weights are
  about the stored ones — but freed blocks of up to 32 MiB stay in glibc's heap (a freed
  ``mmap``-ed block raises the mmap threshold, up to ``DEFAULT_MMAP_THRESHOLD_MAX`` = 32 MiB on
  64-bit, glibc malloc/malloc.c), while bigger blocks go back to the OS at once. So the load adds
  about one copy of the weights held in tensors ≤ 32 MiB plus the largest bigger tensor.
  Weights stored in external data files are memory-mapped (no protobuf copy).
* **fp16/bf16 weights**: the CPU EP has no half-precision kernels for most ops (MatMul, Gemm, Conv,
  Add ...), so ``InsertCastTransformer`` adds Casts to float and constant folding turns the
  weights into float32 initializers that replace the originals: resident ≈ 2× the fp16 bytes,
  and the freed fp16 original (plus the folded float32 copy, once pre-packed) stay in the heap.
* **NCHWc** (x86-64, ``ORT_ENABLE_ALL``): Conv filters are reordered into new initializers; the
  originals are freed after the optimizer, two extra copies at load (see ``NCHWC_SMALL_EXTRA``).
* **Activations**: the first run allocates from the BFC arena (freed chunks stay in the arena;
  regions double from 1 MiB until one holds the request). From the second run on, the memory
  pattern allocates one block of the planned peak *through the arena* (``alloc->Alloc``,
  execution_frame.cc, ORT 1.32): it lands in a region the first run freed when one is big
  enough, else in a new region. Only touched pages count in RSS. Steady state:
  ``activations = arena pages touched in the first run + pages the second run adds``, both
  simulated below from the liveness walk's allocation order.
* The load's leftover heap is reused only by arena regions no bigger than the largest block the
  load freed (glibc serves a request from one free chunk, and its dynamic mmap threshold is the
  largest freed mmap-ed block); bigger ones are fresh pages on top. Peak = resident weights +
  session + leftovers + max(largest big transient, run activations − the reusable part).

Mechanisms, CUDA (``onnxruntime-cuda``), NOT measured here (no GPU on the build machine):

* the CUDA context: 527 MiB for a bare driver context, 621 MiB through torch, measured on an H100
  with driver 580 (project brief); plus cuBLAS/cuBLASLt/cuDNN handles, workspaces and lazily
  loaded kernels;
* weights on the device at their stored precision (the CUDA EP has fp16 kernels);
* the CUDA BFC arena grows by regions that double (``kNextPowerOfTwo``, ORT
  ``ArenaExtendStrategy`` default) and nvidia-smi shows whole regions, so activations round up
  to ~2× at worst; the memory-pattern block comes on top as on CPU;
* cuDNN convolution workspaces (``cudnn_conv_use_max_workspace`` defaults to on since ORT 1.14);
* host RAM: the process still parses the ModelProto on the host and maps the CUDA libraries.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

# The arena and memory-pattern simulation lives in its own module; re-exported for the estimator.
from advisor.estimator.mechanisms.bfc_arena import (
    Buffer,
    arena_reserved_bytes,
    bfc_touched_bytes,
    pattern_block_bytes,
    second_run_growth_bytes,
)
from advisor.estimator.mechanisms.cuda_context import CUDA_CONTEXT_BARE_BYTES
from advisor.estimator.mechanisms.glibc_heap import MMAP_THRESHOLD_MAX_BYTES, MMAP_THRESHOLD_MIN_BYTES
from advisor.estimator.types import MIB
from advisor.readers.profile import TensorInfo

# NOTE: bench: a session over a 0.45 MB CNN adds 11.5 MiB (load VmHWM above baseline); tiny MLPs
# 9-12 MiB. Thread pools, kernel registry lookups, graph and allocator structures.
CPU_SESSION_BYTES = 11 * MIB
# NOTE: measured here: chains of 10 and 3000 Abs/Sigmoid nodes on a [1, 16] tensor peak at 10.0 and
# 19.1 MiB (bench/ort_measure.py chainN.onnx '{"t0": [1, 16]}'): ~3.2 KiB per node (NodeArg,
# kernel, execution plan structures).
CPU_BYTES_PER_NODE = 3 * 1024
# NOTE: bench: of the freed ≤32 MiB load blocks, 50-100 % stay resident (the first freed mmap
# block goes back to the OS before the threshold rises); 0.75 is the middle.
HEAP_RETAINED_FRACTION = 0.75

# Ops whose weights MLAS pre-packs on CPU (onnxruntime/core/providers/cpu/math/matmul.cc,
# gemm.cc, nn/conv.cc: PrePack); pre-packed copies replace the originals after load.
PREPACK_OPS: frozenset[str] = frozenset({"MatMul", "Gemm", "Conv", "FusedConv", "FusedGemm",
                                         "MatMulInteger", "QLinearConv", "ConvTranspose", "LSTM", "GRU"})
# Ops that consume half-precision weights as they are on CPU (no upcast copy).
CPU_HALF_OK_OPS: frozenset[str] = frozenset({"Cast", "Shape", "Identity", "Reshape", "Gather",
                                             "DequantizeLinear", "Constant"})
HALF_DTYPES: frozenset[str] = frozenset({"float16", "bfloat16"})

# NOTE: the onnxruntime-CPU range, from the estimate's own error on the cases its constants were
# set on: the 2.5 % and 97.5 % quantiles of measured / predicted peak (each case by its extreme
# repeat), taking the wider of the two sets. The calibration half of the real-model set
# (bench/real_accuracy.py --fit-range; 65 cases on 24 models) gives x0.903 .. x1.408; the
# hand-built and torch-exported set (bench/accuracy.py, 61 cases; transformer exports come out
# up to 28 % high) gives x0.772 .. x1.294 and x0.841 .. x1.294 in two runs (2026-12-02). The
# held-out half (43 cases on 20 models the estimate was not fitted to) then falls inside on 43 of
# 43 (bench/results/real_accuracy_cpu.txt).
CPU_RANGE_LOW = 0.77
CPU_RANGE_HIGH = 1.41

CUDA_CONTEXT_BYTES = CUDA_CONTEXT_BARE_BYTES  # onnxruntime's CUDA EP creates a bare driver context
# NOTE: not measured (no GPU here). cuBLAS default workspace (32 MiB on Hopper, cuBLAS docs
# "cublasSetWorkspace"), cuBLASLt, cuDNN handle and lazily loaded kernel modules
# (CUDA_MODULE_LOADING=LAZY by default since CUDA 12.2): a judgement of 64-600 MiB, 160 MiB centre.
CUDA_LIBS_BYTES = 160 * MIB
CUDA_LIBS_LOW_BYTES = 64 * MIB
CUDA_LIBS_HIGH_BYTES = 600 * MIB
# NOTE: not measured: cuDNN conv algorithm search may grow the arena by its largest workspace;
# bounded here by 1 GiB for models with convolutions (range only).
CUDA_CONV_WORKSPACE_HIGH_BYTES = 1024 * MIB
# NOTE: host RSS of a process that loaded the CUDA EP, cuBLAS and cuDNN shared libraries:
# several hundred MiB of mapped library pages; a judgement, not measured here.
CUDA_HOST_LIBS_BYTES = 600 * MIB


@dataclass(frozen=True)
class WeightTerms:
    """How a model's stored weights turn into resident and transient memory on one runtime.

    Attributes:
        stored_bytes: the profile's weights (as priced by the profile, possibly transformed).
        resident_bytes: held after load (upcast copies and folded constants included).
        load_extra_bytes: extra held at the load's peak above ``resident_bytes`` (centre):
            ``retained_bytes`` plus the largest tensor too big for the heap (freed at once).
        retained_bytes: freed load blocks that stay in glibc's heap after load (reusable by the run).
        load_extra_high_bytes: the same, upper bound (a whole second copy of the weights).
        upcast_bytes: what float32 copies of half-precision weights add (CPU): the copy (2×) replaces
            the fp16 original, so +1× their stored bytes.
        largest_freed_bytes: the biggest single block the load frees into glibc's heap (a freed
            weight-sized copy ≤ 32 MiB; 128 KiB, glibc's initial mmap threshold, when none): run
            allocations bigger than this are not served from the load's leftovers.
    """

    stored_bytes: int
    resident_bytes: int
    load_extra_bytes: int
    load_extra_high_bytes: int
    upcast_bytes: int
    retained_bytes: int = 0
    largest_freed_bytes: int = MMAP_THRESHOLD_MIN_BYTES


# NOTE: bench, control_flow builder at widths 256/1024/2048 (If/Loop bodies holding 0.75/12/48 MiB
# of weights): the session holds 4.0×/4.5×/3.6× those bytes (each subgraph's session state keeps
# its own protobuf, OrtValue and pre-packed copies), and a run at batch 2048 adds only 16 MiB on
# top: the extra copies are freed heap the run reuses. 4 is the middle.
SUBGRAPH_WEIGHT_COPIES = 4


# NOTE: bench (tmp models: 2×Conv 1024→1024 3×3 = 2×36 MiB; 8×Conv 512→512 = 8×9 MiB; 32×Conv
# 256→256 = 32×2.25 MiB; bench/ort_measure.py-style probe, default options vs
# graph_optimization_level=ORT_ENABLE_EXTENDED): with the NCHWc transformer (ORT_ENABLE_ALL on
# x86-64) the load holds 3.1× / 2.9× the small filters' bytes after load (vs 1.0× without it),
# and the big filters peak at 3.5× during load (2.5× above resident) but are returned after.
# The transformer writes each reordered filter as a new initializer while the original stays in
# the graph until the optimizer ends; the originals are then freed (into glibc's heap when small).
NCHWC_SMALL_EXTRA = 2.0
NCHWC_BIG_TRANSIENT = 2.5
NCHWC_BLOCK = 8  # NOTE: MlasNchwcGetBlockSize(): 8 floats on AVX2, 16 on AVX-512 (channel counts
#                  of real nets are multiples of both; 8 is the condition that admits both)


def nchwc_filter(dims: tuple[int, int, int], group: int) -> bool:
    """Whether ORT's NCHWc transformer reorders a float Conv filter of ``(rank, out, in/group)``.

    onnxruntime/core/optimizer/nchwc_transformer.cc ``TransformConv``: 4-D float filters; output
    channels a multiple of the block; grouped convs only when depthwise; plain convs whose input
    channels are a multiple of the block or fewer than one block (the NCHW-input first layer).
    """
    rank, cout, cin_per_group = dims
    if rank != 4 or cout <= 0 or cout % NCHWC_BLOCK:
        return False
    if group > 1:
        return cin_per_group == 1 and group == cout
    return cin_per_group < NCHWC_BLOCK or cin_per_group % NCHWC_BLOCK == 0


def prepack_copies(uses: Mapping[str, list[str]], weights: Iterable[str]) -> dict[str, int]:
    """Copies of each weight that CPU pre-packing keeps, where more than one.

    Each pre-packing node packs its own copy (sharing pre-packed weights is opt-in,
    ``session.use_prepacked_weights_container``); the original is released once every consumer
    pre-packed it, and kept when another op reads it as is. NOTE: bench "shared-w": one 36 MiB
    weight read by two MatMuls peaks at 3 copies during load (2 packed + the original being
    packed) and holds 2 after.
    """
    out: dict[str, int] = {}
    for name in weights:
        ops = uses.get(name, [])
        packs = sum(op in PREPACK_OPS for op in ops)
        copies = packs + (1 if packs and len(ops) > packs else 0)
        if copies > 1:
            out[name] = copies
    return out


def weight_terms(tensors: Iterable[TensorInfo], runtime: str, *, fold_extra_bytes: int = 0,
                 external_files: Iterable[str] = (), copies: Mapping[str, int] | None = None,
                 subgraph_weights: Iterable[str] = (), nchwc_weights: Iterable[str] = ()) -> WeightTerms:
    """Resident and load-time weight memory from the profile's tensors (not from the file).

    ``copies`` (from the graph: :func:`prepack_copies`) multiplies a weight's resident bytes on CPU;
    weights inside control-flow subgraphs leave extra freed copies in the heap (CPU); Conv filters
    reordered to NCHWc (``nchwc_weights``, x86 CPU) leave two (see ``NCHWC_SMALL_EXTRA``).
    Only weights that are pre-packed or up-cast make a big transient copy at load: a big
    embedding read by ``Gather`` does not (bench: the 89 MiB word embedding of t-bert6 adds
    nothing above the resident set at load).
    """
    nchwc = set(nchwc_weights)
    nchwc_small = 0
    nchwc_big = 0
    external = set(external_files)
    in_subgraph = set(subgraph_weights)
    copies = copies or {}
    sub_extra = 0
    stored = 0
    packed_extra = 0
    upcast = 0
    small = 0
    largest_big = 0
    largest_freed = MMAP_THRESHOLD_MIN_BYTES
    for t in tensors:
        stored += t.nbytes
        if runtime == "onnxruntime-cpu" and copies.get(t.name, 1) > 1:
            packed_extra += (copies[t.name] - 1) * t.nbytes
        if runtime == "onnxruntime-cpu" and t.name in in_subgraph:
            sub_extra += (SUBGRAPH_WEIGHT_COPIES - 1) * t.nbytes
        upcast_this = runtime == "onnxruntime-cpu" and t.dtype in HALF_DTYPES and any(
            c not in CPU_HALF_OK_OPS for c in t.consumers)
        if upcast_this:
            # NOTE: bench, t-bert6 fp16 dumped with optimized_model_filepath: the 83 MiB of fp16
            # MatMul/LayerNorm weights become 166 MiB of float32 initializers and the fp16
            # originals leave the graph (the Gather-read embeddings stay fp16): +1× resident.
            upcast += t.nbytes
        packed = bool(set(t.consumers) & PREPACK_OPS)
        if t.file in external:
            # memory-mapped, no protobuf copy; pre-packing still makes one copy at a time
            largest_big = max(largest_big, t.nbytes if packed else 0)
            continue
        if runtime == "onnxruntime-cpu" and t.name in nchwc:
            if t.nbytes <= MMAP_THRESHOLD_MAX_BYTES:
                nchwc_small += t.nbytes
                largest_freed = max(largest_freed, t.nbytes)
            else:
                nchwc_big += t.nbytes
            continue
        # NOTE: an up-cast weight frees its fp16 original (1×) and, when pre-packed, its folded
        # float32 copy too (2×): bench fp16-mlp-2k holds ~4.3× its fp16 bytes after load
        # (2× resident + 0.75 × 3× freed), t-vit_small fp16 ~4.0×.
        half = upcast_this and packed
        size = 3 * t.nbytes if half else t.nbytes
        if 0 < size <= MMAP_THRESHOLD_MAX_BYTES:
            small += size
            largest_freed = max(largest_freed, 2 * t.nbytes if half else t.nbytes)
        elif packed or upcast_this:
            largest_big = max(largest_big, 2 * t.nbytes if upcast_this else t.nbytes)
    fold = max(0, fold_extra_bytes)
    if runtime == "onnxruntime-cuda":
        # The device receives each initializer once; the protobuf copy stays on the host.
        return WeightTerms(stored, stored + fold, 0, fold, 0)
    retained = int(small * HEAP_RETAINED_FRACTION) + fold + sub_extra + int(NCHWC_SMALL_EXTRA * nchwc_small)
    largest_big = max(largest_big, int(NCHWC_BIG_TRANSIENT * nchwc_big))
    extra = retained + largest_big
    high = small + largest_big + fold + upcast + sub_extra + int(NCHWC_SMALL_EXTRA * nchwc_small * 1.2)
    return WeightTerms(stored, stored + upcast + fold + packed_extra, extra, max(extra, high), upcast, retained,
                       largest_freed)


def session_bytes(runtime: str, n_nodes: int) -> int:
    """Fixed session cost on the compute device (CUDA: context and libraries)."""
    if runtime == "onnxruntime-cuda":
        return CUDA_CONTEXT_BYTES + CUDA_LIBS_BYTES
    return CPU_SESSION_BYTES + n_nodes * CPU_BYTES_PER_NODE


__all__ = [
    "MMAP_THRESHOLD_MAX_BYTES", "Buffer", "WeightTerms", "arena_reserved_bytes", "bfc_touched_bytes", "nchwc_filter",
    "pattern_block_bytes", "prepack_copies", "second_run_growth_bytes", "session_bytes", "weight_terms",
]
