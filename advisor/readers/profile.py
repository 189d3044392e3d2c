"""What a model file holds, as read from its headers: :class:`ModelProfile` and its parts.

Readers fill these; the estimator, the plan, the report and the window only read them.
Byte counts are exact (from the dtype table); nothing here needs the weights in memory.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

ModelFormat = Literal["onnx", "safetensors", "gguf"]

# A dimension: a number, a symbolic name kept as written ("batch", "seq_len"), or None (unknown).
Dim = int | str | None


@dataclass(frozen=True)
class TensorSpec:
    """A graph input or output: its name, shape with symbolic dims kept, and element type.

    ``shape`` is None when even the rank is unknown.
    """

    name: str
    shape: tuple[Dim, ...] | None
    dtype: str


@dataclass(frozen=True, slots=True)  # a header can hold a million of them
class TensorInfo:
    """One stored weight tensor.

    Attributes:
        name: tensor name in the file.
        dtype: canonical dtype name (see :mod:`advisor.dtypes`).
        shape: dimensions.
        n_elements: product of ``shape``.
        nbytes: bytes it occupies when stored (whole ggml blocks for quantized types).
        file: the file that holds its data (shard, external-data file, or the model itself).
        offset: byte offset of its data in ``file`` when known (for streaming scans), else None.
        consumers: op types that read it (ONNX only; e.g. ``("MatMul",)``), empty when unknown.
        layer: transformer block index parsed from the name (``model.layers.12.`` → 12), if any.
    """

    name: str
    dtype: str
    shape: tuple[int, ...]
    n_elements: int
    nbytes: int
    file: str
    offset: int | None = None
    consumers: tuple[str, ...] = ()
    layer: int | None = None


@dataclass(frozen=True)
class LlmArchitecture:
    """Decoder-LLM architecture, from a Hugging Face ``config.json`` or GGUF metadata.

    Head counts and dims are per layer. ``layer_types`` lists each layer's attention kind
    (``"full_attention"`` or ``"sliding_attention"``) when the model mixes them; an empty
    tuple with ``sliding_window`` set means every layer slides.
    ``kv_lora_rank``/``qk_rope_head_dim`` describe multi-head latent attention (DeepSeek-V2/V3):
    the cache holds ``kv_lora_rank + qk_rope_head_dim`` values per token per layer.
    """

    model_type: str
    n_layers: int
    hidden_size: int
    n_heads: int
    n_kv_heads: int
    head_dim: int
    vocab_size: int
    max_positions: int | None = None
    intermediate_size: int | None = None
    sliding_window: int | None = None
    layer_types: tuple[str, ...] = ()
    tie_word_embeddings: bool = False
    n_experts: int = 0
    n_experts_per_token: int = 0
    kv_lora_rank: int | None = None
    qk_rope_head_dim: int | None = None
    v_head_dim: int | None = None
    torch_dtype: str | None = None

    @property
    def is_moe(self) -> bool:
        return self.n_experts > 1

    @property
    def is_mla(self) -> bool:
        return bool(self.kv_lora_rank)


@dataclass(frozen=True)
class ModelProfile:
    """Everything the advisor knows about a model without loading its weights.

    Attributes:
        path: what the person opened (a file or a folder).
        format: ``onnx``, ``safetensors`` or ``gguf``.
        name: a display name (GGUF ``general.name``, the folder name, or the file stem).
        n_params: number of stored weight elements.
        weight_bytes: bytes of stored weights.
        params_by_dtype / weight_bytes_by_dtype: the same, split by canonical dtype.
        files: every file the model spans (shards, external data), in order.
        file_bytes: the size of those files on disk.
        tensors: each stored weight tensor.
        inputs / outputs: graph inputs and outputs (ONNX), with symbolic dims as names.
        op_histogram: op type → count (ONNX, subgraphs included).
        opset / ir_version / producer: ONNX model metadata.
        arch: decoder-LLM architecture when the format says so (config.json, GGUF metadata).
        metadata: other facts worth showing (GGUF file type, quantization version, ...).
        notes: things a person should know about how it was read.
        projector_path / projector_bytes: a vision projector GGUF that loads beside the model
            (llama.cpp's ``--mmproj``; LM Studio and Ollama keep one next to a vision model) and
            its weight bytes, counted in the llama.cpp estimate; "" / 0 when there is none.
        graph_rewrite: a change the plan made to the tensors but not to the file's graph, which the
            estimator applies to the graph it reads from ``load_path`` ("int8-dynamic": as
            ``quantize_dynamic`` writes it); "" for a model as stored.
    """

    path: str
    format: ModelFormat
    name: str
    n_params: int
    weight_bytes: int
    params_by_dtype: dict[str, int]
    weight_bytes_by_dtype: dict[str, int]
    files: tuple[str, ...]
    file_bytes: int
    tensors: tuple[TensorInfo, ...] = ()
    inputs: tuple[TensorSpec, ...] = ()
    outputs: tuple[TensorSpec, ...] = ()
    op_histogram: dict[str, int] = field(default_factory=dict)
    opset: int | None = None
    ir_version: int | None = None
    producer: str | None = None
    arch: LlmArchitecture | None = None
    metadata: dict[str, Any] = field(default_factory=dict)
    notes: tuple[str, ...] = ()
    projector_path: str = ""
    projector_bytes: int = 0
    graph_rewrite: str = ""

    @property
    def is_llm(self) -> bool:
        return self.arch is not None

    @property
    def load_path(self) -> str:
        """What a runtime is pointed at: the ``.onnx`` file or the first ``.gguf`` file, even when a
        folder was opened; for safetensors, the Hugging Face folder (``from_pretrained`` and ``vllm
        serve`` take a folder) when the model spans several files or has a config — even when one
        shard, the index or config.json was what was opened — else the file itself."""
        if self.format in ("onnx", "gguf") and self.files:
            return self.files[0]
        if self.path.startswith("hf:"):
            return self.path[3:].partition("@")[0]  # a Hub repo id: from_pretrained and vllm serve take it
        opened = Path(self.path)
        if self.format == "safetensors" and not opened.is_dir() and (len(self.files) > 1 or self.arch is not None):
            return str(opened.parent)
        return self.path

    def open_batch_inputs(self, shapes: dict[str, tuple[int, ...]]) -> list[str]:
        """The inputs ``shapes`` gives whose first dim the model leaves open (symbolic or -1): the
        ones a batch is the leading dim of."""
        return [s.name for s in self.inputs if s.name in shapes and shapes[s.name]
                and s.shape and not (isinstance(s.shape[0], int) and s.shape[0] > 0)]

    def to_dict(self, *, with_tensors: bool = False) -> dict[str, Any]:
        """A JSON-ready dict (the ``model`` object of ``advisor analyze --json``)."""
        out: dict[str, Any] = {
            "path": self.path,
            "format": self.format,
            "name": self.name,
            "params": self.n_params,
            "weight_bytes": self.weight_bytes,
            "params_by_dtype": dict(self.params_by_dtype),
            "weight_bytes_by_dtype": dict(self.weight_bytes_by_dtype),
            "files": list(self.files),
            "file_bytes": self.file_bytes,
            "n_tensors": len(self.tensors),
            "inputs": [_spec_dict(s) for s in self.inputs],
            "outputs": [_spec_dict(s) for s in self.outputs],
            "op_histogram": dict(self.op_histogram),
            "opset": self.opset,
            "ir_version": self.ir_version,
            "producer": self.producer,
            "architecture": asdict(self.arch) if self.arch else None,
            "metadata": dict(self.metadata),
            "notes": list(self.notes),
        }
        if with_tensors:
            out["tensors"] = [asdict(t) for t in self.tensors]
        return out


def _spec_dict(spec: TensorSpec) -> dict[str, Any]:
    return {
        "name": spec.name,
        "shape": list(spec.shape) if spec.shape is not None else None,
        "dtype": spec.dtype,
    }


def summarize_tensors(
    tensors: tuple[TensorInfo, ...] | list[TensorInfo],
) -> tuple[int, int, dict[str, int], dict[str, int]]:
    """Totals over tensors: (n_params, weight_bytes, params_by_dtype, weight_bytes_by_dtype)."""
    params: dict[str, int] = {}
    nbytes: dict[str, int] = {}
    for t in tensors:
        params[t.dtype] = params.get(t.dtype, 0) + t.n_elements
        nbytes[t.dtype] = nbytes.get(t.dtype, 0) + t.nbytes
    return sum(params.values()), sum(nbytes.values()), params, nbytes


_LAYER_RE = re.compile(r"(?:^|[._/])(?:layers|layer|h|blk|blocks|block|decoder_layers)[._/](\d+)(?:[._/]|$)")


def layers_missing(n_layers: int, tensors: Iterable[TensorInfo]) -> int | None:
    """The last layer index the tensors hold when ``n_layers`` counts more layers than that, else None.

    Judged only when the layer-indexed tensors hold most of the bytes (the name pattern found the
    decoder stack, not a small indexed sub-module). A multimodal tower sharing ``layers.N`` names
    only raises the top index; an extra MTP layer at index ``n_layers`` (DeepSeek-V3) stays within it.
    """
    layered = total = 0
    top = -1
    for t in tensors:
        total += t.nbytes
        if t.layer is not None:
            layered += t.nbytes
            top = max(top, t.layer)
    if top < 0 or 2 * layered < total or n_layers <= top + 1:
        return None
    return top


def layer_index(tensor_name: str) -> int | None:
    """Transformer block index in a tensor name (``model.layers.12.mlp`` → 12, ``blk.3.attn_q`` → 3)."""
    m = _LAYER_RE.search(tensor_name)
    return int(m.group(1)) if m else None
