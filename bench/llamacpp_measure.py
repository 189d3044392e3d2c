"""Measure the real peak memory of one llama.cpp run (llama-cpp-python), in THIS (fresh) process.

Run as a child process, one per measurement, so nothing from an earlier model stays resident:

    python bench/llamacpp_measure.py MODEL.gguf '{"n_ctx": 2048, "prompt": 2048, "flash_attn": true}'

Options (JSON): ``n_ctx``, ``prompt`` (tokens evaluated), ``n_batch``/``n_ubatch`` (512),
``flash_attn`` (true/false), ``use_mmap`` (true), ``type_k``/``type_v`` (``f16``/``q8_0``/...),
``n_seq_max`` (1), ``n_threads`` (2).

Method (Linux):

1. ``import llama_cpp`` (the shared library and its CPU backend are loaded; no model).
2. **Baseline** = ``VmRSS`` now. Then ``echo 5 > /proc/self/clear_refs`` resets the kernel's
   high-water mark ``VmHWM`` to the current RSS (Linux >= 4.0, proc(5)).
3. ``llama_model_load_from_file`` (``load_mode`` mmap or none, no GPU layers) and
   ``llama_init_from_model`` (``n_ctx``, ``n_batch``, ``n_ubatch``, ``n_seq_max``, threads,
   ``flash_attn_type`` on/off/auto, ``type_k``/``type_v``) through the binding's C API, with
   llama.cpp's log on (the model, the KV cache and the compute-buffer reserve are created).
4. ``llama_decode`` the ``prompt`` token ids in each sequence, ``n_batch`` at a time (llama.cpp
   splits them into ``n_ubatch`` ubatches; only the last token asks for logits), then 2
   single-token decodes per sequence (generation).
5. Print one JSON line: ``peak_bytes = VmHWM − baseline`` and the parts, plus the buffer sizes
   llama.cpp logged on stderr (captured through fd 2 into a temp file).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
import tempfile
from pathlib import Path
from typing import Any

from proc_memory import reply, reset_hwm, vm_status

from advisor.measure.child import decode as _decode  # `advisor measure` runs the same decode

# What llama.cpp logs about its buffers (llama-model.cpp load_tensors, llama-kv-cache.cpp,
# llama-context.cpp). "CPU_Mapped model buffer size =   123.45 MiB" and the like.
_BUF_RE = re.compile(r"(?P<what>[\w ]*?)\s*(?P<kind>model|KV|compute|output|RS) buffer size\s*=\s*(?P<mib>[\d.]+) MiB")
_KV_LINE = re.compile(r"size =\s*([\d.]+) MiB \(\s*(\d+) cells,\s*(\d+) layers")
_MIB = 1024 * 1024




def parse_log(text: str) -> dict[str, Any]:
    """Buffer sizes (bytes) llama.cpp logged, keyed like ``CPU_Mapped model``, ``CPU compute``."""
    bufs: dict[str, int] = {}
    for m in _BUF_RE.finditer(text):
        key = f"{m.group('what').strip().split(':')[-1].strip()} {m.group('kind')}".strip()
        bufs[key] = bufs.get(key, 0) + round(float(m.group("mib")) * _MIB)
    out: dict[str, Any] = {"buffers": bufs}
    kv = _KV_LINE.search(text)
    if kv:
        out["kv_cells"] = int(kv.group(2))
        out["kv_layers"] = int(kv.group(3))
    fa = re.search(r"flash_attn\s*=\s*(\w+)", text)
    if fa:
        out["flash_attn_log"] = fa.group(1)
    return out


def measure(model: str, opts: dict[str, Any]) -> dict[str, Any]:
    import llama_cpp
    from llama_cpp import _logger

    _logger.set_verbose(True)
    n_ctx = int(opts.get("n_ctx", 2048))
    n_seq = int(opts.get("n_seq_max", 1))
    prompt = int(opts.get("prompt", n_ctx // n_seq))
    n_batch = int(opts.get("n_batch", 512))
    kv_types = {"f16": llama_cpp.GGML_TYPE_F16, "f32": llama_cpp.GGML_TYPE_F32,
                "q8_0": llama_cpp.GGML_TYPE_Q8_0, "q4_0": llama_cpp.GGML_TYPE_Q4_0}
    fa = {True: llama_cpp.LLAMA_FLASH_ATTN_TYPE_ENABLED, False: llama_cpp.LLAMA_FLASH_ATTN_TYPE_DISABLED,
          None: llama_cpp.LLAMA_FLASH_ATTN_TYPE_AUTO}[opts.get("flash_attn")]
    mp = llama_cpp.llama_model_default_params()
    mp.load_mode = llama_cpp.LLAMA_LOAD_MODE_MMAP if opts.get("use_mmap", True) else llama_cpp.LLAMA_LOAD_MODE_NONE
    mp.n_gpu_layers = 0
    cp = llama_cpp.llama_context_default_params()
    cp.n_ctx, cp.n_batch, cp.n_ubatch = n_ctx, n_batch, int(opts.get("n_ubatch", 512))
    cp.n_seq_max = n_seq
    cp.n_threads = cp.n_threads_batch = int(opts.get("n_threads", 2))
    cp.flash_attn_type = fa
    cp.type_k = kv_types[opts.get("type_k", "f16")]
    cp.type_v = kv_types[opts.get("type_v", "f16")]
    # llama.cpp logs to fd 2 (through the binding's logger); send it to a file to parse.
    log = tempfile.TemporaryFile(mode="w+b")  # noqa: SIM115 - fd 2 points at it until the finally below
    saved = os.dup(2)
    sys.stderr.flush()
    os.dup2(log.fileno(), 2)
    base = vm_status()
    reset_hwm()
    after_reset = vm_status()
    try:
        mdl = llama_cpp.llama_model_load_from_file(model.encode(), mp)
        if not mdl:
            raise RuntimeError(f"llama.cpp could not load {model}")
        loaded_model = vm_status()
        ctx = llama_cpp.llama_init_from_model(mdl, cp)
        if not ctx:
            raise RuntimeError("llama.cpp could not create the context")
        loaded = vm_status()
        n_vocab = llama_cpp.llama_vocab_n_tokens(llama_cpp.llama_model_get_vocab(mdl))
        tokens = [3 + (i * 7919) % max(1, n_vocab - 3) for i in range(prompt)]
        _decode(llama_cpp, ctx, tokens, n_seq, n_batch, 0)
        prefilled = vm_status()
        for k in range(2):  # two generated tokens per sequence
            _decode(llama_cpp, ctx, tokens[k:k + 1], n_seq, n_batch, prompt + k)
        ran = vm_status()
    finally:
        sys.stderr.flush()
        os.dup2(saved, 2)
        os.close(saved)
    log.seek(0)
    text = log.read().decode("utf-8", "replace")
    if opts.get("dump_log"):
        Path(str(opts["dump_log"])).write_text(text)
    return {
        "baseline_rss_bytes": base["VmRSS"],
        "hwm_reset_ok": after_reset["VmHWM"] <= base["VmRSS"] + 4 * _MIB,
        "model_peak_bytes": loaded_model["VmHWM"] - base["VmRSS"],
        "model_rss_bytes": loaded_model["VmRSS"] - base["VmRSS"],
        "load_peak_bytes": loaded["VmHWM"] - base["VmRSS"],
        "load_rss_bytes": loaded["VmRSS"] - base["VmRSS"],
        "prefill_peak_bytes": prefilled["VmHWM"] - base["VmRSS"],
        "run_rss_bytes": ran["VmRSS"] - base["VmRSS"],
        "run_anon_bytes": ran.get("RssAnon", 0) - base.get("RssAnon", 0),
        "run_file_bytes": ran.get("RssFile", 0) - base.get("RssFile", 0),
        "peak_bytes": ran["VmHWM"] - base["VmRSS"],
        "llama_cpp_python": llama_cpp.__version__,
        **parse_log(text),
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("model")
    ap.add_argument("options", nargs="?", default="{}", help="JSON options (see the module doc)")
    args = ap.parse_args(argv)
    return reply(lambda: measure(args.model, json.loads(args.options)))


if __name__ == "__main__":
    raise SystemExit(main())
