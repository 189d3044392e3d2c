"""Measure the real peak memory of Hugging Face ``generate()`` on PyTorch CPU, in THIS (fresh) process.

Run as a child process, one per measurement, so nothing from an earlier model stays resident:

    python bench/llm_torch_measure.py FOLDER --batch 4 --prompt 512 --new 8 [--dtype bfloat16|float32|auto|none]

Method (Linux, glibc):

1. ``import torch, transformers``; build the prompt: ``batch`` rows of ``prompt`` token ids
   drawn uniformly from the whole vocabulary (int64; spread like real text's ids, so an
   untied embedding's rows are touched all over the table) and an all-ones attention mask
   (``--pad K`` left-pads every other row by K tokens: zeros in the mask, as a tokenizer's left
   padding does).
2. **Baseline** = ``VmRSS`` now (a bare runtime that has imported torch + transformers but not
   loaded the model; the prompt is already held). Then ``echo 5 > /proc/self/clear_refs`` resets
   the kernel's high-water mark ``VmHWM`` to the current RSS (Linux >= 4.0, proc(5)).
3. ``AutoModelForCausalLM.from_pretrained(FOLDER, dtype=...)`` (``--dtype none`` passes nothing:
   the installed transformers' default; ``dtype`` is the v5 name of ``torch_dtype``), SDPA
   attention (the default), ``model.eval()``; record ``VmHWM`` (load peak) and ``VmRSS``, then
   reset ``VmHWM`` again so the run's own peak is seen apart from the load's.
4. ``model.generate(ids, attention_mask=mask, max_new_tokens=N, min_new_tokens=N,
   do_sample=False)`` under ``torch.inference_mode()``. A forward hook records ``VmHWM`` after
   the first forward call (the prefill) and the RSS at every step.
5. Print one JSON line: ``peak_bytes = max(load VmHWM, run VmHWM) - baseline`` and the phases.

``--variant`` runs the same measurement with one mechanism switched, to find where memory goes:
``eager`` (eager attention), ``math`` (SDPA math kernel only), ``keep_all`` (``logits_to_keep=0``:
logits for every prompt token), ``static`` (``cache_implementation="static"``), ``mmap_off``
(``disable_mmap=True``).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

from proc_memory import reply, reset_hwm, vm_status

VARIANTS = ("", "eager", "math", "keep_all", "static", "mmap_off")




def measure(folder: str, *, dtype: str, batch: int, prompt: int, new: int, pad: int,
            variant: str) -> dict[str, Any]:
    import torch
    import transformers
    from transformers import AutoModelForCausalLM

    torch.manual_seed(0)
    vocab = int(json.loads((Path(folder) / "config.json").read_text()).get("vocab_size", 32000))
    ids = torch.randint(3, vocab, (batch, prompt), dtype=torch.int64)
    mask = torch.ones_like(ids)
    if pad:
        mask[1::2, :pad] = 0
    base = vm_status()
    reset_hwm()
    after_reset = vm_status()
    kwargs: dict[str, Any] = {}
    if dtype != "none":
        kwargs["dtype"] = dtype if dtype == "auto" else getattr(torch, dtype)
    if variant == "eager":
        kwargs["attn_implementation"] = "eager"
    if variant == "mmap_off":
        kwargs["disable_mmap"] = True
    t0 = time.perf_counter()
    model = AutoModelForCausalLM.from_pretrained(folder, **kwargs)
    model.eval()
    load_s = time.perf_counter() - t0
    loaded = vm_status()
    reset_hwm()  # the run's own peak, apart from the load's
    steps: list[dict[str, int]] = []

    def hook(*_: Any) -> None:
        steps.append(vm_status())

    model.register_forward_hook(hook)
    gen: dict[str, Any] = {"max_new_tokens": new, "min_new_tokens": new, "do_sample": False,
                           "pad_token_id": 0}
    if variant == "keep_all":
        gen["logits_to_keep"] = 0
    if variant == "static":
        gen["cache_implementation"] = "static"
    t0 = time.perf_counter()
    with torch.inference_mode():
        if variant == "math":
            from torch.nn.attention import SDPBackend, sdpa_kernel

            with sdpa_kernel(SDPBackend.MATH):
                out = model.generate(ids, attention_mask=mask, **gen)
        else:
            out = model.generate(ids, attention_mask=mask, **gen)
    gen_s = time.perf_counter() - t0
    ran = vm_status()
    b0 = base["VmRSS"]
    return {
        "baseline_rss_bytes": b0,
        "hwm_reset_ok": after_reset["VmHWM"] <= b0 + 4 * 1024 * 1024,
        "load_peak_bytes": loaded["VmHWM"] - b0,
        "load_rss_bytes": loaded["VmRSS"] - b0,
        "prefill_peak_bytes": (steps[0]["VmHWM"] - b0) if steps else None,
        "prefill_rss_bytes": (steps[0]["VmRSS"] - b0) if steps else None,
        "step_rss_bytes": [s["VmRSS"] - b0 for s in steps],
        "run_rss_bytes": ran["VmRSS"] - b0,
        "run_peak_bytes": ran["VmHWM"] - b0,
        "peak_bytes": max(loaded["VmHWM"], ran["VmHWM"]) - b0,
        "weight_dtype": str(next(model.parameters()).dtype).removeprefix("torch."),
        "attn": str(model.config._attn_implementation),
        "new_tokens": int(out.shape[1] - prompt),
        "load_s": round(load_s, 2),
        "generate_s": round(gen_s, 2),
        "torch_version": torch.__version__,
        "transformers_version": transformers.__version__,
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("folder")
    ap.add_argument("--dtype", default="none", help="float32, bfloat16, float16, auto, or none (library default)")
    ap.add_argument("--batch", type=int, default=1)
    ap.add_argument("--prompt", type=int, default=128)
    ap.add_argument("--new", type=int, default=8)
    ap.add_argument("--pad", type=int, default=0, help="left-pad every other row by this many tokens")
    ap.add_argument("--variant", default="", choices=VARIANTS)
    args = ap.parse_args(argv)
    return reply(lambda: measure(args.folder, dtype=args.dtype, batch=args.batch, prompt=args.prompt, new=args.new,
                         pad=args.pad, variant=args.variant))


if __name__ == "__main__":
    sys.exit(main())
