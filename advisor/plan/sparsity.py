"""Weight sparsity: measure it (:func:`scan_sparsity`), and price structured pruning (:func:`prune_structured`).

The scan streams each tensor's bytes from its file in chunks (``TensorInfo.file``/``offset``), so a
70 GB model is measured in a few MB of memory; it reports progress and can be cancelled between
chunks. Unstructured sparsity (scattered zeros) saves no memory in a dense format — the report
says how much a sparse format could save, never that the peak drops.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path

from advisor.cancel import CancelToken, ProgressFn
from advisor.dtypes import GGML_QUANT_TYPES, nbytes
from advisor.errors import ModelFormatError
from advisor.plan.quantize import with_tensors
from advisor.readers.profile import ModelProfile, TensorInfo

MIB = 1024**2
# Element types the scan understands, as (the numpy unsigned type of the same width, mask of the bits that are
# not the sign). An element is zero when (bits & mask) == 0: +0.0 and -0.0 both count as zero.
_SCANNABLE: dict[str, tuple[str, int]] = {
    "float64": ("uint64", 0x7FFF_FFFF_FFFF_FFFF),
    "float32": ("uint32", 0x7FFF_FFFF),
    "float16": ("uint16", 0x7FFF),
    "bfloat16": ("uint16", 0x7FFF),
    "int8": ("uint8", 0xFF),
    "uint8": ("uint8", 0xFF),
    "int16": ("uint16", 0xFFFF),
    "int32": ("uint32", 0xFFFF_FFFF),
    "int64": ("uint64", 0xFFFF_FFFF_FFFF_FFFF),
}


@dataclass(frozen=True)
class TensorSparsity:
    """Exact zeros in one tensor."""

    name: str
    dtype: str
    n_elements: int
    zero_elements: int

    @property
    def fraction(self) -> float:
        return self.zero_elements / self.n_elements if self.n_elements else 0.0


@dataclass(frozen=True)
class SparsityReport:
    """Exact zeros in a model's weights.

    Attributes:
        n_elements / zero_elements: over the scanned tensors.
        tensors: per scanned tensor.
        skipped: names of tensors not scanned (quantized ggml blocks, no known offset, odd types).
        notes: why they were skipped, in words.
        scanned_bytes: bytes read.
    """

    n_elements: int
    zero_elements: int
    tensors: tuple[TensorSparsity, ...]
    skipped: tuple[str, ...] = ()
    notes: tuple[str, ...] = ()
    scanned_bytes: int = 0

    @property
    def fraction(self) -> float:
        """Fraction of exact zeros over every scanned element."""
        return self.zero_elements / self.n_elements if self.n_elements else 0.0

    def to_dict(self) -> dict[str, object]:
        return {
            "n_elements": self.n_elements,
            "zero_elements": self.zero_elements,
            "fraction": self.fraction,
            "scanned_bytes": self.scanned_bytes,
            "tensors": [
                {"name": t.name, "dtype": t.dtype, "n_elements": t.n_elements,
                 "zero_elements": t.zero_elements, "fraction": t.fraction}
                for t in self.tensors
            ],
            "skipped": list(self.skipped),
            "notes": list(self.notes),
        }


def scan_sparsity(
    profile: ModelProfile,
    *,
    progress: ProgressFn | None = None,
    cancel: CancelToken | None = None,
    chunk_bytes: int = 16 * MIB,
) -> SparsityReport:
    """Count the exact zeros in every weight tensor, reading at most ``chunk_bytes`` at a time.

    Raises:
        Cancelled: ``cancel`` was set (checked before every chunk).
        ModelFormatError: a file is missing or shorter than its header says.
    """
    if chunk_bytes < 8:
        raise ValueError("chunk_bytes must be at least 8")
    todo: list[TensorInfo] = []
    skipped: list[str] = []
    reasons: dict[str, int] = {}
    for t in profile.tensors:
        why = _skip_reason(t)
        if why:
            skipped.append(t.name)
            reasons[why] = reasons.get(why, 0) + 1
        else:
            todo.append(t)
    total = sum(t.nbytes for t in todo) or 1
    done = 0
    results: list[TensorSparsity] = []
    if progress:
        progress(0.0, "scanning weights for zeros")
    for t in todo:
        zeros = 0
        for chunk_zeros, chunk_len in _zero_counts(t, chunk_bytes, cancel):
            zeros += chunk_zeros
            done += chunk_len
            if progress:
                progress(min(1.0, done / total), f"scanning {t.name}")
        results.append(TensorSparsity(t.name, t.dtype, t.n_elements, zeros))
    notes = tuple(f"{n} tensor(s) not scanned: {why}" for why, n in reasons.items())
    if progress:
        progress(1.0, "scan done")
    return SparsityReport(
        n_elements=sum(r.n_elements for r in results),
        zero_elements=sum(r.zero_elements for r in results),
        tensors=tuple(results),
        skipped=tuple(skipped),
        notes=notes,
        scanned_bytes=sum(t.nbytes for t in todo),
    )


def _skip_reason(t: TensorInfo) -> str | None:
    if t.dtype in GGML_QUANT_TYPES:
        return "quantized ggml blocks (scales mixed with values; zeros are not stored as such)"
    if t.dtype not in _SCANNABLE:
        return f"element type {t.dtype} not scanned"
    if t.offset is None:
        return "data position unknown (typed protobuf fields or sparse tensors)"
    if t.nbytes != nbytes(t.dtype, t.n_elements):
        return "stored size differs from its shape"
    return None


def _zero_counts(t: TensorInfo, chunk_bytes: int, cancel: CancelToken | None) -> Iterator[tuple[int, int]]:
    """Yield (zeros, bytes read) for each chunk of ``t``; only one chunk is in memory at a time."""
    import numpy as np  # only a scan needs it: the plan imports this module for its types

    type_name, mask = _SCANNABLE[t.dtype]
    np_type = getattr(np, type_name)
    item = np.dtype(np_type).itemsize
    step = max(item, chunk_bytes - chunk_bytes % item)
    path = Path(t.file)
    offset = t.offset or 0
    try:
        with path.open("rb") as fh:
            fh.seek(offset)
            left = t.nbytes
            while left > 0:
                if cancel is not None:
                    cancel.raise_if_cancelled()
                want = min(step, left)
                raw = fh.read(want)
                if len(raw) != want:
                    raise ModelFormatError(
                        f"tensor {t.name!r} ends past the end of the file (needs {offset + t.nbytes} bytes)",
                        path,
                    )
                values = np.frombuffer(raw, dtype=np.dtype(np_type).newbyteorder("<"))
                nonzero = int(np.count_nonzero(values & np_type(mask)))
                left -= want
                yield values.size - nonzero, want
    except OSError as exc:
        raise ModelFormatError(f"cannot read tensor {t.name!r} ({exc.strerror or exc})", path) from None


# --------------------------------------------------------------------------- structured pruning


def prune_structured(profile: ModelProfile, fraction: float) -> tuple[ModelProfile, str]:
    """``profile`` with a ``fraction`` of its structure removed, and what was removed.

    LLMs lose whole transformer layers (the last ones, as layer-dropping methods such as ShortGPT
    do), so their KV cache shrinks too. Other models lose that fraction of the output channels of
    every weight matrix or convolution (the leading dimension), which is what channel pruning
    leaves after the matching input channels of the next layer are removed.
    """
    if not 0 < fraction < 1:
        raise ValueError("fraction must be between 0 and 1")
    arch = profile.arch
    if arch is not None and arch.n_layers > 1 and any(t.layer is not None for t in profile.tensors):
        keep = max(1, round(arch.n_layers * (1 - fraction)))
        tensors = [t for t in profile.tensors if t.layer is None or t.layer < keep]
        new_arch = replace(arch, n_layers=keep, layer_types=arch.layer_types[:keep])
        pruned = replace(with_tensors(profile, tensors), arch=new_arch)
        return pruned, f"drop {arch.n_layers - keep} of {arch.n_layers} transformer layers"
    tensors = []
    n_cut = 0
    for t in profile.tensors:
        if len(t.shape) >= 2 and t.dtype not in GGML_QUANT_TYPES and t.shape[0] > 1:
            rows = max(1, round(t.shape[0] * (1 - fraction)))
            shape = (rows, *t.shape[1:])
            n = t.n_elements // t.shape[0] * rows
            # the constructor, not dataclasses.replace: this runs once per tensor (a million in a header)
            tensors.append(TensorInfo(t.name, t.dtype, shape, n, nbytes(t.dtype, n), t.file, t.offset,
                                      t.consumers, t.layer))
            n_cut += 1
        else:
            tensors.append(t)
    return with_tensors(profile, tensors), f"remove {fraction:.0%} of the channels of {n_cut} weight tensor(s)"
