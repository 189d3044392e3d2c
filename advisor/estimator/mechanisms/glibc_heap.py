"""What glibc's malloc keeps after a free: the heap/mmap split that decides which freed memory stays.

glibc serves a request above its mmap threshold with ``mmap`` and unmaps it on free; below it, from
the heap, whose freed chunks stay resident and are reused only by requests one chunk can serve. The
threshold starts at ``DEFAULT_MMAP_THRESHOLD_MIN`` and rises to the size of each freed mmapped
block, up to ``DEFAULT_MMAP_THRESHOLD_MAX`` = 4 MiB × sizeof(long) = 32 MiB on 64-bit
(malloc/malloc.c, mallopt(3) ``M_MMAP_THRESHOLD``). So in a process that allocates and frees
weight- or activation-sized blocks, freed blocks of at most 32 MiB stay in RSS and bigger ones go
back to the OS at once.

Measured with ``MALLOC_MMAP_THRESHOLD_=131072`` (which pins the threshold and turns the effect off):
onnxruntime loading ResNet-18 keeps ~110 MiB of freed weight-sized chunks (bench/README.md, "heap
reuse after load"); HF ``generate()`` on llama-57m float32 at 4 × 2048 keeps 110-130 MiB of
attention-phase tensors (bench/llm_accuracy.py).
"""

from __future__ import annotations

from advisor.estimator.types import MIB

MMAP_THRESHOLD_MAX_BYTES = 32 * MIB
"""``DEFAULT_MMAP_THRESHOLD_MAX`` on 64-bit: freed blocks up to this size may stay in the heap."""

MMAP_THRESHOLD_MIN_BYTES = 128 * 1024
"""``DEFAULT_MMAP_THRESHOLD_MIN``: the threshold before any mmapped block was freed."""
