"""Property-based tests (Hypothesis): whatever bytes a model file holds, a result or a clean error.

Each property runs a bounded, derandomised set of examples (the same ones on every run, a few
seconds in all); ``bench/fuzz.py`` is the long campaign with time and memory limits per mutant.
A "clean error" is an :class:`AdvisorError` whose text is one line; anything else escaping
``read_model`` or ``analyze`` fails the test with the example that caused it.
"""

from __future__ import annotations

import json
import struct
import unicodedata
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from advisor.analysis import analyze, resolve_target
from advisor.errors import AdvisorError, escape_controls
from advisor.estimator.types import Workload
from advisor.readers import read_model
from advisor.readers.limits import json_depth_exceeds, product_fits_int64
from tests.builders import onnx_models
from tests.builders.gguf_models import tiny_llama_gguf

BOUNDED = settings(max_examples=60, deadline=None, derandomize=True, database=None,
                   suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])

# one edit: (offset into the file's first bytes, new byte value)
EDITS = st.lists(st.tuples(st.integers(0, 4095), st.integers(0, 255)), min_size=1, max_size=6)


def _mutated(seed: bytes, edits: list[tuple[int, int]], cut: int | None) -> bytes:
    data = bytearray(seed)
    for pos, value in edits:
        data[pos % len(data)] = value
    return bytes(data[:cut] if cut is not None else data)


def _read_and_analyze(path: Path) -> None:
    """A profile (then an estimate on a real device) or a one-line AdvisorError: nothing else."""
    try:
        profile = read_model(path)
        analyze(profile, resolve_target("rpi5-8gb", None), Workload())
    except AdvisorError as exc:
        assert "\n" not in str(exc)


@pytest.fixture(scope="module")
def seeds(tmp_path_factory: pytest.TempPathFactory) -> dict[str, bytes]:
    root = tmp_path_factory.mktemp("seeds")
    return {
        "onnx": onnx_models.mlp(root / "m.onnx", hidden=8, layers=2, in_features=4, out_features=2).read_bytes(),
        "gguf": tiny_llama_gguf(root / "m.gguf", vocab=16).read_bytes(),
    }


@pytest.mark.parametrize("fmt", ["onnx", "gguf"])
@BOUNDED
@given(edits=EDITS, cut=st.none() | st.integers(0, 8192))
def test_mutated_file_reads_or_fails_cleanly(fmt: str, seeds: dict[str, bytes], tmp_path: Path,
                                             edits: list[tuple[int, int]], cut: int | None) -> None:
    path = tmp_path / f"x.{fmt}"
    path.write_bytes(_mutated(seeds[fmt], edits, cut))
    _read_and_analyze(path)


# --- safetensors headers built from parts a hostile file controls ------------------------------

_NUMBER = st.integers(-2, 2**64) | st.floats(allow_nan=True) | st.sampled_from([0, 1, 2, 3, 4, 7, 8, 16])
_ENTRY = st.fixed_dictionaries({
    "dtype": st.sampled_from(["F32", "F16", "BF16", "I8", "U8", "F8_E4M3", "BOOL", "Q4", ""]) | st.text(max_size=4),
    "shape": st.lists(_NUMBER, max_size=5) | _NUMBER | st.none(),
    "data_offsets": st.lists(_NUMBER, min_size=0, max_size=3) | st.text(max_size=3),
})
_HEADER = st.dictionaries(st.text(max_size=24), _ENTRY | st.text(max_size=8) | st.none(), max_size=6)


@BOUNDED
@given(header=_HEADER, metadata=st.none() | st.dictionaries(st.text(max_size=8), st.text(max_size=8)),
       data_len=st.integers(0, 512), pad=st.integers(0, 9))
def test_safetensors_header_reads_or_fails_cleanly(tmp_path: Path, header: dict[str, Any],
                                                   metadata: dict[str, str] | None, data_len: int, pad: int) -> None:
    if metadata is not None:
        header = {**header, "__metadata__": metadata}
    raw = json.dumps(header).encode() + b" " * pad
    path = tmp_path / "x.safetensors"
    path.write_bytes(struct.pack("<Q", len(raw)) + raw + b"\0" * data_len)
    try:
        profile = read_model(path)
    except AdvisorError as exc:
        assert "\n" not in str(exc)
        return
    # accepted: every tensor's bytes lie inside the file
    assert sum(t.nbytes for t in profile.tensors) <= data_len
    _read_and_analyze(path)


# --- the bounds themselves ----------------------------------------------------------------------

_JSON = st.recursive(st.none() | st.booleans() | st.integers() | st.text(alphabet="[]{}\"\\ab", max_size=6),
                     lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=3), inner,
                                                                                 max_size=3),
                     max_leaves=40)


def _depth(value: Any) -> int:
    if isinstance(value, list):
        return 1 + max((_depth(v) for v in value), default=0)
    if isinstance(value, dict):
        return 1 + max((_depth(v) for v in value.values()), default=0)
    return 0


@settings(max_examples=300, deadline=None, derandomize=True, database=None)
@given(doc=_JSON, limit=st.integers(0, 8))
def test_json_depth_check_matches_the_nesting(doc: Any, limit: int) -> None:
    assert json_depth_exceeds(json.dumps(doc).encode(), limit) == (_depth(doc) > limit)


@settings(max_examples=300, deadline=None, derandomize=True, database=None)
@given(dims=st.lists(st.integers(0, 2**64), max_size=8))
def test_product_check_matches_exact_arithmetic(dims: list[int]) -> None:
    product = 1
    for d in dims:
        product *= d
    assert product_fits_int64(dims) == (product < 2**63 and all(d < 2**63 for d in dims))


@settings(max_examples=300, deadline=None, derandomize=True, database=None)
@given(text=st.text())
def test_escaped_text_has_no_control_characters(text: str) -> None:
    shown = escape_controls(text)
    assert not any(unicodedata.category(c) == "Cc" for c in shown)
    assert str(AdvisorError(text, text)).count("\n") == 0
