"""An ONNX graph as onnxruntime runs it on one workload: every intermediate tensor's size and life.

:func:`graph_memory` walks the shape-inferred skeleton (:mod:`advisor.estimator.mechanisms.shapes`)
node by node (:mod:`advisor.estimator.mechanisms.liveness`), after the rewrites onnxruntime's CPU
session makes (fusions, NCHWc layout, QDQ fusions, inlined functions, kernel working buffers:
:mod:`advisor.estimator.mechanisms.ort_fusions`, ``ort_nchwc``, ``ort_quant``, ``ort_kernels``), and
replays the allocations through the BFC arena and the memory-pattern planner
(:mod:`advisor.estimator.mechanisms.bfc_arena`). Weights are not counted here
(:mod:`advisor.estimator.runtimes.onnxruntime_weights`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING

from advisor import onnx_lite
from advisor.dtypes import nbytes, onnx_dtype
from advisor.errors import AdvisorError
from advisor.estimator.mechanisms.liveness import Liveness, Step, activation_peak, outer_reads
from advisor.estimator.mechanisms.ort_fusions import fuse_steps
from advisor.estimator.mechanisms.ort_kernels import (
    NCHWC_BLOCK_AVX2,
    NCHWC_BLOCK_AVX512,
    cpu_kernel_scratch_bytes,
    default_intra_op_threads,
)
from advisor.estimator.mechanisms.ort_nchwc import nchwc_steps
from advisor.estimator.runtimes import onnxruntime_weights as ort
from advisor.hardware.profile import HardwareProfile

if TYPE_CHECKING:
    import onnx

# Ops never constant-folded (random, or with side effects).
_NO_FOLD = frozenset({"RandomNormal", "RandomUniform", "RandomNormalLike", "RandomUniformLike",
                      "Multinomial", "Bernoulli", "If", "Loop", "Scan", "DequantizeLinear",
                      "QuantizeLinear"})
_CONTROL_FLOW = frozenset({"If", "Loop", "Scan"})
# Ops whose CPU kernels take a working buffer outside the graph (advisor.estimator.mechanisms.ort_kernels).
KERNEL_SCRATCH_OPS = frozenset({"Conv", "FusedConv", "ConvTranspose", "Softmax", "LogSoftmax"})


@dataclass(frozen=True)
class GraphMemory:
    """Activation facts of one shape-inferred graph.

    Attributes:
        peak_bytes: liveness peak, graph outputs included (the first run's arena use).
        pattern_bytes: liveness peak with graph outputs left out.
        input_bytes / output_bytes: graph inputs and outputs.
        sum_bytes: every activation buffer added up (what naive tools report).
        fold_extra_bytes: net bytes constant folding adds to the weights.
        n_nodes: nodes, subgraphs included.
        unknown_tensors: tensors whose shape stayed unknown (bounded by the largest known one).
        has_conv: whether convolutions run (cuDNN workspaces on CUDA).
        weight_copies: weight name → how many copies ORT's CPU pre-packing keeps (only names
            with more than one).
        subgraph_weights: weights that live inside If/Loop/Scan bodies.
        nchwc_weights: Conv filters ORT's x86 NCHWc layout transformer reorders (see
            :func:`advisor.estimator.runtimes.onnxruntime_weights.nchwc_filter`).
        arena_touched_bytes / arena_reserved_bytes: the BFC arena after one run (simulated).
        pattern_block_bytes: new pages the second run touches (simulated): the memory-pattern
            block is allocated from the arena the first run left free, and outputs and scratch
            around it (see :func:`advisor.estimator.runtimes.onnxruntime_weights.second_run_growth_bytes`).
        pattern_low_bytes: the memory-pattern block itself (traced tensors: no graph outputs, no
            kernel scratch).
        heap_run_bytes: run pages in arena regions ≤ 32 MiB (glibc's largest heap request).
        flops: floating-point operations of one run (multiply-adds count 2) in the ops that
            dominate it — Conv/ConvTranspose, MatMul/Gemm and their integer/quantized forms —
            from the inferred shapes (:func:`node_flops`); 0 when no shape is known.
        arena_regions: per BFC arena region, ``(size, touched by the first run, touched on top
            by the second)``; the CPU estimate lets regions no bigger than the largest freed load
            block reuse the load's heap leftovers.
    """

    peak_bytes: int
    pattern_bytes: int
    input_bytes: int
    output_bytes: int
    sum_bytes: int
    fold_extra_bytes: int
    n_nodes: int
    unknown_tensors: int
    has_conv: bool
    weight_copies: dict[str, int] = field(default_factory=dict)
    subgraph_weights: frozenset[str] = frozenset()
    nchwc_weights: frozenset[str] = frozenset()
    arena_touched_bytes: int = 0
    arena_reserved_bytes: int = 0
    pattern_block_bytes: int = 0
    pattern_low_bytes: int = 0
    heap_run_bytes: int = 0
    arena_regions: tuple[tuple[int, int, int], ...] = ()
    flops: int = 0


def _tensor_bytes(vi: onnx.ValueInfoProto) -> int | None:
    """Bytes of a value with a fully known shape, else None."""
    tt = vi.type.tensor_type
    if not vi.type.HasField("tensor_type") or not tt.HasField("shape"):
        return None
    n = 1
    for d in tt.shape.dim:
        if not d.HasField("dim_value") or d.dim_value < 0:
            return None
        n *= d.dim_value
    try:
        return nbytes(onnx_dtype(tt.elem_type), n)
    except AdvisorError:
        return None


def _init_bytes(t: onnx.TensorProto) -> int:
    n = 1
    for d in t.dims:
        n *= d
    try:
        return nbytes(onnx_dtype(t.data_type), n)
    except AdvisorError:
        return 0


# Ops whose output holds as many elements as their first input (reshapes, permutations, unary
# element-wise ops and normalizations), ops whose output is as large as their largest input
# (broadcasting element-wise), and reductions (no bigger than the input). Used only for tensors
# shape inference could not size.
_SIZE_KEEPING_OPS = frozenset({
    "Reshape", "Flatten", "Squeeze", "Unsqueeze", "Identity", "Dropout", "Transpose", "Cast", "CastLike",
    "Relu", "LeakyRelu", "Sigmoid", "Tanh", "Elu", "Selu", "HardSigmoid", "HardSwish", "Softplus", "Softsign",
    "Clip", "Neg", "Abs", "Exp", "Log", "Sqrt", "Reciprocal", "Floor", "Ceil", "Erf", "Round", "Sign", "Sin",
    "Cos", "Not", "IsNaN", "IsInf", "Softmax", "LogSoftmax", "Gelu", "FastGelu", "QuickGelu", "Mish",
    "BatchNormalization", "LayerNormalization", "InstanceNormalization", "SimplifiedLayerNormalization",
    "QuantizeLinear", "DequantizeLinear",
})
_BROADCAST_OPS = frozenset({"Add", "Sub", "Mul", "Div", "Pow", "Max", "Min", "Sum", "Mean", "Where", "Equal",
                            "Less", "Greater", "LessOrEqual", "GreaterOrEqual", "And", "Or", "Xor", "Mod",
                            "PRelu", "BiasGelu"})
_REDUCING_OPS = frozenset({"ReduceMax", "ReduceMin", "ReduceMean", "ReduceSum", "ReduceProd", "ReduceSumSquare",
                           "ReduceL1", "ReduceL2", "ReduceLogSum", "ReduceLogSumExp", "ArgMax", "ArgMin",
                           "GlobalAveragePool", "GlobalMaxPool", "Slice"})


def _filter_dims(t: onnx.TensorProto) -> tuple[int, int, int]:
    """``(rank, dim 0, dim 1)`` of a float weight (what the NCHWc filter rule reads), zeros otherwise."""
    if t.data_type != 1:
        return (0, 0, 0)
    return (len(t.dims), t.dims[0] if t.dims else 0, t.dims[1] if len(t.dims) > 1 else 0)


def _elem_ratio(out_type: int | None, in_type: int | None) -> float:
    """Bytes per element of ``out_type`` over those of ``in_type`` (1 when either is unknown)."""
    try:
        if out_type and in_type:
            return nbytes(onnx_dtype(out_type), 1) / nbytes(onnx_dtype(in_type), 1)
    except AdvisorError:
        pass
    return 1.0


@dataclass(frozen=True)
class KernelTarget:
    """What a CPU kernel's working buffers depend on: MLAS's thread count and the NCHWc block."""

    threads: int
    nchwc_block: int | None


def cpu_kernel_target(hardware: HardwareProfile) -> KernelTarget:
    """The target's intra-op threads (one per physical core, onnxruntime's default) and NCHWc block
    (x86-64 only: 16 floats with AVX-512, else 8; onnxruntime/core/mlas/lib/platform.cpp)."""
    cores = hardware.cpu.physical_cores or hardware.cpu.logical_cores or 1
    arch = (hardware.cpu.arch or "x86_64").lower()
    block = None
    if arch in ("x86_64", "amd64", "x86", "i686"):
        block = NCHWC_BLOCK_AVX512 if "avx512f" in hardware.cpu.features else NCHWC_BLOCK_AVX2
    return KernelTarget(default_intra_op_threads(cores), block)


class _Walker:
    """Builds liveness steps for a graph and its subgraphs, with sizes from shape inference."""

    def __init__(self, model: onnx.ModelProto, kernels: KernelTarget | None = None) -> None:
        self.kernels = kernels
        self.opset = next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), 13)
        self.shape: dict[str, tuple[int, ...]] = {}
        self.perm: dict[str, tuple[int, ...]] = {}
        self.known: dict[str, int] = {}
        self.width: dict[str, int] = {}
        self.unknown: set[str] = set()
        self.weights: set[str] = set()
        self.weight_bytes: dict[str, int] = {}
        self.fold_out: dict[str, int] = {}
        self.fold_in: set[str] = set()
        self.compute_reads: set[str] = set()
        self.n_nodes = 0
        self.flops = 0
        self.has_conv = False
        self.uses: dict[str, list[str]] = {}
        self.sub_weights: set[str] = set()
        self.nchwc: set[str] = set()
        self.init_dims: dict[str, tuple[int, int, int]] = {}
        self._collect(model.graph, 0)
        # Tensors onnxruntime's CPU QDQ fusions never allocate (a fused weight DequantizeLinear's
        # float output, the float result between an op and its QuantizeLinear...): see
        # advisor.estimator.mechanisms.ort_quant. int8 activations block fusion on x86 (only ARM allows them).
        self.fused: frozenset[str] = frozenset()
        if kernels is not None and any(n.op_type in ("DequantizeLinear", "DynamicQuantizeLinear")
                                       for n in model.graph.node):
            from advisor.estimator.mechanisms.ort_quant import fused_away_tensors

            self.fused = fused_away_tensors(model.graph, level="all", int8_allowed=kernels.nchwc_block is None)

    def _collect(self, g: onnx.GraphProto, depth: int) -> None:
        for vi in (*g.input, *g.output, *g.value_info):
            size = _tensor_bytes(vi)
            if size is not None:
                self.known[vi.name] = size
                dims = vi.type.tensor_type.shape.dim
                self.shape[vi.name] = tuple(int(d.dim_value) for d in dims)
                self.width[vi.name] = dims[len(dims) - 1].dim_value if len(dims) else 0
        for t in g.initializer:
            self.weights.add(t.name)
            self.weight_bytes[t.name] = _init_bytes(t)
            self.shape[t.name] = tuple(int(d) for d in t.dims)
            self.init_dims[t.name] = _filter_dims(t)
            if depth:
                self.sub_weights.add(t.name)
        for sp in g.sparse_initializer:
            self.weights.add(sp.values.name)
        for node in g.node:
            if node.op_type == "Constant":
                value = next((at.t for at in node.attribute if at.name == "value" and at.HasField("t")), None)
                if value is not None and node.output:
                    # Paddle exports keep every weight in a Constant node, not an initializer
                    self.weight_bytes[node.output[0]] = _init_bytes(value)
                    self.shape[node.output[0]] = tuple(int(d) for d in value.dims)
                    self.init_dims[node.output[0]] = _filter_dims(value)
                if depth:
                    self.sub_weights.update(node.output)
            for attr in node.attribute:
                for sub in (*([attr.g] if attr.HasField("g") else []), *attr.graphs):
                    self._collect(sub, depth + 1)
        self._propagate(g)

    def _propagate(self, g: onnx.GraphProto) -> None:
        """Sizes of tensors shape inference left unknown, from what their op preserves.

        onnx's inference stops at a Reshape whose target it cannot evaluate (tf2onnx's Tensordot
        builds it from Shape → Slice → Concat pieces), and every tensor after it is unknown. But a
        Reshape, a Transpose or an element-wise op keeps the element count of its input exactly
        (a broadcasting one: that of its largest input), so those sizes follow from the input's;
        a reduction is no bigger than its input. Only what this cannot reach (a MatMul of unknown
        shape, a data-dependent op) stays unknown and is bounded by the largest known tensor.
        """
        elem = {vi.name: vi.type.tensor_type.elem_type
                for vi in (*g.input, *g.output, *g.value_info) if vi.type.HasField("tensor_type")}
        for node in g.node:
            outs = [o for o in node.output if o and o not in self.known]
            if not outs or node.op_type == "Constant":
                continue
            ins = [n for n in node.input if n and n not in self.weights]
            sizes = [self.known[n] for n in ins if n in self.known]
            if node.op_type in _SIZE_KEEPING_OPS and ins and ins[0] in self.known:
                size = self.known[ins[0]]
                ratio = _elem_ratio(elem.get(outs[0]), elem.get(ins[0]))
                self.known[outs[0]] = int(size * ratio)
            elif node.op_type in _BROADCAST_OPS and sizes and len(sizes) == len(ins):
                self.known[outs[0]] = int(max(sizes) * _elem_ratio(elem.get(outs[0]), elem.get(ins[0])))
            elif node.op_type in _REDUCING_OPS and ins and ins[0] in self.known:
                self.known[outs[0]] = self.known[ins[0]]
            elif node.op_type == "Shape":
                self.known[outs[0]] = 64  # a 1-D int64 shape: rank × 8 bytes
        if self._bound_from_consumers(g, elem):
            self._propagate(g)

    def _bound_from_consumers(self, g: onnx.GraphProto, elem: dict[str, int]) -> bool:
        """Sizes of unknown tensors bounded by the consumer that reads them (a backward pass).

        A data-dependent tensor (a Range over a loop counter, a Tile by a computed count) often
        feeds an op whose output is known: the ops of ``_SIZE_KEEPING_OPS`` read exactly as many
        elements as they write; Tile and Expand never shrink (repeats ≥ 1, a broadcast only
        grows), so their input is no bigger than the output; ScatterElements without a reduction
        reads ``indices`` and ``updates`` no bigger than ``data`` (onnxruntime/core/providers/cpu/
        tensor/scatter.cc ``ScatterElements::Compute``: indices dims ≤ data dims off the axis, and
        the ONNX spec forbids duplicate indices, so along the axis too). Without this, the small
        index tensors a decoder loop builds with Range/Reshape/Tile/Expand to scatter one step's
        result into its output buffer were each bounded by the largest feature map of the graph
        (onnxruntime's profiler shows them at 8-240 bytes).
        Returns whether anything new got a size.
        """
        found = False

        def bound(name: str, src: str) -> None:
            nonlocal found
            if name and name not in self.known and name not in self.weights and src in self.known:
                self.known[name] = int(self.known[src] * _elem_ratio(elem.get(name), elem.get(src)))
                found = True

        for node in reversed(g.node):
            ins, outs = list(node.input), [o for o in node.output if o]
            if not ins or not outs:
                continue
            if node.op_type == "ScatterElements" and len(ins) == 3 and not any(
                    a.name == "reduction" and a.s not in (b"", b"none") for a in node.attribute):
                bound(ins[1], ins[0])
                bound(ins[2], ins[0])
            elif node.op_type in _SIZE_KEEPING_OPS or node.op_type in ("Tile", "Expand"):
                bound(ins[0], outs[0])
        return found

    def size(self, name: str) -> int:
        if name in self.fused:
            return 0
        if name in self.known:
            return self.known[name]
        self.unknown.add(name)
        return -1

    def steps(self, g: onnx.GraphProto) -> tuple[list[Step], set[str]]:
        """Steps of ``g`` in order, and the outer names ``g`` reads."""
        steps: list[Step] = []
        local = {t.name for t in g.initializer} | {v.name for v in g.input}
        for node in g.node:
            self.n_nodes += 1
            if node.op_type == "Transpose" and node.output:
                perm = next((tuple(a.ints) for a in node.attribute if a.name == "perm"), None)
                if perm:
                    self.perm[node.output[0]] = perm
            self.has_conv |= node.op_type in ("Conv", "ConvTranspose")
            if node.op_type == "Conv" and len(node.input) > 1 and node.input[1] in self.init_dims:
                group = next((a.i for a in node.attribute if a.name == "group"), 1)
                if ort.nchwc_filter(self.init_dims[node.input[1]], group):
                    self.nchwc.add(node.input[1])
            ins = [n for n in node.input if n]
            for n in ins:
                self.uses.setdefault(n, []).append(node.op_type)
            if node.op_type == "Constant" or (
                    ins and node.op_type not in _NO_FOLD and all(n in self.weights for n in ins)):
                self.weights.update(node.output)
                if node.op_type != "Constant":
                    self.fold_out.update((o, max(0, self.known.get(o, 0))) for o in node.output if o)
                    self.fold_in.update(ins)
                continue
            self.compute_reads.update(ins)
            self.flops += node_flops(node, self.shape)
            scratch = 0
            reads: set[str] = set()
            for attr in node.attribute:
                subs = ([attr.g] if attr.HasField("g") else []) + list(attr.graphs)
                peaks = []
                for sub in subs:
                    sub_steps, sub_reads = self.steps(sub)
                    reads |= sub_reads
                    peaks.append(self.peak(sub, sub_steps, count_inputs=True).peak_bytes)
                if peaks:
                    scratch = max(scratch, max(peaks))
            scratch = max(scratch, self.rnn_scratch(node), self.kernel_scratch(node), self.qlinear_scratch(node))
            steps.append(Step(node.op_type, tuple(ins) + tuple(sorted(reads)), tuple(node.output), scratch))
        outer = outer_reads(local, [(s.inputs, s.outputs) for s in steps])
        return steps, outer - self.weights

    def qlinear_scratch(self, node: onnx.NodeProto) -> int:
        """int32 product buffer of a MatMul the QDQ fusion turns into QLinearMatMul.

        ``QLinearMatMul::Compute`` (onnxruntime/core/providers/cpu/quantization/
        quantize_linear_matmul.cc) takes ``M * N * sizeof(int32_t) * num_gemms`` bytes from the
        temp-space allocator (the arena) for MLAS's int32 result, then requantizes into the uint8
        output. The fused unit is recognised as a MatMul whose inputs and output are all fused away
        (DQ inputs, a Q after it). NOTE: measured, onnxruntime 1.32 CPU (bench/micro/
        qlinear_matmul.py): uint8 [4096, 1024] × int8 [1024, 1024], A a graph input: arena peak
        21.0 MiB = 4 MiB output + 16 MiB int32. The buffer is one arena request, so a big one also
        lands in its own region (the BFC simulation places it).
        """
        if node.op_type != "MatMul" or not self.fused or not node.output or node.output[0] not in self.fused:
            return 0
        if not all(n in self.fused for n in node.input if n):
            return 0
        dims = self.shape.get(node.output[0])
        if not dims:
            return 0
        n = 1
        for d in dims:
            n *= d
        return 4 * n

    def rnn_scratch(self, node: onnx.NodeProto) -> int:
        """Gate buffer of ORT's CPU RNN kernels: seq × batch × gates × hidden floats per direction
        (onnxruntime/core/providers/cpu/rnn/deep_cpu_lstm.cc ``output_iofc_``, deep_cpu_gru.cc
        ``outputZRH_``)."""
        gates = {"LSTM": 4, "GRU": 3, "RNN": 1}.get(node.op_type)
        if gates is None or not node.input:
            return 0
        x = self.known.get(node.input[0])
        hidden = next((a.i for a in node.attribute if a.name == "hidden_size"), 0)
        width = self.width.get(node.input[0], 0)
        dirs = 2 if any(a.name == "direction" and a.s == b"bidirectional" for a in node.attribute) else 1
        if not x or not width or not hidden:
            return 0
        return x // width * gates * hidden * dirs  # x bytes / input width = seq·batch·elem bytes

    def kernel_scratch(self, node: onnx.NodeProto) -> int:
        """Working buffers the CPU kernel takes while ``node`` runs (im2col of a ConvTranspose,
        Softmax over a non-last axis...): :func:`advisor.estimator.mechanisms.ort_kernels.cpu_kernel_scratch_bytes`."""
        if self.kernels is None or node.op_type not in KERNEL_SCRATCH_OPS:
            return 0
        attrs: dict[str, object] = {a.name: onnx_lite.attribute_value(a) for a in node.attribute
                                    if a.type in (onnx_lite.ATTR_INT, onnx_lite.ATTR_INTS)}
        attrs["opset"] = self.opset
        ins = [self.shape.get(n) for n in node.input]
        outs = [self.shape.get(n) for n in node.output]
        return cpu_kernel_scratch_bytes(node.op_type, attrs, ins, outs, 4, threads=self.kernels.threads,
                                        nchwc_block=self.kernels.nchwc_block)

    def sizes(self, names: set[str]) -> dict[str, int]:
        bound = max((v for k, v in self.known.items() if k not in self.weights), default=0)
        return {n: (s if (s := self.size(n)) >= 0 else bound) for n in names}

    def peak(self, g: onnx.GraphProto, steps: list[Step], *, count_inputs: bool,
             drop_outputs: bool = False) -> Liveness:
        names = {n for s in steps for n in (*s.inputs, *s.outputs)} | {v.name for v in g.input}
        names |= {v.name for v in g.output}
        sizes = self.sizes(names - self.weights)
        if drop_outputs:
            for v in g.output:
                sizes[v.name] = 0
        return activation_peak(steps, sizes, graph_inputs=[v.name for v in g.input],
                               graph_outputs=[v.name for v in g.output], weights=self.weights,
                               count_inputs=count_inputs)


_MATMUL_OPS = frozenset({"MatMul", "MatMulInteger", "QLinearMatMul", "FusedMatMul", "MatMulNBits", "Gemm"})
_CONV_OPS = frozenset({"Conv", "ConvInteger", "QLinearConv", "FusedConv"})


def node_flops(node: onnx.NodeProto, shape: dict[str, tuple[int, ...]]) -> int:
    """Operations of one node (a multiply-add counts 2), for the ops that dominate a run.

    A convolution does, per output element, one multiply-add per filter weight of its group:
    ``2 · |W| · |Y| / C_out`` (``|W| = C_out · C_in/g · k…``); ConvTranspose spreads each input
    element over its filter: ``2 · |W| · |X| / C_in``; a matrix product does ``2 · K`` per output
    element. Other ops do a few operations per element and are left out (they are bound by
    memory, not arithmetic). 0 when a shape is unknown.
    """
    def elems(name: str) -> int:
        dims = shape.get(name)
        if not dims or any(d <= 0 for d in dims):
            return 0
        return math.prod(dims)

    op, ins = node.op_type, list(node.input)
    out = node.output[0] if node.output else ""
    if op in _CONV_OPS:
        w = ins[3] if op == "QLinearConv" else ins[1] if len(ins) > 1 else ""
        y, wd = shape.get(out), shape.get(w)
        if y and wd and len(y) > 1 and y[1] > 0:
            return 2 * elems(w) * elems(out) // y[1]
    elif op == "ConvTranspose" and len(ins) > 1:
        x = shape.get(ins[0])
        if x and len(x) > 1 and x[1] > 0:
            return 2 * elems(ins[1]) * elems(ins[0]) // x[1]
    elif op in _MATMUL_OPS and ins:
        a = shape.get(ins[0])
        if a:
            trans_a = op == "Gemm" and any(at.name == "transA" and at.i for at in node.attribute)
            k = a[0] if trans_a and len(a) == 2 else a[-1]
            return 2 * elems(out) * max(0, k)
    return 0


def graph_memory(model: onnx.ModelProto, *, count_inputs: bool, kernels: KernelTarget | None = None) -> GraphMemory:
    """Activation facts of a shape-inferred ``model`` (see :class:`GraphMemory`)."""
    w = _Walker(model, kernels)
    steps, _ = w.steps(model.graph)
    g = model.graph
    if kernels is not None:
        # onnxruntime's CPU fusions remove the intermediates of GELU, LayerNorm, SiLU... (ort_fusions)
        steps, made = fuse_steps(steps, weights=w.weights, graph_outputs=[v.name for v in g.output],
                                 shapes=w.shape, perms=w.perm, sizes=w.known)
        w.known.update(made)
    if kernels is not None and kernels.nchwc_block and w.nchwc:
        # x86-64: the NCHWc rewrite pads blocked activations and adds reorder copies (ort_nchwc)
        steps, blocked = nchwc_steps(steps, w.shape, nchwc_convs=w.nchwc, weights=w.weights,
                                     graph_outputs=[v.name for v in g.output], block=kernels.nchwc_block)
        w.known.update(blocked)
    full = w.peak(g, steps, count_inputs=count_inputs)
    pattern = w.peak(g, steps, count_inputs=count_inputs, drop_outputs=True)
    sizes = w.sizes({v.name for v in (*g.input, *g.output)} - w.weights)
    # Constant folding keeps only the folded values a computing node (or the caller) reads; the
    # intermediates of a folded chain (w → Transpose → Reshape) and the originals nothing else
    # reads are freed (onnxruntime/core/optimizer/constant_folding.cc replaces the folded node's
    # output by a new initializer and removes nodes and initializers left without consumers).
    kept = w.compute_reads | {v.name for v in g.output}
    folded = sum(size for name, size in w.fold_out.items() if name in kept)
    dropped = sum(w.weight_bytes.get(n, 0) for n in w.fold_in if n not in kept)
    touched, reserved, small = ort.bfc_touched_bytes(full.buffers)
    # ORT's memory pattern holds only the OrtValues the first run traced: graph outputs
    # (``kAllocateOutput``) and kernels' own scratch (RNN gates, subgraph sessions) are not traced
    # (onnxruntime/core/framework/execution_frame.cc ``TraceAllocate``). The block is allocated
    # from the arena the first run left free (``second_run_growth_bytes``), so a block that fits
    # in a first-run region adds few pages. NOTE: this replaced a midpoint between "block without
    # outputs" and "block with outputs" (bench: t-lstm_lm 16×256 second run +16 MiB, block 345 MiB
    # inside a 753 MiB first-run arena; const-mlp-2k 2048×32 +32 MiB, block 32 MiB bigger than
    # each 16 MiB region).
    bare = [replace(s, scratch_bytes=0) for s in steps]
    traced = w.peak(g, bare, count_inputs=count_inputs, drop_outputs=True)
    pattern_low = ort.pattern_block_bytes(b for b in traced.buffers if not b[3])
    scratch_at = {i: s.scratch_bytes for i, s in enumerate(steps) if s.scratch_bytes}
    untraced = [b[3] or (b[1] == b[2] and scratch_at.get(b[1]) == b[0]) for b in full.buffers]
    regions = ort.second_run_growth_bytes(full.buffers, untraced, pattern_low)
    growth = sum(g for _, _, g in regions)
    return GraphMemory(
        peak_bytes=full.peak_bytes,
        pattern_bytes=pattern.peak_bytes,
        flops=w.flops,
        input_bytes=sum(sizes.get(v.name, 0) for v in g.input if v.name not in w.weights),
        output_bytes=sum(sizes.get(v.name, 0) for v in g.output),
        sum_bytes=full.allocated_bytes,
        fold_extra_bytes=max(0, folded - dropped),
        n_nodes=w.n_nodes, unknown_tensors=len(w.unknown), has_conv=w.has_conv,
        weight_copies=ort.prepack_copies(w.uses, w.weights), subgraph_weights=frozenset(w.sub_weights),
        nchwc_weights=frozenset(w.nchwc),
        arena_touched_bytes=touched, arena_reserved_bytes=reserved,
        pattern_block_bytes=growth, pattern_low_bytes=pattern_low,
        heap_run_bytes=small + sum(g for size, _, g in regions if size <= ort.MMAP_THRESHOLD_MAX_BYTES),
        arena_regions=regions,
    )
