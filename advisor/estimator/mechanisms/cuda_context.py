"""CUDA facts every GPU runtime model shares, in one place.

NOTE: measured on an NVIDIA H100 80GB HBM3, driver 580 (DEVELOPERS.md, "Facts measured on these
machines"): a CUDA context created through torch 2.11 shows about 621 MiB of device memory in
nvidia-smi; a bare driver context (what onnxruntime's CUDA EP and llama.cpp's ggml-cuda create,
no torch) about 527 MiB. Other GPUs and drivers differ by tens of MiB (the context holds the
module images of the loaded kernels); the runtime models widen their ranges for that.
"""

from __future__ import annotations

from advisor.estimator.types import MIB

CUDA_CONTEXT_BARE_BYTES = 527 * MIB
CUDA_CONTEXT_TORCH_BYTES = 621 * MIB
