#!/usr/bin/env bash
# The full benchmark run, in one command (from anywhere):
#
#     bash benchmarks/run.sh                 # every server, every scenario, 5 s x 2
#     bash benchmarks/run.sh --duration 3    # any run.py option passes through
#
# 1. installs wrk, h2load (nghttp2-client) and curl from Debian if any is missing;
# 2. makes benchmarks/.venv-peers with the peer servers from PyPI and tricorn itself
#    (editable, from this checkout), so every server runs under the same Python;
# 3. runs benchmarks/run.py with that Python, which writes benchmarks/RESULTS.md.
#    (The WSGI run is separate: benchmarks/.venv-peers/bin/python -m benchmarks.wsgi, which
#    replaces its own section of RESULTS.md; run.py keeps that section when it rewrites.)
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v wrk >/dev/null || ! command -v h2load >/dev/null || ! command -v curl >/dev/null; then
    SUDO=""
    if [ "$(id -u)" != 0 ]; then SUDO="sudo"; fi
    $SUDO apt-get update
    $SUDO apt-get install -y wrk nghttp2-client curl
fi

VENV=benchmarks/.venv-peers
if [ ! -x "$VENV/bin/python" ]; then
    "${PYTHON:-python3}" -m venv "$VENV"
fi
"$VENV/bin/python" -m pip install --quiet --upgrade pip
"$VENV/bin/python" -m pip install --quiet \
    'hypercorn[trio,uvloop]' 'uvicorn[standard]' granian daphne gunicorn \
    trustme wsproto h2
"$VENV/bin/python" -m pip install --quiet -e '.[uvloop,speedups,httptools]'

exec "$VENV/bin/python" benchmarks/run.py "$@"
