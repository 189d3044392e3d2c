"""Model readers: :func:`read_model` turns a path into a :class:`ModelProfile` from headers only.

Formats: ONNX (``.onnx``, external data included), safetensors (a file, a sharded set with its
index, or a Hugging Face folder with ``config.json``) and GGUF. Pickle checkpoints are refused
without being opened.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

from advisor.readers.detect import Detection, detect
from advisor.readers.profile import ModelProfile


def read_model(path: str | Path) -> ModelProfile:
    """Read the model at ``path`` (a file or a folder) without loading its weights.

    Raises:
        ModelFormatError: the path does not exist, or the model is truncated or inconsistent.
        UnsupportedFormatError: a format the advisor does not read (pickles, ``.ort``, unknown).
    """
    found = detect(path)
    profile = _dispatch(found)
    if found.notes:
        profile = dataclasses.replace(profile, notes=profile.notes + found.notes)
    if profile.path != str(path):
        profile = dataclasses.replace(profile, path=str(path))  # what the person opened; see load_path
    return profile


def _dispatch(found: Detection) -> ModelProfile:
    # Readers are imported here so that importing advisor.readers stays cheap.
    if found.format == "safetensors":
        from advisor.readers.safetensors_reader import read_safetensors

        return read_safetensors(found.path)
    if found.format == "gguf":
        from advisor.readers.gguf_reader import read_gguf

        return read_gguf(found.path)
    from advisor.readers.onnx_reader import read_onnx  # written alongside; imported on demand

    return read_onnx(found.path)


__all__ = ["ModelProfile", "detect", "read_model"]
