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
    if str(path).startswith("ollama:"):
        return _read_ollama(str(path))
    if str(path).startswith("hf:"):
        return _read_hub(str(path))
    found = detect(path)
    profile = _dispatch(found)
    if found.notes:
        profile = dataclasses.replace(profile, notes=profile.notes + found.notes)
    if profile.path != str(path):
        profile = dataclasses.replace(profile, path=str(path))  # what the person opened; see load_path
    return profile


def _read_ollama(spec: str) -> ModelProfile:
    """An Ollama model by name: its GGUF blob, named after the model (see :mod:`advisor.readers.stores`)."""
    from advisor.readers.gguf_reader import read_gguf
    from advisor.readers.stores import resolve_ollama

    found = resolve_ollama(spec)
    profile = read_gguf(found.model)
    notes = [f"Ollama model {found.name}: blob {found.model.name[:19]}…"]
    if found.projector is not None:
        profile = _with_projector(profile, found.projector)
    return dataclasses.replace(profile, path=spec, name=found.name, notes=(*profile.notes, *notes))


def _read_hub(spec: str) -> ModelProfile:
    """A Hugging Face Hub model read through its headers only (see :mod:`advisor.readers.hub`)."""
    from advisor.hardware.throughput import cache_dir
    from advisor.readers.hub import fetch_hub_model, parse_spec
    from advisor.units import format_bytes

    repo, _ = parse_spec(spec)
    folder, sha, fetched = fetch_hub_model(spec, cache_dir() / "hub")
    profile = read_model(folder)
    note = (f"read from the Hugging Face Hub: {repo} at {sha[:12]}; {format_bytes(fetched)} fetched (config and "
            f"headers) of {format_bytes(profile.file_bytes)}")
    return dataclasses.replace(profile, path=spec, notes=(*profile.notes, note))


def _with_projector(profile: ModelProfile, projector: Path) -> ModelProfile:
    """``profile`` with the vision projector GGUF that loads beside it (its header read, not its weights)."""
    from advisor.errors import AdvisorError
    from advisor.readers.gguf_reader import read_gguf

    try:
        proj = read_gguf(projector)
    except AdvisorError as exc:  # a broken projector must not hide the model
        return dataclasses.replace(profile, notes=(*profile.notes, f"vision projector {projector.name} could not "
                                                                   f"be read ({exc}): not counted"))
    return dataclasses.replace(profile, projector_path=str(projector), projector_bytes=proj.weight_bytes)


def _projector_beside(model: Path) -> Path | None:
    """The one ``mmproj*.gguf`` in the model's folder (LM Studio, Hugging Face GGUF repos), if any."""
    if model.name.lower().startswith("mmproj"):
        return None
    found = [f for f in model.parent.glob("*.gguf") if f.name.lower().startswith("mmproj") and f.is_file()]
    return found[0] if len(found) == 1 else None


def _dispatch(found: Detection) -> ModelProfile:
    # Readers are imported here so that importing advisor.readers stays cheap.
    if found.format == "safetensors":
        from advisor.readers.safetensors_reader import read_safetensors

        return read_safetensors(found.path)
    if found.format == "gguf":
        from advisor.readers.gguf_reader import read_gguf

        profile = read_gguf(found.path)
        projector = _projector_beside(found.path)
        return _with_projector(profile, projector) if projector is not None else profile
    from advisor.readers.onnx_reader import read_onnx  # written alongside; imported on demand

    return read_onnx(found.path)


__all__ = ["ModelProfile", "detect", "read_model"]
