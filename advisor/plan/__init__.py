"""The plan: ranked ways to make a model fit a target, each re-estimated (:func:`make_plan`).

Options are built in the order a person would try them when the model does not fit — smaller
context/batch → quantized KV cache → lower weight precision → offload → multi-GPU → cloud — and
then ranked (:func:`rank`): fitting options first, on the target before elsewhere, then by
expected quality loss and speed together, then by cost (free, slower, more hardware, rented by
the hour), then by price. Every option carries the profile, workload,
runtime and hardware it was estimated with, so its figures can be checked by re-running
:func:`~advisor.estimator.estimate` and :func:`~advisor.estimator.fit`.
"""

from __future__ import annotations

import math

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
         "multi-gpu": 2, "multi-node": 3, "cloud": 3, "distill": 4}


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
    built += remote.multi_node(ctx, cloud=cloud or not analysis.fit.fits)
    if cloud or not analysis.fit.fits:
        built += remote.cloud(ctx)
    built += options.pruning(ctx)
    built, useless = _split_what_does_not_help(built)
    local_fits = any(o.fits and o.kind not in ("cloud", "multi-gpu", "multi-node") for o in built)
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


_OWN_WORKLOAD = frozenset({"batch", "context"})  # speed of another job
_NOT_COMPARED = _OWN_WORKLOAD | {"as-is"}


def rank(opts: list[PlanOption], target: HardwareProfile | None = None) -> tuple[PlanOption, ...]:
    """Order options as a practitioner would (the rule README states).

    1. What fits before what does not; estimated options before advice.
    2. What runs on the target itself before what needs other hardware (a cloud instance, a
       machine with more GPUs): the person asked about *this* device.
    3. Quality and speed together: the expected quality loss (``quality_rank``: 0 none, 1 a cast
       to half precision, 2 8-bit, 3 6/5-bit, 4 4-bit, 5-6 3/2-bit) plus one step for every √2
       by which the option is slower than the fastest fitting option of its group
       (:func:`slowdown_steps`), so a 4-bit model on the GPU leads a full-precision one that is
       ten times slower half on the CPU, while a 2× slower option with two steps less loss ties.
       Running as is pays no steps (when it fits, it is the answer; the rest are changes to it),
       nor do options that change the workload itself (batch, context): their speed is of another
       job, shown but not compared.
    4. Then cost: nothing, slower hardware use, more hardware, rent; then price; ties keep the
       search order.
    """
    def elsewhere(o: PlanOption) -> bool:
        return o.kind == "cloud" or (target is not None and o.hardware is not None and o.hardware != target)

    fastest: dict[bool, float] = {}
    for o in opts:
        r = o.speed.rate if o.speed else None
        if o.fits and r and o.kind not in _OWN_WORKLOAD:
            fastest[elsewhere(o)] = max(fastest.get(elsewhere(o), 0.0), r)

    def key(item: tuple[int, PlanOption]) -> tuple[bool, bool, bool, int, int, float, int]:
        i, o = item
        away = elsewhere(o)
        steps = 0 if o.kind in _NOT_COMPARED else slowdown_steps(o.speed.rate if o.speed else None, fastest.get(away))
        return (not o.fits, o.peak_bytes is None, away, o.quality_rank + steps, _COST.get(o.kind, 5),
                o.price_per_hour_usd or 0.0, i)

    ordered = sorted(enumerate(opts), key=key)
    return tuple(o for _, o in ordered)


def slowdown_steps(rate: float | None, fastest: float | None) -> int:
    """Quality steps a slower option pays: ``round(2·log2(fastest / rate))`` (0 when unknown)."""
    if not rate or not fastest or rate >= fastest:
        return 0
    return round(2 * math.log2(fastest / rate))
