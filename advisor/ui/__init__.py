"""The desktop app (PySide6): the only part of the advisor that imports Qt.

Start it with :func:`advisor.ui.app.run_app`; the window (:mod:`advisor.ui.main_window`) shows
what the :class:`~advisor.ui.presenter.Presenter` gets from the Qt-free core.
"""
