"""Activation memory of one pass through a graph: the peak of live tensor bytes.

Pure functions over a plain description of the graph, so they can be checked by hand.

Rules (those of onnxruntime's allocation planner, ``onnxruntime/core/framework/allocation_planner.cc``):

* nodes run in the given (topological) order; a tensor is allocated when its producer runs and freed
  after its last consumer ran; while a node runs, its inputs and outputs are both live;
* graph outputs live to the end; graph inputs are live from the start to their last use when they
  are counted at all (on CPU the caller owns them, so they are not: see ``count_inputs``);
* weights (initializers and ``Constant`` outputs) are not activations: they are counted elsewhere;
* view ops (Reshape, Squeeze, Unsqueeze, Flatten, Identity...) allocate nothing: their output is
  the input's buffer (ORT kernels declare ``Alias(0, 0)``), which then lives until the last use of
  either name;
* element-wise ops that ORT runs in place (kernels declared ``MayInplace(0, 0)``: Relu, Add, ...)
  write into their first input's buffer when that input dies at this node and has the same size;
* a node's ``scratch_bytes`` (a subgraph's own peak while If/Loop/Scan runs, a workspace) is added
  while it runs.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

VIEW_OPS: frozenset[str] = frozenset(
    {"Reshape", "Squeeze", "Unsqueeze", "Flatten", "Identity", "Dropout", "ExpandDims"})
"""Ops whose output re-views the first input's memory."""

INPLACE_OPS: frozenset[str] = frozenset({
    "Relu", "LeakyRelu", "Sigmoid", "Tanh", "Elu", "Selu", "HardSigmoid", "Softplus", "Softsign",
    "ThresholdedRelu", "Clip", "Softmax", "LogSoftmax",
})
"""Ops whose CPU kernel may write its output over its first input (ORT ``MayInplace(0, 0)``).

NOTE: measured on onnxruntime 1.32 CPU (bench/micro/inplace.py: ``Relu(x) → OP → Relu`` on a
[1024, 1024] float tensor at ``ORT_DISABLE_ALL``, the arena's bytes in use after OP from the
profiler's ``mem_bytes_requested_in_use``): 4 MiB (in place) for exactly these — the activation
kernels of onnxruntime/core/providers/cpu/activation/activations.cc, Clip, Softmax/LogSoftmax —
and 8 MiB (a new buffer) for the binary element-wise ops (Add, Sub, Mul, Div, Pow, Sum, Max, Min,
Mean, Where: onnxruntime/core/providers/cpu/math/element_wise_ops.cc registers them without
``MayInplace``) and for the math unaries (Neg, Abs, Exp, Log, Sqrt, Reciprocal, Floor, Ceil, Erf,
Round, Sign, Sin, Cos) and com.microsoft Gelu. So an unfused SiLU ``Mul(x, Sigmoid(x))`` holds
three tensors, not two, and every residual ``Add`` and bias ``Add`` a new one.
"""


SUM_INPLACE_OPS: frozenset[str] = frozenset({"NchwcConvSum"})
"""Ops that may write their output over their last input, the fused ``Sum`` (input 3 of onnxruntime's
NCHWc Conv: contrib_ops/cpu/nchwc_ops.cc, ``MayInplace(3, 0)``); see
:func:`advisor.estimator.mechanisms.ort_nchwc.nchwc_steps`."""


@dataclass(frozen=True)
class Step:
    """One node of the graph, as the liveness walk needs it.

    Attributes:
        op_type: ONNX op type (decides view/in-place behaviour).
        inputs: tensor names read (empty strings for omitted optional inputs are ignored);
            for a node with subgraphs, also the outer values its subgraphs read.
        outputs: tensor names written.
        scratch_bytes: extra bytes live only while this node runs.
    """

    op_type: str
    inputs: tuple[str, ...]
    outputs: tuple[str, ...]
    scratch_bytes: int = 0


@dataclass(frozen=True)
class Liveness:
    """Result of the walk.

    Attributes:
        peak_bytes: the most activation bytes live at once (scratch included).
        peak_step: index of the step where the peak happens (-1 for an empty graph).
        output_bytes: bytes of the graph outputs (live at the end).
        allocated_bytes: bytes of every buffer allocated (what a "sum every tensor" tool counts).
        buffers: every buffer as ``(size, alloc_step, free_step, is_output)`` in allocation order
            (scratch as a buffer freed at the step that allocates it), for allocator simulations.
    """

    peak_bytes: int
    peak_step: int
    output_bytes: int
    allocated_bytes: int
    buffers: tuple[tuple[int, int, int, bool], ...] = ()


def activation_peak(
    steps: Iterable[Step],
    sizes: Mapping[str, int],
    *,
    graph_inputs: Iterable[str] = (),
    graph_outputs: Iterable[str] = (),
    weights: Iterable[str] = (),
    count_inputs: bool = True,
    inplace: bool = True,
) -> Liveness:
    """Walk ``steps`` in order and return the peak of live activation bytes.

    Args:
        steps: the graph's nodes in topological order.
        sizes: bytes of each tensor; a name that is missing counts 0 bytes.
        graph_inputs: names fed by the caller.
        graph_outputs: names returned (live to the end).
        weights: initializer / constant names (never activations).
        count_inputs: whether graph inputs occupy memory this walk accounts for.
        inplace: whether element-wise ops reuse a dying input's buffer (ORT does).
    """
    steps = list(steps)
    weight_set = set(weights)
    outputs = set(graph_outputs)
    inputs = [n for n in graph_inputs if n not in weight_set]
    end = len(steps)

    last_use: dict[str, int] = {}
    for i, s in enumerate(steps):
        for name in s.inputs:
            if name:
                last_use[name] = i
    for name in outputs:
        last_use[name] = end

    root: dict[str, str] = {}
    root_size: dict[str, int] = {}
    root_last: dict[str, int] = {}
    born: dict[str, int] = {}
    pinned: set[str] = set(outputs)

    def new_root(name: str, at: int, size: int) -> None:
        root[name] = name
        root_size[name] = size
        root_last[name] = last_use.get(name, at)
        born[name] = at

    for name in inputs:
        new_root(name, -1, sizes.get(name, 0) if count_inputs else 0)
        pinned.add(name)
    for i, s in enumerate(steps):
        first = next((n for n in s.inputs if n), "")
        src = root.get(first) if first and first not in weight_set else None
        for k, out in enumerate(s.outputs):
            if not out or out in weight_set:
                continue
            size = sizes.get(out, 0)
            if k == 0 and src is not None and s.op_type in VIEW_OPS:
                alias = True
            elif k == 0 and s.op_type in SUM_INPLACE_OPS and len(s.inputs) > 2:
                # MayInplace(3, 0): the Sum's buffer (the step's last input) when this is its only
                # remaining use (allocation_planner.cc: UseCount(original) == 1 — so not when the
                # Sum is also this node's X) and the sizes match
                sum_in = s.inputs[-1]
                src = root.get(sum_in) if sum_in not in weight_set else None
                alias = (inplace and src is not None and root_last[src] == i and src not in pinned
                         and root_size[src] == size and out not in outputs
                         and sum_in not in s.inputs[:-1])
            else:
                # a graph output gets its own buffer (ORT plans it ``kAllocateOutput``, never reused)
                alias = (k == 0 and inplace and src is not None and s.op_type in INPLACE_OPS
                         and root_last[src] == i and src not in pinned and root_size[src] == size
                         and out not in outputs)
            if alias and src is not None:
                root[out] = src
                root_last[src] = max(root_last[src], last_use.get(out, i))
                if out in outputs:
                    pinned.add(src)
            else:
                new_root(out, i, size)

    starts: dict[int, int] = {}
    ends: dict[int, int] = {}
    buffers: list[tuple[int, int, int, bool]] = []
    scratch_at = {i: s.scratch_bytes for i, s in enumerate(steps) if s.scratch_bytes}
    for r, size in root_size.items():
        starts[born[r]] = starts.get(born[r], 0) + size
        free_at = end if (r in pinned and r in outputs) or root_last[r] >= end else root_last[r]
        ends[free_at] = ends.get(free_at, 0) + size
        if born[r] in scratch_at:
            buffers.append((scratch_at.pop(born[r]), born[r], born[r], False))
        if size:
            buffers.append((size, born[r], free_at, r in pinned and r in outputs))
    buffers.extend((b, i, i, False) for i, b in scratch_at.items())
    buffers.sort(key=lambda b: b[1])

    live = starts.get(-1, 0)
    peak, peak_step = live, -1
    live -= ends.get(-1, 0)  # inputs nothing reads
    for i, s in enumerate(steps):
        live += starts.get(i, 0)
        now = live + s.scratch_bytes
        if now > peak:
            peak, peak_step = now, i
        live -= ends.get(i, 0)
    out_bytes = sum(sizes.get(n, 0) for n in outputs if n not in weight_set)
    allocated = sum(root_size.values())
    return Liveness(peak_bytes=peak, peak_step=peak_step, output_bytes=out_bytes, allocated_bytes=allocated,
                    buffers=tuple(buffers))


def outer_reads(body_inputs: Iterable[str], nodes: Iterable[tuple[Iterable[str], Iterable[str]]]) -> set[str]:
    """Names a subgraph reads from its enclosing scope.

    Args:
        body_inputs: the subgraph's own formal inputs and initializers.
        nodes: ``(inputs, outputs)`` of each of its nodes (nested subgraphs' outer reads already
            merged into the inputs).
    """
    defined = set(body_inputs)
    reads: set[str] = set()
    for ins, outs in nodes:
        for name in ins:
            if name and name not in defined:
                reads.add(name)
        defined.update(outs)
    return reads
