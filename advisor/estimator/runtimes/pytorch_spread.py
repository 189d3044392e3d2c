"""HF ``from_pretrained(..., device_map='auto')`` on a machine with several GPUs: accelerate's placement.

``device_map='auto'`` is ``'balanced'`` (transformers integrations/accelerate.py ``_get_device_map``
calls ``get_balanced_memory`` unless the map is ``'sequential'``): every visible GPU but the last
may hold ``total // n_gpus + 1.25 × max(biggest decoder layer, biggest leaf tensor)``, the last
GPU all it has free; then ``infer_auto_device_map`` walks the modules in order (embeddings, the
decoder layers, the final norm and lm_head), never splitting a decoder layer, and fills each GPU
before the next. On the first GPU it keeps room for the largest layer (accelerate reserves it on
its "main" devices). Each GPU then holds its own layers' weights and KV cache, runs their
activations, and has its own CUDA context; the last one also computes the logits.

So the estimate per GPU is the one-GPU estimate of the layers it holds
(:func:`advisor.estimator.runtimes.pytorch.estimate` on that part of the model), and the fit
holds each GPU's share against that GPU (:func:`advisor.estimator.fit.fit`).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence

from advisor.estimator.file_cache import ModelCache
from advisor.estimator.runtimes import pytorch_parts as to
from advisor.estimator.types import Estimate, Workload
from advisor.readers.profile import ModelProfile, TensorInfo
from advisor.units import format_bytes

# NOTE: get_balanced_memory: buffer = int(1.25 * max(biggest_no_split_module, biggest_leaf)).
BALANCE_BUFFER = 1.25


def _units(pairs: Sequence[tuple[TensorInfo, int]]) -> list[tuple[int | None, list[TensorInfo], int]]:
    """The model's modules in the order accelerate places them: (layer or None, tensors, bytes)."""
    before: list[tuple[TensorInfo, int]] = []
    after: list[tuple[TensorInfo, int]] = []
    layers: dict[int, list[tuple[TensorInfo, int]]] = {}
    for t, b in pairs:
        if t.layer is not None:
            layers.setdefault(t.layer, []).append((t, b))
        elif layers or ("embed" not in t.name and "wte" not in t.name):
            after.append((t, b))
        else:
            before.append((t, b))
    out: list[tuple[int | None, list[TensorInfo], int]] = []
    out += [(None, [t], b) for t, b in before]
    out += [(i, [t for t, _ in layers[i]], sum(b for _, b in layers[i])) for i in sorted(layers)]
    out += [(None, [t], b) for t, b in after]
    return out


def balanced_placement(pairs: Sequence[tuple[TensorInfo, int]], free: Sequence[int]) -> list[list[TensorInfo]]:
    """The tensors each GPU gets under ``device_map='auto'`` (see the module doc).

    Args:
        pairs: (tensor, bytes as loaded), in the model's order.
        free: memory each GPU offers (accelerate's ``get_max_memory``: what is free on it).
    Returns:
        One list of tensors per GPU; what does not fit anywhere lands on the last GPU (accelerate
        would offload it to the CPU — the fit then reports the last GPU short).
    """
    n = len(free)
    units = _units(pairs)
    total = sum(b for _, _, b in units)
    biggest_layer = max((b for layer, _, b in units if layer is not None), default=0)
    biggest_leaf = max((b for _, b in pairs), default=0)
    per_gpu = total // n + int(BALANCE_BUFFER * max(biggest_layer, biggest_leaf))
    caps = [min(per_gpu, f) for f in free[:-1]] + [free[-1]]
    caps[0] = max(0, caps[0] - biggest_layer) if n > 1 else caps[0]
    placed: list[list[TensorInfo]] = [[] for _ in range(n)]
    used = [0] * n
    dev = 0
    for _, tensors, size in units:
        while dev < n - 1 and used[dev] + size > caps[dev]:
            dev += 1
        placed[dev].extend(tensors)
        used[dev] += size
    return placed


def _part(profile: ModelProfile, tensors: list[TensorInfo]) -> ModelProfile:
    """``profile`` cut down to ``tensors``, its layers renumbered from 0 (one GPU's share)."""
    arch = profile.arch
    layers = sorted({t.layer for t in tensors if t.layer is not None})
    first = layers[0] if layers else 0
    moved = tuple(t if t.layer is None else  # positional: dataclasses.replace costs 10 µs a tensor
                  TensorInfo(t.name, t.dtype, t.shape, t.n_elements, t.nbytes, t.file, t.offset, t.consumers,
                             t.layer - first) for t in tensors)
    if arch is not None:
        kinds = arch.layer_types[first:first + len(layers)] if arch.layer_types else ()
        arch = dataclasses.replace(arch, n_layers=len(layers), layer_types=kinds)
    return dataclasses.replace(profile, tensors=moved, arch=arch, weight_bytes=sum(t.nbytes for t in tensors),
                               n_params=sum(t.n_elements for t in tensors))


_placements: ModelCache[tuple[list[list[TensorInfo]], list[tuple[int, ModelProfile]]]] = ModelCache(16)


def spread_estimate(profile: ModelProfile, workload: Workload, runtime: str, free: list[int],
                    one_gpu: Callable[[ModelProfile, Workload, str], Estimate]) -> Estimate:
    """The estimate of ``device_map='auto'`` over GPUs offering ``free`` bytes each.

    ``peak_bytes`` and its range are the fullest GPU's; ``spread`` gives every GPU's need.
    """
    pairs, _, _ = to.torch_weight_bytes(profile, workload.weight_dtype)

    def place() -> tuple[list[list[TensorInfo]], list[tuple[int, ModelProfile]]]:
        placement = balanced_placement(pairs, free)
        return placement, [(i, _part(profile, tensors)) for i, tensors in enumerate(placement) if tensors]

    # the same parts for every workload the plan tries: their own per-model facts are computed once
    placement, shares = _placements.get_or_make(pairs, tuple(free), place)
    parts = [(i, one_gpu(share, workload, runtime)) for i, share in shares]
    _, full = max(parts, key=lambda p: p[1].required_bytes)
    layers = [len({t.layer for t in placement[i] if t.layer is not None}) for i, _ in parts]
    layout = ", ".join(f"GPU {i}: {format_bytes(e.required_bytes)}" + (f" ({n} layers)" if n else "")
                       for (i, e), n in zip(parts, layers, strict=True))
    note = (f"device_map='auto' spreads the model over {len(parts)} GPUs (accelerate's balanced placement: "
            f"whole decoder layers, in order, each GPU with its own CUDA context and KV cache, logits on the "
            f"last): {layout}; the figures (and the notes above: its layers' KV cache) are the fullest GPU's")
    # RAM: loading stages one tensor at a time, so the largest any GPU's part stages (no second estimate)
    host = max((e.host_bytes or 0 for _, e in parts), default=0)
    return dataclasses.replace(full, notes=(*full.notes, note), host_bytes=host or None,
                               spread=tuple((i, e.required_bytes) for i, e in parts))
