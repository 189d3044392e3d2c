"""The measuring child: runs one model once, in a fresh process, and reports its memory.

    python -m advisor.measure.child SPEC.json

The parent (:mod:`advisor.measure`) writes the spec, starts this process under a memory cap,
samples its resident set from outside while it runs, and reads the one JSON line it prints last.
Nothing here imports Qt or the rest of the app: the process holds only the runtime, numpy and
the inputs, so what it adds to its own resident set is the run's.

Method (Linux; the same as ``bench/ort_measure.py`` and ``bench/llamacpp_measure.py``):

1. Import the runtime and build the inputs (random values of the model's dtypes; an LLM prompt
   of the workload's length).
2. **Baseline** = ``VmRSS``; then ``echo 5 > /proc/self/clear_refs`` resets the kernel's
   high-water mark ``VmHWM`` to it (Linux >= 4.0, proc(5)).
3. Load the model and run it as the workload says (two runs for onnxruntime: the first sizes
   the arena, the second uses the memory pattern; for llama.cpp the prompt, then two tokens).
4. Print ``{"peak_bytes": VmHWM - baseline, ...}`` on one line, or ``{"error": "..."}``.

Each phase is announced on stdout as ``{"phase": "..."}`` so the parent can mark the plot.
"""

from __future__ import annotations

import json
import os
import re
import sys
from pathlib import Path
from typing import Any

_STATUS_RE = re.compile(r"^(Vm\w+|Rss\w+):\s+(\d+) kB", re.MULTILINE)


def vm_status() -> dict[str, int]:
    """``VmRSS``/``VmHWM``/``RssAnon``/``RssFile`` of this process in bytes (/proc/self/status)."""
    text = Path("/proc/self/status").read_text(encoding="ascii")
    return {k: int(v) * 1024 for k, v in _STATUS_RE.findall(text)}


def reset_hwm() -> bool:
    """Reset VmHWM to the current RSS; False where the kernel does not allow it."""
    try:
        Path("/proc/self/clear_refs").write_text("5", encoding="ascii")
    except OSError:
        return False
    return True


def _say(doc: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(doc) + "\n")
    sys.stdout.flush()


def random_feeds(shapes: dict[str, Any], dtypes: dict[str, str]) -> dict[str, Any]:
    """The inputs every onnxruntime measurement uses (here and in bench/): seeded random normal
    floats, ones for bools, 0/1 for integers (valid token ids and indices)."""
    import numpy as np

    rng = np.random.default_rng(0)
    feeds: dict[str, Any] = {}
    for name, shape in shapes.items():
        dt = np.dtype(dtypes.get(name, "float32"))
        if dt.kind == "f":
            feeds[name] = rng.standard_normal(list(shape)).astype(dt)
        elif dt.kind == "b":
            feeds[name] = np.ones(list(shape), dtype=dt)
        else:
            feeds[name] = rng.integers(0, 2, size=list(shape)).astype(dt)
    return feeds


def _result(base: dict[str, int], end: dict[str, int], reset_ok: bool, **extra: Any) -> dict[str, Any]:
    return {
        "peak_bytes": end["VmHWM"] - base["VmRSS"],
        "end_rss_bytes": end["VmRSS"] - base["VmRSS"],
        "end_anon_bytes": end.get("RssAnon", 0) - base.get("RssAnon", 0),
        "end_file_bytes": end.get("RssFile", 0) - base.get("RssFile", 0),
        "baseline_rss_bytes": base["VmRSS"],
        "hwm_reset_ok": reset_ok,
        **extra,
    }


def run_onnxruntime(spec: dict[str, Any]) -> dict[str, Any]:
    import onnxruntime as ort

    inputs = spec["inputs"]
    feeds = random_feeds({k: v["shape"] for k, v in inputs.items()},
                         {k: v.get("dtype", "float32") for k, v in inputs.items()})
    providers = ["CUDAExecutionProvider", "CPUExecutionProvider"] if spec.get("cuda") else ["CPUExecutionProvider"]
    if spec.get("cuda") and "CUDAExecutionProvider" not in ort.get_available_providers():
        raise RuntimeError("this onnxruntime has no CUDA provider (pip install onnxruntime-gpu)")
    base = vm_status()
    ok = reset_hwm()
    _say({"phase": "load", "baseline_rss_bytes": base["VmRSS"]})
    sess = ort.InferenceSession(spec["model"], providers=providers)
    loaded = vm_status()
    _say({"phase": "run"})
    for _ in range(max(1, int(spec.get("runs", 2)))):
        outs = sess.run(None, feeds)
        del outs
    return _result(base, vm_status(), ok, load_peak_bytes=loaded["VmHWM"] - base["VmRSS"],
                   runtime_version=f"onnxruntime {ort.__version__}")


def decode(llama_cpp: Any, ctx: Any, tokens: list[int], n_seq: int, n_batch: int, start: int) -> None:
    """Decode ``tokens`` at positions ``start``... in each of ``n_seq`` sequences, ``n_batch`` at a
    time; only each sequence's last token asks for logits (as llama-server does). bench/ uses it too."""
    per = max(1, n_batch // n_seq)
    batch = llama_cpp.llama_batch_init(n_batch, 0, n_seq)
    try:
        for i in range(0, len(tokens), per):
            chunk = tokens[i:i + per]
            n = 0
            for s in range(n_seq):
                for j, tok in enumerate(chunk):
                    batch.token[n] = tok
                    batch.pos[n] = start + i + j
                    batch.n_seq_id[n] = 1
                    batch.seq_id[n][0] = s
                    batch.logits[n] = i + j == len(tokens) - 1
                    n += 1
            batch.n_tokens = n
            rc = llama_cpp.llama_decode(ctx, batch)
            if rc != 0:
                raise RuntimeError(f"llama_decode returned {rc} (out of KV cache cells?)")
    finally:
        llama_cpp.llama_batch_free(batch)


def run_llamacpp(spec: dict[str, Any]) -> dict[str, Any]:
    import llama_cpp

    n_ctx, n_seq = int(spec["n_ctx"]), int(spec.get("n_seq", 1))
    prompt, n_batch = int(spec["prompt"]), int(spec.get("n_batch", 512))
    kv = {"f16": llama_cpp.GGML_TYPE_F16, "f32": llama_cpp.GGML_TYPE_F32,
          "q8_0": llama_cpp.GGML_TYPE_Q8_0, "q4_0": llama_cpp.GGML_TYPE_Q4_0}
    bf16 = getattr(llama_cpp, "GGML_TYPE_BF16", None)  # not in every llama-cpp-python
    if bf16 is not None:
        kv["bf16"] = bf16
    if spec.get("kv", "f16") not in kv:
        raise RuntimeError(f"this llama-cpp-python has no KV-cache type {spec['kv']}")
    mp = llama_cpp.llama_model_default_params()
    mp.n_gpu_layers = int(spec.get("gpu_layers", 0))
    if hasattr(mp, "load_mode"):
        mp.load_mode = llama_cpp.LLAMA_LOAD_MODE_MMAP if spec.get("use_mmap", True) else llama_cpp.LLAMA_LOAD_MODE_NONE
    else:
        mp.use_mmap = bool(spec.get("use_mmap", True))
    mp.use_mlock = bool(spec.get("mlock", False))
    cp = llama_cpp.llama_context_default_params()
    cp.n_ctx, cp.n_batch, cp.n_ubatch, cp.n_seq_max = n_ctx, n_batch, int(spec.get("n_ubatch", 512)), n_seq
    cp.n_threads = cp.n_threads_batch = int(spec.get("threads", os.cpu_count() or 1))
    cp.type_k = cp.type_v = kv[spec.get("kv", "f16")]
    base = vm_status()
    ok = reset_hwm()
    _say({"phase": "load", "baseline_rss_bytes": base["VmRSS"]})
    mdl = llama_cpp.llama_model_load_from_file(spec["model"].encode(), mp)
    if not mdl:
        raise RuntimeError("llama.cpp could not load the model")
    ctx = llama_cpp.llama_init_from_model(mdl, cp)
    if not ctx:
        raise RuntimeError("llama.cpp could not create the context")
    loaded = vm_status()
    _say({"phase": "run"})
    n_vocab = llama_cpp.llama_vocab_n_tokens(llama_cpp.llama_model_get_vocab(mdl))
    tokens = [3 + (i * 7919) % max(1, n_vocab - 3) for i in range(prompt)]
    decode(llama_cpp, ctx, tokens, n_seq, n_batch, 0)
    for k in range(2):  # two generated tokens per sequence
        decode(llama_cpp, ctx, tokens[k:k + 1], n_seq, n_batch, prompt + k)
    return _result(base, vm_status(), ok, load_peak_bytes=loaded["VmHWM"] - base["VmRSS"],
                   runtime_version=f"llama-cpp-python {llama_cpp.__version__}")


def run_transformers(spec: dict[str, Any]) -> dict[str, Any]:
    """Hugging Face ``generate()`` on the CPU (bench/llm_torch_measure.py's method): ``batch`` rows of
    ``prompt`` random token ids, greedy, exactly ``new`` new tokens, weights as ``dtype="auto"``."""
    import torch
    import transformers
    from transformers import AutoModelForCausalLM

    torch.manual_seed(0)
    ids = torch.randint(3, max(4, int(spec["vocab"])), (int(spec["batch"]), int(spec["prompt"])), dtype=torch.int64)
    mask = torch.ones_like(ids)
    base = vm_status()
    ok = reset_hwm()
    _say({"phase": "load", "baseline_rss_bytes": base["VmRSS"]})
    model: Any
    try:
        model = AutoModelForCausalLM.from_pretrained(spec["model"], dtype="auto")
    except TypeError:  # transformers 4.x names it torch_dtype
        model = AutoModelForCausalLM.from_pretrained(spec["model"], torch_dtype="auto")
    model.eval()
    loaded = vm_status()
    _say({"phase": "run"})
    new = int(spec["new"])
    with torch.inference_mode():
        model.generate(ids, attention_mask=mask, max_new_tokens=new, min_new_tokens=new, do_sample=False,
                       pad_token_id=0)
    return _result(base, vm_status(), ok, load_peak_bytes=loaded["VmHWM"] - base["VmRSS"],
                   runtime_version=f"torch {torch.__version__}, transformers {transformers.__version__}")


def run_bare(spec: dict[str, Any]) -> dict[str, Any]:
    """Import the runtime and numpy and stop: what an idle child costs (the required search's zero)."""
    import importlib

    import numpy  # noqa: F401 - the inputs' library, imported by every real run

    for module in {"onnxruntime": ("onnxruntime",), "llama.cpp": ("llama_cpp",),
                   "transformers": ("torch", "transformers")}[spec["import"]]:
        importlib.import_module(module)
    base = vm_status()
    _say({"phase": "load", "baseline_rss_bytes": base["VmRSS"]})
    return _result(base, vm_status(), reset_hwm())


RUNNERS = {"onnxruntime": run_onnxruntime, "llama.cpp": run_llamacpp, "transformers": run_transformers,
           "bare": run_bare}


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    try:
        spec = json.loads(Path(args[0]).read_text(encoding="utf-8"))
        result = RUNNERS[spec["engine"]](spec)
    except MemoryError:
        _say({"error": "out of memory (the measurement's memory cap was reached)", "oom": True})
        return 1
    except Exception as exc:  # the parent turns this into a one-line message
        text = f"{type(exc).__name__}: {exc}"
        oom = any(s in text.lower() for s in ("bad_alloc", "bad allocation", "out of memory", "failed to allocate"))
        _say({"error": text.splitlines()[0][:500] if text else type(exc).__name__, "oom": oom})
        return 1
    _say(result)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
