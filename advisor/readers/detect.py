"""Which reader a path needs: by content magic where the format has one, else by name.

Pickle checkpoints (PyTorch ``.bin``/``.pt``/``.pth``/``.ckpt``) are refused by name and never
opened: unpickling runs arbitrary code, and even reading them is not needed to say no.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from pathlib import Path

from advisor.errors import ModelFormatError, UnsupportedFormatError
from advisor.readers.profile import ModelFormat
from advisor.readers.safetensors_reader import INDEX_SUFFIX, MAX_HEADER_BYTES

PICKLE_SUFFIXES = frozenset({".bin", ".pt", ".pth", ".ckpt", ".pkl", ".pickle"})
PICKLE_MESSAGE = (
    "PyTorch pickle checkpoints are not supported (loading one can run arbitrary code); "
    "convert it to safetensors, e.g. with transformers' "
    "model.save_pretrained(folder, safe_serialization=True)"
)


@dataclass(frozen=True)
class Detection:
    """What to read: the format, the path to hand its reader, and why it was chosen."""

    format: ModelFormat
    path: Path
    notes: tuple[str, ...] = ()


def detect(path: str | Path) -> Detection:
    """Decide how to read ``path`` (a file or a folder).

    Raises:
        ModelFormatError: the path does not exist, or a folder holds no model file.
        UnsupportedFormatError: pickle checkpoints, ``.ort`` files, anything unrecognised,
            or a folder holding several different models.
    """
    p = Path(path)
    if p.is_dir():
        return _detect_folder(p)
    if not p.exists():
        raise ModelFormatError("no such file or folder", p)
    if not p.is_file():
        raise UnsupportedFormatError("not a regular file", p)
    return _detect_file(p)


def _not_a_model_file(p: Path, suffix: str) -> str | None:
    """A one-line hint for files people open by mistake, or formats not read yet; None otherwise."""
    name = p.name.lower()
    if suffix == ".data" or name.endswith((".onnx_data", ".onnx.data")):
        stem = p.name[: -len(".data")] if name.endswith(".onnx.data") else p.stem
        onnx_beside = [c for c in (p.with_name(stem), p.with_name(stem + ".onnx"), p.with_name(p.stem + ".onnx"))
                       if c.suffix.lower() == ".onnx" and c.is_file()]
        if onnx_beside:
            return f"this is the external weight data of an ONNX model: open {onnx_beside[0].name} beside it"
        if name.endswith((".onnx.data", ".onnx_data")):
            return "this is the external weight data of an ONNX model: open the .onnx file it belongs to"
    if suffix in (".bin", ".xml") and p.with_suffix(".xml" if suffix == ".bin" else ".bin").is_file():
        return ("an OpenVINO IR model (.xml + .bin) is not supported yet; open the ONNX model it was converted "
                "from")
    if suffix in (".engine", ".plan", ".trt"):
        return ("a TensorRT engine is not supported yet (it is built for one GPU and TensorRT version); open the "
                "ONNX model it was built from")
    if suffix in (".mlmodel", ".mlpackage"):
        return "Core ML models are not supported yet; open the ONNX or safetensors model it was converted from"
    if suffix == ".tflite":
        return "TensorFlow Lite models are not supported yet"
    return None


def _detect_file(p: Path) -> Detection:
    suffix = p.suffix.lower()
    hint = _not_a_model_file(p, suffix)
    if hint:
        raise UnsupportedFormatError(hint, p)
    if suffix in PICKLE_SUFFIXES:
        raise UnsupportedFormatError(PICKLE_MESSAGE, p)  # by name only: the file is never opened
    if suffix == ".ort":
        raise UnsupportedFormatError(
            "ONNX Runtime's .ort format is not supported; open the .onnx model it was made from", p
        )
    if p.name == "config.json":
        return _detect_folder(p.parent)  # a Hugging Face folder, opened through its config
    if p.name.endswith(INDEX_SUFFIX):
        return Detection("safetensors", p)
    head = _head(p)
    if head[:4] == b"GGUF":
        return Detection("gguf", p)
    if suffix == ".onnx":
        return Detection("onnx", p)
    if suffix == ".safetensors":
        return Detection("safetensors", p)  # the reader names what is wrong with a bad header
    if suffix == ".gguf":
        return Detection("gguf", p)  # the reader says the magic is wrong
    if _looks_like_safetensors(head):
        return Detection("safetensors", p)
    if head[:1] == b"\x80" and head[1:2] in (b"\x02", b"\x03", b"\x04", b"\x05"):
        raise UnsupportedFormatError(PICKLE_MESSAGE, p)
    if head[4:8] == b"TFL3":  # the FlatBuffers file identifier of a TFLite model
        raise UnsupportedFormatError("TensorFlow Lite models are not supported yet", p)
    if head[:4] == b"PK\x03\x04":
        raise UnsupportedFormatError(
            "a zip archive (a PyTorch checkpoint or a packed model?) is not a format the advisor reads; "
            "unpack it, or convert a checkpoint to safetensors", p
        )
    raise UnsupportedFormatError(
        "unknown model format: expected .onnx, .safetensors, .gguf or a Hugging Face model folder", p
    )


def _head(p: Path) -> bytes:
    try:
        with p.open("rb") as f:
            return f.read(16)
    except OSError as exc:
        raise ModelFormatError(f"cannot read file ({exc.strerror or exc})", p) from None


def _looks_like_safetensors(head: bytes) -> bool:
    """8-byte little-endian header length, then JSON that opens with ``{``."""
    if len(head) < 9:
        return False
    (n,) = struct.unpack("<Q", head[:8])
    return 2 <= n <= MAX_HEADER_BYTES and head[8:9] == b"{"


def _hf_cache_snapshot(p: Path) -> Path | None:
    """The snapshot a Hugging Face cache repo folder (``models--org--name``) stands for.

    huggingface_hub's cache layout (huggingface_hub/file_download.py, "Cache structure"):
    ``refs/main`` holds the commit hash of the branch last downloaded, ``snapshots/<hash>/`` the
    files as symlinks into ``blobs/``. Without refs, the only snapshot, or the newest one.
    """
    if not p.name.startswith(("models--", "datasets--", "spaces--")) or not (p / "snapshots").is_dir():
        return None
    ref = p / "refs" / "main"
    if ref.is_file():
        try:
            rev = ref.read_text(encoding="utf-8").strip()
        except OSError:
            rev = ""
        if rev and (p / "snapshots" / rev).is_dir():
            return p / "snapshots" / rev
    snaps = sorted((s for s in (p / "snapshots").iterdir() if s.is_dir()), key=lambda s: s.stat().st_mtime)
    return snaps[-1] if snaps else None


def _detect_folder(p: Path) -> Detection:
    snapshot = _hf_cache_snapshot(p)
    if snapshot is not None:
        found = _detect_folder(snapshot)
        return Detection(found.format, found.path,
                         (*found.notes, f"Hugging Face cache repo: read snapshot {snapshot.name[:12]}"))
    try:
        files = sorted(f for f in p.iterdir() if f.is_file())
    except OSError as exc:
        raise ModelFormatError(f"cannot list folder ({exc.strerror or exc})", p) from None
    names = [f.name for f in files]
    lower = [n.lower() for n in names]
    has_safetensors = any(n.endswith((".safetensors", INDEX_SUFFIX)) for n in lower)
    ggufs = [f for f in files if f.name.lower().endswith(".gguf")]
    onnxs = [f for f in files if f.name.lower().endswith(".onnx")]
    others = [f.name for f in ggufs + onnxs]
    if has_safetensors:
        notes = (f"also in the folder, not read: {', '.join(others)}",) if others else ()
        return Detection("safetensors", p, notes)
    if ggufs:
        return Detection("gguf", _one_gguf(p, ggufs))
    if len(onnxs) == 1:
        return Detection("onnx", onnxs[0])
    if onnxs:
        raise UnsupportedFormatError(
            f"folder holds {len(onnxs)} ONNX models ({_list(onnxs)}); open one of them", p
        )
    if any(Path(n).suffix in PICKLE_SUFFIXES for n in lower):
        raise UnsupportedFormatError(PICKLE_MESSAGE, p)
    if not names:
        if p.name.startswith("models--"):
            raise ModelFormatError("a Hugging Face cache repo with no downloaded snapshot (snapshots/ is empty)", p)
        subfolders = sorted(f.name for f in p.iterdir() if f.is_dir()) if p.is_dir() else []
        if subfolders:
            raise ModelFormatError(f"folder holds no files, only folders ({', '.join(subfolders[:4])}"
                                   f"{', …' if len(subfolders) > 4 else ''}): open the model's own folder", p)
        raise ModelFormatError("folder is empty", p)
    raise ModelFormatError(
        "folder holds no model file (looked for *.safetensors, *.gguf, *.onnx)", p
    )


def _one_gguf(folder: Path, ggufs: list[Path]) -> Path:
    """The one GGUF model in a folder; split sets count as one (opened through their first split)."""
    firsts = [g for g in ggufs if "-00001-of-" in g.name]
    singles = [g for g in ggufs if "-of-" not in g.name]
    models = singles + firsts
    # Hugging Face GGUF repos ship the vision projector (mmproj-*.gguf) beside the language model.
    models = [m for m in models if not m.name.lower().startswith("mmproj")] or models
    if len(models) == 1:
        return models[0]
    if not models:
        return ggufs[0]
    raise UnsupportedFormatError(
        f"folder holds {len(models)} GGUF models ({_list(models)}); open one of them", folder
    )


def _list(paths: list[Path], limit: int = 4) -> str:
    shown = ", ".join(p.name for p in paths[:limit])
    return shown + (f", … ({len(paths) - limit} more)" if len(paths) > limit else "")
