"""llama.cpp as people run it (``llama-cli`` / ``llama-server`` with their defaults): the whole estimate.

On the CPU the resident set at its peak (:mod:`advisor.estimator.runtimes.llamacpp_cpu`: the mmap'd
file, ggml-cpu's repacked copies, the zeroed KV cache, the touched compute buffer); with CUDA the
fullest GPU's weights, KV cache, compute buffer and context, layers placed the way ``-ngl`` and
``--split-mode layer`` place them (:mod:`advisor.estimator.runtimes.llamacpp_plan`, which also
prices ``llama-quantize``'s mixes).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from advisor.errors import WorkloadError
from advisor.estimator.mechanisms.kv_cache import kv_dtype_name
from advisor.estimator.runtimes.llamacpp_cpu import (
    REPACKABLE,
    RUNTIME_BYTES,
    RUNTIME_PER_TOKEN_BYTES,
    CpuPeak,
    cpu_peak_parts,
    is_repacked,
    repacked_types,
)
from advisor.estimator.runtimes.llamacpp_plan import (
    CUDA_CONTEXT_BYTES,
    CUDA_EXTRA_BYTES,
    CUDA_EXTRA_HIGH_BYTES,
    DEFAULT_N_CTX,
    N_UBATCH,
    LlamaCppPlan,
    gguf_tensor_bytes,
    plan_llamacpp,
)
from advisor.estimator.runtimes.weights_only import weights_only_estimate
from advisor.estimator.types import MIB, Estimate, Workload
from advisor.hardware.profile import HardwareProfile
from advisor.readers.profile import LlmArchitecture, ModelProfile
from advisor.units import format_bytes


def weight_bytes_as(profile: ModelProfile, weight_dtype: str | None) -> tuple[int, str]:
    """Weight bytes of ``profile`` as a GGUF type (``q4_k_m``, ``q8_0`` ...), priced as
    ``llama-quantize``'s mix, and a description of what changed."""
    priced, desc = gguf_tensor_bytes(profile, weight_dtype)
    return sum(b for _, _, b in priced), desc


def estimate(profile: ModelProfile, workload: Workload, hardware: HardwareProfile) -> Estimate:
    """Predict the peak memory of running ``profile`` with llama.cpp on ``hardware`` (see module doc)."""
    return _llamacpp(profile, workload, hardware)


def llamacpp_context(arch: LlmArchitecture | None, workload: Workload) -> tuple[int, list[str]]:
    """Tokens per sequence the estimate assumes (the workload's, else llama.cpp's default), and why."""
    if workload.context is not None:
        return max(workload.context, workload.seq_len or 0), []
    trained = arch.max_positions if arch else None
    ctx = min(trained or DEFAULT_N_CTX, DEFAULT_N_CTX)
    extra = f" (the model was trained for {trained}; recent llama-server's -c 0 uses that)" if trained else ""
    return ctx, [f"no context given: assumed llama.cpp's default -c {DEFAULT_N_CTX} per sequence{extra}"]



def _llamacpp_cpu(profile: ModelProfile, arch: LlmArchitecture, workload: Workload, hardware: HardwareProfile,
                  plan: LlamaCppPlan, context: int, kv_all: int, notes: list[str], swa_extra: int) -> Estimate:
    """llama.cpp on the CPU: the resident set at its peak (see :mod:`advisor.estimator.runtimes.llamacpp_cpu`)."""
    priced, _ = gguf_tensor_bytes(profile, workload.weight_dtype)
    prompt = min(workload.seq_len or context, context)

    def parts(**kw: Any) -> CpuPeak:
        args: dict[str, Any] = {"prompt": prompt, "use_mmap": workload.use_mmap, "mlock": workload.mlock,
                                "repack": workload.repack, **kw}
        return cpu_peak_parts(profile, arch, priced, n_ctx=plan.n_ctx, n_seq=plan.n_seq, kv_bytes=kv_all,
                              cpu=hardware.cpu, **args)

    p = parts()
    quant_v = kv_all and workload.kv_cache_dtype in ("q8_0", "q4_0")
    # The range: low = a short prompt (few compute pages touched) or --no-mmap, the parts we
    # cannot see (runtime tables) halved; high = -fa off, --no-mmap, an ISA that repacks more types.
    low_prompt = 1 if workload.seq_len is None else prompt
    # --no-mmap holds repacked weights once (no mapped copy): lower for Q4_0-like models on AVX2.
    lows = [parts(prompt=low_prompt), parts(prompt=low_prompt, use_mmap=False)]
    highs = [p, parts(use_mmap=not workload.use_mmap)]
    if not quant_v:
        highs.append(parts(flash_attn=False))
    unknown_isa = workload.repack and repacked_types(hardware.cpu) is None
    maybe_repacked = sum(b for t, dt, b in priced if is_repacked(t, dt, REPACKABLE))
    extra_high = (maybe_repacked if unknown_isa else 0) + swa_extra

    def span(figure: Callable[[CpuPeak], int]) -> tuple[int, int]:
        low_p = min(lows, key=figure)
        low = int((figure(low_p) - low_p.runtime_bytes // 2 - (kv_all - plan.kv_low_bytes)) * 0.97)
        return min(low, figure(p)), max(int((max(figure(h) for h in highs) + extra_high) * 1.03), figure(p))

    low, high = span(lambda c: c.peak_bytes)
    if workload.use_mmap:
        notes.append(f"weights are memory-mapped with MAP_POPULATE: the whole file ({format_bytes(p.weights_bytes)}) "
                     "is resident once loaded" + (" and pinned (llama-cpp-python use_mlock=True; llama-server "
                                                  "--load-mode mmap+mlock)" if workload.mlock else ""))
    else:
        notes.append(f"--no-mmap: the weights are read into anonymous memory ({format_bytes(p.weights_bytes)})")
    if p.repacked_bytes:
        notes.append(f"ggml-cpu repacks {format_bytes(p.repacked_bytes)} of weights into its own interleaved buffer "
                     "(CPU_REPACK)" + ("; their file pages stay mapped too, so the peak counts them twice"
                                       if workload.use_mmap else ""))
    elif unknown_isa and maybe_repacked:
        notes.append(f"the CPU's ISA is unknown: ggml-cpu may repack up to {format_bytes(maybe_repacked)} of "
                     "weights into a second copy (high end)")
    if not workload.repack:
        notes.append("--no-repack: ggml-cpu keeps no interleaved copy (slower matmuls on CPUs that repack)")
    notes.append(f"compute: {format_bytes(p.compute_bytes)} touched by a {prompt}-token prompt (buffer reserved "
                 f"{format_bytes(p.compute_reserved_bytes)}, pages touched only as graphs use them) + ggml-cpu's "
                 "work buffer; the KV cache is cleared at start, so all of it is resident")
    need_note = ""
    if p.droppable_bytes:
        what = ("the file pages of the repacked weights and the embedding rows no token reads"
                if p.repacked_bytes else "the embedding rows no token reads and the file's unread parts")
        need_note = (f"{format_bytes(p.droppable_bytes)} of the peak are {what}: clean memory-mapped pages the OS "
                     "drops when memory is short, at no cost to speed (the run needs the rest)")
    elif workload.use_mmap and workload.mlock and p.repacked_bytes:
        need_note = "--mlock pins the whole mapping, repacked weights' pages included: the run needs its full peak"
    return Estimate(
        # weights as the run holds them: the repacked copy and the mapped pages it reads again; the
        # repacked tensors' file pages (resident, never read again) are the reclaimable part
        runtime="llama.cpp", device="cpu", weights_bytes=p.held_weights_bytes,
        activation_bytes=p.compute_bytes + p.output_bytes, kv_cache_bytes=kv_all,
        overhead_bytes=p.runtime_bytes, peak_bytes=p.peak_bytes, low_bytes=low,
        high_bytes=high, notes=tuple(notes), resolved_inputs={"tokens": (plan.n_seq, context)},
        reclaimable_bytes=p.droppable_bytes, required_range=span(lambda c: c.required_bytes),
        required_note=need_note,
    )


def _llamacpp_metal(plan: LlamaCppPlan, arch: LlmArchitecture, context: int, kv_all: int, notes: list[str],
                    high_extra: int) -> Estimate:
    """llama.cpp on Apple silicon: the Metal backend, every layer on the GPU, in unified memory.

    NOTE: ggml-metal wraps the mmap'd file in Metal buffers without a copy (buffer_from_host_ptr)
    and has no host buffer type, so nothing is repacked for the GPU's layers; the KV cache and
    the compute buffer are Metal buffers. All of it is GPU working set, which Metal keeps
    resident: the need is the whole peak (advisor.estimator.fit holds it against the limit).
    """
    weights = plan.gpu_weight_bytes + plan.cpu_weight_bytes
    runtime = RUNTIME_BYTES + RUNTIME_PER_TOKEN_BYTES * arch.vocab_size
    compute = plan.compute_fa_bytes + N_UBATCH * arch.hidden_size * 4  # + the CPU-side input embedding rows
    peak = weights + kv_all + compute + plan.output_bytes + runtime
    low = int((peak - (kv_all - plan.kv_low_bytes) - runtime // 2) * 0.97)
    notes.append("Apple silicon: llama.cpp runs on Metal with every layer on the GPU (-ngl auto); the mapped weights "
                 "are used in place (no CPU repacking), KV cache and compute buffer are Metal buffers, and all of "
                 "it must fit Metal's GPU working-set limit (recommendedMaxWorkingSetSize: about 2/3 of RAM, 3/4 "
                 "on large Macs), not the whole RAM; `sudo sysctl iogpu.wired_limit_mb=N` (macOS 14+) raises it")
    return Estimate(
        runtime="llama.cpp", device="metal", weights_bytes=weights, activation_bytes=compute + plan.output_bytes,
        kv_cache_bytes=kv_all, overhead_bytes=runtime, peak_bytes=peak, low_bytes=min(low, peak),
        high_bytes=int((peak + high_extra) * 1.03), notes=tuple(notes),
        resolved_inputs={"tokens": (plan.n_seq, context)},
    )


def _llamacpp(profile: ModelProfile, workload: Workload, hardware: HardwareProfile) -> Estimate:
    arch = profile.arch
    context, notes = llamacpp_context(arch, workload)
    kv_dtype = kv_dtype_name(workload.kv_cache_dtype, "f16")
    if kv_dtype == "fp8":
        raise WorkloadError("llama.cpp has no fp8 KV cache; use q8_0 (--cache-type-k q8_0 --cache-type-v q8_0)")
    cuda = hardware.has_cuda_gpu and workload.gpu_layers != 0
    metal = not cuda and workload.gpu_layers != 0 and any(g.vendor == "apple" for g in hardware.gpus)
    tp = max(1, workload.tensor_parallel) if cuda else 1
    discrete = [g for g in hardware.gpus if g.vendor == "nvidia" and not g.unified_memory]
    if cuda and workload.tensor_parallel == 1 and len(discrete) > 1 and workload.gpu_layers is None:
        # NOTE: llama.cpp's default --split-mode layer uses every visible GPU (tensor_split follows
        # each device's free memory: even on equal GPUs), so the as-is run is spread over all of them.
        tp = len(discrete)
        notes.append(f"llama.cpp splits the layers over all {tp} visible GPUs by default (--split-mode layer); "
                     "CUDA_VISIBLE_DEVICES=0 keeps it on one")
    if workload.gpu_layers and not hardware.has_cuda_gpu:
        notes.append("no NVIDIA GPU on the target: GPU layers ignored, everything runs from RAM")
    if workload.tensor_parallel > 1 and not cuda:
        notes.append("tensor parallelism needs GPUs: ignored")
    if arch is None:
        priced, wdesc = gguf_tensor_bytes(profile, workload.weight_dtype)
        weights = sum(b for _, _, b in priced) if priced else profile.weight_bytes
        overhead = CUDA_CONTEXT_BYTES + CUDA_EXTRA_BYTES if cuda else 0
        extra = CUDA_EXTRA_HIGH_BYTES - CUDA_EXTRA_BYTES if cuda else 0
        device = "cuda" if cuda else "metal" if metal else "cpu"
        return weights_only_estimate(profile, "llama.cpp", device, weights, overhead, extra,
                        [*notes, wdesc], 0, 1)
    def lay_out(swa_full: bool) -> LlamaCppPlan:
        return plan_llamacpp(profile, arch, context=context, batch=workload.batch, kv_dtype=kv_dtype,
                             weight_dtype=workload.weight_dtype, gpu_layers=workload.gpu_layers, cuda=cuda,
                             swa_full=swa_full)

    if metal:
        cuda = True  # lay out as full offload: the Metal backend holds every layer (-ngl auto = all)
    plan = lay_out(bool(workload.swa_full))
    notes += [plan.weights_note, *plan.notes]
    swa_extra = 0  # KV the front end's swa_full would add (high end when the front end is not said)
    if workload.swa_full is None:
        full = lay_out(True)
        swa_extra = full.cpu_kv_bytes + sum(full.gpu_kv_layer_bytes) - plan.cpu_kv_bytes - sum(plan.gpu_kv_layer_bytes)
        if swa_extra:
            notes.append(f"sliding-window layers cache a window of cells, llama-server's default (--swa-full off); "
                         f"llama-cpp-python's Llama() keeps the C API's swa_full=True: every layer caches the "
                         f"whole context, {format_bytes(swa_extra)} more (high end; --swa-full)")
    elif workload.swa_full:
        notes.append("--swa-full: sliding-window layers cache the whole context too")
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
    if metal:
        return _llamacpp_metal(plan, arch, context, kv_all, notes, swa_extra + fa_gap)
    if not cuda:
        return _llamacpp_cpu(profile, arch, workload, hardware, plan, context, kv_all, notes, swa_extra)
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
    if swa_extra and gpu_kv_total:
        high_extra += swa_extra * kv_gpu // gpu_kv_total
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
