"""Options that change the model or the workload on the target itself.

Each builder re-estimates a changed profile or workload (:mod:`advisor.plan.search`) and returns
:class:`~advisor.plan.types.PlanOption` s: run as is, a smaller (or the largest) batch, a shorter
context, a quantized KV cache, lower weight precision, pruning, and the smaller-model advice.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from advisor.analysis import Analysis
from advisor.hardware.profile import HardwareProfile
from advisor.plan import commands
from advisor.plan.apply import APPLY_ONNX_INT8_DYNAMIC
from advisor.plan.quantize import (
    DYNAMIC_OP_TYPES,
    INT8_DYNAMIC_OPS,
    INT8_STATIC_OPS,
    Transformed,
    gpu_fp8,
    kv_cache_choices,
    llm_weight_choices,
    onnx_fp16,
    onnx_int4,
    onnx_int8,
)
from advisor.plan.search import MAX_BATCH, MAX_SEQUENCES, Evaluator, Trial, option
from advisor.plan.sparsity import SparsityReport, prune_structured
from advisor.plan.types import PlanOption, Risk
from advisor.readers.profile import ModelProfile
from advisor.units import format_bytes

CONTEXT_STEP = 256  # contexts are offered in multiples of this many tokens
DEFAULT_MAX_CONTEXT = 4096  # searched when the model states no maximum


@dataclass
class PlanContext:
    """What every builder needs: the analysis, its re-estimate as a trial, and the evaluator."""

    analysis: Analysis
    ev: Evaluator
    catalog: tuple[HardwareProfile, ...]
    sparsity: SparsityReport | None = None

    @property
    def base(self) -> Trial:
        a = self.analysis
        return Trial(a.model, a.workload, a.runtime, a.hardware, a.estimate, a.fit)

    @property
    def model(self) -> ModelProfile:
        return self.analysis.model

    @property
    def is_llm(self) -> bool:
        return self.analysis.model.is_llm and self.analysis.model.format != "onnx"

    @property
    def gpu(self) -> bool:
        return self.analysis.hardware.has_cuda_gpu

    def run(self, **changes: object) -> Trial | None:
        """Re-estimate with the analysis' workload changed by ``changes``."""
        a = self.analysis
        return self.ev.trial(a.model, replace(a.workload, **changes), a.runtime, a.hardware)  # type: ignore[arg-type]


def as_is(ctx: PlanContext) -> PlanOption:
    """The model as analysed."""
    a = ctx.analysis
    detail = f"{a.fit.label}: {a.fit.certainty} to fit"
    return option(
        ctx.base, kind="as-is", title="Run as is", risk="low", quality_rank=0,
        risk_reason="nothing changes", detail=detail,
        how_to=commands.run_command(a.model, a.runtime, a.workload, gpu=ctx.gpu,
                                    spread_gpus=max(1, len(a.estimate.spread))),
    )


def batch(ctx: PlanContext) -> list[PlanOption]:
    """The largest batch (LLMs: concurrent sequences) that fits: smaller when short, larger when not.

    With explicit input shapes (``--input input_ids=64,1024``) the batch is their first dim where
    the model leaves it open, and the search changes that dim.
    """
    a = ctx.analysis
    cur, batched = _explicit_batch(ctx)
    cap = MAX_SEQUENCES if ctx.is_llm else MAX_BATCH

    def at(b: int) -> Trial | None:
        shapes = {**a.workload.input_shapes, **{n: (b, *a.workload.input_shapes[n][1:]) for n in batched}}
        return ctx.run(batch=b, input_shapes=shapes)

    one, two = at(1), at(2)
    if one is None or two is None or _batch_bytes(two) <= _batch_bytes(one):
        return []  # the batch is fixed by the graph, or costs nothing
    shrinking = not a.fit.fits
    best = ctx.ev.largest(1, cur - 1, at) if shrinking else ctx.ev.largest(cur, cap, at)
    if best is not None and best.workload.batch >= 16 and best.workload.batch % 8:
        # a round figure a person would pick; smaller, so it fits too (the peak grows with the batch)
        best = at(best.workload.batch - best.workload.batch % 8) or best
    if best is None or not best.fits or (not shrinking and best.workload.batch <= cur):
        return []
    n = best.workload.batch
    unit = "concurrent sequences" if ctx.is_llm else "batch"
    if ctx.is_llm:
        trade = ("fewer sequences at once: each request is as fast, but total tokens/s across users drops"
                 if shrinking else "more sequences at once raise total tokens/s; each request slows a little")
        if a.runtime == "llama.cpp":
            how = commands.llama_server(a.model, workload=best.workload)
        elif a.runtime == "pytorch-cuda":
            how = commands.vllm_serve(a.model, workload=best.workload)
        else:
            how = f"# generate for at most {n} prompts at a time\nmodel.generate(**tokenizer(prompts[:{n}], ...))"
    else:
        trade = ("smaller batches: same latency per sample, fewer samples per second"
                 if shrinking else "larger batches: more samples per second, higher latency per batch")
        name = a.model.inputs[0].name if a.model.inputs else "input"
        how = (commands.ort_session(a.model.load_path, a.runtime)
               + f"\nfor i in range(0, len(x), {n}):\n    sess.run(None, {{{name!r}: x[i:i + {n}]}})")
    title = f"{'Reduce' if shrinking else 'Raise'} {unit} to {n}" if shrinking or n > cur else f"{unit} {n}"
    return [option(best, kind="batch", title=title, risk="low", quality_rank=0,
                   risk_reason=trade, how_to=how, detail=f"largest {unit} that fits: {n} (was {cur})")]


def _explicit_batch(ctx: PlanContext) -> tuple[int, list[str]]:
    """(the batch, the explicitly shaped inputs whose first dim it is): the inputs given a shape
    whose first dim the model leaves open, when they agree on it; else the workload's batch."""
    a = ctx.analysis
    shapes = a.workload.input_shapes
    names = a.model.open_batch_inputs(shapes)
    firsts = {shapes[n][0] for n in names}
    if len(firsts) == 1:
        return max(1, firsts.pop()), names
    return a.workload.batch, []


def _batch_bytes(t: Trial) -> int:
    return t.estimate.activation_bytes + t.estimate.kv_cache_bytes


def context(ctx: PlanContext) -> list[PlanOption]:
    """For LLMs, the longest context (tokens per sequence) that fits, in steps of 256 tokens."""
    a = ctx.analysis
    arch = a.model.arch
    if not ctx.is_llm or arch is None:
        return []
    cur = a.workload.context
    limit = arch.max_positions or max(cur or 0, DEFAULT_MAX_CONTEXT)
    if not a.fit.fits and cur is not None:
        limit = min(limit, cur - 1)
    best = ctx.ev.largest(1, limit // CONTEXT_STEP, lambda k: ctx.run(context=k * CONTEXT_STEP))
    if best is None or best.workload.context is None:
        return []
    n = best.workload.context
    if a.fit.fits and cur is not None and n <= cur:
        return []
    if a.runtime == "llama.cpp":
        how = commands.llama_server(a.model, workload=best.workload)
    elif a.runtime == "pytorch-cuda":
        how = commands.vllm_serve(a.model, workload=best.workload)
    else:
        how = f"inputs = tokenizer(prompt, truncation=True, max_length={n})  # prompt + new tokens ≤ {n}"
    shrinking = not a.fit.fits
    return [option(
        best, kind="context", title=f"{'Limit' if shrinking else 'Up to'} {n:,} tokens of context",
        risk="medium" if shrinking else "low", quality_rank=2 if shrinking else 0,
        risk_reason=("long prompts and conversations get cut; the KV cache shrinks with the context"
                     if shrinking else "longer prompts fit; the KV cache grows with the context"),
        how_to=how, detail=f"longest context that fits with the margin: {n:,} tokens"
        + (f" (model maximum {arch.max_positions:,})" if arch.max_positions else ""),
    )]


def kv_cache(ctx: PlanContext) -> list[PlanOption]:
    """Quantized KV cache types the runtime offers (llama.cpp q8_0/q4_0, vLLM fp8)."""
    a = ctx.analysis
    if not ctx.is_llm or a.estimate.kv_cache_bytes <= 0:
        return []
    out = []
    for choice in kv_cache_choices(a.runtime):
        t = ctx.run(kv_cache_dtype=choice.kv_dtype)
        if t is None or t.estimate.kv_cache_bytes >= a.estimate.kv_cache_bytes:
            continue
        if a.runtime == "llama.cpp":
            how = commands.llama_server(a.model, choice.flags, workload=a.workload)
        else:
            how = commands.vllm_serve(a.model, choice.flags, workload=a.workload)
        out.append(option(
            t, kind="quantize", title=f"KV cache in {choice.kv_dtype}", risk=choice.risk,
            risk_reason=choice.risk_reason, quality_rank=choice.quality_rank, how_to=how,
            detail=f"KV cache {format_bytes(a.estimate.kv_cache_bytes)} → {format_bytes(t.estimate.kv_cache_bytes)}",
        ))
    return out


def loading(ctx: PlanContext) -> list[PlanOption]:
    """llama.cpp's loading flags when they lower what the run needs on a CPU: --mlock off (its
    pinned pages cannot be dropped), --no-mmap (the weights read once into memory)."""
    a = ctx.analysis
    if a.runtime != "llama.cpp" or a.estimate.device != "cpu":
        return []
    out = []
    trials: list[tuple[str, Trial | None, str, str]] = []
    if a.workload.mlock:
        trials.append(("Load without --mlock", ctx.run(mlock=False),
                       "the weights may be paged out under pressure (those the run reads come back from disk)",
                       "the OS may then drop the repacked weights' file pages, which the run never reads again"))
    if a.workload.use_mmap:
        trials.append(("Load with --no-mmap", ctx.run(use_mmap=False),
                       "same weights and outputs; loading reads the whole file first (slower start)",
                       "the weights are read into memory once: no mapped copy of the repacked ones"))
    for title, t, reason, why in trials:
        if t is None:
            continue
        out.append(option(
            t, kind="offload", title=title, risk="low", quality_rank=0, risk_reason=reason,
            how_to=commands.llama_server(a.model, workload=t.workload),
            detail=f"needs {format_bytes(a.estimate.required_bytes)} → {format_bytes(t.estimate.required_bytes)}: "
                   + why,
        ))
    return out


def weights(ctx: PlanContext) -> list[PlanOption]:
    """Lower weight precision: ONNX tensor transforms, LLM weight types, GGUF conversions."""
    if ctx.model.format == "onnx":
        return _onnx_weights(ctx)
    if ctx.is_llm:
        return _llm_weights(ctx)
    t = onnx_fp16(ctx.model)  # a plain PyTorch checkpoint: float32 → float16 is what is on offer
    if not t.touched:
        return []
    return _transformed(ctx, t, "float16 weights", "low", 1,
                        "half precision is accurate enough for inference in almost every model",
                        "model = model.half()  # or torch_dtype=torch.float16 when loading")


def _onnx_weights(ctx: PlanContext) -> list[PlanOption]:
    path = ctx.model.load_path
    out_fp16 = commands.sibling(ctx.model, ".fp16")
    out_int8 = commands.sibling(ctx.model, ".int8")
    out_qdq = commands.sibling(ctx.model, ".qdq")
    out_int4 = commands.sibling(ctx.model, ".int4")
    fp16 = onnx_fp16(ctx.model)
    dyn = onnx_int8(ctx.model, static=False)
    static = onnx_int8(ctx.model, static=True)
    int4 = onnx_int4(ctx.model)
    has_conv = ctx.model.op_histogram.get("Conv", 0) > 0
    specs: list[tuple[Transformed, str, Risk, int, str, str, str | None]] = [
        (fp16, "float16 weights (all float tensors)", "low", 1,
         "half precision; rare overflow in layers with large activations (keep_io_types keeps the inputs float32)",
         "import onnx\nfrom onnxruntime.transformers.float16 import convert_float_to_float16\n"
         f"model = convert_float_to_float16(onnx.load({path!r}), keep_io_types=True)\n"
         f"onnx.save(model, {out_fp16!r})", None),
        (dyn, f"int8 dynamic quantization ({'/'.join(INT8_DYNAMIC_OPS)} weights)",
         "medium" if has_conv else "low", 2,
         "int8 weights, activations quantized at run time; usually < 1 % accuracy drop on transformers, "
         "more on convolutions" if has_conv else
         "int8 weights, activations quantized at run time; usually < 1 % accuracy drop",
         "from onnxruntime.quantization import QuantType, quantize_dynamic\n"
         f"quantize_dynamic({path!r}, {out_int8!r}, op_types_to_quantize={list(DYNAMIC_OP_TYPES)!r}, "
         "weight_type=QuantType.QInt8)", APPLY_ONNX_INT8_DYNAMIC),
        (static, f"int8 static quantization, QDQ ({'/'.join(INT8_STATIC_OPS)} weights)", "medium", 2,
         "weights and activations in int8; needs a few hundred representative inputs for calibration",
         "from onnxruntime.quantization import QuantFormat, quantize_static\n"
         f"quantize_static({path!r}, {out_qdq!r}, calibration_data_reader=my_reader,  # a CalibrationDataReader\n"
         f"                quant_format=QuantFormat.QDQ, op_types_to_quantize={list(INT8_STATIC_OPS)!r})",
         None),
        (int4, "int4 weight-only (MatMulNBits, block 32)", "medium", 4,
         "4-bit weights with one scale per 32 values; a few % quality loss, MatMul weights only",
         "import onnx\nfrom onnxruntime.quantization.matmul_nbits_quantizer import MatMulNBitsQuantizer\n"
         f"q = MatMulNBitsQuantizer(onnx.load({path!r}), block_size=32, is_symmetric=True)\nq.process()\n"
         f"q.model.save_model_to_file({out_int4!r}, use_external_data_format=True)", None),
    ]
    out = []
    for transformed, title, risk, rank, reason, how, action in specs:
        if transformed.touched and transformed.weight_bytes_after < ctx.model.weight_bytes:
            out += _transformed(ctx, transformed, title, risk, rank, reason, how, action)
    return out


def _transformed(ctx: PlanContext, t: Transformed, title: str, risk: Risk, rank: int, reason: str,
                 how: str, action: str | None = None) -> list[PlanOption]:
    a = ctx.analysis
    trial = ctx.ev.trial(t.profile, a.workload, a.runtime, a.hardware)
    if trial is None:
        return []
    return [option(trial, kind="quantize", title=title, risk=risk, risk_reason=reason,
                   quality_rank=rank, how_to=how, detail=t.describe(title), apply_action=action,
                   weight_bytes_after=t.weight_bytes_after, touched=list(t.touched))]


def _llm_weights(ctx: PlanContext) -> list[PlanOption]:
    a = ctx.analysis
    out = []
    for c in llm_weight_choices(a.model, a.runtime, cuda=ctx.gpu, fp8=ctx.gpu and gpu_fp8(a.hardware)):
        t = ctx.ev.trial(a.model, replace(a.workload, weight_dtype=c.weight_dtype, gpu_layers=None),
                         c.runtime, a.hardware)
        if t is None or t.estimate.weights_bytes >= a.estimate.weights_bytes:
            continue
        run = commands.run_command(a.model, c.runtime, t.workload, gpu=ctx.gpu) if c.runtime == "llama.cpp" else ""
        how = c.how_to
        if c.runtime == "llama.cpp" and run:
            gguf = commands.sibling(a.model, "-" + c.weight_dtype.upper(), ".gguf")
            run_line = run.splitlines()[-1].replace(commands.q(commands.gguf_path(a.model)), commands.q(gguf))
            how += "\n" + run_line
        out.append(option(
            t, kind="quantize", title=c.label, risk=c.risk, risk_reason=c.risk_reason,
            quality_rank=c.quality_rank, how_to=how, weight_bytes_after=t.estimate.weights_bytes,
            detail=(f"weights {format_bytes(a.estimate.weights_bytes)} → "
                    f"{format_bytes(t.estimate.weights_bytes)} ({c.runtime})"),
        ))
    return out


def pruning(ctx: PlanContext) -> list[PlanOption]:
    """Structured pruning at 25 % / 50 %.

    Unstructured pruning is not an option: zeros scattered in dense tensors keep their bytes, so it
    lowers no peak without a sparse format; a finished sparsity scan is quoted in the plan's notes.
    """
    a = ctx.analysis
    out: list[PlanOption] = []
    if ctx.sparsity is not None and ctx.sparsity.n_elements:
        ctx.ev.notes.append(f"the weights are {ctx.sparsity.fraction:.1%} exact zeros; unstructured pruning "
                            "saves memory only once they are stored in a sparse format or compressed")
    for fraction in (0.25, 0.5):
        pruned, what = prune_structured(a.model, fraction)
        if pruned.weight_bytes >= a.model.weight_bytes:
            continue  # too small to remove anything at this fraction (e.g. 2 layers × 25 %)
        t = ctx.ev.trial(pruned, a.workload, a.runtime, a.hardware)
        if t is None:
            continue
        if ctx.is_llm and a.model.arch is not None:
            keep = pruned.arch.n_layers if pruned.arch else 0
            how = (f"model.model.layers = model.model.layers[:{keep}]\nmodel.config.num_hidden_layers = {keep}\n"
                   "# then fine-tune (or distil from the full model) to recover quality")
        else:
            how = ("import torch_pruning as tp\npruner = tp.pruner.MetaPruner(model, example_inputs, "
                   f"importance=tp.importance.MagnitudeImportance(p=2), pruning_ratio={fraction})\n"
                   "pruner.step()  # then fine-tune and export again")
        if a.model.format != "safetensors":
            # the snippets run on a PyTorch model: a GGUF or ONNX file is pruned at its source
            back = ("python convert_hf_to_gguf.py MODEL_DIR --outfile pruned.gguf  # llama.cpp's converter"
                    if a.model.format == "gguf" else "torch.onnx.export(model, example_inputs, 'pruned.onnx')")
            how = (f"# a {a.model.format.upper()} file cannot be pruned in place: prune the source PyTorch "
                   f"model, then convert it again\n{how}\n{back}")
        out.append(option(
            t, kind="prune", title=f"Structured pruning {fraction:.0%} ({what})", risk="high",
            quality_rank=6 if fraction < 0.5 else 7,
            risk_reason="removes whole channels/heads/layers; needs fine-tuning to recover accuracy",
            how_to=how, weight_bytes_after=pruned.weight_bytes,
            detail=f"{what}; weights {format_bytes(a.model.weight_bytes)} → {format_bytes(pruned.weight_bytes)}",
        ))
    return out


def distill(ctx: PlanContext) -> PlanOption:
    """Advice only: a smaller model of the same family, or a distilled one."""
    a = ctx.analysis
    size = f"{a.model.n_params / 1e9:.1f}B" if a.model.n_params >= 1e9 else f"{a.model.n_params / 1e6:.0f}M"
    return PlanOption(
        kind="distill", title="Use a smaller or distilled model", peak_bytes=None, fits=False,
        headroom_bytes=None, risk="high", quality_rank=8,
        risk_reason="a smaller model knows less; distillation costs a training run",
        how_to="Pick a smaller model of the same family, or train a student on this model's outputs "
               "(e.g. transformers Trainer with a KL-divergence loss on the teacher's logits).",
        detail=f"nothing else fits on {a.hardware.name}; this model has {size} parameters — aim for about "
               f"{_fraction_that_fits(ctx):.0%} of that",
    )


def _fraction_that_fits(ctx: PlanContext) -> float:
    a = ctx.analysis
    if a.estimate.required_bytes <= 0:
        return 1.0
    return max(0.01, min(1.0, a.fit.budget_bytes / a.estimate.required_bytes))

