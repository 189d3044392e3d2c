"""What a report says, as plain strings: one context that every format renders.

:func:`build_context` turns an :class:`~advisor.analysis.Analysis` and its
:class:`~advisor.plan.types.Plan` into a dict of already-formatted text (sizes through
:mod:`advisor.units`, the verdict through :func:`advisor.textout.verdict_line`), so the HTML,
the PDF and the Markdown report say exactly the same thing as the terminal. Nothing here is
escaped: each renderer escapes for its own format (Jinja2 autoescape, Markdown cell escaping).
"""

from __future__ import annotations

import base64
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from advisor._version import __version__
from advisor.analysis import Analysis
from advisor.estimator.types import Estimate, Fit, Workload
from advisor.hardware.profile import HardwareProfile
from advisor.plan.types import Plan, PlanOption
from advisor.readers.profile import ModelProfile, TensorSpec
from advisor.textout import verdict_line
from advisor.units import format_bytes, format_count, format_price
from advisor.verdict import certainty_text, verdict_tone, verdict_words

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
# Which images the report shows, in order, with their captions (keys the fronts pass).
IMAGE_CAPTIONS: dict[str, str] = {
    "breakdown": "Predicted peak memory, by part",
    "live": "Live memory when the report was written",
}
# Metadata can hold whole licences or doc strings; a report shows a readable excerpt of each.
_MAX_METADATA_ITEMS = 20
_MAX_VALUE_CHARS = 300

Rows = list[tuple[str, str]]


@dataclass(frozen=True)
class ReportImage:
    """A PNG the report shows: its key, caption, and the bytes as base64 (for data: URIs)."""

    key: str
    caption: str
    png_base64: str

    @property
    def data_uri(self) -> str:
        return f"data:image/png;base64,{self.png_base64}"


def utc_timestamp(generated_at: datetime | None) -> datetime:
    """``generated_at`` in UTC (a naive time is taken as UTC); now when None."""
    if generated_at is None:
        return datetime.now(UTC)
    if generated_at.tzinfo is None:
        return generated_at.replace(tzinfo=UTC)
    return generated_at.astimezone(UTC)


def build_context(
    analysis: Analysis,
    plan: Plan,
    *,
    images: dict[str, bytes] | None = None,
    generated_at: datetime | None = None,
) -> dict[str, Any]:
    """Everything a report shows, as strings and lists of rows.

    Args:
        analysis: the model held against its target.
        plan: the ranked options for that analysis.
        images: PNGs keyed ``"breakdown"`` and ``"live"``; empty or non-PNG entries are left out.
        generated_at: when the report was made (default: now), shown in UTC.
    """
    when = utc_timestamp(generated_at)
    m, e, f = analysis.model, analysis.estimate, analysis.fit
    return {
        "title": f"Memory report: {m.name}",
        "model_name": m.name,
        "generated_at": when.strftime("%Y-%m-%d %H:%M UTC"),
        "generated_at_iso": when.isoformat(),
        "advisor_version": __version__,
        "verdict": _verdict(analysis),
        "model_rows": _model_rows(m),
        "inputs": [_spec_row(s) for s in m.inputs],
        "outputs": [_spec_row(s) for s in m.outputs],
        "metadata_rows": _metadata_rows(m),
        "target_name": analysis.hardware.name,
        "target_rows": _target_rows(analysis.hardware),
        "workload_rows": _workload_rows(analysis.workload, analysis.runtime, e),
        "breakdown_rows": _breakdown_rows(e),
        "fit_rows": _fit_rows(f),
        "images": _images(images or {}),
        "plan": _plan(plan),
        "assumptions": _assumptions(m, e, plan),
    }


def _verdict(analysis: Analysis) -> dict[str, Any]:
    f, e = analysis.fit, analysis.estimate
    headline, amount = verdict_words(f)
    per_gpu = f" per GPU (split over {e.tensor_parallel})" if e.tensor_parallel > 1 else ""
    return {
        "fits": f.fits,
        "tone": verdict_tone(f),
        "headline": headline,
        "amount": amount,
        "line": verdict_line(analysis),  # the certainty has its own row
        "peak": format_bytes(f.peak_bytes) + per_gpu,
        "range": f"{format_bytes(f.low_bytes)} – {format_bytes(f.high_bytes)}",
        "required": format_bytes(f.required_bytes) + per_gpu,
        "required_range": f"{format_bytes(f.required_low_bytes)} – {format_bytes(f.required_high_bytes)}",
        "required_note": e.required_note,
        # a stored measurement of this very run on this machine (advisor.measure.store.learned)
        "measured": next((n for n in e.notes if n.startswith("measured here")), ""),
        "spread": ", ".join(f"GPU {i} {format_bytes(b)}" for i, b in e.spread),
        "error": f.error,
        "budget": format_bytes(f.budget_bytes),
        "memory": f.label,
        "certainty": f.certainty,
        "certainty_text": certainty_text(f).capitalize(),
        "host_note": (
            f"It also needs {format_bytes(e.host_bytes)} of system RAM, which the target does not have."
            if f.host_fits is False and e.host_bytes
            else ""
        ),
    }


def _shape(spec: TensorSpec) -> str:
    if spec.shape is None:
        return "unknown rank"
    return "[" + ", ".join("?" if d is None else str(d) for d in spec.shape) + "]"


def _spec_row(spec: TensorSpec) -> dict[str, str]:
    return {"name": spec.name, "dtype": spec.dtype, "shape": _shape(spec)}


def _model_rows(m: ModelProfile) -> Rows:
    rows: Rows = [
        ("Format", m.format),
        ("Path", m.path),
        ("Parameters", format_count(m.n_params)),
        ("Weights", format_bytes(m.weight_bytes)),
        ("Files", f"{len(m.files)} file(s), {format_bytes(m.file_bytes)} on disk"),
    ]
    by_dtype = sorted(m.weight_bytes_by_dtype.items(), key=lambda kv: -kv[1])
    if by_dtype:
        rows.append(("Weights by dtype", ", ".join(f"{d} {format_bytes(b)}" for d, b in by_dtype)))
    if m.arch:
        a = m.arch
        text = (
            f"{a.model_type}: {a.n_layers} layers, hidden {a.hidden_size}, {a.n_heads} heads / "
            f"{a.n_kv_heads} KV heads × {a.head_dim}, vocab {a.vocab_size}"
        )
        if a.is_moe:
            text += f", {a.n_experts} experts ({a.n_experts_per_token} active)"
        if a.max_positions:
            text += f", up to {a.max_positions:,} positions"
        if a.sliding_window:
            text += f", sliding window {a.sliding_window:,}"
        rows.append(("Architecture", text))
    if m.opset is not None:
        rows.append(("ONNX opset", str(m.opset) + (f" (IR {m.ir_version})" if m.ir_version else "")))
    if m.producer:
        rows.append(("Producer", m.producer))
    if m.op_histogram:
        top = list(m.op_histogram.items())[:8]
        rows.append(("Most used ops", ", ".join(f"{op} ×{n}" for op, n in top)))
    return rows


def _clip(value: Any) -> str:
    text = " ".join(str(value).split())
    return text if len(text) <= _MAX_VALUE_CHARS else text[: _MAX_VALUE_CHARS - 1] + "…"


def _metadata_rows(m: ModelProfile) -> Rows:
    items = list(m.metadata.items())
    rows: Rows = [(_clip(k), _clip(v)) for k, v in items[:_MAX_METADATA_ITEMS]]
    if len(items) > _MAX_METADATA_ITEMS:
        rows.append(("…", f"{len(items) - _MAX_METADATA_ITEMS} more entries not shown"))
    return rows


def _target_rows(hw: HardwareProfile) -> Rows:
    c = hw.cpu
    kind = {"this-machine": "this machine (probed)", "edge": "edge device"}.get(hw.kind, hw.kind)
    rows: Rows = [("Kind", kind + (f" · {hw.device_id}" if hw.device_id else ""))]
    if hw.provider:
        rows.append(("Provider", hw.provider))
    cores = f"{c.physical_cores or '?'} cores / {c.logical_cores or '?'} threads"
    rows.append(("CPU", f"{c.model or 'unknown'} ({c.arch or '?'}), {cores}"))
    if c.features:
        rows.append(("CPU features", " ".join(c.features)))
    ram = format_bytes(hw.memory_total_bytes) + " total"
    if hw.memory_available_bytes is not None:
        ram += f", {format_bytes(hw.memory_available_bytes)} available at probe time"
    if hw.unified_memory:
        ram += " (shared with the GPU)"
    rows.append(("RAM", ram))
    if hw.swap_total_bytes:
        rows.append(("Swap", f"{format_bytes(hw.swap_used_bytes)} used of {format_bytes(hw.swap_total_bytes)}"))
    for g in hw.gpus:
        if g.unified_memory:
            mem = "shares system RAM"
        elif g.memory_used_bytes is not None:
            mem = f"{format_bytes(g.memory_used_bytes)} used of {format_bytes(g.memory_total_bytes)}"
        else:
            mem = format_bytes(g.memory_total_bytes)
        cc = f", compute {g.compute_capability}" if g.compute_capability else ""
        mig = ", MIG on" if g.mig_mode else ""
        rows.append((f"GPU {g.index}", f"{g.name}: {mem}{cc}{mig}"))
    if not hw.gpus:
        rows.append(("GPU", f"none — {hw.gpu_unavailable_reason or 'no GPU listed'}"))
    if hw.driver_version:
        rows.append(("Driver", hw.driver_version + (f", CUDA {hw.cuda_version}" if hw.cuda_version else "")))
    if hw.price_per_hour_usd is not None:
        rows.append(("Price", format_price(hw.price_per_hour_usd) + " on demand"))
    if hw.catalog_source or hw.catalog_date:
        src = hw.catalog_source or "catalog"
        rows.append(("Figures from", src + (f" (read {hw.catalog_date})" if hw.catalog_date else "")))
    return rows


def _workload_rows(w: Workload, runtime: str, e: Estimate) -> Rows:
    rows: Rows = [("Runtime", f"{runtime} on {e.device}"), ("Batch", str(w.batch))]
    optional = (
        ("Sequence length", w.seq_len),
        ("Context (tokens per sequence)", w.context),
        ("Image size", w.image_size),
        ("KV-cache dtype", w.kv_cache_dtype),
        ("GPU layers", w.gpu_layers),
        ("Weights priced as", w.weight_dtype),
    )
    rows += [(label, f"{value:,}" if isinstance(value, int) else str(value)) for label, value in optional
             if value is not None]
    if w.tensor_parallel > 1:
        rows.append(("Tensor parallel", f"{w.tensor_parallel} GPUs"))
    for name, shape in w.input_shapes.items():
        rows.append((f"Input {name}", str(list(shape))))
    if e.resolved_inputs:
        rows.append(("Shapes used", ", ".join(f"{k}={list(v)}" for k, v in e.resolved_inputs.items())))
    return rows


def _breakdown_rows(e: Estimate) -> Rows:
    rows: Rows = [
        ("Weights", format_bytes(e.weights_bytes)),
        ("Activations", format_bytes(e.activation_bytes)),
        ("KV cache", format_bytes(e.kv_cache_bytes)),
        ("Runtime overhead", format_bytes(e.overhead_bytes)),
    ]
    if e.reclaimable_bytes:
        rows += [("Needs to run", format_bytes(e.required_bytes)),
                 ("Range of the need", f"{format_bytes(e.required_low_bytes)} – {format_bytes(e.required_high_bytes)}"),
                 ("File pages the OS can drop", format_bytes(e.reclaimable_bytes))]
    rows += [
        ("Predicted peak", format_bytes(e.peak_bytes)),
        ("Range", f"{format_bytes(e.low_bytes)} – {format_bytes(e.high_bytes)}"),
    ]
    if e.host_bytes:
        rows.append(("System RAM too", format_bytes(e.host_bytes)))
    return rows


def _fit_rows(f: Fit) -> Rows:
    basis = "available now" if f.basis == "available" else "total"
    return [
        ("Memory", f.label),
        ("Capacity", f"{format_bytes(f.capacity_bytes)} ({basis})"),
        ("Held back", format_bytes(f.margin_bytes)),
        ("Usable", format_bytes(f.budget_bytes)),
        ("Headroom" if f.headroom_bytes >= 0 else "Short by", format_bytes(abs(f.headroom_bytes))),
    ]


def _images(images: dict[str, bytes]) -> list[ReportImage]:
    out = []
    for key, caption in IMAGE_CAPTIONS.items():
        data = images.get(key)
        if data and data.startswith(PNG_MAGIC):
            out.append(ReportImage(key, caption, base64.b64encode(data).decode("ascii")))
    return out


def _option(i: int, o: PlanOption) -> dict[str, Any]:
    return {
        "index": i,
        "kind": o.kind,
        "title": o.title,
        "fits": o.fits,
        "fits_text": "yes" if o.fits else "no",
        "peak": format_bytes(o.peak_bytes),
        "required": format_bytes(o.required_bytes),
        "headroom": format_bytes(o.headroom_bytes),
        "risk": o.risk,
        "risk_reason": o.risk_reason,
        "speed": o.speed.compact() if o.speed else "—",
        "speed_text": f"Speed {o.speed.short()}: {o.speed.basis}" if o.speed and o.speed.rate else "",
        "price": format_price(o.price_per_hour_usd),
        "detail": o.detail,
        "how_to": o.how_to.strip("\n"),
        "device_id": o.device_id or "",
    }


def _plan(plan: Plan) -> dict[str, Any]:
    if plan.fits_as_is:
        summary = "It fits as is. The options below trade memory, quality, speed or money."
    else:
        summary = "It does not fit as is. Options, best first:"
    return {
        "fits_as_is": plan.fits_as_is,
        "summary": summary,
        "options": [_option(i, o) for i, o in enumerate(plan.options, 1)],
    }


def _assumptions(m: ModelProfile, e: Estimate, plan: Plan) -> list[str]:
    notes = [*e.notes, *plan.notes, *(f"Model: {n}" for n in m.notes)]
    if e.unknown_dims:
        notes.append("Dimensions the workload did not set: " + ", ".join(e.unknown_dims))
    return list(dict.fromkeys(notes))  # the same note from two places once
