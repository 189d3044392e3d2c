"""A small protobuf wire-format walker, enough to read ONNX files without loading their weights.

``onnx.load`` parses the whole file into C++ objects and copies every weight (about twice the file
size in memory). The advisor only needs the structure and the *size* of each weight, so it walks
the encoded bytes of an ``mmap`` instead: each field is a tag (field number + wire type) followed by
a varint, a fixed 4/8-byte value, or a length-delimited span. Length-delimited spans are returned
as ``(start, end)`` offsets, so a 2 GB ``raw_data`` is measured, never copied, and its pages are
never touched.

The encoding is documented at https://protobuf.dev/programming-guides/encoding/ ; ONNX's field
numbers are in ``onnx/onnx.proto`` (onnx 1.23). This module knows nothing about ONNX itself.
"""

from __future__ import annotations

import mmap
import os
import re
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import NamedTuple

from advisor.errors import ModelFormatError

# Wire types (https://protobuf.dev/programming-guides/encoding/#structure).
VARINT = 0
I64 = 1
LEN = 2
I32 = 5

Buffer = bytes | bytearray | memoryview | mmap.mmap

_MAX_VARINT_BYTES = 10  # a 64-bit varint takes at most 10 bytes
MAX_GRAPH_DEPTH = 64  # nested subgraphs; real models use a handful, a corrupt file could recurse forever


class WireError(Exception):
    """The bytes are not valid protobuf: a truncated field, a bad wire type, a runaway varint."""

    def __init__(self, problem: str, offset: int) -> None:
        self.offset = offset
        super().__init__(f"{problem} at byte {offset}")


class Field(NamedTuple):
    """One decoded field.

    Attributes:
        number: the field number from the tag.
        wire_type: ``VARINT``, ``I64``, ``LEN`` or ``I32``.
        value: the integer for ``VARINT`` (unsigned), ``I32`` and ``I64`` (raw little-endian
            unsigned); the payload length for ``LEN``.
        start: where the payload starts (after the tag and, for ``LEN``, the length).
        end: where the payload ends (exclusive); the next field starts here.
        tag_start: where the tag starts, so a whole field can be copied as is.
    """

    number: int
    wire_type: int
    value: int
    start: int
    end: int
    tag_start: int


def read_varint(buf: Buffer, pos: int, end: int) -> tuple[int, int]:
    """Decode the varint at ``pos``; return ``(value, position after it)``.

    Raises:
        WireError: the varint runs past ``end`` or is longer than 10 bytes.
    """
    result = 0
    shift = 0
    start = pos
    while True:
        if pos >= end:
            raise WireError("truncated varint", start)
        byte = buf[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if byte < 0x80:
            return result, pos
        shift += 7
        if pos - start >= _MAX_VARINT_BYTES:
            raise WireError("varint longer than 10 bytes", start)


def to_signed64(value: int) -> int:
    """Reinterpret an unsigned varint as the two's-complement int64 that protobuf encoded."""
    value &= (1 << 64) - 1
    return value - (1 << 64) if value >= 1 << 63 else value


def iter_fields(buf: Buffer, start: int, end: int) -> Iterator[Field]:
    """Yield the fields of the message encoded in ``buf[start:end]``, in file order.

    Raises:
        WireError: a field is truncated or has a wire type ONNX never uses (groups, 6, 7).
    """
    pos = start
    while pos < end:
        tag_start = pos
        tag = buf[pos]  # NOTE: fast path, ONNX's field numbers all fit a one-byte tag
        if tag < 0x80:
            pos += 1
        else:
            tag, pos = read_varint(buf, pos, end)
        number, wire_type = tag >> 3, tag & 7
        if number == 0:
            raise WireError("field number 0", tag_start)
        if wire_type == VARINT:
            value, new_pos = read_varint(buf, pos, end)
        elif wire_type == LEN:
            value = buf[pos] if pos < end else 0x80
            if value < 0x80:  # fast path: payloads under 128 bytes (names, dims, small entries)
                pos += 1
            else:
                value, pos = read_varint(buf, pos, end)
            new_pos = pos + value
        elif wire_type == I64:
            new_pos = pos + 8
            value = int.from_bytes(buf[pos:new_pos], "little") if new_pos <= end else 0
        elif wire_type == I32:
            new_pos = pos + 4
            value = int.from_bytes(buf[pos:new_pos], "little") if new_pos <= end else 0
        else:
            raise WireError(f"unsupported wire type {wire_type}", tag_start)
        if new_pos > end:
            raise WireError(f"field {number} runs past the end of its message", tag_start)
        yield Field(number, wire_type, value, pos, new_pos, tag_start)
        pos = new_pos


# One unpacked record of a repeated scalar field after its one-byte tag (proto2 writes repeated
# scalars unpacked unless [packed=true]; onnx.proto is proto2, so AttributeProto.floats/ints are
# one field per value): 4 bytes (I32), 8 bytes (I64), or a varint (up to 9 continuation bytes
# >= 0x80 and one final byte < 0x80).
_RECORD = {I32: b"[\\x00-\\xff]{4}", I64: b"[\\x00-\\xff]{8}", VARINT: b"[\\x80-\\xff]{0,9}[\\x00-\\x7f]"}
_RUN_PATTERNS: dict[int, re.Pattern[bytes]] = {}
_HIGH_BYTES = bytes(range(0x80, 0x100))


def scalar_run(buf: Buffer, pos: int, end: int) -> tuple[int, int, int] | None:
    """Count a run of unpacked repeated scalar fields that starts at ``pos``, without a Python loop.

    Returns ``(field number, values, position after the run)`` when the field at ``pos`` has a
    one-byte tag and wire type I32, I64 or VARINT, else None. The run is matched by a regular
    expression that consumes records exactly as a parser would (tag, then one value), so it stops
    at the first field with another tag.
    """
    tag = buf[pos] if pos < end else 0x80
    wire_type = tag & 7
    if tag >= 0x80 or tag >> 3 == 0 or wire_type not in _RECORD:
        return None
    pattern = _RUN_PATTERNS.get(tag)
    if pattern is None:
        pattern = re.compile(b"(?:" + re.escape(bytes([tag])) + _RECORD[wire_type] + b")+")
        _RUN_PATTERNS[tag] = pattern
    m = pattern.match(buf, pos, end)
    if m is None:
        return None
    run_end = m.end()
    if wire_type == VARINT:  # each record has exactly two bytes < 0x80: the tag and the varint's last
        n = len(bytes(buf[pos:run_end]).translate(None, _HIGH_BYTES)) // 2
    else:
        n = (run_end - pos) // (5 if wire_type == I32 else 9)
    return tag >> 3, n, run_end


def expect(field: Field, wire_type: int) -> Field:
    """Return ``field`` if it has the wire type the schema declares, else raise WireError."""
    if field.wire_type != wire_type:
        raise WireError(f"field {field.number} has wire type {field.wire_type}, expected {wire_type}",
                        field.tag_start)
    return field


def read_str(buf: Buffer, field: Field) -> str:
    """The UTF-8 string in a ``LEN`` field.

    Raises:
        WireError: the bytes are not UTF-8. Protobuf requires valid UTF-8 in ``string`` fields, and
            Python's protobuf hands such a field back as ``bytes``, which would then meet ``str``
            names in the rest of the graph (sorting, JSON keys).
    """
    expect(field, LEN)
    try:
        return bytes(buf[field.start:field.end]).decode("utf-8")
    except UnicodeDecodeError:
        raise WireError("a name or string that is not valid UTF-8", field.start) from None


def read_ints(buf: Buffer, field: Field) -> list[int]:
    """Values of one occurrence of a repeated int64 field, packed (``LEN``) or not (``VARINT``)."""
    if field.wire_type == VARINT:
        return [to_signed64(field.value)]
    expect(field, LEN)
    values: list[int] = []
    pos = field.start
    while pos < field.end:
        value, pos = read_varint(buf, pos, field.end)
        values.append(to_signed64(value))
    return values


def encode_varint(value: int) -> bytes:
    """The varint encoding of a non-negative integer."""
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def encode_len_field(number: int, payload: bytes) -> bytes:
    """A whole ``LEN`` field: tag, length, payload."""
    return encode_varint(number << 3 | LEN) + encode_varint(len(payload)) + payload


Rewriter = Callable[[Buffer, int, int], "bytes | None"]


def rewrite(buf: Buffer, start: int, end: int, handlers: Mapping[int, Rewriter], *,
            min_len: int = 0, done: Callable[[int], None] | None = None) -> bytes | None:
    """Re-encode the message in ``buf[start:end]``, letting ``handlers`` replace some ``LEN`` fields.

    ``handlers`` maps a field number to a function of ``(buf, start, end)`` of that field's payload
    that returns the new payload, or None to keep it unchanged. Fields without a handler, and
    ``LEN`` fields no longer than ``min_len`` (callers that only shrink big payloads pass their
    threshold: a 60-byte node cannot hold a 4 KiB tensor), are kept byte for byte, so unknown
    fields survive; unchanged runs of fields are copied at once. Returns None when nothing
    changed, so callers copy the original bytes instead of a rebuilt copy.
    """
    parts: list[bytes] = []
    kept = start  # the unchanged run of fields that starts here is copied when it ends
    for f in iter_fields(buf, start, end):
        if f.wire_type != LEN or f.end - f.start <= min_len:
            continue
        handler = handlers.get(f.number)
        new = handler(buf, f.start, f.end) if handler is not None else None
        if new is not None:
            parts.append(bytes(buf[kept:f.tag_start]))
            parts.append(encode_len_field(f.number, new))
            kept = f.end
            if done is not None:
                done(kept)
    if not parts:
        return None
    parts.append(bytes(buf[kept:end]))
    return b"".join(parts)


# TensorProto fields that hold element data (float_data, int32_data, string_data, int64_data,
# raw_data, double_data, uint64_data in onnx.proto): measured or dropped, never copied.
TENSOR_DATA_FIELDS = frozenset({4, 5, 6, 7, 9, 10, 11})


class Pager:
    """Drops the pages of a mapped file that a forward walk has left behind from the resident set.

    Touching one byte of a mapping maps the pages around it that the page cache already holds
    (the kernel's fault-around, 64 KiB by default: mm/memory.c ``do_fault_around``), so a walk
    that reads a header every few KiB — a model of many small initializers — makes the whole
    file resident: RSS a memory advisor should not show (a 157 MiB file of 20,000 tensors:
    +170 MiB). ``madvise(MADV_DONTNEED)`` on a read-only file mapping unmaps pages without
    changing what the file reads as (a later touch maps them again), so RSS stays within
    ``window`` bytes of the walk.
    """

    WINDOW = 4 << 20

    def __init__(self, mm: mmap.mmap, window: int = WINDOW) -> None:
        self.mm = mm
        self.window = window
        self.released = 0
        self.can = hasattr(mm, "madvise") and hasattr(mmap, "MADV_DONTNEED")

    def passed(self, pos: int) -> None:
        """The walk will not come back before ``pos`` (it may, at the cost of a page fault)."""
        if not self.can or pos - self.released < self.window:
            return
        end = pos - pos % mmap.PAGESIZE
        self.mm.madvise(mmap.MADV_DONTNEED, self.released, end - self.released)
        self.released = end


@contextmanager
def mapped_onnx(path: Path) -> Iterator[tuple[mmap.mmap, int]]:
    """The file as a read-only mmap; OS errors and empty files become ModelFormatError."""
    try:
        with path.open("rb") as fh:
            size = os.fstat(fh.fileno()).st_size
            if size == 0:
                raise ModelFormatError("empty file, not an ONNX model", path)
            mm = mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ)
    except OSError as exc:
        raise ModelFormatError(f"cannot read: {exc.strerror or exc}", path) from None
    try:
        yield mm, size
    finally:
        mm.close()
