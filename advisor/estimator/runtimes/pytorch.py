"""PyTorch as people run LLMs and other safetensors models: Hugging Face ``model.generate()``.

The whole estimate for ``pytorch-cpu`` and ``pytorch-cuda`` (tensor parallel: a vLLM-style engine):
weights as transformers holds them (:mod:`advisor.estimator.runtimes.pytorch_parts`: mmap'd views,
casts, MoE fusion, glibc's heap), the KV cache (:mod:`advisor.estimator.mechanisms.kv_cache`),
prefill activations and logits, and on CUDA every request replayed through torch's caching
allocator (:mod:`advisor.estimator.mechanisms.cuda_caching_allocator`). The assumptions a person
should know go into ``Estimate.notes``.
"""

from __future__ import annotations

import dataclasses
from collections import defaultdict
from collections.abc import Sequence
from typing import Any

from advisor.dtypes import nbytes
from advisor.errors import WorkloadError
from advisor.estimator.file_cache import ModelCache
from advisor.estimator.mechanisms.cuda_context import CUDA_CONTEXT_TORCH_BYTES
from advisor.estimator.mechanisms.kv_cache import (
    MlaLayout,
    kv_cache_bytes,
    kv_dtype_name,
    layer_kv_bytes,
    sliding_layers,
)
from advisor.estimator.runtimes import pytorch_parts as to
from advisor.estimator.runtimes.weights_only import weights_only_estimate
from advisor.estimator.types import MIB, Estimate, Workload
from advisor.readers.profile import LlmArchitecture, ModelProfile, TensorInfo
from advisor.units import format_bytes

# NOTE: our choice for an unspecified Hugging Face workload: a 512-token prompt and 512 new tokens.
HF_DEFAULT_PROMPT = 512
HF_DEFAULT_NEW_TOKENS = 512
_GIB = 1024**3
_KV_NAMES = {"float32": "f32", "float16": "f16", "bfloat16": "bf16"}

def weight_bytes_as(profile: ModelProfile, weight_dtype: str | None, runtime: str) -> tuple[int, str]:
    """Weight bytes transformers holds for ``profile`` as ``weight_dtype``, and which tensors changed.

    ``bfloat16``/``float16``/``float32`` cast every float tensor; ``int8``/``nf4``/``int4``/``fp8``
    quantize Linear weights only (embeddings, norms, lm_head stay).

    Raises:
        WorkloadError: a GGUF model (PyTorch cannot run it) or a type it cannot hold weights in.
    """
    if profile.format == "gguf":
        raise WorkloadError(f"{runtime} cannot run a GGUF model; use llama.cpp")
    pairs, desc, _ = to.torch_weight_bytes(profile, weight_dtype)
    return sum(b for _, b in pairs), desc


def estimate(profile: ModelProfile, workload: Workload, runtime: str) -> Estimate:
    """Predict the peak memory of running ``profile`` with ``generate()`` on ``runtime`` (see module doc)."""
    return _torch(profile, workload, runtime)


def hf_lengths(arch: LlmArchitecture, workload: Workload) -> tuple[int, int, list[str]]:
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



_split: ModelCache[Any] = ModelCache(256)


def _device_split(pairs: Sequence[tuple[TensorInfo, int]], arch: LlmArchitecture | None, *, cuda: bool, ngl: int,
                  tp: int) -> tuple[tuple[int, ...], int, int]:
    """(bytes of each tensor on one GPU, bytes left in RAM, the largest layer left in RAM): the
    first ``ngl`` layers on the GPU (accelerate's device_map fills the GPU with the first layers)."""
    dev_shares: list[int] = []
    host_w = 0
    layer_sizes: dict[int, int] = defaultdict(int)
    for t, b in pairs:
        if cuda and t.layer is not None and t.layer >= ngl:
            host_w += b
            layer_sizes[t.layer] += b
        else:
            dev_shares.append(to.tp_weight_share(t, b, arch, tp))
    return tuple(dev_shares), host_w, max(layer_sizes.values(), default=0)


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
        pairs, wdesc, compute = (), "weights as stored", to.load_dtype(profile)
    notes.append(wdesc)
    if workload.weight_dtype is None:
        fp32 = _split.get_or_make(pairs, "fp32", lambda: sum(
            nbytes("float32", t.n_elements) if t.dtype.startswith(("float", "bfloat")) else t.nbytes for t, _ in pairs))
        notes.append(f'assumes torch_dtype="auto" (the default since transformers 5); transformers 4.x without '
                     f"torch_dtype loads float32 weights = {format_bytes(fp32)}")
    act_bytes = nbytes(compute, 1)
    n_layers = arch.n_layers if arch else 0
    ngl = n_layers if (arch is None or workload.gpu_layers is None or not cuda) else min(workload.gpu_layers, n_layers)
    dev_shares, host_w, largest_host_layer = _split.get_or_make(
        pairs, (cuda, ngl, tp, arch), lambda: _device_split(pairs, arch, cuda=cuda, ngl=ngl, tp=tp))
    stream = 0
    if not pairs:
        dev_shares = (-(-profile.weight_bytes // tp),)
    if host_w:
        stream = largest_host_layer
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
        return weights_only_estimate(profile, runtime, "cuda" if cuda else "cpu", weights, overhead, over_high, notes,
                        host_w, tp)
    prompt, context, length_notes = hf_lengths(arch, workload)
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
    cw = None
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
    reclaimable, need_note = 0, ""
    if cw is not None:
        # NOTE: clean file pages nothing reads again (mm/vmscan.c reclaims them under pressure at no
        # cost): sources of copies kept mapped while running, every source page while loading.
        run_need = run_peak - cw.kept_source_bytes
        load_need = load_peak - cw.source_bytes + cw.largest_source_bytes if load_peak else 0
        reclaimable = max(0, peak - max(run_need, load_need))
        parts = []
        if reclaimable:
            parts.append(f"{format_bytes(reclaimable)} of the peak are file pages weights were copied from "
                         "(cast or fused at load), which nothing reads again: the OS drops them when memory is "
                         "short")
        if cw.mapped_bytes > 64 * MIB:
            parts.append(f"{format_bytes(cw.mapped_bytes)} are weights that stay memory-mapped views of the "
                         "files: with less memory the run still completes, but every token reads them from disk "
                         "again, several times slower (bench/results/required_cpu.txt), so they count in the need")
        need_note = "; ".join(parts)
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
        resolved_inputs={"tokens": (batch, context)}, reclaimable_bytes=reclaimable, required_note=need_note,
    )
