#!/usr/bin/env bash
# Installs what vpsmon needs on a fresh Debian/Ubuntu machine or a dev box:
# a Python 3.11+ virtual environment in .venv with vpsmon and its dev tools,
# the UI's npm packages and its build (ui/build, served by the query side),
# and with --browser Debian's chromium for the browser tests.
# Re-running is cheap: it reinstalls only what changed.
set -euo pipefail
cd "$(dirname "$0")/.."

as_root() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }

apt_install() {
    if command -v apt-get >/dev/null; then
        as_root apt-get update -qq
        DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq "$@"
    else
        echo "bootstrap: please install $* with your package manager" >&2
        exit 1
    fi
}

want_browser=false
[ "${1:-}" = "--browser" ] && want_browser=true

PYTHON=${PYTHON:-python3}
if ! command -v "$PYTHON" >/dev/null; then
    apt_install python3 python3-venv
fi
if ! "$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 11))'; then
    echo "bootstrap: vpsmon needs Python 3.11 or newer ($PYTHON is $("$PYTHON" -V))" >&2
    exit 1
fi
if ! "$PYTHON" -c 'import venv, ensurepip' 2>/dev/null; then
    apt_install python3-venv
fi

if [ ! -x .venv/bin/python ]; then
    "$PYTHON" -m venv .venv
fi
stamp=.venv/.vpsmon-installed
wanted=$(sha256sum pyproject.toml | cut -d' ' -f1)
if [ "$(cat "$stamp" 2>/dev/null)" != "$wanted" ]; then
    .venv/bin/python -m pip install --quiet --upgrade pip
    .venv/bin/python -m pip install --quiet -e '.[dev]'
    echo "$wanted" > "$stamp"
fi

# The dashboard: SvelteKit needs Node.js 20.19 or newer.
if ! command -v npm >/dev/null; then
    apt_install nodejs npm
fi
if ! node -e 'const [a,b]=process.versions.node.split(".").map(Number); process.exit(a>20||(a==20&&b>=19)?0:1)'; then
    echo "bootstrap: the UI needs Node.js 20.19 or newer (found $(node --version))" >&2
    exit 1
fi
ui_stamp=ui/node_modules/.vpsmon-installed
ui_wanted=$(sha256sum ui/package-lock.json | cut -d' ' -f1)
if [ "$(cat "$ui_stamp" 2>/dev/null)" != "$ui_wanted" ]; then
    npm --prefix ui ci --no-audit --no-fund --loglevel=error
    echo "$ui_wanted" > "$ui_stamp"
fi
npm --prefix ui run build --silent >/dev/null

if $want_browser && ! command -v chromium >/dev/null; then
    apt_install chromium
fi
