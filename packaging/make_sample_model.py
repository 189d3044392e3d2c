"""Write the bundled sample model: ``resources/samples/sample-convnet.onnx``.

A small ResNet-style image classifier (about 1.4 M parameters, 5.6 MB) with a symbolic batch and
image size, so that a first-time user of ``make run`` sees a complete analysis: weights,
activations that grow with batch and resolution, and a plan. Deterministic (seeded), so that
re-running it reproduces the same bytes.

Usage: ``python packaging/make_sample_model.py [OUT]``
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

OUT = Path(__file__).resolve().parents[1] / "resources" / "samples" / "sample-convnet.onnx"
# (channels, stride) of each stage; two 3x3 convs per stage, a residual add on the second.
STAGES = ((32, 1), (64, 2), (128, 2), (256, 2))
N_CLASSES = 1000


def build() -> onnx.ModelProto:
    rng = np.random.default_rng(20261123)
    inits: list[TensorProto] = []
    nodes: list[onnx.NodeProto] = []

    def conv(x: str, c_in: int, c_out: int, stride: int, name: str, relu: bool = True) -> str:
        fan_in = c_in * 9
        w = (rng.standard_normal((c_out, c_in, 3, 3)) * np.sqrt(2.0 / fan_in)).astype(np.float32)
        b = np.zeros(c_out, np.float32)
        inits.extend([numpy_helper.from_array(w, f"{name}.weight"), numpy_helper.from_array(b, f"{name}.bias")])
        y = f"{name}.out"
        nodes.append(
            helper.make_node(
                "Conv", [x, f"{name}.weight", f"{name}.bias"], [y], name=name,
                kernel_shape=[3, 3], pads=[1, 1, 1, 1], strides=[stride, stride],
            )
        )
        if relu:
            nodes.append(helper.make_node("Relu", [y], [f"{name}.relu"], name=f"{name}.relu"))
            return f"{name}.relu"
        return y

    x = conv("pixel_values", 3, 32, 2, "stem")
    c_prev = 32
    for i, (c, stride) in enumerate(STAGES):
        a = conv(x, c_prev, c, stride, f"stage{i}.conv1")
        b = conv(a, c, c, 1, f"stage{i}.conv2", relu=False)
        nodes.append(helper.make_node("Add", [a, b], [f"stage{i}.sum"], name=f"stage{i}.add"))
        nodes.append(helper.make_node("Relu", [f"stage{i}.sum"], [f"stage{i}.out"], name=f"stage{i}.relu"))
        x, c_prev = f"stage{i}.out", c
    nodes.append(helper.make_node("GlobalAveragePool", [x], ["pooled"], name="pool"))
    nodes.append(helper.make_node("Flatten", ["pooled"], ["features"], name="flatten", axis=1))
    w = (rng.standard_normal((N_CLASSES, c_prev)) * 0.02).astype(np.float32)
    bias = np.zeros(N_CLASSES, np.float32)
    inits.extend([numpy_helper.from_array(w, "head.weight"), numpy_helper.from_array(bias, "head.bias")])
    nodes.append(helper.make_node("Gemm", ["features", "head.weight", "head.bias"], ["logits"], name="head", transB=1))

    graph = helper.make_graph(
        nodes,
        "sample_convnet",
        [helper.make_tensor_value_info("pixel_values", TensorProto.FLOAT, ["batch", 3, "height", "width"])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["batch", N_CLASSES])],
        inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], producer_name="memory-advisor")
    model.producer_version = "sample"
    # NOTE: onnx 1.23 writes IR version 14 by default, which onnxruntime 1.31/1.32 refuses.
    model.ir_version = 10
    helper.set_model_props(model, {"description": "Memory Advisor sample: ResNet-style classifier, 224x224 RGB"})
    onnx.checker.check_model(model)
    return model


def main() -> int:
    out = Path(sys.argv[1]) if len(sys.argv) > 1 else OUT
    out.parent.mkdir(parents=True, exist_ok=True)
    onnx.save_model(build(), out)
    print(f"wrote {out} ({out.stat().st_size / 1e6:.1f} MB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
