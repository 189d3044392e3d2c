"""Accuracy of the LLM estimator (``pytorch-cpu``) against Hugging Face ``generate()``, measured.

    python bench/llm_accuracy.py              # full set, each case measured twice (~18 min on 2 cores)
    python bench/llm_accuracy.py --quick      # a subset (~7 min)
    python bench/llm_accuracy.py --only qwen  # cases whose name contains "qwen"

Needs the bench extras: ``pip install torch==2.13.0 transformers safetensors`` (CPU build). Builds
each model ONCE from a config with random weights (``AutoModelForCausalLM.from_config``) and saves
it with ``save_pretrained(..., safe_serialization=True)`` into ``bench/out/llm/`` (nothing is
downloaded), reads the real folder with ``advisor.readers.read_model``, predicts with
``advisor.estimator.estimate(..., "pytorch-cpu", ...)`` and measures with
``bench/llm_torch_measure.py`` in ONE fresh child process per case (baseline: VmRSS after
``import torch, transformers``; peak = the higher of the load's and the run's VmHWM − baseline).
Each case is measured ``--repeat`` times (default 2): the mean is shown with ``noise`` = half the
spread (glibc's heap makes repeated runs differ), and "in" means EVERY measurement fell inside
[low, high]. Prints predicted vs measured, the signed error, and the median / max |error|.
"""

from __future__ import annotations

import argparse
import gc
import json
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from advisor.estimator import estimate  # noqa: E402
from advisor.estimator.types import MIB, Estimate, Workload  # noqa: E402
from advisor.hardware.profile import HardwareProfile  # noqa: E402
from advisor.readers import read_model  # noqa: E402

OUT = ROOT / "bench" / "out" / "llm"


# --------------------------------------------------------------------------- model set


def _llama(**kw: Any) -> Any:
    from transformers import LlamaConfig

    return LlamaConfig(**kw)


def _mistral(**kw: Any) -> Any:
    from transformers import MistralConfig

    return MistralConfig(**kw)


def _qwen2(**kw: Any) -> Any:
    from transformers import Qwen2Config

    return Qwen2Config(**kw)


def _gemma2(**kw: Any) -> Any:
    from transformers import Gemma2Config

    return Gemma2Config(**kw)


def _gemma3(**kw: Any) -> Any:
    from transformers import Gemma3TextConfig

    return Gemma3TextConfig(**kw)


def _mixtral(**kw: Any) -> Any:
    from transformers import MixtralConfig

    return MixtralConfig(**kw)


@dataclass(frozen=True)
class ModelSpec:
    """A model to build: a config factory, its keyword arguments, the stored dtype, shard size."""

    name: str
    config: Callable[..., Any]
    kwargs: dict[str, Any]
    dtype: str
    shard: str | None = None


_COMMON = {"max_position_embeddings": 4096, "vocab_size": 32000}
MODELS = {m.name: m for m in (
    # ~110 MB bf16: a small Llama with GQA (8 heads, 2 KV heads)
    ModelSpec("llama-57m", _llama, {**_COMMON, "hidden_size": 512, "num_hidden_layers": 8,
                                    "num_attention_heads": 8, "num_key_value_heads": 2,
                                    "intermediate_size": 1536}, "bfloat16"),
    # ~400 MB bf16: Llama GQA 16/4
    ModelSpec("llama-200m", _llama, {**_COMMON, "hidden_size": 1024, "num_hidden_layers": 12,
                                     "num_attention_heads": 16, "num_key_value_heads": 4,
                                     "intermediate_size": 2816}, "bfloat16"),
    # ~2 GB fp32 in 4 shards: Llama GQA 16/4 with head_dim 128
    ModelSpec("llama-490m-f32", _llama, {**_COMMON, "hidden_size": 2048, "num_hidden_layers": 8,
                                         "num_attention_heads": 16, "num_key_value_heads": 4,
                                         "intermediate_size": 5632}, "float32", shard="500MB"),
    # Mistral-v0.1-like: every layer slides (window 256)
    ModelSpec("mistral-150m", _mistral, {**_COMMON, "hidden_size": 1024, "num_hidden_layers": 8,
                                         "num_attention_heads": 16, "num_key_value_heads": 8,
                                         "intermediate_size": 3584, "sliding_window": 256}, "bfloat16"),
    # Qwen2.5-0.5B-like: q/k/v bias, tied embeddings, 152k vocabulary
    ModelSpec("qwen2-tied-310m", _qwen2, {"max_position_embeddings": 4096, "vocab_size": 151936,
                                          "hidden_size": 896, "num_hidden_layers": 12,
                                          "num_attention_heads": 14, "num_key_value_heads": 2,
                                          "intermediate_size": 4864, "tie_word_embeddings": True},
              "float32"),
    # Gemma2-like: alternating sliding (512) / full layers, head_dim 256, 1 KV head
    ModelSpec("gemma2-180m", _gemma2, {**_COMMON, "hidden_size": 1152, "num_hidden_layers": 8,
                                       "num_attention_heads": 4, "num_key_value_heads": 1, "head_dim": 256,
                                       "intermediate_size": 6912, "sliding_window": 512}, "bfloat16"),
    # Gemma3-text-like: 5 sliding (512) : 1 full
    ModelSpec("gemma3-200m", _gemma3, {**_COMMON, "hidden_size": 1152, "num_hidden_layers": 12,
                                       "num_attention_heads": 4, "num_key_value_heads": 1, "head_dim": 256,
                                       "intermediate_size": 4608, "sliding_window": 512}, "float32"),
    # Mixtral-like MoE: 8 experts, top 2
    ModelSpec("mixtral-360m", _mixtral, {**_COMMON, "hidden_size": 1024, "num_hidden_layers": 8,
                                         "num_attention_heads": 16, "num_key_value_heads": 4,
                                         "intermediate_size": 1408, "num_local_experts": 8,
                                         "num_experts_per_tok": 2}, "float32"),
)}


def build(spec: ModelSpec) -> Path:
    """Build ``spec`` once into ``bench/out/llm/NAME`` (random weights, safetensors)."""
    folder = OUT / spec.name
    if (folder / "config.json").exists():
        return folder
    import torch
    from transformers import AutoModelForCausalLM

    torch.manual_seed(0)
    cfg = spec.config(**spec.kwargs)
    model = AutoModelForCausalLM.from_config(cfg, dtype=getattr(torch, spec.dtype))
    kw: dict[str, Any] = {"max_shard_size": spec.shard} if spec.shard else {}
    model.save_pretrained(str(folder), safe_serialization=True, **kw)
    del model
    gc.collect()
    return folder


@dataclass(frozen=True)
class Case:
    """One measurement: a model, the dtype passed to from_pretrained ("none": the default), B, P, N."""

    model: str
    load: str
    batch: int
    prompt: int
    new: int = 8
    pad: int = 0
    quick: bool = False

    @property
    def name(self) -> str:
        pad = f" pad{self.pad}" if self.pad else ""
        return f"{self.model} {self.load} b{self.batch} p{self.prompt}{pad}"


CASES = (
    Case("llama-57m", "none", 1, 128, quick=True),
    Case("llama-57m", "none", 4, 1024),
    Case("llama-57m", "float32", 1, 2048, quick=True),
    Case("llama-57m", "float32", 4, 2048),
    Case("llama-200m", "none", 1, 512, quick=True),
    Case("llama-200m", "none", 4, 256),
    Case("llama-200m", "float32", 1, 2048),
    Case("llama-200m", "float32", 4, 512, pad=64, quick=True),
    Case("llama-490m-f32", "none", 1, 512, quick=True),
    Case("llama-490m-f32", "none", 4, 512),
    Case("llama-490m-f32", "bfloat16", 1, 256),
    Case("mistral-150m", "none", 1, 1024, quick=True),
    Case("mistral-150m", "float32", 4, 1024),
    Case("qwen2-tied-310m", "none", 1, 1024, quick=True),
    Case("qwen2-tied-310m", "none", 4, 512),
    Case("qwen2-tied-310m", "bfloat16", 1, 512),
    Case("gemma2-180m", "none", 1, 1024),
    Case("gemma2-180m", "float32", 4, 1024, quick=True),
    Case("gemma3-200m", "none", 1, 2048),
    Case("gemma3-200m", "none", 4, 512, pad=32),
    Case("mixtral-360m", "none", 1, 1024, quick=True),
    Case("mixtral-360m", "none", 4, 512),
    Case("mixtral-360m", "bfloat16", 1, 256),
)


# --------------------------------------------------------------------------- measure and compare


def predict(folder: Path, case: Case) -> Estimate:
    profile = read_model(folder)
    wl = Workload(batch=case.batch, seq_len=case.prompt, context=case.prompt + case.new,
                  weight_dtype=None if case.load in ("none", "auto") else case.load)
    hw = HardwareProfile(name="bench", source="probe", kind="this-machine", memory_total_bytes=24 * 1024 * MIB)
    return estimate(profile, wl, "pytorch-cpu", hw)


def measure(folder: Path, case: Case) -> dict[str, Any]:
    cmd = [sys.executable, str(ROOT / "bench" / "llm_torch_measure.py"), str(folder), "--dtype", case.load,
           "--batch", str(case.batch), "--prompt", str(case.prompt), "--new", str(case.new), "--pad", str(case.pad)]
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("{")]
    if not lines:
        return {"error": proc.stderr.strip().splitlines()[-1] if proc.stderr.strip() else "no output"}
    result: dict[str, Any] = json.loads(lines[-1])
    return result


def _mib(n: float) -> str:
    return f"{n / MIB:8.0f}"


def main() -> int:
    ap = argparse.ArgumentParser(description="LLM estimator (pytorch-cpu) vs Hugging Face generate(), measured")
    ap.add_argument("--quick", action="store_true", help="a subset")
    ap.add_argument("--only", default="", help="cases whose name contains this")
    ap.add_argument("--json", help="also write every case's figures here")
    ap.add_argument("--repeat", type=int, default=2, help="measurements per case (mean shown; 'in' = all inside)")
    args = ap.parse_args()
    cases = [c for c in CASES if (c.quick or not args.quick) and args.only in c.name]
    print(f"{'case':36} {'weights':>8} {'pred':>8} {'low':>8} {'high':>8} {'meas':>8} {'load':>8} {'run':>8}"
          f" {'err%':>6}  in  noise (MiB)")
    errors: list[float] = []
    inside = 0
    rows: list[dict[str, Any]] = []
    versions = ""
    t_start = time.perf_counter()
    for case in cases:
        folder = build(MODELS[case.model])
        est = predict(folder, case)
        runs = [measure(folder, case) for _ in range(max(1, args.repeat))]
        bad = [r for r in runs if "error" in r]
        if bad:
            print(f"{case.name:36} ERROR {bad[0]['error']}")
            continue
        m = runs[0]
        versions = f"torch {m['torch_version']}, transformers {m['transformers_version']}"
        peaks = [r["peak_bytes"] for r in runs]
        meas = statistics.mean(peaks)
        err = 100.0 * (est.peak_bytes - meas) / meas
        ok = all(est.low_bytes <= p <= est.high_bytes for p in peaks)
        errors.append(abs(err))
        inside += ok
        load = statistics.mean(r["load_peak_bytes"] for r in runs)
        run = statistics.mean(r["run_peak_bytes"] for r in runs)
        noise = (max(peaks) - min(peaks)) / 2
        print(f"{case.name:36} {_mib(est.weights_bytes)} {_mib(est.peak_bytes)} {_mib(est.low_bytes)} "
              f"{_mib(est.high_bytes)} {_mib(meas)} {_mib(load)} {_mib(run)} "
              f"{err:+6.1f}  {'yes' if ok else 'NO '} ±{noise / MIB:.0f}", flush=True)
        rows.append({"case": case.name, "estimate": est.to_dict(), "measured": runs})
    if errors:
        print(f"\n{len(errors)} cases ({versions}, {time.perf_counter() - t_start:.0f} s): "
              f"median |error| {statistics.median(errors):.1f} %, max |error| {max(errors):.1f} %, "
              f"{inside}/{len(errors)} inside [low, high]")
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=1))
    return 0 if errors else 1


if __name__ == "__main__":
    sys.exit(main())
