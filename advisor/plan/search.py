"""Re-estimate a changed model, workload or target, and search for the largest setting that fits.

Every figure in the plan comes from :func:`Evaluator.trial`, i.e. the estimator run again on the
changed inputs and held against the target with :func:`~advisor.estimator.fit.fit` — never a
fixed percentage. Searches assume the peak grows with the searched setting (batch, context,
layers on the GPU), which holds for every estimator term.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

from advisor.errors import AdvisorError
from advisor.estimator import estimate, fit
from advisor.estimator.fit import ram_budget
from advisor.estimator.speed import speed
from advisor.estimator.types import Estimate, Fit, Workload
from advisor.hardware.profile import HardwareProfile
from advisor.plan.types import OptionKind, PlanOption, Risk
from advisor.readers.profile import ModelProfile

# Searches stop here: a plan need not say "batch 70 000 fits".
MAX_BATCH = 1024
MAX_SEQUENCES = 256


@dataclass(frozen=True)
class Trial:
    """One re-estimate: what was run, where, and the result."""

    profile: ModelProfile
    workload: Workload
    runtime: str
    hardware: HardwareProfile
    estimate: Estimate
    fit: Fit
    extra_host_bytes: int = 0  # system RAM the change adds outside the estimate (e.g. experts on CPU)

    @property
    def fits(self) -> bool:
        """The estimate fits, and so does any RAM the change moves to the host."""
        return self.fit.fits and self.host_fits_extra

    @property
    def host_fits_extra(self) -> bool:
        if not self.extra_host_bytes:
            return True
        capacity, margin, _ = ram_budget(self.hardware)
        return self.extra_host_bytes + (self.estimate.host_bytes or 0) <= capacity - margin


@dataclass
class Evaluator:
    """Runs the estimator for the plan and remembers answers (searches ask the same thing twice)."""

    notes: list[str] = field(default_factory=list)
    _cache: dict[tuple[Any, ...], Trial | None] = field(default_factory=dict)
    _estimates: dict[tuple[Any, ...], Estimate | AdvisorError] = field(default_factory=dict)

    def trial(
        self,
        profile: ModelProfile,
        workload: Workload,
        runtime: str,
        hardware: HardwareProfile,
        *,
        extra_host_bytes: int = 0,
    ) -> Trial | None:
        """Estimate and fit; None (with a note) when the estimator refuses the combination."""
        key = (id(profile), repr(workload), runtime, id(hardware), extra_host_bytes)
        if key in self._cache:
            return self._cache[key]
        try:
            est = self._estimate(profile, workload, runtime, hardware)
            result: Trial | None = Trial(profile, workload, runtime, hardware, est, fit(est, hardware),
                                         extra_host_bytes)
        except AdvisorError as exc:
            note = f"skipped {runtime} with {_describe(workload)}: {exc}"
            if note not in self.notes:
                self.notes.append(note)
            result = None
        self._cache[key] = result
        return result

    def _estimate(self, profile: ModelProfile, workload: Workload, runtime: str,
                  hardware: HardwareProfile) -> Estimate:
        """The estimate, computed once for all targets when it does not read the target (a cloud
        search holds one PyTorch estimate against every instance type: only the fit differs)."""
        from advisor.estimator.runtimes import reads_hardware

        where = id(hardware) if reads_hardware(runtime, profile, workload, hardware) else None
        key = (id(profile), repr(workload), runtime, where)
        known = self._estimates.get(key)
        if known is None:
            try:
                known = estimate(profile, workload, runtime, hardware)
            except AdvisorError as exc:
                known = exc
            self._estimates[key] = known
        if isinstance(known, AdvisorError):
            raise known
        return known

    def largest(
        self,
        lo: int,
        hi: int,
        make: Callable[[int], Trial | None],
    ) -> Trial | None:
        """The trial for the largest value in ``[lo, hi]`` whose trial fits, by bisection."""
        if hi < lo:
            return None
        best = make(lo)
        if best is None or not best.fits:
            return None
        top = make(hi)
        if top is not None and top.fits:
            return top
        good, bad = lo, hi
        while bad - good > 1:
            mid = (good + bad) // 2
            t = make(mid)
            if t is not None and t.fits:
                good, best = mid, t
            else:
                bad = mid
        return best


def _describe(workload: Workload) -> str:
    parts = [f"batch {workload.batch}"]
    for name in ("context", "kv_cache_dtype", "weight_dtype", "gpu_layers"):
        value = getattr(workload, name)
        if value is not None:
            parts.append(f"{name.replace('_', ' ')} {value}")
    if workload.tensor_parallel > 1:
        parts.append(f"tensor parallel {workload.tensor_parallel}")
    return ", ".join(parts)


def option(
    trial: Trial,
    *,
    kind: OptionKind,
    title: str,
    risk: Risk,
    risk_reason: str,
    how_to: str,
    quality_rank: int,
    detail: str = "",
    apply_action: str | None = None,
    weight_bytes_after: int | None = None,
    **extra: Any,
) -> PlanOption:
    """A :class:`PlanOption` carrying ``trial`` 's figures (peak, fit, headroom, what was run)."""
    hardware = trial.hardware
    cloud = hardware.kind == "cloud"
    headroom = trial.fit.headroom_bytes
    if trial.extra_host_bytes and not trial.host_fits_extra:
        detail = (detail + " " if detail else "") + "System RAM is too small for the part moved to the CPU."
    return PlanOption(
        kind=kind,
        title=title,
        peak_bytes=trial.estimate.peak_bytes,
        required_bytes=trial.estimate.required_bytes,
        fits=trial.fits,
        headroom_bytes=headroom,
        risk=risk,
        risk_reason=risk_reason,
        how_to=how_to,
        detail=detail,
        price_per_hour_usd=hardware.price_per_hour_usd if cloud else None,
        device_id=hardware.device_id if cloud else None,
        weight_bytes_after=weight_bytes_after,
        estimate=trial.estimate,
        workload=trial.workload,
        runtime=trial.runtime,
        apply_action=apply_action,
        quality_rank=quality_rank,
        extra=dict(extra),
        profile=trial.profile,
        hardware=hardware,
        speed=speed(trial.profile, trial.workload, trial.runtime, hardware, trial.estimate),
    )


def n_gpu_copies(hardware: HardwareProfile, n: int) -> HardwareProfile:
    """``hardware`` with ``n`` copies of its first NVIDIA GPU (a machine a person could build or rent)."""
    gpu = next(g for g in hardware.gpus if g.vendor == "nvidia")
    gpus = tuple(replace(gpu, index=i, memory_used_bytes=None, memory_free_bytes=None) for i in range(n))
    return replace(
        hardware,
        name=f"{n}× {gpu.name}",
        gpus=gpus,
        device_id=None,
        price_per_hour_usd=None,
        source="catalog" if hardware.source == "probe" else hardware.source,
        memory_available_bytes=None if hardware.source == "probe" else hardware.memory_available_bytes,
    )
