"""The live plot's ring buffer: order, wrap-around, views without copies."""

from __future__ import annotations

import numpy as np
import pytest

from advisor.ui.ring_buffer import DEFAULT_CAPACITY, FASTEST_REFRESH_MS, RingBuffer, capacity_for


def _fill(buf: RingBuffer, n: int) -> None:
    for i in range(n):
        buf.append(float(i), [i * 10.0, i * 100.0])


def test_empty_buffer_has_empty_views() -> None:
    buf = RingBuffer(4, 2)
    t, v = buf.view()
    assert len(buf) == 0
    assert t.shape == (0,)
    assert v.shape == (0, 2)
    assert buf.latest() is None


def test_partial_fill_keeps_insertion_order() -> None:
    buf = RingBuffer(5, 2)
    _fill(buf, 3)
    t, v = buf.view()
    assert len(buf) == 3
    np.testing.assert_array_equal(t, [0, 1, 2])
    np.testing.assert_array_equal(v[:, 0], [0, 10, 20])
    np.testing.assert_array_equal(v[:, 1], [0, 100, 200])


@pytest.mark.parametrize("n", [5, 6, 12, 17])
def test_wraps_and_keeps_the_newest_rows_in_order(n: int) -> None:
    buf = RingBuffer(5, 2)
    _fill(buf, n)
    t, v = buf.view()
    expected = np.arange(n - 5, n, dtype=float)
    assert len(buf) == 5
    np.testing.assert_array_equal(t, expected)
    np.testing.assert_array_equal(v[:, 0], expected * 10)
    np.testing.assert_array_equal(buf.column(1), expected * 100)
    latest = buf.latest()
    assert latest is not None
    assert latest[0] == n - 1
    np.testing.assert_array_equal(latest[1], [(n - 1) * 10.0, (n - 1) * 100.0])


def test_views_are_read_only_contiguous_and_not_copies() -> None:
    buf = RingBuffer(4, 3)
    for i in range(7):
        buf.append(float(i), [i, i, i])
    t, v = buf.view()
    col = buf.column(2)
    assert not t.flags.writeable
    assert not v.flags.writeable
    assert col.flags.c_contiguous and t.flags.c_contiguous
    assert v[:, 1].flags.c_contiguous  # columns are contiguous: setData gets them without a copy
    t2, _ = buf.view()
    assert np.shares_memory(t, t2)  # two views of one buffer, not two copies


def test_wrong_number_of_values_is_refused() -> None:
    buf = RingBuffer(4, 2)
    with pytest.raises(ValueError, match="expected 2 values"):
        buf.append(0.0, [1.0])
    with pytest.raises(ValueError):
        RingBuffer(0, 1)


def test_clear_forgets_rows_and_accepts_new_ones() -> None:
    buf = RingBuffer(3, 2)
    _fill(buf, 5)
    buf.clear()
    assert len(buf) == 0
    buf.append(42.0, [1.0, 2.0])
    t, v = buf.view()
    np.testing.assert_array_equal(t, [42.0])
    np.testing.assert_array_equal(v, [[1.0, 2.0]])


def test_default_capacity_keeps_ten_minutes_at_the_fastest_refresh() -> None:
    assert DEFAULT_CAPACITY * FASTEST_REFRESH_MS / 1000 >= 600
    assert capacity_for(600, 250) == 2400
    assert capacity_for(1, 300) == 4
    with pytest.raises(ValueError):
        capacity_for(0)


def test_counts_non_finite_values_per_column_as_rows_come_and_go() -> None:
    buf = RingBuffer(3, 2)
    buf.append(0.0, [1.0, np.nan])
    assert buf.all_finite(0) and not buf.all_finite(1)
    buf.append(1.0, [np.inf, 2.0])
    assert not buf.all_finite(0) and not buf.all_finite(1)
    buf.append(2.0, [3.0, 3.0])
    buf.append(3.0, [4.0, 4.0])  # overwrites the row with the NaN
    assert not buf.all_finite(0) and buf.all_finite(1)
    buf.append(4.0, [5.0, 5.0])  # and the one with the inf
    assert buf.all_finite(0) and buf.all_finite(1)
    buf.append(5.0, [np.nan, 6.0])
    buf.clear()
    assert buf.all_finite(0) and buf.all_finite(1)
