"""Carry out a plan option that the core can do by itself: today, int8 dynamic quantization of ONNX.

The copy is written next to the original under a free name (``model.int8.onnx``,
``model.int8-2.onnx`` …), first into a hidden temporary folder beside it, then renamed into
place, so a failure or a cancel never leaves a half-written model and the original is never
touched.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

from advisor.cancel import CancelToken, ProgressFn
from advisor.errors import AdvisorError
from advisor.plan.quantize import DYNAMIC_OP_TYPES
from advisor.plan.types import PlanOption
from advisor.readers.profile import ModelProfile

APPLY_ONNX_INT8_DYNAMIC = "onnx-int8-dynamic"
SUPPORTED_ACTIONS: tuple[str, ...] = (APPLY_ONNX_INT8_DYNAMIC,)
# NOTE: onnx 1.23 saves IR version 14 by default; onnxruntime 1.32 loads at most 10 (PREAMBLE).
MAX_IR_VERSION = 10
# NOTE: protobuf refuses messages over 2 GiB; stay well below it before switching to external data
# (onnxruntime's quantize_dynamic docstring: use_external_data_format "for large size (>2GB) model").
EXTERNAL_DATA_BYTES = 1536 * 1024**2


def apply_option(
    option: PlanOption,
    model: ModelProfile,
    *,
    progress: ProgressFn | None = None,
    cancel: CancelToken | None = None,
) -> Path:
    """Write the transformed copy that ``option`` describes, and return its path.

    ``cancel`` is checked between steps (before quantizing, after it, before the rename);
    onnxruntime's quantizer itself cannot be interrupted, so a cancel takes effect when it returns.

    Raises:
        AdvisorError: the option cannot be applied by the advisor (do it with its ``how_to``), or
            the model is not a single ONNX file, or quantization failed.
        Cancelled: ``cancel`` was set; nothing is left behind.
    """
    if option.apply_action != APPLY_ONNX_INT8_DYNAMIC:
        what = option.apply_action or option.kind
        raise AdvisorError(f"the advisor cannot apply {what!r} itself; follow the option's how-to instead")
    return quantize_onnx_int8_dynamic(model, progress=progress, cancel=cancel)


def free_name(source: Path, tag: str) -> Path:
    """``model.<tag>.onnx`` next to ``source``, or ``model.<tag>-2.onnx`` … when taken."""
    n = 1
    while True:
        suffix = f".{tag}" if n == 1 else f".{tag}-{n}"
        out = source.with_name(f"{source.stem}{suffix}{source.suffix or '.onnx'}")
        if not out.exists() and not out.with_name(out.name + ".data").exists():
            return out
        n += 1


def quantize_onnx_int8_dynamic(
    model: ModelProfile,
    *,
    progress: ProgressFn | None = None,
    cancel: CancelToken | None = None,
) -> Path:
    """int8 dynamic quantization (MatMul/Conv weights) of an ONNX model, written as a new file."""
    source = Path(model.load_path)
    if model.format != "onnx" or not source.is_file():
        raise AdvisorError("int8 dynamic quantization needs an ONNX model file", source)
    report = progress or (lambda fraction, message: None)

    def check() -> None:
        if cancel is not None:
            cancel.raise_if_cancelled()

    check()
    target = free_name(source, "int8")
    external = len(model.files) > 1 or model.weight_bytes > EXTERNAL_DATA_BYTES
    report(0.05, f"quantizing {source.name} to int8")
    try:
        tmp_dir = Path(tempfile.mkdtemp(prefix=f".{target.stem}.", suffix=".tmp", dir=source.parent))
    except OSError as exc:
        raise AdvisorError(f"cannot write next to the model ({exc.strerror or exc})", source.parent) from None
    try:
        tmp_model = tmp_dir / target.name
        _run_quantize(source, tmp_model, external)
        check()
        report(0.8, "checking the quantized copy")
        _clamp_ir_version(tmp_model)
        check()
        report(0.9, f"saving {target.name}")
        # The data file first, the model last: the model never appears without its data.
        data = tmp_model.with_name(tmp_model.name + ".data")
        if data.exists():
            data.replace(target.with_name(target.name + ".data"))
        tmp_model.replace(target)
    except AdvisorError:
        _remove_partial(target, tmp_dir)
        raise
    except (Exception, KeyboardInterrupt) as exc:  # onnxruntime raises anything from its C++ core
        _remove_partial(target, tmp_dir)
        if isinstance(exc, KeyboardInterrupt):
            raise
        raise AdvisorError(f"int8 quantization failed: {type(exc).__name__}: {exc}", source) from None
    shutil.rmtree(tmp_dir, ignore_errors=True)
    report(1.0, f"wrote {target.name}")
    return target


def _run_quantize(source: Path, out: Path, external: bool) -> None:
    from onnxruntime.quantization import QuantType, quantize_dynamic

    quantize_dynamic(
        source,
        out,
        op_types_to_quantize=list(DYNAMIC_OP_TYPES),
        per_channel=False,
        weight_type=QuantType.QInt8,
        use_external_data_format=external,
    )


def _clamp_ir_version(path: Path) -> None:
    """Lower the file's IR version to what onnxruntime 1.32 loads (the graph part only)."""
    import onnx

    proto = onnx.load(str(path), load_external_data=False)
    if proto.ir_version > MAX_IR_VERSION:
        proto.ir_version = MAX_IR_VERSION
        onnx.save(proto, str(path))


def _remove_partial(target: Path, tmp_dir: Path) -> None:
    """Remove the temporary folder; a data file already moved for ``target`` goes too."""
    shutil.rmtree(tmp_dir, ignore_errors=True)
    moved_data = target.with_name(target.name + ".data")
    if moved_data.exists() and not target.exists():
        moved_data.unlink(missing_ok=True)
