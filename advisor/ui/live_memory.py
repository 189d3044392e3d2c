"""Samples this machine's memory on a timer and hands each sample to the window as a Qt signal.

A sample costs microseconds (psutil + NVML, ~6 µs), so it runs on the GUI thread from a
``QTimer``: no worker thread, nothing to join. The sampler is injectable so tests feed their own.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from PySide6.QtCore import QObject, Qt, QTimer, Signal


class GpuSampleLike(Protocol):
    """What the plot reads of ``advisor.hardware.sampler.GpuMemorySample`` (read-only)."""

    @property
    def index(self) -> int: ...
    @property
    def name(self) -> str: ...
    @property
    def used_bytes(self) -> int | None: ...
    @property
    def total_bytes(self) -> int | None: ...


class MemorySampleLike(Protocol):
    """What the plot reads of ``advisor.hardware.sampler.MemorySample`` (read-only)."""

    @property
    def time_s(self) -> float: ...
    @property
    def ram_used_bytes(self) -> int: ...
    @property
    def ram_total_bytes(self) -> int: ...
    @property
    def swap_used_bytes(self) -> int | None: ...
    @property
    def swap_total_bytes(self) -> int | None: ...
    @property
    def gpus(self) -> Sequence[GpuSampleLike]: ...


class SamplerLike(Protocol):
    """What :class:`LiveMemory` needs of ``advisor.hardware.sampler.MemorySampler``."""

    def sample(self) -> MemorySampleLike:
        """One memory sample (a ``MemorySample``)."""
        ...

    def close(self) -> None:
        """Release the probes (NVML)."""
        ...


class LiveMemory(QObject):
    """Emits :attr:`sampled` with a memory sample every ``refresh_ms`` while started.

    A sampler that raises does not stop the timer: the first failure of a streak is emitted once
    on :attr:`failed` (one readable line) and sampling goes on; a later success re-arms it.

    Args:
        sampler: the probe; None builds the real ``MemorySampler`` (imported here, lazily).
        refresh_ms: the period, clamped to ``MIN_REFRESH_MS..MAX_REFRESH_MS``.
        parent: the Qt parent.
    """

    MIN_REFRESH_MS = 250
    MAX_REFRESH_MS = 10_000
    DEFAULT_REFRESH_MS = 1000

    sampled = Signal(object)
    failed = Signal(str)

    def __init__(
        self,
        sampler: SamplerLike | None = None,
        refresh_ms: int = DEFAULT_REFRESH_MS,
        parent: QObject | None = None,
    ) -> None:
        super().__init__(parent)
        if sampler is None:
            from advisor.hardware.sampler import MemorySampler

            sampler = MemorySampler()
        self._sampler: SamplerLike | None = sampler
        self._failing = False
        self._timer = QTimer(self)
        # NOTE: Qt's default CoarseTimer may drift by 5 %; at 250 ms that jitters the plot's x spacing.
        self._timer.setTimerType(Qt.TimerType.PreciseTimer)
        self._timer.timeout.connect(self.sample_now)
        self.set_refresh_ms(refresh_ms)

    @property
    def refresh_ms(self) -> int:
        return self._timer.interval()

    @property
    def is_running(self) -> bool:
        return self._timer.isActive()

    def set_refresh_ms(self, refresh_ms: int) -> int:
        """Set the period, clamped to the bounds; returns the period applied."""
        ms = max(self.MIN_REFRESH_MS, min(self.MAX_REFRESH_MS, int(refresh_ms)))
        self._timer.setInterval(ms)
        return ms

    def start(self) -> None:
        """Take a sample now, then one every ``refresh_ms``."""
        if self._sampler is None:
            return
        self.sample_now()
        self._timer.start()

    def stop(self) -> None:
        """Stop sampling (the sampler stays open; :meth:`start` resumes)."""
        self._timer.stop()

    def close(self) -> None:
        """Stop the timer and close the sampler. Safe to call twice."""
        self._timer.stop()
        sampler, self._sampler = self._sampler, None
        if sampler is not None:
            try:
                sampler.close()
            except Exception as exc:  # closing must never raise into the window
                self.failed.emit(f"closing the memory sampler failed: {exc}")

    def sample_now(self) -> None:
        """Take one sample and emit it (or the failure)."""
        if self._sampler is None:
            return
        try:
            sample = self._sampler.sample()
        except Exception as exc:  # any probe failure: one message, sampling goes on
            if not self._failing:
                self._failing = True
                self.failed.emit(f"reading memory use failed: {exc}".splitlines()[0])
            return
        self._failing = False
        self.sampled.emit(sample)
