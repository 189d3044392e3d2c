"""Bounds on everything a model file controls: nesting, counts, sizes, strings.

A reader trusts no number it reads. JSON is parsed only after a cheap check of its nesting depth
(Python's ``json`` recurses once per level, so 100,000 nested brackets would be a RecursionError);
small side files (``config.json``, a shard index) are opened only when they are regular files and
read only up to a cap, so a FIFO never blocks and ``/dev/zero`` is never read to the end; a config
value outside what any published model has is an error that names the key.

The bounds are far above real models, so they never refuse one: the largest published configs
(Llama-3.1-405B: 126 layers, hidden 16384, vocab 128256; DeepSeek-V3: 256 experts, 61 layers;
Gemma: vocab 262144; long-context models: 10M positions) sit orders of magnitude below them.
"""

from __future__ import annotations

import json
import math
import os
import re
import stat
from pathlib import Path
from typing import Any

from advisor.errors import ModelFormatError

MAX_JSON_DEPTH = 64  # real headers, indexes and configs nest 3-5 levels
MAX_SIDE_FILE_BYTES = 64 * 1024 * 1024  # a 405B index is ~2 MB, the biggest configs ~100 KB
INT64_MAX = (1 << 63) - 1

# Largest accepted value of each architecture quantity, by what it means (see the docstring).
ARCH_LIMITS: dict[str, int] = {
    "layers": 10_000,
    "hidden": 1_000_000,
    "heads": 100_000,
    "head_dim": 100_000,
    "vocab": 100_000_000,
    "positions": 1 << 40,
    "intermediate": 10_000_000,
    "experts": 100_000,
    "window": 1 << 40,
    "rank": 1_000_000,
}

_NOT_BRACKETS = bytes(c for c in range(256) if c not in b"[]{}")
_OPENERS = frozenset(b"[{")
_LOOP_BRACKETS = 200_000  # ~20 ms of loop; a million-tensor header has a few million
_JSON_STRING = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"', re.DOTALL)  # unrolled: one step per run, not per byte


def json_depth_exceeds(raw: bytes, limit: int = MAX_JSON_DEPTH) -> bool:
    """Whether the JSON text ``raw`` nests arrays/objects deeper than ``limit``, without recursing.

    Strings are cut out (brackets inside them do not count) and everything but brackets dropped;
    then the running count of openers minus closers is taken, in a loop for the few thousand
    brackets of a real header or config, over the whole text at once with numpy (imported only
    then: it costs more than the rest of a read) past ``_LOOP_BRACKETS``: linear time whatever
    the shape of the nesting.
    """
    if raw.count(b"[") + raw.count(b"{") <= limit:
        return False
    brackets = _JSON_STRING.sub(b"", raw).translate(None, _NOT_BRACKETS)
    if len(brackets) <= _LOOP_BRACKETS:
        depth = 0
        for c in brackets:
            depth += 1 if c in _OPENERS else -1
            if depth > limit:
                return True
        return False
    import numpy as np

    step = np.zeros(256, dtype=np.int8)
    step[list(b"[{")], step[list(b"]}")] = 1, -1
    codes = np.frombuffer(brackets, dtype=np.uint8)
    return bool(np.cumsum(step[codes], dtype=np.int64).max(initial=0) > limit)


def loads_json(raw: bytes, path: Path, what: str) -> Any:
    """Parse ``raw`` as JSON with a depth limit; every failure is a one-line ModelFormatError.

    Args:
        raw: the bytes.
        path: the file, named in errors.
        what: what the file is ("config.json", "the shard index"), for the message.
    """
    if json_depth_exceeds(raw):
        raise ModelFormatError(f"{what} nests JSON deeper than {MAX_JSON_DEPTH} levels: corrupt or hostile",
                               path)
    try:
        return json.loads(raw.decode("utf-8"))
    except UnicodeDecodeError:
        raise ModelFormatError(f"{what} is not UTF-8 text", path) from None
    except json.JSONDecodeError as exc:
        raise ModelFormatError(f"{what} is not valid JSON (line {exc.lineno}: {exc.msg})", path) from None
    except (RecursionError, ValueError) as exc:  # belt and braces: ints of over 4300 digits, depth
        raise ModelFormatError(f"{what} is not valid JSON ({exc.__class__.__name__})", path) from None


def read_side_file(path: Path, what: str, limit: int = MAX_SIDE_FILE_BYTES) -> bytes:
    """The bytes of a small regular file; a FIFO, device or socket is refused before ``open``.

    Raises:
        ModelFormatError: missing, not a regular file, unreadable, or larger than ``limit``.
    """
    st = require_regular(path, what)
    if st.st_size > limit:
        raise ModelFormatError(f"{what} is {st.st_size} bytes, over the {limit >> 20} MiB a real one "
                               "could need: corrupt or not what it is named", path)
    try:
        # O_NONBLOCK: if the path was swapped for a FIFO since the stat, open does not wait for a writer.
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
        with os.fdopen(fd, "rb") as fh:
            if not stat.S_ISREG(os.fstat(fh.fileno()).st_mode):
                raise ModelFormatError(f"{what} is not a regular file", path)
            data = fh.read(limit + 1)
    except OSError as exc:
        raise ModelFormatError(f"cannot read {what} ({_reason(exc)})", path) from None
    if len(data) > limit:
        raise ModelFormatError(f"{what} is larger than {limit >> 20} MiB", path)
    return data


def load_json_file(path: Path, what: str) -> Any:
    """:func:`read_side_file` then :func:`loads_json`."""
    return loads_json(read_side_file(path, what), path, what)


def require_regular(path: Path, what: str = "file") -> os.stat_result:
    """``stat`` ``path`` and refuse anything but a regular file (FIFOs, devices, sockets)."""
    try:
        st = path.stat()
    except (OSError, ValueError) as exc:
        raise ModelFormatError(f"cannot read {what} ({_reason(exc)})", path) from None
    if not stat.S_ISREG(st.st_mode):
        raise ModelFormatError(f"{what} is not a regular file", path)
    return st


def checked_count(value: Any, key: str, limit: int) -> int | None:
    """``value`` as a non-negative int no larger than ``limit``; None when absent.

    Raises:
        ModelFormatError: not a finite whole number, negative, or over ``limit`` (naming ``key``).
    """
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ModelFormatError(f"{key} must be a non-negative integer, not {_short(value)}")
    if isinstance(value, float) and (not math.isfinite(value) or value != int(value)):
        raise ModelFormatError(f"{key} must be a non-negative integer, not {_short(value)}")
    if value < 0:
        raise ModelFormatError(f"{key} must be a non-negative integer, not {_short(value)}")
    if value > limit:
        raise ModelFormatError(f"{key} is {_short(value)}, more than any real model has (at most {limit})")
    return int(value)


def product_fits_int64(dims: tuple[int, ...] | list[int]) -> bool:
    """Whether every dim is non-negative and their product fits int64 (stops at the first overflow)."""
    if any(d < 0 or d > INT64_MAX for d in dims):
        return False  # every dim is checked, also those after an overflow a zero dim would cancel
    if 0 in dims:
        return True  # the product is 0
    n = 1
    for d in dims:
        n *= d
        if n > INT64_MAX:
            return False
    return True


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def _reason(exc: BaseException) -> str:
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    return str(exc).split("\n")[0][:80] or exc.__class__.__name__


def model_store(folder: Path) -> Path:
    """The folder a model's files may live in, as the person's path names it (not resolved).

    A Hugging Face cache snapshot (``models--org--name/snapshots/<commit>/``) holds symlinks into
    its repo's ``blobs/`` (https://huggingface.co/docs/huggingface_hub/guides/manage-cache), so
    its store is the ``models--org--name`` folder; any other model's store is its own folder.
    """
    folder = Path(os.path.normpath(Path(folder).absolute()))
    for parent in (folder, *folder.parents):
        if parent.parent.name == "snapshots" and parent.parent.parent.name.startswith("models--"):
            return parent.parent.parent
    return folder


def inside_store(target: Path, folder: Path) -> bool:
    """Whether ``target`` (a file the model refers to, relative to ``folder``) stays in the model.

    Judged twice: lexically, on the path as the folder names it (no ``..`` climbing out of it),
    and after links are followed, against the model's store (:func:`model_store`), so a cache
    snapshot's links into its own ``blobs/`` are inside while a link to ``/etc`` is not.
    """
    try:
        base = Path(os.path.normpath(Path(folder).absolute()))
        named = Path(os.path.normpath(base / target))
        if not named.is_relative_to(base):
            return False
        return named.resolve().is_relative_to(model_store(base).resolve())
    except (OSError, RuntimeError, ValueError):
        return False
