"""How onnxruntime (CPU EP) treats int8-quantized graphs: what exists in memory and what does not.

Pure functions over an ONNX ``GraphProto`` skeleton: they read node types, edges and initializer
metadata (``dims``, ``data_type``), never weight values (the skeleton may drop big raw data).

Mechanisms (onnxruntime 1.32, read in its source and confirmed on the micro-models of
``bench/micro/quant_models.py``; figures in ``bench/micro/QUANT.md``):

* **Constant folding never folds DequantizeLinear** (onnxruntime/core/optimizer/constant_folding.cc,
  ``ConstantFolding::ApplyImpl``: ``if (skip_dequantize_linear_ && node->OpType() ==
  "DequantizeLinear") continue;``, and graph_transformer_utils.cc ``GenerateTransformers`` passes
  ``!disable_quant_qdq``). So a float copy of a weight is never created at load, at any level.
* **QDQ fusions** (``ORT_ENABLE_EXTENDED`` and above, CPU EP): ``QDQSelectorActionTransformer``
  (onnxruntime/core/optimizer/qdq_transformer/selectors_actions/qdq_selector_action_transformer.cc,
  ``CreateSelectorActionRegistry``) replaces ``DQ -> op (-> Q)`` node units by int8 kernels that read
  the int8 initializer directly: MatMul (both inputs from DQ; with a Q after it QLinearMatMul,
  without MatMulIntegerToFloat), Conv (DQ X, DQ W, Q Y: QLinearConv), Gemm (DQ A, DQ B: QGemm),
  Add/Mul (QLinearAdd/QLinearMul), Where, Concat, unary ops, and the data-movement ops whose
  DQ/Q pair is dropped (Gather, Reshape, Transpose, ...); 4-bit block-quantized ``DQ -> MatMul``
  becomes MatMulNBits. Those DQ outputs never exist.
* **Unfused DequantizeLinear runs on every inference**: a weight-only int8 layout (``DQ(W) ->
  MatMul`` with float activations) matches no selector (MatMul needs both inputs from DQ), so the
  DQ stays a node and its float output is an ordinary activation, re-computed per run (also
  every weight DQ at ``ORT_ENABLE_BASIC``).
* **Dynamic quantization fusion** (onnxruntime/core/optimizer/dynamic_quantize_matmul_fusion.cc,
  ``DynamicQuantizeMatMulFusion::ApplyImpl``; matmul_integer_to_float.cc): ``DynamicQuantizeLinear
  -> MatMulInteger -> Cast -> Mul`` becomes one DynamicQuantizeMatMul with a float output; the
  uint8 activation, its scale/zero point, the int32 product and the cast stay unallocated.
  ConvInteger is not fused: its DynamicQuantizeLinear outputs exist.
* **Pre-packing** (onnxruntime/core/providers/cpu/quantization/matmul_integer_base.h,
  ``MatMulIntegerBase::PrePack``; qlinearconv.cc ``QLinearConv<ActType>::PrePack``): the int8 kernels
  pack a 2-D (QLinearConv: >2-D) constant B into ``MlasGemmPackBSize`` bytes (onnxruntime/core/mlas/
  lib/qgemm.cpp: N rounded up to 16, K up to 4, plus one int32 column sum per N) and return
  ``is_packed``, so the session frees the original: resident ≈ 1x the int8 bytes.
  ConvInteger has no PrePack (its weight stays as stored).
* **AVX2 s8 -> u8** (onnxruntime/core/optimizer/qdq_transformer/avx2_weight_s8_to_u8.cc,
  ``Avx2WeightS8ToU8Transformer``): only with the session config ``session.x64quantprecision=1``
  on AVX2-without-VNNI CPUs; then int8 weights become same-sized uint8 copies at load. Off by
  default (confirmed: the optimized graphs keep int8 weights on this AVX2 machine).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

from advisor.dtypes import nbytes, onnx_dtype
from advisor.errors import AdvisorError
from advisor.units import round_up

if TYPE_CHECKING:
    import onnx

LEVELS = ("disabled", "basic", "extended", "all")

# ONNX TensorProto data types of quantized weights (uint8, int8, uint16, int16, uint4, int4).
_INT_TYPES = frozenset({2, 3, 4, 5, 21, 22})
_INT4_TYPES = frozenset({21, 22})
_FLOAT = 1

# Ops whose QDQ node unit (DQ inputs, target, Q output) the CPU EP replaces by an int8 kernel
# (qdq_selector_action_transformer.cc, CreateSelectorActionRegistry).
# Both float inputs from DQ; Q after it optional (QLinearMatMul or MatMulIntegerToFloat / QGemm).
_DQ_INPUTS_Q_OPTIONAL: dict[str, tuple[int, ...]] = {"MatMul": (0, 1), "Gemm": (0, 1)}
# These need DQ on the listed inputs and a Q on the output.
_DQ_INPUTS_Q_REQUIRED: dict[str, tuple[int, ...]] = {
    "Conv": (0, 1),                       # ConvQDQRules -> QLinearConv (bias DQ optional)
    "Add": (0, 1), "Mul": (0, 1),         # BinaryOpQDQRules -> QLinearAdd / QLinearMul
    "Where": (1, 2),                      # WhereQDQRules -> QLinearWhere
    # UnaryOpQDQRules -> QLinear* (com.microsoft)
    "AveragePool": (0,), "LeakyRelu": (0,), "GlobalAveragePool": (0,), "Sigmoid": (0,), "Softmax": (0,),
    # DropQDQNodesRules: DQ and Q dropped around data-movement ops (the int8 data flows through)
    "Expand": (0,), "Flatten": (0,), "Gather": (0,), "GatherElements": (0,), "Reshape": (0,),
    "Slice": (0,), "Squeeze": (0,), "Tile": (0,), "Transpose": (0,), "Unsqueeze": (0,),
    "MaxPool": (0,), "ReduceMax": (0,), "ReduceMin": (0,), "Resize": (0,),
}
# DropDQNodesRules: DQ -> ArgMax, no Q needed.
_DQ_ONLY: dict[str, tuple[int, ...]] = {"ArgMax": (0,)}

# Kernels that pre-pack a constant int8 B (input index) and free the original
# (matmul_integer_base.h MatMulIntegerBase::PrePack; the contrib kernels derive from it:
# dynamic_quantize_matmul.cc, matmul_integer_to_float, quant_gemm.cc, qlinear_matmul.cc).
PREPACK_B_INPUT: dict[str, int] = {
    "MatMulInteger": 1, "QLinearMatMul": 3, "DynamicQuantizeMatMul": 1, "MatMulIntegerToFloat": 1,
    "QGemm": 3, "QLinearConv": 3,
}
# NOTE: qgemm.cpp MlasGemmPackBSize: AlignedN = round up N to MLAS_QGEMM_STRIDEN_THREAD_ALIGN (16),
# AlignedK = round up K to the kernel's PackedK (4 for the AVX2 u8s8/u8u8 kernels), bytes =
# AlignedN * 4 (column sums) + AlignedN * AlignedK.
PACK_N_ALIGN = 16
PACK_K_ALIGN = 4


def _nbytes(code: int, dims: Iterable[int]) -> int:
    n = 1
    for d in dims:
        n *= int(d)
    try:
        return nbytes(onnx_dtype(code), n)
    except AdvisorError:
        return 0


def _fused_level(level: str) -> bool:
    """Whether QDQ / dynamic-quant fusions run: they are Level2 transformers (EXTENDED and ALL)."""
    if level not in LEVELS:
        raise ValueError(f"unknown optimization level {level!r}; one of {LEVELS}")
    return LEVELS.index(level) >= LEVELS.index("extended")


class _Graph:
    """Producer/consumer index of one graph (no subgraphs)."""

    def __init__(self, graph: onnx.GraphProto) -> None:
        self.inits = {t.name: t for t in graph.initializer}
        self.producer: dict[str, onnx.NodeProto] = {}
        self.consumers: dict[str, list[onnx.NodeProto]] = {}
        for node in graph.node:
            for o in node.output:
                if o:
                    self.producer[o] = node
            for i in node.input:
                if i:
                    self.consumers.setdefault(i, []).append(node)
        self.outputs = {o.name for o in graph.output}
        self.nodes = list(graph.node)

    def is_weight_dq(self, node: onnx.NodeProto) -> bool:
        return node.op_type == "DequantizeLinear" and bool(node.input) and node.input[0] in self.inits

    def from_dq(self, name: str) -> bool:
        p = self.producer.get(name)
        return p is not None and p.op_type == "DequantizeLinear"

    def only_q_after(self, name: str) -> bool:
        cons = self.consumers.get(name, [])
        return bool(cons) and name not in self.outputs and all(c.op_type == "QuantizeLinear" for c in cons)


def _dq_in_dtype(g: _Graph, name: str) -> int:
    """Integer type read by the DequantizeLinear producing ``name``: the initializer's type, else
    its zero point's, else uint8 (the ONNX default without a zero point)."""
    dq = g.producer[name]
    x = dq.input[0]
    if x in g.inits:
        return int(g.inits[x].data_type)
    if len(dq.input) > 2 and dq.input[2] in g.inits:
        return int(g.inits[dq.input[2]].data_type)
    return 2


def _act_ok(g: _Graph, name: str, int8_allowed: bool) -> bool:
    """Whether a DQ-fed input can feed an int8 kernel on this CPU.

    uint8 always; int8 activations only where ``QDQIsInt8Allowed()`` (ARM builds,
    qdq_selector_action_transformer.h) or after ``QDQS8ToU8Transformer`` (qdq_s8_to_u8.cc) turned the
    Q -> DQ pair into uint8, which it does only when the Q feeds that one DQ and the DQ one node
    (a DQ shared by several consumers is duplicated per node unit first,
    ensure_unique_dq_for_node_unit.cc, and the Q then has several consumers). NOTE: bench block*
    qdq: the Q/K/V projections, reading one shared LayerNorm output, stay float MatMuls at ALL.
    """
    t = _dq_in_dtype(g, name)
    if t == 2 or (t == 3 and name in g.inits):
        return True
    if t != 3:
        return False
    if int8_allowed or g.is_weight_dq(g.producer[name]):
        return True
    dq = g.producer[name]
    src = g.producer.get(dq.input[0])
    return (len(g.consumers.get(name, [])) == 1 and src is not None and src.op_type == "QuantizeLinear"
            and len(g.consumers.get(dq.input[0], [])) == 1)


def _eff_type(g: _Graph, name: str, int8_allowed: bool) -> int:
    """A DQ-fed input's integer type after ``QDQS8ToU8Transformer`` (int8 activation pairs that
    :func:`_act_ok` accepts become uint8; weights keep their type)."""
    t = _dq_in_dtype(g, name)
    if t == 3 and not int8_allowed and not g.is_weight_dq(g.producer[name]) and _act_ok(g, name, False):
        return 2
    return t


def _dq_out_dtype(g: _Graph, node: onnx.NodeProto) -> int:
    """DequantizeLinear's output type: the scale's type (opset 19+ allows float16/bfloat16), or the
    ``output_dtype`` attribute (opset 23+); float32 otherwise."""
    for a in node.attribute:
        if a.name == "output_dtype" and a.i:
            return int(a.i)
    if len(node.input) > 1 and node.input[1] in g.inits:
        return int(g.inits[node.input[1]].data_type)
    return _FLOAT


def dequantized_weight_bytes(graph: onnx.GraphProto) -> dict[str, int]:
    """Output name -> bytes of every ``DequantizeLinear`` whose input is a constant weight.

    This is what a tensor walk counts as an activation (a float copy of the weight); the other
    functions say which of them ORT makes disappear.
    """
    g = _Graph(graph)
    out: dict[str, int] = {}
    for node in g.nodes:
        if g.is_weight_dq(node) and node.output and node.output[0]:
            w = g.inits[node.input[0]]
            out[node.output[0]] = _nbytes(_dq_out_dtype(g, node), w.dims)
    return out


def _block_int4_dq(g: _Graph, node: onnx.NodeProto) -> bool:
    """A 4-bit, block-quantized weight DQ (DQMatMulToMatMulNBitsSelector: int4/uint4, block_size >= 16)."""
    if not g.is_weight_dq(node) or g.inits[node.input[0]].data_type not in _INT4_TYPES:
        return False
    return any(a.name == "block_size" and a.i >= 16 for a in node.attribute)


def _fused_units(g: _Graph, int8_allowed: bool = False) -> list[tuple[onnx.NodeProto, list[str], bool]]:
    """(target node, its DQ-fed inputs that get fused, whether its own output is fused into a Q).

    DQ inputs must be 8-bit (the selectors reject 16-bit and int32 except the Conv/Gemm bias,
    qdq_selectors.cc ``ConvNodeGroupSelector`` / ``GemmNodeGroupSelector``).
    """
    units: list[tuple[onnx.NodeProto, list[str], bool]] = []
    for node in g.nodes:
        if node.domain not in ("", "ai.onnx"):
            continue
        ins = list(node.input)
        op = node.op_type
        if op == "MatMul" and len(ins) > 1 and g.producer.get(ins[1]) is not None and \
                _block_int4_dq(g, g.producer[ins[1]]):
            units.append((node, [ins[1]], False))  # DQMatMulToMatMulNBits
            continue
        if op in _DQ_INPUTS_Q_OPTIONAL:
            idx = _DQ_INPUTS_Q_OPTIONAL[op]
            if all(i < len(ins) and g.from_dq(ins[i]) and _act_ok(g, ins[i], int8_allowed) for i in idx):
                dq_ins = [x for x in ins if x and g.from_dq(x)]  # Gemm's optional bias DQ too
                units.append((node, dq_ins, g.only_q_after(node.output[0])))
            continue
        if op in _DQ_INPUTS_Q_REQUIRED:
            idx = _DQ_INPUTS_Q_REQUIRED[op]
            bias_ok = op == "Conv"  # int32 bias DQ allowed only for Conv (input 2)
            if all(i < len(ins) and g.from_dq(ins[i]) and _act_ok(g, ins[i], int8_allowed) for i in idx) and \
                    all(_act_ok(g, x, int8_allowed) or (bias_ok and j == 2)
                        for j, x in enumerate(ins) if x and g.from_dq(x)) and \
                    node.output and g.only_q_after(node.output[0]):
                dq_ins = [x for x in ins if x and g.from_dq(x)]
                # the QLinear* binary/unary kernels need one type on all inputs (BinaryNodeGroupSelector):
                # an int8 weight next to a uint8-converted activation does not fuse. NOTE: bench
                # block* qdq: the bias Adds (int8 bias, converted activation) stay float Adds at ALL.
                if op != "Conv" and len({_eff_type(g, x, int8_allowed) for x in dq_ins}) > 1:
                    continue
                units.append((node, dq_ins, True))
            continue
        if op == "Concat" and ins and all(g.from_dq(x) and _act_ok(g, x, int8_allowed) for x in ins) and \
                g.only_q_after(node.output[0]):
            units.append((node, ins, True))  # VariadicOpQDQRules -> QLinearConcat
            continue
        if op in _DQ_ONLY and g.from_dq(ins[0]):
            units.append((node, [ins[0]], False))
    return units


def fused_dequantize_outputs(graph: onnx.GraphProto, *, level: str = "all",
                             int8_allowed: bool = False) -> frozenset[str]:
    """``DequantizeLinear`` outputs of constant weights that ORT's CPU EP fuses away.

    The QDQ selectors (qdq_selector_action_transformer.cc, ``CreateSelectorActionRegistry``; node
    unit conditions in selectors_actions/qdq_selectors.cc) hand the int8 initializer to an int8
    kernel, so the float weight copy is never allocated: the estimator must not count these
    outputs as activations. Empty below ``ORT_ENABLE_EXTENDED``. NOTE: bench (QUANT.md) mlp8192
    qdq: naive 960 MiB (192 MiB int8 + 768 MiB float DQ outputs); measured at ALL: resident
    202 MiB after load (session included), peak 266 MiB (the load transient of one 64 MiB weight).

    Args:
        graph: the model's main graph (skeleton; initializer values are not read).
        level: the session's graph optimization level: ``disabled``, ``basic``, ``extended``, ``all``.
        int8_allowed: ``QDQIsInt8Allowed()``: True on ARM builds only; on x86 int8 (signed)
            activations fuse only once converted to uint8 (see :func:`_act_ok`).
    """
    if not _fused_level(level):
        return frozenset()
    g = _Graph(graph)
    out: set[str] = set()
    for _, dq_ins, _ in _fused_units(g, int8_allowed):
        for name in dq_ins:
            p = g.producer[name]
            if g.is_weight_dq(p):
                out.add(name)
    return frozenset(out)


def runtime_dequantized_bytes(graph: onnx.GraphProto, *, level: str = "all", int8_allowed: bool = False) -> int:
    """Bytes of float weight copies that unfused ``DequantizeLinear`` nodes produce on EVERY run.

    Constant folding skips DequantizeLinear (constant_folding.cc ``ConstantFolding::ApplyImpl``), so
    a weight DQ that no selector fuses is executed per inference and its output is a run-time
    activation (allocated from the arena, freed after its consumer). NOTE: bench (QUANT.md) wonly8192
    (3 ``DQ(int8 8192x8192) -> MatMul``, 768 MiB of float copies): peak 1804 MiB vs 202 after
    load (all copies live in run 1, the memory-pattern block in a new arena region in run 2);
    mlp8192 qdq at BASIC: 740 vs 202 (~2 copies live). Feed them to the liveness walk, not a sum.
    """
    fused = fused_dequantize_outputs(graph, level=level, int8_allowed=int8_allowed)
    return sum(b for name, b in dequantized_weight_bytes(graph).items() if name not in fused)


def fused_away_tensors(graph: onnx.GraphProto, *, level: str = "all", int8_allowed: bool = False) -> frozenset[str]:
    """Every tensor of the graph that ORT's quantization fusions leave unallocated (CPU EP).

    * QDQ units: the outputs of their DQ nodes (weights and activations) and, when a Q follows,
      the float output of the target (the Q's output becomes the int8 kernel's output);
    * ``DynamicQuantizeLinear -> MatMulInteger -> Cast -> Mul`` (dynamic_quantize_matmul_fusion.cc,
      ``DynamicQuantizeMatMulFusion::ApplyImpl``): the DynamicQuantizeLinear outputs (when every
      consumer is fused), the int32 MatMulInteger output, the Cast output and the scale product;
      the last Mul's float output stays (it becomes the DynamicQuantizeMatMul output).
      ``MatMulInteger -> Cast -> Mul`` without a DynamicQuantizeLinear (matmul_integer_to_float.cc)
      leaves the int32 and Cast outputs unallocated likewise.

    Empty below ``ORT_ENABLE_EXTENDED``. The estimator's liveness walk should skip these names.
    """
    if not _fused_level(level):
        return frozenset()
    g = _Graph(graph)
    out: set[str] = set()
    for node, dq_ins, q_after in _fused_units(g, int8_allowed):
        out.update(dq_ins)
        if q_after:
            out.add(node.output[0])
    out |= _dynamic_matmul_fused(g)
    return frozenset(out)


def _dynamic_matmul_fused(g: _Graph) -> set[str]:
    out: set[str] = set()
    fused_dql_uses: dict[str, int] = {}
    for mmi in g.nodes:
        if mmi.op_type != "MatMulInteger" or not mmi.output:
            continue
        cons = g.consumers.get(mmi.output[0], [])
        if len(cons) != 1 or cons[0].op_type != "Cast":
            continue
        cast = cons[0]
        cons = g.consumers.get(cast.output[0], [])
        if len(cons) != 1 or cons[0].op_type != "Mul":
            continue
        mul = cons[0]
        out.update({mmi.output[0], cast.output[0]})
        # a following Add of a constant bias is absorbed too: the Add's output is the fused output
        nxt = g.consumers.get(mul.output[0], [])
        if len(nxt) == 1 and nxt[0].op_type == "Add" and any(x in g.inits for x in nxt[0].input) and \
                mul.output[0] not in g.outputs:
            out.add(mul.output[0])
        other = [x for x in mul.input if x != cast.output[0]]
        if other and g.producer.get(other[0]) is not None and g.producer[other[0]].op_type == "Mul" and \
                len(g.consumers.get(other[0], [])) == 1:
            out.add(other[0])  # a_scale * b_scale
        dql = g.producer.get(mmi.input[0])
        if dql is not None and dql.op_type == "DynamicQuantizeLinear":
            fused_dql_uses[dql.output[0]] = fused_dql_uses.get(dql.output[0], 0) + 1
    for node in g.nodes:
        if node.op_type != "DynamicQuantizeLinear" or node.output[0] not in fused_dql_uses:
            continue
        uses = len(g.consumers.get(node.output[0], []))
        # DynamicQuantizeMatMul absorbs the DynamicQuantizeLinear only when it has that one consumer;
        # a shared one stays and feeds MatMulIntegerToFloat nodes (NOTE: bench block* dyn: Q/K/V).
        if uses == 1 == fused_dql_uses[node.output[0]]:
            out.update(o for o in node.output if o)
    return out


def _pack_b_bytes(k: int, n: int) -> int:
    an = round_up(n, PACK_N_ALIGN)
    ak = round_up(k, PACK_K_ALIGN)
    return an * 4 + an * ak


def _int8_consumers(g: _Graph, level: str) -> dict[str, list[tuple[str, int]]]:
    """weight name -> [(int8 kernel op, input index)] after ORT's fusions at ``level``."""
    uses: dict[str, list[tuple[str, int]]] = {}
    for node in g.nodes:
        if node.op_type in PREPACK_B_INPUT:
            idx = PREPACK_B_INPUT[node.op_type]
            if len(node.input) > idx and node.input[idx] in g.inits:
                uses.setdefault(node.input[idx], []).append((node.op_type, idx))
    if _fused_level(level):
        for node, dq_ins, q_after in _fused_units(g):
            if node.op_type not in ("MatMul", "Gemm", "Conv") or len(node.input) < 2:
                continue
            w_out = node.input[1]
            if w_out not in dq_ins or not g.is_weight_dq(g.producer[w_out]):
                continue
            dq = g.producer[w_out]
            if g.inits[dq.input[0]].data_type in _INT4_TYPES:
                continue  # MatMulNBits: its own packing, not modelled here
            kernel = {"MatMul": "QLinearMatMul" if q_after else "MatMulIntegerToFloat",
                      "Gemm": "QGemm", "Conv": "QLinearConv"}[node.op_type]
            uses.setdefault(dq.input[0], []).append((kernel, PREPACK_B_INPUT[kernel]))
    return uses


def quantized_prepack_bytes(graph: onnx.GraphProto, *, level: str = "all") -> dict[str, int]:
    """Int8 weight name -> resident bytes its pre-packed copies ADD above the stored bytes.

    ``MatMulIntegerBase::PrePack`` (matmul_integer_base.h) and ``QLinearConv<ActType>::PrePack``
    (qlinearconv.cc) pack a constant B into ``MlasGemmPackBSize`` bytes and set ``is_packed``, so the
    session frees the original once every consumer packed it (session_state.cc,
    ``PrepackConstantInitializedTensors``): the packed copy REPLACES the weight, adding only the
    padding and int32 column sums (``4 * round16(N)``) per packing consumer, plus one whole copy for
    each further packing consumer (each packs its own). MatMul-family kernels pack only 2-D B.
    NOTE: bench mlp8192 dyn/qdq/qop: resident after load 192-194 MiB for 192 MiB of int8 weights.
    """
    g = _Graph(graph)
    out: dict[str, int] = {}
    for name, uses in _int8_consumers(g, level).items():
        w = g.inits[name]
        if w.data_type not in _INT_TYPES:
            continue
        dims = [int(d) for d in w.dims]
        stored = _nbytes(w.data_type, dims)
        packed_total = 0
        for op, _ in uses:
            if op == "QLinearConv":
                if len(dims) <= 2:
                    continue
                group = _group_of(g, name)
                k = (dims[1] * _prod(dims[2:]))
                packed_total += group * _pack_b_bytes(k, dims[0] // max(group, 1))
            elif len(dims) == 2:
                packed_total += _pack_b_bytes(dims[0], dims[1])
        if packed_total:
            out[name] = max(0, packed_total - stored)
    return out


def _prod(dims: Iterable[int]) -> int:
    n = 1
    for d in dims:
        n *= d
    return n


def _group_of(g: _Graph, weight: str) -> int:
    for node in g.consumers.get(weight, []) + [c for n in g.consumers.get(weight, []) for o in n.output
                                               for c in g.consumers.get(o, [])]:
        if node.op_type in ("Conv", "QLinearConv"):
            for a in node.attribute:
                if a.name == "group":
                    return max(1, int(a.i))
            return 1
    return 1


def s8_to_u8_weights(graph: onnx.GraphProto, *, level: str = "all",
                     avx2_precision_mode: bool = False) -> frozenset[str]:
    """Int8 weights ORT rewrites into uint8 copies at load (opt-in, AVX2-without-VNNI x86 only).

    ``Avx2WeightS8ToU8Transformer`` (avx2_weight_s8_to_u8.cc) converts the int8 B of MatMulInteger,
    QLinearMatMul, QLinearConv, DynamicQuantizeMatMul, MatMulIntegerToFloat, QGemm when a value
    exceeds [-64, 64] (assumed: the quantizers use the full range) into a same-sized ``*_s8_2_u8``
    initializer, the original leaving the graph: a transient copy at load, nothing resident. It is
    registered only when the session config ``session.x64quantprecision`` is "1" AND
    ``MlasPlatformU8S8Overflow()`` (graph_transformer_utils.cc ``GenerateTransformers``:
    ``avx2_precision_mode``), so by default nothing is converted. NOTE: bench (QUANT.md): the
    optimized graphs of every micro-model keep their int8 ``*_quantized`` initializers on this
    AVX2-without-VNNI machine at default options.
    """
    if not avx2_precision_mode or not _fused_level(level):
        return frozenset()
    g = _Graph(graph)
    return frozenset(name for name, uses in _int8_consumers(g, level).items()
                     if g.inits[name].data_type == 3 and uses)


def resident_weight_bytes(graph: onnx.GraphProto, *, level: str = "all") -> int:
    """Initializer bytes resident after load under ORT's quantization handling (CPU EP).

    Stored initializers (int8 weights at int8 size: no float copy is folded in) plus the
    pre-packing extras of :func:`quantized_prepack_bytes`. Float copies made by unfused weight DQs
    are run-time activations (:func:`runtime_dequantized_bytes`), not resident weights.
    """
    g = _Graph(graph)
    stored = sum(_nbytes(t.data_type, t.dims) for t in g.inits.values())
    return stored + sum(quantized_prepack_bytes(graph, level=level).values())


__all__ = [
    "LEVELS", "PREPACK_B_INPUT", "dequantized_weight_bytes", "fused_away_tensors", "fused_dequantize_outputs",
    "quantized_prepack_bytes", "resident_weight_bytes", "runtime_dequantized_bytes", "s8_to_u8_weights",
]
