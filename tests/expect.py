"""Shared expectations for reader tests."""

from __future__ import annotations

from pathlib import Path

import pytest

from advisor.errors import ModelFormatError
from advisor.readers import read_model


def model_error(path: Path, exc: type[Exception] = ModelFormatError) -> str:
    """Read ``path``, expect ``exc``, and check its message is one line that names the file."""
    with pytest.raises(exc) as info:
        read_model(path)
    msg = str(info.value)
    assert "\n" not in msg and str(path) in msg
    return msg
