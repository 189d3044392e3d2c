"""safetensors reader: a single file, a sharded set, or a Hugging Face model folder.

Only headers are read: a safetensors file starts with an 8-byte little-endian length and that many
bytes of UTF-8 JSON mapping each tensor name to its dtype, shape and ``data_offsets`` (begin, end)
within the data region that follows (https://huggingface.co/docs/safetensors, "Format"). The
tensor data is never read, so a 140 GB folder is analysed from a few hundred kilobytes of headers.
"""

from __future__ import annotations

import math
import os
import re
import struct
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from advisor.dtypes import canonical, nbytes
from advisor.errors import ModelFormatError, UnknownDtypeError
from advisor.readers.hf_config import load_config, parse_config
from advisor.readers.limits import load_json_file, loads_json, product_fits_int64
from advisor.readers.profile import (
    LlmArchitecture,
    ModelProfile,
    TensorInfo,
    layer_index,
    layers_missing,
    summarize_tensors,
)

# NOTE: the safetensors crate refuses headers over 100 MB (safetensors/src/tensor.rs, MAX_HEADER_SIZE).
MAX_HEADER_BYTES = 100_000_000
INDEX_SUFFIX = ".safetensors.index.json"
_MAX_DIMS = 64  # NOTE: the safetensors crate has no limit; ONNX Runtime and torch stop at 64 dims
MAX_NAMED_SHARDS = 10_000  # the most shards a *-of-N name may announce before its siblings are looked for
_SHARD_NAME = re.compile(r"-(?P<k>\d+)-of-(?P<n>\d+)\.safetensors$")  # transformers' model-00001-of-00004
_MAX_NAME_BYTES = 255  # a shard file name: NAME_MAX on Linux, macOS and Windows
_META_VALUE_CHARS = 200  # __metadata__ values can hold whole configs; keep what a person can read
_GENERIC_STEMS = frozenset({"model", "consolidated", "diffusion_pytorch_model", "adapter_model"})


@dataclass(frozen=True)
class SafetensorsHeader:
    """One file's parsed header.

    Attributes:
        path: the file.
        header_bytes: length of the JSON header (the 8-byte prefix not included).
        file_bytes: size of the file on disk.
        tensors: each tensor, with its absolute data offset in the file.
        metadata: the ``__metadata__`` string map (empty when absent).
    """

    path: Path
    header_bytes: int
    file_bytes: int
    tensors: tuple[TensorInfo, ...]
    metadata: dict[str, str]


def read_header(path: str | Path) -> SafetensorsHeader:
    """Parse and validate one safetensors file's header without touching its tensor data.

    Raises:
        ModelFormatError: truncated file, header length over 100 MB or past the end of the file,
            a header that is not a JSON object, inconsistent or out-of-file ``data_offsets``.
        UnknownDtypeError: a tensor dtype the dtype table does not know.
    """
    p = Path(path)
    try:
        with p.open("rb") as f:
            size = os.fstat(f.fileno()).st_size
            prefix = f.read(8)
            if len(prefix) < 8:
                raise ModelFormatError(f"file is too short to be safetensors ({size} bytes)", p)
            (header_len,) = struct.unpack("<Q", prefix)
            if header_len > MAX_HEADER_BYTES:
                raise ModelFormatError(
                    f"header length {header_len} exceeds safetensors' 100 MB limit "
                    "(corrupt or not safetensors)", p
                )
            if header_len > size - 8:
                raise ModelFormatError(
                    f"header length {header_len} runs past the end of the file ({size} bytes): truncated?", p
                )
            raw = f.read(header_len)
    except OSError as exc:
        raise ModelFormatError(f"cannot read file ({exc.strerror or exc})", p) from None
    if len(raw) < header_len:
        raise ModelFormatError("file ended while reading the header", p)
    header = _decode_json(raw, p)
    data_start = 8 + header_len
    return _parse_header(p, header, header_len, size, data_start)


def _decode_json(raw: bytes, path: Path) -> dict[str, Any]:
    if not raw.startswith(b"{"):
        raise ModelFormatError("header is not valid JSON (does not start with '{'): corrupt or not safetensors",
                               path)
    header = loads_json(raw, path, "safetensors header")
    if not isinstance(header, dict):
        raise ModelFormatError("header is not a JSON object", path)
    return header


def _parse_header(
    path: Path, header: dict[str, Any], header_len: int, size: int, data_start: int
) -> SafetensorsHeader:
    data_len = size - data_start
    meta_raw = header.pop("__metadata__", None) or {}
    if not isinstance(meta_raw, dict):
        raise ModelFormatError("__metadata__ must be a JSON object of strings", path)
    metadata = {str(k): str(v)[:_META_VALUE_CHARS] for k, v in meta_raw.items()}
    spans: list[tuple[int, int, str]] = []
    tensors: list[TensorInfo] = []
    for name, entry in header.items():
        begin, end, info = _tensor(path, name, entry, data_start)
        if end > data_len:
            raise ModelFormatError(
                f"tensor {name!r} data ends at byte {data_start + end}, past the end of the file "
                f"({size} bytes): truncated download?", path
            )
        spans.append((begin, end, name))
        tensors.append(info)
    spans.sort()
    reach, last = 0, ""
    for begin, end, name in spans:
        if begin < reach and end > begin:
            raise ModelFormatError(f"tensors {last!r} and {name!r} have overlapping data_offsets", path)
        if end > reach:
            reach, last = end, name
    return SafetensorsHeader(path, header_len, size, tuple(tensors), metadata)


def _tensor(path: Path, name: str, entry: Any, data_start: int) -> tuple[int, int, TensorInfo]:
    if not isinstance(entry, dict):
        raise ModelFormatError(f"tensor {name!r} entry is not a JSON object", path)
    dtype_raw, shape, offsets = entry.get("dtype"), entry.get("shape"), entry.get("data_offsets")
    if not isinstance(dtype_raw, str):
        raise ModelFormatError(f"tensor {name!r} has no dtype", path)
    try:
        dtype = canonical(dtype_raw)
    except UnknownDtypeError:
        raise UnknownDtypeError(f"tensor {name!r} has unknown dtype {dtype_raw!r}", path) from None
    if not isinstance(shape, list) or len(shape) > _MAX_DIMS or not _counts(shape):
        raise ModelFormatError(f"tensor {name!r} shape {_short(shape)} is not a list of up to {_MAX_DIMS} sizes",
                               path)
    if not product_fits_int64(shape):
        raise ModelFormatError(f"tensor {name!r} shape {_short(shape)} overflows int64: corrupt", path)
    if not isinstance(offsets, list) or len(offsets) != 2 or not _counts(offsets):
        raise ModelFormatError(f"tensor {name!r} data_offsets {_short(offsets)} is not [begin, end]", path)
    begin, end = offsets
    n = math.prod(shape)
    need = nbytes(dtype, n)
    if end < begin or end - begin != need:
        raise ModelFormatError(
            f"tensor {name!r} data_offsets [{begin}, {end}] do not match {dtype_raw} {shape} "
            f"({need} bytes)", path
        )
    info = TensorInfo(
        name=name, dtype=dtype, shape=tuple(shape), n_elements=n, nbytes=need, file=str(path),
        offset=data_start + begin, layer=layer_index(name),
    )
    return begin, end, info


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _counts(values: list[Any]) -> bool:
    """Whether every item is a non-negative int (not a bool): C-level passes, run once per tensor."""
    return not values or (set(map(type, values)) == {int} and min(values) >= 0)


def read_safetensors(path: str | Path) -> ModelProfile:
    """Read a safetensors model: one file, an ``*.safetensors.index.json``, or a folder.

    A folder is read through its index when it has one (every listed shard must exist), otherwise
    every ``*.safetensors`` in it is a shard. A ``config.json`` in the folder (or beside a single
    file) gives the architecture.
    """
    p = Path(path)
    if not p.exists():
        raise ModelFormatError("no such file or folder", p)
    if p.is_dir():
        return _read_folder(p, p)
    if p.name.endswith(INDEX_SUFFIX):
        return _read_shards(p, p.parent, *_index_shards(p), index=p)
    return _read_single(p)


def _read_single(p: Path) -> ModelProfile:
    """One ``.safetensors`` file. A shard of a set (listed in an index beside it, or named
    ``*-0000k-of-0000N.safetensors``) opens the whole set when every shard is there: a shard alone
    holds only some of the layers, and a verdict on it would say an 8 B model is 3 B. When some
    shards are missing it is refused, naming them, rather than judged as if it were the model."""
    folder = p.absolute().parent
    for index in _indexes_listing(folder, p.name):
        shards, total = _index_shards(index)
        missing = [s for s in shards if not (folder / s).is_file()]
        if missing:
            raise ModelFormatError(f"partial model: one of {len(shards)} shards listed in {index.name}, and "
                                   f"{len(missing)} of them are not here ({_names(missing)}); put every shard "
                                   "beside it, or open the folder once they are", p)
        profile = _read_shards(p, folder, shards, total, index=index)
        return replace(profile, notes=(*profile.notes, f"opened one shard: read the whole set of {len(shards)} "
                                                       f"listed in {index.name}"))
    m = _SHARD_NAME.search(p.name)
    if m:
        n = int(m.group("n"))
        if n > MAX_NAMED_SHARDS:
            raise ModelFormatError(f"the name says {n} shards, more than any model has ({MAX_NAMED_SHARDS}); "
                                   "open the shard through its folder or index", p)
        width = len(m.group("n"))
        stem = p.name[:m.start()]
        names = [f"{stem}-{k:0{width}d}-of-{m.group('n')}.safetensors" for k in range(1, n + 1)]
        missing = [s for s in names if not (folder / s).is_file()]
        if missing:
            raise ModelFormatError(f"partial model: one of {n} shards, and {len(missing)} of them are not here "
                                   f"({_names(missing)}); put every shard beside it", p)
        if n > 1:
            profile = _read_shards(p, folder, names, None, index=None)
            return replace(profile, notes=(*profile.notes, f"opened one shard: read the whole set of {n} "
                                                           "shards beside it"))
    config = folder / "config.json"
    return _profile(p, [read_header(p)], config if config.is_file() else None, [], _name_for_file(p))


def _indexes_listing(folder: Path, name: str) -> list[Path]:
    """The ``*.safetensors.index.json`` files beside ``name`` that list it (``model.`` first)."""
    found = []
    for index in sorted(folder.glob("*" + INDEX_SUFFIX), key=lambda i: (i.name != "model" + INDEX_SUFFIX, i.name)):
        try:
            if name in _index_shards(index)[0]:
                found.append(index)
        except ModelFormatError:
            continue
    return found


def _names(names: list[str], limit: int = 3) -> str:
    return ", ".join(names[:limit]) + (f", … ({len(names) - limit} more)" if len(names) > limit else "")


def _read_folder(opened: Path, folder: Path) -> ModelProfile:
    indexes = sorted(folder.glob("*" + INDEX_SUFFIX))
    if indexes:
        preferred = [i for i in indexes if i.name == "model" + INDEX_SUFFIX]
        index = (preferred or indexes)[0]
        return _read_shards(opened, folder, *_index_shards(index), index=index)
    shards = sorted(f.name for f in folder.glob("*.safetensors") if f.is_file())
    if not shards:
        raise ModelFormatError("folder holds no .safetensors files", opened)
    return _read_shards(opened, folder, shards, None, index=None)


def _index_shards(index: Path) -> tuple[list[str], int | None]:
    """Shard file names listed in an index's ``weight_map`` (first-seen order), and its total_size."""
    data = _load_index(index)
    weight_map = data.get("weight_map")
    if not isinstance(weight_map, dict) or not all(isinstance(v, str) for v in weight_map.values()):
        raise ModelFormatError("index has no weight_map of tensor name → shard file", index)
    shards = list(dict.fromkeys(weight_map.values()))
    for shard in shards:
        if "\x00" in shard or any(len(part.encode("utf-8", "replace")) > _MAX_NAME_BYTES
                                   for part in shard.split("/")):
            raise ModelFormatError(f"index names shard {_short(shard)}, which is not a file name", index)
        sp = Path(shard)
        if sp.is_absolute() or ".." in sp.parts:
            raise ModelFormatError(f"index names shard {_short(shard)} outside its folder", index)
    if not shards:
        raise ModelFormatError("index lists no shards", index)
    meta = data.get("metadata")
    total = meta.get("total_size") if isinstance(meta, dict) else None
    return shards, total if isinstance(total, int) else None


def _load_index(index: Path) -> dict[str, Any]:
    data = load_json_file(index, "the shard index")
    if not isinstance(data, dict):
        raise ModelFormatError("shard index must hold a JSON object", index)
    return data


def _read_shards(
    opened: Path, folder: Path, shards: list[str], declared: int | None, index: Path | None
) -> ModelProfile:
    missing = [s for s in shards if not (folder / s).is_file()]
    if missing:
        more = f" (and {len(missing) - 1} more)" if len(missing) > 1 else ""
        source = index.name if index else "the folder"
        raise ModelFormatError(f"missing shard {missing[0]}{more} listed in {source}", folder)
    headers = [read_header(folder.absolute() / s) for s in shards]
    notes: list[str] = []
    if index is not None:
        listed = set(shards)
        ignored = sorted(f.name for f in folder.glob("*.safetensors") if f.name not in listed)
        if ignored:
            notes.append(f"ignored {', '.join(ignored)}: not listed in {index.name}")
        actual = sum(t.nbytes for h in headers for t in h.tensors)
        if declared is not None and declared != actual:
            notes.append(f"{index.name} declares total_size {declared} "
                         f"but the shard headers hold {actual} bytes")
    config = folder / "config.json"
    return _profile(opened, headers, config if config.is_file() else None, notes, _name_for_folder(folder))


def _profile(
    opened: Path, headers: list[SafetensorsHeader], config_path: Path | None, notes: list[str], name: str,
    *, complete: bool = True,
) -> ModelProfile:
    tensors = tuple(t for h in headers for t in h.tensors)
    n_dupes = len(tensors) - len({t.name for t in tensors})
    if n_dupes:
        notes.append(f"{n_dupes} tensor name(s) appear in more than one shard; each copy is counted")
    n_params, weight_bytes, params_by, bytes_by = summarize_tensors(tensors)
    metadata: dict[str, Any] = dict(headers[0].metadata) if headers else {}
    arch: LlmArchitecture | None = None
    if config_path is not None:
        config = load_config(config_path)
        arch = parse_config(config, source=config_path)
        top = layers_missing(arch.n_layers, tensors) if arch is not None and complete else None
        if arch is not None and top is not None:
            # NOTE: transformers' from_pretrained would build every configured layer and initialise
            # the missing ones at random ("Some weights ... were newly initialized"): not this model.
            raise ModelFormatError(f"num_hidden_layers is {arch.n_layers} but the weights stop at layer {top}: "
                                   "a shard is missing or the config belongs to another model", config_path)
        name = _name_from_config(name, config)
        metadata.update(_config_metadata(config))
        if arch is None:
            kind = config.get("model_type") or "this model"
            notes.append(f"config.json describes {kind!s}, not a decoder LLM: no KV cache to estimate")
        if "quantization" in metadata:
            notes.append(f"weights are quantized ({metadata['quantization']}): packed tensors hold "
                         "several weights per stored element, so the parameter count is of stored elements")
    elif opened.is_dir():
        notes.append("no config.json: the architecture (and so the KV cache) is unknown")
    return ModelProfile(
        path=str(opened), format="safetensors", name=name, n_params=n_params, weight_bytes=weight_bytes,
        params_by_dtype=params_by, weight_bytes_by_dtype=bytes_by, files=tuple(str(h.path) for h in headers),
        file_bytes=sum(h.file_bytes for h in headers), tensors=tensors, arch=arch, metadata=metadata,
        notes=tuple(notes),
    )


def _config_metadata(config: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key in ("model_type", "architectures", "torch_dtype"):
        if config.get(key) is not None:
            out[key] = config[key]
    if "torch_dtype" not in out and isinstance(config.get("dtype"), str):
        out["torch_dtype"] = config["dtype"]
    qc = config.get("quantization_config")
    if isinstance(qc, dict):
        out["quantization"] = _quant_summary(qc)
    return out


def _quant_summary(qc: dict[str, Any]) -> str:
    """``gptq 4-bit, group 128`` from a ``quantization_config``."""
    parts = [str(qc.get("quant_method") or "quantized")]
    bits = qc.get("bits") or qc.get("w_bit")
    if not bits and (qc.get("load_in_4bit") or qc.get("load_in_8bit")):
        bits = 4 if qc.get("load_in_4bit") else 8
    if bits:
        parts.append(f"{bits}-bit")
    group = qc.get("group_size") or qc.get("q_group_size")
    if group:
        parts.append(f"group {group}")
    if isinstance(qc.get("fmt"), str):
        parts.append(qc["fmt"])
    return " ".join(parts[:2]) + "".join(f", {p}" for p in parts[2:])


def _name_for_folder(folder: Path) -> str:
    folder = folder.absolute()
    parent = folder.parent
    # Hugging Face cache: models--org--name/snapshots/<commit>/ → org/name
    if parent.name == "snapshots" and parent.parent.name.startswith("models--"):
        return parent.parent.name.removeprefix("models--").replace("--", "/")
    return folder.name or str(folder)


def _name_for_file(p: Path) -> str:
    if p.name.endswith(INDEX_SUFFIX) or p.stem in _GENERIC_STEMS or p.stem.startswith("model-0"):
        return _name_for_folder(p.parent)
    return p.stem


def _name_from_config(name: str, config: dict[str, Any]) -> str:
    """Prefer the repo id in ``_name_or_path`` when the folder name says nothing (a hash, ``.``)."""
    hint = config.get("_name_or_path")
    if isinstance(hint, str) and hint and not hint.startswith(("/", ".")) and (len(name) == 40 or not name):
        return hint
    return name


__all__ = ["MAX_HEADER_BYTES", "SafetensorsHeader", "read_header", "read_safetensors"]
