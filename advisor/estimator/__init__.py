"""Predict the peak memory of running a model: :func:`estimate`, and :func:`fit` against a target.

Each runtime's whole estimate lives in one module of :mod:`advisor.estimator.runtimes`
(onnxruntime, PyTorch, llama.cpp), composed from the mechanism modules of
:mod:`advisor.estimator.mechanisms`; the fit against a target's memory is apart
(:mod:`advisor.estimator.fit`).
"""

from __future__ import annotations

from advisor.errors import WorkloadError
from advisor.estimator.fit import fit
from advisor.estimator.types import RUNTIMES, Estimate, Fit, Workload
from advisor.hardware.profile import HardwareProfile
from advisor.readers.profile import ModelProfile

__all__ = ["RUNTIMES", "Estimate", "Fit", "Workload", "default_runtime", "estimate", "fit", "runtimes_for"]


def runtimes_for(profile: ModelProfile) -> tuple[str, ...]:
    """Runtimes that can run ``profile`` as stored (llama.cpp also takes a safetensors LLM, converted)."""
    if profile.format == "onnx":
        return ("onnxruntime-cpu", "onnxruntime-cuda")
    if profile.format == "gguf":
        return ("llama.cpp",)
    if profile.is_llm:
        return ("pytorch-cpu", "pytorch-cuda", "llama.cpp")
    return ("pytorch-cpu", "pytorch-cuda")


def default_runtime(profile: ModelProfile, hardware: HardwareProfile) -> str:
    """The runtime a person would use: it follows the format, and CUDA when the target has an NVIDIA GPU."""
    cuda = hardware.has_cuda_gpu
    if profile.format == "onnx":
        return "onnxruntime-cuda" if cuda else "onnxruntime-cpu"
    if profile.format == "gguf":
        return "llama.cpp"
    return "pytorch-cuda" if cuda else "pytorch-cpu"


def validate(profile: ModelProfile, workload: Workload, runtime: str) -> None:
    """Reject impossible requests with a readable :class:`WorkloadError`."""
    if runtime not in RUNTIMES:
        raise WorkloadError(f"unknown runtime {runtime!r}; choose one of {', '.join(RUNTIMES)}")
    if runtime not in runtimes_for(profile):
        raise WorkloadError(
            f"{runtime} cannot run a {profile.format} model; use one of {', '.join(runtimes_for(profile))}"
        )
    for label, value in (("batch", workload.batch), ("tensor parallel size", workload.tensor_parallel)):
        if value < 1:
            raise WorkloadError(f"{label} must be at least 1 (got {value})")
    for label, opt in (
        ("sequence length", workload.seq_len),
        ("context", workload.context),
        ("image size", workload.image_size),
    ):
        if opt is not None and opt < 1:
            raise WorkloadError(f"{label} must be at least 1 (got {opt})")
    if workload.gpu_layers is not None and workload.gpu_layers < 0:
        raise WorkloadError(f"GPU layers must be 0 or more (got {workload.gpu_layers})")
    for name, shape in workload.input_shapes.items():
        if any(d < 0 for d in shape):
            raise WorkloadError(f"input {name!r} has a negative dimension {list(shape)}")


def estimate(
    profile: ModelProfile,
    workload: Workload,
    runtime: str | None,
    hardware: HardwareProfile,
) -> Estimate:
    """Predict the peak memory of running ``profile`` under ``workload`` with ``runtime`` on ``hardware``.

    Args:
        profile: what the model file holds.
        workload: batch, sequence/context, shapes, KV-cache type, parallelism.
        runtime: one of :data:`RUNTIMES`, or None for :func:`default_runtime`.
        hardware: the target (decides CUDA vs CPU details, e.g. llama.cpp's GPU offload).

    Raises:
        WorkloadError: an impossible request (unknown runtime, batch of 0, unknown input name).
    """
    runtime = runtime or default_runtime(profile, hardware)
    validate(profile, workload, runtime)
    from advisor.estimator.runtimes import estimate_with

    return estimate_with(runtime, profile, workload, hardware)
