"""What every measuring child process of the benchmarks shares: this process's memory from
/proc/self/status, a reset of its high-water mark, and the one-JSON-line reply to the parent.

The child scripts run as ``python bench/<script>.py``, so this module is imported by name.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

_STATUS_RE = re.compile(r"^(Vm\w+|Rss\w+):\s+(\d+) kB", re.MULTILINE)


def vm_status() -> dict[str, int]:
    """``VmRSS``/``VmHWM``/``RssAnon``/``RssFile``/... of this process in bytes, from /proc/self/status."""
    text = Path("/proc/self/status").read_text()
    return {k: int(v) * 1024 for k, v in _STATUS_RE.findall(text)}


def reset_hwm() -> None:
    """Reset VmHWM to the current RSS (proc(5): writing 5 to clear_refs, Linux >= 4.0)."""
    Path("/proc/self/clear_refs").write_text("5")


def reply(measure: Callable[[], dict[str, Any]]) -> int:
    """Run ``measure`` and print its result as one JSON line; an error becomes ``{"error": ...}`` (exit 1),
    never a traceback for the parent's parser."""
    try:
        result = measure()
    except Exception as exc:
        print(json.dumps({"error": f"{type(exc).__name__}: {exc}"}))
        return 1
    print(json.dumps(result))
    return 0
