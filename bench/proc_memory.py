"""What every measuring child process of the benchmarks shares: this process's memory from
/proc/self/status, a reset of its high-water mark, and the one-JSON-line reply to the parent.

The child scripts run as ``python bench/<script>.py``, so this module is imported by name.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the advisor package, installed or not

# One reading of /proc/self/status for the app's `advisor measure` child and the benchmarks' children.
from advisor.measure.child import reset_hwm, vm_status  # noqa: F401 - re-exported for bench/


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
