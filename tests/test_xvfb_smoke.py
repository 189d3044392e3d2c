"""The app on a real X server: ``python -m advisor MODEL`` under Xvfb draws a non-blank window.

Skipped (with the reason) when ``Xvfb`` is not installed (Debian package ``xvfb``; ``make`` installs
it). The app saves its own window as the X server shows it (``ADVISOR_SCREENSHOT``) once the first
analysis is on screen, then quits; the test checks the picture is not blank.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
from PySide6.QtGui import QImage

from tests.builders.onnx_models import mlp

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT / "resources" / "samples" / "sample-convnet.onnx"
APP_TIMEOUT_S = 120  # NOTE: a cold start (imports + onnx shape inference) takes ~5 s on the 2-core CI box
# NOTE: a blank or all-background window is one color; a drawn window has text, a banner, a chart.
MAX_SHARE_OF_ONE_COLOR = 0.90
MIN_DISTINCT_COLORS = 16


@pytest.fixture
def x_display(tmp_path: Path) -> Iterator[str]:
    if shutil.which("Xvfb") is None:
        pytest.skip("Xvfb is not installed (apt-get install xvfb xauth libxcb-cursor0 ...; see packaging/sysdeps.sh)")
    read_fd, write_fd = os.pipe()
    proc = subprocess.Popen(
        ["Xvfb", "-displayfd", str(write_fd), "-screen", "0", "1400x900x24", "-nolisten", "tcp"],
        pass_fds=(write_fd,), stdout=subprocess.DEVNULL, stderr=(tmp_path / "xvfb.log").open("wb"),
    )
    os.close(write_fd)
    try:
        with os.fdopen(read_fd) as pipe:
            number = pipe.readline().strip()  # Xvfb writes the display it picked once it is ready
        if not number:
            pytest.fail(f"Xvfb did not start: {(tmp_path / 'xvfb.log').read_text(errors='replace')}")
        yield f":{number}"
    finally:
        proc.terminate()
        proc.wait(10)


def test_app_draws_its_window_under_xvfb(x_display: str, tmp_path: Path) -> None:
    model = SAMPLE if SAMPLE.exists() else mlp(tmp_path / "sample.onnx")
    shot = tmp_path / "window.png"
    env = {
        **os.environ,
        "QT_QPA_PLATFORM": "xcb",
        "DISPLAY": x_display,
        "ADVISOR_SCREENSHOT": str(shot),
        "XDG_CONFIG_HOME": str(tmp_path / "config"),  # a fresh QSettings, not the person's
        "XDG_RUNTIME_DIR": str(tmp_path),
    }
    done = subprocess.run([sys.executable, "-m", "advisor", str(model)], env=env, cwd=ROOT,
                          capture_output=True, text=True, timeout=APP_TIMEOUT_S, check=False)
    assert done.returncode == 0, f"app exited {done.returncode}: {done.stderr[-2000:]}"
    assert shot.exists(), f"no screenshot written; stderr: {done.stderr[-2000:]}"
    image = QImage(str(shot))
    assert not image.isNull()
    assert image.width() >= 1000 and image.height() >= 600, f"window is {image.width()}×{image.height()}"
    colors = Counter(
        image.pixel(x, y) for x in range(0, image.width(), 4) for y in range(0, image.height(), 4)
    )
    top_share = colors.most_common(1)[0][1] / sum(colors.values())
    assert top_share < MAX_SHARE_OF_ONE_COLOR, f"window looks blank: one color covers {top_share:.0%}"
    assert len(colors) >= MIN_DISTINCT_COLORS, f"window looks blank: only {len(colors)} colors"
