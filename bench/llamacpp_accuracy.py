"""Accuracy of the llama.cpp peak-memory estimator on CPU, measured with llama-cpp-python.

    python bench/llamacpp_accuracy.py            # full set (~15 min on 2 cores)
    python bench/llamacpp_accuracy.py --quick    # a subset

Needs ``pip install llama-cpp-python`` (bench only; the advisor never imports it). Builds real GGUF
files that llama.cpp loads and runs (llama architecture, a SentencePiece-style vocabulary, random
weights written as F16 / Q8_0 / Q4_0 blocks, a GQA and a MoE variant) into ``bench/out/llamacpp``,
predicts each case with ``advisor.estimator.estimate`` (runtime ``llama.cpp``, a CPU-only
machine) and measures it with ``bench/llamacpp_measure.py`` in ONE fresh subprocess per case.

Two comparisons:

* **peak**: predicted ``peak_bytes`` vs measured ``VmHWM − baseline``, and whether the measurement
  is inside ``[low, high]``. The estimate answers for llama.cpp's defaults (flash attention auto
  → on for CPU, mmap on); cases with ``-fa off`` / ``--no-mmap`` are also compared with
  :func:`advisor.estimator.runtimes.llamacpp_cpu.cpu_peak_parts` for that exact setting (column ``mech``).
* **buffers**: our KV-cache and compute-buffer figures vs the sizes llama.cpp logs.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from gguf import GGML_QUANT_SIZES, GGMLQuantizationType, GGUFWriter, TokenType

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from advisor.estimator import estimate  # noqa: E402
from advisor.estimator.runtimes.llamacpp_cpu import cpu_peak_parts  # noqa: E402
from advisor.estimator.runtimes.llamacpp_plan import gguf_tensor_bytes, plan_llamacpp  # noqa: E402
from advisor.estimator.types import MIB, Workload  # noqa: E402
from advisor.hardware.profile import HardwareProfile  # noqa: E402
from advisor.readers.gguf_reader import read_gguf  # noqa: E402

OUT = ROOT / "bench" / "out" / "llamacpp"


# --------------------------------------------------------------------------- GGUF models


@dataclass(frozen=True)
class Shape:
    """A llama-architecture model: sizes and the ggml type of its matrices."""

    name: str
    n_layers: int
    hidden: int
    n_heads: int
    n_kv_heads: int
    ff: int
    vocab: int
    qtype: str  # F16, Q8_0, Q4_0 (matrices; norms F32; token_embd and output as qtype too)
    n_experts: int = 0
    n_experts_used: int = 0
    extra: dict[str, Any] = field(default_factory=dict)


def _vocab(n: int) -> tuple[list[str], list[float], list[int]]:
    """A SentencePiece-style vocabulary: <unk> <s> </s>, the 256 byte tokens, then filler pieces."""
    tokens = ["<unk>", "<s>", "</s>"] + [f"<0x{b:02X}>" for b in range(256)]
    types = [TokenType.UNKNOWN, TokenType.CONTROL, TokenType.CONTROL] + [TokenType.BYTE] * 256
    tokens += [f"▁w{i}" for i in range(n - len(tokens))]
    types += [TokenType.NORMAL] * (n - len(types))
    scores = [0.0] * 3 + [0.0] * 256 + [-float(i) for i in range(n - 259)]
    return tokens, scores, [int(t) for t in types]


def _data(qtype: str, shape: tuple[int, ...], rng: np.random.Generator) -> tuple[np.ndarray, Any]:
    """Random weights: F16/F32 as numpy arrays; Q8_0/Q4_0 as raw blocks with a sane f16 scale."""
    if qtype in ("F16", "F32"):
        dtype = np.float16 if qtype == "F16" else np.float32
        return (rng.standard_normal(shape, dtype=np.float32) * 0.02).astype(dtype), None
    qt = GGMLQuantizationType[qtype]
    block, block_bytes = GGML_QUANT_SIZES[qt]
    blocks = rng.integers(0, 256, size=(*shape[:-1], shape[-1] // block, block_bytes), dtype=np.uint8)
    blocks[..., 0:2] = np.frombuffer(np.float16(0.002).tobytes(), dtype=np.uint8)
    return blocks.reshape(*shape[:-1], shape[-1] // block * block_bytes), qt


def write_model(s: Shape, path: Path) -> Path:
    """Write ``s`` as a GGUF file llama.cpp loads (llama metadata, tokenizer, every tensor)."""
    rng = np.random.default_rng(0)
    w = GGUFWriter(path, "llama")
    w.add_name(s.name)
    w.add_context_length(32768)
    w.add_embedding_length(s.hidden)
    w.add_block_count(s.n_layers)
    w.add_feed_forward_length(s.ff)
    w.add_head_count(s.n_heads)
    w.add_head_count_kv(s.n_kv_heads)
    w.add_rope_dimension_count(s.hidden // s.n_heads)
    w.add_layer_norm_rms_eps(1e-5)
    w.add_vocab_size(s.vocab)
    if s.n_experts:
        w.add_expert_count(s.n_experts)
        w.add_expert_used_count(s.n_experts_used)
    tokens, scores, types = _vocab(s.vocab)
    w.add_tokenizer_model("llama")
    w.add_token_list(tokens)
    w.add_token_scores(scores)
    w.add_token_types(types)
    w.add_bos_token_id(1)
    w.add_eos_token_id(2)
    w.add_unk_token_id(0)
    hd = s.hidden // s.n_heads
    specs: dict[str, tuple[str, tuple[int, ...]]] = {"token_embd.weight": (s.qtype, (s.vocab, s.hidden))}
    for i in range(s.n_layers):
        specs |= {
            f"blk.{i}.attn_norm.weight": ("F32", (s.hidden,)),
            f"blk.{i}.attn_q.weight": (s.qtype, (s.n_heads * hd, s.hidden)),
            f"blk.{i}.attn_k.weight": (s.qtype, (s.n_kv_heads * hd, s.hidden)),
            f"blk.{i}.attn_v.weight": (s.qtype, (s.n_kv_heads * hd, s.hidden)),
            f"blk.{i}.attn_output.weight": (s.qtype, (s.hidden, s.n_heads * hd)),
            f"blk.{i}.ffn_norm.weight": ("F32", (s.hidden,)),
        }
        if s.n_experts:
            e = s.n_experts
            specs |= {
                f"blk.{i}.ffn_gate_inp.weight": ("F32", (e, s.hidden)),
                f"blk.{i}.ffn_gate_exps.weight": (s.qtype, (e, s.ff, s.hidden)),
                f"blk.{i}.ffn_up_exps.weight": (s.qtype, (e, s.ff, s.hidden)),
                f"blk.{i}.ffn_down_exps.weight": (s.qtype, (e, s.hidden, s.ff)),
            }
        else:
            specs |= {
                f"blk.{i}.ffn_gate.weight": (s.qtype, (s.ff, s.hidden)),
                f"blk.{i}.ffn_up.weight": (s.qtype, (s.ff, s.hidden)),
                f"blk.{i}.ffn_down.weight": (s.qtype, (s.hidden, s.ff)),
            }
    specs["output_norm.weight"] = ("F32", (s.hidden,))
    specs["output.weight"] = (s.qtype, (s.vocab, s.hidden))
    for name, (qtype, shape) in specs.items():
        data, raw = _data(qtype, shape, rng)
        w.add_tensor(name, data, raw_dtype=raw)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return path


def model_path(s: Shape) -> Path:
    """``s`` built once into bench/out/llamacpp (rebuilt when missing)."""
    OUT.mkdir(parents=True, exist_ok=True)
    p = OUT / f"{s.name}.gguf"
    if not p.exists():
        tmp = p.with_suffix(".tmp")
        write_model(s, tmp)
        tmp.rename(p)
    return p


# --------------------------------------------------------------------------- cases

# hidden 768, 12 heads (MHA), 8 layers, 16k vocab: 81 M parameters (F16 155 MiB, Q4_0 44 MiB).
SMALL = {q: Shape(f"small-{q}", 8, 768, 12, 12, 2048, 16000, q) for q in ("F16", "Q8_0", "Q4_0")}
# hidden 2048, 16 heads over 4 KV heads (GQA), 16 layers, 32k vocab: 0.85 B parameters (F16 1.6 GiB).
MID = {q: Shape(f"mid-gqa-{q}", 16, 2048, 16, 4, 5632, 32000, q) for q in ("F16", "Q8_0", "Q4_0")}
# 8 experts (2 used) of ff 1408, hidden 1024, 8 layers: 0.36 B parameters.
MOE = {q: Shape(f"moe-{q}", 8, 1024, 16, 4, 1408, 32000, q, n_experts=8, n_experts_used=2)
       for q in ("Q8_0", "Q4_0")}


@dataclass(frozen=True)
class Case:
    """One run: model, total ``n_ctx`` (``-c``), sequences, prompt tokens per sequence, settings."""

    shape: Shape
    n_ctx: int
    prompt: int | None = None  # None: fill each sequence's share of the context
    n_seq: int = 1
    flash_attn: bool = True
    use_mmap: bool = True
    kv: str = "f16"
    quick: bool = False

    @property
    def label(self) -> str:
        bits = [self.shape.name, f"c{self.n_ctx}"]
        bits += [f"p{self.prompt}"] if self.prompt is not None else []
        bits += [f"np{self.n_seq}"] if self.n_seq > 1 else []
        bits += [] if self.flash_attn else ["fa-off"]
        bits += [] if self.use_mmap else ["no-mmap"]
        bits += [f"kv-{self.kv}"] if self.kv != "f16" else []
        return " ".join(bits)

    @property
    def prompt_tokens(self) -> int:
        return self.prompt if self.prompt is not None else self.n_ctx // self.n_seq - 2  # room for 2 more


CASES: tuple[Case, ...] = (
    Case(SMALL["F16"], 2048, quick=True),
    Case(SMALL["Q8_0"], 2048),
    Case(SMALL["Q4_0"], 2048, quick=True),
    Case(SMALL["F16"], 512),
    Case(SMALL["F16"], 8192, quick=True),
    Case(SMALL["F16"], 8192, flash_attn=False, quick=True),
    Case(SMALL["Q8_0"], 4096, flash_attn=False),
    Case(SMALL["F16"], 4096, prompt=256),
    Case(SMALL["F16"], 4096, prompt=256, flash_attn=False),
    Case(SMALL["Q4_0"], 4096, kv="q8_0", quick=True),
    Case(SMALL["Q8_0"], 8192, kv="q8_0"),
    Case(SMALL["Q8_0"], 2048, use_mmap=False, quick=True),
    Case(SMALL["Q4_0"], 2048, use_mmap=False),
    Case(SMALL["Q8_0"], 4096, n_seq=2),
    Case(SMALL["Q4_0"], 4096, n_seq=4, prompt=512, flash_attn=False),
    Case(MID["Q4_0"], 2048, prompt=1024, quick=True),
    Case(MID["Q4_0"], 4096, prompt=512, flash_attn=False),
    Case(MID["Q8_0"], 1024, prompt=512),
    Case(MID["F16"], 1024, prompt=512, quick=True),
    Case(MID["F16"], 512, use_mmap=False),
    Case(MID["Q4_0"], 1024, prompt=512, use_mmap=False),
    Case(MOE["Q4_0"], 2048, prompt=1024, quick=True),
    Case(MOE["Q8_0"], 2048, prompt=1024, flash_attn=False),
)


def cpu_here() -> HardwareProfile:
    """This machine as the estimator's target: x86-64 (or not) with the ISA flags /proc/cpuinfo lists."""
    import platform

    from advisor.hardware.profile import CpuInfo

    flags: tuple[str, ...] = ()
    info = Path("/proc/cpuinfo")
    if info.exists():
        for line in info.read_text().splitlines():
            if line.startswith(("flags", "Features")):
                flags = tuple(line.split(":", 1)[1].split())
                break
    return HardwareProfile(name="this machine", source="catalog", kind="desktop",
                           memory_total_bytes=24 * 1024**3,
                           cpu=CpuInfo(arch=platform.machine(), features=flags))


def run_child(path: Path, case: Case) -> dict[str, Any]:
    """Measure ``case`` in a fresh ``bench/llamacpp_measure.py`` process."""
    opts = {"n_ctx": case.n_ctx, "prompt": case.prompt_tokens, "n_seq_max": case.n_seq,
            "flash_attn": case.flash_attn, "use_mmap": case.use_mmap, "type_k": case.kv, "type_v": case.kv}
    proc = subprocess.run([sys.executable, str(ROOT / "bench" / "llamacpp_measure.py"), str(path), json.dumps(opts)],
                          capture_output=True, text=True, timeout=1800, check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"{case.label}: measurement failed:\n{proc.stderr[-2000:]}")
    result: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    return result


def _mib(n: float) -> str:
    return f"{n / MIB:8.1f}"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="a subset of the cases")
    ap.add_argument("--only", default="", help="run the cases whose label contains this text")
    args = ap.parse_args(argv)
    hw = cpu_here()
    cases = [c for c in CASES if (c.quick or not args.quick) and args.only in c.label]
    rows: list[tuple[str, float, float, bool, float]] = []
    buf_rows: list[str] = []
    version = "?"
    print(f"{'case':<40} {'measured':>9} {'predict':>9} {'err%':>6} {'low':>8} {'high':>8} in  "
          f"{'mech':>8} {'err%':>6}  (MiB)")
    for case in cases:
        path = model_path(case.shape)
        profile = read_gguf(path)
        assert profile.arch is not None
        wl = Workload(batch=case.n_seq, context=case.n_ctx // case.n_seq, seq_len=case.prompt,
                      kv_cache_dtype=case.kv)
        est = estimate(profile, wl, "llama.cpp", hw)
        plan = plan_llamacpp(profile, profile.arch, context=case.n_ctx // case.n_seq, batch=case.n_seq,
                             kv_dtype=case.kv, weight_dtype=None, gpu_layers=None, cuda=False)
        parts = cpu_peak_parts(profile, profile.arch, gguf_tensor_bytes(profile, None)[0], n_ctx=plan.n_ctx,
                               n_seq=plan.n_seq, kv_bytes=plan.cpu_kv_bytes, prompt=case.prompt_tokens, cpu=hw.cpu,
                               flash_attn=case.flash_attn, use_mmap=case.use_mmap)
        t0 = time.perf_counter()
        got = run_child(path, case)
        secs = time.perf_counter() - t0
        version = got["llama_cpp_python"]
        measured = got["peak_bytes"]
        err = (est.peak_bytes - measured) / measured * 100
        inside = est.low_bytes <= measured <= est.high_bytes
        mech_err = (parts.peak_bytes - measured) / measured * 100
        rows.append((case.label, err, mech_err, inside, secs))
        print(f"{case.label:<40} {_mib(measured)} {_mib(est.peak_bytes)} {err:+6.1f} {_mib(est.low_bytes)} "
              f"{_mib(est.high_bytes)} {'yes' if inside else 'NO ':3} {_mib(parts.peak_bytes)} {mech_err:+6.1f}"
              f"  [{secs:4.0f} s]", flush=True)
        bufs = got.get("buffers", {})
        kv_log = bufs.get("CPU KV", 0)
        comp_log = bufs.get("CPU compute", 0)
        repack_log = bufs.get("CPU_REPACK model", 0)
        buf_rows.append(
            f"{case.label:<40} KV {_mib(kv_log)} / {_mib(parts.kv_bytes)}   compute {_mib(comp_log)} / "
            f"{_mib(parts.compute_reserved_bytes)}   repack {_mib(repack_log)} / {_mib(parts.repacked_bytes)}   "
            f"output {_mib(bufs.get('CPU output', 0))} / {_mib(parts.output_bytes)}")
    default = [r for r, c in zip(rows, cases, strict=True) if c.flash_attn and c.use_mmap]
    errs = [abs(r[1]) for r in default]
    mech = [abs(r[2]) for r in rows]
    print(f"\nllama-cpp-python {version}; {len(rows)} cases")
    if rows:
        print(f"inside the estimate's [low, high]: {sum(r[3] for r in rows)}/{len(rows)} (every case, every setting)")
    if errs:
        print(f"estimate vs measured, {len(errs)} cases at llama.cpp's defaults (flash attention, mmap): "
              f"median |error| {statistics.median(errs):.1f} %, max {max(errs):.1f} %")
    if mech:
        print(f"cpu_peak_parts for each case's exact settings, all {len(mech)} cases: "
              f"median |error| {statistics.median(mech):.1f} %, max {max(mech):.1f} %")
    print("\nllama.cpp's logged buffer sizes vs ours (logged / ours, MiB):")
    print("\n".join(buf_rows))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
