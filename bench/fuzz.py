"""Mutation fuzz campaign over the model readers: every mutant must end in a result or a clean error.

What it does
    Builds small seed models of every format into a temp folder with the test builders
    (``tests/builders``): ONNX (MLPs, a CNN, an ``If``/``Loop`` model with subgraphs, int4, a
    transformer block, one with external data), safetensors (a single file, a one-file HF folder,
    and a HF folder with ``model.safetensors.index.json`` + 2 shards + ``config.json``; the shard
    header, the index and the config are each mutated) and GGUF (tiny llamas). ``--real DIR`` adds
    real model files under DIR smaller than 5 MB as seeds.

    Each mutant is one seed with one of its files mutated: bit flips, bytes set to 0/0xff/0x7f/0x80,
    1/2/4/8-byte integers (and protobuf varints) overwritten with boundary values, arithmetic,
    truncation, chunk deletion/duplication/insertion, stacked havoc-style; JSON files (and the JSON
    header inside a safetensors file, re-prefixed with its new length) also get structure-aware
    mutations: a value replaced with 1e308, Infinity, NaN, -1, 10**12, 2**63, a string, arrays
    100000 deep, huge strings, NUL bytes, a 5000-digit integer, a key deleted or renamed... The
    mutations land mostly in the header region (where the structure lives), not in tensor data.
    Mutant ``i`` of a format is drawn from ``random.Random(f"{seed}:{format}:{i}")``, so a campaign
    is deterministic for a given ``--seed`` (up to timing: what hangs depends on the machine).

    The unit of work is what ``advisor plan PATH --device ID`` does (advisor/cli.py ``_analysis`` and
    ``_cmd_plan``): ``read_model(path)``; then ``analyze(profile, hardware, Workload())`` with the
    runtime chosen by default, ``make_plan(analysis)``, and rendering the text and JSON output.
    ``--stage`` stops earlier. The target is the catalog device ``--device`` (default
    ``rtx4090-desktop``; this machine, probed, if that id is unknown).

Outcomes
    ok      the unit returned.
    clean   ``advisor.errors.AdvisorError`` whose ``str()`` is one line (a multi-line one is a crash).
    crash   any other exception (type, message, innermost advisor/ frame, last frame), or the worker
            died of a signal (segfault, abort).
    hang    no answer within ``--timeout`` seconds (default 2): the worker is killed and restarted.
    memory  ``MemoryError`` (or ENOMEM) under the ``--memory-gib`` RLIMIT_AS (default 2 GiB), or the
            worker was SIGKILLed (OOM killer).

How it runs
    A pool of ``--jobs`` long-lived worker subprocesses (this file with ``--worker``), each importing
    advisor once, warming up on the unmutated seeds, then setting RLIMIT_AS and answering one JSON
    line per mutant path it is sent. The parent writes each mutant into the worker's own copy of the
    seeds, sends the path over a pipe, and enforces the wall limit; warm-up does not count.

    Every crash/hang/memory mutant is logged to ``<save>/findings.jsonl``; the first
    ``--max-per-cause`` examples of each distinct cause are saved (the whole seed folder, with the
    mutated file) under ``<save>/mutants/``; reproduce one with ``advisor plan <path>``.

Usage::

    .venv/bin/python bench/fuzz.py --quick
    .venv/bin/python bench/fuzz.py --count 20000 --formats onnx,gguf --seed 1 --jobs 2
    .venv/bin/python bench/fuzz.py --seconds 600 --real bench/out/real

Prints a table (format, mutants, ok, clean error, crash, hang, memory, mutants/s) and the distinct
crash/hang/memory causes. Exit code 1 when any mutant crashed, hung or ran out of memory.
"""

from __future__ import annotations

import argparse
import contextlib
import errno
import json
import os
import random
import re
import selectors
import shutil
import signal
import struct
import subprocess
import sys
import tempfile
import time
import traceback
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

REPO = Path(__file__).resolve().parent.parent
ADVISOR_DIR = str(REPO / "advisor") + os.sep
FORMATS = ("onnx", "safetensors", "gguf")
OUTCOMES = ("ok", "clean", "crash", "hang", "memory")
DEFAULT_DEVICE = "rtx4090-desktop"
STAGES = ("read", "analyze", "plan", "render")
REAL_MAX_BYTES = 5 * 1024 * 1024
WARMUP_LIMIT_S = 120.0

# ─────────────────────────────────────────────────────────────────────────────────────── seeds


@dataclass(frozen=True)
class Target:
    """One file to mutate within one seed.

    Attributes:
        fmt: the format table row it counts in.
        seed: the seed's name, also its folder name under the workspace.
        read: what ``read_model`` opens, relative to the seed folder ("." = the folder itself).
        file: the file mutated, relative to the seed folder.
        kind: ``binary``, ``json`` or ``safetensors`` (a binary file with a JSON header).
        hot: bytes at the start of the file that hold its structure; most mutations land there.
    """

    fmt: str
    seed: str
    read: str
    file: str
    kind: str
    hot: int


def _gguf_hot(path: Path) -> int:
    try:
        import gguf

        return int(gguf.GGUFReader(path).data_offset)
    except Exception:  # a real file gguf-py cannot read: mutate its first 64 KiB
        return min(path.stat().st_size, 65536)


def _safetensors_hot(path: Path) -> int:
    head = path.read_bytes()[:8]
    size = path.stat().st_size
    if len(head) < 8:
        return size
    return min(size, 8 + struct.unpack("<Q", head)[0])


def _file_target(fmt: str, seed: str, folder: Path, read: str, file: str) -> Target:
    path = folder / file
    size = path.stat().st_size
    if file.endswith(".json"):
        return Target(fmt, seed, read, file, "json", size)
    if fmt == "safetensors":
        return Target(fmt, seed, read, file, "safetensors", _safetensors_hot(path))
    if fmt == "gguf":
        return Target(fmt, seed, read, file, "binary", _gguf_hot(path))
    return Target(fmt, seed, read, file, "binary", size)


def build_seeds(root: Path, formats: tuple[str, ...]) -> list[Target]:
    """Write the built-in seeds under ``root`` (one folder per seed); return their targets."""
    sys.path.insert(0, str(REPO))
    targets: list[Target] = []

    def folder(name: str) -> Path:
        p = root / name
        p.mkdir(parents=True, exist_ok=True)
        return p

    if "onnx" in formats:
        from tests.builders import onnx_models as om

        builders = {
            "onnx-mlp": om.mlp, "onnx-mlp-inputs": lambda p: om.mlp(p, initializers_as_inputs=True),
            "onnx-fp16": om.fp16_mlp, "onnx-constant": om.constant_mlp, "onnx-shared": om.shared_initializer,
            "onnx-cnn": om.cnn, "onnx-symbolic": om.symbolic_dims, "onnx-control-flow": om.control_flow,
            "onnx-int4": om.int4_weights, "onnx-transformer": om.tiny_transformer_block,
        }
        for name, build in builders.items():
            build(folder(name) / "model.onnx")
            targets.append(_file_target("onnx", name, root / name, "model.onnx", "model.onnx"))
        om.external_mlp(folder("onnx-external") / "model.onnx")
        targets.append(_file_target("onnx", "onnx-external", root / "onnx-external", "model.onnx", "model.onnx"))
        targets.append(_file_target("onnx", "onnx-external", root / "onnx-external", "model.onnx",
                                    "model.onnx.data"))
    if "safetensors" in formats:
        import numpy as np

        from tests.builders import safetensors_models as sm

        rng = np.random.default_rng(0)
        sm.write_safetensors(
            folder("st-file") / "model.safetensors",
            {"layers.0.weight": rng.standard_normal((16, 8)).astype(np.float32),
             "layers.0.bias": rng.standard_normal(16).astype(np.float16),
             "layers.1.weight": rng.integers(0, 2**16, (8, 16), dtype=np.uint16),
             "layers.1.index": rng.integers(0, 9, (4,), dtype=np.int64)},
            {"format": "pt"}, {"layers.1.weight": "BF16"})
        targets.append(_file_target("safetensors", "st-file", root / "st-file", "model.safetensors",
                                    "model.safetensors"))
        sm.tiny_llama_folder(folder("st-hf-one"))
        for file in ("model.safetensors", "config.json"):
            targets.append(_file_target("safetensors", "st-hf-one", root / "st-hf-one", ".", file))
        sm.tiny_llama_folder(folder("st-hf-sharded"), n_shards=2)
        for file in ("model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors",
                     "model.safetensors.index.json", "config.json"):
            targets.append(_file_target("safetensors", "st-hf-sharded", root / "st-hf-sharded", ".", file))
    if "gguf" in formats:
        from tests.builders import gguf_models as gm

        gm.tiny_llama_gguf(folder("gguf-llama") / "model.gguf")
        gm.tiny_llama_gguf(folder("gguf-tied-q8") / "model.gguf", n_layers=1, hidden=64, ff=128, vocab=32,
                           qtype="Q8_0", tied=True)
        for name in ("gguf-llama", "gguf-tied-q8"):
            targets.append(_file_target("gguf", name, root / name, "model.gguf", "model.gguf"))
    return targets


def real_seeds(real: Path, root: Path, formats: tuple[str, ...]) -> list[Target]:
    """Real model files under ``real`` smaller than 5 MB (with their sidecars), and small HF folders."""
    targets: list[Target] = []
    ext_fmt = {".onnx": "onnx", ".safetensors": "safetensors", ".gguf": "gguf"}
    seen_folders: set[Path] = set()
    for path in sorted(real.rglob("*")):
        if not path.is_file() or path.suffix not in ext_fmt or ext_fmt[path.suffix] not in formats:
            continue
        fmt = ext_fmt[path.suffix]
        parent = path.parent
        if fmt == "safetensors" and (parent / "config.json").is_file():
            if parent in seen_folders:
                continue
            seen_folders.add(parent)
            files = [p for p in sorted(parent.iterdir()) if p.is_file()
                     and (p.suffix == ".safetensors" or p.name in ("config.json", "model.safetensors.index.json"))]
            if sum(p.stat().st_size for p in files) >= REAL_MAX_BYTES:
                continue
            name = f"real-{len(targets)}-{parent.name}"
            dest = root / name
            dest.mkdir(parents=True)
            for p in files:
                shutil.copy2(p, dest / p.name)
            targets += [_file_target(fmt, name, dest, ".", p.name) for p in files]
            continue
        sidecars = [p for p in parent.iterdir() if p.is_file() and p != path and p.name.startswith(path.name)]
        if path.stat().st_size + sum(p.stat().st_size for p in sidecars) >= REAL_MAX_BYTES:
            continue
        name = f"real-{len(targets)}-{path.stem}"
        dest = root / name
        dest.mkdir(parents=True)
        for p in [path, *sidecars]:
            shutil.copy2(p, dest / p.name)
        targets.append(_file_target(fmt, name, dest, path.name, path.name))
    return targets


# ─────────────────────────────────────────────────────────────────────────────────── mutations

BOUNDARY_INTS = (0, 1, 2, 3, 4, 7, 8, 15, 16, 31, 32, 63, 64, 127, 128, 255, 256, 1023, 4096, 0x7FFF, 0x8000,
                 0xFFFF, 0x10000, 2**31 - 1, 2**31, 2**32 - 1, 2**32, 2**53, 2**62, 2**63 - 1, 2**63, 2**64 - 1)
INTERESTING_BYTES = (0x00, 0xFF, 0x7F, 0x80, 0x01, 0xFE)
JSON_REPLACEMENTS = ("1e308", "-1e308", "Infinity", "-Infinity", "NaN", "-1", "0", "1", "1000000000000",
                     str(2**63), str(2**64), str(-(2**63)), "0.5", "-0.0", "1e-320", '"x"', '""', "true",
                     "null", "[]", "{}", '[1,2]', '{"a":1}')


class Raw:
    """JSON text inserted as is by :func:`dump_json` (Infinity, 1e308, 100000-deep arrays...)."""

    def __init__(self, text: str) -> None:
        self.text = text


def dump_json(value: Any) -> str:
    """``json.dumps`` that passes :class:`Raw` through (seeds are shallow: recursion is fine)."""
    if isinstance(value, Raw):
        return value.text
    if isinstance(value, dict):
        return "{" + ",".join(f"{json.dumps(k)}:{dump_json(v)}" for k, v in value.items()) + "}"
    if isinstance(value, list):
        return "[" + ",".join(dump_json(v) for v in value) + "]"
    return json.dumps(value)


def _nodes(value: Any, path: tuple[Any, ...] = ()) -> list[tuple[tuple[Any, ...], Any]]:
    """Every (path, value) in a parsed JSON document, the root included."""
    out = [(path, value)]
    if isinstance(value, dict):
        for k, v in value.items():
            out += _nodes(v, (*path, k))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            out += _nodes(v, (*path, i))
    return out


def _set(doc: Any, path: tuple[Any, ...], value: Any) -> Any:
    if not path:
        return value
    parent = doc
    for key in path[:-1]:
        parent = parent[key]
    parent[path[-1]] = value
    return doc


def mutate_json_doc(doc: Any, rng: random.Random, ops: list[str]) -> Any:
    """One structure-aware mutation of a parsed JSON document (returns the new root)."""
    nodes = _nodes(doc)
    numbers = [n for n in nodes if isinstance(n[1], int | float) and not isinstance(n[1], bool)]
    strings = [n for n in nodes if isinstance(n[1], str)]
    dicts = [n for n in nodes if isinstance(n[1], dict) and n[1]]
    lists = [n for n in nodes if isinstance(n[1], list) and n[1]]
    choice = rng.random()
    if choice < 0.35 and numbers:
        path, _ = rng.choice(numbers)
        text = rng.choice(JSON_REPLACEMENTS)
        ops.append(f"json number {list(path)} := {text}")
        return _set(doc, path, Raw(text))
    path, _ = rng.choice(nodes)
    what = rng.choice(("replace", "deep", "huge-string", "nul", "big-int", "delete-key", "rename-key",
                       "wrap", "dup-list", "empty", "string-number"))
    if what == "replace":
        text = rng.choice(JSON_REPLACEMENTS)
        ops.append(f"json {list(path)} := {text}")
        return _set(doc, path, Raw(text))
    if what == "deep":
        depth = rng.choice((1000, 100000))
        ops.append(f"json {list(path)} := arrays {depth} deep")
        return _set(doc, path, Raw("[" * depth + "]" * depth))
    if what == "huge-string":
        size = rng.choice((65536, 1 << 20, 4 << 20))
        ops.append(f"json {list(path)} := string of {size} chars")
        return _set(doc, path, "A" * size)
    if what == "nul":
        if strings:
            path, s = rng.choice(strings)
            at = rng.randint(0, len(s))
            ops.append(f"json {list(path)} NUL inserted at {at}")
            return _set(doc, path, s[:at] + "\x00" + s[at:])
        ops.append(f"json {list(path)} := NUL string")
        return _set(doc, path, "\x00")
    if what == "big-int":
        ops.append(f"json {list(path)} := 5000-digit integer")
        return _set(doc, path, Raw("9" * 5000))
    if what in ("delete-key", "rename-key") and dicts:
        dpath, d = rng.choice(dicts)
        key = rng.choice(list(d))
        value = d.pop(key)
        if what == "rename-key":
            new = rng.choice(("", "\x00", key + "_", key.upper(), "__metadata__", "a" * 1000))
            d[new] = value
            ops.append(f"json {list(dpath)} key {key!r} renamed {new[:20]!r}")
        else:
            ops.append(f"json {list(dpath)} key {key!r} deleted")
        return doc
    if what == "wrap":
        ops.append(f"json {list(path)} wrapped in a list")
        return _set(doc, path, [_get(doc, path)])
    if what == "dup-list" and lists:
        lpath, lst = rng.choice(lists)
        times = rng.choice((2, 100, 10000))
        ops.append(f"json {list(lpath)} list repeated {times}×")
        return _set(doc, lpath, lst * times)
    if what == "string-number" and numbers:
        npath, n = rng.choice(numbers)
        ops.append(f"json {list(npath)} number as string")
        return _set(doc, npath, str(n))
    ops.append(f"json {list(path)} emptied")
    return _set(doc, path, type(_get(doc, path))() if isinstance(_get(doc, path), dict | list | str) else None)


def _get(doc: Any, path: tuple[Any, ...]) -> Any:
    for key in path:
        doc = doc[key]
    return doc


def _pos(rng: random.Random, size: int, hot: int) -> int:
    """A position, mostly within the header region."""
    span = hot if rng.random() < 0.85 and hot > 0 else size
    return rng.randrange(max(span, 1))


def mutate_bytes(data: bytearray, hot: int, rng: random.Random, ops: list[str]) -> bytearray:
    """One byte-level mutation of ``data`` (in place when the size does not change)."""
    size = len(data)
    if size == 0:
        data += bytes(rng.choice(INTERESTING_BYTES) for _ in range(rng.randint(1, 16)))
        ops.append("grow empty file")
        return data
    what = rng.choices(("bitflip", "byte", "int", "varint", "arith", "truncate", "delete", "duplicate", "insert"),
                       weights=(20, 12, 20, 8, 8, 6, 9, 9, 8))[0]
    pos = _pos(rng, size, hot)
    if what == "bitflip":
        flips = [(_pos(rng, size, hot) if i else pos, rng.randrange(8)) for i in range(rng.choice((1, 1, 2, 4, 8)))]
        for p, bit in flips:
            data[p] ^= 1 << bit
        ops.append("bitflip " + ",".join(f"{p}:{b}" for p, b in flips))
    elif what == "byte":
        value = rng.choice(INTERESTING_BYTES)
        n = rng.choice((1, 1, 2, 4))
        data[pos:pos + n] = bytes([value]) * len(data[pos:pos + n])
        ops.append(f"set {n} bytes at {pos} to {value:#04x}")
    elif what == "int":
        width = rng.choice((1, 2, 4, 8))
        if rng.random() < 0.5:
            pos -= pos % width
        pos = min(pos, max(0, size - width))
        mask = 2 ** (8 * width) - 1
        r = rng.random()
        if r < 0.7:
            value = rng.choice(BOUNDARY_INTS)
        elif r < 0.85:
            value = rng.randint(0, 64)
        else:
            value = rng.randint(2 ** (8 * width - 2), mask)
        if rng.random() < 0.2:
            value = -value  # two's complement below
        order = "little" if rng.random() < 0.85 else "big"
        chunk = (value & mask).to_bytes(width, order)
        data[pos:pos + width] = chunk[: size - pos]
        ops.append(f"int{width * 8} {order} at {pos} := {value & mask}")
    elif what == "varint":
        value = rng.choice((*BOUNDARY_INTS, -1, -2))
        from advisor.readers.onnx_wire import encode_varint  # seeds are built first: advisor is on sys.path

        enc = encode_varint(value & (2**64 - 1))
        old = 1
        while pos + old - 1 < size and data[pos + old - 1] & 0x80 and old < 10:
            old += 1
        data[pos:pos + old] = enc
        ops.append(f"varint at {pos} ({old} bytes) := {value} ({len(enc)} bytes)")
    elif what == "arith":
        delta = rng.choice((-35, -16, -8, -2, -1, 1, 2, 8, 16, 35))
        data[pos] = (data[pos] + delta) & 0xFF
        ops.append(f"byte at {pos} += {delta}")
    elif what == "truncate":
        cut = _pos(rng, size, hot) if rng.random() < 0.8 else rng.randrange(size)
        del data[cut:]
        ops.append(f"truncate to {cut}")
    elif what == "delete":
        n = min(size - pos, rng.choice((1, 2, 4, 8, 16, 64, 512)))
        del data[pos:pos + n]
        ops.append(f"delete {n} at {pos}")
    elif what == "duplicate":
        n = rng.choice((1, 4, 8, 16, 64, 512, 4096))
        src = _pos(rng, size, hot)
        chunk = bytes(data[src:src + n]) * rng.choice((1, 1, 2, 16))
        data[pos:pos] = chunk
        ops.append(f"duplicate {len(chunk)} from {src} at {pos}")
    else:
        n = rng.choice((1, 2, 4, 8, 64, 1024, 65536))
        fill = rng.random()
        chunk = (bytes([rng.choice(INTERESTING_BYTES)]) * n if fill < 0.5
                 else rng.randbytes(n))
        data[pos:pos] = chunk
        ops.append(f"insert {n} {'same' if fill < 0.5 else 'random'} bytes at {pos}")
    return data


def mutate(original: bytes, target: Target, rng: random.Random) -> tuple[bytes, list[str]]:
    """A mutant of ``original`` (the bytes of ``target.file``) and the list of what was done."""
    ops: list[str] = []
    if target.kind == "json" and rng.random() < 0.75:
        try:
            doc = json.loads(original)
            for _ in range(rng.choice((1, 1, 1, 2, 3))):
                doc = mutate_json_doc(doc, rng, ops)
            return dump_json(doc).encode("utf-8", "surrogatepass"), ops
        except (ValueError, RecursionError):
            pass  # a real JSON file that does not parse: fall back to bytes
    if target.kind == "safetensors" and rng.random() < 0.5 and target.hot > 8:
        try:
            header = json.loads(original[8:target.hot])
            for _ in range(rng.choice((1, 1, 2))):
                header = mutate_json_doc(header, rng, ops)
            raw = dump_json(header).encode("utf-8", "surrogatepass")
            raw += b" " * (-len(raw) % 8)
            length = len(raw)
            if rng.random() < 0.1:
                length = rng.choice((0, 1, length - 1, length + 1, length + 8, 2**63, 2**64 - 1))
                ops.append(f"header length prefix := {length}")
            return struct.pack("<Q", length & (2**64 - 1)) + raw + original[target.hot:], ops
        except (ValueError, RecursionError):
            pass
    data = bytearray(original)
    for _ in range(rng.choice((1, 1, 1, 2, 2, 3, 5))):
        data = mutate_bytes(data, min(target.hot, len(data)), rng, ops)
    return bytes(data), ops


# ────────────────────────────────────────────────────────────────────────────────────── worker


def _relative(filename: str) -> str:
    with contextlib.suppress(ValueError):
        return str(Path(filename).relative_to(REPO))
    return filename


def _frame(fs: traceback.FrameSummary) -> str:
    return f"{_relative(fs.filename)}:{fs.lineno} in {fs.name}"


def _describe(exc: BaseException, stage: str) -> dict[str, Any]:
    tb = traceback.extract_tb(exc.__traceback__)
    ours = [fs for fs in tb if fs.filename.startswith(ADVISOR_DIR)] or [fs for fs in tb if fs.filename == __file__]
    return {
        "stage": stage,
        "type": type(exc).__qualname__,
        "message": str(exc)[:2000],
        "frame": _frame(ours[-1]) if ours else None,
        "last_frame": _frame(tb[-1]) if tb else None,
    }


def worker_main(device: str, stage: str, memory_gib: float, warm: list[str]) -> None:
    """Answer one JSON line per mutant path read from stdin, on the original stdout."""
    answers: TextIO = os.fdopen(os.dup(1), "w", buffering=1)
    os.dup2(2, 1)  # anything the advisor prints goes to the worker's log, not into the answers
    sys.stdout = sys.stderr
    import faulthandler
    import resource
    import warnings

    faulthandler.enable()
    faulthandler.register(signal.SIGUSR1)  # the parent asks for the stack of a hang before killing
    warnings.simplefilter("ignore")
    from advisor.analysis import analyze, resolve_target
    from advisor.errors import AdvisorError
    from advisor.estimator.types import Workload
    from advisor.plan import make_plan
    from advisor.readers import read_model
    from advisor.textout import analysis_text, plan_text

    try:
        hardware = resolve_target(device)
        target_name = device
    except AdvisorError:
        hardware = resolve_target()
        target_name = "this machine (probed)"
    last = STAGES.index(stage)

    current = ["read"]  # the stage the unit is in, for the record

    def unit(path: str) -> None:
        current[0] = "read"
        profile = read_model(path)
        if last < 1:
            return
        current[0] = "analyze"
        analysis = analyze(profile, hardware, Workload())
        if last < 2:
            return
        current[0] = "plan"
        plan = make_plan(analysis)
        if last < 3:
            return
        current[0] = "render"
        analysis_text(analysis)
        plan_text(plan)
        json.dumps({**analysis.to_dict(), **plan.to_dict()}, indent=2, default=str)

    def run_one(path: str) -> dict[str, Any]:
        try:
            unit(path)
        except AdvisorError as exc:
            message = str(exc)
            if "\n" in message or "\r" in message:
                kind = f"{type(exc).__qualname__} (multi-line message)"
                return {"outcome": "crash", **_describe(exc, current[0]), "type": kind}
            return {"outcome": "clean"}
        except MemoryError as exc:
            return {"outcome": "memory", **_describe(exc, current[0])}
        except BaseException as exc:
            if isinstance(exc, OSError) and exc.errno == errno.ENOMEM:
                return {"outcome": "memory", **_describe(exc, current[0])}
            return {"outcome": "crash", **_describe(exc, current[0])}
        return {"outcome": "ok"}

    for path in warm:  # imports the readers and warms caches; a seed that fails is fine here
        run_one(path)
    if memory_gib > 0:
        limit = int(memory_gib * 2**30)
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    answers.write(json.dumps({"ready": True, "target": target_name}) + "\n")
    for line in sys.stdin:
        job = json.loads(line)
        start = time.perf_counter()
        result = run_one(job["path"])
        result["id"] = job["id"]
        result["seconds"] = round(time.perf_counter() - start, 4)
        answers.write(json.dumps(result) + "\n")


# ────────────────────────────────────────────────────────────────────────────────────── parent


@dataclass
class Mutant:
    """One mutant on its way to a worker."""

    index: int
    fmt: str
    target: Target
    data: bytes
    ops: list[str]
    path: str = ""  # what read_model opens, inside the worker's workspace


@dataclass
class Slot:
    """One worker process and its own copy of the seeds."""

    number: int
    workspace: Path
    proc: subprocess.Popen[bytes] | None = None
    ready: bool = False
    buffer: bytes = b""
    job: Mutant | None = None
    deadline: float = 0.0
    started: float = 0.0
    dirty: tuple[Path, bytes] | None = None  # a mutated file and its original bytes
    log: Path = field(default_factory=Path)


@dataclass
class Finding:
    """A crash, hang or memory outcome, as written to findings.jsonl."""

    fmt: str
    outcome: str
    info: dict[str, Any]
    mutant: Mutant


class Campaign:
    """The worker pool, the mutant stream, the counts and the findings."""

    def __init__(self, args: argparse.Namespace, targets: list[Target], seeds_dir: Path, work: Path) -> None:
        self.args = args
        self.targets = targets
        self.seeds_dir = seeds_dir
        self.originals = {(t.seed, t.file): (seeds_dir / t.seed / t.file).read_bytes() for t in targets}
        self.save = Path(args.save)
        self.save.mkdir(parents=True, exist_ok=True)
        self.findings_file = (self.save / "findings.jsonl").open("w")
        self.selector = selectors.DefaultSelector()
        self.target_name = "?"
        self.shown = 0  # mutants of the current format when the last progress line was printed
        self.causes: dict[tuple[str, ...], dict[str, Any]] = {}
        self.slots = [Slot(i, work / f"w{i}") for i in range(args.jobs)]
        warm_paths = sorted({str(seeds_dir / t.seed / t.read) for t in targets})
        self.worker_cmd = [sys.executable, str(Path(__file__).resolve()), "--worker", "--device", args.device,
                           "--stage", args.stage, "--memory-gib", str(args.memory_gib), "--warm", *warm_paths]
        for slot in self.slots:
            shutil.copytree(seeds_dir, slot.workspace)
            slot.log = work / f"w{slot.number}.log"
            self.start(slot)

    # workers

    def start(self, slot: Slot) -> None:
        env = {**os.environ, "OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1",
               "MALLOC_ARENA_MAX": "2", "PYTHONPATH": str(REPO)}
        with slot.log.open("wb") as log:
            slot.proc = subprocess.Popen(self.worker_cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                         stderr=log, env=env, cwd=REPO)
        assert slot.proc.stdout is not None
        os.set_blocking(slot.proc.stdout.fileno(), False)
        self.selector.register(slot.proc.stdout, selectors.EVENT_READ, slot)
        slot.ready, slot.buffer, slot.job, slot.started = False, b"", None, time.monotonic()

    def stop(self, slot: Slot, kill: bool) -> int | None:
        proc = slot.proc
        if proc is None:
            return None
        assert proc.stdout is not None and proc.stdin is not None
        self.selector.unregister(proc.stdout)
        if kill:
            proc.kill()
        else:
            with contextlib.suppress(OSError):
                proc.stdin.close()
        try:
            rc = proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            rc = proc.wait()
        for stream in (proc.stdin, proc.stdout):
            with contextlib.suppress(OSError):
                stream.close()
        slot.proc = None
        return rc

    def close(self) -> None:
        for slot in self.slots:
            self.stop(slot, kill=False)
        self.findings_file.close()

    # one format

    def run_format(self, fmt: str) -> tuple[Counter[str], float]:
        """Run ``--count`` mutants of ``fmt`` (or until ``--seconds``); the counts and the elapsed seconds."""
        targets = [t for t in self.targets if t.fmt == fmt]
        counts: Counter[str] = Counter()
        if not targets:
            return counts, 0.0
        self.wait_ready()
        start = time.monotonic()
        stop_at = start + self.args.seconds if self.args.seconds else None
        issued = 0
        self.shown = 0
        while True:
            now = time.monotonic()
            open_for_more = issued < self.args.count and (stop_at is None or now < stop_at)
            busy = [s for s in self.slots if s.job is not None]
            if not open_for_more and not busy:
                break
            if open_for_more:
                for slot in self.slots:
                    if slot.ready and slot.job is None and issued < self.args.count:
                        self.send(slot, self.make_mutant(fmt, targets, issued))
                        issued += 1
            self.poll(counts)
            self.progress(fmt, counts, start)
        return counts, time.monotonic() - start

    def wait_ready(self) -> None:
        while not all(s.ready for s in self.slots):
            self.poll(Counter())

    def make_mutant(self, fmt: str, targets: list[Target], index: int) -> Mutant:
        rng = random.Random(f"{self.args.seed}:{fmt}:{index}")
        target = rng.choice(targets)
        data, ops = mutate(self.originals[(target.seed, target.file)], target, rng)
        return Mutant(index, fmt, target, data, ops)

    def send(self, slot: Slot, mutant: Mutant) -> None:
        if slot.dirty is not None:
            path, original = slot.dirty
            path.write_bytes(original)
            slot.dirty = None
        folder = slot.workspace / mutant.target.seed
        file = folder / mutant.target.file
        slot.dirty = (file, self.originals[(mutant.target.seed, mutant.target.file)])
        file.write_bytes(mutant.data)
        mutant.path = str(folder / mutant.target.read) if mutant.target.read != "." else str(folder)
        assert slot.proc is not None and slot.proc.stdin is not None
        slot.job = mutant
        slot.deadline = time.monotonic() + self.args.timeout
        try:
            slot.proc.stdin.write((json.dumps({"id": mutant.index, "path": mutant.path}) + "\n").encode())
            slot.proc.stdin.flush()
        except (BrokenPipeError, OSError):
            pass  # the worker died; poll() sees its EOF and records the mutant

    def poll(self, counts: Counter[str]) -> None:
        now = time.monotonic()
        deadlines = [s.deadline for s in self.slots if s.job is not None]
        timeout = max(0.0, min(deadlines) - now) if deadlines else 0.5
        for key, _ in self.selector.select(timeout=timeout):
            slot: Slot = key.data
            try:
                chunk = os.read(key.fd, 1 << 16)
            except BlockingIOError:
                continue
            if not chunk:
                self.died(slot, counts)
                continue
            slot.buffer += chunk
            while b"\n" in slot.buffer:
                line, slot.buffer = slot.buffer.split(b"\n", 1)
                self.answer(slot, json.loads(line), counts)
        now = time.monotonic()
        for slot in self.slots:
            if slot.job is not None and now > slot.deadline:
                mutant = slot.job
                frame, last_frame = self.hang_frames(slot)
                self.stop(slot, kill=True)
                info = {"type": "timeout", "message": f"no answer in {self.args.timeout} s", "frame": frame,
                        "last_frame": last_frame, "stage": "?"}
                self.record(counts, mutant, "hang", info)
                self.start(slot)
            elif not slot.ready and slot.proc is not None and now - slot.started > WARMUP_LIMIT_S:
                raise SystemExit(f"fuzz: worker {slot.number} did not warm up in {WARMUP_LIMIT_S:.0f} s; "
                                 f"see {slot.log}")

    def hang_frames(self, slot: Slot) -> tuple[str | None, str | None]:
        """Where a hung worker is: faulthandler's dump (SIGUSR1) → (innermost advisor frame, innermost frame)."""
        assert slot.proc is not None
        size = slot.log.stat().st_size if slot.log.exists() else 0
        with contextlib.suppress(OSError):
            slot.proc.send_signal(signal.SIGUSR1)
        frames: list[str] = []
        for _ in range(20):
            time.sleep(0.02)
            with contextlib.suppress(OSError), slot.log.open("rb") as log:
                log.seek(size)
                frames = re.findall(r'File "([^"]+)", line (\d+) in (\S+)', log.read().decode(errors="replace"))
            if frames:
                break
        if not frames:
            return None, None
        label = [(f"{_relative(f)}:{n} in {fn}", f.startswith(ADVISOR_DIR)) for f, n, fn in frames]
        ours = [lab for lab, is_ours in label if is_ours]  # most recent call first
        return (ours[0] if ours else None), label[0][0]

    def answer(self, slot: Slot, msg: dict[str, Any], counts: Counter[str]) -> None:
        if msg.get("ready"):
            slot.ready = True
            self.target_name = msg.get("target", "?")
            return
        mutant = slot.job
        slot.job = None
        if mutant is None or msg.get("id") != mutant.index:
            return
        outcome = msg.pop("outcome")
        if outcome in ("ok", "clean"):
            counts[outcome] += 1
            return
        self.record(counts, mutant, outcome, msg)
        if outcome == "memory":  # the heap may be in a poor state after MemoryError: start afresh
            self.stop(slot, kill=True)
            self.start(slot)

    def died(self, slot: Slot, counts: Counter[str]) -> None:
        mutant = slot.job
        rc = self.stop(slot, kill=False)
        tail = ""
        with contextlib.suppress(OSError):
            lines = slot.log.read_text(errors="replace").strip().splitlines()
            tail = " | ".join(lines[-6:])
        if not slot.ready and mutant is None:
            raise SystemExit(f"fuzz: worker {slot.number} died while warming up (rc {rc}): {tail}")
        if mutant is not None:
            if rc == -signal.SIGKILL:
                outcome, kind = "memory", "killed (SIGKILL, likely out of memory)"
            else:
                outcome = "crash"
                kind = f"worker died: signal {signal.Signals(-rc).name}" if rc is not None and rc < 0 \
                    else f"worker exited rc {rc}"
            self.record(counts, mutant, outcome, {"type": kind, "message": tail[-2000:], "frame": None,
                                                  "last_frame": None, "stage": "?"})
        self.start(slot)

    # findings

    def record(self, counts: Counter[str], mutant: Mutant, outcome: str, info: dict[str, Any]) -> None:
        counts[outcome] += 1
        pattern = message_pattern(info.get("message", ""), mutant.path)
        key = (outcome, mutant.fmt, str(info.get("type")), pattern, str(info.get("frame")))
        cause = self.causes.setdefault(key, {"count": 0, "examples": [], "info": info, "pattern": pattern,
                                             "ops": mutant.ops, "seed": mutant.target.seed,
                                             "file": mutant.target.file})
        cause["count"] += 1
        saved = None
        if self.args.max_per_cause == 0 or len(cause["examples"]) < self.args.max_per_cause:
            saved = self.save_mutant(mutant, outcome)
            cause["examples"].append(saved)
        entry = {"format": mutant.fmt, "index": mutant.index, "seed_arg": self.args.seed, "outcome": outcome,
                 "seed": mutant.target.seed, "file": mutant.target.file, "ops": mutant.ops, **info,
                 "pattern": pattern, "saved": saved, "example": cause["examples"][0] if cause["examples"] else None}
        self.findings_file.write(json.dumps(entry) + "\n")
        self.findings_file.flush()

    def save_mutant(self, mutant: Mutant, outcome: str) -> str:
        dest = self.save / "mutants" / f"{mutant.fmt}-{self.args.seed}-{mutant.index:06d}-{outcome}"
        if dest.exists():
            shutil.rmtree(dest)
        shutil.copytree(self.seeds_dir / mutant.target.seed, dest)
        (dest / mutant.target.file).write_bytes(mutant.data)
        read = dest / mutant.target.read if mutant.target.read != "." else dest
        with contextlib.suppress(ValueError):
            return str(read.relative_to(Path.cwd()))
        return str(read)

    def progress(self, fmt: str, counts: Counter[str], start: float) -> None:
        """With ``--progress``, a line on stderr every 1000 mutants."""
        done = sum(counts.values())
        if not self.args.progress or done // 1000 <= self.shown // 1000:
            return
        self.shown = done
        rate = done / max(time.monotonic() - start, 1e-9)
        print(f"  {fmt}: {done} mutants, {rate:.0f}/s, "
              + ", ".join(f"{o} {counts[o]}" for o in OUTCOMES if counts[o]), file=sys.stderr, flush=True)


def message_pattern(message: str, path: str) -> str:
    """``message`` with the mutant's path, numbers, hex and quoted names abstracted, on one line."""
    if path:
        message = message.replace(path, "<path>")
    message = re.sub(r"'[^'\s]{31,}'?|\"[^\"\s]{31,}\"?", "'…'", message)  # long names; short ones tell
    message = re.sub(r"/[^\s:'\"]+", "<path>", message)
    message = re.sub(r"0x[0-9a-fA-F]+", "<hex>", message)
    message = re.sub(r"-?\d+(\.\d+)?(e[+-]?\d+)?", "N", message)
    message = " ".join(message.split())
    return message[:140]


# ─────────────────────────────────────────────────────────────────────────────────────── output


def print_table(rows: list[tuple[str, Counter[str], float]], target: str, args: argparse.Namespace) -> None:
    print(f"\nfuzz: seed {args.seed}, {args.jobs} workers, stage {args.stage}, target {target}, "
          f"timeout {args.timeout} s, memory {args.memory_gib} GiB")
    header = ("format", "mutants", "ok", "clean error", "crash", "hang", "memory", "mutants/s")
    table = [header]
    total: Counter[str] = Counter()
    total_s = 0.0
    for fmt, counts, seconds in rows:
        n = sum(counts.values())
        total.update(counts)
        total_s += seconds
        table.append((fmt, str(n), *(str(counts[o]) for o in OUTCOMES), f"{n / seconds:.1f}" if seconds else "-"))
    if len(rows) > 1:
        n = sum(total.values())
        table.append(("total", str(n), *(str(total[o]) for o in OUTCOMES), f"{n / total_s:.1f}" if total_s else "-"))
    widths = [max(len(r[i]) for r in table) for i in range(len(header))]
    for i, r in enumerate(table):
        print("  ".join(c.ljust(w) if j == 0 else c.rjust(w) for j, (c, w) in enumerate(zip(r, widths, strict=True))))
        if i == 0:
            print("  ".join("─" * w for w in widths))


def print_causes(causes: dict[tuple[str, ...], dict[str, Any]]) -> None:
    if not causes:
        print("\nno crash, hang or memory outcome")
        return
    print(f"\n{len(causes)} distinct crash/hang/memory causes:")
    for (outcome, fmt, kind, pattern, frame), cause in sorted(causes.items(), key=lambda kv: -kv[1]["count"]):
        info = cause["info"]
        print(f"\n  {cause['count']:>6}× {outcome} [{fmt}] {kind}: {pattern}")
        print(f"          stage: {info.get('stage')}; advisor frame: {frame}")
        if info.get("last_frame") and info.get("last_frame") != frame:
            print(f"          last frame:    {info['last_frame']}")
        print(f"          seed: {cause['seed']} / {cause['file']}; mutations: {'; '.join(cause['ops'])[:160]}")
        if cause["examples"]:
            print(f"          example: {cause['examples'][0]}")


# ───────────────────────────────────────────────────────────────────────────────────────── main


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--count", type=int, default=100000, help="mutants per format (default 100000)")
    p.add_argument("--quick", action="store_true", help="1000 mutants per format")
    p.add_argument("--formats", default=",".join(FORMATS), help="comma-separated: onnx,safetensors,gguf")
    p.add_argument("--seconds", type=float, default=None, help="overall time cap per format")
    p.add_argument("--seed", type=int, default=0, help="campaign seed (default 0)")
    p.add_argument("--jobs", type=int, default=os.cpu_count() or 1, help="worker processes (default: CPUs)")
    p.add_argument("--timeout", type=float, default=2.0, help="seconds per mutant before it is a hang (default 2)")
    p.add_argument("--memory-gib", type=float, default=2.0, help="RLIMIT_AS of a worker in GiB (default 2; 0: none)")
    p.add_argument("--device", default=DEFAULT_DEVICE, help=f"catalog device id (default {DEFAULT_DEVICE})")
    p.add_argument("--stage", choices=STAGES, default="render",
                   help="how far the unit goes: read, analyze, plan, render (default: render, as `advisor plan`)")
    p.add_argument("--save", default=str(REPO / "bench" / "out" / "fuzz"), help="findings folder")
    p.add_argument("--max-per-cause", type=int, default=20,
                   help="mutants saved per distinct cause (0: all; every finding is in findings.jsonl)")
    p.add_argument("--real", type=Path, default=None, help="also seed with real model files (< 5 MB) under DIR")
    p.add_argument("--progress", action="store_true", help="a progress line per 1000 mutants on stderr")
    p.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--warm", nargs="*", default=[], help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.quick:
        args.count = 1000
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.worker:
        worker_main(args.device, args.stage, args.memory_gib, args.warm)
        return 0
    formats = tuple(f.strip() for f in args.formats.split(",") if f.strip())
    unknown = set(formats) - set(FORMATS)
    if unknown:
        raise SystemExit(f"fuzz: unknown formats {sorted(unknown)}; choose from {','.join(FORMATS)}")
    with tempfile.TemporaryDirectory(prefix="advisor-fuzz-") as tmp:
        root = Path(tmp)
        seeds_dir = root / "seeds"
        targets = build_seeds(seeds_dir, formats)
        if args.real is not None:
            targets += real_seeds(args.real, seeds_dir, formats)
        per_format = Counter(t.fmt for t in targets)
        print(f"fuzz: {len(targets)} targets ({', '.join(f'{f} {per_format[f]}' for f in formats)}), "
              f"{args.count} mutants per format", file=sys.stderr)
        campaign = Campaign(args, targets, seeds_dir, root / "work")
        rows: list[tuple[str, Counter[str], float]] = []
        try:
            for fmt in formats:
                counts, seconds = campaign.run_format(fmt)
                rows.append((fmt, counts, seconds))
        finally:
            campaign.close()
    print_table(rows, campaign.target_name, args)
    print_causes(campaign.causes)
    print(f"\nfindings: {Path(args.save) / 'findings.jsonl'}")
    bad = sum(c[o] for _, c, _ in rows for o in ("crash", "hang", "memory"))
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
