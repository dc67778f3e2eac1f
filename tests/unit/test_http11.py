"""HTTP/1.1 protocols, bytes in and bytes out: each test is one rule of the protocol.

Every test runs on the three implementations behind ``http1_parser``: our own parser
(``HTTP11Protocol``), the one on h11 (``H11Protocol``) and the one on llhttp
(``HTTPToolsProtocol``). Where h11 writes the same response
with other header bytes (title-cased names it adds), the responses are compared parsed.
"""

from __future__ import annotations

import random
from collections.abc import Callable

import h11
import pytest

from tricorn.errors import LocalProtocolError
from tricorn.protocols.events import (
    Body,
    ConnectionClosed,
    EndBody,
    Event,
    H2CPrefaceReceived,
    Headers,
    InformationalResponse,
    ProtocolError,
    Request,
    Response,
    UpgradeRequested,
)
from tricorn.protocols.http11 import H2C_PREFACE, HTTP11Protocol
from tricorn.protocols.http11_h11 import H11Protocol
from tricorn.protocols.http11_httptools import HTTPToolsProtocol

GET = b"GET / HTTP/1.1\r\nHost: example.com\r\n\r\n"
LENGTH_13 = [(b"content-length", b"13")]


Protocol = HTTP11Protocol | H11Protocol
Make = Callable[..., Protocol]
PROTOCOLS: list[type[Protocol]] = [HTTP11Protocol, H11Protocol, HTTPToolsProtocol]


@pytest.fixture(params=PROTOCOLS, ids=lambda cls: cls.__name__)
def protocol_class(request: pytest.FixtureRequest) -> type[Protocol]:
    cls: type[Protocol] = request.param
    return cls


@pytest.fixture
def make(protocol_class: type[Protocol]) -> Make:
    def make(**limits: int | bool) -> Protocol:
        return protocol_class(**limits)  # type: ignore[arg-type]

    return make


def on_h11_only(reason: str) -> list[object]:
    """Parametrize ``protocol_class`` with an expected failure (strict) on ``H11Protocol``."""
    return [
        HTTP11Protocol,
        pytest.param(H11Protocol, marks=pytest.mark.xfail(strict=True, reason=reason)),
        HTTPToolsProtocol,
    ]


def parse_response(data: bytes) -> tuple[bytes, list[tuple[bytes, bytes]], bytes]:
    """(status line, header fields with lower-cased names, sorted, body bytes as framed)."""
    head, separator, body = data.partition(b"\r\n\r\n")
    assert separator, data
    status_line, *lines = head.split(b"\r\n")
    fields = []
    for line in lines:
        name, colon, value = line.partition(b": ")
        assert colon, line
        fields.append((name.lower(), value))
    return status_line, sorted(fields), body


def assert_response(protocol: Protocol, data: bytes, expected: bytes) -> None:
    """Our parser must write ``expected`` byte for byte; h11 the same response, parsed."""
    if isinstance(protocol, HTTP11Protocol):
        assert data == expected
    else:
        assert parse_response(data) == parse_response(expected)


def has_field(protocol: Protocol, data: bytes, name: bytes, value: bytes) -> bool:
    """``name: value`` is in the response head: byte for byte on ours, any name case on h11."""
    if isinstance(protocol, HTTP11Protocol):
        return b"\r\n%s: %s\r\n" % (name, value) in data.partition(b"\r\n\r\n")[0] + b"\r\n"
    return (name, value) in parse_response(data)[1]


def respond(
    protocol: Protocol,
    stream_id: int,
    status: int = 200,
    headers: Headers | None = None,
    body: bytes = b"Hello, world!",
) -> bytes:
    protocol.send(Response(stream_id, status, LENGTH_13 if headers is None else headers))
    protocol.send(Body(stream_id, body))
    protocol.send(EndBody(stream_id))
    return protocol.data_to_send()


def body_of(events: list[Event]) -> bytes:
    return b"".join(event.data for event in events if isinstance(event, Body))


def only_error(events: list[Event]) -> ProtocolError:
    assert len(events) == 2, events
    error, closed = events
    assert isinstance(error, ProtocolError)
    assert isinstance(closed, ConnectionClosed)
    return error


def assert_rejected(make: Make, data: bytes, status: int, **limits: int | bool) -> Protocol:
    """Feed ``data``; expect one error answer with ``status`` and a closed protocol."""
    protocol = make(**limits)
    error = only_error(protocol.receive_data(data))
    assert error.status == status, error
    out = protocol.data_to_send()
    assert out.startswith(b"HTTP/1.1 %d " % status), out
    assert b"\r\nconnection: close\r\n" in out
    assert protocol.should_close
    assert protocol.receive_data(GET) == []
    assert protocol.next_events() == []
    return protocol


# --- requests and keep-alive -----------------------------------------------------------


def test_get_yields_request_then_end_body(make: Make) -> None:
    protocol = make()
    events = protocol.receive_data(b"GET /a?b=c HTTP/1.1\r\nHost: example.com\r\n\r\n")
    assert events == [
        Request(1, b"GET", b"/a?b=c", [(b"host", b"example.com")], "1.1", expects_body=False),
        EndBody(1),
    ]
    assert protocol.paused


def test_header_names_are_lower_cased_and_values_stripped_in_order(make: Make) -> None:
    protocol = make()
    request = protocol.receive_data(
        b"GET / HTTP/1.1\r\nHOST: x\r\nX-Thing:  a b \t\r\nx-thing:c\r\nEmpty:\r\n\r\n"
    )[0]
    assert isinstance(request, Request)
    assert request.headers == [
        (b"host", b"x"),
        (b"x-thing", b"a b"),
        (b"x-thing", b"c"),
        (b"empty", b""),
    ]


def test_response_with_content_length_is_written_exactly_as_given(make: Make) -> None:
    protocol = make()
    protocol.receive_data(GET)
    out = respond(protocol, 1, headers=[(b"content-type", b"text/plain"), *LENGTH_13])
    assert out == (
        b"HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ncontent-length: 13\r\n\r\nHello, world!"
    )
    assert protocol.keep_alive and not protocol.should_close and not protocol.paused


def test_keep_alive_serves_the_next_request_on_the_same_connection(make: Make) -> None:
    protocol = make()
    protocol.receive_data(GET)
    respond(protocol, 1)
    assert protocol.next_events() == []
    events = protocol.receive_data(GET)
    assert [type(event) for event in events] == [Request, EndBody]
    assert events[1] == EndBody(2)


def test_pipelined_requests_are_answered_in_order(make: Make) -> None:
    protocol = make()
    events = protocol.receive_data(
        b"GET /1 HTTP/1.1\r\nHost: a\r\n\r\n"
        b"POST /2 HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n\r\nabc"
        b"GET /3 HTTP/1.1\r\nHost: a\r\n\r\n"
    )
    assert [type(event) for event in events] == [Request, EndBody]
    assert protocol.paused
    assert protocol.next_events() == []  # still paused: no response yet
    respond(protocol, 1)
    events = protocol.next_events()
    assert events[0] == Request(
        2, b"POST", b"/2", [(b"host", b"a"), (b"content-length", b"3")], "1.1"
    )
    assert events[1:] == [Body(2, b"abc"), EndBody(2)]
    respond(protocol, 2)
    events = protocol.next_events()
    assert isinstance(events[0], Request) and events[0].target == b"/3"
    assert protocol.buffered_size == 0


def test_paused_protocol_only_buffers_and_reports_buffered_size(make: Make) -> None:
    protocol = make()
    protocol.receive_data(GET)
    assert protocol.receive_data(b"GET /next HTTP/1.1\r\n") == []
    assert protocol.paused and protocol.buffered_size == len(b"GET /next HTTP/1.1\r\n")
    assert not protocol.has_partial_head
    respond(protocol, 1)
    assert protocol.next_events() == []
    assert protocol.has_partial_head
    events = protocol.receive_data(b"Host: a\r\n\r\n")
    assert isinstance(events[0], Request) and events[0].target == b"/next"


def test_eof_while_paused_reports_connection_closed_and_closes_after_response(make: Make) -> None:
    protocol = make()
    protocol.receive_data(GET + GET)
    assert protocol.receive_data(b"") == [ConnectionClosed()]
    assert protocol.receive_data(b"") == []
    out = respond(protocol, 1)
    assert b"\r\nconnection: close\r\n" in out  # the peer is gone: no keep-alive promised
    assert protocol.should_close
    assert protocol.next_events() == []


def test_eof_on_idle_connection_reports_connection_closed(make: Make) -> None:
    protocol = make()
    assert protocol.receive_data(b"") == [ConnectionClosed()]
    assert protocol.should_close


def test_leading_empty_lines_before_a_request_are_ignored(make: Make) -> None:
    protocol = make()
    assert protocol.receive_data(b"\r\n\r\n") == []
    assert not protocol.has_partial_head
    events = protocol.receive_data(b"\r\n" + GET)
    assert isinstance(events[0], Request)


def test_http_1_x_minor_versions_above_1_are_served_as_1_1(make: Make) -> None:
    protocol = make()
    request = protocol.receive_data(b"GET / HTTP/1.7\r\nHost: a\r\n\r\n")[0]
    assert isinstance(request, Request) and request.http_version == "1.1"


# --- request bodies ----------------------------------------------------------------------


def test_content_length_body_is_delivered_as_it_arrives(make: Make) -> None:
    protocol = make()
    events = protocol.receive_data(b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 10\r\n\r\n0123")
    assert isinstance(events[0], Request) and events[0].expects_body
    assert events[1:] == [Body(1, b"0123")]
    assert not protocol.paused
    assert protocol.receive_data(b"45") == [Body(1, b"45")]
    assert protocol.receive_data(b"6789GET") == [Body(1, b"6789"), EndBody(1)]
    assert protocol.paused and protocol.buffered_size == 3


def test_chunked_body_is_decoded_with_extensions_and_trailers(make: Make) -> None:
    protocol = make()
    events = protocol.receive_data(
        b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
        b'5;name=value\r\nhello\r\n6 ; quoted="a;b"\r\n world\r\n0\r\n'
        b"X-Checksum: abc\r\nX-Other: 1\r\n\r\n" + GET
    )
    assert isinstance(events[0], Request) and events[0].expects_body
    # Extensions are skipped (none of their bytes is body); the trailer fields are read and
    # dropped (ASGI has no request trailers): no event for them, none in the request head.
    assert body_of(events) == b"hello world"
    assert all(isinstance(event, Body) for event in events[1:-1])
    assert events[-1] == EndBody(1)
    assert not any(name.startswith(b"x-") for name, _ in events[0].headers)
    # The whole trailer section was consumed: exactly the pipelined GET is left over.
    assert protocol.paused and protocol.buffered_size == len(GET)
    respond(protocol, 1)
    next_request = protocol.next_events()
    assert isinstance(next_request[0], Request) and next_request[0].target == b"/"


def test_chunked_body_arriving_one_byte_at_a_time_is_decoded(make: Make) -> None:
    protocol = make()
    protocol.receive_data(b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n")
    events: list[Event] = []
    for byte in b"3\r\nabc\r\nA\r\n0123456789\r\n0\r\n\r\n":
        events += protocol.receive_data(bytes([byte]))
    assert body_of(events) == b"abc0123456789"
    assert events[-1] == EndBody(1)


def test_body_shorter_than_content_length_then_eof_reports_connection_closed(make: Make) -> None:
    protocol = make()
    protocol.receive_data(b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 10\r\n\r\n0123")
    assert protocol.receive_data(b"") == [ConnectionClosed()]
    assert not protocol.keep_alive


def test_response_ending_before_the_request_body_drains_it_or_closes(make: Make) -> None:
    protocol = make()
    protocol.receive_data(b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 10\r\n\r\n0123")
    respond(protocol, 1)
    if not protocol.DRAINS_UNREAD_BODY:  # h11: connection: close, then closed
        assert protocol.should_close
        assert protocol.closing_with_unread_body
        assert protocol.receive_data(b"456789") == []
        return
    # The rest of the body is read and dropped; the next request follows as usual.
    assert not protocol.should_close and protocol.keep_alive
    events = protocol.receive_data(b"4567")
    assert events == []
    events = protocol.receive_data(b"89GET /next HTTP/1.1\r\nHost: a\r\n\r\n")
    assert [type(event) for event in events] == [Request, EndBody]
    assert isinstance(events[0], Request) and events[0].target == b"/next"


@pytest.mark.parametrize("chunked", [False, True])
def test_an_undrainable_unread_body_gets_connection_close(make: Make, chunked: bool) -> None:
    # More than max_unread_body_drain still to come, or a chunked body (length unknown).
    protocol = make(max_unread_body_drain=5)
    framing = b"Transfer-Encoding: chunked" if chunked else b"Content-Length: 10"
    protocol.receive_data(b"POST / HTTP/1.1\r\nHost: a\r\n" + framing + b"\r\n\r\n")
    protocol.send(Response(1, 200, [(b"content-length", b"0")]))
    head = protocol.data_to_send()
    protocol.send(EndBody(1))
    assert b"connection: close" in head.lower()
    assert protocol.should_close
    assert protocol.closing_with_unread_body


# --- HTTP/1.0 ------------------------------------------------------------------------------


def test_http10_closes_after_the_response_by_default(make: Make) -> None:
    protocol = make()
    request = protocol.receive_data(b"GET / HTTP/1.0\r\n\r\n")[0]
    assert isinstance(request, Request) and request.http_version == "1.0"
    assert not protocol.keep_alive
    out = respond(protocol, 1)
    assert_response(
        protocol,
        out,
        b"HTTP/1.1 200 OK\r\ncontent-length: 13\r\nconnection: close\r\n\r\nHello, world!",
    )
    assert protocol.should_close


@pytest.mark.parametrize(
    "protocol_class", on_h11_only("h11 never keeps an HTTP/1.0 connection alive")
)
def test_http10_keep_alive_is_honoured_when_the_response_has_a_length(make: Make) -> None:
    protocol = make()
    protocol.receive_data(b"GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n")
    assert protocol.keep_alive
    out = respond(protocol, 1)
    assert out == (
        b"HTTP/1.1 200 OK\r\ncontent-length: 13\r\nconnection: keep-alive\r\n\r\nHello, world!"
    )
    assert not protocol.should_close
    assert isinstance(protocol.receive_data(b"GET / HTTP/1.0\r\n\r\n")[0], Request)


def test_http10_response_without_length_is_close_delimited(make: Make) -> None:
    protocol = make()
    protocol.receive_data(b"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
    protocol.send(Response(1, 200, [(b"content-type", b"text/plain")]))
    protocol.send(Body(1, b"abc"))
    protocol.send(Body(1, b"def"))
    protocol.send(EndBody(1))
    assert_response(
        protocol,
        protocol.data_to_send(),
        b"HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\nconnection: close\r\n\r\nabcdef",
    )
    assert protocol.should_close


def test_http10_without_host_is_accepted(make: Make) -> None:
    protocol = make()
    assert isinstance(protocol.receive_data(b"GET / HTTP/1.0\r\n\r\n")[0], Request)


def test_connection_close_request_gets_connection_close_response(make: Make) -> None:
    protocol = make()
    protocol.receive_data(b"GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
    assert not protocol.keep_alive
    out = respond(protocol, 1)
    assert has_field(protocol, out, b"connection", b"close")
    assert out.endswith(b"\r\n\r\nHello, world!")
    assert protocol.should_close


def test_app_connection_close_header_is_kept_and_closes(make: Make) -> None:
    protocol = make()
    protocol.receive_data(GET)
    out = respond(protocol, 1, headers=[*LENGTH_13, (b"connection", b"close")])
    assert out.count(b"connection") == 1
    assert protocol.should_close


# --- responses -----------------------------------------------------------------------------


def test_head_response_drops_body_but_keeps_content_length(make: Make) -> None:
    protocol = make()
    protocol.receive_data(b"HEAD / HTTP/1.1\r\nHost: a\r\n\r\n")
    out = respond(protocol, 1)
    assert out == b"HTTP/1.1 200 OK\r\ncontent-length: 13\r\n\r\n"
    assert protocol.keep_alive and not protocol.should_close


@pytest.mark.parametrize("status", [204, 304])
def test_204_and_304_responses_carry_no_body(make: Make, status: int) -> None:
    protocol = make()
    protocol.receive_data(GET)
    out = respond(protocol, 1, status=status, headers=[], body=b"ignored")
    assert out == b"HTTP/1.1 %d %s\r\n\r\n" % (
        status,
        b"No Content" if status == 204 else b"Not Modified",
    )
    assert not protocol.should_close


def test_response_without_length_is_chunked_on_http11(make: Make) -> None:
    protocol = make()
    protocol.receive_data(GET)
    protocol.send(Response(1, 200, [(b"content-type", b"text/plain")]))
    protocol.send(Body(1, b"hello"))
    protocol.send(Body(1, b""))
    protocol.send(Body(1, b" world, and more"))
    protocol.send(EndBody(1))
    assert_response(
        protocol,
        protocol.data_to_send(),
        b"HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ntransfer-encoding: chunked\r\n\r\n"
        b"5\r\nhello\r\n10\r\n world, and more\r\n0\r\n\r\n",
    )
    assert protocol.keep_alive


def test_chunked_response_parses_with_an_h11_client(make: Make) -> None:
    protocol = make()
    client = h11.Connection(h11.CLIENT)
    protocol.receive_data(
        client.send(h11.Request(method="GET", target="/", headers=[("host", "a")]))
    )
    protocol.receive_data(client.send(h11.EndOfMessage()))
    protocol.send(Response(1, 201, [(b"x-a", b"1"), (b"x-b", b"2")]))
    for piece in (b"one", b"two", b"three"):
        protocol.send(Body(1, piece))
    protocol.send(EndBody(1))
    client.receive_data(protocol.data_to_send())
    response = client.next_event()
    assert isinstance(response, h11.Response) and response.status_code == 201
    assert list(response.headers)[:2] == [(b"x-a", b"1"), (b"x-b", b"2")]
    data = b""
    while not isinstance(event := client.next_event(), h11.EndOfMessage):
        assert isinstance(event, h11.Data)
        data += event.data
    assert data == b"onetwothree"


def test_response_headers_pass_through_in_order_without_date_or_server(make: Make) -> None:
    protocol = make()
    protocol.receive_data(GET)
    headers = [(b"x-z", b"1"), (b"Set-Cookie", b"a=1"), (b"set-cookie", b"b=2"), *LENGTH_13]
    out = respond(protocol, 1, headers=headers)
    assert out.split(b"\r\n")[1:5] == [
        b"x-z: 1",
        b"Set-Cookie: a=1",
        b"set-cookie: b=2",
        b"content-length: 13",
    ]
    assert b"date:" not in out.lower() and b"server:" not in out.lower()


def test_unknown_status_code_gets_an_empty_reason_phrase(make: Make) -> None:
    protocol = make()
    protocol.receive_data(GET)
    assert respond(protocol, 1, status=299).startswith(b"HTTP/1.1 299 \r\n")


def test_informational_103_is_sent_before_the_response(make: Make) -> None:
    protocol = make()
    protocol.receive_data(GET)
    protocol.send(InformationalResponse(1, 103, [(b"link", b"</a.css>; rel=preload")]))
    assert protocol.data_to_send() == (
        b"HTTP/1.1 103 Early Hints\r\nlink: </a.css>; rel=preload\r\n\r\n"
    )
    assert respond(protocol, 1).startswith(b"HTTP/1.1 200 OK\r\n")


def test_informational_responses_are_not_sent_to_http10_clients(make: Make) -> None:
    protocol = make()
    protocol.receive_data(b"GET / HTTP/1.0\r\n\r\n")
    protocol.send(InformationalResponse(1, 103, []))
    assert protocol.data_to_send() == b""


# --- 100-continue --------------------------------------------------------------------------

EXPECT = b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n"


def test_expect_continue_sends_100_only_when_the_server_asks(make: Make) -> None:
    protocol = make()
    request = protocol.receive_data(EXPECT)[0]
    assert isinstance(request, Request) and request.expect_continue
    assert protocol.data_to_send() == b""
    protocol.continue_request(1)
    assert protocol.data_to_send() == b"HTTP/1.1 100 Continue\r\n\r\n"
    protocol.continue_request(1)
    assert protocol.data_to_send() == b""
    assert protocol.receive_data(b"hello") == [Body(1, b"hello"), EndBody(1)]
    out = respond(protocol, 1)
    assert b"connection: close" not in out and protocol.keep_alive


def test_continue_is_never_sent_after_the_final_response_started(make: Make) -> None:
    protocol = make()
    protocol.receive_data(EXPECT)
    protocol.send(Response(1, 413, [(b"content-length", b"0")]))
    protocol.continue_request(1)
    protocol.send(EndBody(1))
    out = protocol.data_to_send()
    assert b"100 Continue" not in out
    # The client still holds back its body: the connection cannot be reused.
    assert out.startswith(b"HTTP/1.1 413 ")
    assert out.endswith(b"\r\ncontent-length: 0\r\nconnection: close\r\n\r\n")
    assert protocol.should_close


def test_expect_continue_is_ignored_for_requests_without_body(make: Make) -> None:
    protocol = make()
    request = protocol.receive_data(b"GET / HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\n\r\n")[0]
    assert isinstance(request, Request) and not request.expect_continue


def expect_request(*values: bytes) -> bytes:
    fields = b"".join(b"Expect: %s\r\n" % value for value in values)
    return b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n" + fields + b"\r\n"


@pytest.mark.parametrize(
    "values",
    [
        (b"100-Continue",),
        (b"100-CONTINUE",),
        (b"100-continue, foo",),
        (b"foo,100-continue",),
        (b"foo=bar , 100-Continue ,",),
        (b"foo", b"100-continue"),  # two fields are one list (RFC 9110 5.3)
        (b"100-continue", b"foo"),
    ],
)
def test_expect_100_continue_is_found_case_insensitively_in_a_list(
    make: Make, values: tuple[bytes, ...]
) -> None:
    protocol = make()
    request = protocol.receive_data(expect_request(*values))[0]
    assert isinstance(request, Request) and request.expect_continue
    protocol.continue_request(1)
    assert protocol.data_to_send() == b"HTTP/1.1 100 Continue\r\n\r\n"


@pytest.mark.parametrize("values", [(b"foo",), (b"100-continued",), (b"",), (b"foo", b"bar=1")])
def test_unknown_expectations_are_ignored_not_answered_417(
    make: Make, values: tuple[bytes, ...]
) -> None:
    # RFC 9110 10.1.1 allows 417 here; like nginx, Uvicorn and Hypercorn we serve the request.
    protocol = make()
    request = protocol.receive_data(expect_request(*values))[0]
    assert isinstance(request, Request) and not request.expect_continue
    protocol.continue_request(1)
    assert protocol.data_to_send() == b""
    assert protocol.receive_data(b"hello") == [Body(1, b"hello"), EndBody(1)]
    out = respond(protocol, 1)
    assert out.startswith(b"HTTP/1.1 200 ") and protocol.keep_alive


# --- graceful shutdown and timeouts ------------------------------------------------------


def test_close_after_response_adds_connection_close_to_the_current_response(make: Make) -> None:
    protocol = make()
    protocol.receive_data(GET + GET)
    protocol.close_after_response()
    assert b"\r\nconnection: close\r\n" in respond(protocol, 1)
    assert protocol.should_close
    assert protocol.next_events() == []


def test_close_after_response_while_streaming_closes_after_that_response(make: Make) -> None:
    protocol = make()
    protocol.receive_data(GET)
    protocol.send(Response(1, 200, []))
    protocol.close_after_response()
    protocol.send(Body(1, b"x"))
    protocol.send(EndBody(1))
    assert protocol.data_to_send().endswith(b"0\r\n\r\n")
    assert protocol.should_close


def test_close_after_response_on_an_idle_connection_closes_at_once(make: Make) -> None:
    protocol = make()
    protocol.receive_data(GET)
    respond(protocol, 1)
    protocol.close_after_response()
    assert protocol.should_close


def test_close_after_response_keep_idle_answers_the_next_request_with_close(make: Make) -> None:
    protocol = make()
    protocol.receive_data(GET)
    respond(protocol, 1)
    protocol.close_after_response(keep_idle=True)
    assert not protocol.should_close
    [request, end] = protocol.receive_data(GET)
    assert isinstance(request, Request) and isinstance(end, EndBody)
    assert b"\r\nconnection: close\r\n" in respond(protocol, 2)
    assert protocol.should_close


def test_close_after_response_keep_idle_keeps_a_keep_alive_response_s_promise(
    make: Make,
) -> None:
    protocol = make()
    protocol.receive_data(GET)
    protocol.send(Response(1, 200, LENGTH_13))
    head = protocol.data_to_send()
    protocol.close_after_response(keep_idle=True)
    protocol.send(Body(1, b"Hello, world!"))
    protocol.send(EndBody(1))
    assert b"connection: close" not in head + protocol.data_to_send()
    assert not protocol.should_close  # the client was told keep-alive: it may send more
    protocol.receive_data(GET)
    assert b"\r\nconnection: close\r\n" in respond(protocol, 2)
    assert protocol.should_close


def test_close_after_response_keep_idle_before_the_head_answers_with_close(make: Make) -> None:
    protocol = make()
    protocol.receive_data(GET)
    protocol.close_after_response(keep_idle=True)
    assert b"\r\nconnection: close\r\n" in respond(protocol, 1)
    assert protocol.should_close


def test_close_after_response_with_a_partial_head_answers_that_request_then_closes(
    make: Make,
) -> None:
    protocol = make()
    protocol.receive_data(b"GET / HTTP/1.1\r\n")
    protocol.close_after_response()
    assert not protocol.should_close
    protocol.receive_data(b"Host: a\r\n\r\n")
    assert b"connection: close" in respond(protocol, 1)
    assert protocol.should_close


def test_has_partial_head_is_true_once_part_of_a_head_arrived(make: Make) -> None:
    protocol = make()
    assert not protocol.has_partial_head
    protocol.receive_data(b"GE")
    assert protocol.has_partial_head
    protocol.receive_data(b"T / HTTP/1.1\r\nHost: a\r\n\r\n")
    assert not protocol.has_partial_head


def test_request_timeout_with_a_partial_head_queues_408_and_closes(make: Make) -> None:
    protocol = make()
    protocol.receive_data(b"GET / HTTP/1.1\r\nHost: a\r\n")
    protocol.request_timeout()
    assert protocol.data_to_send() == (
        b"HTTP/1.1 408 Request Timeout\r\ncontent-type: text/plain; charset=utf-8\r\n"
        b"content-length: 15\r\nconnection: close\r\n\r\nRequest Timeout"
    )
    assert protocol.should_close
    assert protocol.receive_data(b"\r\n") == []


def test_request_timeout_on_an_idle_connection_sends_nothing(make: Make) -> None:
    protocol = make()
    protocol.request_timeout()
    assert protocol.data_to_send() == b""
    assert protocol.should_close


# --- HTTP/2 preface and upgrades ------------------------------------------------------------


def test_h2c_preface_is_detected_with_all_bytes_so_far(make: Make) -> None:
    protocol = make()
    data = H2C_PREFACE + b"\x00\x00\x00\x04\x00\x00\x00\x00\x00"
    assert protocol.receive_data(data) == [H2CPrefaceReceived(data)]
    assert protocol.receive_data(b"more") == []
    assert not protocol.should_close


def test_h2c_preface_arriving_in_pieces_waits_for_enough_bytes(make: Make) -> None:
    protocol = make()
    for index in range(len(H2C_PREFACE) - 1):
        assert protocol.receive_data(H2C_PREFACE[index : index + 1]) == []
    assert protocol.receive_data(H2C_PREFACE[-1:] + b"x") == [
        H2CPrefaceReceived(H2C_PREFACE + b"x")
    ]


def test_h2c_preface_when_disabled_answers_505(make: Make) -> None:
    assert_rejected(make, H2C_PREFACE, 505, h2c_preface=False)


def test_pri_request_line_that_is_not_the_preface_answers_505(make: Make) -> None:
    assert_rejected(make, b"PRI * HTTP/2.0\r\n\r\nXX\r\n\r\n", 505)


def test_h2c_preface_is_only_recognised_at_the_start_of_the_connection(make: Make) -> None:
    protocol = make()
    protocol.receive_data(GET)
    respond(protocol, 1)
    assert only_error(protocol.receive_data(H2C_PREFACE)).status == 505


WEBSOCKET = (
    b"GET /chat HTTP/1.1\r\nHost: a\r\nConnection: keep-alive, Upgrade\r\nUpgrade: websocket\r\n"
    b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
)


def test_websocket_upgrade_is_reported_instead_of_the_request(make: Make) -> None:
    protocol = make()
    events = protocol.receive_data(WEBSOCKET + b"\x81\x85")
    assert len(events) == 1
    event = events[0]
    assert isinstance(event, UpgradeRequested)
    assert event.stream_id == 1 and event.upgrade == b"websocket" and event.data == b"\x81\x85"
    assert event.request.target == b"/chat" and not event.request.expects_body
    assert protocol.paused


def test_declined_upgrade_is_served_as_plain_http11(make: Make) -> None:
    protocol = make()
    event = protocol.receive_data(WEBSOCKET)[0]
    assert isinstance(event, UpgradeRequested)
    with pytest.raises(LocalProtocolError, match="upgrade"):
        protocol.send(Response(1, 200, []))
    assert protocol.decline_upgrade() == [event.request, EndBody(1)]
    assert respond(protocol, 1).startswith(b"HTTP/1.1 200 OK\r\n")
    assert protocol.keep_alive


def test_accepted_upgrade_queues_101_and_returns_the_following_bytes(make: Make) -> None:
    protocol = make()
    protocol.receive_data(WEBSOCKET + b"\x81")
    protocol.receive_data(b"\x85abc")
    rest = protocol.accept_upgrade([(b"sec-websocket-accept", b"s3pPLMBiTxaQ9kYGzzhZRbK+xOo=")])
    assert rest == b"\x81\x85abc"
    assert protocol.data_to_send() == (
        b"HTTP/1.1 101 Switching Protocols\r\n"
        b"sec-websocket-accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n"
        b"connection: upgrade\r\nupgrade: websocket\r\n\r\n"
    )
    assert protocol.receive_data(b"more") == []
    with pytest.raises(LocalProtocolError, match="switched protocols"):
        protocol.send(Body(1, b"x"))


def test_h2c_upgrade_is_reported_when_http2_settings_is_present(make: Make) -> None:
    protocol = make()
    head = b"GET / HTTP/1.1\r\nHost: a\r\nConnection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\n"
    event = protocol.receive_data(head + b"HTTP2-Settings: AAMAAABkAAQAAP__\r\n\r\n")[0]
    assert isinstance(event, UpgradeRequested) and event.upgrade == b"h2c"
    other = make().receive_data(head + b"\r\n")[0]
    assert isinstance(other, Request)  # no HTTP2-Settings: not an h2c upgrade


def test_upgrade_with_a_body_is_a_plain_request(make: Make) -> None:
    protocol = make()
    events = protocol.receive_data(
        b"POST / HTTP/1.1\r\nHost: a\r\nConnection: upgrade\r\nUpgrade: websocket\r\n"
        b"Content-Length: 2\r\n\r\nhi"
    )
    assert [type(event) for event in events] == [Request, Body, EndBody]


def test_upgrade_header_without_connection_upgrade_is_a_plain_request(make: Make) -> None:
    protocol = make()
    event = protocol.receive_data(b"GET / HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\n\r\n")[0]
    assert isinstance(event, Request)


# --- CONNECT -------------------------------------------------------------------------------

CONNECT = b"CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n"


@pytest.mark.parametrize(
    "target", [b"example.com:443", b"[::1]:8443", b"[v1.x]:1", b"192.0.2.1:80", b"a%2Db:65535"]
)
def test_connect_is_passed_on_with_its_authority_form_target(make: Make, target: bytes) -> None:
    protocol = make()
    events = protocol.receive_data(b"CONNECT %s HTTP/1.1\r\nHost: %s\r\n\r\n" % (target, target))
    assert events == [
        Request(1, b"CONNECT", target, [(b"host", target)], "1.1", expects_body=False),
        EndBody(1),
    ]


@pytest.mark.parametrize(
    "target",
    [
        b"/",
        b"*",
        b"http://example.com:80/",
        b"example.com",
        b"example.com:",  # RFC 9110 9.3.6: an empty or invalid port is 400
        b":443",
        b"example.com:0",
        b"example.com:65536",
        b"example.com:443/x",
        b"user@example.com:443",
        b"[::1:443",
    ],
)
def test_connect_without_an_authority_form_target_answers_400(make: Make, target: bytes) -> None:
    assert_rejected(make, b"CONNECT %s HTTP/1.1\r\nHost: a\r\n\r\n" % target, 400)


@pytest.mark.parametrize(
    ("status", "status_line"),
    [
        (200, b"HTTP/1.1 200 OK\r\n"),
        (204, b"HTTP/1.1 204 No Content\r\n"),
        (299, b"HTTP/1.1 299 \r\n"),
    ],
)
def test_2xx_to_connect_closes_after_the_head_instead_of_tunnelling(
    make: Make, status: int, status_line: bytes
) -> None:
    # RFC 9112 6.3: the connection would become a tunnel after the head; we offer none.
    protocol = make()
    protocol.receive_data(CONNECT + GET)
    headers = [(b"x-a", b"1"), (b"content-length", b"13"), (b"transfer-encoding", b"chunked")]
    out = respond(protocol, 1, status, headers)
    # No framing fields (RFC 9110 9.3.6), no body, and connection: close.
    assert_response(protocol, out, status_line + b"x-a: 1\r\nconnection: close\r\n\r\n")
    assert protocol.should_close and not protocol.keep_alive
    assert protocol.next_events() == []  # the pipelined GET is not read as HTTP
    assert protocol.receive_data(b"\x16\x03\x01 tunnel bytes") == []
    assert protocol.data_to_send() == b""


def test_2xx_to_connect_answered_before_its_body_still_closes(make: Make) -> None:
    protocol = make()
    events = protocol.receive_data(
        b"CONNECT a:1 HTTP/1.1\r\nHost: a:1\r\nContent-Length: 5\r\n\r\nhe"
    )
    assert body_of(events) == b"he"
    protocol.send(Response(1, 200, [(b"connection", b"close")]))
    assert protocol.data_to_send() == b"HTTP/1.1 200 OK\r\nconnection: close\r\n\r\n"
    assert protocol.receive_data(b"llo") == [Body(1, b"llo"), EndBody(1)]
    protocol.send(Body(1, b"dropped"))
    protocol.send(EndBody(1))
    assert protocol.data_to_send() == b"" and protocol.should_close


@pytest.mark.parametrize("status", [400, 403, 405, 502])
def test_non_2xx_to_connect_keeps_the_connection_alive(make: Make, status: int) -> None:
    protocol = make()
    protocol.receive_data(CONNECT + GET)
    out = respond(protocol, 1, status)
    assert out.startswith(b"HTTP/1.1 %d " % status) and out.endswith(b"\r\n\r\nHello, world!")
    assert b"connection: close" not in out.lower() and protocol.keep_alive
    assert not protocol.should_close
    request = protocol.next_events()[0]
    assert isinstance(request, Request) and request.method == b"GET" and request.stream_id == 2
    assert respond(protocol, 2).startswith(b"HTTP/1.1 200 OK\r\n")


def test_2xx_to_http10_connect_also_closes(make: Make) -> None:
    protocol = make()
    protocol.receive_data(b"CONNECT a:1 HTTP/1.0\r\n\r\n")
    out = respond(protocol, 1, 200, [])
    assert_response(protocol, out, b"HTTP/1.1 200 OK\r\nconnection: close\r\n\r\n")
    assert protocol.should_close


# --- hostile input ---------------------------------------------------------------------------


def test_error_response_is_short_plain_text_with_connection_close(make: Make) -> None:
    protocol = make()
    error = only_error(protocol.receive_data(b"GET / HTTP/1.1\r\n\r\n"))
    assert error == ProtocolError(None, "missing Host header", 400)
    assert protocol.data_to_send() == (
        b"HTTP/1.1 400 Bad Request\r\ncontent-type: text/plain; charset=utf-8\r\n"
        b"content-length: 11\r\nconnection: close\r\n\r\nBad Request"
    )


def test_content_length_with_transfer_encoding_answers_400_and_ignores_what_follows(
    make: Make,
) -> None:
    protocol = assert_rejected(
        make,
        b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"0\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: a\r\n\r\n",
        400,
    )
    assert protocol.buffered_size == 0


@pytest.mark.parametrize(
    "value", [b"+5", b"-1", b"abc", b"1.0", b"", b"5, 6", b"0x10", b"99999999999999999999"]
)
def test_bad_content_length_answers_400(make: Make, value: bytes) -> None:
    assert_rejected(
        make, b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: " + value + b"\r\n\r\n", 400
    )


@pytest.mark.parametrize(
    "value",
    [
        b"9223372036854775808",  # 2**63: 19 digits, over 2**63-1
        b"9" * 19,
        b"1" + b"0" * 19,  # 20 digits
        b"0" * 19 + b"8",  # 20 digits, small value: refused by length, never parsed
        b"9" * 5000,  # past Python's int() digit limit: must not raise
        b"8, " + b"0" * 30 + b"8",
    ],
)
def test_content_length_with_more_than_19_digits_or_over_2_63_answers_400(
    make: Make, value: bytes
) -> None:
    assert_rejected(
        make, b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: " + value + b"\r\n\r\n", 400
    )


@pytest.mark.parametrize(
    "fields",
    [
        [b"08"],  # RFC 9110 8.6: 1*DIGIT, so 08 is 8
        [b"0000000000000000008"],  # 19 digits
        [b"8", b"08"],  # the same length, spelled twice
        [b"08", b"8"],
        [b"8, 08"],
        [b"008 , 8", b"08"],
    ],
)
def test_content_length_with_leading_zeros_is_its_decimal_value(
    make: Make, fields: list[bytes]
) -> None:
    protocol = make()
    head = b"".join(b"Content-Length: %s\r\n" % value for value in fields)
    events = protocol.receive_data(b"POST / HTTP/1.1\r\nHost: a\r\n" + head + b"\r\n12345678GET")
    assert isinstance(events[0], Request) and events[0].expects_body
    assert body_of(events) == b"12345678" and events[-1] == EndBody(1)
    respond(protocol, 1)
    assert protocol.buffered_size == 3  # the next request starts right after the 8 bytes


def test_zero_content_length_with_leading_zeros_has_no_body(make: Make) -> None:
    protocol = make()
    events = protocol.receive_data(b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 000\r\n\r\n")
    assert [type(event) for event in events] == [Request, EndBody]
    request = events[0]
    assert isinstance(request, Request) and not request.expects_body


def test_differing_duplicate_content_length_answers_400(make: Make) -> None:
    assert_rejected(
        make, b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n", 400
    )


def test_identical_duplicate_content_length_is_accepted(make: Make) -> None:
    protocol = make()
    events = protocol.receive_data(
        b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 2\r\nContent-Length: 2, 2\r\n\r\nhi"
    )
    assert body_of(events) == b"hi" and events[-1] == EndBody(1)


@pytest.mark.parametrize("coding", [b"gzip", b"chunked, gzip", b"gzip, chunked", b"identity"])
def test_unknown_transfer_encoding_answers_501(make: Make, coding: bytes) -> None:
    assert_rejected(
        make, b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: " + coding + b"\r\n\r\n", 501
    )


def test_chunked_applied_twice_answers_400(make: Make) -> None:
    assert_rejected(
        make,
        b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n"
        b"Transfer-Encoding: chunked\r\n\r\n",
        400,
    )


def test_transfer_encoding_in_http10_answers_400(make: Make) -> None:
    assert_rejected(make, b"POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n", 400)


CHUNKED = b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"


def chunked_error(make: Make, data: bytes, **limits: int | bool) -> tuple[Protocol, ProtocolError]:
    protocol = make(**limits)
    events = protocol.receive_data(CHUNKED)
    assert isinstance(events[0], Request)
    events = protocol.receive_data(data)
    error = events[-2]
    assert isinstance(error, ProtocolError), events
    assert events[-1] == ConnectionClosed(reason=error.message)
    assert error.stream_id == 1
    return protocol, error


def test_chunk_size_with_more_than_16_hex_digits_answers_400(make: Make) -> None:
    protocol, error = chunked_error(make, b"00000000000000001\r\nx\r\n")
    assert error.status == 400
    assert protocol.data_to_send().startswith(b"HTTP/1.1 400 Bad Request\r\n")


def test_chunk_size_digits_dripping_without_line_end_answer_400_early(make: Make) -> None:
    _, error = chunked_error(make, b"F" * 17)
    assert error.status == 400 and "16 hex digits" in error.message


def test_chunk_size_above_2_63_minus_1_answers_400(make: Make) -> None:
    _, error = chunked_error(make, b"8000000000000000\r\n")
    assert error.status == 400


def test_chunk_size_over_the_body_limit_answers_413_before_the_data(make: Make) -> None:
    _, error = chunked_error(make, b"401\r\n", max_request_body_size=1024)
    assert error.status == 413


def test_chunked_total_over_the_body_limit_answers_413(make: Make) -> None:
    protocol = make(max_request_body_size=10)
    protocol.receive_data(CHUNKED)
    assert protocol.receive_data(b"6\r\nabcdef\r\n") == [Body(1, b"abcdef")]
    error = only_error(protocol.receive_data(b"5\r\n"))
    assert error.status == 413


def test_content_length_over_the_body_limit_answers_413_before_the_request(make: Make) -> None:
    assert_rejected(
        make,
        b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 11\r\n\r\n",
        413,
        max_request_body_size=10,
    )


@pytest.mark.parametrize(
    "data", [b"5 \r\n", b"x\r\n", b";a=b\r\n", b"5;=b\r\n", b"3\r\nabcX", b"1\r\na\n\r"]
)
def test_malformed_chunked_framing_answers_400(make: Make, data: bytes) -> None:
    _, error = chunked_error(make, data)
    assert error.status == 400


def test_error_after_the_response_started_queues_nothing_more(make: Make) -> None:
    protocol = make()
    protocol.receive_data(CHUNKED)
    protocol.send(Response(1, 200, []))
    protocol.data_to_send()
    error = only_error(protocol.receive_data(b"zz\r\n"))
    assert error.status is None and error.stream_id == 1
    assert protocol.data_to_send() == b""
    protocol.send(Body(1, b"dropped"))  # the app's late sends are dropped, not errors
    protocol.send(EndBody(1))
    assert protocol.data_to_send() == b"" and protocol.should_close


def test_sends_for_a_request_that_failed_mid_body_are_dropped(make: Make) -> None:
    protocol = make(max_request_body_size=4)
    protocol.receive_data(CHUNKED)
    assert only_error(protocol.receive_data(b"5\r\n")).status == 413
    assert protocol.data_to_send().startswith(b"HTTP/1.1 413 ")
    respond(protocol, 1)
    assert protocol.data_to_send() == b""


def test_long_request_line_answers_414_before_its_end_arrives(make: Make) -> None:
    protocol = make(max_request_line_size=32)
    assert protocol.receive_data(b"GET /" + b"a" * 28) == []  # 33 bytes: may still end in CR
    error = only_error(protocol.receive_data(b"aa"))
    assert error.status == 414


def test_request_line_of_exactly_the_limit_is_accepted(make: Make) -> None:
    protocol = make(max_request_line_size=32)
    line = b"GET /" + b"a" * 18 + b" HTTP/1.1"
    assert len(line) == 32
    assert isinstance(protocol.receive_data(line + b"\r\nHost: a\r\n\r\n")[0], Request)


def test_long_complete_request_line_answers_414(make: Make) -> None:
    assert_rejected(
        make, b"GET /" + b"a" * 40 + b" HTTP/1.1\r\nHost: a\r\n\r\n", 414, max_request_line_size=32
    )


def test_large_head_answers_431_before_its_end_arrives(make: Make) -> None:
    protocol = make(max_head_size=100)
    assert protocol.receive_data(b"GET / HTTP/1.1\r\nHost: a\r\n") == []
    error = only_error(protocol.receive_data(b"X-Long: " + b"v" * 100))
    assert error.status == 431


def test_large_complete_head_answers_431(make: Make) -> None:
    assert_rejected(
        make, b"GET / HTTP/1.1\r\nHost: a\r\nX: " + b"v" * 100 + b"\r\n\r\n", 431, max_head_size=100
    )


def test_too_many_header_fields_answer_431(make: Make) -> None:
    head = b"GET / HTTP/1.1\r\nHost: a\r\n" + b"X: 1\r\n" * 4 + b"\r\n"
    assert_rejected(make, head, 431, max_headers=4)
    assert isinstance(make(max_headers=5).receive_data(head)[0], Request)


@pytest.mark.parametrize(
    "head",
    [
        b"G(T / HTTP/1.1\r\nHost: a\r\n\r\n",  # method is not a token
        b"GET / HTTP/1.1\r\nHost: a\r\nBad Name: x\r\n\r\n",  # space in a header name
        b"GET / HTTP/1.1\r\nHost: a\r\nX: a\rb\r\n\r\n",  # bare CR
        b"GET / HTTP/1.1\r\nHost: a\r\nX: a\x00b\r\n\r\n",  # NUL
        b"GET / HTTP/1.1\r\nHost: a\r\nX: a\r\n folded\r\n\r\n",  # obs-fold
        b"GET / HTTP/1.1\r\nHost : a\r\n\r\n",  # whitespace before the colon
        b"GET / HTTP/1.1\r\nHost: a\r\nNoColon\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: a\r\n: empty name\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: a\r\nX: \x7f\r\n\r\n",  # DEL
        b"GET  / HTTP/1.1\r\nHost: a\r\n\r\n",  # two spaces
        b"GET /\xff HTTP/1.1\r\nHost: a\r\n\r\n",  # non-ASCII target
        b"GET / HTTP/1\r\nHost: a\r\n\r\n",  # malformed version
        b"GET / HTTP/1.1\nHost: a\n\n",  # bare LF line ends
        b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n",  # repeated Host
        b"GET / HTTP/1.1\r\n\r\n",  # missing Host
    ],
)
def test_malformed_head_answers_400(make: Make, head: bytes) -> None:
    assert_rejected(make, head, 400)


def test_bare_lf_head_is_rejected_before_it_completes(make: Make) -> None:
    protocol = make()
    assert only_error(protocol.receive_data(b"GET / HTTP/1.1\nHost: a\n")).status == 400


@pytest.mark.parametrize(
    "line", [b"GET / HTTP/2.0", b"GET / HTTP/3.0", b"GET / HTTP/0.9", b"GET /"]
)
def test_http_major_versions_other_than_1_answer_505(make: Make, line: bytes) -> None:
    assert_rejected(make, line + b"\r\nHost: a\r\n\r\n", 505)


def test_http09_request_line_answers_505_without_waiting_for_the_head_end(make: Make) -> None:
    protocol = make()
    assert only_error(protocol.receive_data(b"GET /index.html\r\n")).status == 505


def test_rejected_pipelined_request_is_answered_after_the_previous_response(make: Make) -> None:
    protocol = make()
    protocol.receive_data(GET + b"GET / HTTP/1.1\r\n\r\n")
    assert protocol.data_to_send() == b""
    respond(protocol, 1)
    assert only_error(protocol.next_events()) == ProtocolError(None, "missing Host header", 400)
    assert protocol.data_to_send().startswith(b"HTTP/1.1 400 Bad Request\r\n")


def test_random_bytes_never_raise_and_always_end_in_a_known_state(make: Make) -> None:
    rng = random.Random(1234)
    alphabet = (
        b"GET POST / HTTP/1.1\r\n:Host: a Content-Length: 5 chunked Transfer-Encoding 0\x00\t"
    )
    for _ in range(2000):
        protocol = make(max_request_line_size=64, max_head_size=256, max_headers=8)
        data = bytes(rng.choice(alphabet) for _ in range(rng.randrange(1, 200)))
        cut = rng.randrange(len(data) + 1)
        for piece in (data[:cut], data[cut:], b""):
            for event in protocol.receive_data(piece):
                if isinstance(event, ProtocolError):
                    assert event.status in {400, 413, 414, 431, 501, 505}


# --- misuse by the server --------------------------------------------------------------------


def test_body_before_response_raises_naming_the_stream(make: Make) -> None:
    protocol = make()
    protocol.receive_data(GET)
    with pytest.raises(LocalProtocolError, match="stream 1: cannot send Body before the Response"):
        protocol.send(Body(1, b"x"))


def test_second_response_raises(make: Make) -> None:
    protocol = make()
    protocol.receive_data(GET)
    protocol.send(Response(1, 200, []))
    with pytest.raises(LocalProtocolError, match="Response was already sent"):
        protocol.send(Response(1, 200, []))
    with pytest.raises(LocalProtocolError, match="already sent"):
        protocol.send(InformationalResponse(1, 103, []))


def test_wrong_stream_id_raises(make: Make) -> None:
    protocol = make()
    protocol.receive_data(GET)
    with pytest.raises(LocalProtocolError, match=r"stream 2: .*current request is stream 1"):
        protocol.send(Response(2, 200, []))


def test_send_after_a_closing_response_raises(make: Make) -> None:
    protocol = make()
    protocol.receive_data(b"GET / HTTP/1.0\r\n\r\n")
    respond(protocol, 1)
    with pytest.raises(LocalProtocolError, match="must close"):
        protocol.send(Body(1, b"x"))


def test_more_body_than_content_length_raises(make: Make) -> None:
    protocol = make()
    protocol.receive_data(GET)
    protocol.send(Response(1, 200, [(b"content-length", b"2")]))
    with pytest.raises(LocalProtocolError, match="exceeds"):
        protocol.send(Body(1, b"abc"))


def test_less_body_than_content_length_raises_and_closes(make: Make) -> None:
    protocol = make()
    protocol.receive_data(GET)
    protocol.send(Response(1, 200, [(b"content-length", b"2")]))
    protocol.send(Body(1, b"a"))
    with pytest.raises(LocalProtocolError, match="unsent"):
        protocol.send(EndBody(1))
    assert protocol.should_close


@pytest.mark.parametrize(
    "header",
    [
        (b"x-injected", b"a\r\nset-cookie: evil"),
        (b"x", b"a\nb"),
        (b"x", b"\x00"),
        (b"bad name", b"x"),
        (b"content-length", b"-1"),
        (b"transfer-encoding", b"gzip"),
    ],
)
def test_invalid_response_headers_raise(make: Make, header: tuple[bytes, bytes]) -> None:
    protocol = make()
    protocol.receive_data(GET)
    with pytest.raises(LocalProtocolError):
        protocol.send(Response(1, 200, [header]))
    assert protocol.data_to_send() == b""


def test_final_response_with_1xx_status_raises(make: Make) -> None:
    protocol = make()
    protocol.receive_data(GET)
    with pytest.raises(LocalProtocolError, match="not a final status"):
        protocol.send(Response(1, 103, []))
    with pytest.raises(LocalProtocolError, match="101"):
        protocol.send(InformationalResponse(1, 101, []))


def test_decline_or_accept_without_a_pending_upgrade_raises(make: Make) -> None:
    protocol = make()
    with pytest.raises(LocalProtocolError):
        protocol.decline_upgrade()
    with pytest.raises(LocalProtocolError):
        protocol.accept_upgrade([])


def test_app_chunked_header_is_dropped_for_http10_and_the_body_close_delimited(make: Make) -> None:
    protocol = make()
    protocol.receive_data(b"GET / HTTP/1.0\r\n\r\n")
    out = respond(protocol, 1, headers=[(b"transfer-encoding", b"chunked")], body=b"abc")
    assert_response(protocol, out, b"HTTP/1.1 200 OK\r\nconnection: close\r\n\r\nabc")
    assert protocol.should_close


def test_oversized_trailer_section_answers_431(make: Make) -> None:
    _, error = chunked_error(make, b"0\r\nX: " + b"v" * 200 + b"\r\n", max_head_size=100)
    assert error.status == 431


def test_malformed_trailer_field_answers_400(make: Make) -> None:
    _, error = chunked_error(make, b"0\r\nno colon here\r\n\r\n")
    assert error.status == 400


def test_stream_ids_number_the_requests_on_the_connection(make: Make) -> None:
    protocol = make()
    assert protocol.stream_id == 0
    for expected in (1, 2, 3):
        request = protocol.receive_data(GET)[0]
        assert isinstance(request, Request) and request.stream_id == expected
        assert protocol.stream_id == expected
        respond(protocol, expected)


def test_error_response_to_head_has_no_body(make: Make) -> None:
    protocol = make()
    protocol.receive_data(b"HEAD / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n")
    out = protocol.data_to_send()
    assert out.startswith(b"HTTP/1.1 400")
    assert out.endswith(b"\r\n\r\n")  # the head only: RFC 9110 9.3.2


# --- body bytes the server writes itself (os.sendfile for http.response.pathsend) ----------


def test_body_sent_elsewhere_counts_toward_content_length_and_keeps_alive() -> None:
    protocol = HTTP11Protocol()
    protocol.receive_data(GET)
    protocol.send(Response(1, 200, LENGTH_13))
    assert protocol.body_sendable_elsewhere(1) == 0  # the head is still queued
    head = protocol.data_to_send()
    assert head.endswith(b"content-length: 13\r\n\r\n")
    assert protocol.body_sendable_elsewhere(1) == 13
    protocol.body_sent_elsewhere(1, 8)
    assert protocol.body_sendable_elsewhere(1) == 5
    protocol.send(Body(1, b"rest!"))  # the rest may still come as Body events
    assert protocol.body_sendable_elsewhere(1) == 0
    protocol.send(EndBody(1))
    assert protocol.data_to_send() == b"rest!"
    assert protocol.keep_alive and not protocol.should_close
    assert protocol.receive_data(GET)[1] == EndBody(2)  # the next request is read


def test_body_sent_elsewhere_beyond_content_length_is_a_local_error() -> None:
    protocol = HTTP11Protocol()
    protocol.receive_data(GET)
    protocol.send(Response(1, 200, LENGTH_13))
    protocol.data_to_send()
    with pytest.raises(LocalProtocolError, match="14 body bytes sent elsewhere"):
        protocol.body_sent_elsewhere(1, 14)
    assert not protocol.keep_alive


def test_end_body_after_too_few_bytes_sent_elsewhere_is_a_local_error() -> None:
    protocol = HTTP11Protocol()
    protocol.receive_data(GET)
    protocol.send(Response(1, 200, LENGTH_13))
    protocol.data_to_send()
    protocol.body_sent_elsewhere(1, 12)
    with pytest.raises(LocalProtocolError, match="1 bytes of the response's content-length"):
        protocol.send(EndBody(1))
    assert protocol.should_close


@pytest.mark.parametrize(
    ("request_bytes", "headers"),
    [
        (GET, []),  # chunked
        (b"HEAD / HTTP/1.1\r\nHost: a\r\n\r\n", LENGTH_13),  # no body goes out
        (b"GET / HTTP/1.0\r\n\r\n", []),  # close-delimited
    ],
    ids=["chunked", "head", "http10-close-delimited"],
)
def test_only_a_content_length_body_may_be_sent_elsewhere(
    request_bytes: bytes, headers: Headers
) -> None:
    protocol = HTTP11Protocol()
    protocol.receive_data(request_bytes)
    assert protocol.body_sendable_elsewhere(1) == 0  # no response yet
    protocol.send(Response(1, 200, headers))
    protocol.data_to_send()
    assert protocol.body_sendable_elsewhere(1) == 0
    assert protocol.body_sendable_elsewhere(2) == 0
    with pytest.raises(LocalProtocolError):
        protocol.body_sent_elsewhere(1, 1)


def test_h11_never_lets_the_body_bypass_its_writer() -> None:
    protocol = H11Protocol()
    protocol.receive_data(GET)
    protocol.send(Response(1, 200, LENGTH_13))
    protocol.data_to_send()
    assert protocol.body_sendable_elsewhere(1) == 0


def test_send_response_writes_what_sending_a_response_event_writes(make: Make) -> None:
    """``send_response`` (the server's path, no event object) is ``send(Response(...))``."""
    with_event, without = make(), make()
    for protocol in (with_event, without):
        protocol.receive_data(GET)
    with_event.send(Response(1, 200, LENGTH_13))
    without.send_response(1, 200, LENGTH_13)
    expected = with_event.data_to_send()
    assert expected.startswith(b"HTTP/1.1 200 ")
    assert without.data_to_send() == expected


def test_send_response_refuses_what_send_refuses(make: Make) -> None:
    """A head for a stream that is not current, or a second head, names the same fault."""
    for stream_id in (2, 1):
        with_event, without = make(), make()
        for protocol in (with_event, without):
            protocol.receive_data(GET)
            if stream_id == 1:
                protocol.send(Response(1, 200, LENGTH_13))
        with pytest.raises(LocalProtocolError) as by_event:
            with_event.send(Response(stream_id, 200, LENGTH_13))
        with pytest.raises(LocalProtocolError) as by_call:
            without.send_response(stream_id, 200, LENGTH_13)
        assert str(by_call.value) == str(by_event.value)
