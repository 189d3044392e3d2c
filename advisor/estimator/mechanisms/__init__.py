"""Mechanism modules: each models one thing a runtime does, and names the source it follows.

* :mod:`.liveness` — which tensors are alive at once (onnxruntime's allocation planner rules);
* :mod:`.shapes`, :mod:`.shape_values` — every tensor's shape under a workload (onnx inference,
  shape computations folded, Loop-carried shapes);
* :mod:`.bfc_arena` — onnxruntime's BFC arena and memory-pattern block (bfc_arena.cc);
* :mod:`.glibc_heap` — what glibc malloc keeps after a free (malloc.c's mmap threshold);
* :mod:`.ort_fusions`, :mod:`.ort_nchwc`, :mod:`.ort_quant`, :mod:`.ort_kernels`, :mod:`.ort_ml` —
  onnxruntime's graph rewrites, NCHWc layout, QDQ fusions, kernel working buffers, ai.onnx.ml kernels;
* :mod:`.cuda_caching_allocator` — torch's CUDA caching allocator (CUDACachingAllocator.cpp);
* :mod:`.kv_cache` — the KV cache of decoder LLMs (GQA, sliding windows, MLA, quantized caches);
* :mod:`.cuda_context` — the CUDA context a process pays before any tensor.

Each module's docstring cites the runtime source it models and the micro-benchmark under
``bench/micro/`` (or the bench case) that measured it.
"""
