#!/usr/bin/env bash
# The full Autobahn WebSocket conformance run: all 517 cases of wstest's fuzzingclient
# (nothing excluded, the 12.* and 13.* compression cases with their 16-128 KiB payloads
# included) against tricorn with its default settings, on the trio and the asyncio backend.
# It takes about 15 minutes per backend. The summary (per-behavior counts per backend, the
# date and the revision) is written to docs/autobahn.md; the HTML reports are under
# .autobahn/reports/full/<backend>/. CI runs a subset (tests/integration/test_autobahn.py).
#
#   bash scripts/conformance.sh            # both backends
#   bash scripts/conformance.sh trio       # one
#
# Exit status 0 only if every case on every backend is OK or INFORMATIONAL.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ ! -x .venv/bin/python ]; then
    python3 -m venv .venv
    .venv/bin/python -m pip install -q --disable-pip-version-check -e '.[test]'
fi
[ -x .autobahn/bin/wstest ] || bash scripts/install-autobahn.sh .autobahn >/dev/null

# The revision under test, taken before the run: commits made meanwhile are not it.
revision=$(git describe --always --dirty 2>/dev/null || echo unknown)
backends=("$@")
[ ${#backends[@]} -gt 0 ] || backends=(trio asyncio)
reports=.autobahn/reports/full
mkdir -p "$reports"
status=0
summaries=()
for backend in "${backends[@]}"; do
    summary="$reports/summary-$backend.json"
    rm -f "$summary"
    .venv/bin/python tests/autobahn/run_autobahn.py --backend "$backend" --full \
        --timeout 3600 --reports "$reports" --summary-json "$summary" || status=1
    [ -f "$summary" ] && summaries+=("$summary")
done
if [ ${#summaries[@]} -gt 0 ]; then
    .venv/bin/python tests/autobahn/run_autobahn.py --write-doc docs/autobahn.md \
        --revision "$revision" --summaries "${summaries[@]}"
    echo "conformance: summary written to docs/autobahn.md"
fi
exit $status
