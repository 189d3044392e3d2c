"""Options that move work elsewhere: CPU offload, experts on the CPU, mmap, more GPUs, the cloud."""

from __future__ import annotations

import re
from dataclasses import replace

from advisor.errors import AdvisorError
from advisor.estimator import default_runtime
from advisor.estimator.fit import gpu_margin
from advisor.estimator.mechanisms.cuda_context import CUDA_CONTEXT_TORCH_BYTES
from advisor.estimator.runtimes import reprice_weights
from advisor.estimator.types import Workload
from advisor.hardware.profile import HardwareProfile
from advisor.plan import commands
from advisor.plan.options import PlanContext
from advisor.plan.quantize import gpu_fp8, llm_weight_choices, with_tensors
from advisor.plan.search import Trial, n_gpu_copies, option
from advisor.plan.types import PlanOption
from advisor.units import format_bytes

TP_SIZES = (2, 4, 8)
# Expert tensors: GGUF ``blk.N.ffn_up_exps.weight``; Hugging Face ``model.layers.N.mlp.experts.M.``.
_EXPERT_RE = re.compile(r"(_exps\.|\.experts\.)")


def _discrete_nvidia(hardware: HardwareProfile) -> list[int]:
    return [g.index for g in hardware.gpus
            if g.vendor == "nvidia" and not g.unified_memory and g.memory_total_bytes is not None]


def offload(ctx: PlanContext) -> list[PlanOption]:
    """Layers split between GPU and CPU; MoE experts on the CPU; llama.cpp's memory-mapped weights."""
    a = ctx.analysis
    out: list[PlanOption] = []
    arch = a.model.arch
    on_gpu = a.estimate.device == "cuda" and bool(_discrete_nvidia(a.hardware))
    if ctx.is_llm and arch is not None and on_gpu and not a.fit.fits:
        best = ctx.ev.largest(0, arch.n_layers - 1, lambda n: ctx.run(gpu_layers=n, tensor_parallel=1))
        if best is not None and best.workload.gpu_layers is not None:
            n = best.workload.gpu_layers
            out.append(option(
                best, kind="offload", title=f"Offload: {n} of {arch.n_layers} layers on the GPU, the rest on the CPU",
                risk="medium", quality_rank=0,
                risk_reason="layers on the CPU run at system-RAM speed: generation slows several-fold",
                how_to=_offload_how(ctx, best, n), detail=_host_detail(best),
            ))
        else:
            quantized = _quantized_offload(ctx, arch.n_layers)
            if quantized is not None:
                out.append(quantized)
        if arch.is_moe:
            moe = _experts_on_cpu(ctx)
            if moe is not None:
                out.append(moe)
    if (a.runtime == "llama.cpp" or a.model.format == "gguf") and not a.fit.fits:
        out.append(PlanOption(
            kind="offload", title="Memory-mapped weights (llama.cpp's default)", peak_bytes=None, fits=False,
            headroom_bytes=None, risk="high", quality_rank=0,
            risk_reason="runs, but pages weights in from disk for every token when RAM is short: very slow",
            how_to=commands.llama_server(a.model, workload=a.workload)
            + "   # mmap is the default; add --no-mmap to load into RAM, --mlock to pin",
            detail="llama.cpp maps the GGUF file instead of copying it: weights count as page cache the OS can "
                   "drop and re-read, so a model a little larger than RAM starts but thrashes the disk.",
        ))
    return out


def _quantized_offload(ctx: PlanContext, n_layers: int) -> PlanOption | None:
    """When the stored weights are too big even split over GPU and RAM: the best llama.cpp weight type
    whose GPU/CPU split fits (the usual way to run a 70B model on one consumer GPU)."""
    a = ctx.analysis
    for choice in llm_weight_choices(a.model, "llama.cpp", cuda=True):
        if choice.runtime != "llama.cpp":
            continue

        def split(n: int, dtype: str = choice.weight_dtype) -> Trial | None:
            wl = replace(a.workload, gpu_layers=n, tensor_parallel=1, weight_dtype=dtype)
            return ctx.ev.trial(a.model, wl, "llama.cpp", a.hardware)

        best = ctx.ev.largest(0, n_layers - 1, split)
        if best is None or best.workload.gpu_layers is None:
            continue
        n = best.workload.gpu_layers
        serve = f"llama-server -m {_written_gguf(choice.how_to)} -ngl {n}"
        return option(
            best, kind="offload",
            title=f"{choice.weight_dtype.upper()} weights, {n} of {n_layers} layers on the GPU, the rest on the CPU",
            risk="high" if choice.risk == "high" else "medium", quality_rank=choice.quality_rank,
            risk_reason=f"{choice.risk_reason}; layers on the CPU run at system-RAM speed, generation slows",
            how_to=f"{choice.how_to}\n{serve}",
            detail=f"weights as {choice.weight_dtype.upper()} (llama.cpp); " + _host_detail(best),
        )
    return None


def _written_gguf(how_to: str) -> str:
    """The GGUF file the last command of a conversion writes (``llama-quantize IN OUT TYPE`` or ``--outfile OUT``)."""
    words = how_to.splitlines()[-1].split()
    if len(words) >= 3 and words[0] == "llama-quantize":
        return words[-2]
    if "--outfile" in words:
        return words[words.index("--outfile") + 1]
    return "MODEL.gguf"


def _offload_how(ctx: PlanContext, best: Trial, n: int) -> str:
    a = ctx.analysis
    if a.runtime == "llama.cpp":
        return commands.llama_server(a.model, f"-ngl {n}", workload=a.workload)
    gpu = next(g for g in a.hardware.gpus if g.vendor == "nvidia")
    vram = gpu.memory_total_bytes or 0
    gpu_gib = max(1, (vram - gpu_margin(vram)) // 1024**3)
    ram_gib = max(1, int(a.hardware.memory_total_bytes * 0.8) // 1024**3)
    return commands.hf_load(a.model, "pytorch-cuda", f"max_memory={{0: '{gpu_gib}GiB', 'cpu': '{ram_gib}GiB'}}")


def _host_detail(t: Trial) -> str:
    host = t.estimate.host_bytes or 0
    return f"GPU {format_bytes(t.estimate.peak_bytes)}, system RAM {format_bytes(host + t.extra_host_bytes)}"


def _experts_on_cpu(ctx: PlanContext) -> PlanOption | None:
    a = ctx.analysis
    experts = [t for t in a.model.tensors if _EXPERT_RE.search(t.name)]
    if not experts:
        return None
    rest = with_tensors(a.model, [t for t in a.model.tensors if not _EXPERT_RE.search(t.name)])
    expert_bytes = sum(t.nbytes for t in experts)
    t = ctx.ev.trial(rest, replace(a.workload, gpu_layers=None, tensor_parallel=1), "llama.cpp", a.hardware,
                     extra_host_bytes=expert_bytes)
    if t is None:
        return None
    how = commands.llama_server(a.model, "-ngl 999", "--override-tensor exps=CPU", workload=a.workload)
    how += "\n# or keep the experts of the first N layers on the CPU only: --n-cpu-moe N"
    return option(
        t, kind="offload", title=f"MoE experts on the CPU ({len(experts)} expert tensors)", risk="medium",
        quality_rank=0, risk_reason="expert matmuls run on the CPU: slower, but only the active experts are read",
        how_to=how, detail=f"experts {format_bytes(expert_bytes)} in system RAM; " + _host_detail(t),
    )


def multi_gpu(ctx: PlanContext) -> list[PlanOption]:
    """Tensor parallel over 2/4/8 GPUs like the target's (its own, or a machine with more of them)."""
    a = ctx.analysis
    if not ctx.is_llm or a.fit.fits or not _discrete_nvidia(a.hardware) or a.estimate.device != "cuda":
        return []
    have = len(_discrete_nvidia(a.hardware))
    runtime = a.runtime
    for dtype_choice in (None, *_fallback_dtypes(ctx, runtime, fp8=gpu_fp8(a.hardware))):
        for n in TP_SIZES:
            hw = a.hardware if have >= n else n_gpu_copies(a.hardware, n)
            wl = replace(a.workload, tensor_parallel=n, gpu_layers=None,
                         weight_dtype=dtype_choice or a.workload.weight_dtype)
            t = ctx.ev.trial(a.model, wl, runtime, hw)
            if t is not None and t.fits:
                where = "on this machine" if have >= n else f"needs a machine with {n} of them"
                gpu = hw.gpus[0].name
                title = f"Tensor parallel over {n}× {gpu} ({where})"
                if dtype_choice:
                    title += f", weights {dtype_choice}"
                return [option(
                    t, kind="multi-gpu", title=title, risk="medium", quality_rank=2 if dtype_choice else 0,
                    risk_reason="each GPU holds 1/N of the weights and KV cache; needs fast GPU links",
                    how_to=_tp_how(ctx, t), detail=f"per GPU {format_bytes(t.estimate.peak_bytes)}",
                    hardware_name=hw.name,
                )]
    return []


def _fallback_dtypes(ctx: PlanContext, runtime: str, *, fp8: bool) -> list[str]:
    """Weight types to combine with more GPUs when the stored ones do not fit (best quality first;
    fp8 when the GPUs run it)."""
    choices = llm_weight_choices(ctx.model, runtime, cuda=True, fp8=fp8)
    ranked = sorted((c for c in choices if c.runtime == runtime), key=lambda c: c.quality_rank)
    return [c.weight_dtype for c in ranked][:3]


def _tp_how(ctx: PlanContext, t: Trial) -> str:
    n = t.workload.tensor_parallel
    if t.runtime == "llama.cpp":
        split = ",".join(["1"] * n)
        return commands.llama_server(ctx.model, "-ngl 999", "--split-mode layer", f"--tensor-split {split}",
                                     workload=replace(t.workload, tensor_parallel=1))
    return commands.vllm_serve(ctx.model, vllm_quant_flag(t.workload.weight_dtype), workload=t.workload)


def vllm_quant_flag(weight_dtype: str | None) -> str:
    """vLLM's ``--quantization`` for a weight type the plan re-estimated ("" for as stored)."""
    return {"int8": "--quantization bitsandbytes", "nf4": "--quantization bitsandbytes",
            "fp8": "--quantization fp8", "awq": "--quantization awq"}.get(weight_dtype or "", "")


def cloud(ctx: PlanContext) -> list[PlanOption]:
    """The cheapest catalog cloud instance where the model fits (tensor parallel over its GPUs if needed)."""
    a = ctx.analysis
    instances = sorted(
        (h for h in ctx.catalog if h.kind == "cloud" and h.price_per_hour_usd is not None),
        key=lambda h: (h.price_per_hour_usd or 0.0, h.device_id or h.name),
    )
    best = _cheapest(ctx, instances, None)
    out: list[PlanOption] = []
    if best is None and ctx.is_llm:
        for dtype_choice in _fallback_dtypes(ctx, "pytorch-cuda" if a.model.format != "gguf" else "llama.cpp",
                                             fp8=True):
            best = _cheapest(ctx, instances, dtype_choice)
            if best is not None:
                break
    if best is not None:
        out.append(_cloud_option(ctx, best))
    return out


def _cheapest(ctx: PlanContext, instances: list[HardwareProfile], weight_dtype: str | None) -> Trial | None:
    a = ctx.analysis
    for inst in instances:
        if weight_dtype == "fp8" and not gpu_fp8(inst):
            continue
        runtime = a.runtime if a.runtime == "llama.cpp" else default_runtime(a.model, inst)
        n_gpus = len(_discrete_nvidia(inst))
        sizes = [1, *TP_SIZES] if ctx.is_llm else [1]
        for n in sizes:
            if n > 1 and n > n_gpus:
                continue
            wl = replace(a.workload, tensor_parallel=n, gpu_layers=None,
                         weight_dtype=weight_dtype or a.workload.weight_dtype)
            if _weights_cannot_fit(ctx, wl, runtime, inst):
                continue
            t = ctx.ev.trial(a.model, wl, runtime, inst)
            if t is not None and t.fits:
                return t
    return None


def _weights_cannot_fit(ctx: PlanContext, wl: Workload, runtime: str, inst: HardwareProfile) -> bool:
    """Whether the weights alone rule ``inst`` out, without an estimate (per-GPU arithmetic).

    On ``pytorch-cuda`` every weight sits on a GPU: split ``tensor_parallel`` ways (Megatron-style;
    replicated norms only add), or over all the GPUs by ``device_map='auto'`` — the fullest GPU
    then holds at least the average. That share plus the CUDA context is a lower bound of what
    the fullest GPU needs; above the largest GPU's memory, no estimate can fit. The cheapest
    instance that passes is still estimated in full, so the answer is the search's without it.
    """
    if runtime != "pytorch-cuda":
        return False
    gpus = [g for g in inst.gpus if g.vendor == "nvidia" and not g.unified_memory and g.memory_total_bytes]
    if not gpus:
        return False
    try:
        weights, _ = reprice_weights(ctx.model, wl.weight_dtype, runtime)
    except AdvisorError:
        return False  # the estimate says why
    ways = wl.tensor_parallel if wl.tensor_parallel > 1 else len(gpus)
    return weights // ways + CUDA_CONTEXT_TORCH_BYTES > max(int(g.memory_total_bytes or 0) for g in gpus)


def _cloud_option(ctx: PlanContext, t: Trial) -> PlanOption:
    h = t.hardware
    n = t.workload.tensor_parallel
    gpus = [g for g in h.gpus if g.vendor == "nvidia"]
    gpu_desc = f"{len(gpus)}× {gpus[0].name}" if gpus else "CPU only"
    if ctx.model.format == "onnx":
        how = "pip install onnxruntime-gpu\n" + commands.ort_session(ctx.model.load_path, t.runtime)
    elif t.runtime == "llama.cpp":
        how = _tp_how(ctx, t) if n > 1 else commands.llama_server(ctx.model, "-ngl 999", workload=t.workload)
    elif t.runtime == "pytorch-cuda" and ctx.is_llm:
        how = _tp_how(ctx, t)
    else:
        how = commands.hf_load(ctx.model, t.runtime)
    how = f"# on {h.name} ({h.device_id}), after copying the model there\n" + how
    price = h.price_per_hour_usd or 0.0
    title = f"Cloud: {h.name}, ${price:.2f}/h"
    if n > 1:
        title += f", tensor parallel {n}"
    if t.workload.weight_dtype and t.workload.weight_dtype != ctx.analysis.workload.weight_dtype:
        title += f", weights {t.workload.weight_dtype}"
    source = f"price read {h.catalog_date}" + (f" from {h.catalog_source}" if h.catalog_source else "")
    return option(
        t, kind="cloud", title=title, risk="medium",
        quality_rank=2 if "weights" in title else 0,
        risk_reason=f"costs ${price:.2f} per hour on demand; the model and data leave this machine",
        how_to=how,
        detail=f"{gpu_desc}, {h.provider or 'cloud'}; {source}; per GPU {format_bytes(t.estimate.peak_bytes)}",
        catalog_date=h.catalog_date,
    )



MAX_NODES = 8


def multi_node(ctx: PlanContext, *, cloud: bool) -> list[PlanOption]:
    """When one machine is not enough: an existing distributed engine over N machines.

    vLLM on a Ray cluster (``--tensor-parallel-size`` GPUs per node × ``--pipeline-parallel-size``
    nodes) over machines like the target when it has several GPUs, and over the cheapest cloud
    instance type whose N nodes fit (with the total price); llama.cpp's RPC backend (``rpc-server``
    on each box) for GGUF models on machines at home. Offered only when the model as stored does
    not fit even split over all the target's GPUs; the estimate is per GPU of each node.
    """
    a = ctx.analysis
    if not ctx.is_llm or a.fit.fits or a.estimate.device != "cuda" or not _discrete_nvidia(a.hardware):
        return []
    own = len(_discrete_nvidia(a.hardware))
    if own > 1:
        whole = ctx.ev.trial(a.model, replace(a.workload, tensor_parallel=own, gpu_layers=None), a.runtime,
                             n_gpu_copies(a.hardware, own))
        if whole is not None and whole.fits:
            return []  # the target's own GPUs are enough (multi_gpu offers that)
    out: list[PlanOption] = []
    if a.runtime == "llama.cpp" or a.model.format == "gguf":
        if a.hardware.kind != "cloud":
            rpc = _rpc_nodes(ctx)
            if rpc is not None:
                out.append(rpc)
        return out
    if own > 1:
        t = _nodes_trial(ctx, a.hardware)
        if t is not None:
            out.append(_vllm_nodes_option(ctx, t, a.hardware))
    if cloud:
        best: tuple[float, Trial, HardwareProfile] | None = None
        for inst in ctx.catalog:
            if inst.kind != "cloud" or inst.price_per_hour_usd is None or len(_discrete_nvidia(inst)) < 2:
                continue
            t = _nodes_trial(ctx, inst)
            if t is not None:
                total = inst.price_per_hour_usd * t.workload.pipeline_parallel
                if best is None or total < best[0]:
                    best = (total, t, inst)
        if best is not None:
            out.append(_vllm_nodes_option(ctx, best[1], best[2]))
    return out


def _nodes_trial(ctx: PlanContext, node: HardwareProfile) -> Trial | None:
    """The fewest nodes like ``node`` (2..MAX_NODES) whose GPUs together fit the model as stored."""
    a = ctx.analysis
    per_node = len(_discrete_nvidia(node))
    for n in range(2, MAX_NODES + 1):
        wl = replace(a.workload, tensor_parallel=per_node * n, pipeline_parallel=n, gpu_layers=None)
        hw = replace(n_gpu_copies(node, per_node * n), name=f"{n} nodes × {node.name}",
                     price_per_hour_usd=node.price_per_hour_usd * n if node.price_per_hour_usd else None,
                     device_id=node.device_id, kind=node.kind)
        t = ctx.ev.trial(a.model, wl, "pytorch-cuda", hw)
        if t is not None and t.fits:
            return t
    return None


def _vllm_nodes_option(ctx: PlanContext, t: Trial, node: HardwareProfile) -> PlanOption:
    n = t.workload.pipeline_parallel
    per_node = t.workload.tensor_parallel // n
    gpu = _discrete_nvidia_name(node)
    serve = commands.vllm_serve(ctx.model, f"--pipeline-parallel-size {n}", "--distributed-executor-backend ray",
                                workload=replace(t.workload, tensor_parallel=per_node))
    how = ("# a Ray cluster of the nodes, each with vLLM and the model at the same path\n"
           "ray start --head --port=6379                # on the first node\n"
           "ray start --address=FIRST_NODE_IP:6379      # on each other node\n" + serve)
    price = node.price_per_hour_usd
    where = f"{n} nodes like {node.name}" + (f" ({node.device_id})" if node.device_id else "")
    title = f"vLLM over {n} nodes: tensor parallel {per_node} × pipeline parallel {n} ({n * per_node}× {gpu})"
    if price:
        title += f", ${price * n:.2f}/h in all"
    return option(
        t, kind="multi-node", title=title, risk="medium", quality_rank=0,
        risk_reason="several machines to run and keep in step; needs a fast network between them "
                    "(InfiniBand/RoCE for tensor parallel inside a node, pipeline stages across nodes)",
        how_to=how, detail=f"{where}; per GPU {format_bytes(t.estimate.peak_bytes)}",
    )


def _discrete_nvidia_name(hardware: HardwareProfile) -> str:
    return next(g.name for g in hardware.gpus if g.vendor == "nvidia")


def _rpc_nodes(ctx: PlanContext) -> PlanOption | None:
    """llama.cpp's RPC backend: the layers split over N machines like this one (rpc-server on each)."""
    a = ctx.analysis
    for n in range(2, MAX_NODES + 1):
        wl = replace(a.workload, tensor_parallel=n, gpu_layers=None)
        hw = replace(n_gpu_copies(a.hardware, n), name=f"{n} machines like {a.hardware.name}")
        t = ctx.ev.trial(a.model, wl, "llama.cpp", hw)
        if t is None or not t.fits:
            continue
        hosts = ",".join(f"HOST{i}:50052" for i in range(2, n + 1))
        how = ("# on each other machine (llama.cpp built with -DGGML_RPC=ON):\n"
               "rpc-server --host 0.0.0.0 --port 50052\n# on this one:\n"
               + commands.llama_server(a.model, "-ngl 999", f"--rpc {hosts}", workload=a.workload))
        return option(
            t, kind="multi-node", title=f"llama.cpp RPC over {n} machines like this one (layers split)",
            risk="medium", quality_rank=0,
            risk_reason="each token crosses the network once per machine; a home LAN adds milliseconds per token",
            how_to=how, detail=f"per machine {format_bytes(t.estimate.peak_bytes)} on its GPU",
        )
    return None
