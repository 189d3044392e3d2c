"""Model names that stand for files in a local model store.

Ollama (``ollama:NAME[:TAG]``): the store is ``$OLLAMA_MODELS``, else ``~/.ollama/models``. A name
resolves through its manifest, ``manifests/<registry>/<namespace>/<model>/<tag>`` (the registry
``registry.ollama.ai`` and the namespace ``library`` when the name gives none, the tag ``latest``),
an OCI-style JSON whose ``layers`` list blobs by digest and media type; the weights are the layer
of type ``application/vnd.ollama.image.model``, a GGUF file at ``blobs/sha256-<hex>`` (ollama's
server/manifest.go and server/images.go). A vision projector is a second layer
(``application/vnd.ollama.image.projector``).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

from advisor.errors import ModelFormatError

OLLAMA_PREFIX = "ollama:"
MODEL_MEDIA = "application/vnd.ollama.image.model"
PROJECTOR_MEDIA = "application/vnd.ollama.image.projector"
_MAX_MANIFEST_BYTES = 1024 * 1024


@dataclass(frozen=True)
class OllamaModel:
    """What an Ollama name resolved to: the model blob and, when it has one, its projector blob."""

    name: str
    manifest: Path
    model: Path
    projector: Path | None


def ollama_root() -> Path:
    """Where Ollama keeps its models (``$OLLAMA_MODELS`` or ``~/.ollama/models``)."""
    return Path(os.environ.get("OLLAMA_MODELS") or Path.home() / ".ollama" / "models")


def resolve_ollama(spec: str) -> OllamaModel:
    """The blobs ``ollama:NAME[:TAG]`` names.

    Raises:
        ModelFormatError: no such model in the store, or a manifest or blob that is not there.
    """
    name = spec[len(OLLAMA_PREFIX):] if spec.startswith(OLLAMA_PREFIX) else spec
    if not name or any(part in ("", ".", "..") for part in name.replace(":", "/").split("/")):
        raise ModelFormatError("not an Ollama model name (e.g. ollama:llama3:8b)", spec)
    base, _, tag = name.rpartition(":") if ":" in name.split("/")[-1] else (name, "", "latest")
    parts = base.split("/")
    if len(parts) == 1:
        parts = ["registry.ollama.ai", "library", parts[0]]
    elif len(parts) == 2:
        parts = ["registry.ollama.ai", *parts]
    root = ollama_root()
    manifest = root / "manifests" / Path(*parts) / (tag or "latest")
    if not manifest.is_file():
        raise ModelFormatError(f"no Ollama model {name} in {root} (ollama pull it, or set OLLAMA_MODELS)", spec)
    try:
        raw = manifest.read_bytes()[:_MAX_MANIFEST_BYTES + 1]
        doc = json.loads(raw) if len(raw) <= _MAX_MANIFEST_BYTES else None
    except (OSError, ValueError):
        doc = None
    layers = doc.get("layers") if isinstance(doc, dict) else None
    if not isinstance(layers, list):
        raise ModelFormatError("unreadable Ollama manifest (no layers list)", manifest)

    def blob(media: str) -> Path | None:
        for layer in layers:
            if isinstance(layer, dict) and layer.get("mediaType") == media:
                digest = str(layer.get("digest", ""))
                path = root / "blobs" / digest.replace(":", "-")
                if not digest.startswith("sha256:") or not path.is_file():
                    raise ModelFormatError(f"the manifest names blob {digest or '?'}, which is not in "
                                           f"{root / 'blobs'}", manifest)
                return path
        return None

    model = blob(MODEL_MEDIA)
    if model is None:
        raise ModelFormatError("the Ollama manifest has no model layer", manifest)
    return OllamaModel(name=name, manifest=manifest, model=model, projector=blob(PROJECTOR_MEDIA))


def ollama_names(root: Path | None = None) -> list[str]:
    """The models in the Ollama store, as ``ollama list`` names them (``library/`` left out)."""
    base = (root or ollama_root()) / "manifests"
    names: list[str] = []
    if not base.is_dir():
        return names
    for manifest in sorted(base.glob("*/*/*/*")):
        if not manifest.is_file():
            continue
        registry, namespace, model, tag = manifest.relative_to(base).parts
        prefix = "" if registry == "registry.ollama.ai" and namespace == "library" else (
            f"{namespace}/" if registry == "registry.ollama.ai" else f"{registry}/{namespace}/")
        names.append(f"{prefix}{model}:{tag}")
    return names
