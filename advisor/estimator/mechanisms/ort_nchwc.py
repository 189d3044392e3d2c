"""onnxruntime's NCHWc layout on x86-64 CPUs: the activations it pads and the reorder copies it adds.

With ``ORT_ENABLE_ALL`` on x86-64, ``NchwcTransformer`` (onnxruntime/core/optimizer/nchwc_transformer.cc)
rewrites float 2-D Convs (and MaxPool/AveragePool) into ``com.microsoft.nchwc`` kernels whose tensors
hold channels in blocks of 8 floats (AVX2) or 16 (AVX-512F), the channel count rounded up to the
block. Inside a chain of such nodes the layout stays blocked: ``NchwcTransformerImpl::Transform``
also converts Add/Sum, Mul, Concat, Relu/Sigmoid/Tanh, BatchNormalization, Upsample/Resize and
GlobalMax/AveragePool when all their inputs are already blocked. At the chain's edges it adds full
copies: ``ReorderInput`` before a blocked node that reads a plain activation (not for a Conv whose
input has fewer channels than a block: the first layer reads NCHW directly), and one
``ReorderOutput`` per blocked tensor that something else still reads (``Finalize``), graph outputs
included.

The liveness walk runs on the model's own graph; :func:`nchwc_steps` rewrites its steps the way the
transformer rewrites the graph, so the walk and the arena simulation see the padded tensors and the
copies. NOTE: measured on one-op models (bench/micro/README.md, "NCHWc" rows): a Conv 64→64 at
batch 4 holds its reordered input and its blocked output together (2 × 12.25 MiB), a Conv 32→36
pads its output to 40 channels (block 8), a MaxPool over a plain 25 MiB input adds a 25 MiB
``ReorderInput`` copy.
"""

from __future__ import annotations

import math
from collections.abc import Collection, Mapping, Sequence

from advisor.estimator.mechanisms.liveness import Step
from advisor.estimator.mechanisms.ort_kernels import nchwc_channels

BLOCKED_ENTRY_OPS = frozenset({"Conv", "FusedConv", "MaxPool", "AveragePool"})
"""Ops the transformer rewrites into blocked kernels by themselves (``TransformConv``/``TransformPool``)."""

BLOCKED_FOLLOW_OPS = frozenset({"Add", "Sum", "Mul", "Concat", "Relu", "Sigmoid", "Tanh", "BatchNormalization",
                                "Upsample", "Resize", "GlobalMaxPool", "GlobalAveragePool"})
"""Ops that stay blocked when every activation input is blocked (``NchwcTransformerImpl::Transform``)."""

_SUFFIX = "#nchwc"


def blocked_bytes(shape: Sequence[int], block: int) -> int:
    """Bytes of a float ``[N, C, H, W]`` tensor in NCHWc layout (C rounded up to ``block``)."""
    return shape[0] * nchwc_channels(shape[1], block) * math.prod(shape[2:]) * 4


def nchwc_steps(steps: Sequence[Step], shapes: Mapping[str, tuple[int, ...]], *, nchwc_convs: Collection[str],
                weights: Collection[str], graph_outputs: Collection[str], block: int,
                ) -> tuple[list[Step], dict[str, int]]:
    """``steps`` as onnxruntime runs them after the NCHWc rewrite, and the sizes of the new tensors.

    Args:
        steps: the liveness walk's steps of the model's own graph.
        shapes: static shapes of activations (a tensor without one is never blocked).
        nchwc_convs: Conv filters the transformer reorders (a Conv is blocked when its filter is).
        weights: initializer and constant names (never activations).
        graph_outputs: names the caller receives (a blocked one gets a final ``ReorderOutput``).
        block: the NCHWc block in floats (8 or 16).

    Returns:
        The rewritten steps and ``{new tensor: bytes}``: each blocked tensor ``t`` is renamed
        ``t#nchwc`` (padded size); ``t`` itself then exists only where a ``ReorderOutput`` makes it.
    """
    blocked: set[str] = set()
    plain_made: set[str] = set()
    sizes: dict[str, int] = {}
    out: list[Step] = []

    def four_d(name: str) -> bool:
        s = shapes.get(name)
        return s is not None and len(s) == 4 and s[1] > 0

    def to_blocked(name: str) -> str:
        if name in blocked:
            return name + _SUFFIX
        out.append(Step("ReorderInput", (name,), (name + _SUFFIX,)))
        sizes[name + _SUFFIX] = blocked_bytes(shapes[name], block)
        blocked.add(name)
        plain_made.add(name)  # the plain original still exists
        return name + _SUFFIX

    def to_plain(name: str) -> str:
        if name in blocked and name not in plain_made:
            out.append(Step("ReorderOutput", (name + _SUFFIX,), (name,)))
            plain_made.add(name)
        return name

    for s in steps:
        acts = [n for n in s.inputs if n and n not in weights]
        y = s.outputs[0] if s.outputs else ""
        entry = (s.op_type in ("Conv", "FusedConv") and len(s.inputs) > 1 and s.inputs[1] in nchwc_convs) or (
            s.op_type in ("MaxPool", "AveragePool") and acts and four_d(acts[0]) and shapes[acts[0]][1] % block == 0)
        follow = (s.op_type in BLOCKED_FOLLOW_OPS and acts and all(n in blocked for n in acts)
                  and four_d(y) and (s.op_type != "Concat" or all(shapes[n][1] % block == 0 for n in acts)))
        if (entry or follow) and acts and four_d(acts[0]) and four_d(y) and len(s.outputs) == 1:
            x = acts[0]
            if entry and x not in blocked and shapes[x][1] < block and s.op_type != "MaxPool":
                new_x = x  # the first layer's NCHWc Conv reads the plain input
            else:
                new_x = to_blocked(x)
            renamed = [new_x if n == x else (n + _SUFFIX if n in blocked else n) for n in s.inputs]
            blocked.add(y)
            sizes[y + _SUFFIX] = blocked_bytes(shapes[y], block)
            out.append(Step(s.op_type, tuple(renamed), (y + _SUFFIX,), s.scratch_bytes))
            continue
        for n in acts:
            to_plain(n)
        out.append(s)
    for name in graph_outputs:
        to_plain(name)
    return _fuse_sums(out, steps, graph_outputs), sizes


SUM_CONV = "NchwcConvSum"
"""The op of a blocked Conv that absorbed the Add after it (its inputs: the Conv's, then the Sum)."""


def _fuse_sums(out: list[Step], original: Sequence[Step], graph_outputs: Collection[str]) -> list[Step]:
    """Fold each blocked ``Add`` into the blocked Conv that feeds it, as the transformer does.

    NOTE: onnxruntime/core/optimizer/nchwc_transformer.cc ``NchwcTransformerImpl::TransformBinary``:
    when both inputs of an Add are NCHWc tensors of one shape and one comes from an NCHWc Conv that
    has no other reader (``starting_original_uses_ == 1``) and no fused activation, the other input
    becomes the Conv's ``Sum`` (input 3), the Conv writes the Add's output and the Add is removed; a
    Relu after it then fuses as the Conv's activation (``TransformActivation``). Measured here
    (onnxruntime 1.32, x86-64, bench/ort_measure.py): the sample convnet at batch 64 holds 197 MiB
    of activations in its first run, where a separate Add buffer would make it 294 MiB (three
    98 MiB maps at once); its peak is 430.8 MiB, predicted 614 MiB before this rule and 418 MiB
    with it. Three ResNet basic blocks with identity shortcuts at 224² (stem 3→64, stride 2),
    batch 1 / 8 / 32: measured 27.0 / 121.1 / 442.2 MB, predicted 33.5 / 168.4 / - before and
    27.1 / 117.0 / 425.3 MB with it.
    """
    uses: dict[str, int] = {}
    for st in original:
        for n in st.inputs:
            if n:
                uses[n] = uses.get(n, 0) + 1
    for n in graph_outputs:
        uses[n] = uses.get(n, 0) + 1
    producer = {o: i for i, st in enumerate(out) for o in st.outputs if o}
    fused: dict[int, Step] = {}  # position → the step that replaces what was there
    dropped: set[int] = set()
    for i, st in enumerate(out):
        ins = [n for n in st.inputs if n]
        if st.op_type not in ("Add", "Sum") or len(ins) != 2 or not all(n.endswith(_SUFFIX) for n in ins):
            continue
        for k in (0, 1):
            j = producer.get(ins[k], -1)
            conv = fused.get(j, out[j]) if j >= 0 else None
            if (conv is None or conv.op_type != "Conv" or j in dropped
                    or uses.get(ins[k].removesuffix(_SUFFIX), 0) != 1):
                continue
            other = ins[1 - k]
            step = Step(SUM_CONV, (*conv.inputs, other), st.outputs, conv.scratch_bytes)
            other_at = producer.get(other, -1)
            if other_at < j:  # the Sum is ready when the Conv runs: it keeps its place
                fused[j] = step
                dropped.add(i)
            else:  # the Conv now waits for its Sum: it runs where the Add was
                dropped.add(j)
                fused[i] = step
            break
    return [fused.get(i, st) for i, st in enumerate(out) if i not in dropped or i in fused]
