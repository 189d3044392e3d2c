"""Shared test set-up. Qt must run offscreen before any QApplication exists."""

from __future__ import annotations

import os

# NOTE: with no display and no platform set, Qt aborts (exit 134); setdefault keeps a caller's choice
# (the Xvfb check sets "xcb").
os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
