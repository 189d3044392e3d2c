"""Errors a person can read.

Every error the core raises on bad input derives from :class:`AdvisorError`. Its ``str()`` is a
single line that names the file (when there is one) and the problem; the fronts print it as is
(the CLI on stderr with exit code 2, the window in a message bar).
"""

from __future__ import annotations

import re
from pathlib import Path

# C0 and C1 control characters, DEL, and the Unicode line/paragraph separators: anything that
# would break a one-line message or move a terminal's cursor.
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029]")


def escape_controls(text: str) -> str:
    """``text`` with control characters shown as escapes (``\n``, ``\x1b``), so it stays one line."""
    return _CONTROL.sub(lambda m: repr(m.group(0))[1:-1], text)


class AdvisorError(Exception):
    """Base of every error the fronts show to a person instead of a traceback."""

    def __init__(self, problem: str, path: str | Path | None = None) -> None:
        self.problem = escape_controls(" ".join(problem.split()))  # one line, whatever the source said
        self.path = escape_controls(str(path)) if path is not None else None
        super().__init__(f"{self.path}: {self.problem}" if self.path else self.problem)


class ModelFormatError(AdvisorError):
    """A model file is truncated, corrupt, or inconsistent (e.g. a missing shard)."""


class UnsupportedFormatError(AdvisorError):
    """A file or folder in a format the advisor does not read (or will not, like pickles)."""


class UnknownDtypeError(ModelFormatError):
    """A tensor element type that the dtype table does not know."""


class HardwareProfileError(AdvisorError):
    """A hardware file that cannot be read, or a device profile that is inconsistent."""


class UnknownDeviceError(AdvisorError):
    """A device id that is not in the catalog."""


class WorkloadError(AdvisorError):
    """An impossible workload: a batch of 0, a malformed ``--input``, an unknown input name."""


class ReportError(AdvisorError):
    """A report that cannot be written: unknown extension, folder not writable."""
