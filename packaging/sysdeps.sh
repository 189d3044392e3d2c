#!/usr/bin/env bash
# Install the Debian/Ubuntu libraries Qt needs, only those missing (DEVELOPERS.md lists them).
# As root on Debian/Ubuntu it installs them; elsewhere it prints what is missing and goes on.
set -euo pipefail

# Offscreen Qt (tests) and PDF rendering.
OFFSCREEN="libgl1 libegl1 libxkbcommon0 libglib2.0-0 libfontconfig1 libdbus-1-3"
# A real window on X11, and the Xvfb check that takes a screenshot of it.
X11="xvfb xauth libxcb-cursor0 libxcb-icccm4 libxcb-image0 libxcb-keysyms1 libxcb-render-util0 \
libxcb-shape0 libxcb-xkb1 libxkbcommon-x11-0"
# Fonts so that text renders (offscreen Qt and the PDF report).
FONTS="fonts-dejavu-core"

if ! command -v dpkg-query >/dev/null 2>&1; then
    if [ "$(uname -s)" = "Linux" ]; then
        echo "sysdeps: not Debian/Ubuntu; make sure Qt's libraries are installed: $OFFSCREEN $X11" >&2
    fi
    exit 0
fi

missing=""
for pkg in $OFFSCREEN $X11 $FONTS; do
    if ! dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed"; then
        missing="$missing $pkg"
    fi
done
[ -z "$missing" ] && exit 0

if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "sysdeps: installing$missing"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq >/dev/null
    # shellcheck disable=SC2086
    apt-get install -y -qq --no-install-recommends $missing >/dev/null
else
    echo "sysdeps: missing Debian packages:$missing" >&2
    echo "sysdeps: install them with: sudo apt-get install$missing" >&2
fi
