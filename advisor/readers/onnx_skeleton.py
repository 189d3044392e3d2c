"""The structure of an ONNX model as an ``onnx.ModelProto``, without the data of its big tensors.

Shape inference and the liveness walk need the graph, never the weights: :func:`load_skeleton`
re-encodes the file with big tensors' data left out (see :mod:`advisor.readers.onnx_wire`).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from advisor.errors import ModelFormatError
from advisor.readers.onnx_wire import (
    MAX_GRAPH_DEPTH,
    TENSOR_DATA_FIELDS,
    Buffer,
    Pager,
    WireError,
    iter_fields,
    mapped_onnx,
    rewrite,
)

if TYPE_CHECKING:
    import onnx


class _Skeleton:
    """Re-encodes a ModelProto with the data of big tensors left out (dims, type, name kept).

    Which fields can hold tensors, from onnx.proto: ModelProto.graph (7), training_info (20),
    functions (25); GraphProto.node (1), initializer (5), sparse_initializer (15);
    NodeProto.attribute (5); AttributeProto.t/g/tensors/graphs/sparse_tensor(s) (5, 6, 10, 11, 22,
    23); SparseTensorProto.values/indices (1, 2); TrainingInfoProto graphs (1, 2); FunctionProto.node (7).
    """

    def __init__(self, keep_data_bytes: int, pager: Pager | None = None) -> None:
        self.keep = keep_data_bytes
        self.done = pager.passed if pager is not None else None
        self.depth = 0  # graphs inside graphs (If/Loop bodies, training_info): bounded like the reader's
        g, node, tensor, sparse = self.graph, self.node, self.tensor, self.sparse
        self.model_h = {7: g, 20: self.training, 25: self.function}
        self.graph_h = {1: node, 5: tensor, 15: sparse}
        self.attr_h = {5: tensor, 6: g, 10: tensor, 11: g, 22: sparse, 23: sparse}
        self.node_h = {5: self.attribute}
        self.sparse_h = {1: tensor, 2: tensor}
        self.training_h = {1: g, 2: g}
        self.function_h = {7: node}
        # NOTE: a message no longer than ``keep`` cannot hold a tensor whose data is longer: it
        # is copied as is, unread (rewrite's min_len), so only the few big messages are walked.

    def model(self, buf: Buffer, start: int, end: int) -> bytes | None:
        return rewrite(buf, start, end, self.model_h, min_len=self.keep)

    def graph(self, buf: Buffer, start: int, end: int) -> bytes | None:
        if self.depth >= MAX_GRAPH_DEPTH:
            raise WireError(f"subgraphs nested deeper than {MAX_GRAPH_DEPTH} levels", start)
        self.depth += 1
        try:
            return rewrite(buf, start, end, self.graph_h, min_len=self.keep, done=self.done)
        finally:
            self.depth -= 1

    def node(self, buf: Buffer, start: int, end: int) -> bytes | None:
        return rewrite(buf, start, end, self.node_h, min_len=self.keep)

    def attribute(self, buf: Buffer, start: int, end: int) -> bytes | None:
        return rewrite(buf, start, end, self.attr_h, min_len=self.keep)

    def sparse(self, buf: Buffer, start: int, end: int) -> bytes | None:
        return rewrite(buf, start, end, self.sparse_h, min_len=self.keep)

    def training(self, buf: Buffer, start: int, end: int) -> bytes | None:
        return rewrite(buf, start, end, self.training_h, min_len=self.keep)

    def function(self, buf: Buffer, start: int, end: int) -> bytes | None:
        return rewrite(buf, start, end, self.function_h, min_len=self.keep)

    def tensor(self, buf: Buffer, start: int, end: int) -> bytes | None:
        """Drop a tensor's data fields when they hold more than ``keep_data_bytes``."""
        fields = list(iter_fields(buf, start, end))
        if sum(f.end - f.start for f in fields if f.number in TENSOR_DATA_FIELDS) <= self.keep:
            return None
        return b"".join(bytes(buf[f.tag_start:f.end]) for f in fields if f.number not in TENSOR_DATA_FIELDS)


def load_skeleton(path: Path, *, keep_data_bytes: int = 4096) -> onnx.ModelProto:
    """The model's full structure as an ``onnx.ModelProto``, without the data of big tensors.

    Tensors (initializers, Constant values, tensor attributes, in subgraphs too) whose stored data
    exceeds ``keep_data_bytes`` keep their name, dims and type but lose their data; small ones
    (Reshape shapes, axes) keep it, so ``onnx.shape_inference.infer_shapes(..., data_prop=True)``
    gives the same shapes as on the full model. External-data references are kept as they are; the
    external files are never opened. Peak memory is about the size of the structure, not the file.

    Raises:
        ModelFormatError: the file is empty, not ONNX, truncated or corrupt.
    """
    from google.protobuf.message import DecodeError

    from advisor import onnx_lite

    path = Path(path)
    with mapped_onnx(path) as (mm, size):
        try:
            data = _Skeleton(keep_data_bytes, Pager(mm)).model(mm, 0, size)
            if data is None:
                data = bytes(mm)  # nothing big to drop: the file is its own skeleton
        except WireError as exc:
            if str(exc).startswith("subgraphs nested"):  # well-formed, but past the bound: say that
                raise ModelFormatError(f"{exc}: corrupt or hostile", path) from None
            raise ModelFormatError(f"not a valid ONNX file (corrupt or truncated protobuf: {exc})",
                                   path) from None
    try:
        model = onnx_lite.parse_model(data)
    except (DecodeError, ValueError) as exc:
        raise ModelFormatError(f"not a valid ONNX file ({exc})", path) from None
    if not model.HasField("graph"):
        raise ModelFormatError("no graph: not an ONNX model (or an empty one)", path)
    return model
