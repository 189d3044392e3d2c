"""The one entry point: ``advisor`` (or ``python -m advisor``).

With no arguments, or a single model path, it opens the desktop app; with a subcommand it runs
headless (see :mod:`advisor.cli`). On a machine with no display, opening the app prints the
analysis in the terminal instead, with a one-line hint.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence


def display_available() -> bool:
    """Whether a Qt window can be shown here (a platform was chosen, or a display exists)."""
    if os.environ.get("QT_QPA_PLATFORM"):
        return True
    if sys.platform in ("win32", "darwin"):
        return True
    return bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))


def main(argv: Sequence[str] | None = None) -> int:
    """Run the app or a subcommand; returns the process exit code."""
    from advisor.cli import SUBCOMMANDS, run

    args = list(sys.argv[1:] if argv is None else argv)
    opens_app = not args or (len(args) == 1 and not args[0].startswith("-") and args[0] not in SUBCOMMANDS)
    if not opens_app:
        return run(args)
    path = args[0] if args else None
    if not display_available():
        print(
            "advisor: no display found, so the window cannot open; printing the analysis instead "
            "(run it in a desktop session to see the app).",
            file=sys.stderr,
        )
        if path is None:
            return run(["probe"])
        return run(["plan", path])
    from advisor.ui.app import run_app

    return run_app(path)


if __name__ == "__main__":
    sys.exit(main())
