"""The replay of torch's CUDA caching allocator: hand-computed segment and rounding results.

Each expectation is worked out by hand from the rules in c10/cuda/CUDACachingAllocator.cpp; doubling
any of its constants (512 B blocks, 1 MiB small limit, 2 MiB / 20 MiB segments, 10 MiB large
threshold, 2 MiB large rounding) changes at least one of them.
"""

from __future__ import annotations

import pytest

from advisor.estimator.mechanisms import cuda_caching_allocator as tca
from advisor.estimator.mechanisms.cuda_caching_allocator import AllocatorPeak, CachingAllocator, DecoderShape

KIB = 1024
MIB = 1024**2


def test_rounding_and_segment_sizes() -> None:
    assert tca.round_size(1) == 512
    assert tca.round_size(513) == 1024
    assert tca.allocation_size(1 * MIB) == 2 * MIB  # ≤ 1 MiB: small pool
    assert tca.allocation_size(1 * MIB + 512) == 20 * MIB  # 1-10 MiB: a 20 MiB segment
    assert tca.allocation_size(10 * MIB - 512) == 20 * MIB
    assert tca.allocation_size(10 * MIB) == 10 * MIB  # ≥ 10 MiB: its own, rounded to 2 MiB
    assert tca.allocation_size(11 * MIB + 512) == 12 * MIB


def test_one_byte_takes_a_512_byte_block_of_a_2_mib_segment() -> None:
    a = CachingAllocator()
    a.malloc(1)
    assert (a.allocated, a.reserved) == (512, 2 * MIB)


def test_small_requests_pack_three_per_2_mib_segment() -> None:
    # 600 KiB each: 2 MiB holds three (1800 KiB, the 248 KiB left fits no fourth) → 7 need 3 segments
    a = CachingAllocator()
    for _ in range(7):
        a.malloc(600 * KIB)
    assert a.allocated == 7 * 600 * KIB
    assert a.reserved == 3 * 2 * MIB


def test_mid_requests_share_20_mib_segments() -> None:
    # 6 MiB each: a 20 MiB segment holds three (the 2 MiB rest is split off, > 1 MiB) → 7 need 3
    a = CachingAllocator()
    for _ in range(7):
        a.malloc(6 * MIB)
    assert a.reserved == 3 * 20 * MIB


def test_mid_request_one_mib_goes_to_the_small_pool() -> None:
    a = CachingAllocator()
    a.malloc(1 * MIB)
    a.malloc(1 * MIB + 512)
    assert a.reserved == 2 * MIB + 20 * MIB


def test_large_request_keeps_an_unsplittable_remainder() -> None:
    a = CachingAllocator()
    a.malloc(11 * MIB)  # 12 MiB segment; 1 MiB left is not > 1 MiB: the block keeps it
    assert (a.allocated, a.reserved) == (12 * MIB, 12 * MIB)
    a.malloc(10 * MIB + 512)  # 12 MiB segment; 2 MiB - 512 B left is split off
    assert (a.allocated, a.reserved) == (22 * MIB + 512, 24 * MIB)


def test_growing_tensor_strands_the_blocks_it_outgrew() -> None:
    # DynamicCache's pattern: two 16 MiB tensors re-allocated 4 KiB larger; the freed 16 MiB blocks
    # fit no later request, so each grown tensor needs a new 18 MiB segment
    a = CachingAllocator()
    k, v = a.malloc(16 * MIB), a.malloc(16 * MIB)
    k2 = a.malloc(16 * MIB + 4 * KIB)
    a.free(k)
    assert a.reserved == 16 * MIB + 16 * MIB + 18 * MIB
    v2 = a.malloc(16 * MIB + 4 * KIB)
    a.free(v)
    assert a.reserved == 16 * MIB + 16 * MIB + 18 * MIB + 18 * MIB
    assert a.allocated == 2 * (16 * MIB + 4 * KIB)
    a.free(k2)
    a.free(v2)
    a.empty_cache()
    assert (a.allocated, a.reserved) == (0, 0)


def test_freed_neighbours_merge_and_best_fit_reuses_them() -> None:
    a = CachingAllocator()
    x, y = a.malloc(8 * MIB), a.malloc(8 * MIB)  # one 20 MiB segment
    a.free(x)
    a.free(y)
    a.malloc(19 * MIB)  # the merged 20 MiB block fits: no new segment, the 1 MiB rest stays with it
    assert (a.allocated, a.reserved) == (20 * MIB, 20 * MIB)


def test_best_fit_takes_the_smallest_block_that_fits() -> None:
    a = CachingAllocator()
    big, small = a.malloc(40 * MIB), a.malloc(12 * MIB)
    keep = a.malloc(2 * MIB)  # noqa: F841 - a 20 MiB segment stays in use
    a.free(big)
    a.free(small)
    a.malloc(12 * MIB)  # reuses the 12 MiB block, so a 40 MiB request still fits without cudaMalloc
    a.malloc(40 * MIB)
    assert a.reserved == 40 * MIB + 12 * MIB + 20 * MIB


def test_empty_cache_keeps_segments_with_live_blocks() -> None:
    a = CachingAllocator()
    live = a.malloc(6 * MIB)
    gone = a.malloc(12 * MIB)
    a.free(gone)
    a.empty_cache()
    assert a.reserved == 20 * MIB
    a.free(live)
    a.reset_peak()
    assert a.peak_reserved == 20 * MIB


def test_generate_peak_of_a_one_layer_decoder_by_hand() -> None:
    # prompt 256, batch 1, hidden 64, MLP 4096, fp16, no decode step: the peak is in the MLP, where
    # gate's activation, up and their product (3 × 256 × 4096 × 2 = 3 × 2 MiB) are alive with
    # inputs_embeds, the residual, the normed input (32 KiB each), cos/sin (256 × 16 × 2 = 8 KiB
    # each), the cache's K and V (256 × 16 × 2 = 8 KiB each), input ids, mask and position ids
    # (256 × 8 = 2 KiB each) and cuBLAS's workspace
    shape = DecoderShape(n_layers=1, hidden=64, q_dim=64, k_dim=16, v_dim=16, inter=4096, rope_dim=16,
                         vocab=256, act_bytes=2, kv_token_bytes=(64,), windows=(0,))
    weights = (3 * MIB,)
    peak = tca.generate_peak(shape, weights, 1, 256, 1, 4 * MIB)
    expected = 3 * MIB + 4 * MIB + 3 * 2 * MIB + 3 * 32 * KIB + 2 * 8 * KIB + 2 * 8 * KIB + 3 * 2 * KIB
    assert peak.allocated == expected
    # segments: the weights open a 20 MiB segment; the workspace (4 MiB) and the 2 MiB MLP tensors
    # are carved from its 17 MiB rest (up reuses gate's freed block: 3 + 4 + 3 × 2 ≤ 20); every other
    # tensor is ≤ 1 MiB and fits one 2 MiB small segment
    assert peak == AllocatorPeak(allocated=expected, reserved=20 * MIB + 2 * MIB)


def test_a_device_holding_only_the_head_replays_without_layers() -> None:
    # device_map="auto" can leave the last GPU only the final norm and lm_head: its forward norms
    # the embeddings themselves, which stay alive until the forward ends (freed once, not twice)
    shape = DecoderShape(n_layers=0, hidden=64, q_dim=64, k_dim=16, v_dim=16, inter=256, rope_dim=16,
                         vocab=256, act_bytes=2, kv_token_bytes=(), windows=())
    peak = tca.generate_peak(shape, (MIB,), 1, 16, 4, 4 * MIB)
    assert MIB + 4 * MIB < peak.allocated < MIB + 4 * MIB + 64 * KIB


def _deep_shape(n: int) -> DecoderShape:
    return DecoderShape(n_layers=n, hidden=4096, q_dim=4096, k_dim=1024, v_dim=1024, inter=14336, rope_dim=128,
                        vocab=32000, act_bytes=2, kv_token_bytes=(4096,) * n,
                        windows=tuple(1024 if i % 2 else 0 for i in range(n)))


def test_deep_decoder_is_replayed_shallow_and_extended_per_layer(monkeypatch: pytest.MonkeyPatch) -> None:
    n = tca._MAX_REPLAY_LAYERS + 34
    weights = (32000 * 4096 * 2,) + (4096 * 4096 * 2, 14336 * 4096 * 2) * n
    args = (weights, 2, 512, 256, 32 * MIB)
    shallow = tca.generate_peak(_deep_shape(n), *args)
    tca.generate_peak.cache_clear()
    monkeypatch.setattr(tca, "_MAX_REPLAY_LAYERS", 10**6)
    full = tca.generate_peak(_deep_shape(n), *args)
    tca.generate_peak.cache_clear()
    assert abs(shallow.allocated - full.allocated) <= 0.002 * full.allocated
    assert -0.04 * full.reserved <= shallow.reserved - full.reserved <= 0.01 * full.reserved
