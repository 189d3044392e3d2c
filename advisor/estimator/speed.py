"""How fast a run goes: decode and prefill tokens/s for LLMs, inferences/s for graph models.

A roofline model (Williams, Waterman & Patterson, "Roofline", CACM 2009): each step takes the
longer of its memory traffic over the bandwidth of the memory that holds it and its arithmetic
over the compute rate of the unit that runs it, summed over the places the model is split across.

* **Decode** (one new token per sequence per step) reads every weight a token passes through once
  per step — the layers, the output head (the input embedding only one row), for MoE the experts
  the batch's tokens are routed to — plus the KV cache so far, from wherever each layer lives: GPU
  memory, unified memory, or system RAM for layers offloaded to the CPU. Tensor parallelism splits
  each layer's bytes over the GPUs, which read them at the same time; a layer split (llama.cpp
  ``--split-mode layer``, pipeline stages) runs its parts one after another. Batching shares the
  weight reads among the sequences until arithmetic (2 operations per weight per token) dominates.
* **Prefill** (the prompt, many tokens per step) is bound by arithmetic: ``2·N_active`` operations
  per token plus attention over the tokens before it. llama.cpp runs a prompt's matrix products
  for CPU-held layers on the GPU, copying those weights over PCIe once per 512-token micro-batch.
* **Graph models** (ONNX): the operations of one inference counted from the graph (Conv, MatMul,
  Gemm) against the device's rate, bounded below by the bytes it moves (weights once, every
  activation written and read once).

Peaks come from datasheets (:mod:`advisor.hardware.throughput`); what a run reaches of them is
:data:`BANDWIDTH_EFFICIENCY` and :data:`COMPUTE_EFFICIENCY`. The figures are estimates for a
well-tuned build (llama.cpp with CUDA graphs, vLLM); ``basis`` says in words what they assume.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from advisor.errors import AdvisorError
from advisor.estimator.types import Estimate, Workload
from advisor.hardware.profile import HardwareProfile
from advisor.hardware.throughput import Throughput, gpu_throughput, host_throughput
from advisor.readers.profile import LlmArchitecture, ModelProfile

# Share of the datasheet bandwidth a decode step streams at, and the fixed time each layer adds to
# every step whatever its size: the kernels a layer launches (≈ 20 graph nodes in llama.cpp's
# llama graph: norms, 7 matrix products, RoPE, the cache copy, attention, adds) each cost a launch
# and a ramp-up no bandwidth hides. Both were fitted together (least squares on relative error)
# to the CALIBRATION half of llama.cpp's published llama-bench tables, LLaMA-7B F16/Q8_0/Q4_0
# tg128 (bench/speed_accuracy.py: 13 Apple-silicon rows, 7 CUDA rows), and are checked on the
# held-out half, never fitted to it. The fit lands where the mechanisms say it should:
# BabelStream reaches 80-90 % of datasheet bandwidth on GPUs (Deakin et al. 2018), and 62 µs a
# layer is ≈ 20 nodes × 3 µs, the launch latency of a small CUDA kernel; Metal's 160 µs a layer
# (≈ 8 µs a node) is its costlier command encoding. CPU: a ggml thread-pool barrier per node,
# fitted on this machine's llama-bench runs of one model and checked on another
# (bench/llamacpp_speed_measure.py). "measured": this machine's copy benchmark already is the
# bandwidth reached.
BANDWIDTH_EFFICIENCY = {"cuda": 0.88, "metal": 0.90, "cpu": 0.70, "measured": 1.0}
LAYER_STEP_SECONDS = {"cuda": 62e-6, "metal": 160e-6, "cpu": 0.0, "measured": 0.0}
# Share of the dense peak a prefill's large matrix products reach. NOTE: cuBLAS/CUTLASS GEMMs
# of LLM shapes reach 60-80 % of the tensor-core peak (NVIDIA's "Matrix Multiplication
# Background" guide); a prefill adds attention, norms and launches between them.
COMPUTE_EFFICIENCY = {"cuda": 0.55, "metal": 0.55, "cpu": 0.50, "measured": 0.8}
# NOTE: llama.cpp runs the matrix products of CPU-held layers on the GPU when a batch has at
# least 32 tokens (ggml-cuda.cu ``ggml_backend_cuda_device_offload_op``, min_batch_size = 32),
# copying the weights over PCIe once per micro-batch (``n_ubatch``, 512 by default).
PREFILL_UBATCH = 512
# NOTE: llama.cpp multiplies a prompt by quantized weights with its MMQ kernels (ggml-cuda
# mmq.cuh): int8 tensor-core tiles whose operands are first unpacked and scaled on the CUDA
# cores. The published Q4_0 pp512 figures follow the GPU's fp32 (CUDA-core) peak, not its int8
# tensor peak: 145-270 tokens/s per fp32 TFLOP from an RTX 3060 to an H100, where the same
# figures are 8-30 % of the int8 peaks. MMQ_OPS_PER_SIMT_FLOP is the median operations reached
# per fp32 peak FLOP on the calibration half of those tables (bench/speed_accuracy.py).
MMQ_OPS_PER_SIMT_FLOP = 2.4
PCIE_BYTES_PER_S = 25e9  # PCIe 4.0 x16: 32 GB/s raw, ~25 GB/s achieved by cudaMemcpy (pinned)
# NOTE: tensor parallelism all-reduces each layer's output twice (after attention and after the
# MLP; Megatron-LM, Shoeybi et al. 2019); a small NCCL all-reduce over NVLink takes ~10 µs
# (nccl-tests all_reduce_perf at 8-64 KiB messages on 8×A100/H100).
ALLREDUCE_SECONDS = 10e-6
# NOTE: a pipeline stage hands each token's hidden state (a few KiB) to the next node: one
# network round of ~20 µs on InfiniBand/RoCE plus the engine's send/receive, ~100 µs in all
# (assumed; llama.cpp's RPC over a home LAN is slower still).
NODE_HOP_SECONDS = 100e-6
# NOTE: onnxruntime runs a graph's nodes one after another (SequentialExecutor), each with a fixed
# dispatch cost, and each ``InferenceSession.run`` from Python binds its inputs and outputs first.
# Measured here on a chain of N Relu nodes on a [1, 16] tensor (onnxruntime 1.32 CPU, one
# thread, no graph optimization; N = 1, 10, 100, 400 → 12.8, 19.8, 70, 192 µs): 0.45-0.7 µs a
# node (the higher with a compile running beside it) plus 11-12 µs a run
# (bench/micro/ort_dispatch.py). A CUDA node is a kernel launch, ~5 µs each (the launch latency
# NVIDIA's CUDA Graphs posts cite; assumed, not measured here).
ORT_RUN_SECONDS = {"cpu": 12e-6, "cuda": 20e-6}
ORT_NODE_SECONDS = {"cpu": 0.5e-6, "cuda": 5e-6}
_EXPERT_RE = re.compile(r"(_exps\.|\.experts\.)")


@dataclass(frozen=True)
class Speed:
    """How fast an option runs (None = not estimated, with ``basis`` saying why).

    Attributes:
        decode_tokens_per_second: new tokens each sequence gets per second while generating.
        decode_total_tokens_per_second: over all sequences of the batch (= decode × batch).
        prefill_tokens_per_second: prompt tokens processed per second.
        inferences_per_second: samples per second a graph model gets through at the workload's
            shapes (one run of a batch of B is B inferences).
        basis: what the figures assume, in words.
    """

    basis: str
    decode_tokens_per_second: float | None = None
    decode_total_tokens_per_second: float | None = None
    prefill_tokens_per_second: float | None = None
    inferences_per_second: float | None = None

    @property
    def rate(self) -> float | None:
        """The figure options are compared on: decode tokens/s (LLMs) or inferences/s."""
        return self.decode_tokens_per_second or self.inferences_per_second

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for name in ("decode_tokens_per_second", "decode_total_tokens_per_second", "prefill_tokens_per_second",
                     "inferences_per_second"):
            value = getattr(self, name)
            if value is not None:
                out[name] = round(value, 3 if value < 10 else 1)
        out["basis"] = self.basis
        return out

    def short(self) -> str:
        """One phrase for a person: "≈ 42 tokens/s (prompt 1 900 tokens/s)"."""
        if self.decode_tokens_per_second is not None:
            text = f"≈ {_num(self.decode_tokens_per_second)} tokens/s"
            if self.prefill_tokens_per_second is not None:
                text += f" (prompt {_num(self.prefill_tokens_per_second)} tokens/s)"
            return text
        if self.inferences_per_second is not None:
            return f"≈ {_num(self.inferences_per_second)} inferences/s"
        return "speed not estimated"

    def compact(self) -> str:
        """A table cell: "42 tok/s", "1,200 inf/s", or "—" when not estimated."""
        if self.decode_tokens_per_second is not None:
            return f"{_num(self.decode_tokens_per_second)} tok/s"
        if self.inferences_per_second is not None:
            return f"{_num(self.inferences_per_second)} inf/s"
        return "—"


def _num(x: float) -> str:
    if x >= 100:
        return f"{x:,.0f}"
    if x >= 10:
        return f"{x:.0f}"
    return f"{x:.2g}" if x >= 0.1 else f"{x:.1g}"


@dataclass(frozen=True)
class _Unit:
    """One place the model runs: its rates after efficiency."""

    label: str
    bandwidth: float
    flops: float
    source: str
    simt_flops: float | None  # a GPU's fp32 CUDA-core peak (llama.cpp's MMQ prefill), None elsewhere
    layer_seconds: float  # fixed time a layer adds to each decode step (LAYER_STEP_SECONDS)


def speed(profile: ModelProfile, workload: Workload, runtime: str, hardware: HardwareProfile,
          est: Estimate) -> Speed:
    """The speed of running ``profile`` as ``est`` describes it (see the module doc)."""
    if profile.arch is not None and est.kv_cache_bytes >= 0 and _is_llm_runtime(runtime):
        return _llm_speed(profile, profile.arch, workload, runtime, hardware, est)
    return _graph_speed(profile, workload, hardware, est)


def _is_llm_runtime(runtime: str) -> bool:
    return runtime in ("llama.cpp", "pytorch-cpu", "pytorch-cuda")


def _units(hardware: HardwareProfile, device: str) -> tuple[_Unit | None, _Unit | None]:
    """(accelerator, host): the rates of the GPU the estimate runs on and of the CPU + RAM."""
    host_tp = host_throughput(hardware)
    host = _unit(host_tp, "measured" if host_tp and host_tp.measured else "cpu", "system RAM") if host_tp else None
    if device == "cpu":
        return None, host
    gpu = next((g for g in hardware.gpus if g.vendor in ("nvidia", "apple")), None)
    gtp = gpu_throughput(gpu) if gpu is not None else None
    if gtp is None:
        return None, host
    where = "unified memory" if (gpu is not None and gpu.unified_memory) or hardware.unified_memory else "GPU memory"
    return _unit(gtp, "metal" if gpu is not None and gpu.vendor == "apple" else "cuda", where), host


def _unit(tp: Throughput, kind: str, where: str) -> _Unit:
    return _Unit(label=f"{tp.name} {where}", bandwidth=tp.memory_bandwidth * BANDWIDTH_EFFICIENCY[kind],
                 flops=tp.flops * COMPUTE_EFFICIENCY[kind], source=tp.source,
                 simt_flops=tp.simt_flops if kind == "cuda" else None, layer_seconds=LAYER_STEP_SECONDS[kind])


@dataclass(frozen=True)
class _LlmBytes:
    layers: int  # transformer-layer weights read per decode step (MoE: all experts)
    experts: int  # the expert part of ``layers``
    head: int  # output projection (the tied embedding when there is no separate one)
    active_params: int  # parameters one token passes through


def _llm_bytes(profile: ModelProfile, arch: LlmArchitecture, weight_bytes: int) -> _LlmBytes:
    """Bytes a decode step reads, by part, with the stored weights re-priced to ``weight_bytes``."""
    from advisor.estimator.runtimes.llamacpp_roles import tensor_role

    scale = weight_bytes / profile.weight_bytes if profile.weight_bytes else 1.0
    layers = experts = head = embd = 0
    params_seen = expert_params = embd_params = 0
    for t in profile.tensors:
        role = tensor_role(t)
        if t.layer is not None:
            layers += t.nbytes
            if _EXPERT_RE.search(t.name):
                experts += t.nbytes
                expert_params += t.n_elements
        elif role == "output":
            head += t.nbytes
        elif role == "token_embd":
            embd += t.nbytes
            embd_params = t.n_elements
        params_seen += t.n_elements
    if not profile.tensors:  # a header without a tensor list: all of it, once
        layers = profile.weight_bytes
    if head == 0:
        head = embd  # tied: the embedding is the output matrix
    active = profile.n_params - embd_params if head != embd or not embd else profile.n_params
    if arch.n_experts and expert_params:
        active -= int(expert_params * (1 - arch.n_experts_per_token / arch.n_experts))
    return _LlmBytes(layers=int(layers * scale), experts=int(experts * scale), head=int(head * scale),
                     active_params=max(1, active))


def _weight_bytes(profile: ModelProfile, workload: Workload, runtime: str) -> int:
    if workload.weight_dtype is None:
        return profile.weight_bytes
    from advisor.estimator.runtimes import reprice_weights

    try:
        return reprice_weights(profile, workload.weight_dtype, runtime)[0]
    except AdvisorError:
        return profile.weight_bytes


def _llm_speed(profile: ModelProfile, arch: LlmArchitecture, workload: Workload, runtime: str,
               hardware: HardwareProfile, est: Estimate) -> Speed:
    accel, host = _units(hardware, est.device)
    on_accel = est.device != "cpu"
    n_layers = max(1, arch.n_layers)
    frac = 1.0 if not on_accel else min(1.0, (workload.gpu_layers if workload.gpu_layers is not None
                                              else n_layers) / n_layers)
    if on_accel and accel is None:
        return Speed(basis=f"no bandwidth figures for {next((g.name for g in hardware.gpus), 'the GPU')}: "
                           "speed not estimated")
    if (frac < 1.0 or not on_accel) and host is None:
        return Speed(basis=f"no bandwidth figures for {hardware.cpu.model or 'the CPU'}: speed not estimated")
    weight_bytes = _weight_bytes(profile, workload, runtime)
    b = _llm_bytes(profile, arch, weight_bytes)
    tp = max(1, est.tensor_parallel)
    # llama.cpp splits by layer (--split-mode layer): its GPUs take turns; vLLM's tensor parallel
    # has every GPU read its share of each layer at once
    parallel = 1 if runtime == "llama.cpp" else max(1, tp // max(1, workload.pipeline_parallel))
    stages = max(1, workload.pipeline_parallel)
    batch = max(1, workload.batch)
    # MoE: the experts a batch touches (each token picks k of E at random: 1 − (1 − k/E)^B of them)
    touched = 1.0
    if arch.n_experts and arch.n_experts_per_token:
        touched = 1 - (1 - arch.n_experts_per_token / arch.n_experts) ** batch
    step_weights = b.layers - b.experts + b.experts * touched
    kv_read = est.kv_cache_bytes * tp * batch_fill(batch)
    layer_bytes = step_weights + kv_read
    ops = 2.0 * b.active_params * batch

    def decode_time(unit: _Unit, share: float, parallel: int) -> float:
        mem = (layer_bytes * share + (b.head if unit is accel or not on_accel else 0)) / parallel / unit.bandwidth
        # every GPU of a tensor-parallel group launches every layer's kernels
        return max(mem, ops * share / parallel / unit.flops) + n_layers * share * unit.layer_seconds

    step = 0.0
    parts = []
    if on_accel and accel is not None:
        step += decode_time(accel, frac, parallel)
        if parallel > 1:
            step += 2 * n_layers * ALLREDUCE_SECONDS
        step += (stages - 1) * NODE_HOP_SECONDS
        parts.append(f"{_pct(frac)} of the layers in {accel.label}" + (f" over {tp} GPUs" if tp > 1 else "")
                     + (f" in {stages} pipeline stages" if stages > 1 else ""))
    if not on_accel and host is not None:
        step += decode_time(host, 1.0, 1)
        parts.append(f"all of the layers in {host.label}")
    elif frac < 1.0 and host is not None:
        step += decode_time(host, 1.0 - frac, 1)
        parts.append(f"{_pct(1 - frac)} in {host.label}")
    decode = batch / step if step > 0 else None
    mmq = runtime == "llama.cpp" and weight_bytes < 1.5 * max(1, profile.n_params)  # below 12 bits a weight
    prefill = _prefill(arch, b, workload, accel if on_accel else None, host, frac, parallel, mmq=mmq)
    basis = ("decode: bytes read per token (weights" + (", active experts" if arch.n_experts else "")
             + ", KV cache at half the context) over the bandwidth of " + " and ".join(parts)
             + "; prefill: 2 operations per active parameter per token over the compute rate")
    return Speed(basis=basis, decode_tokens_per_second=decode / batch if decode else None,
                 decode_total_tokens_per_second=decode if decode and batch > 1 else None,
                 prefill_tokens_per_second=prefill)


def batch_fill(batch: int) -> float:
    """Share of the allocated KV cache a decode step reads on average: half (each sequence grows
    from empty to its full context while it generates), whatever the batch."""
    return 0.5 if batch > 0 else 0.0


def _prefill(arch: LlmArchitecture, b: _LlmBytes, workload: Workload, accel: _Unit | None, host: _Unit | None,
             frac: float, tp: int, *, mmq: bool = False) -> float | None:
    context = workload.context or workload.seq_len or 512
    prompt = max(1, workload.seq_len or context // 2)
    attn = 2 * 2 * arch.n_layers * arch.n_heads * arch.head_dim * prompt / 2  # QKᵀ and AV, causal mean
    per_token = 2.0 * b.active_params + attn
    if accel is not None:
        rate = accel.simt_flops * MMQ_OPS_PER_SIMT_FLOP if mmq and accel.simt_flops else accel.flops
        t = per_token / (rate * tp)
        if frac < 1.0:  # CPU-held layers' weights cross PCIe once per micro-batch
            t += (1.0 - frac) * b.layers / PCIE_BYTES_PER_S / min(prompt, PREFILL_UBATCH)
        return 1.0 / t
    if host is None:
        return None
    return host.flops / per_token


def _pct(x: float) -> str:
    return "all" if x >= 1.0 else f"{x * 100:.0f} %"


def _graph_speed(profile: ModelProfile, workload: Workload, hardware: HardwareProfile, est: Estimate) -> Speed:
    if est.flops <= 0 and est.traffic_bytes <= 0:
        return Speed(basis="no operation count for this model (no graph, or shapes unknown): speed not estimated")
    accel, host = _units(hardware, est.device)
    unit = accel or host
    if unit is None:
        return Speed(basis="no throughput figures for this device: speed not estimated")
    where = "cuda" if accel is not None else "cpu"
    dispatch = ORT_RUN_SECONDS[where] + est.nodes * ORT_NODE_SECONDS[where]
    t = max(est.flops / unit.flops, est.traffic_bytes / unit.bandwidth) + dispatch
    batch = _batch_of(workload, est)
    return Speed(
        basis=f"{est.flops / 1e9:,.2f} GFLOP and {est.traffic_bytes / 1e6:,.0f} MB moved per run of batch {batch} "
              f"on {unit.label}, plus {dispatch * 1e6:,.0f} µs dispatching {est.nodes} nodes",
        inferences_per_second=batch / t if t > 0 else None,
    )


def _batch_of(workload: Workload, est: Estimate) -> int:
    """Samples in one run: the leading dim of explicit ``--input`` shapes, else ``--batch``."""
    if workload.input_shapes:
        firsts = [shape[0] for shape in est.resolved_inputs.values() if shape]
        if firsts:
            return max(1, min(firsts))
    return max(1, workload.batch)
