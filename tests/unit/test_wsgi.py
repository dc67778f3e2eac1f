"""The WSGI adapter without sockets: the environ (PEP 3333) for a table of scopes, response
heads, detection, and the adapter driven with hand-made ``receive``/``send``.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from typing import Any
from wsgiref.types import StartResponse, WSGIEnvironment
from wsgiref.validate import check_environ, validator  # type: ignore[attr-defined]

import anyio
import pytest

from tests.unit.apps import kinds
from tricorn.errors import AppLoadError, ClientDisconnected
from tricorn.server.app import ASGI2Adapter, as_asgi3, load_app
from tricorn.server.asgi_types import Message, Scope
from tricorn.server.wsgi import (
    DEFAULT_MAX_THREADS,
    InvalidResponse,
    WSGIAdapter,
    WSGIInput,
    build_environ,
    response_head,
)


def scope(**fields: Any) -> Scope:
    base: Scope = {
        "type": "http",
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": "/",
        "raw_path": b"/",
        "query_string": b"",
        "root_path": "",
        "headers": [(b"host", b"example.com")],
        "client": ("10.0.0.7", 50123),
        "server": ("127.0.0.1", 8000),
    }
    base.update(fields)
    return base


# --- the environ, key by key, against PEP 3333 -----------------------------------------

ENVIRON_CASES: list[tuple[str, Scope, dict[str, Any]]] = [
    (
        "plain GET",
        scope(),
        {
            "REQUEST_METHOD": "GET",
            "SCRIPT_NAME": "",
            "PATH_INFO": "/",
            "QUERY_STRING": "",
            "SERVER_NAME": "127.0.0.1",
            "SERVER_PORT": "8000",
            "REMOTE_ADDR": "10.0.0.7",
            "REMOTE_PORT": "50123",
            "SERVER_PROTOCOL": "HTTP/1.1",
            "HTTP_HOST": "example.com",
            "wsgi.version": (1, 0),
            "wsgi.url_scheme": "http",
            "wsgi.multithread": True,
            "wsgi.multiprocess": False,
            "wsgi.run_once": False,
            "wsgi.input_terminated": True,
        },
    ),
    (
        "root_path split off, path percent-decoded as latin-1",
        scope(
            path="/app/caf\u00e9/x y",
            raw_path=b"/app/caf%C3%A9/x%20y",
            root_path="/app",
            query_string=b"q=caf%C3%A9&r",
        ),
        {
            "SCRIPT_NAME": "/app",
            "PATH_INFO": "/caf\u00c3\u00a9/x y",  # the UTF-8 bytes, one latin-1 char each
            "QUERY_STRING": "q=caf%C3%A9&r",
        },
    ),
    (
        "root_path equal to the whole path",
        scope(path="/app", raw_path=b"/app", root_path="/app"),
        {"SCRIPT_NAME": "/app", "PATH_INFO": ""},
    ),
    (
        "a path that only starts like root_path keeps it",
        scope(path="/application", raw_path=b"/application", root_path="/app"),
        {"SCRIPT_NAME": "/app", "PATH_INFO": "/application"},
    ),
    (
        "an encoded slash is decoded (CGI)",
        scope(path="/a/b", raw_path=b"/a%2Fb"),
        {"PATH_INFO": "/a/b"},
    ),
    (
        "no raw_path: the path as UTF-8 bytes",
        scope(path="/\u00e9", raw_path=None),
        {"PATH_INFO": "/\u00c3\u00a9"},
    ),
    (
        "content headers without HTTP_, repeated headers and cookies joined",
        scope(
            method="POST",
            headers=[
                (b"host", b"example.com"),
                (b"content-type", b"application/json"),
                (b"content-length", b"12"),
                (b"accept", b"text/html"),
                (b"accept", b"application/json"),
                (b"cookie", b"a=1"),
                (b"cookie", b"b=2, c"),
                (b"x-custom-header", b"caf\xe9"),
            ],
        ),
        {
            "CONTENT_TYPE": "application/json",
            "CONTENT_LENGTH": "12",
            "HTTP_ACCEPT": "text/html, application/json",
            "HTTP_COOKIE": "a=1; b=2, c",
            "HTTP_X_CUSTOM_HEADER": "caf\u00e9",
        },
    ),
    (
        "HTTP/2 over TLS",
        scope(http_version="2", scheme="https", server=("::1", 8443), client=("::1", 4000)),
        {
            "SERVER_PROTOCOL": "HTTP/2",
            "wsgi.url_scheme": "https",
            "SERVER_NAME": "::1",
            "SERVER_PORT": "8443",
            "REMOTE_ADDR": "::1",
        },
    ),
    (
        "a unix socket: server and client unknown, the Host header names the server",
        scope(server=None, client=None, headers=[(b"host", b"api.example:9000")]),
        {"SERVER_NAME": "api.example", "SERVER_PORT": "9000"},
    ),
    (
        "a unix socket without a port in Host: the scheme's",
        scope(server=None, client=None, scheme="https", headers=[(b"host", b"[::1]")]),
        {"SERVER_NAME": "[::1]", "SERVER_PORT": "443"},
    ),
]


@pytest.mark.parametrize(
    ("scope_", "expected"),
    [(case[1], case[2]) for case in ENVIRON_CASES],
    ids=[case[0] for case in ENVIRON_CASES],
)
def test_environ_keys_against_pep_3333(scope_: Scope, expected: dict[str, Any]) -> None:
    environ = build_environ(scope_, WSGIInput(_no_receive))
    check_environ(environ)  # wsgiref's own PEP 3333 checks
    for key, value in expected.items():
        assert environ[key] == value, key
    for value in environ.values():
        if isinstance(value, str):
            value.encode("latin-1")  # PEP 3333: native strings, latin-1 only
    assert "HTTP_CONTENT_TYPE" not in environ
    assert "HTTP_CONTENT_LENGTH" not in environ
    assert environ["wsgi.errors"] is sys.stderr
    assert callable(environ["wsgi.file_wrapper"])
    if scope_["client"] is None:
        assert "REMOTE_ADDR" not in environ


def test_header_names_with_underscores_are_dropped() -> None:
    headers = [(b"x-forwarded-for", b"1.1.1.1"), (b"x_forwarded_for", b"6.6.6.6")]
    environ = build_environ(scope(headers=headers), WSGIInput(_no_receive))
    assert environ["HTTP_X_FORWARDED_FOR"] == "1.1.1.1"


async def _no_receive() -> Message:
    raise AssertionError("not called")


# --- response heads ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "headers", "expected"),
    [
        ("200 OK", [], (200, [], None)),
        (
            "404 Not Found",
            [("Content-Type", "text/html")],
            (404, [(b"content-type", b"text/html")], None),
        ),
        ("299 ", [], (299, [], None)),
        ("200 OK", [("Content-Length", " 12 ")], (200, [(b"content-length", b"12")], 12)),
        ("200 OK", [("Set-Cookie", " a=1")], (200, [(b"set-cookie", b"a=1")], None)),
        ("200 OK", [("X-Latin", "caf\u00e9")], (200, [(b"x-latin", b"caf\xe9")], None)),
        (
            "200 OK",
            [("Transfer-Encoding", "chunked"), ("Keep-Alive", "5"), ("Connection", "close")],
            (200, [(b"connection", b"close")], None),
        ),
        (
            "200 OK",
            [("Content-Length", "3"), ("Content-Length", "3")],
            (200, [(b"content-length", b"3"), (b"content-length", b"3")], 3),
        ),
    ],
)
def test_valid_response_heads(status: str, headers: Any, expected: Any) -> None:
    assert response_head(status, headers) == expected


@pytest.mark.parametrize(
    ("status", "headers"),
    [
        ("200", []),
        ("200OK", []),
        ("20 OK", []),
        ("199 Early", []),
        ("200 OK\r\nX: y", []),
        (b"200 OK", []),
        ("200 OK", [("X", "a\nb")]),
        ("200 OK", [("X", "a\x00b")]),
        ("200 OK", [("X Y", "1")]),
        ("200 OK", [("", "1")]),
        ("200 OK", [(b"X", "1")]),
        ("200 OK", [("X", 1)]),
        ("200 OK", [("X", "\u20ac")]),
        ("200 OK", [("Content-Length", "-1")]),
        ("200 OK", [("Content-Length", "1"), ("Content-Length", "2")]),
        ("200 OK", [["X", "1"]]),
        ("200 OK", "X: 1"),
    ],
)
def test_invalid_response_heads(status: Any, headers: Any) -> None:
    with pytest.raises(InvalidResponse):
        response_head(status, headers)


# --- detection ---------------------------------------------------------------------------


def _wsgi_function(environ: WSGIEnvironment, start_response: StartResponse) -> list[bytes]:
    start_response("200 OK", [])
    return [b""]


@pytest.mark.parametrize(
    "app",
    [
        _wsgi_function,
        kinds.wsgi_app,
        kinds.flask_like,
        validator(_wsgi_function),  # a generic (*args) sync wrapper
        kinds.WSGIAppClass,
    ],
    ids=["function", "module function", "instance", "validator", "PEP 3333 AppClass"],
)
def test_wsgi_callables_are_detected(app: Any) -> None:
    adapter = as_asgi3(app)
    assert isinstance(adapter, WSGIAdapter)
    assert adapter.app is app
    assert adapter.max_threads == DEFAULT_MAX_THREADS


def test_load_app_detects_and_passes_the_thread_limit() -> None:
    adapter = load_app("tests.unit.apps.kinds:flask_like", app_dir=None, wsgi_max_threads=3)
    assert isinstance(adapter, WSGIAdapter)
    assert adapter.max_threads == 3


def test_a_real_flask_app_and_django_handler_are_wsgi() -> None:
    from flask import Flask

    assert isinstance(as_asgi3(Flask("detect")), WSGIAdapter)
    from tests.integration import wsgi_django

    assert isinstance(as_asgi3(wsgi_django.application), WSGIAdapter)


def test_interface_forces_the_kind() -> None:
    async def asgi3(scope: Scope, receive: Any, send: Any) -> None:
        pass

    assert isinstance(as_asgi3(asgi3, interface="wsgi"), WSGIAdapter)
    forced: Any = as_asgi3(kinds.flask_like, interface="asgi3")
    assert forced is kinds.flask_like
    assert isinstance(as_asgi3(kinds.flask_like, interface="asgi2"), ASGI2Adapter)
    assert as_asgi3(asgi3, interface="auto") is asgi3


def test_a_wrapped_app_is_not_wrapped_twice() -> None:
    adapter = WSGIAdapter(_wsgi_function, 5)
    assert as_asgi3(adapter, interface="wsgi") is adapter


def test_neither_kind_is_one_line_that_names_wsgi() -> None:
    with pytest.raises(AppLoadError) as excinfo:
        as_asgi3(kinds.async_two_arguments, "m:app")
    message = str(excinfo.value)
    assert "\n" not in message
    assert "it is async but takes two arguments" in message
    assert "a WSGI callable (environ, start_response)" in message


# --- the adapter with hand-made receive and send -------------------------------------------


class Peer:
    """Plays the server: hands out body messages and records what the app sends."""

    def __init__(self, body: list[bytes], fail_send_after: int | None = None) -> None:
        self.messages: list[Message] = [
            {"type": "http.request", "body": chunk, "more_body": index < len(body) - 1}
            for index, chunk in enumerate(body)
        ]
        self.received = 0
        self.sent: list[Message] = []
        self.fail_send_after = fail_send_after

    async def receive(self) -> Message:
        if self.received < len(self.messages):
            self.received += 1
            return self.messages[self.received - 1]
        return {"type": "http.disconnect"}

    async def send(self, message: Message) -> None:
        if self.fail_send_after is not None and len(self.sent) >= self.fail_send_after:
            raise ClientDisconnected("gone")
        self.sent.append(message)

    @property
    def body(self) -> bytes:
        return b"".join(m.get("body", b"") for m in self.sent if m["type"] == "http.response.body")


def reads(amount: int, seen: list[int]) -> Callable[[WSGIEnvironment, StartResponse], list[bytes]]:
    def app(environ: WSGIEnvironment, start_response: StartResponse) -> list[bytes]:
        data = environ["wsgi.input"].read(amount)
        seen.append(len(data))
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [data]

    return app


@pytest.mark.anyio
async def test_the_body_is_fetched_on_demand_not_buffered() -> None:
    peer = Peer([b"a" * 10, b"b" * 10, b"c" * 10, b"d" * 10])
    seen: list[int] = []
    await WSGIAdapter(reads(15, seen))(scope(method="POST"), peer.receive, peer.send)
    assert seen == [15]
    assert peer.received == 2  # the first two messages only: the rest was never asked for
    assert peer.body == b"a" * 10 + b"b" * 5
    assert peer.sent[0]["status"] == 200
    assert peer.sent[-1]["more_body"] is False


@pytest.mark.anyio
async def test_100_continue_is_left_to_the_app_reading_the_body() -> None:
    peer = Peer([b"x"])
    seen: list[int] = []

    def app(environ: WSGIEnvironment, start_response: StartResponse) -> list[bytes]:
        seen.append(peer.received)  # nothing received before the app runs
        start_response("417 Expectation Failed", [])
        return [b""]

    headers = [(b"host", b"x"), (b"expect", b"100-continue"), (b"content-length", b"1")]
    await WSGIAdapter(app)(scope(method="PUT", headers=headers), peer.receive, peer.send)
    assert seen == [0]
    assert peer.received == 0
    assert peer.sent[0]["status"] == 417


@pytest.mark.anyio
async def test_a_disconnect_while_reading_raises_client_disconnected() -> None:
    peer = Peer([b"part"])
    peer.messages[0]["more_body"] = True  # then the peer disconnects
    errors: list[BaseException] = []

    def app(environ: WSGIEnvironment, start_response: StartResponse) -> list[bytes]:
        try:
            environ["wsgi.input"].read()
        except OSError as error:
            errors.append(error)
            raise
        return []

    with pytest.raises(ClientDisconnected):
        await WSGIAdapter(app)(scope(method="POST"), peer.receive, peer.send)
    assert len(errors) == 1
    assert isinstance(errors[0], ClientDisconnected)


@pytest.mark.anyio
async def test_a_send_that_fails_stops_the_iteration_and_closes() -> None:
    peer = Peer([b""], fail_send_after=2)  # the head and the first chunk go out, then fail
    produced: list[int] = []
    closed: list[bool] = []

    class Body:
        def __iter__(self) -> Iterator[bytes]:
            for index in range(100):
                produced.append(index)
                yield b"chunk"

        def close(self) -> None:
            closed.append(True)

    def app(environ: WSGIEnvironment, start_response: StartResponse) -> Body:
        start_response("200 OK", [])
        return Body()

    with pytest.raises(ClientDisconnected):
        await WSGIAdapter(app)(scope(), peer.receive, peer.send)
    assert produced == [0, 1]
    assert closed == [True]


@pytest.mark.anyio
async def test_lifespan_is_answered_and_hosts_the_worker_pool_meanwhile() -> None:
    adapter = WSGIAdapter(_wsgi_function, 3)
    shutdown = anyio.Event()
    started = anyio.Event()
    sent: list[Message] = []
    pools: list[Any] = []

    async def receive() -> Message:
        if not sent:
            return {"type": "lifespan.startup"}
        await shutdown.wait()
        return {"type": "lifespan.shutdown"}

    async def send(message: Message) -> None:
        sent.append(message)
        started.set()

    async with anyio.create_task_group() as group:
        group.start_soon(adapter, {"type": "lifespan"}, receive, send)
        with anyio.fail_after(5):
            await started.wait()
        pool = adapter.pool()
        pools.append(pool)
        peer = Peer([b""])
        for _ in range(4):
            await adapter(scope(), peer.receive, peer.send)
            peer.received = 0
        shutdown.set()
    assert [m["type"] for m in sent] == ["lifespan.startup.complete", "lifespan.shutdown.complete"]
    assert pools[0] is not None
    assert pools[0].closed
    assert adapter.pool() is None
    assert [m["status"] for m in peer.sent if m["type"] == "http.response.start"] == [200] * 4


@pytest.mark.anyio
async def test_websockets_are_closed() -> None:
    adapter = WSGIAdapter(_wsgi_function)
    sent: list[Message] = []

    async def receive() -> Message:
        return {"type": "websocket.connect"}

    async def send(message: Message) -> None:
        sent.append(message)

    await adapter({"type": "websocket"}, receive, send)
    assert sent == [{"type": "websocket.close", "code": 1000, "reason": ""}]


@pytest.mark.anyio
async def test_the_limiter_is_made_once_per_event_loop_with_max_threads() -> None:
    adapter = WSGIAdapter(_wsgi_function, 7)
    limiter = adapter.limiter()
    assert limiter.total_tokens == 7
    assert adapter.limiter() is limiter
