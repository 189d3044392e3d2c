"""The target machine as the core sees it: CPU and its features, RAM, swap, each GPU or why none."""

from __future__ import annotations

from typing import Any

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QLabel, QScrollArea, QVBoxLayout, QWidget

from advisor.units import format_bytes, format_price

_SOURCES = {"probe": "probed now", "catalog": "from the device catalog", "file": "from a hardware file"}


def _html(text: object) -> str:
    return str(text).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def hardware_html(hw: Any) -> str:
    """A small HTML table describing ``hw`` (a :class:`~advisor.hardware.profile.HardwareProfile`)."""
    rows: list[tuple[str, str]] = []
    source = _SOURCES.get(hw.source, hw.source)
    if hw.catalog_source:
        source += f" ({_html(hw.catalog_source)}" + (f", {_html(hw.catalog_date)})" if hw.catalog_date else ")")
    rows.append(("Machine", f"<b>{_html(hw.name)}</b> · {_html(hw.kind)} · {source}"))
    cpu = hw.cpu
    cores = ""
    if cpu.physical_cores or cpu.logical_cores:
        cores = f" · {cpu.physical_cores or '?'} cores / {cpu.logical_cores or '?'} threads"
    rows.append(("CPU", f"{_html(cpu.model or 'unknown')} ({_html(cpu.arch or '?')}){cores}"))
    rows.append(("CPU features", _html(", ".join(cpu.features)) if cpu.features else "none reported"))
    ram = format_bytes(hw.memory_total_bytes)
    if hw.memory_available_bytes is not None:
        ram += f" total, {format_bytes(hw.memory_available_bytes)} available now"
    if hw.unified_memory:
        ram += " (shared with the GPU)"
    rows.append(("RAM", ram))
    if hw.swap_total_bytes is not None:
        rows.append(("Swap", f"{format_bytes(hw.swap_used_bytes or 0)} used of {format_bytes(hw.swap_total_bytes)}"))
    if hw.disk_free_bytes is not None:
        rows.append(("Disk", f"{format_bytes(hw.disk_free_bytes)} free"))
    if hw.gpus:
        for g in hw.gpus:
            if g.memory_total_bytes is None:
                mem = "memory shared with the CPU" if g.unified_memory else "memory unknown"
            else:
                mem = format_bytes(g.memory_total_bytes)
                if g.memory_used_bytes is not None:
                    mem = f"{format_bytes(g.memory_used_bytes)} used of {mem}"
            extras = [x for x in (
                f"compute {g.compute_capability}" if g.compute_capability else "",
                "MIG on" if g.mig_mode else "",
                "unified memory" if g.unified_memory and g.memory_total_bytes is not None else "",
            ) if x]
            rows.append((f"GPU {g.index}", f"{_html(g.name)} · {mem}" + (f" · {', '.join(extras)}" if extras else "")))
        if hw.driver_version or hw.cuda_version:
            rows.append(("Driver", f"{_html(hw.driver_version or '?')} · CUDA {_html(hw.cuda_version or '?')}"))
    else:
        rows.append(("GPU", f"none — {_html(hw.gpu_unavailable_reason or 'no GPU listed')}"))
    if hw.price_per_hour_usd is not None:
        rows.append(("Price", f"{format_price(hw.price_per_hour_usd)} on demand"
                     + (f" ({_html(hw.provider)})" if hw.provider else "")))
    body = "".join(
        f"<tr><td style='padding-right:12px'><b>{k}</b></td><td>{v}</td></tr>" for k, v in rows
    )
    return f"<table cellspacing='2'>{body}</table>"


class HardwarePanel(QScrollArea):
    """Shows the current target's hardware profile."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWidgetResizable(True)
        self.label = QLabel("Reading this machine…")
        self.label.setWordWrap(True)
        self.label.setTextFormat(Qt.TextFormat.RichText)
        self.label.setAlignment(Qt.AlignmentFlag.AlignTop | Qt.AlignmentFlag.AlignLeft)
        self.label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        inner = QWidget()
        layout = QVBoxLayout(inner)
        layout.addWidget(self.label)
        layout.addStretch(1)
        self.setWidget(inner)

    def set_hardware(self, hardware: Any) -> None:
        self.label.setText(hardware_html(hardware) if hardware is not None else "—")
