"""llama.cpp on a CPU: what the resident set holds at its peak, mechanism by mechanism.

Measured with llama-cpp-python 0.3.36 (llama.cpp commit 0c1e570, x86-64 AVX2 build, 2 threads) by
``bench/llamacpp_accuracy.py``; each constant below names the llama.cpp source or the bench figure
behind it. The parts:

* **mapped file** — llama-mmap.cpp maps the whole GGUF with ``MAP_POPULATE`` (prefetch is on for
  ``llama_model_load``), so every page of the file, metadata included, is resident after load;
  ``--no-mmap`` reads the weights into an anonymous CPU buffer instead.
* **repacked weights** — ggml-cpu/repack.cpp copies the matrices it has interleaved kernels for
  (on x86 with AVX2: Q4_0, Q4_K, IQ4_NL, MXFP4) into a ``CPU_REPACK`` buffer. With mmap the file
  pages of those tensors stay mapped too (llama-model-loader.cpp only unmaps the file's head and
  tail outside the mapped tensors), so they count twice.
* **KV cache** — allocated and cleared (``ggml_backend_buffer_clear``) at context creation: every
  byte is resident whatever the prompt.
* **compute buffer** — ggml-alloc reserves it for the worst-case ubatch (``n_ubatch`` tokens
  against all ``n_ctx`` cells) but pages are only touched by graphs that run: a prompt of ``P``
  tokens touches the graph for ``min(P, n_ubatch)`` tokens against ``pad(P, 256)`` cells.
* **CPU work buffer** — ggml-cpu's ``ggml_graph_plan`` converts a matmul's f32 activations to the
  weight's dot type (f16 for F16, q8_0 for Q4_0/Q8_0 ...); without flash attention the softmax
  scores (``n_kv × n_tokens × n_head``) are converted to f16 for the V product.
* **output buffer** and **runtime** (vocabulary tables, graph metadata, threads).
"""

from __future__ import annotations

from collections.abc import Sequence, Set
from dataclasses import dataclass

from advisor.dtypes import nbytes
from advisor.estimator.file_cache import ModelCache
from advisor.estimator.runtimes.llamacpp_roles import tensor_role
from advisor.estimator.types import MIB
from advisor.hardware.profile import CpuInfo
from advisor.readers.profile import LlmArchitecture, ModelProfile, TensorInfo
from advisor.units import round_up

# NOTE: ggml-cpu/repack.cpp ggml_repack_get_optimal_repack_type(): the types with interleaved
# kernels, by ISA, when the matrix's row count (ne[1]) is a multiple of the interleave (8 or 4).
_REPACK_X86_AVX2 = frozenset({"q4_0", "q4_k", "iq4_nl", "mxfp4"})
_REPACK_X86_AVX512 = _REPACK_X86_AVX2 | {"q2_k"}
_REPACK_ARM_DOTPROD = frozenset({"q4_0", "q4_k", "q5_k", "q6_k", "iq4_nl", "mxfp4", "q8_0", "q1_0"})
# Every type some ISA repacks (used when the CPU's features are unknown: high end only).
REPACKABLE = _REPACK_X86_AVX512 | _REPACK_ARM_DOTPROD

# NOTE: ggml-cpu.c type_traits_cpu[].vec_dot_type: what a matmul converts its f32 activations to.
_DOT_TYPE = {"float32": "float32", "float16": "float16", "bfloat16": "bfloat16",
             "q4_0": "q8_0", "q5_0": "q8_0", "q8_0": "q8_0", "iq4_nl": "q8_0", "mxfp4": "q8_0",
             "q4_1": "q8_1", "q5_1": "q8_1"}

# NOTE: llama-kv-cache.cpp get_n_kv(): the attention sees the used cells padded to 256.
N_KV_PAD = 256
# Vocabulary tables (llama-vocab.cpp: id_to_token strings + token_to_id hash map, ~160 B a
# token), graph metadata, thread stacks, heap. NOTE: bench/llamacpp_accuracy.py (first run): what
# the parts above leave unexplained is 13 MiB (16k vocab, hidden 768), 18 MiB (32k, 1024) and
# 24 MiB (32k, 2048); 12 MiB + 160 B/token sits at the low side of those (low end halves it).
RUNTIME_BYTES = 12 * MIB
RUNTIME_PER_TOKEN_BYTES = 160



def repacked_types(cpu: CpuInfo | None) -> frozenset[str] | None:
    """The weight types ggml-cpu repacks on ``cpu``, or None when its ISA is unknown."""
    if cpu is None or not cpu.features:
        return None
    feats = {f.lower() for f in cpu.features}
    arch = (cpu.arch or "").lower()
    if "avx2" in feats or arch in ("x86_64", "amd64", "i686"):
        if "avx2" not in feats:
            return frozenset()
        return _REPACK_X86_AVX512 if "avx512f" in feats else _REPACK_X86_AVX2
    if {"asimddp", "dotprod", "i8mm"} & feats:
        return _REPACK_ARM_DOTPROD
    return frozenset()


def is_repacked(tensor: TensorInfo, dtype: str, types: frozenset[str]) -> bool:
    """Whether ggml-cpu copies ``tensor`` into its CPU_REPACK buffer (a matmul weight, rows % 8)."""
    if dtype not in types or tensor_role(tensor) in ("vector", "token_embd"):
        return False  # NOTE: token_embd feeds GET_ROWS, which CPU_REPACK does not take (llama-arch.cpp)
    return tensor.shape[-2] % 8 == 0


@dataclass(frozen=True)
class ComputeShape:
    """One graph: ``n_tokens`` in the ubatch, ``n_kv`` cells attended per stream, ``n_outputs`` rows of logits."""

    n_tokens: int
    n_kv: int
    n_outputs: int


def compute_buffer_bytes(arch: LlmArchitecture, g: ComputeShape, *, flash_attn: bool) -> int:
    """ggml-alloc's compute buffer for one llama-style graph (its peak of live tensors).

    Attention: the KQ mask (f16 with flash attention, f32 without; llama-graph.cpp
    build_attn_inp_kq_mask) lives through every layer; without flash attention the f32 scores
    ``n_kv × n_tokens × n_head`` too (soft_max runs in place). FFN: gate and up activations.
    Output: the logits of ``n_outputs`` rows.
    """
    t, h = g.n_tokens, arch.n_heads
    hd_v = arch.v_head_dim or arch.head_dim
    mask = g.n_kv * t * (2 if flash_attn else 4)
    qo = t * h * (arch.head_dim + hd_v) * 4
    attn = mask + qo + (0 if flash_attn else g.n_kv * t * h * 4)
    inter = (arch.intermediate_size or 4 * arch.hidden_size) * max(1, arch.n_experts_per_token)
    ffn = mask + 2 * t * inter * 4
    hidden = 2 * t * arch.hidden_size * 4
    logits = g.n_outputs * (arch.vocab_size + arch.hidden_size) * 4
    return max(attn, ffn, logits) + hidden


def work_buffer_bytes(arch: LlmArchitecture, g: ComputeShape, weight_dtypes: Set[str], *, flash_attn: bool) -> int:
    """ggml-cpu's per-graph work buffer (``ggml_graph_plan``): the largest activation conversion."""
    inter = (arch.intermediate_size or 4 * arch.hidden_size) * max(1, arch.n_experts_per_token)
    widest = max(inter, arch.hidden_size, arch.n_heads * arch.head_dim)
    conv = 0
    for dt in weight_dtypes:
        dot = _DOT_TYPE.get(dt, "q8_k")
        if dot != "float32":
            conv = max(conv, nbytes(dot, round_up(widest, 256)) * g.n_tokens)
    if not flash_attn:  # NOTE: mul_mat(V^T f16, softmax f32): src1 converted to f16
        conv = max(conv, 2 * g.n_kv * g.n_tokens * arch.n_heads)
    return conv


def _mapped_span(priced: Sequence[tuple[TensorInfo, str, int]], types: frozenset[str], files: tuple[str, ...]) -> int:
    """Bytes of the files that stay mapped after load.

    NOTE: llama_model_loader::load_all_data() unmaps, per file, everything before the first and
    after the last tensor that lives in the mapped buffer (repacked tensors do not).
    """
    spans: dict[str, tuple[int, int]] = {}
    for t, dt, b in priced:
        if t.offset is None:
            return sum(b for _, _, b in priced)
        if is_repacked(t, dt, types):
            continue
        lo, hi = spans.get(t.file, (t.offset, t.offset + b))
        spans[t.file] = (min(lo, t.offset), max(hi, t.offset + b))
    return sum(hi - lo for lo, hi in spans.values()) if files else 0


def tied_output_copy_bytes(priced: Sequence[tuple[TensorInfo, str, int]], types: frozenset[str]) -> int:
    """A tied model's output matmul weight, repacked: a second copy of token_embd.

    NOTE: llama-model.cpp loads a tied output as ``TENSOR_DUPLICATED`` with the OUTPUT tensor's
    op (MUL_MAT, llama-arch.cpp), which CPU_REPACK accepts while token_embd's GET_ROWS does not;
    the two land in different buffer types, so the output becomes its own repacked tensor.
    """
    if any(tensor_role(t) == "output" for t, _, _ in priced):
        return 0
    for t, dt, b in priced:
        if tensor_role(t) == "token_embd" and dt in types and t.shape[-2] % 8 == 0:
            return b
    return 0


def _read_every_token(priced: Sequence[tuple[TensorInfo, str, int]], types: frozenset[str]) -> int:
    """Mapped bytes each token reads: all but repacked tensors and the embedding table (GET_ROWS
    reads a row per token) — unless the output is tied to it and not repacked (no
    ``output.weight``: llama.cpp then multiplies by the mapped token_embd every token)."""
    tied = not any(tensor_role(t) == "output" for t, _, _ in priced) and not tied_output_copy_bytes(priced, types)
    return sum(b for t, dt, b in priced if not is_repacked(t, dt, types) and (tied or tensor_role(t) != "token_embd"))


@dataclass(frozen=True)
class CpuPeak:
    """llama.cpp's resident set at its peak on a CPU, in parts (bytes above a bare process)."""

    weights_bytes: int  # mapped file pages (mmap) or the anonymous model buffer (--no-mmap)
    mapped_run_bytes: int  # what stays mapped once loaded (the file's head and tail are unmapped)
    repacked_bytes: int
    kv_bytes: int
    compute_bytes: int  # compute-buffer pages touched + the CPU work buffer
    compute_reserved_bytes: int  # what ggml-alloc reserved (llama.cpp logs it)
    output_bytes: int
    runtime_bytes: int
    staging_bytes: int  # --no-mmap: one tensor read through a temporary buffer while loading
    # Mapped file pages every generated token reads again (0 with --no-mmap); the rest of the
    # mapping is clean file pages the kernel can drop at no cost when memory is short.
    read_mapped_bytes: int = 0
    droppable: bool = False  # the mapping may be dropped (mmap on, no --mlock)

    @property
    def peak_bytes(self) -> int:
        load = self.weights_bytes + self.repacked_bytes + self.staging_bytes
        run = self.mapped_run_bytes + self.repacked_bytes + self.kv_bytes + self.compute_bytes + self.output_bytes
        return max(load, run) + self.runtime_bytes

    @property
    def held_weights_bytes(self) -> int:
        """The weights as the run holds them: repacked copies and the mapped pages it reads again
        (the whole mapping when it cannot be dropped: --mlock; the anonymous buffer with --no-mmap)."""
        mapped = self.read_mapped_bytes if self.droppable else self.mapped_run_bytes
        return mapped + self.repacked_bytes

    @property
    def required_bytes(self) -> int:
        """The least memory the run keeps its speed in (see :attr:`droppable_bytes`)."""
        return self.peak_bytes - self.droppable_bytes

    @property
    def droppable_bytes(self) -> int:
        """Resident at the peak, but clean file pages the run never reads again.

        NOTE: with mmap the kernel counts every mapped page in RSS (MAP_POPULATE makes them all
        resident), but a page that is clean and file-backed is reclaimed under pressure, and
        re-read only if touched again (mm/vmscan.c shrink_page_list). ggml-cpu reads a repacked
        tensor's file pages once, to copy them into CPU_REPACK; token_embd is read by GET_ROWS a
        row per token. So the need is the rest of the mapping (read every token) plus anonymous
        memory. With --mlock the mapping is pinned (mlock(2)): nothing can be dropped.
        """
        if not self.droppable:
            return 0
        run = self.read_mapped_bytes + self.repacked_bytes + self.kv_bytes + self.compute_bytes + self.output_bytes
        return max(0, self.peak_bytes - (run + self.runtime_bytes))


@dataclass(frozen=True)
class _PricedSums:
    """The sums over a priced model that :func:`cpu_peak_parts` needs (one walk per priced model
    and set of repacked types)."""

    weights: int
    repacked: int  # repacked tensors + a tied output's repacked copy
    largest_repacked: int
    as_stored: bool
    mapped_span: int
    matrix_dtypes: frozenset[str]
    read_every_token: int


_sums: ModelCache[_PricedSums] = ModelCache(64)


def _priced_sums(profile: ModelProfile, priced: Sequence[tuple[TensorInfo, str, int]],
                 types: frozenset[str]) -> _PricedSums:
    def walk() -> _PricedSums:
        repacked = [b for t, dt, b in priced if is_repacked(t, dt, types)]
        as_stored = profile.format == "gguf" and all(dt == t.dtype for t, dt, _ in priced)
        return _PricedSums(
            weights=sum(b for _, _, b in priced),
            repacked=sum(repacked) + tied_output_copy_bytes(priced, types),
            largest_repacked=max(repacked, default=0),
            as_stored=as_stored,
            mapped_span=_mapped_span(priced, types, profile.files) if as_stored else 0,
            matrix_dtypes=frozenset(dt for t, dt, _ in priced if len(t.shape) >= 2),
            read_every_token=_read_every_token(priced, types),
        )

    return _sums.get_or_make(priced, (types, profile.format, profile.files), walk)


def cpu_peak_parts(
    profile: ModelProfile,
    arch: LlmArchitecture,
    priced: Sequence[tuple[TensorInfo, str, int]],
    *,
    n_ctx: int,
    n_seq: int,
    kv_bytes: int,
    prompt: int,
    cpu: CpuInfo | None,
    flash_attn: bool = True,
    use_mmap: bool = True,
    mlock: bool = False,
    repack: bool = True,
    n_ubatch: int = 512,
) -> CpuPeak:
    """The parts of :class:`CpuPeak` for one setting (see the module doc for each mechanism).

    Args:
        profile: the model (its file size is what mmap makes resident).
        arch: its architecture.
        priced: (tensor, ggml type, bytes) as llama.cpp holds them.
        n_ctx / n_seq: total cells and sequences (``-c`` / ``-np``).
        kv_bytes: the KV cache.
        prompt: tokens evaluated per sequence (the pages the compute buffer touches follow it).
        cpu: the target CPU (decides what is repacked); None = unknown (nothing counted).
        flash_attn / use_mmap / mlock / n_ubatch: llama.cpp's settings (``--mlock`` pins the mapping).
        repack: False = ``--no-repack`` (``llama_model_params.use_extra_bufts = false``).
    """
    types = (repacked_types(cpu) or frozenset()) if repack else frozenset()
    sums = _priced_sums(profile, priced, types)
    weights, repacked, as_stored = sums.weights, sums.repacked, sums.as_stored
    if use_mmap:
        # NOTE: llama-mmap.cpp maps the whole file with MAP_POPULATE: header and metadata count too.
        mapped = profile.file_bytes if as_stored and profile.file_bytes >= weights else weights
        mapped_run = sums.mapped_span if as_stored else mapped
        staging = 0
    else:
        mapped = mapped_run = weights - repacked  # the CPU model buffer; repacked tensors live in CPU_REPACK
        staging = sums.largest_repacked
    n_ctx_seq = n_ctx // max(1, n_seq)
    n_tok_reserve = min(n_ctx, n_ubatch)
    reserve = ComputeShape(n_tok_reserve, n_ctx_seq, min(n_tok_reserve, 512))
    run = ComputeShape(min(prompt * n_seq, n_ubatch), min(n_ctx_seq, round_up(prompt, N_KV_PAD)), n_seq)
    touched = compute_buffer_bytes(arch, run, flash_attn=flash_attn)
    work = work_buffer_bytes(arch, run, sums.matrix_dtypes, flash_attn=flash_attn)
    return CpuPeak(
        weights_bytes=mapped,
        mapped_run_bytes=min(mapped, mapped_run),
        repacked_bytes=repacked,
        kv_bytes=kv_bytes,
        compute_bytes=touched + work,
        compute_reserved_bytes=compute_buffer_bytes(arch, reserve, flash_attn=flash_attn),
        output_bytes=n_seq * arch.vocab_size * 4,
        runtime_bytes=RUNTIME_BYTES + RUNTIME_PER_TOKEN_BYTES * arch.vocab_size,
        staging_bytes=staging,
        read_mapped_bytes=sums.read_every_token if use_mmap else 0,
        droppable=use_mmap and not mlock,
    )
