#!/usr/bin/env bash
# The whole test suite, as README.md's quick start gives it: set up .venv with the test
# dependencies, install the Debian tools the tests drive (when missing and we are root),
# then run pytest (which also runs ruff and mypy --strict).
set -euo pipefail
cd "$(dirname "$0")/.."

python3 -m venv .venv
.venv/bin/python -m pip install -q --disable-pip-version-check --upgrade pip
.venv/bin/python -m pip install -q --disable-pip-version-check -e '.[test,fuzz]'

need=()
command -v curl >/dev/null || need+=(curl)
command -v h2load >/dev/null || need+=(nghttp2-client)
command -v wrk >/dev/null || need+=(wrk)  # the benchmark harness's smoke run
command -v chromium >/dev/null || need+=(chromium)  # tests/e2e/test_browser.py
# tests/e2e/test_nginx.py runs its own nginx (own config and prefix); the package's service
# is not started where policy-rc.d forbids it (containers), and the tests never use it.
[ -x /usr/sbin/nginx ] || command -v nginx >/dev/null || need+=(nginx)
command -v systemd-socket-activate >/dev/null || need+=(systemd)  # tests/integration/test_systemd.py
command -v haproxy >/dev/null || [ -x /usr/sbin/haproxy ] || need+=(haproxy)  # tests/e2e/test_haproxy.py
if [ ${#need[@]} -gt 0 ]; then
    if [ "$(id -u)" = 0 ]; then
        apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}"
    else
        echo "scripts/test.sh: please install: ${need[*]}" >&2
        exit 1
    fi
fi

# The Autobahn WebSocket testsuite (wstest, Python 2.7) under .autobahn, from this clone's own
# installer (the Autobahn tests fail without it; they are never skipped).
bash scripts/install-autobahn.sh .autobahn >/dev/null

exec .venv/bin/python -m pytest "$@"
