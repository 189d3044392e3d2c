"""Guard against the PySide6 build that drops a reference to None on every void C++ call.

PySide6 6.12.0 on Python 3.11 aborts ("Fatal Python error: none_dealloc") within seconds of
plot updates (DEVELOPERS.md); pyproject pins PySide6-Essentials <6.11. If a future pin brings the
bug back, this fails long before the app crashes in a person's hands.
"""

from __future__ import annotations

import sys

from PySide6.QtGui import QPainterPath


def test_void_calls_keep_none_refcount() -> None:
    path = QPainterPath()
    before = sys.getrefcount(None)
    for i in range(1000):
        path.moveTo(float(i), float(i))
    after = sys.getrefcount(None)
    # A few references may come and go from unrelated objects; the bug loses one per call (1000).
    assert abs(after - before) < 50, f"None refcount moved by {after - before} over 1000 void calls"
