"""tricorn behind a real HAProxy (the Debian package) speaking the PROXY protocol to it.

One HAProxy process with our own configuration in a temporary folder, in the foreground
(``-db``), on free 127.0.0.1 ports, in front of two ``python -m tricorn`` processes: one on a
cleartext bind and one on a TLS bind, both with ``--proxy-protocol auto``. Each HAProxy
backend is one way of reaching tricorn: ``send-proxy`` (v1), ``send-proxy-v2``,
``send-proxy-v2-ssl``; HTTP/1.1 or HTTP/2 (``proto h2``) upstream; to the plain or the TLS
bind (``ssl verify none``). Clients reach HAProxy over cleartext or over TLS that HAProxy
terminates with a trustme certificate. Every backend's server is health-checked with
``check-send-proxy``.

The app answers with its scope (HTTP, and WebSocket through the HTTP/1.1 upstreams); the
tests check that it sees the client address and port HAProxy saw (the test's own socket),
the HAProxy frontend as the server, the same scheme through the HTTP/1.1 and the HTTP/2
upstream, and that the health checks log no error.
"""

from __future__ import annotations

import asyncio
import csv
import json
import shutil
import signal
import socket
import ssl
import subprocess
import time
from collections.abc import Iterator
from contextlib import ExitStack, closing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import trustme
import websockets.asyncio.client

from tests.e2e.server import Server, run_tricorn
from tests.helpers import free_port

SCOPE_APP = "tests.e2e.apps.scopes:app"


@dataclass(frozen=True)
class Route:
    """One HAProxy backend: how HAProxy reaches tricorn."""

    name: str
    #: The HAProxy server-line option that sends the header.
    send: str
    #: "h1" or "h2" towards tricorn.
    upstream: str
    #: tricorn's TLS bind (HAProxy re-encrypts) rather than its cleartext one.
    tricorn_tls: bool


ROUTES = [
    Route(f"{send.replace('-', '_')}_{upstream}_{'tls' if tls else 'plain'}", send, upstream, tls)
    for send in ("send-proxy", "send-proxy-v2", "send-proxy-v2-ssl")
    for upstream in ("h1", "h2")
    for tls in (False, True)
]


def _haproxy_binary() -> str:
    found = shutil.which("haproxy") or shutil.which("haproxy", path="/usr/sbin:/usr/local/sbin")
    assert found, (
        "haproxy is required for tests/e2e/test_haproxy.py: scripts/test.sh installs it "
        "(apt-get install -y haproxy)"
    )
    return found


def _server_line(route: Route, port: int) -> str:
    options = [f"server app 127.0.0.1:{port}", route.send]
    if route.tricorn_tls:
        options += ["ssl verify none", "alpn h2" if route.upstream == "h2" else "alpn http/1.1"]
    if route.upstream == "h2":
        options.append("proto h2")
    # Checks every second, up after one pass (quick to start), down after three failures in
    # a row (HAProxy's default). It was ``inter 300ms fall 1`` with no ``timeout check``: a
    # whole check (connect, TLS handshake, answer) then had 300 ms, and on the loaded CI
    # machine (load average 9 to 12 on 2 cores) one slow check took a server down:
    # ``Server send_proxy_v2_ssl_h1_tls/app is DOWN, reason: Layer7 timeout, check duration:
    # 301ms`` (or ``Layer6 timeout, check duration: 302ms`` through TLS), then the next
    # request got HAProxy's own ``503 ... SC-- ... <NOSRV>``. A failed check still fails
    # test_health_checks_pass_and_log_no_error (chkfail), without also failing whichever
    # test came next.
    options += ["check check-send-proxy inter 1s fall 3 rise 1"]
    return " ".join(options)


def _backend(route: Route, port: int) -> str:
    lines = [f"backend {route.name}", "    mode http"]
    if route.upstream == "h1":
        # An HTTP check over HTTP/1.1 (an h2 upstream gets a TCP check: connect, header, close).
        lines += [
            "    option httpchk",
            "    http-check send meth GET uri /health ver HTTP/1.1 hdr Host localhost",
        ]
    lines.append(f"    {_server_line(route, port)}")
    return "\n".join(lines)


def haproxy_config(
    folder: Path, plain_port: int, tls_port: int, front: int, front_tls: int, pem: Path
) -> str:
    routing = "\n".join(
        f"    use_backend {route.name} if {{ path_beg /{route.name}/ }}" for route in ROUTES
    )
    backends = "\n\n".join(
        _backend(route, tls_port if route.tricorn_tls else plain_port) for route in ROUTES
    )
    # Timeouts: ``timeout client`` also bounds the wait for a request (no ``timeout
    # http-request``), hence the 30 s of a 408 for a request that never came. ``timeout
    # check`` bounds a check once connected, its connect having min(timeout connect, inter)
    # = 1 s (without it, ``inter`` bounds the whole check). No ``timeout tunnel``: a
    # WebSocket here lives for one message, and in tunnel mode HAProxy keeps the client and
    # server timeouts (30 s) without one.
    return f"""\
global
    log stderr format raw local0 info
    stats socket {folder / "stats.sock"} mode 600 level admin

defaults
    mode http
    log global
    option httplog
    timeout connect 5s
    timeout client 30s
    timeout server 30s
    timeout check 5s

frontend cleartext
    bind 127.0.0.1:{front}
{routing}

frontend terminated
    bind 127.0.0.1:{front_tls} ssl crt {pem} alpn h2,http/1.1
{routing}

{backends}
"""


@dataclass
class HAProxy:
    process: subprocess.Popen[bytes]
    folder: Path
    front: int
    front_tls: int
    ca_file: Path

    @property
    def log(self) -> str:
        return (self.folder / "haproxy.log").read_text(errors="replace")

    def stats(self) -> list[dict[str, str]]:
        with closing(socket.socket(socket.AF_UNIX)) as sock:
            sock.settimeout(5)
            sock.connect(str(self.folder / "stats.sock"))
            sock.sendall(b"show stat\n")
            data = b""
            while chunk := sock.recv(65536):
                data += chunk
        text = data.decode().lstrip("# ")
        return list(csv.DictReader(text.splitlines()))


@dataclass
class Deployment:
    haproxy: HAProxy
    plain: Server
    tls: Server
    #: Client ports of the connections a test made bad on purpose (their log lines are due).
    bad_ports: set[int] = field(default_factory=set)


def _wait_for_ports(process: subprocess.Popen[bytes], ports: list[int], log: Path) -> None:
    deadline = time.monotonic() + 20
    waiting = list(ports)
    while waiting and time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"haproxy exited ({process.returncode}):\n{log.read_text()}")
        try:
            socket.create_connection(("127.0.0.1", waiting[0]), timeout=0.5).close()
            waiting.pop(0)
        except OSError:
            time.sleep(0.05)  # polling for the port, bounded by the deadline
    assert not waiting, f"haproxy did not listen on {waiting}:\n{log.read_text()}"


def _wait_for_checks(haproxy: HAProxy) -> list[dict[str, str]]:
    """The stats rows of every backend's server once each has passed a check (20 s)."""
    deadline = time.monotonic() + 20
    rows: list[dict[str, str]] = []
    while time.monotonic() < deadline:
        if haproxy.process.poll() is not None:
            raise AssertionError(f"haproxy exited ({haproxy.process.returncode}):\n{haproxy.log}")
        try:
            rows = [row for row in haproxy.stats() if row["svname"] == "app"]
        except OSError:
            # Once in 33 runs under load the stats socket refused us although the TCP fronts
            # already answered (HAProxy still starting, it seems): asked again until the deadline.
            time.sleep(0.1)  # polling HAProxy's stats, bounded by the deadline
            continue
        if len(rows) == len(ROUTES) and all(
            row["status"] == "UP" and row["check_status"] in ("L4OK", "L6OK", "L7OK")
            for row in rows
        ):
            return rows
        time.sleep(0.1)  # polling HAProxy's stats, bounded by the deadline
    raise AssertionError(f"health checks did not pass: {rows}\n{haproxy.log}")


@pytest.fixture(scope="module")
def deployment(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Deployment]:
    binary = _haproxy_binary()
    folder = tmp_path_factory.mktemp("haproxy")
    authority = trustme.CA()
    cert = authority.issue_cert("127.0.0.1", "localhost")
    authority.cert_pem.write_to_path(str(folder / "ca.pem"))
    cert.cert_chain_pems[0].write_to_path(str(folder / "cert.pem"))
    cert.private_key_pem.write_to_path(str(folder / "key.pem"))
    cert.private_key_and_cert_chain_pem.write_to_path(str(folder / "haproxy.pem"))
    flags = ["--proxy-protocol", "auto", "--header-read-timeout", "5"]
    with ExitStack() as stack:
        plain = stack.enter_context(
            run_tricorn(SCOPE_APP, *flags, log_dir=folder / "tricorn-plain", backend="trio")
        )
        tls = stack.enter_context(
            run_tricorn(
                SCOPE_APP,
                *flags,
                log_dir=folder / "tricorn-tls",
                backend="asyncio",
                tls=(folder / "cert.pem", folder / "key.pem"),
            )
        )
        front, front_tls = free_port(), free_port()
        config = folder / "haproxy.cfg"
        config.write_text(
            haproxy_config(folder, plain.port, tls.port, front, front_tls, folder / "haproxy.pem")
        )
        checked = subprocess.run([binary, "-c", "-f", str(config)], capture_output=True, text=True)
        assert checked.returncode == 0, checked.stdout + checked.stderr
        log_path = folder / "haproxy.log"
        with open(log_path, "wb") as log:
            process = subprocess.Popen(
                [binary, "-db", "-f", str(config)], stdout=log, stderr=subprocess.STDOUT
            )
        try:
            haproxy = HAProxy(process, folder, front, front_tls, folder / "ca.pem")
            _wait_for_ports(process, [front, front_tls], log_path)
            _wait_for_checks(haproxy)
            yield Deployment(haproxy, plain, tls)
        finally:
            process.send_signal(signal.SIGUSR1)  # soft stop: finish what is in flight
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


# --- a client that knows its own address ---------------------------------------------


def _request(port: int, path: str, *, tls_ca: Path | None = None) -> tuple[dict[str, Any], int]:
    """GET ``path`` from HAProxy over HTTP/1.1 (through TLS when ``tls_ca`` is given);
    returns the app's scope and the client socket's own port, which HAProxy sees."""
    raw = socket.create_connection(("127.0.0.1", port), timeout=10)
    client_port = int(raw.getsockname()[1])
    sock: socket.socket = raw
    if tls_ca is not None:
        context = ssl.create_default_context(cafile=str(tls_ca))
        context.set_alpn_protocols(["http/1.1"])
        sock = context.wrap_socket(raw, server_hostname="127.0.0.1")
    with sock:
        sock.sendall(
            f"GET {path} HTTP/1.1\r\nHost: app.example\r\nConnection: close\r\n\r\n".encode()
        )
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200"), data[:500]
    return json.loads(body), client_port


def _front_port(haproxy: HAProxy, terminated: bool) -> int:
    return haproxy.front_tls if terminated else haproxy.front


def _expected_scheme(route: Route, terminated: bool) -> str:
    if route.send == "send-proxy-v2-ssl":
        return "https" if terminated else "http"  # the SSL TLV says how the client came
    return "https" if route.tricorn_tls else "http"  # no word on it: the hop's own


@pytest.mark.parametrize("terminated", [False, True], ids=["cleartext", "haproxy-tls"])
@pytest.mark.parametrize("route", ROUTES, ids=[route.name for route in ROUTES])
def test_app_sees_the_client_haproxy_saw(
    deployment: Deployment, route: Route, terminated: bool
) -> None:
    haproxy = deployment.haproxy
    port = _front_port(haproxy, terminated)
    scope, client_port = _request(
        port, f"/{route.name}/x", tls_ca=haproxy.ca_file if terminated else None
    )
    assert scope["client"] == ["127.0.0.1", client_port]
    assert scope["server"] == ["127.0.0.1", port]
    assert scope["http_version"] == ("2" if route.upstream == "h2" else "1.1")
    assert scope["scheme"] == _expected_scheme(route, terminated)
    extension = scope["extensions"]["tricorn.proxy_protocol"]
    assert extension["version"] == (1 if route.send == "send-proxy" else 2)
    assert extension["command"] == "proxy"
    assert ("tls" in scope["extensions"]) == route.tricorn_tls
    if route.send == "send-proxy-v2-ssl":
        assert extension["ssl"]["client_ssl"] is terminated
        if terminated:
            assert extension["ssl"]["version"] in ("TLSv1.2", "TLSv1.3")


@pytest.mark.parametrize("terminated", [False, True], ids=["cleartext", "haproxy-tls"])
@pytest.mark.parametrize("send", ["send-proxy", "send-proxy-v2", "send-proxy-v2-ssl"])
@pytest.mark.parametrize("tricorn_tls", [False, True], ids=["plain", "tls"])
def test_the_h1_and_h2_upstreams_give_the_same_scope(
    deployment: Deployment, send: str, tricorn_tls: bool, terminated: bool
) -> None:
    haproxy = deployment.haproxy
    seen = {}
    for upstream in ("h1", "h2"):
        route = Route(
            f"{send.replace('-', '_')}_{upstream}_{'tls' if tricorn_tls else 'plain'}",
            send,
            upstream,
            tricorn_tls,
        )
        scope, _ = _request(
            _front_port(haproxy, terminated),
            f"/{route.name}/same",
            tls_ca=haproxy.ca_file if terminated else None,
        )
        seen[upstream] = (scope["scheme"], scope["client"][0], scope["server"], scope["path"])
    assert seen["h1"][0] == seen["h2"][0]  # the scheme: the bug the issue names
    assert seen["h1"][1:3] == seen["h2"][1:3]


def _websocket_scope(port: int, path: str, *, tls_ca: Path | None = None) -> tuple[Any, int]:
    """Open a WebSocket through HAProxy; the scope the app sent back and our own port.

    With websockets' *asyncio* client, not its sync one. The sync client reads in a thread
    of its own (``recv_events``) from the moment the TLS handshake ends, while the calling
    thread writes the upgrade request: two threads in one OpenSSL ``SSL`` object at once,
    which OpenSSL does not support. Over TLS 1.3 the read meets the server's two
    NewSessionTicket records, sent right after the handshake, and now and then (about 1 in
    280 runs on the loaded 2-core CI machine) the request is lost: ``sendall`` returns, yet
    nothing leaves the socket after the client's Finished (tcpdump on lo), and HAProxy logs
    ``terminated~ terminated/<NOSRV> -1/-1/-1/-1/30001 408 0 - - cR-- ... "<BADREQ>"``: no
    request in ``timeout client`` (30 s), so no server was ever picked; or the thread's read
    fails and the client resets the connection (``CR-- ... 400 ... "<BADREQ>"``). That was
    the intermittent "no WebSocket handshake answer within 10 s" through HAProxy's TLS front
    (docs/decisions.md). asyncio's TLS is one ``SSLObject`` over memory buffers, driven by
    the one event loop thread: no race.
    """
    raw = socket.create_connection(("127.0.0.1", port), timeout=10)
    client_port = int(raw.getsockname()[1])
    context = None if tls_ca is None else ssl.create_default_context(cafile=str(tls_ca))
    scheme = "ws" if tls_ca is None else "wss"

    async def exchange() -> Any:
        async with asyncio.timeout(20):  # a hang guard: the handshake and one message
            async with websockets.asyncio.client.connect(
                f"{scheme}://127.0.0.1:{port}{path}", sock=raw, ssl=context, proxy=None
            ) as client:
                return json.loads(await client.recv())

    try:
        return asyncio.run(exchange()), client_port
    finally:
        raw.close()  # the client closed it already, unless connecting failed


@pytest.mark.parametrize("terminated", [False, True], ids=["cleartext", "haproxy-tls"])
@pytest.mark.parametrize(
    "route",
    [route for route in ROUTES if route.upstream == "h1"],
    ids=[route.name for route in ROUTES if route.upstream == "h1"],
)
def test_websocket_sees_the_client_haproxy_saw(
    deployment: Deployment, route: Route, terminated: bool
) -> None:
    haproxy = deployment.haproxy
    port = _front_port(haproxy, terminated)
    scope, client_port = _websocket_scope(
        port, f"/{route.name}/ws", tls_ca=haproxy.ca_file if terminated else None
    )
    assert scope["type"] == "websocket"
    assert scope["client"] == ["127.0.0.1", client_port]
    assert scope["server"] == ["127.0.0.1", port]
    expected = _expected_scheme(route, terminated)
    assert scope["scheme"] == ("wss" if expected == "https" else "ws")


def test_health_checks_pass_and_log_no_error(deployment: Deployment) -> None:
    haproxy = deployment.haproxy
    rows = _wait_for_checks(haproxy)
    assert {row["pxname"] for row in rows} == {route.name for route in ROUTES}
    # Checks went on during the tests: several per server (every second).
    assert all(int(row["chkfail"] or 0) == 0 for row in rows), rows
    h1_checks = [row for row in rows if row["pxname"].endswith(("h1_plain", "h1_tls"))]
    assert all(row["check_status"] == "L7OK" for row in h1_checks), h1_checks
    for server in (deployment.plain, deployment.tls):
        lines = server.stderr.splitlines()
        problems = [
            line
            for line in lines
            if not any(f"127.0.0.1:{port}" in line for port in deployment.bad_ports)
            and (
                line.startswith(("WARNING", "ERROR", "CRITICAL"))
                or "PROXY" in line
                or "bad request" in line
            )
        ]
        assert problems == [], "\n".join(lines)
        # The HTTP checks were served (they are in the access log) from HAProxy's address.
        assert "/health" in server.stdout


def test_a_connection_without_the_header_is_refused_with_one_line(
    deployment: Deployment,
) -> None:
    """What a misconfigured proxy (send-proxy missing) gets: closed, one warning, and
    HAProxy's own traffic goes on."""
    server = deployment.plain
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
        port = sock.getsockname()[1]
        deployment.bad_ports.add(port)
        sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        try:
            answer = sock.recv(65536)
        except ConnectionResetError:  # closed with the request unread: a reset
            answer = b""
        assert answer == b""  # nothing answered
    deadline = time.monotonic() + 10
    while f"127.0.0.1:{port}" not in server.stderr and time.monotonic() < deadline:
        time.sleep(0.05)  # polling the log file, bounded by the deadline
    lines = [line for line in server.stderr.splitlines() if f"127.0.0.1:{port}" in line]
    assert len(lines) == 1 and lines[0].startswith("WARNING:"), lines
    assert "not a PROXY protocol header" in lines[0]
    scope, client_port = _request(deployment.haproxy.front, "/send_proxy_h1_plain/after")
    assert scope["client"] == ["127.0.0.1", client_port]
