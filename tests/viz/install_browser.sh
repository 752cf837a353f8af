#!/usr/bin/env bash
# Installs what the `hrm viz` browser tests (tests/viz/test_browser.py) need: Debian's Chromium and
# Playwright for Python in the project's virtualenv. Playwright drives /usr/bin/chromium; its own
# browser download (`playwright install`) is never used.
#
#   bash tests/viz/install_browser.sh          # from the repository root
#   VENV=/path/to/venv bash tests/viz/install_browser.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
VENV="${VENV:-.venv}"

if [ ! -x /usr/bin/chromium ]; then
    SUDO=""
    if [ "$(id -u)" -ne 0 ]; then
        SUDO="sudo"
    fi
    $SUDO apt-get update
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y --no-install-recommends chromium
fi

if ! "$VENV/bin/python" -c "import playwright" 2>/dev/null; then
    CONSTRAINT=()
    if [ -f constraints-cpu.txt ] && ! command -v nvidia-smi >/dev/null 2>&1; then
        CONSTRAINT=(-c constraints-cpu.txt)
    fi
    "$VENV/bin/python" -m pip install --quiet "${CONSTRAINT[@]}" "playwright>=1.40" "httpx>=0.25"
fi

/usr/bin/chromium --version
"$VENV/bin/python" -c "import playwright; from importlib.metadata import version; print('playwright', version('playwright'))"
