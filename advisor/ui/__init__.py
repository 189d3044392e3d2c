"""The desktop app (PySide6): the only part of the advisor that imports Qt.

Start it with :func:`advisor.ui.app.run_app`; the window (:mod:`advisor.ui.main_window`) shows
what the :class:`~advisor.ui.presenter.Presenter` gets from the Qt-free core.

The core modules a first verdict needs (the plan's come after it), and numpy (pyqtgraph's),
are imported here, before any PySide6 module: once PySide6 is imported, its feature hook reads
the source of every module imported after it, to see whether it uses PySide
(``shibokensupport/feature.py``: ``feature_imported`` → ``_mod_uses_pyside`` →
``inspect.getsource``; 0.1 s for the 400 modules of the core, numpy and pyqtgraph, measured with
cProfile). Imported first, they are not read.
"""

from __future__ import annotations

import numpy  # noqa: F401 - see the module doc
import psutil  # noqa: F401

import advisor.analysis
import advisor.estimator.runtimes.onnxruntime
import advisor.hardware.catalog
import advisor.hardware.probe
import advisor.hardware.sampler
import advisor.readers  # noqa: F401
