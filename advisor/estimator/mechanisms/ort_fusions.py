"""onnxruntime's CPU graph fusions, applied to the liveness walk's steps.

At ``ORT_ENABLE_EXTENDED`` and above, onnxruntime rewrites common subgraphs into single fused
kernels before it plans memory, so the intermediate tensors of those subgraphs never exist. The
walk runs on the model's own graph; :func:`fuse_steps` replaces each matched pattern by the fused
step so the walk sees what onnxruntime allocates. Only structure is matched (op types, which
tensor feeds which, single consumers, weights as the constant operands); each pattern names the
optimizer that performs it (onnxruntime/core/optimizer/):

* ``conv_bn_fusion.cc`` (Level 1): a BatchNormalization that is a Conv's only reader folds into it;
* ``conv_activation_fusion.cc``: an activation that is a Conv's only reader (Relu, Clip, Sigmoid,
  Tanh, LeakyRelu, HardSigmoid, HardSwish) becomes the Conv's ``activation``: ``FusedConv``, whose
  output is the activation's (so an NCHWc chain is not broken by a ReLU6 between two Convs);
* function inlining (onnxruntime/core/framework/graph_partitioner.cc ``InlineNodes``, after the
  fusions above): the CPU EP has no HardSwish kernel, so a HardSwish no Conv absorbed runs as its
  ONNX function body ``HardSigmoid`` then ``Mul`` (onnx/defs/math/defs.cc), the HardSigmoid result
  a tensor of its own, live until the Mul (bench/micro/qlinear_matmul.py: ``Relu → HardSwish →
  Relu`` holds x, HardSigmoid(x) and the output, 3 × 12.5 MiB, in the dumped optimized graph
  ``Relu, HardSigmoid, Mul, Relu``);
* ``quick_gelu_fusion.cc``: ``x * Sigmoid(x)`` → ``QuickGelu(x)`` (SiLU/Swish: YOLO, EfficientNet);
* ``gelu_fusion.cc``: ``0.5 * x * (1 + Erf(x / √2))`` in its two orders → ``Gelu(x)``;
* ``bias_gelu_fusion.cc``: ``Gelu(x + bias)`` → ``BiasGelu(x, bias)``;
* ``layer_norm_fusion.cc``: ``ReduceMean → Sub → Pow → ReduceMean → Add → Sqrt → Div (→ Mul → Add)``
  → ``LayerNormalization``;
* ``skip_layer_norm_fusion.cc``: ``LayerNormalization(x + y)`` → ``SkipLayerNormalization(x, y)``;
* ``matmul_scale_fusion.cc``: ``MatMul(a, b) * s`` or ``/ s`` with a scalar constant ``s`` → ``FusedMatMul``;
* ``matmul_transpose_fusion.cc``: ``MatMul(a, Transpose(b))`` swapping the last two axes → ``FusedMatMul``.

NOTE: the effect was checked on the bench's torch exports (bench/accuracy.py): with binary
element-wise ops taking new buffers (bench/micro/inplace.py) and no fusions, the attention and
GELU blocks of BERT/ViT exports come out 30-50 % above the measured peak; onnxruntime's dumped
optimized graphs (``optimized_model_filepath``) hold LayerNormalization, Gelu/BiasGelu and
FusedMatMul nodes in their place.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence

from advisor.estimator.mechanisms.liveness import Step

_Match = tuple[set[int], int, Step]
"""A pattern found: the step indices it removes, where the fused step goes, and the fused step."""


class _Graph:
    """The steps with who produces and who reads each tensor, and what the patterns need to know."""

    def __init__(self, steps: Sequence[Step], weights: Collection[str], outputs: Collection[str],
                 shapes: Mapping[str, tuple[int, ...]], perms: Mapping[str, tuple[int, ...]]) -> None:
        self.steps = list(steps)
        self.weights = weights
        self.outputs = set(outputs)
        self.shapes = shapes
        self.perms = perms
        self.producer: dict[str, int] = {}
        self.consumers: dict[str, list[int]] = {}
        for i, s in enumerate(self.steps):
            for o in s.outputs:
                self.producer[o] = i
            for n in s.inputs:
                if n:
                    self.consumers.setdefault(n, []).append(i)

    def only(self, name: str, *ops: str) -> int | None:
        """The single step reading ``name`` when its op is one of ``ops``."""
        c = self.consumers.get(name, [])
        if len(c) == 1 and self.steps[c[0]].op_type in ops:
            return c[0]
        return None

    def acts(self, i: int) -> list[str]:
        return [n for n in self.steps[i].inputs if n and n not in self.weights]

    def out(self, i: int) -> str:
        return self.steps[i].outputs[0] if self.steps[i].outputs else ""

    def internal(self, names: Sequence[str]) -> bool:
        """Whether every one of ``names`` may vanish (none is missing or a graph output)."""
        return all(n and n not in self.outputs for n in names)


def fuse_steps(steps: Sequence[Step], *, weights: Collection[str], graph_outputs: Collection[str],
               shapes: Mapping[str, tuple[int, ...]], perms: Mapping[str, tuple[int, ...]],
               sizes: Mapping[str, int]) -> tuple[list[Step], dict[str, int]]:
    """``steps`` with onnxruntime's CPU fusions applied (see the module docstring), and the sizes of
    the tensors the rewrite makes (an inlined function's intermediates).

    Args:
        steps: the walk's steps in execution order.
        weights: initializer and constant names.
        graph_outputs: names the caller receives (never fused away: they must exist).
        shapes: static shapes (a weight's decides whether it is a scalar).
        perms: ``perm`` of each Transpose step's output.
        sizes: known tensor sizes (an inlined intermediate is as large as the op's output).
    """
    result = list(steps)
    g = _Graph(result, weights, graph_outputs, shapes, perms)
    for match in (_conv_bn, _conv_activation, _quick_gelu, _gelu, _layer_norm, _bias_gelu, _skip_layer_norm,
                  _matmul_scale, _matmul_transpose):
        found = [m for i in range(len(g.steps)) if (m := match(g, i)) is not None]
        if found:  # the producer/consumer maps are rebuilt only when a pattern changed the steps
            result = _apply(g, found)
            g = _Graph(result, weights, graph_outputs, shapes, perms)
    return _inline_hardswish(result, sizes)


def _inline_hardswish(steps: list[Step], sizes: Mapping[str, int]) -> tuple[list[Step], dict[str, int]]:
    """Each HardSwish left after the Conv fusions becomes ``HardSigmoid`` then ``Mul``."""
    out: list[Step] = []
    made: dict[str, int] = {}
    for s in steps:
        if s.op_type != "HardSwish" or not s.inputs or not s.outputs:
            out.append(s)
            continue
        x, y = s.inputs[0], s.outputs[0]
        tmp = f"{y}/HardSigmoid"
        if y in sizes:
            made[tmp] = sizes[y]
        out += [Step("HardSigmoid", (x,), (tmp,), s.scratch_bytes), Step("Mul", (x, tmp), (y,))]
    return out, made


def _apply(g: _Graph, matches: list[_Match]) -> list[Step]:
    """Remove each match's steps and put its fused step where the last one was."""
    drop: set[int] = set()
    at: dict[int, Step] = {}
    for removed, last, fused in matches:
        if removed & drop or last in drop or last in at:
            continue
        drop |= removed
        at[last] = fused
    return [at.get(i, s) for i, s in enumerate(g.steps) if i not in drop]


CONV_ACTIVATIONS = frozenset({"Relu", "Clip", "Sigmoid", "Tanh", "LeakyRelu", "HardSigmoid", "HardSwish"})


def _conv_follow(g: _Graph, i: int, ops: frozenset[str], fused_op: str) -> _Match | None:
    c, s = i, g.steps[i]
    if s.op_type not in ("Conv", "FusedConv") or not s.outputs:
        return None
    nxt = g.only(g.out(c), *ops)
    if nxt is None or g.acts(nxt) != [g.out(c)] or not g.internal([g.out(c)]):
        return None
    return {c}, nxt, Step(fused_op if s.op_type == "Conv" else s.op_type, s.inputs, g.steps[nxt].outputs,
                          s.scratch_bytes)


def _conv_bn(g: _Graph, i: int) -> _Match | None:
    return _conv_follow(g, i, frozenset({"BatchNormalization"}), "Conv")


def _conv_activation(g: _Graph, i: int) -> _Match | None:
    return _conv_follow(g, i, CONV_ACTIVATIONS, "FusedConv")


def _quick_gelu(g: _Graph, i: int) -> _Match | None:
    s = g.steps[i]
    if s.op_type != "Sigmoid" or not g.acts(i):
        return None
    x, sig = g.acts(i)[0], g.out(i)
    m = g.only(sig, "Mul")
    if m is not None and set(g.steps[m].inputs) == {x, sig} and g.internal([sig]):
        return ({i}, m, Step("QuickGelu", (x,), g.steps[m].outputs, s.scratch_bytes))
    return None


def _gelu(g: _Graph, i: int) -> _Match | None:
    e, s = i, g.steps[i]
    if s.op_type != "Erf" or not g.acts(e):
        return None
    a = g.producer.get(g.acts(e)[0])
    if a is None or g.steps[a].op_type not in ("Div", "Mul") or len(g.acts(a)) != 1:
        return None
    x = g.acts(a)[0]
    add = g.only(g.out(e), "Add")
    if add is None or len(g.acts(add)) != 1:
        return None
    m1 = g.only(g.out(add), "Mul")
    if m1 is None:
        return None
    other = [n for n in g.steps[m1].inputs if n != g.out(add)]
    removed = {a, e, add}
    last = m1
    if other == [x]:  # x * (1 + erf) then * 0.5
        m2 = g.only(g.out(m1), "Mul")
        if m2 is None or len(g.acts(m2)) != 1:
            return None
        removed.add(m1)
        last = m2
    elif len(other) == 1 and (h := g.producer.get(other[0])) is not None and g.steps[h].op_type == "Mul" \
            and g.acts(h) == [x] and g.only(other[0], "Mul") == m1:  # (0.5 * x) * (1 + erf)
        removed.add(h)
    else:
        return None
    internal = [g.out(i) for i in removed]
    if g.internal(internal):
        return (removed, last, Step("Gelu", (x,), g.steps[last].outputs))
    return None


def _layer_norm(g: _Graph, i: int) -> _Match | None:
    r1, s = i, g.steps[i]
    if s.op_type != "ReduceMean" or not g.acts(r1):
        return None
    x = g.acts(r1)[0]
    sub = g.only(g.out(r1), "Sub")
    if sub is None or g.steps[sub].inputs[:2] != (x, g.out(r1)):
        return None
    d = g.out(sub)
    readers = g.consumers.get(d, [])
    pw = next((i for i in readers if g.steps[i].op_type == "Pow"), None)
    dv = next((i for i in readers if g.steps[i].op_type == "Div"), None)
    if pw is None or dv is None or len(readers) != 2:
        return None
    chain, cur, ok = [pw], pw, True
    for op in ("ReduceMean", "Add", "Sqrt"):
        nxt = g.only(g.out(cur), op)
        if nxt is None:
            ok = False
            break
        chain.append(nxt)
        cur = nxt
    if not ok or g.only(g.out(cur), "Div") != dv:
        return None
    removed = {r1, sub, *chain, dv}
    last, params = dv, []
    for op in ("Mul", "Add"):
        nxt = g.only(g.out(last), op)
        if nxt is None or len(g.acts(nxt)) != 1:
            break
        params += [n for n in g.steps[nxt].inputs if n in g.weights]
        removed.add(last)
        last = nxt
    removed.discard(last)
    internal = [g.out(i) for i in removed]
    if g.internal(internal):
        return (removed, last, Step("LayerNormalization", (x, *params), g.steps[last].outputs))
    return None


def _bias_gelu(g: _Graph, i: int) -> _Match | None:
    a, s = i, g.steps[i]
    if s.op_type != "Add" or len(g.acts(a)) != 1 or len(s.inputs) != 2:
        return None
    bias = next((n for n in s.inputs if n in g.weights), None)
    gelu = g.only(g.out(a), "Gelu")
    if bias is None or gelu is None or len(g.shapes.get(bias, (0, 0))) != 1:
        return None
    if g.internal([g.out(a)]):
        return ({a}, gelu, Step("BiasGelu", (g.acts(a)[0], bias), g.steps[gelu].outputs))
    return None


def _skip_layer_norm(g: _Graph, i: int) -> _Match | None:
    a, s = i, g.steps[i]
    if s.op_type != "Add" or len(g.acts(a)) != 2:
        return None
    ln = g.only(g.out(a), "LayerNormalization")
    if ln is None or g.steps[ln].inputs[0] != g.out(a) or not g.internal([g.out(a)]):
        return None
    fused = Step("SkipLayerNormalization", (*g.acts(a), *g.steps[ln].inputs[1:]), g.steps[ln].outputs)
    return {a}, ln, fused


def _scalar(name: str, shapes: Mapping[str, tuple[int, ...]]) -> bool:
    shape = shapes.get(name)
    return shape is not None and all(d == 1 for d in shape)


def _matmul_scale(g: _Graph, i: int) -> _Match | None:
    m, s = i, g.steps[i]
    if s.op_type != "MatMul":
        return None
    k = g.only(g.out(m), "Mul", "Div")
    if k is None or len(g.acts(k)) != 1 or g.acts(k)[0] != g.out(m):
        return None
    scale = [n for n in g.steps[k].inputs if n != g.out(m)]
    if len(scale) == 1 and scale[0] in g.weights and _scalar(scale[0], g.shapes) \
            and g.internal([g.out(m)]):
        return ({m}, k, Step("FusedMatMul", s.inputs, g.steps[k].outputs, s.scratch_bytes))
    return None


def _matmul_transpose(g: _Graph, i: int) -> _Match | None:
    t, s = i, g.steps[i]
    perm = g.perms.get(g.out(t))
    if s.op_type != "Transpose" or perm is None or len(perm) < 2 or not g.acts(t):
        return None
    swaps_last = list(perm) == [*range(len(perm) - 2), len(perm) - 1, len(perm) - 2]
    m = g.only(g.out(t), "MatMul", "FusedMatMul")
    if not swaps_last or m is None or not g.internal([g.out(t)]):
        return None
    ins = tuple(g.acts(t)[0] if n == g.out(t) else n for n in g.steps[m].inputs)
    return {t}, m, Step("FusedMatMul", ins, g.steps[m].outputs, g.steps[m].scratch_bytes)
