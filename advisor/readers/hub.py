"""Hugging Face Hub models read without downloading them: ``hf:ORG/NAME[@REVISION]``.

Only what the estimate needs crosses the network: ``config.json``, the shard index, and each
safetensors file's header (two HTTP range requests: the 8-byte header length — whose
``Content-Range`` also gives the file's size — then the JSON header). They are laid out locally
as the repository would be, each safetensors file as a sparse file of its real size holding just
its header, so the ordinary reader reads them; nothing of the weights is fetched.

The Hub's HTTP API (huggingface_hub's ``HfApi.model_info`` and ``hf_hub_url``):
``GET {endpoint}/api/models/{repo}/revision/{rev}`` lists the files (``siblings``) and the commit
(``sha``); a file is ``{endpoint}/{repo}/resolve/{rev}/{name}``. ``HF_ENDPOINT`` replaces the
endpoint (a mirror, or a local server in tests) and ``HF_TOKEN`` authorises private and gated
repositories, as in huggingface_hub.
"""

from __future__ import annotations

import json
import os
import re
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from advisor.cancel import CancelToken
from advisor.errors import ModelFormatError
from advisor.readers.safetensors_reader import MAX_HEADER_BYTES

HF_PREFIX = "hf:"
DEFAULT_ENDPOINT = "https://huggingface.co"
_MAX_JSON_BYTES = 64 * 1024 * 1024
_REPO_RE = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")
TIMEOUT_S = 30


@dataclass
class Fetched:
    """Bytes that crossed the network for one Hub read (headers and small JSON files)."""

    bytes: int = 0


def parse_spec(spec: str) -> tuple[str, str]:
    """``hf:ORG/NAME[/FILE.gguf][@REV]`` → (repo id, revision); see :func:`gguf_file` for FILE."""
    body = spec[len(HF_PREFIX):] if spec.startswith(HF_PREFIX) else spec
    repo, _, rev = body.partition("@")
    parts = repo.split("/")
    if len(parts) == 3 and parts[2].endswith(".gguf"):
        repo = "/".join(parts[:2])
    if not _REPO_RE.match(repo) or ".." in repo:
        raise ModelFormatError("not a Hugging Face model id (hf:ORG/NAME, hf:ORG/NAME/FILE.gguf, @REVISION)", spec)
    return repo, rev or "main"


def gguf_file(spec: str) -> str:
    """The GGUF file ``hf:ORG/NAME/FILE.gguf`` names ("" when none is named)."""
    body = (spec[len(HF_PREFIX):] if spec.startswith(HF_PREFIX) else spec).partition("@")[0]
    parts = body.split("/")
    return parts[2] if len(parts) == 3 and parts[2].endswith(".gguf") else ""


def fetch_hub_model(spec: str, cache: Path, *, cancel: CancelToken | None = None) -> tuple[Path, str, int]:
    """Lay out ``spec``'s config, index and safetensors headers under ``cache`` — or, for a GGUF
    repository (one model file, or the one ``hf:ORG/NAME/FILE.gguf`` names), that file's header.

    Returns:
        (the local folder, or the GGUF file; the commit sha; the bytes fetched).

    Raises:
        ModelFormatError: offline, no such repository or revision, a private repository without a
            token, or a repository with no safetensors weights.
    """
    repo, rev = parse_spec(spec)
    endpoint = (os.environ.get("HF_ENDPOINT") or DEFAULT_ENDPOINT).rstrip("/")
    fetched = Fetched()
    info = json.loads(_get(f"{endpoint}/api/models/{repo}/revision/{urllib.parse.quote(rev, safe='')}", spec,
                           fetched, limit=_MAX_JSON_BYTES))
    sha = str(info.get("sha") or rev)
    names = [str(s.get("rfilename", "")) for s in info.get("siblings", []) if isinstance(s, dict)]
    folder = cache / repo.replace("/", "--") / re.sub(r"[^\w.-]", "_", sha)
    folder.mkdir(parents=True, exist_ok=True)

    def url(name: str) -> str:
        return f"{endpoint}/{repo}/resolve/{urllib.parse.quote(sha, safe='')}/{urllib.parse.quote(name)}"

    for small in ("config.json", "model.safetensors.index.json"):
        if small in names:
            (folder / small).write_bytes(_get(url(small), spec, fetched, limit=_MAX_JSON_BYTES))
    chosen = gguf_file(spec)
    ggufs = [n for n in names if n.endswith(".gguf") and "/" not in n]
    models = [n for n in ggufs if not n.lower().startswith("mmproj")]
    if chosen or (not any(n.endswith(".safetensors") for n in names) and len(models) == 1):
        name = chosen or models[0]
        if name not in names:
            raise ModelFormatError(f"the repository has no file {name}", spec)
        _gguf_prefix_as_sparse_file(url(name), folder / name, spec, fetched)
        return folder / name, sha, fetched.bytes
    weights = [n for n in names if n.endswith(".safetensors") and "/" not in n]
    if (folder / "model.safetensors.index.json").is_file():
        index = json.loads((folder / "model.safetensors.index.json").read_text(encoding="utf-8"))
        listed = list(dict.fromkeys(str(v) for v in (index.get("weight_map") or {}).values()))
        weights = [n for n in listed if "/" not in n and not n.startswith(".")] or weights
    if not weights:
        hint = (f" (it holds {len(models)} GGUF files: name one, e.g. hf:{repo}/{models[0]})" if models else "")
        raise ModelFormatError(f"the repository has no safetensors weights to read from the Hub{hint}", spec)
    for name in weights:
        if cancel is not None:
            cancel.raise_if_cancelled()
        _header_as_sparse_file(url(name), folder / name, spec, fetched)
    return folder, sha, fetched.bytes


def _header_as_sparse_file(url: str, dest: Path, spec: str, fetched: Fetched) -> None:
    first, total = _get_range(url, 0, 7, spec, fetched)
    if len(first) != 8:
        raise ModelFormatError(f"{dest.name} on the Hub is shorter than a safetensors header", spec)
    n = int.from_bytes(first, "little")
    if n < 2 or n > MAX_HEADER_BYTES or (total is not None and 8 + n > total):
        raise ModelFormatError(f"{dest.name} on the Hub has a header length of {n}: not a safetensors file", spec)
    header, _ = _get_range(url, 8, 8 + n - 1, spec, fetched)
    with dest.open("wb") as f:
        f.write(first + header)
        if total is not None:
            f.truncate(total)  # sparse: the weights' bytes are holes, never fetched


GGUF_FIRST_PREFIX = 4 * 1024 * 1024  # most headers (with a 128k-token vocabulary) end within a few MiB
GGUF_MAX_PREFIX = 512 * 1024 * 1024


def _gguf_prefix_as_sparse_file(url: str, dest: Path, spec: str, fetched: Fetched) -> None:
    """The GGUF header's bytes in a sparse file of the real size: a prefix that doubles until the
    reader parses it (a GGUF header has no length field; its tensor infos end where they end)."""
    from advisor.errors import AdvisorError
    from advisor.readers.gguf_reader import read_gguf_header

    size = GGUF_FIRST_PREFIX
    while True:
        data, total = _get_range(url, 0, size - 1, spec, fetched)
        with dest.open("wb") as f:
            f.write(data)
            if total is not None:
                f.truncate(total)
        try:
            header = read_gguf_header(dest)
            offsets = [t.offset for t in header.tensors if t.offset is not None]
            align = int(header.kv.get("general.alignment") or 32)
            # parsed within what was fetched: the tensor data (aligned after the header) starts
            # no further than one alignment past the prefix; past it, zeros were read as header
            if not offsets or min(offsets) <= len(data) + align or (total is not None and len(data) >= total):
                return
        except AdvisorError:
            if (total is not None and size >= total) or size >= GGUF_MAX_PREFIX:
                raise
        if size >= GGUF_MAX_PREFIX:
            raise ModelFormatError(f"{dest.name}'s header is larger than {GGUF_MAX_PREFIX} bytes", spec)
        size *= 2


def _request(url: str, headers: dict[str, str]) -> urllib.request.Request:
    token = os.environ.get("HF_TOKEN") or os.environ.get("HUGGING_FACE_HUB_TOKEN")
    if token:
        headers = {**headers, "Authorization": f"Bearer {token}"}
    return urllib.request.Request(url, headers={"User-Agent": "memory-advisor", **headers})


def _open(req: urllib.request.Request, spec: str) -> Any:
    try:
        return urllib.request.urlopen(req, timeout=TIMEOUT_S)
    except urllib.error.HTTPError as exc:
        if exc.code in (401, 403):
            raise ModelFormatError("the repository is private or gated: set HF_TOKEN to a token that can read it",
                                   spec) from None
        if exc.code == 404:
            raise ModelFormatError("no such repository, revision or file on the Hub", spec) from None
        raise ModelFormatError(f"the Hub answered HTTP {exc.code}", spec) from None
    except (urllib.error.URLError, TimeoutError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise ModelFormatError(f"cannot reach the Hub ({reason}); offline? (HF_ENDPOINT sets a mirror)",
                               spec) from None


def _get(url: str, spec: str, fetched: Fetched, *, limit: int) -> bytes:
    with _open(_request(url, {}), spec) as resp:
        data: bytes = resp.read(limit + 1)
    if len(data) > limit:
        raise ModelFormatError(f"{url.rsplit('/', 1)[-1]} on the Hub is larger than {limit} bytes", spec)
    fetched.bytes += len(data)
    return data


def _get_range(url: str, start: int, end: int, spec: str, fetched: Fetched) -> tuple[bytes, int | None]:
    """Bytes ``start..end`` (inclusive) of ``url``, and the file's size from ``Content-Range``."""
    with _open(_request(url, {"Range": f"bytes={start}-{end}"}), spec) as resp:
        if resp.status != 206:
            raise ModelFormatError("the Hub (or HF_ENDPOINT) does not answer range requests", spec)
        data: bytes = resp.read(end - start + 1)
        content_range = resp.headers.get("Content-Range", "")
    fetched.bytes += len(data)
    m = re.search(r"/(\d+)\s*$", content_range)
    return data, int(m.group(1)) if m else None
