"""Peak memory of an LLM (or any safetensors model) on PyTorch or llama.cpp: :func:`estimate_llm`.

PyTorch means Hugging Face ``model.generate()`` with SDPA attention (tensor parallel: a vLLM-style
engine); llama.cpp means ``llama-cli``/``llama-server`` with its defaults. Every part comes from a
mechanism (see :mod:`kv_cache`, :mod:`torch_overhead`, :mod:`llamacpp`); the assumptions a person
should know go into ``Estimate.notes``. :func:`reprice_weights` is the plan's entry point for
"what would the weights weigh as X".
"""

from __future__ import annotations

import dataclasses
from collections import defaultdict
from typing import Any

from advisor.dtypes import nbytes
from advisor.errors import WorkloadError
from advisor.estimator import torch_overhead as to
from advisor.estimator.cuda import CUDA_CONTEXT_TORCH_BYTES
from advisor.estimator.kv_cache import MlaLayout, kv_cache_bytes, kv_dtype_name, layer_kv_bytes, sliding_layers
from advisor.estimator.llamacpp import (
    CUDA_CONTEXT_BYTES,
    CUDA_EXTRA_BYTES,
    CUDA_EXTRA_HIGH_BYTES,
    DEFAULT_N_CTX,
    N_UBATCH,
    LlamaCppPlan,
    gguf_tensor_bytes,
    plan_llamacpp,
)
from advisor.estimator.llamacpp_cpu import REPACKABLE, CpuPeak, cpu_peak_parts, is_repacked, repacked_types
from advisor.estimator.types import MIB, Estimate, Workload
from advisor.hardware.profile import HardwareProfile
from advisor.readers.profile import LlmArchitecture, ModelProfile
from advisor.units import format_bytes

# NOTE: our choice for an unspecified Hugging Face workload: a 512-token prompt and 512 new tokens.
HF_DEFAULT_PROMPT = 512
HF_DEFAULT_NEW_TOKENS = 512
_GIB = 1024**3
_KV_NAMES = {"float32": "f32", "float16": "f16", "bfloat16": "bf16"}



def reprice_weights(profile: ModelProfile, weight_dtype: str | None, runtime: str) -> tuple[int, str]:
    """Weight bytes of ``profile`` held as ``weight_dtype`` by ``runtime``, and which tensors changed.

    llama.cpp: a GGUF type (``q4_k_m``, ``q8_0`` ...) priced as ``llama-quantize``'s mix. PyTorch:
    ``bfloat16``/``float16``/``float32`` cast every float tensor; ``int8``/``nf4``/``int4``/``fp8``
    quantize Linear weights only (embeddings, norms, lm_head stay).

    Raises:
        WorkloadError: a type the runtime cannot hold weights in.
    """
    if not profile.tensors:
        return profile.weight_bytes, "weights as stored (the file lists no tensors)"
    if runtime == "llama.cpp":
        priced, desc = gguf_tensor_bytes(profile, weight_dtype)
        return sum(b for _, _, b in priced), desc
    if profile.format == "gguf":
        raise WorkloadError(f"{runtime} cannot run a GGUF model; use llama.cpp")
    pairs, desc, _ = to.torch_weight_bytes(profile, weight_dtype)
    return sum(b for _, b in pairs), desc


def estimate_llm(profile: ModelProfile, workload: Workload, runtime: str, hardware: HardwareProfile) -> Estimate:
    """Predict the peak memory of running a safetensors or GGUF ``profile`` (see module doc)."""
    est = _llamacpp(profile, workload, hardware) if runtime == "llama.cpp" else _torch(profile, workload, runtime)
    arch = profile.arch
    if arch is not None and arch.is_moe:
        moe = (f"mixture of experts: all {arch.n_experts} experts are resident in memory although only "
               f"{arch.n_experts_per_token or '?'} run per token; the KV cache does not depend on them")
        est = dataclasses.replace(est, notes=(*est.notes, moe))
    return est


# --------------------------------------------------------------------------- workload defaults


def _hf_lengths(arch: LlmArchitecture, workload: Workload) -> tuple[int, int, list[str]]:
    """(prompt, context) tokens per sequence for Hugging Face generate(), and notes on defaults."""
    notes: list[str] = []
    prompt, context = workload.seq_len, workload.context
    if context is None:
        prompt = prompt or HF_DEFAULT_PROMPT
        context = prompt + HF_DEFAULT_NEW_TOKENS
        if arch.max_positions and context > arch.max_positions:
            context = arch.max_positions
            prompt = min(prompt, context)
        notes.append(f"no context given: assumed a {prompt}-token prompt + {context - prompt} new tokens "
                     f"= {context} tokens per sequence")
    elif prompt is None:
        long = context > 2 * HF_DEFAULT_NEW_TOKENS
        prompt = context - HF_DEFAULT_NEW_TOKENS if long else max(1, context // 2)
        notes.append(f"prompt length not given: assumed {prompt} of the {context} context tokens are the prompt")
    elif prompt > context:
        notes.append(f"prompt ({prompt}) is longer than the context ({context}): context raised to the prompt")
        context = prompt
    return prompt, context, notes


def _llamacpp_context(arch: LlmArchitecture | None, workload: Workload) -> tuple[int, list[str]]:
    if workload.context is not None:
        return max(workload.context, workload.seq_len or 0), []
    trained = arch.max_positions if arch else None
    ctx = min(trained or DEFAULT_N_CTX, DEFAULT_N_CTX)
    extra = f" (the model was trained for {trained}; recent llama-server's -c 0 uses that)" if trained else ""
    return ctx, [f"no context given: assumed llama.cpp's default -c {DEFAULT_N_CTX} per sequence{extra}"]


# --------------------------------------------------------------------------- PyTorch


def _torch(profile: ModelProfile, workload: Workload, runtime: str) -> Estimate:
    cuda = runtime == "pytorch-cuda"
    arch = profile.arch
    tp = workload.tensor_parallel if cuda else 1
    notes: list[str] = []
    if workload.tensor_parallel > 1 and not cuda:
        notes.append("tensor parallelism needs GPUs: ignored on pytorch-cpu")
    if workload.gpu_layers is not None and not cuda:
        notes.append("GPU layers apply to pytorch-cuda only: ignored on pytorch-cpu")
    if profile.tensors:
        pairs, wdesc, compute = to.torch_weight_bytes(profile, workload.weight_dtype)
    else:
        pairs, wdesc, compute = [], "weights as stored", to.load_dtype(profile)
    notes.append(wdesc)
    if workload.weight_dtype is None:
        fp32 = sum(nbytes("float32", t.n_elements) if t.dtype.startswith(("float", "bfloat")) else t.nbytes
                   for t, _ in pairs)
        notes.append(f'assumes torch_dtype="auto" (the default since transformers 5); transformers 4.x without '
                     f"torch_dtype loads float32 weights = {format_bytes(fp32)}")
    act_bytes = nbytes(compute, 1)
    n_layers = arch.n_layers if arch else 0
    ngl = n_layers if (arch is None or workload.gpu_layers is None or not cuda) else min(workload.gpu_layers, n_layers)
    dev_shares: list[int] = []
    host_w = stream = 0
    layer_sizes: dict[int, int] = defaultdict(int)
    for t, b in pairs:
        if cuda and t.layer is not None and t.layer >= ngl:
            host_w += b  # NOTE: accelerate's device_map fills the GPU with the first layers
            layer_sizes[t.layer] += b
        else:
            dev_shares.append(to.tp_weight_share(t, b, arch, tp))
    if not pairs:
        dev_shares = [-(-profile.weight_bytes // tp)]
    if host_w:
        stream = max(layer_sizes.values())
        notes.append(f"{n_layers - ngl} of {n_layers} layers stay in RAM ({format_bytes(host_w)}); accelerate copies "
                     f"each to the GPU when it runs (slow), so one layer ({format_bytes(stream)}) is also on the GPU")
    weights = sum(dev_shares)
    if cuda:
        overhead = CUDA_CONTEXT_TORCH_BYTES + to.CUBLAS_WORKSPACE_BYTES + to.LAZY_KERNELS_BYTES
        overhead += to.cuda_reserved_bytes(dev_shares) - weights
        over_low = CUDA_CONTEXT_TORCH_BYTES
        over_high = to.LAZY_KERNELS_HIGH_BYTES - to.LAZY_KERNELS_BYTES
        notes.append("CUDA context ≈621 MiB (measured through torch on an H100, driver 580, torch 2.11) + cuBLAS "
                     "workspace 32 MiB + lazily loaded kernels; the caching allocator rounds blocks to 512 B and "
                     "segments to 2 MiB / 20 MiB")
        if tp > 1:
            overhead += to.NCCL_BYTES
            over_high += to.NCCL_HIGH_BYTES - to.NCCL_BYTES
            notes.append(f"per GPU of {tp}: weights split Megatron-style (norms replicated), KV heads split "
                         f"(replicated when fewer than GPUs), plus NCCL buffers; this is what the model NEEDS — "
                         f"vLLM reserves up to gpu_memory_utilization (0.9 by default) of each GPU for its KV pool")
    else:
        overhead, over_low = to.CPU_RUNTIME_BYTES, to.CPU_LOAD_BYTES
        over_high = to.CPU_RUNTIME_HIGH_BYTES - to.CPU_RUNTIME_BYTES
        notes.append("CPU: transformers memory-maps the shards; weights loaded in their stored dtype stay views "
                     "of the files, whose pages count in RSS once read; the torch + transformers import "
                     "(~0.3 GiB) is the baseline and not counted; loading and the first forward add ~128 MiB")
    if arch is None:
        return _no_arch(profile, runtime, "cuda" if cuda else "cpu", weights, overhead, over_high, notes,
                        host_w, tp)
    prompt, context, length_notes = _hf_lengths(arch, workload)
    notes += length_notes
    kv_default = _KV_NAMES.get(compute, "bf16")
    kv_dtype = kv_dtype_name(workload.kv_cache_dtype, kv_default)
    vllm_style = tp > 1 or kv_dtype == "fp8"
    layout: MlaLayout = "latent" if vllm_style else "expanded"
    if arch.is_mla:
        notes.append("MLA: vLLM caches one latent of kv_lora_rank + rope values per token per layer; transformers' "
                     "DeepseekV2/V3 attention caches decompressed per-head K and V (far larger). Priced as "
                     + ("vLLM (latent)" if vllm_style else "transformers (decompressed)"))
    batch = workload.batch
    kv = kv_cache_bytes(arch, sequences=batch, tokens=context, kv_dtype=kv_dtype, mla_layout=layout,
                        tensor_parallel=tp)
    # NOTE: transformers' DynamicSlidingWindowLayer.update keeps `full[:, :, -window + 1:]`, a VIEW
    # of the torch.cat result, so after the prefill every sliding layer still holds the whole
    # prompt's K/V; the first decode step's cat replaces it by a window-sized tensor (cache_utils.py,
    # transformers 5.23). Measured: mistral-150m (window 256) float32, 4 × 1024 tokens, prefill peak
    # 596 MiB above the loaded model; the window-only cache would explain 96 MiB less.
    prompt_arch = arch if vllm_style else dataclasses.replace(arch, sliding_window=None, layer_types=())
    kv_prompt = kv_cache_bytes(prompt_arch, sequences=batch, tokens=prompt, kv_dtype=kv_dtype, mla_layout=layout,
                               tensor_parallel=tp)
    one_layer = layer_kv_bytes(arch, batch * context, kv_dtype, mla_layout=layout, tensor_parallel=tp)
    notes.append(f"KV cache {kv_dtype}: {batch} × {context} tokens = {format_bytes(kv)}"
                 + (" per GPU" if tp > 1 else "") + "; DynamicCache grows by torch.cat, so one layer's "
                 "K and V briefly exist twice")
    acts = to.prefill_activations(arch, batch=batch, prompt=prompt, act_bytes=act_bytes, cuda=cuda,
                                  tensor_parallel=tp)
    notes += acts.notes
    prefill = kv_prompt + acts.nominal_bytes + acts.logits_bytes
    decode = kv + one_layer + acts.logits_bytes
    activation = max(prefill, decode) - kv + stream
    high_extra = acts.high_bytes - acts.nominal_bytes
    low_weights = weights
    load_low = load_peak = load_high = 0
    if not cuda and pairs:
        cw = to.cpu_weights(pairs, arch, batch * context)
        notes += cw.notes
        high_extra += cw.high_bytes - cw.resident_bytes
        weights, low_weights = cw.resident_bytes, cw.low_bytes
        if cw.load_bytes:
            load_low = to.CPU_LOAD_BYTES + cw.load_low_bytes
            load_peak, load_high = to.CPU_LOAD_BYTES + cw.load_bytes, to.CPU_LOAD_BYTES + cw.load_high_bytes
            notes.append(f"loading copies {format_bytes(cw.load_bytes)} (cast or fused weights and the file pages "
                         f"they were read from, all held until loading ends): "
                         f"{format_bytes(load_peak)} at the end of from_pretrained")
    replay = None
    if cuda and not vllm_style:
        # HF generate() on one GPU: replay its requests through torch's caching allocator
        replay = to.cuda_generate_peak(arch, [*dev_shares, stream], batch=batch, prompt=prompt, context=context,
                                       act_bytes=act_bytes, kv_dtype=kv_dtype, mla_layout=layout)
        cached = replay.reserved - replay.allocated
        activation = max(0, replay.allocated - weights - kv - to.CUBLAS_WORKSPACE_BYTES)
        overhead = CUDA_CONTEXT_TORCH_BYTES + to.LAZY_KERNELS_BYTES + replay.reserved - weights - kv - activation
        # high end: the cached part depends on the order of frees inside kernels and modeling code
        # (reordering two frees per layer in the replay moved it by up to 60 %): up to twice it; a
        # padded batch adds transformers' 4-D bool mask (alive all forward) and repeat_kv's K/V.
        padded = batch * prompt * prompt + 2 * batch * prompt * arch.n_heads * arch.head_dim * act_bytes
        high_extra = cached + (padded if batch > 1 else 0)
        notes.append(f"caching allocator (its requests replayed): {format_bytes(replay.reserved)} reserved at the "
                     f"peak for {format_bytes(replay.allocated)} of live tensors; {format_bytes(cached)} are freed "
                     "blocks later requests do not fit (prefill transients, outgrown KV tensors), still shown by "
                     "nvidia-smi until torch.cuda.empty_cache() or memory pressure returns them")
    elif cuda:
        n_tensors = 2 * sum(1 for s in sliding_layers(arch) if not s)
        per_tensor = one_layer // 2
        slack = n_tensors * min(per_tensor, MIB)
        overhead += slack
        stranded = min(kv, to.stranded_cache_bytes(n_tensors, per_tensor))
        if stranded:
            high_extra += stranded
            notes.append(f"the caching allocator may keep up to {format_bytes(stranded)} of outgrown KV blocks "
                         "reserved "
                         f"(nvidia-smi shows them; torch.cuda.empty_cache() or memory pressure returns them)")
    run_peak = weights + kv + activation + overhead
    peak = max(run_peak, load_peak)
    if load_peak > run_peak:
        notes.append("the peak is reached while loading, not while generating")
    low = int(max(low_weights + kv_prompt + acts.nominal_bytes // 2 + over_low, load_low) * 0.98)
    high = int(max(run_peak + high_extra + over_high, load_high) * 1.03)
    if replay is not None:
        # low: memory pressure makes the allocator free its cached blocks and retry (release_cached_blocks)
        low = over_low + replay.allocated
        high = run_peak + high_extra + over_high
    host = None
    if cuda:
        staging = max((b for _, b in pairs), default=0)
        host = host_w + staging
        notes.append(f"RAM: shards are memory-mapped while loading (page cache the OS can reclaim); one tensor "
                     f"(≤ {format_bytes(staging)}) may be staged in RAM"
                     + (f"; offloaded layers {format_bytes(host_w)}" if host_w else ""))
    return Estimate(
        runtime=runtime, device="cuda" if cuda else "cpu", weights_bytes=weights, activation_bytes=activation,
        kv_cache_bytes=kv, overhead_bytes=overhead, peak_bytes=peak, low_bytes=min(low, peak),
        high_bytes=max(high, peak), host_bytes=host, tensor_parallel=tp, notes=tuple(notes),
        resolved_inputs={"tokens": (batch, context)},
    )


def _no_arch(profile: ModelProfile, runtime: str, device: str, weights: int, overhead: int, over_high: int,
             notes: list[str], host_w: int, tp: int) -> Estimate:
    """A model with no decoder architecture: weights + runtime, activations unknown (range widened)."""
    widen = max(weights // 2, 64 * MIB)
    notes.append(f"not a decoder LLM the estimator knows: activations are unknown and not counted; the high end "
                 f"adds {format_bytes(widen)} (half the weights) for them — export to ONNX for a graph-level estimate")
    peak = weights + overhead
    return Estimate(
        runtime=runtime, device="cuda" if device == "cuda" else "cpu", weights_bytes=weights,
        activation_bytes=0, kv_cache_bytes=0, overhead_bytes=overhead, peak_bytes=peak,
        low_bytes=int(weights * 0.98), high_bytes=int((peak + over_high + widen) * 1.03),
        host_bytes=(host_w + max((t.nbytes for t in profile.tensors), default=0)) if device == "cuda" else None,
        tensor_parallel=tp, notes=tuple(notes),
    )


# --------------------------------------------------------------------------- llama.cpp


def _llamacpp_cpu(profile: ModelProfile, arch: LlmArchitecture, workload: Workload, hardware: HardwareProfile,
                  plan: LlamaCppPlan, context: int, kv_all: int, notes: list[str]) -> Estimate:
    """llama.cpp on the CPU: the resident set at its peak (see :mod:`advisor.estimator.llamacpp_cpu`)."""
    priced, _ = gguf_tensor_bytes(profile, workload.weight_dtype)
    prompt = min(workload.seq_len or context, context)

    def parts(**kw: Any) -> CpuPeak:
        args: dict[str, Any] = {"prompt": prompt, **kw}
        return cpu_peak_parts(profile, arch, priced, n_ctx=plan.n_ctx, n_seq=plan.n_seq, kv_bytes=kv_all,
                              cpu=hardware.cpu, **args)

    p = parts()
    quant_v = kv_all and workload.kv_cache_dtype in ("q8_0", "q4_0")
    # The range: low = a short prompt (few compute pages touched) or --no-mmap, the parts we
    # cannot see (runtime tables) halved; high = -fa off, --no-mmap, an ISA that repacks more types.
    low_prompt = 1 if workload.seq_len is None else prompt
    # --no-mmap holds repacked weights once (no mapped copy): lower for Q4_0-like models on AVX2.
    low_p = min(parts(prompt=low_prompt), parts(prompt=low_prompt, use_mmap=False), key=lambda c: c.peak_bytes)
    highs = [p.peak_bytes, parts(use_mmap=False).peak_bytes]
    if not quant_v:
        highs.append(parts(flash_attn=False).peak_bytes)
    unknown_isa = repacked_types(hardware.cpu) is None
    maybe_repacked = sum(b for t, dt, b in priced if is_repacked(t, dt, REPACKABLE))
    extra_high = maybe_repacked if unknown_isa else 0
    low = int((low_p.peak_bytes - low_p.runtime_bytes // 2 - (kv_all - plan.kv_low_bytes)) * 0.97)
    high = int((max(highs) + extra_high) * 1.03)
    notes.append(f"weights are memory-mapped with MAP_POPULATE: the whole file ({format_bytes(p.weights_bytes)}) is "
                 f"resident once loaded (the OS can evict it under pressure, at a large speed cost; --mlock pins it)")
    if p.repacked_bytes:
        notes.append(f"ggml-cpu repacks {format_bytes(p.repacked_bytes)} of weights into its own interleaved buffer "
                     f"(CPU_REPACK); their file pages stay mapped too, so they count twice (--no-repack avoids it)")
    elif unknown_isa and maybe_repacked:
        notes.append(f"the CPU's ISA is unknown: ggml-cpu may repack up to {format_bytes(maybe_repacked)} of "
                     "weights into a second copy (high end)")
    notes.append(f"compute: {format_bytes(p.compute_bytes)} touched by a {prompt}-token prompt (buffer reserved "
                 f"{format_bytes(p.compute_reserved_bytes)}, pages touched only as graphs use them) + ggml-cpu's "
                 "work buffer; the KV cache is cleared at start, so all of it is resident")
    return Estimate(
        # the repacked copy is runtime overhead: the weights themselves are counted once (the file)
        runtime="llama.cpp", device="cpu", weights_bytes=p.weights_bytes,
        activation_bytes=p.compute_bytes + p.output_bytes, kv_cache_bytes=kv_all,
        overhead_bytes=p.runtime_bytes + p.repacked_bytes, peak_bytes=p.peak_bytes, low_bytes=min(low, p.peak_bytes),
        high_bytes=max(high, p.peak_bytes), notes=tuple(notes), resolved_inputs={"tokens": (plan.n_seq, context)},
    )


def _llamacpp(profile: ModelProfile, workload: Workload, hardware: HardwareProfile) -> Estimate:
    arch = profile.arch
    context, notes = _llamacpp_context(arch, workload)
    kv_dtype = kv_dtype_name(workload.kv_cache_dtype, "f16")
    if kv_dtype == "fp8":
        raise WorkloadError("llama.cpp has no fp8 KV cache; use q8_0 (--cache-type-k q8_0 --cache-type-v q8_0)")
    cuda = hardware.has_cuda_gpu and workload.gpu_layers != 0
    tp = max(1, workload.tensor_parallel) if cuda else 1
    if workload.gpu_layers and not hardware.has_cuda_gpu:
        notes.append("no NVIDIA GPU on the target: GPU layers ignored, everything runs from RAM")
    if workload.tensor_parallel > 1 and not cuda:
        notes.append("tensor parallelism needs GPUs: ignored")
    if arch is None:
        priced, wdesc = gguf_tensor_bytes(profile, workload.weight_dtype)
        weights = sum(b for _, _, b in priced) if priced else profile.weight_bytes
        overhead = CUDA_CONTEXT_BYTES + CUDA_EXTRA_BYTES if cuda else 0
        extra = CUDA_EXTRA_HIGH_BYTES - CUDA_EXTRA_BYTES if cuda else 0
        return _no_arch(profile, "llama.cpp", "cuda" if cuda else "cpu", weights, overhead, extra,
                        [*notes, wdesc], 0, 1)
    plan = plan_llamacpp(profile, arch, context=context, batch=workload.batch, kv_dtype=kv_dtype,
                         weight_dtype=workload.weight_dtype, gpu_layers=workload.gpu_layers, cuda=cuda)
    notes += [plan.weights_note, *plan.notes]
    notes.append(f"started as -c {plan.n_ctx} -np {plan.n_seq}: llama.cpp's -c is the TOTAL of token cells all "
                 f"sequences share ({workload.batch} × {context}, padded to 256), unlike vLLM/HF's per-sequence "
                 f"length; KV cache {kv_dtype} (-ctk/-ctv)")
    quant_v = kv_dtype in ("q8_0", "q4_0")
    fa_gap = 0 if quant_v else plan.compute_nofa_bytes - plan.compute_fa_bytes
    notes.append(f"compute buffer for a {N_UBATCH}-token ubatch with flash attention (-fa auto, the recent "
                 f"default) = {plan.compute_fa_bytes / MIB:.0f} MiB; "
                 + ("a quantized V cache requires flash attention" if quant_v else
                    f"without it the n_ctx × n_ubatch × n_head f32 scores make it "
                    f"{plan.compute_nofa_bytes / MIB:.0f} MiB (high end)"))
    kv_all = plan.cpu_kv_bytes + sum(plan.gpu_kv_layer_bytes)
    if arch.is_mla:
        notes.append("MLA in llama.cpp: K cache holds kv_lora_rank + rope values, V cache kv_lora_rank values "
                     "per token per layer; builds that view V inside K use less (low end)")
    if not cuda:
        return _llamacpp_cpu(profile, arch, workload, hardware, plan, context, kv_all, notes)
    # Layers are split over the GPUs in contiguous runs (--split-mode layer); the last GPU also holds
    # the output layer. The per-GPU figure is the fullest GPU.
    n = len(plan.gpu_layer_bytes)
    bounds = [round(i * n / tp) for i in range(tp + 1)]
    best = (0, 0, 0)
    for i in range(tp):
        w = sum(plan.gpu_layer_bytes[bounds[i]:bounds[i + 1]]) + (plan.gpu_other_bytes if i == tp - 1 else 0)
        k = sum(plan.gpu_kv_layer_bytes[bounds[i]:bounds[i + 1]])
        best = max(best, (w + k, w, k))
    _, weights, kv_gpu = best
    overhead = CUDA_CONTEXT_BYTES + CUDA_EXTRA_BYTES
    compute = plan.compute_fa_bytes if (n or plan.full_offload) else plan.compute_fa_bytes - plan.logits_bytes
    peak = weights + kv_gpu + compute + overhead
    gpu_kv_total = sum(plan.gpu_kv_layer_bytes)
    kv_low_share = plan.kv_low_bytes * kv_gpu // gpu_kv_total if gpu_kv_total else 0
    low = int((peak - (kv_gpu - kv_low_share) - (CUDA_EXTRA_BYTES // 2)) * 0.98)
    high_extra = fa_gap + CUDA_EXTRA_HIGH_BYTES - CUDA_EXTRA_BYTES
    host_compute = N_UBATCH * arch.hidden_size * 4 if plan.full_offload else plan.logits_bytes
    host = plan.cpu_weight_bytes + plan.cpu_kv_bytes + host_compute + plan.output_bytes
    if plan.full_offload:
        notes.append(f"all {arch.n_layers} layers and the output layer on the GPU (-ngl 999); token_embd stays "
                     f"in RAM (memory-mapped), as llama.cpp always does")
    else:
        high_extra += plan.largest_cpu_layer_bytes
        notes.append(f"-ngl {plan.gpu_layers}: the last {plan.gpu_layers} of {arch.n_layers} layers on the GPU, "
                     f"the rest, token_embd and the output layer in RAM ({format_bytes(host)}); "
                     f"note -ngl {arch.n_layers} "
                     f"still keeps the output layer on the CPU — use -ngl {arch.n_layers + 1} or 999; for big "
                     f"batches ggml copies a CPU layer's weights to the GPU (high end)")
    if tp > 1:
        high_extra += compute
        notes.append(f"per GPU of {tp} (--split-mode layer: contiguous layers per GPU, output on the last); "
                     f"pipeline parallelism keeps extra compute-buffer copies (high end)")
    notes.append("CUDA context ≈527 MiB (bare driver context, measured on an H100, driver 580) + cuBLAS, ggml's "
                 "CUDA pool and kernels (allowance)")
    return Estimate(
        runtime="llama.cpp", device="cuda", weights_bytes=weights, activation_bytes=compute,
        kv_cache_bytes=kv_gpu, overhead_bytes=overhead, peak_bytes=peak, low_bytes=low,
        high_bytes=int((peak + high_extra) * 1.02), host_bytes=host, tensor_parallel=tp, notes=tuple(notes),
        resolved_inputs={"tokens": (plan.n_seq, context)},
    )
