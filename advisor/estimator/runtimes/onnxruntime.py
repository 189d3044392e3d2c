"""onnxruntime (CPU or CUDA): the whole estimate of an ONNX model, weights + activations + runtime.

Weights come from the profile's tensors (so a transformed profile — weights re-priced as int8 —
gives a different answer) and how onnxruntime holds them at load
(:mod:`advisor.estimator.runtimes.onnxruntime_weights`); activations from the graph as the session
runs it (:mod:`advisor.estimator.runtimes.onnxruntime_graph`); the range from the estimate's own
error on real models (``CPU_RANGE_LOW``/``CPU_RANGE_HIGH``).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from advisor.errors import ModelFormatError
from advisor.estimator.file_cache import FileCache, file_key
from advisor.estimator.mechanisms import ort_ml
from advisor.estimator.mechanisms.shapes import infer_shapes, resolve_inputs
from advisor.estimator.runtimes import onnxruntime_weights as ort
from advisor.estimator.types import Estimate, Workload
from advisor.hardware.profile import HardwareProfile
from advisor.readers.profile import ModelProfile
from advisor.units import format_bytes

if TYPE_CHECKING:
    import onnx

from advisor.estimator.runtimes.onnxruntime_graph import GraphMemory, cpu_kernel_target, graph_memory

_skeletons: FileCache[onnx.ModelProto] = FileCache(4)
_walks: FileCache[GraphMemory] = FileCache(64)


def _skeleton(path: str) -> onnx.ModelProto:
    from advisor.readers.onnx_skeleton import load_skeleton

    try:
        key = file_key(path)
    except OSError as exc:
        raise ModelFormatError(f"cannot read the model ({exc.strerror})", path) from None
    return _skeletons.get_or_make(key, lambda: load_skeleton(Path(path)))


def estimate(profile: ModelProfile, workload: Workload, runtime: str,
                  hardware: HardwareProfile) -> Estimate:
    """Predict the peak memory of running the ONNX model ``profile`` under ``workload``.

    Raises:
        WorkloadError: an explicit input shape names a missing input or has the wrong rank.
        ModelFormatError: the model file cannot be read.
    """
    # NOTE: ORT's behaviour does not depend on the target's size; only x86-64 CPUs get NCHWc
    # (MLAS reports an NCHWc block size only there: onnxruntime/core/mlas/lib/snchwc.cpp).
    x86 = (hardware.cpu.arch or "x86_64").lower() in ("x86_64", "amd64", "x86", "i686")
    skeleton = _skeleton(profile.load_path)
    ins = resolve_inputs(skeleton, workload, profile.load_path)
    inferred, problem = infer_shapes(skeleton, ins.shapes, profile.load_path)
    cuda = runtime == "onnxruntime-cuda"
    kernels = None if cuda else cpu_kernel_target(hardware)
    quantized = frozenset(t.name.removesuffix("_quantized") for t in profile.tensors
                          if t.name.endswith("_quantized") and t.dtype == "int8") \
        if profile.graph_rewrite == "int8-dynamic" else None

    def walk() -> GraphMemory:
        graph = inferred
        if quantized is not None:
            from advisor.estimator.mechanisms.ort_quantize_dynamic import dynamic_int8_graph

            graph = dynamic_int8_graph(inferred, quantized)
        return graph_memory(graph, count_inputs=cuda, kernels=kernels)

    # The walk depends on the file, its input shapes, the graph rewrite and the kernels, not on the
    # weights' types: a plan's as-is, fp16, int8 and int4 options share one walk.
    try:
        key = (*file_key(profile.load_path), tuple(sorted(ins.shapes.items())), quantized, cuda, kernels)
    except OSError:
        key = None
    gm = walk() if key is None else _walks.get_or_make(key, walk)
    notes = list(ins.notes)
    wide = 1.0
    if problem:
        notes.append(f"shape inference failed ({problem}); activations are bounded, range widened")
        wide = 2.0
    if gm.unknown_tensors:
        notes.append(f"{gm.unknown_tensors} tensor(s) of unknown shape (data-dependent or unknown ops) "
                     "counted as large as the largest known one")
        wide = max(wide, 1.5)
    # ai.onnx.ml parameters held in node attributes are priced by advisor.estimator.mechanisms.ort_ml
    held, tensors = ort_ml.split_attribute_weights(profile.tensors)
    wt = ort.weight_terms(tensors, runtime, fold_extra_bytes=gm.fold_extra_bytes,
                          external_files=profile.files[1:], copies=gm.weight_copies,
                          subgraph_weights=gm.subgraph_weights,
                          nchwc_weights=gm.nchwc_weights if x86 and not cuda else frozenset())
    wt = ort_ml.with_attribute_terms(wt, held, runtime)
    session = ort.session_bytes(runtime, gm.n_nodes)
    p = _cuda(wt, gm, session, wide, notes) if cuda else _cpu(wt, gm, session, wide, notes)
    return Estimate(runtime=runtime, device="cuda" if cuda else "cpu", weights_bytes=p.weights_bytes,
                    activation_bytes=p.activation_bytes, kv_cache_bytes=0, overhead_bytes=p.overhead_bytes,
                    peak_bytes=p.peak_bytes, low_bytes=p.low_bytes, high_bytes=p.high_bytes,
                    host_bytes=p.host_bytes, notes=tuple(notes), unknown_dims=ins.unknown_dims,
                    resolved_inputs=dict(ins.shapes), flops=gm.flops,
                    traffic_bytes=wt.resident_bytes + 2 * max(0, gm.sum_bytes), nodes=gm.n_nodes)


@dataclass(frozen=True)
class _Parts:
    weights_bytes: int
    activation_bytes: int
    overhead_bytes: int
    peak_bytes: int
    low_bytes: int
    high_bytes: int
    host_bytes: int | None


def _cpu(wt: ort.WeightTerms, gm: GraphMemory, session: int, wide: float,
         notes: list[str]) -> _Parts:
    run = gm.arena_touched_bytes + gm.pattern_block_bytes
    # Arena regions no bigger than the largest block the load freed reuse the load's leftovers;
    # bigger ones are fresh pages on top of them.
    # NOTE: bench, t-resnet18 8×224² (largest freed filter 9 MiB): with MALLOC_MMAP_THRESHOLD_=128K
    # (no heap leftovers) the run adds 58 MiB above the load; by default it adds 55 MiB on top of
    # 110 MiB of leftovers — none reused: its two 32 MiB arena regions are
    # bigger than any freed load block (free chunks are weight-sized; glibc serves a request from
    # one chunk, and the dynamic mmap threshold is the largest freed mmap-ed block).
    heap_run = sum(t1 + g for size, t1, g in gm.arena_regions if size <= wt.largest_freed_bytes)
    reuse = min(wt.retained_bytes, heap_run if gm.arena_regions else gm.heap_run_bytes)
    peak = wt.resident_bytes + session + wt.retained_bytes + max(wt.load_extra_bytes - wt.retained_bytes,
                                                                 run - reuse)
    # The range is the error this estimate makes on real models it was not fitted to: the quantiles
    # of measured / predicted on the calibration half (ort.CPU_RANGE_LOW/HIGH), widened when shapes
    # stayed unknown (``wide``). It cannot fall below the weights that are resident after load.
    low = max(wt.resident_bytes, int(peak * ort.CPU_RANGE_LOW / wide))
    high = int(peak * ort.CPU_RANGE_HIGH * wide)
    activations = run
    notes.append(f"weights {format_bytes(wt.resident_bytes)} resident after load"
                 + (f" (incl. +{format_bytes(wt.upcast_bytes)} for float32 copies of half-precision weights: "
                    "the CPU runtime has no fp16 kernels for them)" if wt.upcast_bytes else ""))
    notes.append(f"activations: liveness peak {format_bytes(gm.peak_bytes)}; the arena touches "
                 f"~{format_bytes(gm.arena_touched_bytes)} in the first run, the memory-pattern block adds "
                 f"{format_bytes(gm.pattern_block_bytes)} from the second")
    if wt.load_extra_bytes - wt.retained_bytes > run - reuse:
        notes.append(f"the peak is reached while loading: ~{format_bytes(wt.load_extra_bytes)} of freed protobuf and "
                     "pre-pack copies stay in the heap")
    notes.append(f"input arrays ({format_bytes(gm.input_bytes)}) are the caller's and not included")
    return _Parts(wt.resident_bytes, activations, max(session, peak - wt.resident_bytes - activations),
                  peak, min(low, peak), max(high, peak), None)


def _cuda(wt: ort.WeightTerms, gm: GraphMemory, session: int, wide: float,
          notes: list[str]) -> _Parts:
    arena = max(gm.arena_reserved_bytes, gm.peak_bytes)
    activations = arena + gm.pattern_block_bytes
    peak = wt.resident_bytes + session + activations
    base_low = ort.CUDA_CONTEXT_BYTES + ort.CUDA_LIBS_LOW_BYTES
    base_high = ort.CUDA_CONTEXT_BYTES + ort.CUDA_LIBS_HIGH_BYTES
    low = base_low + wt.resident_bytes + gm.peak_bytes
    high = (base_high + wt.resident_bytes + int(wt.resident_bytes * 0.05)
            + int((2 * arena + gm.pattern_block_bytes) * wide)
            + (ort.CUDA_CONV_WORKSPACE_HIGH_BYTES if gm.has_conv else 0))
    host = ort.CUDA_HOST_LIBS_BYTES + ort.CPU_SESSION_BYTES + wt.stored_bytes
    notes.append(f"CUDA context and libraries ~{format_bytes(session)} (527 MiB bare context measured on an H100, "
                 "driver 580; cuBLAS/cuDNN on top — not measured on this build machine)")
    notes.append(f"activations: liveness peak {format_bytes(gm.peak_bytes)} (inputs copied to the device included), "
                 f"arena regions double → {format_bytes(arena)} reserved, plus the memory-pattern block")
    if gm.has_conv:
        notes.append("cuDNN convolution workspaces can add up to ~1 GiB (in the high end of the range)")
    notes.append(f"host RAM: the model is parsed on the host during load (~{format_bytes(host)} incl. CUDA libraries)")
    return _Parts(wt.resident_bytes, activations, session, peak, min(low, peak), max(high, peak), host)
