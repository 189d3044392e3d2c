"""Plain-text renderings for the terminal: analysis, plan table, hardware, catalog."""

from __future__ import annotations

import shutil
import textwrap
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from advisor.analysis import Analysis
from advisor.hardware.profile import HardwareProfile
from advisor.plan.types import Plan
from advisor.units import format_bytes, format_count, format_price
from advisor.verdict import certainty_text, verdict_words

if TYPE_CHECKING:
    from advisor.measure import Measurement


def _width() -> int:
    return max(80, min(shutil.get_terminal_size((100, 24)).columns, 140))


def verdict_line(analysis: Analysis, *, with_certainty: bool = False) -> str:
    """The one line a person reads first: fits / does not fit, by how much, on what, how sure."""
    f = analysis.fit
    word, amount = verdict_words(f)
    if f.error:
        return f"{word.upper()} — {f.error}"
    basis = "available now" if f.basis == "available" else "total, minus margin"
    shows = f" (shows a {format_bytes(f.peak_bytes)} peak)" if f.peak_bytes != f.required_bytes else ""
    return (f"{word.upper()} — {amount}: needs {format_bytes(f.required_bytes)}{shows} vs "
            f"{format_bytes(f.budget_bytes)} usable ({basis}) — {f.label} on {analysis.hardware.name}"
            + (f"; {certainty_text(f)}" if with_certainty else ""))


def table(headers: Sequence[str], rows: Sequence[Sequence[str]], right: Sequence[int] = ()) -> str:
    """A simple aligned text table."""
    widths = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(headers)]

    def line(cells: Sequence[str]) -> str:
        out = [c.rjust(w) if i in right else c.ljust(w) for i, (c, w) in enumerate(zip(cells, widths, strict=True))]
        return "  ".join(out).rstrip()

    return "\n".join([line(headers), line(["─" * w for w in widths]), *(line(r) for r in rows)])


def analysis_text(analysis: Analysis) -> str:
    m = analysis.model
    e = analysis.estimate
    lines = [
        verdict_line(analysis, with_certainty=True),
        "",
        f"Model    {m.name}  ({m.format}, {format_count(m.n_params)} params, "
        f"{format_bytes(m.weight_bytes)} of weights)",
        f"         {m.path}",
    ]
    by_dtype = ", ".join(
        f"{d} {format_bytes(b)}" for d, b in sorted(m.weight_bytes_by_dtype.items(), key=lambda kv: -kv[1])
    )
    if by_dtype:
        lines.append(f"         by dtype: {by_dtype}")
    if m.arch:
        a = m.arch
        lines.append(
            f"         {a.model_type}: {a.n_layers} layers, hidden {a.hidden_size}, "
            f"{a.n_heads} heads / {a.n_kv_heads} KV heads × {a.head_dim}, vocab {a.vocab_size}"
            + (f", {a.n_experts} experts ({a.n_experts_per_token} active)" if a.is_moe else "")
        )
    for spec in m.inputs:
        shape = "?" if spec.shape is None else "[" + ", ".join("?" if d is None else str(d) for d in spec.shape) + "]"
        lines.append(f"         input {spec.name}: {spec.dtype} {shape}")
    lines += [
        f"Target   {analysis.hardware.name}",
        f"Runtime  {analysis.runtime} on {e.device}",
        "",
        table(
            ["Peak memory", ""],
            [
                ["weights", format_bytes(e.weights_bytes)],
                ["activations", format_bytes(e.activation_bytes)],
                ["KV cache", format_bytes(e.kv_cache_bytes)],
                ["runtime overhead", format_bytes(e.overhead_bytes)],
            ]
            + ([["needs to run", format_bytes(e.required_bytes)],
                ["range", f"{format_bytes(e.required_low_bytes)} – {format_bytes(e.required_high_bytes)}"],
                ["+ file pages the OS can drop", format_bytes(e.reclaimable_bytes)]]
               if e.reclaimable_bytes else [])
            + [
                ["predicted peak", format_bytes(e.peak_bytes)],
                ["range", f"{format_bytes(e.low_bytes)} – {format_bytes(e.high_bytes)}"],
            ]
            + ([["host RAM too", format_bytes(e.host_bytes)]] if e.host_bytes else []),
            right=(1,),
        ),
    ]
    if e.required_note:
        lines.append(textwrap.fill(f"Peak vs need: {e.required_note}", _width(), subsequent_indent="    "))
    if e.spread:
        per = ", ".join(f"GPU {i} {format_bytes(b)}" for i, b in e.spread)
        lines.append(textwrap.fill(f"Spread over {len(e.spread)} GPUs (device_map='auto'): {per}", _width(),
                                   subsequent_indent="    "))
    if e.resolved_inputs:
        shapes = ", ".join(f"{k}={list(v)}" for k, v in e.resolved_inputs.items())
        lines.append(f"Shapes used: {shapes}")
    if e.notes:
        lines.append("Assumptions:")
        width = _width()
        for note in e.notes:
            lines.append(textwrap.fill(note, width, initial_indent="  • ", subsequent_indent="    "))
    return "\n".join(lines)


def plan_text(plan: Plan) -> str:
    if not plan.options:
        return "Plan: no options."
    rows = []
    for i, o in enumerate(plan.options, 1):
        rows.append(
            [
                str(i),
                "yes" if o.fits else "no",
                o.kind,
                o.title,
                format_bytes(o.required_bytes),
                format_bytes(o.peak_bytes),
                format_bytes(o.headroom_bytes) if o.headroom_bytes is not None else "—",
                o.speed.compact() if o.speed else "—",
                o.risk,
                format_price(o.price_per_hour_usd) if o.price_per_hour_usd is not None else "",
            ]
        )
    head = "Plan: it fits as is." if plan.fits_as_is else "Plan: it does not fit as is; options, best first."
    out = [head, table(["#", "fits", "kind", "option", "needs", "peak", "headroom", "speed", "risk", "price"], rows,
                     right=(0, 4, 5, 6, 7))]
    out.append("")
    out.append("How to:")
    width = _width()
    for i, o in enumerate(plan.options, 1):
        out.append(f"{i}. {o.title} — {o.risk} risk: {o.risk_reason}")
        if o.detail:
            out.append(textwrap.fill(o.detail, width, initial_indent="   ", subsequent_indent="   "))
        if o.speed and o.speed.rate:
            out.append(textwrap.fill(f"Speed {o.speed.short()}: {o.speed.basis}", width, initial_indent="   ",
                                     subsequent_indent="   "))
        for cmd_line in o.how_to.splitlines():
            out.append(f"     {cmd_line}")
    for note in plan.notes:
        out.append(textwrap.fill(note, width, initial_indent="Note: ", subsequent_indent="      "))
    return "\n".join(out)


def hardware_text(hw: HardwareProfile) -> str:
    c = hw.cpu
    lines = [
        f"{hw.name}",
        f"CPU      {c.model or 'unknown'} ({c.arch or '?'}), {c.physical_cores or '?'} cores / "
        f"{c.logical_cores or '?'} threads",
    ]
    if c.features:
        lines.append(f"         features: {' '.join(c.features)}")
    avail = f", {format_bytes(hw.memory_available_bytes)} available" if hw.memory_available_bytes is not None else ""
    lines.append(f"RAM      {format_bytes(hw.memory_total_bytes)} total{avail}")
    if hw.swap_total_bytes is not None:
        lines.append(f"Swap     {format_bytes(hw.swap_used_bytes)} used of {format_bytes(hw.swap_total_bytes)}")
    if hw.disk_free_bytes is not None:
        lines.append(f"Disk     {format_bytes(hw.disk_free_bytes)} free")
    for g in hw.gpus:
        mem = (
            "shares system RAM"
            if g.unified_memory
            else f"{format_bytes(g.memory_used_bytes)} used of {format_bytes(g.memory_total_bytes)}"
        )
        cc = f", compute {g.compute_capability}" if g.compute_capability else ""
        mig = ", MIG on" if g.mig_mode else ""
        lines.append(f"GPU {g.index}    {g.name}: {mem}{cc}{mig}")
    if not hw.gpus:
        lines.append(f"GPU      none ({hw.gpu_unavailable_reason or 'no GPU found'})")
    if hw.driver_version:
        lines.append(f"Driver   {hw.driver_version}" + (f", CUDA {hw.cuda_version}" if hw.cuda_version else ""))
    return "\n".join(lines)


def devices_text(entries: Sequence[dict[str, Any]]) -> str:
    rows = []
    for e in entries:
        gpus = e.get("gpus") or []
        gpu = f"{len(gpus)}× {gpus[0]['name']}" if gpus else ""
        rows.append(
            [
                e["id"],
                e["kind"],
                e["name"],
                format_bytes(e["memory_bytes"]),
                gpu,
                format_price(e.get("price_per_hour_usd")) if e.get("price_per_hour_usd") is not None else "",
            ]
        )
    return table(["id", "kind", "name", "RAM", "GPUs", "price"], rows, right=(3,))


def measurement_text(m: Measurement) -> str:
    """Predicted against measured, for a person: the figures, the error, how the run went."""
    est = m.predicted
    where = "inside" if m.inside_range else "outside"
    rows = [
        ["peak", f"{format_bytes(est.peak_bytes)}  ({format_bytes(est.low_bytes)} – {format_bytes(est.high_bytes)})",
         format_bytes(m.peak_bytes), f"{m.error_pct:+.1f} %  ({where} the range)"],
        ["required", format_bytes(est.required_bytes),
         format_bytes(m.required_bytes) if m.required_bytes is not None else "(--required)",
         f"{(est.required_bytes - m.required_bytes) / max(1, m.required_bytes) * 100:+.1f} %"
         if m.required_bytes else ""],
        ["after load", "", format_bytes(m.load_peak_bytes), ""],
    ]
    cap = {"cgroup-v1": "a cgroup", "cgroup-v2": "a cgroup", "rlimit": "an address-space limit"}.get(m.cap_kind,
                                                                                                m.cap_kind)
    head = (f"Measured on this machine: {m.model_path}\n{m.runtime} ({m.runtime_version}), {m.duration_s:.1f} s, "
            f"under {cap} of {format_bytes(m.cap_bytes)}")
    shapes = m.workload.get("input_shapes") or {}
    if shapes:
        head += "\nShapes: " + ", ".join(f"{k}=[{', '.join(str(d) for d in v)}]" for k, v in shapes.items())
    if m.extrapolated_from:
        rows[0][2] = f"{format_bytes(m.peak_bytes)} (extrapolated)"
        rows = rows[:2] + [[f"  at {_small_label(x)}", format_bytes(x.predicted.peak_bytes), format_bytes(x.peak_bytes),
                            f"{x.error_pct:+.1f} %"] for x in m.extrapolated_from]
        head += (f"\nThe full workload does not fit in the memory available now: measured {m.scale} and carried "
                 "their straight line to it")
    table_text = table(["", "predicted", "measured", "error"], rows, right=(2,))
    note = ("The estimate's error is predicted minus measured, in % of the measured peak. The measurement is "
            "kept; the next estimate of this model here shows it.")
    return "\n".join([head, "", table_text, "", textwrap.fill(note, _width())])


def _small_label(m: Measurement) -> str:
    shapes = m.workload.get("input_shapes") or {}
    if m.workload.get("context") and not shapes:
        return f"context {m.workload['context']}"
    return f"batch {next(iter(shapes.values()))[0]}" if shapes else f"batch {m.workload.get('batch')}"
