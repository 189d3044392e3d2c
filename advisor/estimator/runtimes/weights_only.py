"""The estimate for a model whose architecture no runtime model knows: weights + runtime only."""

from __future__ import annotations

from advisor.estimator.types import MIB, Estimate
from advisor.readers.profile import ModelProfile
from advisor.units import format_bytes


def weights_only_estimate(profile: ModelProfile, runtime: str, device: str, weights: int, overhead: int, over_high: int,
             notes: list[str], host_w: int, tp: int) -> Estimate:
    """A model with no decoder architecture: weights + runtime, activations unknown (range widened)."""
    widen = max(weights // 2, 64 * MIB)
    notes.append(f"not a decoder LLM the estimator knows: activations are unknown and not counted; the high end "
                 f"adds {format_bytes(widen)} (half the weights) for them — export to ONNX for a graph-level estimate")
    peak = weights + overhead
    return Estimate(
        runtime=runtime, device="cuda" if device == "cuda" else "cpu", weights_bytes=weights,
        activation_bytes=0, kv_cache_bytes=0, overhead_bytes=overhead, peak_bytes=peak,
        low_bytes=int(weights * 0.98), high_bytes=int((peak + over_high + widen) * 1.03),
        host_bytes=(host_w + max((t.nbytes for t in profile.tensors), default=0)) if device == "cuda" else None,
        tensor_parallel=tp, notes=tuple(notes),
    )
