"""Required memory: the smallest hard memory cap under which a run completes correctly at full speed.

    python bench/required.py                       # every case not yet in bench/results/required_cpu.json
    python bench/required.py --only ppocrv4-det    # the cases whose name contains this (repeatable)
    python bench/required.py --only ort --force    # re-measure cases already there
    python bench/required.py --predict-only        # recompute the prediction / verdict columns, no measuring
    python bench/required.py --list                # the case names

Peak RSS is what a run shows when memory is plentiful; the *required* memory is what it must have:
the OS takes back clean file pages (mmap'd weights that were copied elsewhere, a model file that was
read once) without slowing the run, and it cannot take back anything else (no swap here). This script
measures the required figure for onnxruntime CPU (real models of bench/real_models.py), Hugging Face
``generate()`` on torch CPU (safetensors, mmap; bench/llm_accuracy.py's models) and llama.cpp CPU
(llama-cpp-python; a TinyLlama-shaped GGUF in Q4_0 / Q4_K_M / Q8_0, mmap on/off, repacking on/off),
and prints it beside the peak RSS and the advisor's prediction.

Method (Linux, as root):

1. **The run.** Each run is a fresh child process, ``python bench/required.py --child JSON``, that
   imports its runtime, takes the baseline ``VmRSS``, resets ``VmHWM`` (bench/proc_memory.py), loads the
   model and runs it the way the accuracy benches do (onnxruntime: ``InferenceSession`` with default
   options and two ``run`` calls on bench/ort_measure.py's random inputs; torch:
   ``from_pretrained`` + greedy ``generate`` of ``new`` tokens on bench/llm_torch_measure.py's prompt;
   llama.cpp: ``llama_model_load_from_file`` + ``llama_init_from_model`` through the C API, the prompt
   decoded, then ``new`` tokens generated greedily one by one). It prints one JSON line: its peak
   above its baseline (``VmHWM − baseline``, the figure the existing measure children report), a hash of
   its outputs (the output arrays, or the generated token ids) and, for LLMs, the time of every
   generated token.
2. **The cap.** The child runs in a memory cgroup made for that one run, nested under this process's
   own memory cgroup (cgroup v1: ``memory.limit_in_bytes`` and ``memory.memsw.limit_in_bytes`` = the
   cap, no swap; cgroup v2: ``memory.max``, ``memory.swap.max`` = 0). A wrapper shell writes its own
   pid into ``cgroup.procs`` and then ``exec``s the child, so every page the child touches, from the
   interpreter's first allocation on, is charged to the group. After the run the group's
   ``memory.max_usage_in_bytes`` (v2 ``memory.peak``), ``memory.failcnt`` and ``oom_kill`` count are read
   and the group is removed (only groups this script made).
3. **Cold, private model files.** Each model is run from a private copy (bench/out/required/private/)
   written with plain read/write and fsync'd, so it has no sparse holes (holes read back as free zero
   pages) and no page of it is cached by anyone else; before every run ``posix_fadvise(DONTNEED)`` drops
   its page cache, because cgroup v1 charges a page to the group that first read it. The runtime's own
   shared libraries stay cached (charged to whoever read them first): their code pages are not in the
   required figure, though the peak RSS counts those a run touches (``--drop-libs`` drops them too, so
   they are charged to each run; noisier, and then the bare subtraction also removes import-time code
   a running case may no longer need).
4. **Reference.** A warm-up run outside any group (it brings the runtime's code into the page
   cache), then three uncapped runs (in an unlimited group): the reference time is the fastest
   whole-run wall time (spawn to exit, measured here), the reference per-token time the lowest
   per-run median, the reference output the hash they give. The peak RSS column is the median of their
   ``VmHWM − baseline``.
5. **Required.** A cap *passes* when the run exits 0 without an OOM kill, gives the reference output,
   its wall time is ≤ 1.5 × the reference and (LLMs) its median per-token time is ≤ 1.25 × the
   reference's. The cap is bisected between the uncapped group's max usage (+2 %, checked to pass) and
   0.4 × that (lowered further while it passes) until ``(pass − fail) / pass ≤ 2 %``; a cap that fails
   only on time is tried once more (timing is noisy on 2 cores shared with other jobs), right after an
   uncapped control run, and judged against the slower of the reference and that control; a run is
   killed at 2 × the reference time (+5 s), which is a failure on time. The smallest passing cap is the *required cap*.
6. **Completes at all.** The same bisection (to 5 %, at most 5 more runs and about
   max(60 s, 12 × the reference time) of searching) for the smallest cap at
   which the run completes with the right output, however slowly, between the highest cap that failed
   without completing and the smallest that completed; a run is killed at 10 × the reference time
   (+10 s) and then counts as not completing, so this floor means "completes within 10 × the time"
   (``floor_note`` says when a kill happened).
7. **Above a bare runtime.** The advisor's estimate is memory above a bare runtime process. A child
   that only imports the runtime (``numpy`` + ``onnxruntime``; ``torch`` + ``transformers``;
   ``llama_cpp``) and exits is bisected the same way (to 1 %) — the cases ``bare <runtime>`` — and its
   required cap is subtracted from every required and floor cap of that runtime. For onnxruntime the
   input arrays are subtracted too: the existing measure child takes its baseline after building them,
   so the peak figures (and the estimate) leave them out.

The prediction column is ``advisor.estimator.estimate(...).required_bytes`` (``peak_bytes`` before
that field existed) for the hardware each accuracy bench uses; the verdict columns are
``advisor.estimator.fit.fit(est, hw).fits`` for a live machine whose available memory is 1.15 × and
0.85 × the measured required memory (right = fits, then does not). Results are merged per case into
bench/results/required_cpu.json after every case; the printed table goes to
bench/results/required_cpu.txt. ``--predict-only`` recomputes both from the json without measuring.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import datetime as dt
import hashlib
import itertools
import json
import math
import os
import platform
import signal
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
BENCH = ROOT / "bench"
if str(BENCH) not in sys.path:
    sys.path.insert(0, str(BENCH))

RESULTS_JSON = BENCH / "results" / "required_cpu.json"
RESULTS_TXT = BENCH / "results" / "required_cpu.txt"
WORK = BENCH / "out" / "required"
PRIVATE = WORK / "private"
MIB = 1024 * 1024

PASS_WALL = 1.5  # whole-run wall time vs the uncapped reference
PASS_TOKEN = 1.25  # median per-token time vs the uncapped reference
REQUIRED_REL = 0.02
BARE_REL = 0.01
FLOOR_REL = 0.05
FLOOR_STEPS = 5
KILL_REQUIRED = (2.0, 5.0)  # kill a run of the required search at 2 x reference + 5 s
KILL_FLOOR = (10.0, 10.0)
VERDICT_FACTORS = (1.15, 0.85)


# --------------------------------------------------------------------------- cases


@dataclass(frozen=True)
class Case:
    """One measured run: a name, its runtime (``onnxruntime``/``torch``/``llama.cpp``), what the child needs."""

    name: str
    runtime: str
    spec: dict[str, Any] = field(default_factory=dict)
    bare: bool = False


RUNTIMES = ("onnxruntime", "torch", "llama.cpp")

# (real model, shapes): small and large, CNN / LSTM / transformer / trees, int8 dynamic and QDQ.
_ORT = (
    ("ppocr-cls-v2", {"x": (6, 3, 48, 192)}),
    ("ddddocr-ocr", {"input1": (1, 1, 64, 320)}),
    ("ppocrv4-rec", {"x": (32, 3, 48, 320)}),
    ("ppocrv4-det", {"x": (4, 3, 640, 640)}),
    ("magika-v1", {"bytes": (256, 1536)}),
    ("digits-rf", {"X": (1024, 64)}),
    ("nudenet-320n-dynamic", {"images": (8, 3, 320, 320)}),
    ("ddddocr-ocr-qdq", {"input1": (1, 1, 64, 320)}),
)
# bench/llm_accuracy.py models, loaded as stored (dtype none: mmap'd safetensors), 32 new tokens.
_TORCH = (("qwen2-tied-310m", 64), ("llama-200m", 64), ("llama-490m-f32", 64))
# TinyLlama-1.1B-shaped GGUF: (quant type, mmap, repack)
_LLAMA = (
    ("Q4_0", True, True), ("Q4_0", True, False), ("Q4_0", False, True),
    ("Q4_K_M", True, True), ("Q4_K_M", True, False), ("Q4_K_M", False, True),
    ("Q8_0", True, True),
)
LLAMA_CTX, LLAMA_PROMPT, NEW_TOKENS = 512, 64, 32


def _shape_label(shapes: dict[str, Any]) -> str:
    return " ".join(f"{k}={'x'.join(map(str, v))}" for k, v in shapes.items())


def all_cases() -> list[Case]:
    out = [Case(f"bare {rt}", rt, bare=True) for rt in RUNTIMES]
    import real_models as rm

    for model, shapes in _ORT:
        out.append(Case(f"ort {model} {_shape_label(shapes)}", "onnxruntime",
                        {"model": model, "inputs": {k: list(v) for k, v in shapes.items()},
                         "dtypes": dict(rm.BY_NAME[model].dtypes)}))
    for model, prompt in _TORCH:
        out.append(Case(f"torch {model} b1 p{prompt} n{NEW_TOKENS}", "torch",
                        {"model": model, "dtype": "none", "batch": 1, "prompt": prompt, "new": NEW_TOKENS}))
    for qtype, mmap, repack in _LLAMA:
        tag = "mmap" if mmap and repack else ("no-repack" if mmap else "no-mmap")
        out.append(Case(f"llama tiny-{qtype} {tag}", "llama.cpp",
                        {"model": f"tiny-{qtype}", "qtype": qtype, "n_ctx": LLAMA_CTX, "prompt": LLAMA_PROMPT,
                         "new": NEW_TOKENS, "use_mmap": mmap, "repack": repack}))
    return out


# --------------------------------------------------------------------------- model files


def _llama_shape(qtype: str) -> Any:
    from llamacpp_accuracy import Shape

    # TinyLlama-1.1B: hidden 2048, 22 layers, 32 heads over 4 KV heads, ff 5632, vocab 32000.
    return Shape(f"tiny-{qtype}", 22, 2048, 32, 4, 5632, 32000, qtype)


def _llama_model(qtype: str) -> Path:
    """The TinyLlama-shaped GGUF (random weights) in ``qtype``, built once into bench/out/required/."""
    from llamacpp_accuracy import write_model

    WORK.mkdir(parents=True, exist_ok=True)
    path = WORK / f"tiny-{qtype}.gguf"
    if path.exists():
        return path
    tmp = path.with_suffix(".tmp")
    if qtype in ("F16", "Q8_0", "Q4_0"):
        write_model(_llama_shape(qtype), tmp)
    else:  # K-quants: gguf-py cannot write them; llama.cpp's own quantizer, from the F16 file
        src = _llama_model("F16")
        cmd = [sys.executable, __file__, "--quantize", str(src), str(tmp), qtype]
        subprocess.run(cmd, check=True, cwd=ROOT)
    tmp.rename(path)
    return path


def _quantize(src: str, dst: str, qtype: str) -> int:
    import ctypes

    import llama_cpp

    params = llama_cpp.llama_model_quantize_default_params()
    params.ftype = getattr(llama_cpp, f"LLAMA_FTYPE_MOSTLY_{qtype}")
    params.nthread = 1  # one thread: this runs beside measurements (niced)
    rc = llama_cpp.llama_model_quantize(src.encode(), dst.encode(), ctypes.byref(params))
    return int(rc)


def source_files(case: Case) -> tuple[Path, list[Path]]:
    """(the path the child opens, every file it reads) of the case's model, built or fetched."""
    if case.runtime == "onnxruntime":
        import real_models as rm

        path = rm.fetch(rm.BY_NAME[case.spec["model"]])
        return path, [path]
    if case.runtime == "torch":
        import llm_accuracy

        folder = llm_accuracy.build(llm_accuracy.MODELS[case.spec["model"]])
        return folder, sorted(p for p in folder.iterdir() if p.is_file())
    path = _llama_model(case.spec["qtype"])
    return path, [path]


def private_copy(entry: Path, files: list[Path]) -> tuple[Path, list[Path]]:
    """A private, hole-free, fsync'd copy of ``files`` under bench/out/required/private/ (kept for reuse)."""
    base = entry if entry.is_dir() else entry.parent
    dest_dir = PRIVATE / (entry.name if entry.is_dir() else entry.stem)
    out: list[Path] = []
    for src in files:
        dst = dest_dir / src.relative_to(base)
        if not (dst.exists() and dst.stat().st_size == src.stat().st_size
                and dst.stat().st_blocks * 512 >= dst.stat().st_size):
            dst.parent.mkdir(parents=True, exist_ok=True)
            tmp = dst.with_name(dst.name + ".tmp")
            with src.open("rb") as fi, tmp.open("wb") as fo:
                while chunk := fi.read(16 * MIB):
                    fo.write(chunk)  # plain writes: every block allocated, no holes
                fo.flush()
                os.fsync(fo.fileno())
            tmp.replace(dst)
        out.append(dst)
    return (dest_dir if entry.is_dir() else dest_dir / entry.name), out


# The packages whose native libraries a runtime maps (and executes): their page cache is dropped
# before every run too, so the code pages a run touches are read, and charged, in its own group.
_LIB_PACKAGES = {
    "onnxruntime": ("onnxruntime", "numpy"),
    "torch": ("torch", "numpy", "safetensors", "tokenizers"),
    "llama.cpp": ("llama_cpp", "numpy"),
}


def runtime_libs(runtime: str) -> list[Path]:
    """The shared libraries (``*.so*``) of the runtime's packages and their ``<pkg>.libs`` folders."""
    import importlib.util

    out: list[Path] = []
    for pkg in _LIB_PACKAGES[runtime]:
        spec = importlib.util.find_spec(pkg)
        if spec is None or spec.origin is None:
            continue
        top = Path(spec.origin).parent
        for folder in (top, top.parent / f"{pkg}.libs"):
            if folder.is_dir():
                out += sorted(p for p in folder.rglob("*.so*") if p.is_file())
    return out


def cached_bytes(files: list[Path]) -> int | None:
    """How much of ``files`` is in the page cache now (util-linux ``fincore``), or None without it."""
    if not files:
        return 0
    try:
        proc = subprocess.run(["fincore", "--bytes", "--noheadings", "--raw", "--output", "RES",
                               *map(str, files)], capture_output=True, text=True, check=False, timeout=60)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return sum(int(x) for x in proc.stdout.split() if x.isdigit())


def drop_cache(files: list[Path]) -> None:
    for p in files:
        fd = os.open(p, os.O_RDONLY)
        try:
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        finally:
            os.close(fd)


# --------------------------------------------------------------------------- the child


def _digest(parts: list[bytes]) -> str:
    h = hashlib.sha256()
    for p in parts:
        h.update(len(p).to_bytes(8, "little"))
        h.update(p)
    return h.hexdigest()[:20]


def _import_runtime(runtime: str) -> None:
    """What a bare runtime process of ``runtime`` imports (the same imports as the case children)."""
    import numpy  # noqa: F401

    if runtime == "onnxruntime":
        import onnxruntime  # noqa: F401
    elif runtime == "torch":
        import torch  # noqa: F401
        import transformers  # noqa: F401
        from transformers import AutoModelForCausalLM  # noqa: F401
    else:
        import llama_cpp  # noqa: F401


def child_bare(runtime: str) -> dict[str, Any]:
    from proc_memory import vm_status

    _import_runtime(runtime)
    now = vm_status()
    mod = {"onnxruntime": "onnxruntime", "torch": "torch", "llama.cpp": "llama_cpp"}[runtime]
    version = f"{mod} {sys.modules[mod].__version__}"
    return {"peak_bytes": 0, "baseline_rss_bytes": now["VmRSS"], "digest": "bare", "checks": [], "version": version}


def child_ort(path: str, spec: dict[str, Any]) -> dict[str, Any]:
    import numpy as np
    import onnxruntime as ort
    from ort_measure import random_feeds
    from proc_memory import reset_hwm, vm_status

    feeds = random_feeds(spec["inputs"], spec["dtypes"])
    base = vm_status()
    reset_hwm()
    t0 = time.perf_counter()
    sess = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
    outs: list[Any] = []
    for _ in range(2):
        outs = sess.run(None, feeds)
    work_s = time.perf_counter() - t0
    ran = vm_status()
    arrays = [np.ascontiguousarray(o) for o in outs]
    checks = [[float(np.sum(a, dtype=np.float64)), float(np.sum(np.abs(a), dtype=np.float64))]
              if a.dtype.kind in "fiub" else [] for a in arrays]
    return {
        "peak_bytes": ran["VmHWM"] - base["VmRSS"],
        "baseline_rss_bytes": base["VmRSS"],
        "input_bytes": sum(int(a.nbytes) for a in feeds.values()),
        "digest": _digest([a.tobytes() for a in arrays]),
        "checks": checks,
        "work_s": round(work_s, 3),
        "version": f"onnxruntime {ort.__version__}",
    }


def child_torch(folder: str, spec: dict[str, Any]) -> dict[str, Any]:
    import torch
    import transformers
    from proc_memory import reset_hwm, vm_status
    from transformers import AutoModelForCausalLM

    torch.manual_seed(0)  # bench/llm_torch_measure.py's prompt
    vocab = int(json.loads((Path(folder) / "config.json").read_text()).get("vocab_size", 32000))
    batch, prompt, new = int(spec["batch"]), int(spec["prompt"]), int(spec["new"])
    ids = torch.randint(3, vocab, (batch, prompt), dtype=torch.int64)
    mask = torch.ones_like(ids)
    base = vm_status()
    reset_hwm()
    kwargs: dict[str, Any] = {}
    if spec["dtype"] != "none":
        kwargs["dtype"] = spec["dtype"] if spec["dtype"] == "auto" else getattr(torch, spec["dtype"])
    t0 = time.perf_counter()
    model = AutoModelForCausalLM.from_pretrained(folder, **kwargs)
    model.eval()
    load_s = time.perf_counter() - t0
    stamps: list[float] = []

    class Stamps:  # generate() calls put() with the prompt, then once per generated token
        def put(self, _value: Any) -> None:
            stamps.append(time.perf_counter())

        def end(self) -> None:
            pass

    with torch.inference_mode():
        out = model.generate(ids, attention_mask=mask, max_new_tokens=new, min_new_tokens=new, do_sample=False,
                             pad_token_id=0, streamer=Stamps())
    work_s = time.perf_counter() - t0
    ran = vm_status()
    tokens = out[:, prompt:].tolist()
    token_s = [b - a for a, b in itertools.pairwise(stamps[1:])]  # decode steps, prefill excluded
    return {
        "peak_bytes": ran["VmHWM"] - base["VmRSS"],
        "baseline_rss_bytes": base["VmRSS"],
        "digest": _digest([json.dumps(tokens).encode()]),
        "checks": [],
        "tokens": tokens[0][:8],
        "token_s": [round(t, 5) for t in token_s],
        "prefill_s": round(stamps[1] - stamps[0], 3) if len(stamps) > 1 else None,
        "load_s": round(load_s, 3),
        "work_s": round(work_s, 3),
        "version": f"torch {torch.__version__}, transformers {transformers.__version__}",
    }


def child_llama(path: str, spec: dict[str, Any]) -> dict[str, Any]:
    import tempfile

    import llama_cpp
    import numpy as np
    from llama_cpp import _logger
    from llamacpp_measure import _decode, parse_log
    from proc_memory import reset_hwm, vm_status

    _logger.set_verbose(True)
    mp = llama_cpp.llama_model_default_params()
    if hasattr(mp, "use_mmap"):
        mp.use_mmap = bool(spec["use_mmap"])
    if hasattr(mp, "load_mode"):
        mp.load_mode = llama_cpp.LLAMA_LOAD_MODE_MMAP if spec["use_mmap"] else llama_cpp.LLAMA_LOAD_MODE_NONE
    mp.use_extra_bufts = bool(spec["repack"])  # llama.cpp's --no-repack sets this False
    mp.n_gpu_layers = 0
    cp = llama_cpp.llama_context_default_params()
    cp.n_ctx, cp.n_batch, cp.n_ubatch = int(spec["n_ctx"]), 512, 512
    cp.n_threads = cp.n_threads_batch = 2
    log = tempfile.TemporaryFile(mode="w+b")  # noqa: SIM115 - fd 2 points at it until the finally below
    saved = os.dup(2)
    sys.stderr.flush()
    os.dup2(log.fileno(), 2)
    base = vm_status()
    reset_hwm()
    token_s: list[float] = []
    tokens: list[int] = []
    try:
        t0 = time.perf_counter()
        mdl = llama_cpp.llama_model_load_from_file(path.encode(), mp)
        if not mdl:
            raise RuntimeError(f"llama.cpp could not load {path}")
        ctx = llama_cpp.llama_init_from_model(mdl, cp)
        if not ctx:
            raise RuntimeError("llama.cpp could not create the context")
        load_s = time.perf_counter() - t0
        n_vocab = llama_cpp.llama_vocab_n_tokens(llama_cpp.llama_model_get_vocab(mdl))
        prompt = int(spec["prompt"])
        ids = [3 + (i * 7919) % max(1, n_vocab - 3) for i in range(prompt)]  # bench/llamacpp_measure.py's
        t1 = time.perf_counter()
        _decode(llama_cpp, ctx, ids, 1, 512, 0)
        prefill_s = time.perf_counter() - t1
        for k in range(int(spec["new"])):
            t1 = time.perf_counter()
            logits = np.ctypeslib.as_array(llama_cpp.llama_get_logits_ith(ctx, -1), shape=(n_vocab,))
            tok = int(np.argmax(logits))
            tokens.append(tok)
            _decode(llama_cpp, ctx, [tok], 1, 512, prompt + k)
            token_s.append(time.perf_counter() - t1)
        work_s = time.perf_counter() - t0
        ran = vm_status()
    finally:
        sys.stderr.flush()
        os.dup2(saved, 2)
        os.close(saved)
    log.seek(0)
    bufs = parse_log(log.read().decode("utf-8", "replace")).get("buffers", {})
    return {
        "peak_bytes": ran["VmHWM"] - base["VmRSS"],
        "baseline_rss_bytes": base["VmRSS"],
        "run_anon_bytes": ran.get("RssAnon", 0) - base.get("RssAnon", 0),
        "run_file_bytes": ran.get("RssFile", 0) - base.get("RssFile", 0),
        "digest": _digest([json.dumps(tokens).encode()]),
        "checks": [],
        "tokens": tokens[:8],
        "token_s": [round(t, 5) for t in token_s],
        "prefill_s": round(prefill_s, 3),
        "load_s": round(load_s, 3),
        "work_s": round(work_s, 3),
        "buffers": bufs,
        "version": f"llama-cpp-python {llama_cpp.__version__}",
    }


def child_main(arg: str) -> int:
    import resource

    from proc_memory import reply

    job = json.loads(arg)

    def work() -> dict[str, Any]:
        if job.get("bare"):
            out = child_bare(job["runtime"])
        else:
            fn = {"onnxruntime": child_ort, "torch": child_torch, "llama.cpp": child_llama}[job["runtime"]]
            out = fn(job["path"], job["spec"])
        out["majflt"] = resource.getrusage(resource.RUSAGE_SELF).ru_majflt  # pages read back from disk
        return out

    return reply(work)


# --------------------------------------------------------------------------- cgroups


def _own_memory_cgroup() -> tuple[str, Path]:
    """('v1' | 'v2', the memory cgroup folder this process is in), where new groups are made."""
    root = Path("/sys/fs/cgroup")
    ctrl = root / "cgroup.controllers"
    if ctrl.exists() and "memory" in ctrl.read_text().split():
        rel = next(ln.split(":", 2)[2] for ln in Path("/proc/self/cgroup").read_text().splitlines()
                   if ln.startswith("0::"))
        return "v2", root / rel.lstrip("/")
    v1 = root / "memory"
    if not (v1 / "memory.limit_in_bytes").exists():
        raise RuntimeError("no writable memory cgroup controller (v1 /sys/fs/cgroup/memory or v2 memory.max)")
    rel = "/"
    for ln in Path("/proc/self/cgroup").read_text().splitlines():
        _, ctrls, path = ln.split(":", 2)
        if "memory" in ctrls.split(","):
            rel = path
    return "v1", v1 / rel.lstrip("/")


_GROUPS = 0


class MemoryGroup:
    """A memory cgroup made for one run: cap (None = unlimited), the wrapper command, its counters."""

    def __init__(self, cap: int | None) -> None:
        global _GROUPS
        _GROUPS += 1
        self.version, parent = _own_memory_cgroup()
        self.path = parent / f"advreq_{os.getpid()}_{_GROUPS}"
        self.path.mkdir()
        try:
            if self.version == "v1":
                if cap is not None:
                    (self.path / "memory.limit_in_bytes").write_text(str(cap))
                    if (self.path / "memory.memsw.limit_in_bytes").exists():
                        (self.path / "memory.memsw.limit_in_bytes").write_text(str(cap))
            else:
                if (self.path / "memory.swap.max").exists():
                    (self.path / "memory.swap.max").write_text("0")
                if cap is not None:
                    (self.path / "memory.max").write_text(str(cap))
        except OSError:
            self.remove()
            raise

    def wrap(self, cmd: list[str]) -> list[str]:
        """``cmd`` started inside the group: the shell moves itself in, then execs (before any import)."""
        return ["sh", "-c", 'echo $$ > "$0" && exec "$@"', str(self.path / "cgroup.procs"), *cmd]

    def _read(self, name: str) -> str:
        try:
            return (self.path / name).read_text()
        except OSError:
            return ""

    def stats(self) -> dict[str, int]:
        if self.version == "v1":
            peak = int(self._read("memory.max_usage_in_bytes") or 0)
            failcnt = int(self._read("memory.failcnt") or 0)
            events = self._read("memory.oom_control")
        else:
            peak = int(self._read("memory.peak") or 0)
            events = self._read("memory.events")
            failcnt = next((int(ln.split()[1]) for ln in events.splitlines() if ln.startswith("max ")), 0)
        oom = next((int(ln.split()[1]) for ln in events.splitlines() if ln.startswith("oom_kill ")), 0)
        return {"max_usage_bytes": peak, "failcnt": failcnt, "oom_kill": oom}

    def remove(self) -> None:
        for _ in range(50):
            try:
                self.path.rmdir()
                return
            except FileNotFoundError:
                return
            except OSError:
                time.sleep(0.1)
        print(f"warning: could not remove {self.path}", file=sys.stderr)


# --------------------------------------------------------------------------- one run


@dataclass
class Run:
    """One child run under a cap (None = unlimited): what it printed and what the group counted."""

    cap: int | None
    phase: str
    rc: int | None
    wall_s: float
    killed: bool
    stats: dict[str, int]
    reply: dict[str, Any]
    error: str = ""
    outcome: str = ""  # pass | slow | wrong | oom | killed | error

    @property
    def completed(self) -> bool:
        return self.rc == 0 and "error" not in self.reply and bool(self.reply)

    @property
    def token_median(self) -> float | None:
        ts = self.reply.get("token_s") or []
        return statistics.median(ts) if ts else None

    def record(self) -> dict[str, Any]:
        return {"cap": self.cap, "phase": self.phase, "outcome": self.outcome, "rc": self.rc,
                "wall_s": round(self.wall_s, 3), "token_median_s": self.token_median,
                "majflt": self.reply.get("majflt"), **self.stats,
                **({"error": self.error} if self.error else {})}


def run_child(job: dict[str, Any], files: list[Path], cap: int | None, phase: str, timeout: float) -> Run:
    drop_cache(files)
    group = MemoryGroup(cap)
    cmd = group.wrap([sys.executable, __file__, "--child", json.dumps(job)])
    killed = False
    try:
        t0 = time.perf_counter()
        proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                start_new_session=True)
        try:
            out, err = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            killed = True
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)  # the session this Popen started
            out, err = proc.communicate()
        except BaseException:  # interrupted: end the child we started before the group is removed
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
            raise
        wall = time.perf_counter() - t0
        stats = group.stats()
    finally:
        group.remove()
    lines = [ln for ln in (out or "").splitlines() if ln.startswith("{")]
    reply: dict[str, Any] = {}
    with contextlib.suppress(ValueError):
        reply = json.loads(lines[-1]) if lines else {}
    error = str(reply.get("error", ""))
    if not error and proc.returncode != 0:
        tail = (err or "").strip().splitlines()[-2:]
        error = f"exit {proc.returncode}: {' | '.join(tail)}"[:300]
    return Run(cap, phase, proc.returncode, wall, killed, stats, reply, error)


@dataclass
class Reference:
    wall_s: float
    token_s: float | None
    digests: set[str]
    checks: list[Any]

    def judge(self, run: Run, control: Run | None = None) -> str:
        """The outcome of ``run`` against this reference, or the slower of it and an uncapped ``control``
        run made just before (see the module doc, steps 5 and 6)."""
        wall_s, token_s = self.wall_s, self.token_s
        if control is not None:
            wall_s = max(wall_s, control.wall_s)
            if token_s is not None and control.token_median is not None:
                token_s = max(token_s, control.token_median)
        if run.killed:
            return "killed"
        if run.stats.get("oom_kill") or run.rc == -signal.SIGKILL:
            return "oom"
        if not run.completed:
            return "error"
        if run.reply.get("digest") not in self.digests and not _close(run.reply.get("checks"), self.checks):
            return "wrong"
        if run.wall_s > PASS_WALL * wall_s:
            return "slow"
        tm = run.token_median
        if token_s is not None and (tm is None or tm > PASS_TOKEN * token_s):
            return "slow"
        return "pass"


def _close(got: Any, ref: Any) -> bool:
    """Output sums within 1e-4 (only used when the hash differs: a non-deterministic kernel)."""
    if not got or not ref or len(got) != len(ref):
        return False
    return all(len(a) == len(b) and all(math.isclose(x, y, rel_tol=1e-4, abs_tol=1e-6)
                                        for x, y in zip(a, b, strict=True))
               for a, b in zip(got, ref, strict=True))


# --------------------------------------------------------------------------- the searches


def _round(n: float) -> int:
    step = 256 * 1024
    return max(step, round(n / step) * step)


class Search:
    """Runs one case at caps, keeps every run, and bisects the required cap and the completes-at-all floor."""

    def __init__(self, case: Case, job: dict[str, Any], files: list[Path], drop_libs: bool) -> None:
        self.case, self.job, self.files = case, job, files
        self.libs = runtime_libs(case.runtime) if drop_libs else []
        self.runs: list[Run] = []
        self.ref: Reference | None = None
        self.ref_usage = 0

    def run(self, cap: int | None, phase: str, kill: tuple[float, float], control: Run | None = None) -> Run:
        assert self.ref is not None or cap is None
        base_s = 0.0 if self.ref is None else max(self.ref.wall_s, control.wall_s if control else 0.0)
        timeout = 1800.0 if self.ref is None else kill[0] * base_s + kill[1]
        r = run_child(self.job, self.files + self.libs, cap, phase, timeout)
        r.outcome = self.ref.judge(r, control) if self.ref is not None else ("pass" if r.completed else "error")
        self.runs.append(r)
        cap_s = "unlimited" if cap is None else f"{cap / MIB:9.1f} MiB"
        tm = r.token_median
        extra = f" tok {tm * 1000:.1f} ms" if tm else ""
        extra += f" majflt {r.reply['majflt']}" if "majflt" in r.reply else ""
        print(f"    {phase:9} {cap_s:>13}  {r.outcome:7} wall {r.wall_s:6.2f} s{extra} max-usage "
              f"{r.stats.get('max_usage_bytes', 0) / MIB:8.1f} MiB failcnt {r.stats.get('failcnt', 0)}"
              f"{'  ' + r.error[:120] if r.error else ''}", flush=True)
        return r

    def passes(self, cap: int) -> bool:
        r = self.run(cap, "required", KILL_REQUIRED)
        if r.outcome in ("slow", "killed"):
            # Timing is noisy (2 cores shared with other jobs): a failure on time alone gets one more try,
            # judged against an uncapped control run made just before it as well as the reference.
            control = self.run(None, "control", KILL_FLOOR)
            r = self.run(cap, "retry", KILL_REQUIRED, control)
        return r.outcome == "pass"

    def reference(self, n: int = 3) -> list[Run]:
        # A warm-up run outside any group first, so that the runtime's code pages a run touches are
        # cached (and charged to this process's group) before the measured runs; the model's are dropped.
        subprocess.run([sys.executable, __file__, "--child", json.dumps(self.job)], cwd=ROOT, capture_output=True,
                       timeout=1800, check=False)
        refs = [self.run(None, "uncapped", KILL_REQUIRED) for _ in range(n)]
        bad = [r for r in refs if not r.completed]
        if bad:
            raise RuntimeError(f"uncapped run failed: {bad[0].error}")
        medians = [r.token_median for r in refs if r.token_median is not None]
        self.ref_usage = max(r.stats["max_usage_bytes"] for r in refs)
        self.ref = Reference(min(r.wall_s for r in refs), min(medians) if medians else None,
                             {str(r.reply.get("digest")) for r in refs}, refs[0].reply.get("checks") or [])
        return refs

    def required(self, hi: int, lo: int, rel: float, lowest: int) -> tuple[int, int | None]:
        """(smallest passing cap, highest failing cap seen or None), bisected to ``rel``.

        ``hi`` is checked first (raised by 30 % while it fails); ``lo`` is a guess, only tried once the
        bisection above it has found no failure (then lowered to 0.4 x while it passes, down to ``lowest``).
        """
        hi, lo = _round(hi), _round(lo)
        failed: int | None = None
        while not self.passes(hi):
            if self.runs[-1].outcome in ("slow", "killed") and self.ref_usage and hi > self.ref_usage:
                raise RuntimeError(f"too slow at {hi / MIB:.0f} MiB, above the uncapped run's usage: "
                                   "the machine was busier than during the reference runs")
            failed, hi = hi, _round(hi * 1.3)
            if hi > 20 * 1024 * MIB:
                raise RuntimeError("no cap up to 20 GiB passes")
        lo = failed if failed is not None else min(lo, hi)
        while True:
            while (hi - lo) / hi > rel:
                mid = _round((hi + lo) / 2)
                if mid in (hi, lo):
                    break
                if self.passes(mid):
                    hi = mid
                else:
                    lo = failed = mid
            if failed is not None:
                return hi, failed
            if lo <= lowest:
                return hi, None
            if not self.passes(lo):
                return hi, lo
            hi, lo = lo, _round(max(lowest, lo * 0.4))

    def floor(self, required: int, lowest: int) -> tuple[int, int | None, str]:
        """(smallest cap that completed, highest that did not, note): to ``FLOOR_REL``, in at most
        ``FLOOR_STEPS`` runs and about ``max(60 s, 12 x the reference time)`` of searching."""
        assert self.ref is not None
        done = [r.cap for r in self.runs if r.cap is not None and r.outcome in ("pass", "slow")]
        hi = min([required, *done])
        lost = [r.cap for r in self.runs if r.cap is not None and r.cap < hi and r.outcome in ("oom", "error", "wrong")]
        lo: int | None = max(lost) if lost else None
        notes: list[str] = []
        budget, t0 = max(60.0, 12 * self.ref.wall_s), time.perf_counter()
        for _ in range(FLOOR_STEPS):
            if lo is not None and (hi - lo) / hi <= FLOOR_REL:
                break
            if time.perf_counter() - t0 > budget:
                notes.append(f"search stopped after {time.perf_counter() - t0:.0f} s")
                break
            mid = _round((hi + lo) / 2) if lo is not None else _round(max(lowest, hi * 0.6))
            if mid >= hi:
                break
            r = self.run(mid, "floor", KILL_FLOOR)
            if r.outcome in ("pass", "slow"):
                hi = mid
            else:
                lo = mid
                if r.outcome == "killed":
                    notes.append(f"not done within 10x the time at {mid / MIB:.0f} MiB (killed after {r.wall_s:.0f} s)")
        if lo is None:
            notes.append("completed at every cap tried: the floor may be lower")
        return hi, lo, "; ".join(notes)


def measure(case: Case, bare_cap: int | None, drop_libs: bool = False) -> dict[str, Any]:
    """Every figure of ``case`` (see the module doc)."""
    t0 = time.perf_counter()
    rec: dict[str, Any] = {"name": case.name, "runtime": case.runtime, "bare": case.bare, "spec": case.spec,
                           "measured": dt.datetime.now().isoformat(timespec="seconds")}
    if case.bare:
        job: dict[str, Any] = {"runtime": case.runtime, "bare": True}
        files: list[Path] = []
    else:
        entry, src = source_files(case)
        entry, files = private_copy(entry, src)
        job = {"runtime": case.runtime, "path": str(entry), "spec": case.spec}
        rec["file_bytes"] = sum(p.stat().st_size for p in files)
    s = Search(case, job, files, drop_libs)
    drop_cache(files + s.libs)
    rec["drop_libs"] = drop_libs
    rec["cache_left_after_drop_bytes"] = {"model": cached_bytes(files), "libs": cached_bytes(s.libs)}
    try:
        refs = s.reference()
        assert s.ref is not None
        first = refs[0].reply
        rec.update({
            "version": first.get("version", ""),
            "peak_bytes": int(statistics.median(int(r.reply["peak_bytes"]) for r in refs)),
            "peaks_bytes": [int(r.reply["peak_bytes"]) for r in refs],
            "baseline_rss_bytes": int(first.get("baseline_rss_bytes", 0)),
            "cgroup_peak_bytes": max(r.stats["max_usage_bytes"] for r in refs),
            "input_bytes": int(first.get("input_bytes", 0)),
            "ref_wall_s": round(s.ref.wall_s, 3),
            "ref_token_s": s.ref.token_s,
            "digests": sorted(s.ref.digests),
            "tokens": first.get("tokens"),
            "buffers": first.get("buffers"),
            "run_anon_bytes": first.get("run_anon_bytes"),
            "run_file_bytes": first.get("run_file_bytes"),
            "load_s": first.get("load_s"),
            "prefill_s": first.get("prefill_s"),
        })
        usage = rec["cgroup_peak_bytes"]
        lowest = bare_cap or 4 * MIB
        rel = BARE_REL if case.bare else REQUIRED_REL
        req, failed = s.required(usage * 1.02 + 2 * MIB, max(lowest, usage * 0.4), rel, lowest)
        rec["required_cap_bytes"], rec["required_fail_cap_bytes"] = req, failed
        if not case.bare:
            fl, fl_lo, note = s.floor(req, lowest)
            rec["floor_cap_bytes"], rec["floor_fail_cap_bytes"], rec["floor_note"] = fl, fl_lo, note
    except Exception as exc:  # keep what was measured, with the error
        rec["error"] = f"{type(exc).__name__}: {exc}"
    rec["runs"] = [r.record() for r in s.runs]
    rec["secs"] = round(time.perf_counter() - t0, 1)
    return rec


# --------------------------------------------------------------------------- prediction and table


def bench_cpu() -> Any:
    from advisor.hardware.probe import probe

    return probe().cpu


def _has_field(cls: Any, name: str) -> bool:
    return any(f.name == name for f in dataclasses.fields(cls))


def predict(case: Case) -> tuple[Any, Any]:
    """(the estimate, the bench CPU) for ``case``, as its accuracy bench builds profile, workload and hardware."""
    from advisor.estimator import estimate
    from advisor.estimator.types import Workload
    from advisor.hardware.profile import HardwareProfile

    if case.runtime == "onnxruntime":
        from advisor.hardware.probe import probe
        from advisor.readers.onnx_reader import read_onnx

        path, _ = source_files(case)
        hw = probe()  # bench/real_accuracy.py: this machine
        shapes = {k: tuple(v) for k, v in case.spec["inputs"].items()}
        return estimate(read_onnx(path), Workload(input_shapes=shapes), "onnxruntime-cpu", hw), hw.cpu
    if case.runtime == "torch":
        from advisor.readers import read_model

        folder, _ = source_files(case)
        sp = case.spec
        wl = Workload(batch=sp["batch"], seq_len=sp["prompt"], context=sp["prompt"] + sp["new"],
                      weight_dtype=None if sp["dtype"] in ("none", "auto") else sp["dtype"])
        hw = HardwareProfile(name="bench", source="probe", kind="this-machine",  # bench/llm_accuracy.py
                             memory_total_bytes=24 * 1024 * MIB)
        return estimate(read_model(folder), wl, "pytorch-cpu", hw), bench_cpu()
    from llamacpp_accuracy import cpu_here

    from advisor.readers.gguf_reader import read_gguf

    path, _ = source_files(case)
    sp = case.spec
    kw: dict[str, Any] = {}
    for name, default in (("use_mmap", True), ("repack", True)):
        if _has_field(Workload, name):
            kw[name] = sp[name]
        elif sp[name] != default:
            return None, None  # the estimator cannot be told about this setting yet
    wl = Workload(batch=1, context=sp["n_ctx"], seq_len=sp["prompt"], kv_cache_dtype="f16", **kw)
    hw = cpu_here()  # bench/llamacpp_accuracy.py: this CPU's ISA flags decide repacking
    return estimate(read_gguf(path), wl, "llama.cpp", hw), hw.cpu


def prediction(case: Case, rec: dict[str, Any], bare: int | None) -> dict[str, Any]:
    """The prediction and verdict columns of one measured case (``{"na": reason}`` when there are none)."""
    from advisor.estimator.fit import fit
    from advisor.hardware.profile import HardwareProfile

    try:
        est, cpu = predict(case)
    except Exception as exc:
        return {"na": f"{type(exc).__name__}: {exc}"}
    if est is None:
        return {"na": "Workload has no use_mmap/repack field yet"}
    out: dict[str, Any] = {
        "required_bytes": int(getattr(est, "required_bytes", est.peak_bytes)),
        "required_low_bytes": int(getattr(est, "required_low_bytes", est.low_bytes)),
        "required_high_bytes": int(getattr(est, "required_high_bytes", est.high_bytes)),
        "peak_bytes": int(est.peak_bytes), "low_bytes": int(est.low_bytes), "high_bytes": int(est.high_bytes),
        "has_required_field": hasattr(est, "required_bytes"),
    }
    need = required_above_bare(rec, bare)
    if need is not None and need > 0:
        for f in VERDICT_FACTORS:
            cap = int(need * f)
            hw = HardwareProfile(name="bench", source="probe", kind="this-machine", memory_total_bytes=cap,
                                 memory_available_bytes=cap, cpu=cpu)
            out[f"fits@{f:.2f}"] = bool(fit(est, hw).fits)
    return out


def required_above_bare(rec: dict[str, Any], bare: int | None, key: str = "required_cap_bytes") -> int | None:
    cap = rec.get(key)
    if cap is None or bare is None:
        return None
    return int(cap) - int(bare) - int(rec.get("input_bytes") or 0)


def _m(n: float | None, width: int = 8) -> str:
    return f"{'-':>{width}}" if n is None else f"{n / MIB:{width}.1f}"


def table(data: dict[str, Any], cases: list[Case]) -> str:
    """The printed table and summary of every measured case in ``data`` (predictions recomputed)."""
    recs = data["cases"]
    bare = {rt: recs.get(f"bare {rt}", {}).get("required_cap_bytes") for rt in RUNTIMES}
    lines = [f"{'case':44} {'peak':>8} {'required':>8} {'floor':>8}  {'req/pk':>5} {'predict':>8} {'err%':>6} "
             f"{'fit+15%':>7} {'fit-15%':>7} {'cgroup':>8} {'time':>6}  (MiB; above a bare runtime)"]
    errs: list[float] = []
    ratios: dict[str, list[float]] = {}
    right = dict.fromkeys(VERDICT_FACTORS, 0)
    judged = dict.fromkeys(VERDICT_FACTORS, 0)
    n = 0
    notes: list[str] = []
    for rt in RUNTIMES:
        b = recs.get(f"bare {rt}")
        if b and b.get("required_cap_bytes"):
            lines.append(f"{'bare ' + rt:44} {'':8} {_m(b['required_cap_bytes'])} {'':8} {'':6} {'':8} {'':6} "
                         f"{'':7} {'':7} {_m(b.get('cgroup_peak_bytes'))} {b.get('secs', 0):5.0f}s  "
                         f"(the cap a bare {rt} process needs: subtracted below)")
    for case in cases:
        rec = recs.get(case.name)
        if case.bare or not rec:
            continue
        if "required_cap_bytes" not in rec:
            lines.append(f"{case.name:44} ERROR {rec.get('error', 'not measured')}")
            continue
        n += 1
        b = bare.get(case.runtime)
        req = required_above_bare(rec, b)
        floor = required_above_bare(rec, b, "floor_cap_bytes")
        peak = rec.get("peak_bytes")
        cg = None if b is None else rec["cgroup_peak_bytes"] - b - int(rec.get("input_bytes") or 0)
        pred = prediction(case, rec, b)
        rec["prediction"] = pred
        ratio = req / peak if req is not None and peak else None
        if ratio is not None:
            ratios.setdefault(case.runtime, []).append(ratio)
        if "na" in pred or req is None:
            p_s, e_s, v = f"{'n/a':>8}", f"{'':>6}", dict.fromkeys(VERDICT_FACTORS)
            if "na" in pred:
                notes.append(f"{case.name}: no prediction ({pred['na']})")
        else:
            err = (pred["required_bytes"] - req) / req
            errs.append(abs(err))
            p_s, e_s = _m(pred["required_bytes"]), f"{err * 100:+6.1f}"
            v = {f: pred.get(f"fits@{f:.2f}") for f in VERDICT_FACTORS}
            for f in VERDICT_FACTORS:
                if v[f] is not None:
                    judged[f] += 1
                    right[f] += v[f] == (f > 1)
        fl = _m(floor) + ("*" if rec.get("floor_note") else " ")
        rs = "-" if ratio is None else f"{ratio:.2f}"
        lines.append(f"{case.name:44} {_m(peak)} {_m(req)} {fl}{rs:>6} "
                     f"{p_s} {e_s} {_yn(v[1.15]):>7} {_yn(v[0.85]):>7} {_m(cg)} {rec.get('secs', 0):5.0f}s")
        if rec.get("floor_note"):
            notes.append(f"{case.name}: floor* {rec['floor_note']}")
    lines.append("")
    lines.append(f"{n} cases; verdict right at +15 %: {right[1.15]}/{judged[1.15]} (fits), "
                 f"at -15 %: {right[0.85]}/{judged[0.85]} (does not fit)")
    if errs:
        lines.append(f"required-memory prediction |error|: median {statistics.median(errs) * 100:.1f} %, "
                     f"max {max(errs) * 100:.1f} % ({len(errs)} cases)")
    for rt, rs in ratios.items():
        lines.append(f"required / peak, {rt}: median {statistics.median(rs):.2f} (min {min(rs):.2f}, "
                     f"max {max(rs):.2f}, {len(rs)} cases)")
    if notes:
        lines += ["", *notes]
    return "\n".join(lines)


def _yn(v: bool | None) -> str:
    return "-" if v is None else ("fits" if v else "no")


# --------------------------------------------------------------------------- files and main


def load() -> dict[str, Any]:
    if RESULTS_JSON.exists():
        data: dict[str, Any] = json.loads(RESULTS_JSON.read_text())
        return data
    return {"about": "", "cases": {}}


def save(data: dict[str, Any]) -> None:
    RESULTS_JSON.parent.mkdir(parents=True, exist_ok=True)
    tmp = RESULTS_JSON.with_suffix(".tmp")
    tmp.write_text(json.dumps(data, indent=1) + "\n")
    tmp.replace(RESULTS_JSON)


def _version(rec: dict[str, Any]) -> str:
    v = str(rec["version"])
    return v if v[:1].isalpha() else f"{rec['runtime']} {v}"


def about(data: dict[str, Any]) -> str:
    cpu = "unknown"
    with contextlib.suppress(OSError):
        cpu = next((ln.split(":", 1)[1].strip() for ln in Path("/proc/cpuinfo").read_text().splitlines()
                    if ln.startswith("model name")), cpu)
    versions = sorted({_version(r) for r in data["cases"].values() if r.get("version") and not r.get("bare")})
    try:
        cg = _own_memory_cgroup()[0]
    except RuntimeError:
        cg = "?"
    return (f"# python bench/required.py  ({cpu}, {os.cpu_count()} cores, "
            f"{os.sysconf('SC_PAGE_SIZE') * os.sysconf('SC_PHYS_PAGES') / 2**30:.0f} GiB, no swap, "
            f"{platform.system()} {platform.release()}, cgroup {cg}, Python {platform.python_version()}; "
            f"{'; '.join(versions)}; written {dt.date.today().isoformat()})\n"
            "# required = smallest memory-cgroup cap (memory+swap) under which a fresh child process completes "
            "with the uncapped output, wall time <= 1.5x the uncapped (fastest of 3) and, for LLMs, median "
            "per-token time <= 1.25x; bisected to 2 %, a time-only failure retried once; model files are "
            "private hole-free copies, page cache dropped (fadvise DONTNEED) before every run.\n"
            "# floor = smallest cap where it completes at all (within 10x the time; bisected to 5 %, <= 5 runs; "
            "* = see note). Every figure is above a bare runtime: the required cap of a child that only imports "
            "the runtime (rows 'bare ...') is subtracted, and for onnxruntime also the input arrays; peak = "
            "VmHWM - baseline of the uncapped runs (median of 3); cgroup = the uncapped group's max usage "
            "(page cache included) less the same.\n"
            "# predict = estimate().required_bytes (peak_bytes before that field); fit+/-15% = "
            "fit(est, live machine with 1.15x / 0.85x the measured required available).fits; right = fits / no.")


def _terminate(_sig: int, _frame: Any) -> None:
    raise SystemExit(143)  # run the finally blocks: the running child is killed, its group removed


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--only", action="append", help="cases whose name contains this (repeatable)")
    ap.add_argument("--force", action="store_true", help="re-measure cases already in the json")
    ap.add_argument("--predict-only", action="store_true", help="recompute predictions and verdicts, no measuring")
    ap.add_argument("--list", action="store_true", help="print the case names")
    ap.add_argument("--drop-libs", action="store_true",
                    help="also drop the page cache of the runtime's shared libraries before every run (their code "
                         "pages are then charged to the run; noisier, and the bare subtraction over-subtracts)")
    ap.add_argument("--child", help=argparse.SUPPRESS)
    ap.add_argument("--quantize", nargs=3, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    signal.signal(signal.SIGTERM, _terminate)
    if args.child:
        return child_main(args.child)
    if args.quantize:
        return _quantize(*args.quantize)
    cases = all_cases()
    if args.list:
        print("\n".join(c.name for c in cases))
        return 0
    sys.path.insert(0, str(ROOT))
    data = load()
    if not args.predict_only:
        chosen = [c for c in cases if not args.only or any(o in c.name for o in args.only)]
        for case in chosen:
            old = data["cases"].get(case.name)
            if old and "error" not in old and not args.force:
                continue
            bare = None if case.bare else data["cases"].get(f"bare {case.runtime}", {}).get("required_cap_bytes")
            if not case.bare and bare is None:
                print(f"{case.name}: skipped, 'bare {case.runtime}' is not measured yet (run --only 'bare')")
                continue
            print(f"{case.name}", flush=True)
            rec = measure(case, bare, args.drop_libs)
            data["cases"][case.name] = rec
            save(data)
            print(f"  -> required cap {_m(rec.get('required_cap_bytes'))} MiB, floor cap "
                  f"{_m(rec.get('floor_cap_bytes'))} MiB, peak {_m(rec.get('peak_bytes'))} MiB, {rec['secs']:.0f} s"
                  f"{'  ERROR ' + rec['error'] if 'error' in rec else ''}", flush=True)
    data["about"] = about(data)
    text = data["about"] + "\n\n" + table(data, cases) + "\n"
    save(data)
    RESULTS_TXT.write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
