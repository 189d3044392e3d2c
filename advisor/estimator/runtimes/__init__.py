"""One module per runtime, each owning its whole estimate (CPU and CUDA) behind one interface.

* :mod:`.onnxruntime` — ``onnxruntime-cpu`` / ``onnxruntime-cuda`` (graph walk in
  :mod:`.onnxruntime_graph`, weights at load in :mod:`.onnxruntime_weights`);
* :mod:`.pytorch` — ``pytorch-cpu`` / ``pytorch-cuda``: Hugging Face ``generate()`` (parts in
  :mod:`.pytorch_parts`);
* :mod:`.llamacpp` — ``llama.cpp`` on CPU and CUDA (placement in :mod:`.llamacpp_plan`, the CPU
  resident set in :mod:`.llamacpp_cpu`).

Each is composed from the mechanism modules of :mod:`advisor.estimator.mechanisms` (graph liveness,
the BFC arena, torch's caching allocator, the KV cache, onnxruntime's graph rewrites...), each of
which models one thing a runtime does and says which source it follows and what measures it.
:func:`estimate_with` is the one entry point; the fit against a target is apart
(:mod:`advisor.estimator.fit`).
"""

from __future__ import annotations

import dataclasses

from advisor.estimator.types import Estimate, Workload
from advisor.hardware.profile import HardwareProfile
from advisor.readers.profile import ModelProfile


def estimate_with(runtime: str, profile: ModelProfile, workload: Workload, hardware: HardwareProfile) -> Estimate:
    """The estimate of the runtime module that owns ``runtime`` (a validated name of ``RUNTIMES``)."""
    if runtime.startswith("onnxruntime"):
        from advisor.estimator.runtimes import onnxruntime

        est = onnxruntime.estimate(profile, workload, runtime, hardware)
        n_gpus = sum(1 for g in hardware.gpus if g.vendor == "nvidia")
        if runtime == "onnxruntime-cuda" and n_gpus > 1:
            one = (f"onnxruntime's CUDA provider runs a session on one GPU (device_id 0 unless its provider options "
                   f"say otherwise): the other {n_gpus - 1} are not used")
            est = dataclasses.replace(est, notes=(*est.notes, one))
        return est
    if runtime == "llama.cpp":
        from advisor.estimator.runtimes import llamacpp

        est = llamacpp.estimate(profile, workload, hardware)
        if profile.projector_bytes:
            est = _with_projector(est, profile)
    else:
        from advisor.estimator.runtimes import pytorch

        free = _auto_map_gpus(profile, workload, runtime, hardware)
        if free:
            from advisor.estimator.runtimes.pytorch_spread import spread_estimate

            est = spread_estimate(profile, workload, runtime, free, pytorch.estimate)
        else:
            est = pytorch.estimate(profile, workload, runtime)
    arch = profile.arch
    if arch is not None and arch.is_moe:
        moe = (f"mixture of experts: all {arch.n_experts} experts are resident in memory although only "
               f"{arch.n_experts_per_token or '?'} run per token; the KV cache does not depend on them")
        est = dataclasses.replace(est, notes=(*est.notes, moe))
    return est


def reads_hardware(runtime: str, profile: ModelProfile, workload: Workload, hardware: HardwareProfile) -> bool:
    """Whether :func:`estimate_with` 's answer depends on ``hardware`` at all.

    PyTorch's one-device estimate (``generate()`` on one GPU or the CPU) is a function of the model
    and the workload only: the plan prices it once and holds it against every catalog instance
    (:class:`advisor.plan.search.Evaluator`). onnxruntime (the CPU's ISA, its cores) and llama.cpp
    (where each layer fits) read the target, and so does ``device_map='auto'`` over several GPUs.
    """
    if runtime in ("pytorch-cpu", "pytorch-cuda"):
        return bool(_auto_map_gpus(profile, workload, runtime, hardware))
    return True


def _with_projector(est: Estimate, profile: ModelProfile) -> Estimate:
    """A vision projector's weights on top of the language model: llama-server ``--mmproj`` (and
    LM Studio, Ollama) load it at start beside the model, on the GPU when the model is offloaded
    (mtmd's default, ``--no-mmproj-offload`` to keep it on the CPU); the compute buffer an image
    needs is not counted."""
    from pathlib import Path

    from advisor.units import format_bytes

    b = profile.projector_bytes
    note = (f"vision projector {Path(profile.projector_path).name} ({format_bytes(b)}) loads beside the model "
            "(llama-server --mmproj): counted; the buffer an image's encoding needs is not")
    return dataclasses.replace(est, weights_bytes=est.weights_bytes + b, peak_bytes=est.peak_bytes + b,
                               low_bytes=est.low_bytes + b, high_bytes=est.high_bytes + b,
                               required_range=None if est.required_range is None else
                               (est.required_range[0] + b, est.required_range[1] + b),
                               notes=(*est.notes, note))


def _auto_map_gpus(profile: ModelProfile, workload: Workload, runtime: str, hardware: HardwareProfile) -> list[int]:
    """Memory each GPU offers when HF's ``device_map='auto'`` spreads ``profile`` over several, else [].

    The as-is command for pytorch-cuda loads with ``device_map='auto'``, which uses every visible
    GPU (:mod:`advisor.estimator.runtimes.pytorch_spread`); tensor parallelism (a vLLM-style
    engine), a GPU/CPU layer split, or one GPU keep the one-device estimate.
    """
    if runtime != "pytorch-cuda" or workload.tensor_parallel > 1 or workload.gpu_layers is not None:
        return []
    if profile.arch is None or not profile.tensors:
        return []
    gpus = [g for g in hardware.gpus if g.vendor == "nvidia" and not g.unified_memory and g.memory_total_bytes]
    if len(gpus) < 2:
        return []
    live = hardware.is_live
    return [g.memory_free_bytes if live and g.memory_free_bytes is not None else int(g.memory_total_bytes or 0)
            for g in gpus]


def reprice_weights(profile: ModelProfile, weight_dtype: str | None, runtime: str) -> tuple[int, str]:
    """Weight bytes of ``profile`` held as ``weight_dtype`` by ``runtime``, and which tensors changed.

    The plan's entry point for "what would the weights weigh as X": llama.cpp prices a GGUF type as
    ``llama-quantize``'s mix; PyTorch casts or quantizes (see each runtime's ``weight_bytes_as``).

    Raises:
        WorkloadError: a type the runtime cannot hold weights in.
    """
    if not profile.tensors:
        return profile.weight_bytes, "weights as stored (the file lists no tensors)"
    if runtime == "llama.cpp":
        from advisor.estimator.runtimes import llamacpp

        return llamacpp.weight_bytes_as(profile, weight_dtype)
    from advisor.estimator.runtimes import pytorch

    return pytorch.weight_bytes_as(profile, weight_dtype, runtime)
