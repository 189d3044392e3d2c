"""Write a file all at once or not at all.

A report is written to a hidden temp file in the destination folder, flushed to disk, then
renamed over the destination with :func:`os.replace` (atomic on POSIX and Windows when both
paths are on one file system, which the same folder guarantees). If anything fails on the way —
a renderer error, a full disk, Ctrl+C — the temp file is removed and the destination is left as
it was: a person never finds half a report.

A process killed outright (SIGKILL, a power cut) cannot clean up, so the temp name carries its
writer (``.{name}.{pid}-{host}.XXXXXXXX.part``, ``host`` a short hash of the machine's name) and
each write first sweeps the stale temps of the same target: those of a writer on this machine
that no longer runs, and any older than a day (a writer on another machine sharing the folder,
or a name without an owner).
"""

from __future__ import annotations

import contextlib
import functools
import glob
import hashlib
import os
import re
import socket
import stat
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import psutil

# NOTE: mkstemp creates 0600 files; a report is a document to share, so it gets the mode a new
# file usually has (0644 under the common umask 022), or the mode of the file it replaces.
_NEW_FILE_MODE = 0o644
_STALE_AFTER_S = 24 * 3600  # no report write takes a day: such a temp's writer is gone
_OWNER = re.compile(r"\.(\d+)-([0-9a-f]{8})\.[^.]+\.part$")


def atomic_write(out: Path, writer: Callable[[Path], None]) -> Path:
    """Have ``writer`` fill a temp file next to ``out``, then move it into place.

    Args:
        out: the destination; its folder must exist and be writable.
        writer: called with the temp path; it writes the whole content there (it may replace
            the file, as a PDF writer does).

    Returns:
        ``out``.

    Raises:
        OSError: the folder cannot be written (the caller turns it into a readable error).
        Whatever ``writer`` raises, after the temp file is removed.
    """
    sweep_stale_temps(out)
    fd, tmp_name = tempfile.mkstemp(dir=out.parent, prefix=f".{out.name}.{os.getpid()}-{_host_tag()}.",
                                    suffix=".part")
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        writer(tmp)
        _fsync_file(tmp)
        tmp.chmod(_target_mode(out))
        tmp.replace(out)  # os.replace: atomic within one folder
    except BaseException:  # KeyboardInterrupt too: never leave a half-written file behind
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise
    _fsync_dir(out.parent)
    return out


def sweep_stale_temps(out: Path) -> list[Path]:
    """Remove the temp files that dead writes of ``out`` left beside it; returns those removed.

    A temp of a live writer (this process included) is kept, and nothing but regular files named
    ``.{out.name}.*.part`` is touched. Errors are ignored: sweeping never stops a write.
    """
    removed: list[Path] = []
    host, now = _host_tag(), time.time()
    with contextlib.suppress(OSError):
        for cand in out.parent.glob(f".{glob.escape(out.name)}.*.part"):
            with contextlib.suppress(OSError):
                st = cand.lstat()
                if not stat.S_ISREG(st.st_mode):
                    continue
                owner = _OWNER.search(cand.name[len(out.name) + 1:])
                dead = owner is not None and owner.group(2) == host and not psutil.pid_exists(int(owner.group(1)))
                if dead or now - st.st_mtime > _STALE_AFTER_S:
                    cand.unlink()
                    removed.append(cand)
    return removed


@functools.cache
def _host_tag() -> str:
    return hashlib.sha1(socket.gethostname().encode("utf-8", "replace")).hexdigest()[:8]


def atomic_write_bytes(out: Path, data: bytes) -> Path:
    """Write ``data`` to ``out`` atomically (see :func:`atomic_write`)."""

    def write(tmp: Path) -> None:
        tmp.write_bytes(data)

    return atomic_write(out, write)


def atomic_write_text(out: Path, text: str) -> Path:
    """Write ``text`` as UTF-8 to ``out`` atomically (see :func:`atomic_write`)."""
    return atomic_write_bytes(out, text.encode("utf-8"))


def _fsync_file(path: Path) -> None:
    with path.open("rb") as fh:
        os.fsync(fh.fileno())


def _fsync_dir(folder: Path) -> None:
    """Persist the rename itself (POSIX); folders cannot be opened this way on Windows."""
    if os.name != "posix":
        return
    with contextlib.suppress(OSError):
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def _target_mode(out: Path) -> int:
    try:
        return stat.S_IMODE(out.stat().st_mode)
    except OSError:
        return _NEW_FILE_MODE
