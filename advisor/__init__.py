"""Memory Advisor: does an AI model fit a machine, and what to change if it does not.

The packages under ``advisor`` (readers, hardware, estimator, plan, report) form a Qt-free core;
only ``advisor.ui`` imports Qt. ``tests/test_layering.py`` enforces that.
"""

from advisor._version import __version__

__all__ = ["__version__"]
