"""A real browser: headless Chromium loads a page over HTTPS from ``python -m tricorn``
(HTTP/2 by ALPN, a trustme certificate), the page opens a WebSocket back to the same origin
(RFC 8441 over the page's HTTP/2 connection, since tricorn advertises
SETTINGS_ENABLE_CONNECT_PROTOCOL) and writes the echo into the DOM; the test reads the DOM
over the DevTools protocol. The app answers "whoami" with its WebSocket scope's http_version,
so the test knows the WebSocket itself went over HTTP/2. One case per framework with a
WebSocket on the default backend, plus Starlette and Litestar on trio, Quart and Channels on
uvloop, and Starlette with ALPN http/1.1 only (both over HTTP/1.1). Last, Chromium logs in to
the Django admin as a person does."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
import trustme

from tests.e2e import chromium
from tests.e2e.conftest import PASSWORD, SUPERUSER
from tests.e2e.served import FRAMEWORKS, Served

#: (framework, backend, HTTP version offered by ALPN)
CASES = [
    ("starlette", "default", "2"),
    ("starlette", "trio", "2"),
    ("starlette", "default", "1.1"),  # ALPN http/1.1 only: the WebSocket is an HTTP/1.1 one
    ("fastapi", "default", "2"),
    ("litestar", "default", "2"),
    ("litestar", "trio", "2"),
    ("quart", "default", "2"),
    ("quart", "uvloop", "2"),
    ("channels", "default", "2"),
    ("channels", "uvloop", "2"),
]
OUT = "(document.getElementById('out') || {}).textContent"
BIG = 2 * 1024 * 1024
#: A second WebSocket from the page: a 2 MiB text and a 2 MiB binary message, each echoed
#: (many HTTP/2 DATA frames under flow control, permessage-deflate as Chromium offers it).
BIG_MESSAGES = f"""
new Promise((resolve) => {{
  const ws = new WebSocket(`wss://${{location.host}}/ws`);
  ws.binaryType = "arraybuffer";
  const text = "x".repeat({BIG});
  const bytes = new Uint8Array({BIG}).map((_, i) => i % 251);
  const got = [];
  ws.onopen = () => {{ ws.send(text); ws.send(bytes); }};
  ws.onmessage = (event) => {{
    if (typeof event.data === "string") {{
      got.push(["text", event.data === "echo: " + text]);
    }} else {{
      const echoed = new Uint8Array(event.data);
      const same = echoed.length === bytes.length && echoed.every((b, i) => b === bytes[i]);
      got.push(["binary", same]);
    }}
    if (got.length === 2) {{ ws.close(1000); resolve(JSON.stringify(got)); }}
  }};
  ws.onclose = (event) => resolve(JSON.stringify({{closed: event.code, got}}));
}})
"""


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    base = tmp_path_factory.mktemp("tls")
    cert = trustme.CA().issue_cert("127.0.0.1", "localhost")
    chain, key = base / "chain.pem", base / "key.pem"
    cert.cert_chain_pems[0].write_to_path(str(chain))
    for extra in cert.cert_chain_pems[1:]:
        extra.write_to_path(str(chain), append=True)
    cert.private_key_pem.write_to_path(str(key))
    return chain, key


@pytest.fixture(scope="module", params=CASES, ids=[f"{f}-{b}-h{v}" for f, b, v in CASES])
def served(
    request: pytest.FixtureRequest,
    certificate: tuple[Path, Path],
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Served]:
    framework, backend, http = request.param
    base = tmp_path_factory.mktemp(f"browser-{framework}-{backend}")
    args = ["--alpn-protocols", "http/1.1"] if http == "1.1" else []
    if framework == "channels":
        project: Path = request.getfixturevalue("django_project")
        served = Served(
            "mysite.channels_asgi:application", backend, base, *args, tls=certificate, cwd=project
        )
    else:
        served = Served(FRAMEWORKS[framework][0], backend, base, *args, tls=certificate)
    served.http = http  # type: ignore[attr-defined]
    try:
        yield served
    finally:
        served.close()


def test_chromium_page_and_websocket(served: Served, tmp_path: Path) -> None:
    """Page and WebSocket over HTTP/2 (RFC 8441) where ALPN offers h2; over HTTP/1.1 where
    the server offers only http/1.1."""
    http: str = served.http  # type: ignore[attr-defined]
    server = served.server()
    with chromium.chromium(tmp_path / "profile") as page:
        page.call("Page.navigate", url=f"{server.url}/browser")
        out = page.wait_for(OUT)
        big = page.call(
            "Runtime.evaluate", expression=BIG_MESSAGES, awaitPromise=True, returnByValue=True
        )["result"]["value"]
    assert json.loads(big) == [["text", True], ["binary", True]]
    assert json.loads(out) == {
        "echo": "echo: hello from chromium",
        "websocketHttpVersion": http,
        "nextHopProtocol": "h2" if http == "2" else "http/1.1",
    }
    assert server.stop() == 0, server.stderr
    assert f'"GET /browser HTTP/{http}" 200' in server.stdout, server.stdout


@pytest.fixture(scope="module")
def django_https(
    django_project: Path,
    certificate: tuple[Path, Path],
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Served]:
    served = Served(
        "mysite.asgi:application",
        "default",
        tmp_path_factory.mktemp("browser-django"),
        tls=certificate,
        cwd=django_project,
    )
    try:
        yield served
    finally:
        served.close()


def test_chromium_logs_in_to_the_django_admin_over_h2(django_https: Served, tmp_path: Path) -> None:
    """A person's login: the admin login page over HTTPS/h2, the form filled in and submitted
    (Django checks the CSRF token, cookie and Origin of an HTTPS POST), the admin index."""
    server = django_https.server()
    with chromium.chromium(tmp_path / "profile") as page:
        page.call("Page.navigate", url=f"{server.url}/admin/login/?next=/admin/")
        page.wait_for(
            "document.readyState === 'complete' && !!document.getElementById('login-form')"
        )
        page.evaluate(
            f"""document.getElementById('id_username').value = {json.dumps(SUPERUSER)};
            document.getElementById('id_password').value = {json.dumps(PASSWORD)};
            document.querySelector('#login-form [type=submit]').click();"""
        )
        title = page.wait_for(
            "document.readyState === 'complete' && location.pathname === '/admin/'"
            " && document.title"
        )
        protocol = page.evaluate("performance.getEntries()[0].nextHopProtocol")
        static = page.evaluate(
            "performance.getEntriesByType('resource')"
            ".filter(e => e.name.includes('/static/admin/'))"
            ".map(e => [e.nextHopProtocol, e.responseStatus])"
        )
    assert title.startswith("Site administration")
    assert protocol == "h2"
    assert static and all(entry == ["h2", 200] for entry in static), static
    assert server.stop() == 0, server.stderr
    log = server.stdout
    assert '"POST /admin/login/?next=/admin/ HTTP/2" 302' in log, log
    assert '"GET /admin/ HTTP/2" 200' in log, log
