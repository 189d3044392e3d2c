"""onnxruntime's CPU memory machinery, simulated: the BFC arena and the memory-pattern planner.

The liveness walk (:mod:`advisor.estimator.mechanisms.liveness`) gives each intermediate tensor's size and
lifetime; these functions replay them the way onnxruntime 1.32 allocates them, to tell which pages
the first run touches and what the second run (with its memory-pattern block) adds. Sources are
cited next to each rule (onnxruntime/core/framework/bfc_arena.cc, mem_pattern_planner.h,
execution_frame.cc); the measurements behind them are in ``bench/README.md``.
"""

from __future__ import annotations

from collections.abc import Iterable

from advisor.estimator.mechanisms.glibc_heap import MMAP_THRESHOLD_MAX_BYTES
from advisor.estimator.types import MIB
from advisor.units import round_up


def arena_reserved_bytes(need_bytes: int, initial_bytes: int = 1 * MIB) -> int:
    """Bytes a BFC arena with ``kNextPowerOfTwo`` growth reserves to serve ``need_bytes``.

    Regions double (1, 2, 4 ... MiB; a bigger request gets a region of its own size rounded up
    to the next doubling), so the total is the first ``2^k - 1`` MiB sum that covers the need.
    ORT: onnxruntime/core/framework/bfc_arena.cc ``Extend``.
    """
    if need_bytes <= 0:
        return 0
    total, region = 0, initial_bytes
    while total < need_bytes:
        total += region
        region *= 2
    return total


Buffer = tuple[int, int, int, bool]
"""``(size, alloc_step, free_step, is_graph_output)`` from :class:`advisor.estimator.mechanisms.liveness.Liveness`."""

_ALIGN = 64  # NOTE: ORT's allocator alignment (onnxruntime/core/framework/allocator.h kAllocAlignment)
_BFC_MIN = 256  # NOTE: bfc_arena.h kMinAllocationSize: every request is rounded up to 256 bytes
_BFC_MAX_DEAD = 128 * MIB  # NOTE: OrtArenaCfg default max_dead_bytes_per_chunk
_BFC_MAX_EXTEND = 1024 * MIB  # NOTE: OrtArenaCfg default max_power_of_two_extend_bytes (1 GiB)


def _events(buffers: Iterable[Buffer]) -> list[tuple[int, int, int, int]]:
    """(step, order, buffer id, size) — size 0 marks a free; frees of a step come after its allocs."""
    out: list[tuple[int, int, int, int]] = []
    for k, (size, born, dies, _) in enumerate(buffers):
        out.append((born, 0, k, size))
        out.append((dies, 1, k, 0))
    out.sort(key=lambda e: (e[0], e[1], e[2]))
    return out


def pattern_block_bytes(buffers: Iterable[Buffer]) -> int:
    """Size of ORT's memory-pattern block, each tensor placed best-fit.

    Mirrors ``MemPatternPlanner::TraceAllocation`` (onnxruntime/core/framework/mem_pattern_planner.h):
    the smallest gap between live blocks that fits, else the end of the buffer. The caller picks
    the buffers (ORT traces neither graph outputs nor kernel scratch into the pattern).
    """
    bufs = list(buffers)
    live: dict[int, tuple[int, int]] = {}
    peak = 0
    for _, kind, k, _size in _events(bufs):
        if kind == 1:
            live.pop(k, None)
            continue
        size = round_up(bufs[k][0], _ALIGN)
        best, best_gap, prev_end = -1, -1, 0
        for off, sz in sorted(live.values()):
            gap = off - prev_end
            if gap >= size and (best_gap < 0 or gap < best_gap):
                best, best_gap = prev_end, gap
            prev_end = max(prev_end, off + sz)
        offset = best if best >= 0 else prev_end
        live[k] = (offset, size)
        peak = max(peak, offset + size)
    return peak


class _Bfc:
    """ORT's BFC arena, simulated: best-fit over the free chunks of every region; a miss extends
    the arena by a new region whose size doubles (1, 2, 4 ... MiB) until it holds the request
    (``kNextPowerOfTwo``, onnxruntime/core/framework/bfc_arena.cc ``Extend``). Freed
    chunks stay in the arena and coalesce only with neighbours of the same region. Pages count
    once written (RSS on CPU)."""

    def __init__(self, initial_bytes: int) -> None:
        self.regions: list[int] = []
        self.touched: list[int] = []
        self.free: list[list[tuple[int, int]]] = []  # per region: free (offset, size), sorted
        self.where: dict[int, tuple[int, int, int]] = {}
        self.curr = initial_bytes

    def alloc(self, k: int, nbytes: int) -> None:
        req = max(_BFC_MIN, -(-nbytes // _BFC_MIN) * _BFC_MIN)
        pick: tuple[int, int, int, int] | None = None  # (size, region, index, offset)
        for r, chunks in enumerate(self.free):
            for i, (o, s) in enumerate(chunks):
                if s >= req and (pick is None or s < pick[0]):
                    pick = (s, r, i, o)
        if pick is None:
            # kNextPowerOfTwo (bfc_arena.cc ``Extend``): the region size doubles until it holds the
            # request; only a region of the unchanged size doubles the next one (capped at
            # ``max_power_of_two_extend_bytes``, 1 GiB by default).
            grew = req > self.curr
            while req > self.curr:
                self.curr *= 2
            size = self.curr
            if not grew:
                self.curr = min(2 * self.curr, _BFC_MAX_EXTEND) if self.curr < _BFC_MAX_EXTEND else self.curr
            self.regions.append(size)
            self.touched.append(0)
            self.free.append([(0, size)])
            pick = (size, len(self.regions) - 1, 0, 0)
        s, r, i, o = pick
        take = s if (s < 2 * req and s - req < _BFC_MAX_DEAD) else req
        if s - take:
            self.free[r][i] = (o + take, s - take)
        else:
            self.free[r].pop(i)
        self.where[k] = (r, o, take)
        self.touched[r] = max(self.touched[r], o + req)

    def release(self, k: int) -> None:
        if k not in self.where:
            return
        r, off, sz = self.where.pop(k)
        chunks = sorted([*self.free[r], (off, sz)])
        merged: list[tuple[int, int]] = []
        for o, s in chunks:
            if merged and merged[-1][0] + merged[-1][1] == o:
                merged[-1] = (merged[-1][0], merged[-1][1] + s)
            else:
                merged.append((o, s))
        self.free[r] = merged

    def replay(self, bufs: list[Buffer], keep: Iterable[bool] | None = None) -> None:
        """Allocate and free ``bufs`` in step order (only those ``keep`` marks, when given)."""
        mask = list(keep) if keep is not None else [True] * len(bufs)
        for _, kind, k, _size in _events(bufs):
            if not mask[k]:
                continue
            if kind == 1:
                self.release(k)
            else:
                self.alloc(k, bufs[k][0])


def bfc_touched_bytes(buffers: Iterable[Buffer], initial_bytes: int = 1 * MIB) -> tuple[int, int, int]:
    """Simulate ORT's BFC arena over one run: (bytes touched, bytes reserved, bytes touched in
    regions small enough for glibc to serve from its heap, ≤ 32 MiB: those can reuse load leftovers).

    The reserved total is what a GPU's nvidia-smi shows. See :class:`_Bfc`.
    """
    arena = _Bfc(initial_bytes)
    arena.replay(list(buffers))
    small = sum(t for t, size in zip(arena.touched, arena.regions, strict=True)
                if size <= MMAP_THRESHOLD_MAX_BYTES)
    return sum(arena.touched), sum(arena.regions), small


def second_run_growth_bytes(buffers: Iterable[Buffer], untraced: Iterable[bool], block_bytes: int,
                            initial_bytes: int = 1 * MIB) -> tuple[tuple[int, int, int], ...]:
    """Per arena region after the second run: ``(region size, bytes touched by the first run,
    bytes the second run touches beyond that)``.

    The memory-pattern block is allocated through the arena (``alloc->Alloc(peak_size)`` in
    onnxruntime/core/framework/execution_frame.cc, ORT 1.32; not ``Reserve``), so it is placed in
    the chunks the first run freed when one region is big enough, and only pages beyond that
    region's touched part are new. Tensors the pattern does not hold (graph outputs, kernel
    scratch: ``untraced``) are then allocated around it as in the first run.
    NOTE: bench (bench/ort_measure.py-style probe, VmRSS after each run): t-lstm_lm 16×256: first
    run +753 MiB (simulated 737), second +16 (block 345 MiB fits a first-run region; simulated
    +32); t-mobilenet_v2 16×224²: +128 (simulated 128), +31 (simulated 31); gru-512 512×4: +33
    (simulated 32), +0 (simulated 0); const-mlp-2k 2048×32: second run +32 (block 32 MiB > its
    two 16 MiB regions; simulated 32).
    """
    bufs = list(buffers)
    arena = _Bfc(initial_bytes)
    arena.replay(bufs)
    before = list(arena.touched)
    if block_bytes > 0:
        arena.alloc(-1, block_bytes)
    arena.replay(bufs, untraced)
    first = before + [0] * (len(arena.touched) - len(before))
    return tuple((size, t1, t - t1) for size, t1, t in zip(arena.regions, first, arena.touched, strict=True))
