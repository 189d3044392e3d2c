"""The plan: ranked ways to make a model fit a target, each re-estimated (:func:`make_plan`).

Options are built in the order a person would try them when the model does not fit — smaller
context/batch → quantized KV cache → lower weight precision → offload → multi-GPU → cloud — and
then ranked: fitting options first, then by expected quality loss, then by cost (free, slower,
more hardware, rented by the hour), then by price. Every option carries the profile, workload,
runtime and hardware it was estimated with, so its figures can be checked by re-running
:func:`~advisor.estimator.estimate` and :func:`~advisor.estimator.fit`.
"""

from __future__ import annotations

from advisor.analysis import Analysis
from advisor.hardware.profile import HardwareProfile
from advisor.plan import options, remote
from advisor.plan.options import PlanContext
from advisor.plan.search import Evaluator
from advisor.plan.sparsity import SparsityReport
from advisor.plan.types import OPTION_KINDS, Plan, PlanOption

__all__ = ["OPTION_KINDS", "Plan", "PlanOption", "make_plan", "rank"]

# Cost of a change beyond quality: nothing, speed, more hardware, rent.
_COST = {"as-is": 0, "batch": 0, "context": 0, "quantize": 0, "prune": 0, "offload": 1,
         "multi-gpu": 2, "cloud": 3, "distill": 4}


def make_plan(
    analysis: Analysis,
    *,
    catalog: tuple[HardwareProfile, ...] | None = None,
    sparsity: SparsityReport | None = None,
    cloud: bool = False,
) -> Plan:
    """Every way to run ``analysis.model`` on its target (or elsewhere), re-estimated and ranked.

    Args:
        analysis: the model held against its target.
        catalog: devices for the cloud options; None loads the shipped catalog.
        sparsity: a finished :func:`~advisor.plan.sparsity.scan_sparsity` report, if any, quoted
            by the pruning option.
        cloud: price cloud instances even when the model fits its target (they are offered
            unasked only when it does not: nobody rents a GPU for a model that already runs).
    """
    if catalog is None:
        from advisor.hardware.catalog import load_catalog

        catalog = load_catalog()
    ctx = PlanContext(analysis, Evaluator(), catalog, sparsity)
    built: list[PlanOption] = [options.as_is(ctx)]
    built += options.context(ctx)
    built += options.batch(ctx)
    built += options.kv_cache(ctx)
    built += options.loading(ctx)
    built += options.weights(ctx)
    built += remote.offload(ctx)
    built += remote.multi_gpu(ctx)
    if cloud or not analysis.fit.fits:
        built += remote.cloud(ctx)
    built += options.pruning(ctx)
    built, useless = _split_what_does_not_help(built)
    local_fits = any(o.fits and o.kind not in ("cloud", "multi-gpu") for o in built)
    notes = list(ctx.ev.notes)
    if useless:
        notes.append(f"left out, as they need no less memory than running as is: {'; '.join(useless)}")
    if not local_fits:
        built.append(options.distill(ctx))
    if not analysis.fit.fits and not any(o.fits for o in built):
        notes.append("no option fits: even the cheapest changes leave the model too large for every target tried")
    return Plan(fits_as_is=analysis.fit.fits, options=rank(built, target=analysis.hardware), notes=tuple(notes))


# Kinds whose only purpose is a smaller footprint: one that does not lower the peak has no place.
# (batch/context may raise it on purpose, to use headroom; multi-GPU and cloud change the hardware.)
_REDUCING = ("quantize", "prune", "offload")


def _split_what_does_not_help(built: list[PlanOption]) -> tuple[list[PlanOption], list[str]]:
    """The options kept, and the titles of the reducing ones whose required memory (what the fit is
    judged on: the peak less reclaimable file pages) is not below running as is."""
    base = built[0].required_bytes  # as-is comes first
    kept = [o for o in built if base is None or o.kind not in _REDUCING or o.required_bytes is None
            or o.required_bytes < base]
    return kept, [o.title for o in built if o not in kept]


def rank(opts: list[PlanOption], target: HardwareProfile | None = None) -> tuple[PlanOption, ...]:
    """Fitting first; then what runs on the target itself before what needs other hardware (a cloud
    instance, a machine with more GPUs) — the person asked about *this* device; then expected quality
    loss, then cost, then price. Ties keep the search order."""
    def elsewhere(o: PlanOption) -> bool:
        return o.kind == "cloud" or (target is not None and o.hardware is not None and o.hardware != target)

    def key(item: tuple[int, PlanOption]) -> tuple[bool, bool, bool, int, int, float, int]:
        i, o = item
        return (not o.fits, o.peak_bytes is None, elsewhere(o), o.quality_rank, _COST.get(o.kind, 5),
                o.price_per_hour_usd or 0.0, i)

    ordered = sorted(enumerate(opts), key=key)
    return tuple(o for _, o in ordered)
