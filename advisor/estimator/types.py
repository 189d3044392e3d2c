"""The estimator's vocabulary: :class:`Workload` in, :class:`Estimate` out, :class:`Fit` against a target."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

GIB = 1024**3
MIB = 1024**2

Runtime = Literal["onnxruntime-cpu", "onnxruntime-cuda", "pytorch-cpu", "pytorch-cuda", "llama.cpp"]
RUNTIMES: tuple[str, ...] = (
    "onnxruntime-cpu",
    "onnxruntime-cuda",
    "pytorch-cpu",
    "pytorch-cuda",
    "llama.cpp",
)
# Where the peak lives: system RAM (cpu), an NVIDIA GPU (cuda), or Apple silicon's unified memory
# under Metal's GPU working-set limit (metal: llama.cpp's runtime there).
ComputeDevice = Literal["cpu", "cuda", "metal"]

# KV-cache element types the estimator understands (llama.cpp names and vLLM's fp8).
KV_CACHE_DTYPES: tuple[str, ...] = ("f32", "f16", "bf16", "q8_0", "q4_0", "fp8")


@dataclass(frozen=True)
class Workload:
    """How the model is run.

    Attributes:
        batch: batch size; for LLMs the number of concurrent sequences.
        seq_len: sequence length that fills symbolic sequence dims (non-LLM models, or prompt).
        context: LLM tokens per sequence (prompt + generated); None → a default (see notes).
        image_size: fills symbolic height/width dims of image inputs.
        input_shapes: explicit shapes per input name (``--input NAME=D0,D1``); win over the above.
        kv_cache_dtype: KV-cache element type (one of :data:`KV_CACHE_DTYPES`); None → the runtime's default.
        tensor_parallel: GPUs a tensor-parallel engine splits the model over (1 = one device).
        pipeline_parallel: of those, how many pipeline stages (nodes) run one after another
            (vLLM ``--pipeline-parallel-size``): each GPU still holds ``1/tensor_parallel`` of
            the model, but a token passes the stages in turn (the speed model's concern).
        gpu_layers: for LLMs on a GPU runtime, how many transformer layers live on the GPU
            (None = all); the rest run from system RAM (llama.cpp ``-ngl``, HF ``device_map``).
        weight_dtype: for LLM safetensors/GGUF profiles, re-price the weights as this dtype
            (used by the plan to re-estimate quantization); None → as stored.
        use_mmap / mlock / repack: llama.cpp's loading flags: ``--no-mmap`` (False reads the
            weights into anonymous memory), ``--mlock`` (pins the mapping: the OS cannot drop
            its pages), ``--no-repack`` (False: ggml-cpu keeps no interleaved copy).
        swa_full: llama.cpp's full-size cache for sliding-window layers. None = llama-server's
            and llama-cli's default (off: window-sized); llama-cpp-python's ``Llama()`` keeps the
            C API default, True (``llama_context_default_params``).
    """

    batch: int = 1
    seq_len: int | None = None
    context: int | None = None
    image_size: int | None = None
    input_shapes: dict[str, tuple[int, ...]] = field(default_factory=dict)
    kv_cache_dtype: str | None = None
    tensor_parallel: int = 1
    pipeline_parallel: int = 1
    gpu_layers: int | None = None
    weight_dtype: str | None = None
    use_mmap: bool = True
    mlock: bool = False
    repack: bool = True
    swa_full: bool | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "batch": self.batch,
            "seq_len": self.seq_len,
            "context": self.context,
            "image_size": self.image_size,
            "input_shapes": {k: list(v) for k, v in self.input_shapes.items()},
            "kv_cache_dtype": self.kv_cache_dtype,
            "tensor_parallel": self.tensor_parallel,
            "pipeline_parallel": self.pipeline_parallel,
            "gpu_layers": self.gpu_layers,
            "weight_dtype": self.weight_dtype,
            "use_mmap": self.use_mmap,
            "mlock": self.mlock,
            "repack": self.repack,
            "swa_full": self.swa_full,
        }


@dataclass(frozen=True)
class Estimate:
    """Predicted peak memory of running a model, with its parts and an honest range.

    Two figures (issue 10):

    * ``peak_bytes`` is what the process shows at its peak on the compute device when memory is
      plentiful, above a bare runtime that has not loaded the model: the resident set for CPU
      runtimes (``top``, and the figure the live plot draws); for GPU runtimes the device memory
      nvidia-smi shows for the process (CUDA context and allocator cache included), per GPU
      when split over several.
    * ``required_bytes`` is the least memory the run completes in at full speed. It is the peak
      less what the OS takes back when memory is short without slowing the run: clean file
      pages that are never read again (llama.cpp's mmap'd weights once ggml-cpu has repacked
      them). The verdict (:func:`~advisor.estimator.fit.fit`) and every plan option use it.
      ``required_note`` says in plain words what lies between the two; when nothing does,
      the required figures equal the peak ones.

    Attributes:
        runtime: the runtime it was computed for.
        device: ``cpu`` or ``cuda`` (where ``peak_bytes`` lives).
        weights_bytes / activation_bytes / kv_cache_bytes / overhead_bytes: the parts of the peak.
        peak_bytes: the prediction (not always the plain sum: transient load copies may dominate).
        low_bytes / high_bytes: the range the real peak falls inside.
        host_bytes: for GPU runtimes, system RAM the process also needs (offloaded layers,
            load-time staging); None for CPU runtimes.
        notes: assumptions, in plain language.
        unknown_dims: symbolic dims the workload did not resolve (reported, not guessed silently).
        resolved_inputs: the concrete input shapes used.
        tensor_parallel: GPUs the model is split over; ``peak_bytes`` is then per GPU.
        reclaimable_bytes: the part of the peak the OS takes back when memory is short without
            slowing the run (clean file pages never read again); ``required_bytes`` and its range
            are the peak's figures less it.
        required_range: the need's own (low, high) when the runtime knows it better than the
            peak's range less ``reclaimable_bytes`` (llama.cpp: the low end is --no-mmap's, which
            has nothing to reclaim); None = derived.
        required_note: what separates the peak from the need, in plain words ("" when nothing).
        spread: how the model is spread over several GPUs when the runtime does it itself
            (HF ``device_map='auto'``): one ``(gpu position, bytes)`` per GPU used, in order;
            empty when it runs on one device or splits evenly (``tensor_parallel``).
        flops / traffic_bytes: for graph models, the operations of one inference (a multiply-add
            counts 2) and the bytes it moves at least (weights read once, every activation
            written and read once), which bound its speed (:mod:`advisor.estimator.speed`); 0
            when not known (LLMs: the speed model derives them from the architecture).
        nodes: graph nodes one inference dispatches (subgraphs included; 0 when not a graph model).
    """

    runtime: str
    device: ComputeDevice
    weights_bytes: int
    activation_bytes: int
    kv_cache_bytes: int
    overhead_bytes: int
    peak_bytes: int
    low_bytes: int
    high_bytes: int
    host_bytes: int | None = None
    tensor_parallel: int = 1
    notes: tuple[str, ...] = ()
    unknown_dims: tuple[str, ...] = ()
    resolved_inputs: dict[str, tuple[int, ...]] = field(default_factory=dict)
    reclaimable_bytes: int = 0
    required_range: tuple[int, int] | None = None
    required_note: str = ""
    spread: tuple[tuple[int, int], ...] = ()
    flops: int = 0
    traffic_bytes: int = 0
    nodes: int = 0

    @property
    def required_bytes(self) -> int:
        """The least memory the run completes in at full speed (the verdict's figure)."""
        return max(0, self.peak_bytes - self.reclaimable_bytes)

    @property
    def required_low_bytes(self) -> int:
        low = self.required_range[0] if self.required_range else self.low_bytes - self.reclaimable_bytes
        return max(0, min(low, self.required_bytes))

    @property
    def required_high_bytes(self) -> int:
        high = self.required_range[1] if self.required_range else self.high_bytes - self.reclaimable_bytes
        return max(high, self.required_bytes)

    def to_dict(self) -> dict[str, Any]:
        return {
            "runtime": self.runtime,
            "device": self.device,
            "weights_bytes": self.weights_bytes,
            "activation_bytes": self.activation_bytes,
            "kv_cache_bytes": self.kv_cache_bytes,
            "overhead_bytes": self.overhead_bytes,
            "peak_bytes": self.peak_bytes,
            "low_bytes": self.low_bytes,
            "high_bytes": self.high_bytes,
            "required_bytes": self.required_bytes,
            "required_low_bytes": self.required_low_bytes,
            "required_high_bytes": self.required_high_bytes,
            "reclaimable_bytes": self.reclaimable_bytes,
            "required_note": self.required_note,
            "spread": [list(s) for s in self.spread],
            "flops": self.flops,
            "traffic_bytes": self.traffic_bytes,
            "nodes": self.nodes,
            "host_bytes": self.host_bytes,
            "tensor_parallel": self.tensor_parallel,
            "notes": list(self.notes),
            "unknown_dims": list(self.unknown_dims),
            "resolved_inputs": {k: list(v) for k, v in self.resolved_inputs.items()},
        }


MemoryKind = Literal["ram", "gpu", "unified"]
FitBasis = Literal["available", "total"]


@dataclass(frozen=True)
class Fit:
    """An estimate held against a target's memory.

    The verdict holds the memory the run *needs* (``required_bytes`` and its range) against the
    budget; the peak it will show is carried beside it for display.

    Attributes:
        fits: ``required_bytes <= budget_bytes`` (on every GPU it is spread over).
        certainty: ``"sure"`` (even ``required_high_bytes`` fits), ``"likely"`` (the need fits,
            the top of its range does not), ``"unlikely"`` (the need does not, the bottom of its
            range does), ``"no"`` (even ``required_low_bytes`` does not).
        memory: which memory is held against: system RAM, one GPU's VRAM, or unified memory.
        basis: ``available`` (this machine, now) or ``total`` (planning for a device).
        label: a readable name of that memory ("GPU 0 · NVIDIA H100 80GB HBM3", "RAM").
        capacity_bytes: total or available memory of that kind.
        margin_bytes: held back (GPU: max(1 GiB, 10%); RAM planning: OS reserve).
        budget_bytes: ``capacity_bytes - margin_bytes``.
        peak_bytes / low_bytes / high_bytes: the peak the run shows and its range (the estimate's).
        headroom_bytes: ``budget_bytes - required_bytes`` (negative: short by that much).
        host_fits: for GPU runtimes, whether the host RAM part fits (None when not applicable).
        required_bytes / required_low_bytes / required_high_bytes: what the run needs, and its range.
        gpus: GPUs the verdict counts (more than 1 when the model is spread over several).
        error: set when the target cannot run the runtime at all ("no NVIDIA GPU on …"); the
            verdict is then "does not fit" for that reason, not for a shortfall.
    """

    fits: bool
    certainty: Literal["sure", "likely", "unlikely", "no"]
    memory: MemoryKind
    basis: FitBasis
    label: str
    capacity_bytes: int
    margin_bytes: int
    budget_bytes: int
    peak_bytes: int
    low_bytes: int
    high_bytes: int
    headroom_bytes: int
    host_fits: bool | None = None
    required_bytes: int = -1
    required_low_bytes: int = -1
    required_high_bytes: int = -1
    gpus: int = 1
    error: str = ""

    def __post_init__(self) -> None:
        for need, peak in (("required_bytes", self.peak_bytes), ("required_low_bytes", self.low_bytes),
                           ("required_high_bytes", self.high_bytes)):
            if getattr(self, need) < 0:
                object.__setattr__(self, need, peak)

    def to_dict(self) -> dict[str, Any]:
        return {
            "fits": self.fits,
            "certainty": self.certainty,
            "memory": self.memory,
            "basis": self.basis,
            "label": self.label,
            "capacity_bytes": self.capacity_bytes,
            "margin_bytes": self.margin_bytes,
            "budget_bytes": self.budget_bytes,
            "peak_bytes": self.peak_bytes,
            "low_bytes": self.low_bytes,
            "high_bytes": self.high_bytes,
            "required_bytes": self.required_bytes,
            "required_low_bytes": self.required_low_bytes,
            "required_high_bytes": self.required_high_bytes,
            "headroom_bytes": self.headroom_bytes,
            "host_fits": self.host_fits,
            "gpus": self.gpus,
            "error": self.error,
        }
