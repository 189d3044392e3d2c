"""Quantization as profile and workload transforms, so the estimator can re-price the model.

ONNX: :func:`onnx_fp16`, :func:`onnx_int8` and :func:`onnx_int4` build a new
:class:`~advisor.readers.profile.ModelProfile` whose tensors are what onnxruntime's tools would
write (same names, new dtypes and sizes, plus the scale/zero-point tensors they add), and the
estimator re-runs on it. LLMs (safetensors, GGUF): :func:`llm_weight_choices` lists the weight
types a person can switch to, each as a ``Workload.weight_dtype`` for a runtime, and the estimator
re-prices the weights (``advisor.estimator.runtimes.reprice_weights``). :func:`kv_cache_choices` lists
the KV-cache types each runtime offers.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from advisor.dtypes import GGML_QUANT_TYPES, bytes_per_element, nbytes
from advisor.hardware.profile import HardwareProfile
from advisor.plan.commands import q, sibling
from advisor.plan.types import Risk
from advisor.readers.profile import ModelProfile, TensorInfo, summarize_tensors
from advisor.units import format_bytes

FLOAT_WEIGHTS = frozenset({"float32", "float64"})
# NOTE: onnxruntime 1.32, onnxruntime/quantization/registry.py: IntegerOpsRegistry (dynamic
# quantization) has Conv and MatMul (const B only, MatMulConstBOnly=True) but no Gemm — yet
# ONNXQuantizer first rewrites every Gemm as MatMul (+ Add) in dynamic mode
# (onnx_quantizer.py: replace_gemm_with_matmul), so Gemm weights are quantized too. The QDQ
# registry has Conv, ConvTranspose, Gemm and MatMul. apply.py passes DYNAMIC_OP_TYPES.
DYNAMIC_OP_TYPES = ("MatMul", "Conv")
INT8_DYNAMIC_OPS = ("MatMul", "Gemm", "Conv")
INT8_STATIC_OPS = ("MatMul", "Gemm", "Conv")
# NOTE: MatMulNBits (onnxruntime contrib op, matmul_nbits_quantizer.py) packs 4-bit weights in
# blocks along K with one scale per block (same float type as the weight); symmetric → no zero points.
INT4_BLOCK = 32


@dataclass(frozen=True)
class Transformed:
    """A model after a weight transform.

    Attributes:
        profile: the transformed profile (tensors re-priced, totals recomputed).
        touched: names of the tensors the transform changes.
        weight_bytes_before / weight_bytes_after: total stored weight bytes.
    """

    profile: ModelProfile
    touched: tuple[str, ...]
    weight_bytes_before: int
    weight_bytes_after: int

    def describe(self, what: str) -> str:
        """One line: what changes, how many tensors, and the bytes before → after."""
        n = len(self.touched)
        sample = ", ".join(self.touched[:3]) + (" …" if n > 3 else "")
        return (
            f"{what}: {n} tensor(s) re-typed ({sample}); weights {format_bytes(self.weight_bytes_before)} → "
            f"{format_bytes(self.weight_bytes_after)}"
        )


def with_tensors(profile: ModelProfile, tensors: list[TensorInfo] | tuple[TensorInfo, ...]) -> ModelProfile:
    """``profile`` holding ``tensors`` instead, totals recomputed from them."""
    n_params, weight_bytes, params_by, bytes_by = summarize_tensors(tuple(tensors))
    return replace(
        profile,
        tensors=tuple(tensors),
        n_params=n_params,
        weight_bytes=weight_bytes,
        params_by_dtype=params_by,
        weight_bytes_by_dtype=bytes_by,
    )


def _retype(t: TensorInfo, dtype: str, n_bytes: int | None = None) -> TensorInfo:
    return replace(t, dtype=dtype, nbytes=nbytes(dtype, t.n_elements) if n_bytes is None else n_bytes)


def _scalar(name: str, dtype: str, like: TensorInfo) -> TensorInfo:
    return TensorInfo(name=name, dtype=dtype, shape=(), n_elements=1, nbytes=nbytes(dtype, 1),
                      file=like.file, offset=None, consumers=like.consumers, layer=like.layer)


def _finish(profile: ModelProfile, tensors: list[TensorInfo], touched: list[str]) -> Transformed:
    new = with_tensors(profile, tensors)
    return Transformed(new, tuple(touched), profile.weight_bytes, new.weight_bytes)


def onnx_fp16(profile: ModelProfile) -> Transformed:
    """Every float32/float64 weight stored as float16 (``convert_float_to_float16``)."""
    out: list[TensorInfo] = []
    touched: list[str] = []
    from advisor.estimator.mechanisms.ort_ml import is_attribute_weight

    for t in profile.tensors:
        # parameters an ai.onnx.ml node holds in its attributes (tree thresholds, scaler offsets)
        # stay as they are: convert_float_to_float16 converts tensors, not those attributes
        if t.dtype in FLOAT_WEIGHTS and not is_attribute_weight(t):
            out.append(_retype(t, "float16"))
            touched.append(t.name)
        else:
            out.append(t)
    return _finish(profile, out, touched)


@dataclass(frozen=True)
class WeightSlots:
    """Main-graph initializers read as the weight input (index 1) of the given ops, and those read elsewhere."""

    weights: frozenset[str]
    elsewhere: frozenset[str]
    conv_with_bias: frozenset[str] = frozenset()


def weight_slots(profile: ModelProfile, ops: tuple[str, ...]) -> WeightSlots | None:
    """Which initializers onnxruntime's quantizers would treat as weights of ``ops``.

    The quantizers only touch main-graph initializers in a node's weight slot (MatMul's B, Gemm's
    B, Conv's W): weights held in ``Constant`` nodes or subgraphs stay float. None when the
    model's structure cannot be read (the plan then goes by ``TensorInfo.consumers``).
    """
    from advisor.errors import AdvisorError
    from advisor.readers.onnx_skeleton import load_skeleton

    try:
        model = load_skeleton(Path(profile.load_path), keep_data_bytes=0)
    except (AdvisorError, OSError):
        return None
    graph = model.graph
    inits = {t.name for t in graph.initializer}
    weights: set[str] = set()
    elsewhere: set[str] = {o.name for o in graph.output}
    conv_with_bias = {n.input[1] for n in graph.node if n.op_type == "Conv" and len(n.input) > 2 and n.input[2]}
    for node in graph.node:
        for i, name in enumerate(node.input):
            if name in inits and node.op_type in ops and i == 1:
                weights.add(name)
            elif name:
                elsewhere.add(name)
        for attr in node.attribute:
            if attr.g.node or attr.graphs:  # a subgraph may read outer initializers by name
                elsewhere.update(_subgraph_inputs(attr))
    return WeightSlots(frozenset(weights), frozenset(elsewhere & inits), frozenset(conv_with_bias & weights))


def _subgraph_inputs(attr: Any) -> set[str]:
    names: set[str] = set()
    graphs = [attr.g, *attr.graphs] if attr.g.node else list(attr.graphs)
    while graphs:
        g = graphs.pop()
        for node in g.node:
            names.update(n for n in node.input if n)
            for a in node.attribute:
                graphs.extend([a.g] if a.g.node else [])
                graphs.extend(a.graphs)
    return names


def onnx_int8(profile: ModelProfile, *, static: bool) -> Transformed:
    """Weights of MatMul/Gemm/Conv stored as int8, as onnxruntime's quantizers write them.

    Per-tensor quantization (onnxruntime's default ``per_channel=False``) adds a float32 scale and
    an int8 zero point per weight. A weight that other ops also read keeps its float copy.
    """
    ops = INT8_STATIC_OPS if static else INT8_DYNAMIC_OPS
    slots = weight_slots(profile, ops)
    out: list[TensorInfo] = []
    touched: list[str] = []
    for t in profile.tensors:
        if slots is not None:
            in_slot = t.name in slots.weights
            shared = t.name in slots.elsewhere
        else:
            in_slot = bool(set(ops) & set(t.consumers))
            shared = any(c not in ops for c in t.consumers)
        if not (in_slot and t.dtype == "float32" and t.n_elements > 1 and len(t.shape) >= 2):
            out.append(t)
            continue
        if shared:
            out.append(t)
        out.append(replace(_retype(t, "int8"), name=f"{t.name}_quantized"))
        out.append(_scalar(f"{t.name}_scale", "float32", t))
        out.append(_scalar(f"{t.name}_zero_point", "int8", t))
        if not static and slots is not None and t.name in slots.conv_with_bias:
            # ConvInteger has no bias input: the float bias is reshaped to [1, C, 1, ...] and added.
            rank = len(t.shape)
            out.append(TensorInfo(name=f"{t.name}_bias_reshape_shape", dtype="int64", shape=(rank,),
                                  n_elements=rank, nbytes=nbytes("int64", rank), file=t.file, consumers=("Reshape",)))
        touched.append(t.name)
    done = _finish(profile, out, touched)
    if static:
        return done
    return replace(done, profile=replace(done.profile, graph_rewrite="int8-dynamic"))


def onnx_int4(profile: ModelProfile, *, block: int = INT4_BLOCK) -> Transformed:
    """2-D MatMul weights packed as 4-bit ``MatMulNBits`` (symmetric, ``block`` values per scale)."""
    slots = weight_slots(profile, ("MatMul",))
    out: list[TensorInfo] = []
    touched: list[str] = []
    for t in profile.tensors:
        in_slot = t.name in slots.weights and t.name not in slots.elsewhere if slots else t.consumers == ("MatMul",)
        if in_slot and t.dtype in ("float32", "float16") and len(t.shape) == 2:
            k, n = t.shape
            n_blocks = -(-k // block)
            packed = n * n_blocks * (block // 2)  # uint8 [N, n_blocks, block/2]
            scales = n * n_blocks * nbytes(t.dtype, 1)
            out.append(replace(t, name=f"{t.name}_Q4", dtype="uint4", nbytes=packed))
            out.append(TensorInfo(name=f"{t.name}_scales", dtype=t.dtype, shape=(n * n_blocks,),
                                  n_elements=n * n_blocks, nbytes=scales, file=t.file, layer=t.layer,
                                  consumers=("MatMulNBits",)))
            touched.append(t.name)
        else:
            out.append(t)
    return _finish(profile, out, touched)


# --------------------------------------------------------------------------- LLM weight types


@dataclass(frozen=True)
class WeightChoice:
    """A weight type an LLM can be switched to, and how.

    Attributes:
        label: what a person reads ("GGUF Q4_K_M", "int8 (bitsandbytes)").
        weight_dtype: the ``Workload.weight_dtype`` the estimator re-prices with.
        runtime: the runtime that runs it.
        risk / risk_reason / quality_rank: expected quality loss (ranked by :func:`advisor.plan.rank`).
        how_to: the command or snippet.
    """

    label: str
    weight_dtype: str
    runtime: str
    risk: Risk
    risk_reason: str
    quality_rank: int
    how_to: str


# NOTE: risk wording follows llama.cpp's tools/quantize/README.md perplexity table (Llama-3-8B:
# Q8_0 +0.0004 ppl, Q6_K +0.02, Q5_K_M +0.05, Q4_K_M +0.18, Q3_K_M +0.66, Q2_K +3.5).
GGUF_TYPES: tuple[tuple[str, Risk, str, int], ...] = (
    ("Q8_0", "low", "8-bit blocks; perplexity practically unchanged", 2),
    ("Q6_K", "low", "6-bit k-quant; perplexity rises by about 0.1-0.5 %", 3),
    ("Q5_K_M", "medium", "5-bit k-quant; small but measurable perplexity rise (about 1 %)", 3),
    ("Q4_K_M", "medium", "4-bit k-quant; the usual size/quality compromise, a few % perplexity", 4),
    ("Q3_K_M", "high", "3-bit k-quant; clearly worse answers, around 10 % perplexity rise", 5),
    ("Q2_K", "high", "2-bit k-quant; large quality loss, often incoherent on small models", 6),
)


# The ggml type of the bulk of the matrices for each llama-quantize file type.
_GGUF_BASE = {"Q8_0": "q8_0", "Q6_K": "q6_k", "Q5_K_M": "q5_k", "Q4_K_M": "q4_k", "Q3_K_M": "q3_k", "Q2_K": "q2_k"}


def _matrix_bits(profile: ModelProfile) -> float:
    """Bits per weight of the type most of the model's matrices are stored in (where quantization happens)."""
    by_type: dict[str, int] = {}
    for t in profile.tensors:
        if len(t.shape) >= 2:
            by_type[t.dtype] = by_type.get(t.dtype, 0) + t.n_elements
    if not by_type:
        return 32.0
    return bytes_per_element(max(by_type, key=lambda k: by_type[k])) * 8


def llm_weight_choices(profile: ModelProfile, runtime: str, *, cuda: bool, fp8: bool = False) -> list[WeightChoice]:
    """Weight types worth trying for an LLM stored as ``profile`` run on ``runtime``.

    ``fp8``: the GPU has fp8 tensor cores (Ada, Hopper, Blackwell: compute capability ≥ 8.9,
    :func:`supports_fp8`), where vLLM's ``--quantization fp8`` runs fp8 matrix products.
    """
    choices: list[WeightChoice] = []
    path = profile.load_path
    if profile.format == "gguf":
        stored_bits = _matrix_bits(profile)
        for qtype, risk, reason, rank in GGUF_TYPES:
            if bytes_per_element(_GGUF_BASE[qtype]) * 8 >= stored_bits:
                continue  # not lower than what the file holds
            out = sibling(profile, "-" + qtype)
            choices.append(WeightChoice(
                f"requantize GGUF to {qtype}", qtype.lower(), "llama.cpp", risk,
                reason + "; requantizing an already quantized file adds error (start from f16/bf16 if you can)",
                rank, f"llama-quantize --allow-requantize {q(path)} {q(out)} {qtype}",
            ))
        return choices
    stored = _stored_float(profile)
    hf_load = "AutoModelForCausalLM.from_pretrained({path!r}, {kw})"
    if stored == "float32":
        for half in ("bfloat16", "float16"):
            choices.append(WeightChoice(
                f"{half} weights", half, runtime, "low",
                f"{half} keeps the accuracy of float32 training for inference in practice", 1,
                "import torch\nfrom transformers import AutoModelForCausalLM\n"
                + hf_load.format(path=path, kw=f"torch_dtype=torch.{half}"),
            ))
    if cuda and runtime == "pytorch-cuda":
        awq_out = sibling(profile, "-awq")
        if fp8:
            choices.append(WeightChoice(
                "fp8 weights (vLLM --quantization fp8)", "fp8", runtime, "low",
                "8-bit floating point with per-channel scales; quality close to bf16, and faster on fp8 tensor cores",
                2, commands_vllm(path, "--quantization fp8"),
            ))
        choices.append(WeightChoice(
            "int4 AWQ weights (vLLM --quantization awq)", "awq", runtime, "medium",
            "4-bit activation-aware weights, one scale per 128 values; a few % quality loss, fast Marlin kernels "
            "(a GPTQ int4 checkpoint, --quantization gptq, needs the same memory)",
            4, "pip install autoawq   # or take a published -AWQ checkpoint of the model\n"
               "from awq import AutoAWQForCausalLM\nfrom transformers import AutoTokenizer\n"
               f"model = AutoAWQForCausalLM.from_pretrained({path!r})\n"
               f"tok = AutoTokenizer.from_pretrained({path!r})\n"
               'model.quantize(tok, quant_config={"zero_point": True, "q_group_size": 128, "w_bit": 4, '
               '"version": "GEMM"})\n'
               f"model.save_quantized({awq_out!r}); tok.save_pretrained({awq_out!r})\n"
               + commands_vllm(awq_out, "--quantization awq"),
        ))
        bnb8 = "BitsAndBytesConfig(load_in_8bit=True)"
        bnb4 = ('BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4", '
                "bnb_4bit_compute_dtype=torch.bfloat16)")
        for label, dt, risk, reason, rank, cfg in (
            ("int8 weights (bitsandbytes LLM.int8)", "int8", "low",
             "LLM.int8 keeps outlier features in fp16; quality close to bf16, generation slower", 2, bnb8),
            ("nf4 weights (bitsandbytes 4-bit)", "nf4", "medium",
             "4-bit NormalFloat; small but real quality loss, best with models ≥ 7B", 4, bnb4),
        ):
            choices.append(WeightChoice(
                label, dt, runtime, risk, reason, rank,
                "import torch\nfrom transformers import AutoModelForCausalLM, BitsAndBytesConfig\n"
                + hf_load.format(path=path, kw=f"quantization_config={cfg}, device_map='auto'"),
            ))
    for qtype, risk, reason, rank in GGUF_TYPES:
        out = sibling(profile, "-" + qtype, ".gguf")
        if qtype == "Q8_0":
            cmd = f"python convert_hf_to_gguf.py {q(path)} --outtype q8_0 --outfile {q(out)}"
        else:
            f16 = sibling(profile, "-bf16", ".gguf")
            cmd = (f"python convert_hf_to_gguf.py {q(path)} --outtype bf16 --outfile {q(f16)}\n"
                   f"llama-quantize {q(f16)} {q(out)} {qtype}")
        choices.append(WeightChoice(
            f"convert to GGUF {qtype} (llama.cpp)", qtype.lower(), "llama.cpp", risk, reason, rank, cmd,
        ))
    return choices


def commands_vllm(path: str, flags: str) -> str:
    """``vllm serve PATH FLAGS`` (the serving engine that runs fp8 and AWQ weights)."""
    return f"vllm serve {q(path)} {flags}"


def gpu_fp8(hardware: HardwareProfile) -> bool:
    """Every NVIDIA GPU of ``hardware`` has fp8 tensor cores."""
    gpus = [g for g in hardware.gpus if g.vendor == "nvidia"]
    return bool(gpus) and all(supports_fp8(g.compute_capability) for g in gpus)


def supports_fp8(gpu_cc: str | None) -> bool:
    """fp8 tensor cores: compute capability 8.9 (Ada) and up (Hopper 9.0, Blackwell 10.x/12.x)."""
    try:
        major, minor = (int(x) for x in (gpu_cc or "").split(".")[:2])
    except ValueError:
        return False
    return (major, minor) >= (8, 9)


def _stored_float(profile: ModelProfile) -> str | None:
    """The dominant float type of the stored weights, or None when they are quantized."""
    by = profile.weight_bytes_by_dtype
    if not by:
        return None
    top = max(by, key=lambda k: by[k])
    return None if top in GGML_QUANT_TYPES else top


@dataclass(frozen=True)
class KvChoice:
    """A KV-cache element type a runtime offers."""

    kv_dtype: str
    risk: Risk
    risk_reason: str
    quality_rank: int
    flags: str


def kv_cache_choices(runtime: str) -> list[KvChoice]:
    """KV-cache types for ``runtime``: llama.cpp's q8_0/q4_0, vLLM's fp8 for PyTorch on CUDA."""
    if runtime == "llama.cpp":
        # NOTE: llama.cpp needs flash attention (-fa) for a quantized V cache (common/arg.cpp).
        return [
            KvChoice("q8_0", "low", "8-bit cache; perplexity change within noise", 1,
                     "--flash-attn on --cache-type-k q8_0 --cache-type-v q8_0"),
            KvChoice("q4_0", "medium", "4-bit cache; noticeable loss on long contexts", 4,
                     "--flash-attn on --cache-type-k q4_0 --cache-type-v q4_0"),
        ]
    if runtime == "pytorch-cuda":
        return [KvChoice("fp8", "low", "fp8 (e4m3) cache; small loss, needs a GPU with fp8 support", 1,
                         "--kv-cache-dtype fp8")]
    return []

