"""PyTorch / Hugging Face ``generate()`` specifics: CUDA context, caching allocator, activations, bnb.

What a Hugging Face model costs beyond its weights and KV cache, as mechanisms:

* the CUDA context and cuBLAS workspace the first CUDA call and matmul create;
* the caching allocator's reserved peak for one ``generate()`` on one GPU, by replaying its
  requests (:func:`cuda_generate_peak`, :mod:`torch_cuda_allocator`); for a tensor-parallel engine
  a simpler bound (rounding, and the blocks ``DynamicCache`` outgrows);
* the prefill activations of one decoder layer with SDPA attention, and the last token's logits;
* the weight bytes after ``torch_dtype`` casts or bitsandbytes / fp8 quantization of Linear layers.
"""

from __future__ import annotations

import functools
import math
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from advisor.dtypes import GGML_QUANT_TYPES, canonical, nbytes
from advisor.errors import UnknownDtypeError, WorkloadError
from advisor.estimator.file_cache import ModelCache
from advisor.estimator.mechanisms import cuda_caching_allocator as tca
from advisor.estimator.mechanisms.cuda_caching_allocator import AllocatorPeak, DecoderShape, generate_peak
from advisor.estimator.mechanisms.glibc_heap import MMAP_THRESHOLD_MAX_BYTES
from advisor.estimator.mechanisms.kv_cache import MlaLayout, kv_values_per_token, layer_kv_bytes, sliding_layers
from advisor.estimator.runtimes.llamacpp_plan import is_linear_weight
from advisor.estimator.runtimes.llamacpp_roles import tensor_role
from advisor.estimator.types import MIB
from advisor.readers.profile import LlmArchitecture, ModelProfile, TensorInfo
from advisor.units import format_bytes, round_up

# NOTE: torch's default cuBLAS workspace (aten/src/ATen/cuda/CublasHandlePool.cpp,
# getChosenWorkspaceSize): ":4096:8" = 32 MiB on Hopper (sm90), ":4096:2:16:8" ≈ 8.1 MiB before.
# It is allocated through the caching allocator on the first matmul.
CUBLAS_WORKSPACE_BYTES = 32 * MIB
# Kernel images loaded lazily on first use (CUDA_MODULE_LOADING=LAZY, the default since CUDA 11.7
# in torch): cuBLAS, SDPA and elementwise kernels. An allowance, not a measurement.
LAZY_KERNELS_BYTES = 64 * MIB
LAZY_KERNELS_HIGH_BYTES = 320 * MIB
# Per-GPU communication buffers of a tensor-parallel engine (NCCL channels, vLLM's custom
# all-reduce). NCCL's 4 MiB per channel per peer grows with GPUs and links; an allowance.
NCCL_BYTES = 256 * MIB
NCCL_HIGH_BYTES = 1024 * MIB
# CPU: what loading and the first generate() add to a process that has imported torch +
# transformers, besides weights, KV cache and activations: the model's modeling/generation code
# imported lazily, the loader's thread pool, oneDNN/MKL kernels and scratch on the first forward.
# NOTE: measured with bench/llm_torch_measure.py (torch 2.13.0+cpu, transformers 5.23.0, glibc
# 2.36) on a 2-layer, 64-wide Llama (0.3 MB of weights): 100-101 MiB after from_pretrained
# (float32 and bfloat16), 124-131 MiB at the peak of generate() in float32 (prompt 128-2048,
# batch 1-4), 137-138 MiB in bfloat16.
CPU_LOAD_BYTES = 100 * MIB
CPU_RUNTIME_BYTES = 128 * MIB
CPU_RUNTIME_HIGH_BYTES = 256 * MIB
# NOTE: freed blocks of at most 32 MiB stay in glibc's heap (advisor.estimator.mechanisms.glibc_heap).
# Measured: llama-57m (bench/llm_accuracy.py) float32, batch 4 × 2048: prefill peak 403-471 MiB
# above the loaded model by default, 302 MiB with MALLOC_MMAP_THRESHOLD_=131072 (which pins the
# threshold): ~110-130 MiB kept, about one layer's attention-phase tensors (16 MiB blocks).
# NOTE: a memory-mapped embedding row that is read maps a whole window of the page cache around
# it (fault-around, large folios, readahead). Measured by reading random 8 KiB rows of a 250 MiB
# table in a safetensors file held in the page cache (Linux 6.x, ext4): 64 rows → 50 MiB
# resident, 512 → 126 MiB, 2048 → 175 MiB (800 / 252 / 88 KiB per row). 512 KiB per distinct
# token, spread at random over the table, is the middle of that.
EMBED_TOUCH_BYTES = 512 * 1024




def cuda_reserved_bytes(sizes: Iterable[int]) -> int:
    """Memory the caching allocator reserves (what nvidia-smi shows) for tensors of ``sizes``.

    Small tensors (≤ 1 MiB) share 2 MiB segments, mid-size ones (< 10 MiB) share 20 MiB segments,
    larger ones get their own segment rounded up to 2 MiB; every block is a multiple of 512 B.
    """
    small = mid = large = 0
    for n in sizes:
        block = round_up(max(n, 1), tca.MIN_BLOCK)
        if block <= tca.SMALL_SIZE:
            small += block
        elif block < tca.MIN_LARGE_ALLOC:
            mid += block
        else:
            large += round_up(block, tca.ROUND_LARGE)
    return round_up(small, tca.SMALL_BUFFER) + round_up(mid, tca.LARGE_BUFFER) + large


def stranded_cache_bytes(n_tensors: int, final_bytes: int) -> int:
    """Cached blocks ``DynamicCache`` leaves behind when its tensors grow past 2 MiB steps.

    Each step ``torch.cat`` allocates a slightly larger K and V per layer and frees the old one;
    layers reuse each other's freed blocks while the 2 MiB-rounded size holds, but every time the
    tensors cross a 2 MiB boundary the old blocks are too small for any later request and stay
    cached (reserved, shown by nvidia-smi) until ``torch.cuda.empty_cache()`` or memory pressure.
    Only tensors above 10 MiB live in their own segments; smaller ones share 20 MiB segments
    whose free blocks coalesce, so they strand nothing here.
    """
    if final_bytes < tca.MIN_LARGE_ALLOC:
        return 0
    steps = final_bytes // tca.ROUND_LARGE - tca.MIN_LARGE_ALLOC // tca.ROUND_LARGE
    first = tca.MIN_LARGE_ALLOC
    # one stranded block per tensor per boundary: sizes first, first+2MiB, ...
    return n_tensors * (steps * first + tca.ROUND_LARGE * steps * (steps - 1) // 2)


def decoder_shape(arch: LlmArchitecture, *, act_bytes: int, kv_dtype: str, mla_layout: MlaLayout) -> DecoderShape:
    """The widths HF ``generate()``'s requests depend on, from ``arch`` and :mod:`kv_cache`."""
    k_vals, v_vals = kv_values_per_token(arch, mla_layout)
    window = arch.sliding_window or 0
    return DecoderShape(
        n_layers=arch.n_layers, hidden=arch.hidden_size, q_dim=arch.n_heads * arch.head_dim,
        k_dim=max(1, k_vals), v_dim=v_vals, inter=arch.intermediate_size or 4 * arch.hidden_size,
        rope_dim=max(1, arch.head_dim), vocab=arch.vocab_size, act_bytes=act_bytes,
        kv_token_bytes=(layer_kv_bytes(arch, 1, kv_dtype, mla_layout=mla_layout),) * arch.n_layers,
        windows=tuple(window if slides else 0 for slides in sliding_layers(arch)),
    )


def cuda_generate_peak(arch: LlmArchitecture, weights: Iterable[int], *, batch: int, prompt: int, context: int,
                       act_bytes: int, kv_dtype: str, mla_layout: MlaLayout) -> AllocatorPeak:
    """``max_memory_allocated`` / ``max_memory_reserved`` of loading ``weights`` and one HF ``generate()``.

    Replays the requests through torch's caching allocator (:mod:`torch_cuda_allocator`).
    """
    shape = decoder_shape(arch, act_bytes=act_bytes, kv_dtype=kv_dtype, mla_layout=mla_layout)
    return generate_peak(shape, tuple(weights), batch, prompt, max(0, context - prompt), CUBLAS_WORKSPACE_BYTES)


# --------------------------------------------------------------------------- activations


@dataclass(frozen=True)
class Activations:
    """Prefill activation bytes of one decoder layer (nominal and the high end), and why."""

    nominal_bytes: int
    high_bytes: int
    logits_bytes: int
    notes: tuple[str, ...]


def prefill_activations(
    arch: LlmArchitecture,
    *,
    batch: int,
    prompt: int,
    act_bytes: int,
    cuda: bool,
    tensor_parallel: int = 1,
) -> Activations:
    """Peak transient memory of prefilling ``prompt`` tokens through one layer with SDPA.

    Hugging Face runs the whole prompt at once: the residual stream, q/k/v (and their RoPE'd
    copies), then the gated MLP's gate/up/product (3 × tokens × intermediate). Attention scores
    (batch × heads × prompt² × 4 B, twice for the softmax) exist only when SDPA falls back to its
    math kernel: on CUDA the flash / memory-efficient kernels never materialise them; on CPU the
    flash kernel (torch ≥ 2.3 also with a mask) serves them, so the scores are only the high end
    of a padded CPU batch.
    """
    tp = max(1, tensor_parallel)
    tokens = batch * prompt
    heads = -(-arch.n_heads // tp)
    kv_heads = max(1, -(-arch.n_kv_heads // tp))
    hd, hd_v = arch.head_dim, arch.v_head_dim or arch.head_dim
    inter = -(-(arch.intermediate_size or 4 * arch.hidden_size) // tp)
    hidden = tokens * arch.hidden_size * act_bytes
    q = tokens * heads * hd * act_bytes
    kv = tokens * kv_heads * (hd + hd_v) * act_bytes
    rope = 2 * tokens * hd * act_bytes  # cos/sin tables
    attn_out = tokens * heads * hd_v * act_bytes
    repeat = tokens * 2 * heads * hd * act_bytes  # repeat_kv when SDPA cannot take GQA directly
    scores = 2 * batch * heads * prompt * prompt * 4 + batch * prompt * prompt * act_bytes
    padded = batch > 1
    notes: list[str] = []
    attn_phase = 3 * hidden + 2 * q + kv + kv // 2 + attn_out + rope
    attn_high = attn_phase + repeat
    if padded:
        # NOTE: a padded batch makes transformers build a 4-D mask (batch × 1 × q × kv) and repeat
        # K/V to every query head (SDPA's enable_gqa needs an absent mask).
        attn_phase += repeat + batch * prompt * prompt * act_bytes
        attn_high = attn_phase
        if not cuda:
            attn_high += scores
            notes.append(
                f"CPU with a padded batch: if SDPA falls back to its math kernel (older torch without masked "
                f"CPU flash attention) the attention scores add {scores / MIB:.0f} MiB per layer (high end)"
            )
    elif not cuda:
        notes.append(
            f"CPU SDPA uses its flash kernel for an unpadded prompt; the math kernel would add "
            f"{scores / MIB:.0f} MiB of attention scores (not counted)"
        )
    mlp = 3 * tokens * inter * act_bytes
    if arch.is_moe:
        mlp += tokens * arch.n_experts * 4  # router logits in fp32
    mlp_phase = 2 * hidden + mlp + hidden
    heap = 0
    if not cuda:
        # glibc keeps the freed attention-phase blocks (≤ 32 MiB each) in its heap while the MLP's
        # larger blocks are mapped fresh: the two phases add up (see MMAP_THRESHOLD_MAX_BYTES).
        parts = (hidden, hidden, hidden, q, q, kv, kv // 2, attn_out, rope)
        heap = sum(p for p in parts if p <= MMAP_THRESHOLD_MAX_BYTES)
    nominal = max(attn_phase, mlp_phase + heap)
    # NOTE: transformers ≥ 4.45 computes logits for the last token only (logits_to_keep=1) and
    # generate() keeps an fp32 copy plus the processed scores; older versions upcast the whole
    # batch × prompt × vocab to fp32.
    logits = batch * arch.vocab_size * (act_bytes + 3 * 4)
    old_logits = tokens * arch.vocab_size * 4
    notes.append(
        f"logits for the last token only (transformers ≥ 4.45, logits_to_keep=1); older versions "
        f"materialise batch × prompt × vocab in fp32 = {old_logits / MIB:.0f} MiB more"
    )
    if heap:
        notes.append(f"CPU: glibc's heap keeps ~{heap / MIB:.0f} MiB of freed attention blocks (≤ 32 MiB each) "
                     f"through the MLP")
    return Activations(nominal, max(nominal, attn_high, mlp_phase + heap), logits, tuple(notes))


# --------------------------------------------------------------------------- weights


def load_dtype(profile: ModelProfile) -> str:
    """The dtype transformers loads float weights in with ``torch_dtype="auto"``.

    ``config.json``'s ``torch_dtype`` when set, else the dominant stored float type.
    """
    arch = profile.arch
    if arch is not None and arch.torch_dtype:
        try:
            return canonical(arch.torch_dtype)
        except UnknownDtypeError:
            pass
    floats = {k: v for k, v in profile.weight_bytes_by_dtype.items() if k.startswith(("float", "bfloat"))}
    return max(floats, key=lambda k: floats[k]) if floats else "float32"


@functools.lru_cache(maxsize=256)
def _is_float(dtype: str) -> bool:
    return dtype.startswith(("float", "bfloat")) and dtype not in GGML_QUANT_TYPES


# bitsandbytes / fp8 Linear quantization: bytes per element and per-row/per-block extras.
_QUANT_LINEAR = {
    # NOTE: bitsandbytes Int8Params: int8 weight + SCB, one fp32 scale per output row (LLM.int8's
    # outlier columns are decomposed from the activations at run time, not stored).
    "int8": "LLM.int8 (bitsandbytes): 1 B per weight + an fp32 scale per output row",
    # NOTE: bitsandbytes Params4bit: 2 values per byte + an fp32 absmax per 64-value block
    # (blocksize 64, bnb_4bit_use_double_quant=False, transformers' default).
    "nf4": "4-bit (bitsandbytes nf4): 0.5 B per weight + an fp32 absmax per 64 values",
    "int4": "4-bit (bitsandbytes): 0.5 B per weight + an fp32 absmax per 64 values",
    "fp4": "4-bit (bitsandbytes fp4): 0.5 B per weight + an fp32 absmax per 64 values",
    # NOTE: fp8 e4m3 weights with one fp32 scale per output row (FBGEMM/compressed-tensors style).
    "fp8": "fp8 e4m3: 1 B per weight + an fp32 scale per output row",
    # NOTE: AutoAWQ / GPTQ checkpoints (vLLM ``--quantization awq``/``gptq``): int4 packed 8 per
    # int32 (qweight), per 128-row group an fp16 scale and a packed int4 zero per output column.
    "awq": "int4 AWQ/GPTQ: 0.5 B per weight + an fp16 scale and int4 zero per 128 values",
}


def _quantized_linear_bytes(t: TensorInfo, kind: str) -> int:
    rows = t.n_elements // t.shape[-1] if t.shape else 1
    if kind in ("int8", "fp8"):
        return t.n_elements + 4 * rows
    if kind == "awq":
        return math.ceil(t.n_elements / 2) + math.ceil(t.n_elements * 2.5 / 128)
    return math.ceil(t.n_elements / 2) + 4 * math.ceil(t.n_elements / 64)


_loaded: ModelCache[tuple[tuple[tuple[TensorInfo, int], ...], str, str]] = ModelCache(64)


def torch_weight_bytes(
    profile: ModelProfile, weight_dtype: str | None
) -> tuple[tuple[tuple[TensorInfo, int], ...], str, str]:
    """Each tensor's bytes once transformers has loaded it, a description, and the compute dtype
    (computed once per profile and type: :class:`~advisor.estimator.file_cache.ModelCache`).

    Args:
        profile: a safetensors profile.
        weight_dtype: None (``torch_dtype="auto"``), a float type (``bfloat16`` ...) cast for every
            float tensor, or ``int8`` / ``nf4`` / ``int4`` / ``fp4`` / ``fp8`` for Linear weights
            only (embeddings, norms and lm_head stay in the float type, as bitsandbytes does).

    Raises:
        WorkloadError: a type PyTorch cannot load weights as (e.g. a GGUF type).
    """
    return _loaded.get_or_make(profile, weight_dtype, lambda: _torch_weight_bytes(profile, weight_dtype))


def _torch_weight_bytes(
    profile: ModelProfile, weight_dtype: str | None
) -> tuple[tuple[tuple[TensorInfo, int], ...], str, str]:
    base = load_dtype(profile)
    key = weight_dtype.strip().lower() if weight_dtype else None
    if key is None:
        out = [(t, nbytes(base, t.n_elements) if _is_float(t.dtype) else t.nbytes) for t in profile.tensors]
        return tuple(out), f'weights loaded with torch_dtype="auto" as {base}', base
    if key in _QUANT_LINEAR:
        rest = "float16" if base == "float32" else base
        out, touched = [], 0
        for t in profile.tensors:
            if is_linear_weight(t) and _is_float(t.dtype):
                touched += 1
                out.append((t, _quantized_linear_bytes(t, key)))
            else:
                out.append((t, nbytes(rest, t.n_elements) if _is_float(t.dtype) else t.nbytes))
        desc = f"{touched} Linear weights as {_QUANT_LINEAR[key]}; embeddings, norms, lm_head stay {rest}"
        return tuple(out), desc, rest
    try:
        target = canonical(key)
    except UnknownDtypeError:
        target = ""
    if not target or target in GGML_QUANT_TYPES or not _is_float(target):
        raise WorkloadError(
            f"PyTorch cannot load weights as {weight_dtype!r}; use bfloat16, float16, int8, nf4 or fp8 "
            f"(GGUF types run on llama.cpp)"
        )
    out = [(t, nbytes(target, t.n_elements) if _is_float(t.dtype) else t.nbytes) for t in profile.tensors]
    return tuple(out), f"every float tensor cast to {target}", target


def tp_weight_share(t: TensorInfo, nbytes_: int, arch: LlmArchitecture | None, tp: int) -> int:
    """Bytes of ``t`` on one of ``tp`` GPUs under Megatron-style tensor parallelism (vLLM).

    Linear layers and the vocab-parallel embedding / lm_head split ``tp`` ways; 1-D tensors and the
    MoE router are replicated; K/V projections split by KV head and are replicated when there
    are fewer KV heads than GPUs.
    """
    if tp <= 1:
        return nbytes_
    role = tensor_role(t)
    if role in ("vector", "router"):
        return nbytes_
    if role in ("attn_k", "attn_v") and arch is not None and not arch.is_mla:
        per_gpu = max(1, -(-arch.n_kv_heads // tp))
        return nbytes_ * per_gpu // max(1, arch.n_kv_heads)
    return -(-nbytes_ // tp)


# --------------------------------------------------------------------------- CPU: mmap and copies


_EXPERT_RE = re.compile(r"\.experts\.\d+\.")


@dataclass(frozen=True)
class CpuWeights:
    """What the weights hold in RAM on ``pytorch-cpu``, during the run and at the end of loading.

    Attributes:
        resident_bytes: resident while generating (nominal).
        low_bytes / high_bytes: the least and most that can be resident while generating.
        load_low_bytes / load_bytes / load_high_bytes: resident at the end of ``from_pretrained``
            before its files are closed (copies plus every source page they were read from), least,
            nominal and most.
        notes: how it was worked out.
        kept_source_bytes: source pages of copied tensors that stay mapped after loading (in
            ``resident_bytes``) although nothing reads them again: clean file pages the OS can drop.
        mapped_bytes: weights that stay views of the mapped files, read again by every forward.
        source_bytes / largest_source_bytes: the file pages copies are read from while loading
            (all clean and droppable once copied), and the largest one (the least a load needs).
    """

    resident_bytes: int
    low_bytes: int
    high_bytes: int
    load_low_bytes: int
    load_bytes: int
    load_high_bytes: int
    notes: tuple[str, ...]
    kept_source_bytes: int = 0
    mapped_bytes: int = 0
    source_bytes: int = 0
    largest_source_bytes: int = 0


def cpu_weights(pairs: Sequence[tuple[TensorInfo, int]], arch: LlmArchitecture | None, tokens: int) -> CpuWeights:
    """Resident weight bytes of a safetensors model loaded by transformers ≥ 5 on CPU.

    transformers 5 memory-maps every shard (``safe_open``) and closes them only when loading ends.
    A tensor loaded in its stored dtype stays a view of the mapping: its pages count in RSS once
    the forward reads them (an untied input embedding only where its rows are looked up). A cast
    tensor (``dtype=`` differing from the file) and a per-expert MoE weight (fused into one
    ``experts.gate_up_proj`` at load) are copies: while loading, the copy AND the source pages
    read for it are resident; afterwards the source pages stay only in a file that still backs a
    view (the mapping lives as long as any tensor uses it).

    Args:
        pairs: each tensor and its loaded bytes (:func:`torch_weight_bytes`).
        arch: the architecture (MoE experts, tied embeddings); None when unknown.
        tokens: tokens looked up in the embedding (batch × context).
    """
    moe = arch is not None and arch.is_moe
    copied = [(moe and bool(_EXPERT_RE.search(t.name))) or b != t.nbytes for t, b in pairs]
    pinned = {t.file for (t, _), c in zip(pairs, copied, strict=True) if not c}
    untied = any(tensor_role(t) == "output" for t, _ in pairs)
    resident = low = load = fused = 0
    kept_src = embed_gap = 0
    for (t, b), c in zip(pairs, copied, strict=True):
        if c:
            load += b + t.nbytes
            if moe and _EXPERT_RE.search(t.name) and b != t.nbytes:
                fused += b
            if t.file in pinned:
                kept_src += t.nbytes
            resident += b
            continue
        if untied and tensor_role(t) == "token_embd":
            row = t.nbytes // max(1, t.shape[0])
            touched = int(t.nbytes * (1.0 - math.exp(-tokens * EMBED_TOUCH_BYTES / max(1, t.nbytes))))
            touched = t.nbytes if t.nbytes - touched < MIB else touched
            resident += touched
            low += min(t.nbytes, tokens * row) - touched
            embed_gap = t.nbytes - touched
            continue
        resident += b
    notes: list[str] = []
    if embed_gap:
        notes.append(f"the untied input embedding is memory-mapped: only the pages of looked-up rows become "
                     f"resident (~{format_bytes(embed_gap)} of it not counted; all of it at the high end)")
    if kept_src:
        notes.append(f"weights copied at load (cast or fused experts) from files that stay mapped keep their "
                     f"source pages resident too: {format_bytes(kept_src)}")
    # NOTE: fusing experts while casting them casts each expert on the loader's thread pool
    # (core_model_loading.py, GLOBAL_WORKERS = 4) ahead of the main thread that stacks them, so
    # the cast pieces pile up. Measured on a Mixtral-like model (bench/llm_accuracy.py
    # mixtral-360m, fp32 file loaded as bfloat16, 528 MiB of bf16 experts): the load peak was
    # 387 to 537 MiB (five runs) above copies + source + runtime. Counted: all the cast pieces;
    # low end: none of them; high end: plus one layer's stacked and concatenated copies.
    layers = {t.layer for t, _ in pairs if t.layer is not None and _EXPERT_RE.search(t.name)}
    resident += kept_src
    sources = [t.nbytes for (t, _), c in zip(pairs, copied, strict=True) if c]
    return CpuWeights(resident_bytes=resident, low_bytes=resident + low, high_bytes=resident + embed_gap,
                      load_low_bytes=load, load_bytes=load + fused,
                      load_high_bytes=load + fused + 2 * fused // max(1, len(layers)), notes=tuple(notes),
                      kept_source_bytes=kept_src, mapped_bytes=resident - kept_src - sum(
                          b for (_, b), c in zip(pairs, copied, strict=True) if c),
                      source_bytes=sum(sources), largest_source_bytes=max(sources, default=0))
