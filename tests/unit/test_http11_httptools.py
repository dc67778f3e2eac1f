"""``HTTPToolsProtocol``: the heads it serves are llhttp's parse, not our parser's fallback.

Its behaviour is tested with the other parsers (test_http11.py, the differential test); this
checks the fast path is the one taken, so those tests do not pass on the fallback alone.
"""

from __future__ import annotations

import pytest

from tricorn.protocols.events import Body, EndBody, Event, Request, Response
from tricorn.protocols.http11 import HTTP11Protocol
from tricorn.protocols.http11_httptools import HTTPToolsProtocol

VALID = [
    b"GET / HTTP/1.1\r\nHost: a\r\n\r\n",
    b"GET /x?y=1 HTTP/1.0\r\nConnection: keep-alive\r\n\r\n",
    b"POST /p HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nhello",
    b"PUT /c HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
    b"GET /ws HTTP/1.1\r\nHost: a\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n",
    b"OPTIONS * HTTP/1.1\r\nHost: a\r\nX-Trailing: v  \r\n\r\n",
]


def answer(protocol: HTTPToolsProtocol, events: list[Event]) -> None:
    for event in events:
        if isinstance(event, EndBody):
            protocol.send(Response(event.stream_id, 200, [(b"content-length", b"0")]))
            protocol.send(EndBody(event.stream_id))


@pytest.fixture
def no_fallback(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*args: object) -> None:
        raise AssertionError("our parser was asked to decide a head llhttp should take")

    monkeypatch.setattr(HTTP11Protocol, "_parse_head", refuse)


@pytest.mark.parametrize("request_bytes", VALID)
@pytest.mark.usefixtures("no_fallback")
def test_valid_heads_are_llhttps_parse(request_bytes: bytes) -> None:
    protocol = HTTPToolsProtocol()
    events = protocol.receive_data(request_bytes)
    assert events, events
    request = getattr(events[0], "request", events[0])
    assert isinstance(request, Request)
    assert all(name == name.lower() for name, _ in request.headers)
    assert all(value == value.strip() for _, value in request.headers)


@pytest.mark.usefixtures("no_fallback")
def test_the_llhttp_parser_is_kept_across_bodiless_keep_alive_requests() -> None:
    protocol = HTTPToolsProtocol()
    kept = []
    for index in range(3):
        events = protocol.receive_data(b"GET /%d HTTP/1.1\r\nHost: a\r\n\r\n" % index)
        assert isinstance(events[0], Request) and events[0].target == b"/%d" % index
        kept.append(protocol._llhttp)
        answer(protocol, events)
    assert kept[0] is not None and kept[0] is kept[1] is kept[2]
    events = protocol.receive_data(b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 2\r\n\r\nok")
    assert [type(event) for event in events] == [Request, Body, EndBody]
    assert protocol._llhttp is None  # llhttp would wait for the body it was not fed: a new one
