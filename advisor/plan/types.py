"""The plan's vocabulary: ranked :class:`PlanOption` s in a :class:`Plan`."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from advisor.estimator.speed import Speed
from advisor.estimator.types import Estimate, Workload
from advisor.hardware.profile import HardwareProfile
from advisor.readers.profile import ModelProfile

OptionKind = Literal["as-is", "quantize", "prune", "batch", "context", "offload", "multi-gpu", "multi-node", "cloud",
                     "distill"]
Risk = Literal["low", "medium", "high"]
OPTION_KINDS: tuple[str, ...] = (
    "as-is", "quantize", "prune", "batch", "context", "offload", "multi-gpu", "multi-node", "cloud", "distill",
)


@dataclass(frozen=True)
class PlanOption:
    """One way to run the model, re-estimated.

    Attributes:
        kind: what kind of change (see :data:`OPTION_KINDS`).
        title: one line a person reads ("int8 dynamic quantization (MatMul/Gemm weights)").
        peak_bytes: predicted peak after the change (None for advice-only options).
        fits: whether the memory the change needs (``required_bytes``) fits the target (for
            cloud: the instance it names).
        headroom_bytes: budget minus that need (negative when short); None for advice-only options.
        risk / risk_reason: expected cost in accuracy, speed or money, and why.
        how_to: the command or code snippet that does it.
        detail: what it changes, e.g. which tensors and the resulting weight bytes.
        price_per_hour_usd: for cloud options, the on-demand price.
        device_id: for cloud options, the catalog id of the instance.
        weight_bytes_after: weight bytes after the change, when it changes them.
        estimate: the re-estimate behind ``peak_bytes``.
        workload / runtime: what was re-estimated.
        apply_action: an id the core can apply (e.g. ``onnx-int8-dynamic``), else None.
        quality_rank: ordinal expected quality loss (0 = none) used for ranking.
        profile / hardware: the (transformed) model and the target that were re-estimated, so
            anyone can re-run ``estimate`` + ``fit`` on exactly what the option claims.
        required_bytes: the memory the run needs after the change (``Estimate.required_bytes``:
            the peak less pages the OS can drop); None = the peak, or advice only.
    """

    kind: OptionKind
    title: str
    peak_bytes: int | None
    fits: bool
    headroom_bytes: int | None
    risk: Risk
    risk_reason: str
    how_to: str
    detail: str = ""
    price_per_hour_usd: float | None = None
    device_id: str | None = None
    weight_bytes_after: int | None = None
    estimate: Estimate | None = None
    workload: Workload | None = None
    runtime: str | None = None
    apply_action: str | None = None
    quality_rank: int = 0
    extra: dict[str, Any] = field(default_factory=dict)
    profile: ModelProfile | None = field(default=None, repr=False, compare=False)
    hardware: HardwareProfile | None = field(default=None, repr=False, compare=False)
    required_bytes: int | None = None
    speed: Speed | None = None

    def __post_init__(self) -> None:
        if self.required_bytes is None and self.peak_bytes is not None:
            object.__setattr__(self, "required_bytes", self.peak_bytes)

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "title": self.title,
            "peak_bytes": self.peak_bytes,
            "required_bytes": self.required_bytes,
            "fits": self.fits,
            "headroom_bytes": self.headroom_bytes,
            "risk": self.risk,
            "risk_reason": self.risk_reason,
            "how_to": self.how_to,
            "detail": self.detail,
            "price_per_hour_usd": self.price_per_hour_usd,
            "device_id": self.device_id,
            "weight_bytes_after": self.weight_bytes_after,
            "runtime": self.runtime,
            "workload": self.workload.to_dict() if self.workload else None,
            "estimate": self.estimate.to_dict() if self.estimate else None,
            "apply_action": self.apply_action,
            "speed": self.speed.to_dict() if self.speed else {"basis": "advice only: not estimated"},
            **({"extra": dict(self.extra)} if self.extra else {}),
        }


@dataclass(frozen=True)
class Plan:
    """The ranked options for one analysis."""

    fits_as_is: bool
    options: tuple[PlanOption, ...]
    notes: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {
            "fits_as_is": self.fits_as_is,
            "options": [o.to_dict() for o in self.options],
            "plan_notes": list(self.notes),
        }
