"""The commands and snippets a plan option shows: real paths, shell-quoted, per runtime."""

from __future__ import annotations

import dataclasses
import shlex
from pathlib import Path

from advisor.estimator.runtimes.llamacpp import llamacpp_context
from advisor.estimator.types import Workload
from advisor.readers.profile import ModelProfile


def q(path: str | Path) -> str:
    """A path quoted for a POSIX shell."""
    return shlex.quote(str(path))


def sibling(profile: ModelProfile, suffix: str, ext: str | None = None) -> str:
    """A file next to the model: ``model.onnx`` → ``model<suffix>.onnx`` (folders: ``<folder><suffix>``)."""
    p = Path(profile.load_path)
    if p.suffix:
        return str(p.with_name(f"{p.stem}{suffix}{ext if ext is not None else p.suffix}"))
    return str(p.with_name(f"{p.name}{suffix}{ext or ''}"))


def gguf_path(profile: ModelProfile) -> str:
    """The GGUF file llama.cpp runs: the model itself, or the file a conversion writes."""
    return profile.load_path if profile.format == "gguf" else sibling(profile, "-bf16", ".gguf")


def llama_server(profile: ModelProfile, *flags: str, workload: Workload | None = None) -> str:
    """``llama-server -m MODEL ...``, preceded by the conversion when the model is not GGUF yet."""
    if profile.path.startswith("hf:") and profile.format == "gguf":  # read from the Hub: llama.cpp fetches it
        from advisor.readers.hub import parse_spec

        parts = ["llama-server", "--hf-repo", q(parse_spec(profile.path)[0]), "--hf-file",
                 q(Path(profile.files[0]).name)]
    else:
        parts = ["llama-server", "-m", q(gguf_path(profile))]
    if profile.projector_path:
        parts += ["--mmproj", q(profile.projector_path)]  # the vision projector the estimate counts
    if workload is not None and (workload.context or profile.arch is not None):
        # -c is the total over all --parallel sequences: always given, so the command starts what
        # was estimated (the default -c differs between llama.cpp versions)
        per_seq, _ = llamacpp_context(profile.arch, workload)
        parts += ["-c", str(per_seq * max(1, workload.batch))]
    if workload is not None and workload.batch > 1:
        parts += ["--parallel", str(workload.batch)]
    if workload is not None:
        # NOTE: a pinned mapping is `--load-mode mmap+mlock` since llama.cpp #20834 (2026-07), where
        # a bare --mlock became "read into memory, then lock" (llama-cpp-python's use_mlock=True
        # with use_mmap=True is still the pinned mapping).
        pinned = "--load-mode mmap+mlock" if workload.use_mmap else "--mlock"
        parts += [f for f, on in (("--no-mmap", not workload.use_mmap), (pinned, workload.mlock),
                                  ("--no-repack", not workload.repack), ("--swa-full", bool(workload.swa_full)))
                  if on and f not in flags]
    parts += [f for f in flags if f]
    cmd = " ".join(parts)
    if profile.format != "gguf":
        cmd = (f"python convert_hf_to_gguf.py {q(profile.load_path)} --outtype bf16 --outfile "
               f"{q(gguf_path(profile))}\n{cmd}")
    return cmd


def vllm_serve(profile: ModelProfile, *flags: str, workload: Workload | None = None) -> str:
    """``vllm serve MODEL ...`` with the workload's context and sequences."""
    parts = ["vllm", "serve", q(profile.load_path)]
    if workload is not None:
        if workload.context:
            parts += ["--max-model-len", str(workload.context)]
        if workload.batch > 1:
            parts += ["--max-num-seqs", str(workload.batch)]
        if workload.tensor_parallel > 1:
            parts += ["--tensor-parallel-size", str(workload.tensor_parallel)]
    parts += [f for f in flags if f]
    return " ".join(parts)


def hf_load(profile: ModelProfile, runtime: str, extra: str = "") -> str:
    """A transformers snippet that loads the model for ``runtime``."""
    device = "device_map='auto'" if runtime == "pytorch-cuda" else "device_map='cpu'"
    args = ", ".join(a for a in (repr(profile.load_path), "torch_dtype='auto'", device, extra) if a)
    return f"from transformers import AutoModelForCausalLM\nmodel = AutoModelForCausalLM.from_pretrained({args})"


def ort_session(path: str, runtime: str) -> str:
    """An onnxruntime snippet that opens ``path`` on ``runtime``'s provider."""
    provider = "CUDAExecutionProvider" if runtime == "onnxruntime-cuda" else "CPUExecutionProvider"
    return f"import onnxruntime as ort\nsess = ort.InferenceSession({path!r}, providers=[{provider!r}])"


def run_command(profile: ModelProfile, runtime: str, workload: Workload, *, gpu: bool = False,
                spread_gpus: int = 1) -> str:
    """How to run the model as analysed, on ``runtime`` (``gpu``: the target has an NVIDIA GPU;
    ``spread_gpus``: the estimate spreads it over that many GPUs, as ``device_map='auto'`` does)."""
    if profile.format == "onnx":
        return ort_session(profile.load_path, runtime)
    if runtime == "llama.cpp":
        ngl = "" if not gpu else "-ngl 999" if workload.gpu_layers is None else f"-ngl {workload.gpu_layers}"
        return llama_server(profile, ngl, workload=workload)
    if runtime == "pytorch-cuda" and profile.is_llm and spread_gpus > 1:
        tp = dataclasses.replace(workload, tensor_parallel=spread_gpus)
        return (f"# device_map='auto' spreads the layers over all {spread_gpus} GPUs (as estimated):\n"
                + hf_load(profile, runtime)
                + f"\n# or serve it with vLLM, split over the {spread_gpus} GPUs:\n" + vllm_serve(profile, workload=tp))
    if runtime == "pytorch-cuda" and profile.is_llm:
        return vllm_serve(profile, workload=workload) + "\n# or, in Python:\n" + hf_load(profile, runtime)
    return hf_load(profile, runtime)
