"""llama.cpp's peak memory: weights by ggml type, the KV cache, the compute buffer, GPU offload.

Weights: a GGUF file is priced as stored; a safetensors LLM as ``convert_hf_to_gguf.py`` writes it
(matrices 16-bit, 1-D tensors f32). A ``weight_dtype`` such as ``q4_k_m`` re-prices every tensor as
``llama-quantize`` would: its mixes keep some tensors higher (output.weight at Q6_K, part of
attn_v/ffn_down at Q6_K for the *_M types), so a "Q4_K_M" model is not 4.5 bits everywhere.
Runtime: :func:`plan_llamacpp` lays out the KV cells (``-c`` is the TOTAL over ``-np`` sequences),
the compute buffer ggml_gallocr reserves for a worst-case ubatch, and the ``-ngl`` split;
:mod:`advisor.estimator.runtimes.pytorch` turns the plan into an :class:`~advisor.estimator.types.Estimate`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from advisor.dtypes import DTYPES, GGML_QUANT_TYPES, canonical, nbytes
from advisor.errors import UnknownDtypeError, WorkloadError
from advisor.estimator.file_cache import ModelCache
from advisor.estimator.mechanisms.cuda_context import CUDA_CONTEXT_BARE_BYTES
from advisor.estimator.mechanisms.kv_cache import layer_kv_bytes, sliding_layers
from advisor.estimator.runtimes.llamacpp_cpu import REPACKABLE, ComputeShape, compute_buffer_bytes
from advisor.estimator.runtimes.llamacpp_roles import tensor_role
from advisor.estimator.types import MIB
from advisor.readers.profile import LlmArchitecture, ModelProfile, TensorInfo
from advisor.units import round_up


def is_linear_weight(tensor: TensorInfo) -> bool:
    """A matrix a quantizer converts (a Linear/expert weight, not embeddings, norms or the router)."""
    return tensor_role(tensor) not in ("vector", "token_embd", "output", "router") and tensor.name.endswith(
        "weight"
    )


# --------------------------------------------------------------------------- GGUF file types

# ``weight_dtype`` spellings → (ggml base type, k-quant variant). NOTE: llama-quantize's ftype
# names (tools/quantize/quantize.cpp); a bare k-quant ("q4_k") means its _M mix, the usual choice.
_FTYPE_RE = re.compile(r"^(q[2-6]_k)(?:_([sml]))?$")
_PLAIN_FTYPES = {"f32": "float32", "f16": "float16", "bf16": "bfloat16", "float32": "float32",
                 "float16": "float16", "bfloat16": "bfloat16", "fp16": "float16", "fp32": "float32"}
# Types from the PyTorch world mapped onto their closest llama.cpp ftype.
_TORCH_TO_GGUF = {"int8": "q8_0", "fp8": "q8_0", "float8_e4m3fn": "q8_0", "int4": "q4_0", "nf4": "q4_0"}

# NOTE: llama-quant.cpp falls back when a row (ne0) is not a whole number of 256-blocks.
_ROW_FALLBACK = {"q2_k": "iq4_nl", "q3_k": "iq4_nl", "iq4_xs": "iq4_nl", "q4_k": "q5_0",
                 "q5_k": "q5_1", "q6_k": "q8_0"}


def parse_ftype(weight_dtype: str) -> tuple[str, str]:
    """``q4_k_m`` → (``q4_k``, ``m``); ``q8_0`` → (``q8_0``, ``""``); ``bf16`` → (``bfloat16``, ``""``).

    Raises:
        WorkloadError: a type llama.cpp cannot store weights in.
    """
    key = weight_dtype.strip().lower()
    key = _TORCH_TO_GGUF.get(key, key)
    if key in _PLAIN_FTYPES:
        return _PLAIN_FTYPES[key], ""
    m = _FTYPE_RE.match(key)
    if m:
        base, variant = m.group(1), m.group(2) or ""
        if base in ("q3_k", "q4_k", "q5_k") and not variant:
            variant = "m"
        if base == "q6_k":
            variant = ""
        return base, variant
    if key in GGML_QUANT_TYPES:
        return key, ""
    raise WorkloadError(f"llama.cpp cannot store weights as {weight_dtype!r}; use a GGUF type such as q4_k_m")


def _use_more_bits(i: int, n: int) -> bool:
    # NOTE: llama-quant.cpp use_more_bits(): the first and last eighth of the layers, and every
    # third layer in between, get the higher type in the *_M mixes.
    return i < n // 8 or i >= 7 * n // 8 or (i - n // 8) % 3 == 2


def quant_type(
    tensor: TensorInfo,
    base: str,
    variant: str,
    *,
    n_layers: int,
    n_experts: int = 0,
    n_gqa: int = 1,
    has_output: bool = True,
) -> str:
    """The ggml type ``llama-quantize`` gives ``tensor`` for the file type ``base``/``variant``.

    Follows ``llama_tensor_get_type`` (llama.cpp src/llama-quant.cpp) for the k-quant mixes; for
    other types (q4_0, q8_0, iq*) the base type everywhere except output.weight (Q6_K).
    """
    role = tensor_role(tensor)
    if role in ("vector", "router"):
        return "float32"  # NOTE: convert_hf_to_gguf writes norms, biases and ffn_gate_inp as F32
    if not tensor.name.endswith("weight"):
        return tensor.dtype
    if base in ("float32", "float16", "bfloat16"):
        return base
    kind = base + (f"_{variant}" if variant else "")
    i = tensor.layer if tensor.layer is not None else 0
    new = base
    if role == "output" or (role == "token_embd" and not has_output):
        new = base if base in ("q8_0", "q6_k") else "q6_k"
    elif role == "attn_v":
        if n_experts == 8:
            new = "q8_0"
        elif kind == "q2_k":
            new = "q4_k" if n_gqa >= 4 else "q3_k"
        elif kind == "q3_k_m":
            new = "q5_k" if i < 2 else "q4_k"
        elif kind == "q3_k_l":
            new = "q5_k"
        elif kind == "q4_k_s":
            new = "q5_k" if i < 4 else "q4_k"
        elif kind in ("q4_k_m", "q5_k_m") and _use_more_bits(i, n_layers):
            new = "q6_k"
    elif role == "attn_k" and n_experts == 8:
        new = "q8_0"
    elif role == "ffn_down":
        if kind == "q2_k":
            new = "q3_k"
        elif kind == "q3_k_m":
            new = "q5_k" if i < n_layers // 16 else ("q4_k" if _use_more_bits(i, n_layers) else "q3_k")
        elif kind == "q3_k_l":
            new = "q5_k"
        elif kind in ("q4_k_m", "q5_k_m") and _use_more_bits(i, n_layers):
            new = "q6_k"
        elif kind == "q4_k_s" and i < n_layers // 8:
            new = "q5_k"
    elif role == "attn_output":
        if n_experts == 8 and kind in ("q2_k", "q3_k_s", "q3_k_m", "q4_k_s", "q4_k_m"):
            new = "q5_k"
        elif n_experts != 8:
            new = {"q2_k": "q3_k", "q3_k_m": "q4_k", "q3_k_l": "q5_k"}.get(kind, base)
    elif role == "attn_qkv":
        new = {"q3_k_m": "q4_k", "q3_k_l": "q4_k", "q4_k_m": "q5_k", "q5_k_m": "q6_k"}.get(kind, base)
    row = tensor.shape[-1]
    if row % DTYPES[new].block_size:
        new = _ROW_FALLBACK.get(new, new)
        if row % DTYPES[new].block_size:
            new = "float16"
    return new


def _converted_type(tensor: TensorInfo) -> str:
    """The type ``convert_hf_to_gguf.py`` writes a safetensors tensor as (16-bit default)."""
    if len(tensor.shape) < 2:
        return "float32"
    if tensor.dtype in GGML_QUANT_TYPES:
        return tensor.dtype
    return "bfloat16" if tensor.dtype == "bfloat16" else "float16"


_priced: ModelCache[tuple[tuple[tuple[TensorInfo, str, int], ...], str]] = ModelCache(64)


def gguf_tensor_bytes(
    profile: ModelProfile, weight_dtype: str | None
) -> tuple[tuple[tuple[TensorInfo, str, int], ...], str]:
    """Each tensor's ggml type and bytes as llama.cpp would hold it, and a one-line description
    (computed once per profile and type: :class:`~advisor.estimator.file_cache.ModelCache`).

    Args:
        profile: a GGUF profile (priced as stored) or a safetensors LLM (priced as converted).
        weight_dtype: None (as stored/converted) or a llama.cpp file type (``q4_k_m``, ``q8_0``,
            ``bf16`` ...) to price as ``llama-quantize`` would write it.

    Raises:
        WorkloadError: an unknown ``weight_dtype``.
    """
    return _priced.get_or_make(profile, weight_dtype, lambda: _gguf_tensor_bytes(profile, weight_dtype))


def _gguf_tensor_bytes(
    profile: ModelProfile, weight_dtype: str | None
) -> tuple[tuple[tuple[TensorInfo, str, int], ...], str]:
    arch = profile.arch
    n_layers = arch.n_layers if arch else 1 + max((t.layer or 0 for t in profile.tensors), default=0)
    has_output = any(tensor_role(t) == "output" for t in profile.tensors)
    if weight_dtype is None:
        if profile.format == "gguf":
            return tuple((t, t.dtype, t.nbytes) for t in profile.tensors), "weights as stored in the GGUF file"
        out = []
        for t in profile.tensors:
            dt = _converted_type(t)
            out.append((t, dt, nbytes(dt, t.n_elements)))
        return tuple(out), "as convert_hf_to_gguf.py writes it: matrices 16-bit, norms/biases f32"
    base, variant = parse_ftype(weight_dtype)
    try:
        canonical(base)
    except UnknownDtypeError:
        raise WorkloadError(f"llama.cpp cannot store weights as {weight_dtype!r}") from None
    n_gqa = arch.n_heads // max(1, arch.n_kv_heads) if arch else 1
    n_experts = arch.n_experts if arch else 0
    out = []
    changed = 0
    for t in profile.tensors:
        dt = quant_type(t, base, variant, n_layers=n_layers, n_experts=n_experts, n_gqa=n_gqa,
                        has_output=has_output)
        changed += dt != t.dtype
        out.append((t, dt, nbytes(dt, t.n_elements)))
    label = base.upper() + (f"_{variant.upper()}" if variant else "")
    kept = sorted({dt for _, dt, _ in out} - {base, "float32"})
    extra = f"; mix also uses {', '.join(kept)} (llama-quantize keeps output/attn_v/ffn_down higher)" if kept else ""
    return tuple(out), f"{changed} tensors re-priced as llama-quantize {label}; 1-D tensors stay f32{extra}"


# --------------------------------------------------------------------------- the runtime

CUDA_CONTEXT_BYTES = CUDA_CONTEXT_BARE_BYTES  # ggml-cuda creates a bare driver context (no torch)
# cuBLAS handle + workspace, ggml-cuda's VMM pool for temporaries (f16 conversions of activations,
# dequantised K/V for flash attention) and lazily loaded kernels. An allowance, not a measurement.
CUDA_EXTRA_BYTES = 96 * MIB
CUDA_EXTRA_HIGH_BYTES = 384 * MIB
# NOTE: common/common.h: n_ctx = 4096 (llama-cli/llama-server's long-standing -c default),
# n_ubatch = 512 (-ub); llama-context.cpp pads n_ctx to a multiple of 256 (PR #17046).
DEFAULT_N_CTX = 4096
N_UBATCH = 512
N_CTX_PAD = 256
# Model types whose sliding window llama.cpp does not implement (converted as plain llama/qwen2).
_NO_SWA = frozenset({"mistral", "mixtral", "llama", "qwen2", "qwen2_moe"})



@dataclass(frozen=True)
class LlamaCppPlan:
    """What llama.cpp would be started with, and where each part of memory lives.

    Attributes:
        n_ctx: ``-c`` (total token cells over all sequences, padded to 256).
        n_seq: ``-np`` (parallel sequences sharing the cache).
        gpu_layers: transformer layers on the GPU(s) (``-ngl``), 0 on CPU.
        full_offload: every layer and the output layer are on the GPU.
        gpu_weight_bytes / cpu_weight_bytes: weights by place (per-GPU split is done later).
        gpu_kv_bytes / cpu_kv_bytes: KV cache by place.
        kv_low_bytes: KV on the GPU side (or CPU when no GPU) with MLA's V cache viewed into K.
        compute_fa_bytes / compute_nofa_bytes: the compute buffer with and without flash attention.
        logits_bytes: the logits part of the compute buffer (n_ubatch × n_vocab × 4).
        output_bytes: the host output buffer (n_seq × n_vocab × 4).
        repacked_bytes: CPU-resident layer weights of types some ISA's ggml-cpu repacks.
        largest_cpu_layer_bytes: the biggest CPU-resident layer (copied to the GPU for big batches).
    """

    n_ctx: int
    n_seq: int
    gpu_layers: int
    full_offload: bool
    gpu_weight_bytes: int
    cpu_weight_bytes: int
    gpu_layer_bytes: tuple[int, ...]
    gpu_kv_layer_bytes: tuple[int, ...]
    gpu_other_bytes: int
    cpu_kv_bytes: int
    kv_low_bytes: int
    compute_fa_bytes: int
    compute_nofa_bytes: int
    logits_bytes: int
    output_bytes: int
    repacked_bytes: int
    largest_cpu_layer_bytes: int
    weights_note: str
    notes: tuple[str, ...]


@dataclass(frozen=True)
class _LayerSums:
    """Bytes of priced tensors by decoder layer, and of the rest (one walk per priced model)."""

    layer_bytes: tuple[int, ...]
    repackable_bytes: tuple[int, ...]  # per layer, of types CPU_REPACK takes (when the layer is on the CPU)
    embd_bytes: int  # token_embd outside the layers
    other_bytes: int  # output, final norm... outside the layers
    has_output: bool


_sums: ModelCache[_LayerSums] = ModelCache(64)


def _layer_sums(priced: tuple[tuple[TensorInfo, str, int], ...], n_layers: int) -> _LayerSums:
    def walk() -> _LayerSums:
        layers, repackable = [0] * n_layers, [0] * n_layers
        embd = other = 0
        for t, dt, b in priced:
            if t.layer is not None and 0 <= t.layer < n_layers:
                layers[t.layer] += b
                if dt in REPACKABLE:
                    repackable[t.layer] += b
            elif tensor_role(t) == "token_embd":
                embd += b
            else:
                other += b
        has_output = any(tensor_role(t) == "output" for t, _, _ in priced)
        return _LayerSums(tuple(layers), tuple(repackable), embd, other, has_output)

    return _sums.get_or_make(priced, n_layers, walk)


def plan_llamacpp(
    profile: ModelProfile,
    arch: LlmArchitecture,
    *,
    context: int,
    batch: int,
    kv_dtype: str,
    weight_dtype: str | None,
    gpu_layers: int | None,
    cuda: bool,
    swa_full: bool = False,
) -> LlamaCppPlan:
    """Lay out llama.cpp's memory for ``profile`` (see :class:`LlamaCppPlan`)."""
    priced, weights_note = gguf_tensor_bytes(profile, weight_dtype)
    n_layers = arch.n_layers
    ngl = 0 if not cuda else n_layers if gpu_layers is None else min(gpu_layers, n_layers)
    full = cuda and ngl >= n_layers
    first_gpu = n_layers - ngl  # NOTE: llama-model.cpp offloads the LAST n_gpu_layers layers
    sums = _layer_sums(priced, n_layers)
    layer_bytes = sums.layer_bytes
    repacked = sum(sums.repackable_bytes[:first_gpu])
    # NOTE: llama.cpp keeps the input embedding on the CPU (dev_input); a tied model's output
    # duplicates token_embd on the GPU when everything is offloaded.
    other_cpu = sums.embd_bytes + (0 if full else sums.other_bytes)
    other_gpu = (sums.other_bytes + (0 if sums.has_output else sums.embd_bytes)) if full else 0
    notes: list[str] = []
    n_seq = max(1, batch)
    # NOTE: llama-context.cpp pads -c to 256, then each of the -np streams to 256 again.
    n_ctx = round_up(round_up(context * n_seq, N_CTX_PAD) // n_seq, N_CTX_PAD) * n_seq
    honour_swa = arch.sliding_window is not None and (
        profile.format == "gguf" or bool(arch.layer_types) or arch.model_type not in _NO_SWA
    )
    if arch.sliding_window and not honour_swa:
        notes.append(f"llama.cpp converts {arch.model_type} as a plain model and ignores its "
                     f"{arch.sliding_window}-token sliding window: every layer caches all {n_ctx} cells")
    slides = sliding_layers(arch) if honour_swa else (False,) * n_layers
    # NOTE: llama-kv-cache-iswa.cpp: SWA layers get GGML_PAD(min(n_ctx, n_swa·n_seq + n_ubatch), 256),
    # or the full n_ctx with swa_full (the C API's default, true; common's, false).
    swa_cells = n_ctx if swa_full else round_up(min(n_ctx, (arch.sliding_window or 0) * n_seq + N_UBATCH),
                                                N_CTX_PAD)
    cells = [swa_cells if s else n_ctx for s in slides]
    # Two cell counts at most (full, sliding): price each once, not once per layer.
    kv_of = {c: (layer_kv_bytes(arch, c, kv_dtype, mla_layout="latent+v"),
                 layer_kv_bytes(arch, c, kv_dtype, mla_layout="latent")) for c in set(cells)}
    kv_layers = [kv_of[c][0] for c in cells]
    kv_low = [kv_of[c][1] for c in cells]
    on_gpu = [cuda and i >= first_gpu for i in range(n_layers)]
    n_tok = min(n_ctx, N_UBATCH)
    # NOTE: sched_reserve() (llama-context.cpp) reserves n_ubatch tokens against every cell of a
    # stream (-np streams of n_ctx/-np cells unless --kv-unified), with min(n_ubatch, n_batch) logits rows.
    reserve = ComputeShape(n_tokens=n_tok, n_kv=n_ctx // n_seq, n_outputs=n_tok)
    logits = n_tok * arch.vocab_size * 4
    cpu_layers = [b for b, g in zip(layer_bytes, on_gpu, strict=True) if not g]
    return LlamaCppPlan(
        n_ctx=n_ctx,
        n_seq=n_seq,
        gpu_layers=ngl,
        full_offload=full,
        gpu_weight_bytes=sum(b for b, g in zip(layer_bytes, on_gpu, strict=True) if g) + other_gpu,
        cpu_weight_bytes=sum(cpu_layers) + other_cpu,
        gpu_layer_bytes=tuple(b for b, g in zip(layer_bytes, on_gpu, strict=True) if g),
        gpu_kv_layer_bytes=tuple(k for k, g in zip(kv_layers, on_gpu, strict=True) if g),
        gpu_other_bytes=other_gpu,
        cpu_kv_bytes=sum(k for k, g in zip(kv_layers, on_gpu, strict=True) if not g),
        kv_low_bytes=sum(k for k, g in zip(kv_low, on_gpu, strict=True) if g == cuda),
        compute_fa_bytes=compute_buffer_bytes(arch, reserve, flash_attn=True),
        compute_nofa_bytes=compute_buffer_bytes(arch, reserve, flash_attn=False),
        logits_bytes=logits,
        output_bytes=n_seq * arch.vocab_size * 4,
        repacked_bytes=repacked,
        largest_cpu_layer_bytes=max(cpu_layers, default=0),
        weights_note=weights_note,
        notes=tuple(notes),
    )
