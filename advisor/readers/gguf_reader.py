"""GGUF reader: llama.cpp's single-file format (and its ``-00001-of-0000N.gguf`` splits).

The header is walked directly from a read-only memory map with bounds checks, using gguf-py's
constants (value types, ggml tensor types, magic). Only the header pages are touched; tensor data
is never read. Why not ``gguf.GGUFReader``: it builds a numpy view per array element, which takes
13 s on a Llama-3 vocabulary (128k tokens + 280k merges; measured with gguf 0.19 on this laptop),
and a corrupt array length makes it loop for as long as the length says instead of failing.
Layout: https://github.com/ggml-org/ggml/blob/master/docs/gguf.md
"""

from __future__ import annotations

import math
import mmap
import re
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from advisor.dtypes import GGML_QUANT_TYPES, canonical, dtype
from advisor.errors import ModelFormatError, UnknownDtypeError, UnsupportedFormatError
from advisor.readers.hf_config import DEFAULT_SW_PATTERN, normalize_layer_types, pattern_layer_types
from advisor.readers.limits import ARCH_LIMITS, checked_count, product_fits_int64
from advisor.readers.profile import (
    LlmArchitecture,
    ModelProfile,
    TensorInfo,
    layer_index,
    layers_missing,
    summarize_tensors,
)
from advisor.submodules import submodule_or_package

# gguf-py's tables of types, alone: ``import gguf`` also imports numpy and its reader, writer and
# vocabulary code (60 ms of a first GGUF read); constants.py needs only enum and typing.
_constants = submodule_or_package("gguf", "constants", lambda folder: folder / "constants.py")
GGUF_DEFAULT_ALIGNMENT: int = _constants.GGUF_DEFAULT_ALIGNMENT
GGMLQuantizationType = _constants.GGMLQuantizationType
GGUFValueType = _constants.GGUFValueType
LlamaFileType = _constants.LlamaFileType

GGUF_MAGIC_BYTES = b"GGUF"
_SCALAR_FORMATS: dict[int, str] = {
    GGUFValueType.UINT8: "B", GGUFValueType.INT8: "b", GGUFValueType.UINT16: "H", GGUFValueType.INT16: "h",
    GGUFValueType.UINT32: "I", GGUFValueType.INT32: "i", GGUFValueType.FLOAT32: "f", GGUFValueType.BOOL: "?",
    GGUFValueType.UINT64: "Q", GGUFValueType.INT64: "q", GGUFValueType.FLOAT64: "d",
}
_MAX_DIMS = 8  # NOTE: ggml's GGML_MAX_DIMS is 4; allow a little room, refuse garbage
_DECODE_ARRAY_MAX = 4096  # longer arrays (vocabularies, merges) are counted, not decoded
_MAX_ARRAY_NESTING = 4  # arrays of arrays: the format allows them, no real model nests them at all
_MAX_SPLITS = 99_999  # NOTE: llama.cpp's split names have five digits (LLAMA_SPLIT_PATH "%s-%05d-of-%05d.gguf")
_SPLIT_RE = re.compile(r"^(?P<prefix>.+)-(?P<no>\d{5})-of-(?P<count>\d{5})\.gguf$")


@dataclass(frozen=True)
class GgufHeader:
    """One GGUF file's header.

    Attributes:
        path: the file.
        version: GGUF version (2 or 3).
        kv: metadata values; arrays longer than 4096 items are None (see ``array_lengths``).
        array_lengths: item count of every array-valued key.
        tensors: each tensor with numpy-order shape (outermost first) and absolute data offset.
        file_bytes: size of the file.
    """

    path: Path
    version: int
    kv: dict[str, Any]
    array_lengths: dict[str, int]
    tensors: tuple[TensorInfo, ...]
    file_bytes: int


class _Cursor:
    """Bounds-checked reads from the mapped file; running off the end is a ModelFormatError."""

    def __init__(self, buf: mmap.mmap, path: Path, endian: str) -> None:
        self.buf, self.path, self.endian, self.pos, self.size = buf, path, endian, 0, len(buf)

    def need(self, n: int, what: str) -> int:
        if n < 0 or self.pos + n > self.size:
            raise ModelFormatError(f"file ends inside the {what} (at byte {self.pos}): truncated or corrupt",
                                   self.path)
        start = self.pos
        self.pos += n
        return start

    def scalar(self, fmt: str, what: str) -> Any:
        start = self.need(struct.calcsize(fmt), what)
        return struct.unpack_from(self.endian + fmt, self.buf, start)[0]

    def string(self, what: str) -> str:
        length = self.scalar("Q", what)
        start = self.need(length, what)
        return bytes(self.buf[start:start + length]).decode("utf-8", errors="replace")

    def value(self, vtype: int, key: str, lengths: dict[str, int], depth: int = 0) -> Any:
        if vtype in _SCALAR_FORMATS:
            return self.scalar(_SCALAR_FORMATS[vtype], f"value of {key}")
        if vtype == GGUFValueType.STRING:
            return self.string(f"value of {key}")
        if vtype != GGUFValueType.ARRAY:
            raise ModelFormatError(f"metadata key {key!r} has unknown value type {vtype}", self.path)
        if depth >= _MAX_ARRAY_NESTING:
            raise ModelFormatError(f"metadata key {key!r} nests arrays deeper than {_MAX_ARRAY_NESTING} "
                                   "levels: corrupt", self.path)
        item_type = self.scalar("I", f"array type of {key}")
        count = self.scalar("Q", f"array length of {key}")
        lengths[key] = count
        if item_type in _SCALAR_FORMATS:
            fmt = _SCALAR_FORMATS[item_type]
            start = self.need(count * struct.calcsize(fmt), f"array {key}")
            if count > _DECODE_ARRAY_MAX:
                return None
            return list(struct.unpack_from(f"{self.endian}{count}{fmt}", self.buf, start))
        # Strings (or nested arrays): each item takes at least 8 bytes, so a corrupt count fails here.
        if count * 8 > self.size - self.pos:
            self.need(count * 8, f"array {key}")
        if item_type == GGUFValueType.STRING and count > _DECODE_ARRAY_MAX:
            self.skip_strings(count, f"array {key}")
            return None
        return [self.value(item_type, key, {}, depth + 1) for _ in range(count)]

    def skip_strings(self, count: int, what: str) -> None:
        """Step over ``count`` strings (a vocabulary) without decoding them: the hot loop of a read."""
        unpack = struct.Struct(self.endian + "Q").unpack_from
        buf, pos, size = self.buf, self.pos, self.size
        for _ in range(count):
            if pos + 8 > size:
                pos = size + 1
                break
            pos += 8 + unpack(buf, pos)[0]
            if pos > size:
                break
        if pos > size:
            self.need(size + 1, what)  # raises, naming where the array starts
        self.pos = pos


def read_gguf_header(path: str | Path) -> GgufHeader:
    """Parse one GGUF file's metadata and tensor infos, checking every tensor lies inside the file.

    Raises:
        ModelFormatError: bad magic, truncated or corrupt header, tensor data past the end.
        UnsupportedFormatError: a GGUF version other than 2 or 3.
        UnknownDtypeError: a ggml tensor type the dtype table does not know.
    """
    p = Path(path)
    try:
        with p.open("rb") as f:
            magic = f.read(4)
            if magic != GGUF_MAGIC_BYTES:
                raise ModelFormatError(f"not a GGUF file (magic {magic!r}, expected b'GGUF')", p)
            if len(f.read(20)) < 20:
                raise ModelFormatError("file ends inside the GGUF header: truncated", p)
            with mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as buf:
                return _parse(p, buf)
    except OSError as exc:
        raise ModelFormatError(f"cannot read file ({exc.strerror or exc})", p) from None


def _parse(p: Path, buf: mmap.mmap) -> GgufHeader:
    (version,) = struct.unpack_from("<I", buf, 4)
    endian = "<"
    if version & 0xFFFF == 0:  # written on a big-endian machine (gguf-py's own test)
        endian, (version,) = ">", struct.unpack_from(">I", buf, 4)
    if version not in (2, 3):
        raise UnsupportedFormatError(f"GGUF version {version} is not supported (2 and 3 are)", p)
    cur = _Cursor(buf, p, endian)
    cur.pos = 8
    n_tensors = cur.scalar("Q", "tensor count")
    n_kv = cur.scalar("Q", "metadata count")
    if n_kv * 13 > cur.size or n_tensors * 24 > cur.size:  # smallest possible entries
        raise ModelFormatError(f"header claims {n_kv} metadata keys and {n_tensors} tensors, more than "
                               f"{cur.size} bytes can hold: truncated or corrupt", p)
    kv: dict[str, Any] = {}
    lengths: dict[str, int] = {}
    for _ in range(n_kv):
        key = cur.string("metadata key")
        if key in kv:
            raise ModelFormatError(f"metadata key {key!r} appears twice: corrupt", p)
        kv[key] = cur.value(cur.scalar("I", f"type of {key}"), key, lengths)
    infos = _tensor_infos(cur, n_tensors)
    alignment = kv.get("general.alignment", GGUF_DEFAULT_ALIGNMENT)
    if not isinstance(alignment, int) or alignment <= 0 or alignment & (alignment - 1):
        raise ModelFormatError(f"general.alignment {alignment!r} is not a power of two", p)
    data_start = -(-cur.pos // alignment) * alignment
    tensors = [_tensor(p, name, shape, type_code, data_start + rel, rel % alignment, cur.size)
               for name, shape, type_code, rel in infos]
    return GgufHeader(p, version, kv, lengths, tuple(tensors), cur.size)


def _tensor_infos(cur: _Cursor, count: int) -> list[tuple[str, tuple[int, ...], int, int]]:
    """The tensor infos, each checked as it is read, so a corrupt count fails at its first bad entry
    (a repeated name, a shape past int64, data that cannot fit the file) instead of after parsing
    as many entries as the file could hold."""
    infos: list[tuple[str, tuple[int, ...], int, int]] = []
    names: set[str] = set()
    for _ in range(count):
        name, shape, type_code, rel = _tensor_info(cur)
        if name in names:
            raise ModelFormatError(f"tensor {name!r} appears twice: corrupt", cur.path)
        names.add(name)
        if not product_fits_int64(shape):
            raise ModelFormatError(f"tensor {name!r} shape {list(shape)} overflows int64: corrupt", cur.path)
        if rel > cur.size:
            raise ModelFormatError(f"tensor {name!r} data offset {rel} is past the end of the file "
                                   f"({cur.size} bytes): corrupt or truncated", cur.path)
        infos.append((name, shape, type_code, rel))
    return infos


def _tensor_info(cur: _Cursor) -> tuple[str, tuple[int, ...], int, int]:
    name = cur.string("tensor infos")
    n_dims = cur.scalar("I", f"tensor infos ({name})")
    if n_dims > _MAX_DIMS:
        raise ModelFormatError(f"tensor {name!r} has {n_dims} dimensions: corrupt", cur.path)
    ne = [cur.scalar("Q", f"tensor infos ({name})") for _ in range(n_dims)]
    type_code = cur.scalar("I", f"tensor infos ({name})")
    rel = cur.scalar("Q", f"tensor infos ({name})")
    return name, tuple(reversed(ne)), type_code, rel  # ggml stores ne[0] (innermost) first


def _tensor(p: Path, name: str, shape: tuple[int, ...], type_code: int, offset: int, misalign: int,
            size: int) -> TensorInfo:
    try:
        dt = dtype(canonical(GGMLQuantizationType(type_code).name))
    except (ValueError, UnknownDtypeError):
        raise UnknownDtypeError(f"tensor {name!r} has unknown ggml type {type_code}", p) from None
    n = math.prod(shape)
    if dt.name in GGML_QUANT_TYPES and shape and shape[-1] % dt.block_size:
        raise ModelFormatError(f"tensor {name!r} row of {shape[-1]} is not whole {dt.name} blocks "
                               f"of {dt.block_size}", p)
    nbytes = dt.nbytes(n)
    if misalign:
        raise ModelFormatError(f"tensor {name!r} data offset is not aligned: corrupt", p)
    if offset + nbytes > size:
        raise ModelFormatError(f"tensor {name!r} data ends at byte {offset + nbytes}, past the end of the "
                               f"file ({size} bytes): truncated download?", p)
    return TensorInfo(name=name, dtype=dt.name, shape=shape, n_elements=n, nbytes=nbytes, file=str(p),
                      offset=offset, layer=layer_index(name))


def read_gguf(path: str | Path) -> ModelProfile:
    """Read a GGUF model (all of its splits when it is one of ``name-0000i-of-0000N.gguf``)."""
    p = Path(path)
    if not p.is_file():
        raise ModelFormatError("no such file", p)
    first = read_gguf_header(p.absolute())
    headers = [first]
    notes: list[str] = []
    split_count = first.kv.get("split.count")
    if isinstance(split_count, int) and split_count > 1:
        headers = [first if sp == first.path else read_gguf_header(sp) for sp in _split_paths(first, split_count)]
        notes.append(f"read {split_count} split files")
    main = headers[0]
    tensors = tuple(t for h in headers for t in h.tensors)
    n_params, weight_bytes, params_by, bytes_by = summarize_tensors(tensors)
    kv = main.kv
    try:
        arch = gguf_architecture(kv, main.array_lengths, tensors)
    except ModelFormatError as exc:
        raise ModelFormatError(exc.problem, main.path) from None
    arch_name = kv.get("general.architecture")
    if arch is None and arch_name == "clip":
        notes.append("a CLIP / vision projector GGUF, not a decoder LLM: no KV cache to estimate")
    elif arch is None:
        notes.append(f"GGUF metadata lacks {arch_name}.block_count, .embedding_length or "
                     ".attention.head_count: architecture unknown, no KV cache estimate")
    name = kv.get("general.name")
    return ModelProfile(
        path=str(path), format="gguf", name=name if isinstance(name, str) and name else p.stem,
        n_params=n_params, weight_bytes=weight_bytes, params_by_dtype=params_by, weight_bytes_by_dtype=bytes_by,
        files=tuple(str(h.path) for h in headers), file_bytes=sum(h.file_bytes for h in headers),
        tensors=tensors, arch=arch, metadata=_metadata(main), notes=tuple(notes),
    )


def _split_paths(first: GgufHeader, count: int) -> list[Path]:
    m = _SPLIT_RE.match(first.path.name)
    if not m:
        raise ModelFormatError(f"file says it is split in {count} but its name is not "
                               "NAME-0000i-of-0000N.gguf", first.path)
    if count > _MAX_SPLITS or int(m["count"]) != count:
        raise ModelFormatError(f"split.count {count} does not match the file name (of {m['count']}): corrupt",
                               first.path)
    names = [first.path.with_name(f"{m['prefix']}-{i:05d}-of-{count:05d}.gguf") for i in range(1, count + 1)]
    missing = next((n.name for n in names if not n.is_file()), None)
    if missing:
        raise ModelFormatError(f"missing split file {missing}", first.path.parent)
    return names


def _metadata(h: GgufHeader) -> dict[str, Any]:
    out: dict[str, Any] = {"gguf_version": h.version}
    for key, value in h.kv.items():
        if key.startswith(("general.", "split.")) and isinstance(value, (str, int, float)):
            out[key] = value[:200] if isinstance(value, str) else value
    ftype = h.kv.get("general.file_type")
    if isinstance(ftype, int):
        try:
            out["file_type"] = LlamaFileType(ftype).name.removeprefix("MOSTLY_").removeprefix("ALL_")
        except ValueError:
            out["file_type"] = str(ftype)
    if "general.quantization_version" in h.kv:
        out["quantization_version"] = h.kv["general.quantization_version"]
    if isinstance(h.kv.get("tokenizer.ggml.model"), str):
        out["tokenizer"] = h.kv["tokenizer.ggml.model"]
    return out


# Which bound of advisor.readers.limits.ARCH_LIMITS each ``{arch}.*`` key is held to.
_GGUF_KEY_LIMIT = {
    "block_count": "layers", "embedding_length": "hidden", "attention.head_count": "heads",
    "attention.head_count_kv": "heads", "vocab_size": "vocab", "attention.key_length": "head_dim",
    "attention.value_length": "head_dim", "attention.key_length_mla": "head_dim",
    "attention.value_length_mla": "head_dim", "rope.dimension_count": "head_dim",
    "feed_forward_length": "intermediate", "expert_count": "experts", "expert_used_count": "experts",
    "attention.kv_lora_rank": "rank", "attention.sliding_window": "window",
}


def gguf_architecture(kv: dict[str, Any], lengths: dict[str, int],
                      tensors: tuple[TensorInfo, ...]) -> LlmArchitecture | None:
    """The decoder architecture from ``{arch}.*`` metadata, or None when the keys are missing."""
    arch = kv.get("general.architecture")
    if not isinstance(arch, str) or arch == "clip":
        return None

    def num(key: str) -> int | None:
        value = kv.get(f"{arch}.{key}")
        if isinstance(value, list):  # per-layer values (hybrid models): the largest layer
            value = max((v for v in value if isinstance(v, (int, float))), default=None)
        if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0 or value != value:
            return None
        return checked_count(int(value) if math.isfinite(value) else value, f"{arch}.{key}",
                             ARCH_LIMITS[_GGUF_KEY_LIMIT.get(key, "positions")])

    n_layers, hidden, heads = num("block_count"), num("embedding_length"), num("attention.head_count")
    if not n_layers or not hidden or not heads:
        return None
    top = layers_missing(n_layers, tensors)
    if top is not None:
        # NOTE: llama-model.cpp load_tensors() creates blk.{i}.* for every i < block_count and fails
        # on the first missing one ("missing tensor 'blk.N.attn_norm.weight'").
        raise ModelFormatError(f"{arch}.block_count is {n_layers} but the tensors stop at blk.{top}: "
                               "corrupt (llama.cpp would fail on a missing tensor)")
    by_name = {t.name: t for t in tensors}
    embd = by_name.get("token_embd.weight")
    vocab = lengths.get("tokenizer.ggml.tokens") or num("vocab_size") or (embd.shape[0] if embd else 0)
    kv_lora = num("attention.kv_lora_rank")
    head_dim = num("attention.key_length_mla") if kv_lora else None
    head_dim = head_dim or num("attention.key_length") or hidden // heads
    v_dim = (num("attention.value_length_mla") if kv_lora else None) or num("attention.value_length")
    window = num("attention.sliding_window")
    pattern = kv.get(f"{arch}.attention.sliding_window_pattern")
    if isinstance(pattern, list):
        kinds = tuple("sliding_attention" if b else "full_attention" for b in pattern)
    else:
        n_pattern = pattern if isinstance(pattern, int) and pattern > 0 else DEFAULT_SW_PATTERN.get(arch, 1)
        kinds = pattern_layer_types(n_layers, n_pattern)
    window, layer_types = normalize_layer_types(window, kinds)
    return LlmArchitecture(
        model_type=arch, n_layers=n_layers, hidden_size=hidden, n_heads=heads,
        n_kv_heads=num("attention.head_count_kv") or heads, head_dim=head_dim, vocab_size=vocab,
        max_positions=num("context_length"), intermediate_size=num("feed_forward_length"),
        sliding_window=window, layer_types=layer_types,
        tie_word_embeddings="output.weight" not in by_name,
        n_experts=num("expert_count") or 0, n_experts_per_token=num("expert_used_count") or 0,
        kv_lora_rank=kv_lora, qk_rope_head_dim=num("rope.dimension_count") if kv_lora else None,
        v_head_dim=v_dim if v_dim and (kv_lora or v_dim != head_dim) else None,
    )
