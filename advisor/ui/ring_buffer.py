"""A fixed-size numpy ring buffer of timestamped rows, for the live memory plot.

The plot calls :meth:`RingBuffer.view` after every sample, so the view must not copy: each row is
written twice, at ``i`` and ``i + capacity`` (the "double-mapped" ring), which makes the newest
``len(buffer)`` rows always one contiguous slice. Twice the memory (3600 rows × a few columns ×
8 bytes × 2 ≈ 0.3 MiB) buys a copy-free, in-order view. Values are stored column-major so each
column of the view is contiguous too, which is what ``PlotDataItem.setData`` wants.

The buffer also counts the non-finite values (NaN: a reading the probe could not take) each column
holds, so the plot knows without a scan when a column is all finite and ``setData`` may skip its
finite check.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float64]

# NOTE: the history the plot keeps: at least 10 minutes at the fastest refresh the UI offers
# (LiveMemory.MIN_REFRESH_MS = 250 ms) → 15 min × 4 samples/s = 3600 rows.
HISTORY_S = 15 * 60
FASTEST_REFRESH_MS = 250
DEFAULT_CAPACITY = HISTORY_S * 1000 // FASTEST_REFRESH_MS


def capacity_for(history_s: float, refresh_ms: int = FASTEST_REFRESH_MS) -> int:
    """Rows needed to keep ``history_s`` seconds of samples taken every ``refresh_ms``."""
    if history_s <= 0 or refresh_ms <= 0:
        raise ValueError("history_s and refresh_ms must be positive")
    return int(np.ceil(history_s * 1000.0 / refresh_ms))


class RingBuffer:
    """The last ``capacity`` rows of (time, value columns), oldest first.

    Args:
        capacity: rows kept; older rows are overwritten.
        n_columns: value columns per row.
    """

    def __init__(self, capacity: int = DEFAULT_CAPACITY, n_columns: int = 1) -> None:
        if capacity < 1 or n_columns < 1:
            raise ValueError("capacity and n_columns must be at least 1")
        self._capacity = capacity
        self._n_columns = n_columns
        self._t: FloatArray = np.zeros(2 * capacity, dtype=np.float64)
        self._v: FloatArray = np.zeros((n_columns, 2 * capacity), dtype=np.float64)
        self._nonfinite = np.zeros(n_columns, dtype=np.int64)  # per column, among the rows kept
        self._head = 0  # where the next row goes, in [0, capacity)
        self._len = 0

    @property
    def capacity(self) -> int:
        return self._capacity

    @property
    def n_columns(self) -> int:
        return self._n_columns

    def __len__(self) -> int:
        return self._len

    def append(self, t: float, values: Sequence[float] | FloatArray) -> None:
        """Add one row; the oldest row goes when the buffer is full.

        Raises:
            ValueError: when ``values`` does not have ``n_columns`` entries.
        """
        if len(values) != self._n_columns:
            raise ValueError(f"expected {self._n_columns} values, got {len(values)}")
        i = self._head
        j = i + self._capacity
        if self._len == self._capacity:  # row i is the oldest: its values leave the count
            self._nonfinite -= ~np.isfinite(self._v[:, i])
        self._t[i] = self._t[j] = t
        self._v[:, i] = values
        self._v[:, j] = values
        self._nonfinite += ~np.isfinite(self._v[:, i])
        self._head = (i + 1) % self._capacity
        if self._len < self._capacity:
            self._len += 1

    def _span(self) -> slice:
        start = self._head - self._len
        if start < 0:
            start += self._capacity
        # When not yet full, the rows are [0, len); when full, [head, head + capacity).
        return slice(start, start + self._len)

    def view(self) -> tuple[FloatArray, FloatArray]:
        """The rows in time order, as read-only views (no copy): ``(t[n], values[n, n_columns])``.

        The views alias the buffer: they stay valid until the next :meth:`append`; copy them to keep
        a snapshot.
        """
        span = self._span()
        t = self._t[span]
        v = self._v[:, span].T
        t.flags.writeable = False
        v.flags.writeable = False
        return t, v

    def column(self, index: int) -> FloatArray:
        """Column ``index`` in time order, as a contiguous read-only view."""
        col = self._v[index, self._span()]
        col.flags.writeable = False
        return col

    def all_finite(self, index: int) -> bool:
        """Whether every value of column ``index`` now kept is finite (no NaN, no inf); O(1)."""
        return bool(self._nonfinite[index] == 0)

    def latest(self) -> tuple[float, FloatArray] | None:
        """The newest row (time, values view), or None when empty."""
        if self._len == 0:
            return None
        i = (self._head - 1) % self._capacity
        row = self._v[:, i]
        row.flags.writeable = False
        return float(self._t[i]), row

    def clear(self) -> None:
        """Forget every row (the memory is kept)."""
        self._head = 0
        self._len = 0
        self._nonfinite[:] = 0
