"""The one table of element types: bytes per element, and ggml's block sizes.

Every reader maps its format's type names onto the canonical names here (``float32``,
``bfloat16``, ``q4_k`` ...) and every byte count in the advisor comes from :func:`nbytes`.
An unknown type raises :class:`~advisor.errors.UnknownDtypeError` instead of guessing.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

from advisor.errors import UnknownDtypeError


@dataclass(frozen=True)
class DType:
    """An element type. Plain types have ``block_size == 1``; ggml quants pack blocks.

    Attributes:
        name: canonical lowercase name.
        block_size: elements per block.
        block_bytes: bytes per block (for plain types, bytes per element).
        bits: nominal bits per weight, for display (``block_bytes * 8 / block_size``).
    """

    name: str
    block_size: int
    block_bytes: int

    @property
    def bits_per_element(self) -> float:
        return self.block_bytes * 8 / self.block_size

    def nbytes(self, n_elements: int) -> int:
        """Bytes that ``n_elements`` of this type occupy (whole blocks, rounded up)."""
        blocks = -(-n_elements // self.block_size)
        return blocks * self.block_bytes


def _plain(name: str, size: float) -> DType:
    # Sub-byte plain types (int4, uint4, float4) pack two elements per byte.
    if size < 1:
        return DType(name, 2, 1)
    return DType(name, 1, int(size))


# NOTE: ggml block sizes and block bytes are those of gguf-py's GGML_QUANT_SIZES
# (gguf 0.19.0, gguf-py/gguf/constants.py), which mirror ggml.c's type_traits.
_GGML = {
    "q4_0": (32, 18), "q4_1": (32, 20), "q5_0": (32, 22), "q5_1": (32, 24),
    "q8_0": (32, 34), "q8_1": (32, 40), "q2_k": (256, 84), "q3_k": (256, 110),
    "q4_k": (256, 144), "q5_k": (256, 176), "q6_k": (256, 210), "q8_k": (256, 292),
    "iq2_xxs": (256, 66), "iq2_xs": (256, 74), "iq3_xxs": (256, 98), "iq1_s": (256, 50),
    "iq4_nl": (32, 18), "iq3_s": (256, 110), "iq2_s": (256, 82), "iq4_xs": (256, 136),
    "iq1_m": (256, 56), "tq1_0": (256, 54), "tq2_0": (256, 66), "mxfp4": (32, 17),
    "nvfp4": (64, 36), "q1_0": (128, 18),
}

_PLAIN = {
    "float64": 8, "float32": 4, "float16": 2, "bfloat16": 2,
    "float8_e4m3fn": 1, "float8_e4m3fnuz": 1, "float8_e5m2": 1, "float8_e5m2fnuz": 1,
    "float8_e8m0": 1, "float4_e2m1": 0.5,
    "int64": 8, "int32": 4, "int16": 2, "int8": 1, "int4": 0.5, "int2": 0.25,
    "uint64": 8, "uint32": 4, "uint16": 2, "uint8": 1, "uint4": 0.5, "uint2": 0.25,
    "bool": 1, "complex64": 8, "complex128": 16,
}

DTYPES: dict[str, DType] = {name: _plain(name, size) for name, size in _PLAIN.items()}
DTYPES["int2"] = DType("int2", 4, 1)
DTYPES["uint2"] = DType("uint2", 4, 1)
DTYPES.update({name: DType(name, bs, bb) for name, (bs, bb) in _GGML.items()})

GGML_QUANT_TYPES: frozenset[str] = frozenset(_GGML)

# Names used by other formats, mapped onto canonical ones.
_ALIASES = {
    # safetensors header dtypes
    "f64": "float64", "f32": "float32", "f16": "float16", "bf16": "bfloat16",
    "i64": "int64", "i32": "int32", "i16": "int16", "i8": "int8",
    "u64": "uint64", "u32": "uint32", "u16": "uint16", "u8": "uint8",
    "f8_e4m3": "float8_e4m3fn", "f8_e5m2": "float8_e5m2", "f8_e8m0": "float8_e8m0",
    "f4": "float4_e2m1", "c64": "complex64",
    # ggml plain types
    "fp16": "float16", "fp32": "float32", "half": "float16", "float": "float32",
    "double": "float64",
    # onnx spells float8 variants like this
    "float8e4m3fn": "float8_e4m3fn", "float8e4m3fnuz": "float8_e4m3fnuz",
    "float8e5m2": "float8_e5m2", "float8e5m2fnuz": "float8_e5m2fnuz", "float4e2m1": "float4_e2m1",
    "float8e8m0": "float8_e8m0",
}


@functools.lru_cache(maxsize=1024)
def canonical(name: str) -> str:
    """Map a format's type name onto the canonical one, or raise UnknownDtypeError."""
    key = name.strip().lower()
    key = _ALIASES.get(key, key)
    if key not in DTYPES:
        raise UnknownDtypeError(f"unknown tensor element type {name!r}")
    return key


def dtype(name: str) -> DType:
    """The :class:`DType` for any accepted spelling of ``name``."""
    found = DTYPES.get(name)  # canonical names (what readers store) skip the alias lookup
    return found if found is not None else DTYPES[canonical(name)]


def nbytes(name: str, n_elements: int) -> int:
    """Bytes for ``n_elements`` elements of type ``name`` (any accepted spelling)."""
    return dtype(name).nbytes(n_elements)


def bytes_per_element(name: str) -> float:
    """Average bytes per element (fractional for packed and block-quantized types)."""
    d = dtype(name)
    return d.block_bytes / d.block_size


# ONNX TensorProto.DataType numbers → canonical names (onnx/onnx.proto3, onnx 1.23).
ONNX_DTYPES: dict[int, str] = {
    1: "float32", 2: "uint8", 3: "int8", 4: "uint16", 5: "int16", 6: "int32", 7: "int64",
    8: "string", 9: "bool", 10: "float16", 11: "float64", 12: "uint32", 13: "uint64",
    14: "complex64", 15: "complex128", 16: "bfloat16", 17: "float8_e4m3fn",
    18: "float8_e4m3fnuz", 19: "float8_e5m2", 20: "float8_e5m2fnuz", 21: "uint4", 22: "int4",
    23: "float4_e2m1", 24: "float8_e8m0", 25: "uint2", 26: "int2",
}


def onnx_dtype(code: int) -> str:
    """Canonical name for an ONNX ``TensorProto.DataType`` number."""
    try:
        name = ONNX_DTYPES[code]
    except KeyError:
        raise UnknownDtypeError(f"unknown ONNX tensor element type {code}") from None
    if name == "string":
        raise UnknownDtypeError("string tensors have no fixed element size")
    return name
