"""Readable numbers: byte sizes in binary units and parameter counts.

Every front (CLI, window, report) formats sizes through here, so "7.45 GiB" means the same
thing everywhere. Binary units (KiB, MiB, GiB, TiB) because memory is sold and reported in them
(nvidia-smi and ``free`` both show MiB/GiB of 1024-based units).
"""

from __future__ import annotations

_BYTE_UNITS: tuple[str, ...] = ("B", "KiB", "MiB", "GiB", "TiB", "PiB")
_COUNT_UNITS: tuple[str, ...] = ("", "K", "M", "B", "T")


def _scale(n: float, base: float, units: tuple[str, ...]) -> tuple[float, str]:
    """``n`` divided down to the largest unit that keeps it at or above 1."""
    value = abs(n)
    unit = units[0]
    for unit in units:
        if value < base or unit == units[-1]:
            break
        value /= base
    return value, unit


def format_bytes(n: int | float | None, *, decimals: int = 2) -> str:
    """A byte count in binary units: ``format_bytes(8_000_000_000) == "7.45 GiB"``.

    Args:
        n: bytes; negative values keep their sign ("-3.40 GiB"); None (unknown) gives "—".
        decimals: digits after the point for KiB and above (plain bytes are whole).
    """
    if n is None:
        return "—"
    value, unit = _scale(n, 1024.0, _BYTE_UNITS)
    sign = "-" if n < 0 else ""
    if unit == "B":
        return f"{sign}{round(value)} B"
    return f"{sign}{value:.{decimals}f} {unit}"


def format_bytes_range(low: int, high: int, *, decimals: int = 1) -> str:
    """A range in the unit of its upper end: ``"8.7–10.4 GiB"``."""
    _, unit = _scale(high, 1024.0, _BYTE_UNITS)
    if unit == "B":
        return f"{low}–{high} B"
    power = _BYTE_UNITS.index(unit)
    div = 1024.0**power
    return f"{low / div:.{decimals}f}–{high / div:.{decimals}f} {unit}"


def format_count(n: int | float, *, decimals: int = 2) -> str:
    """A count in decimal units, as parameter counts are quoted: ``7_241_732_096 → "7.24 B"``."""
    value, unit = _scale(n, 1000.0, _COUNT_UNITS)
    sign = "-" if n < 0 else ""
    if not unit:
        return f"{sign}{round(value)}"
    return f"{sign}{value:.{decimals}f} {unit}"


def format_price(price: float | None) -> str:
    """An hourly price ("$2.49/h"), or an empty string when there is none."""
    return "" if price is None else f"${price:,.2f}/h"


def round_up(n: int, step: int) -> int:
    """``n`` rounded up to a multiple of ``step`` (allocator blocks, padded token cells, NCHWc channels)."""
    return -(-n // step) * step
