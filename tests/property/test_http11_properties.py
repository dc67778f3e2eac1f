"""HTTP/1.1 invariants as Hypothesis properties, on both parsers (ours and the one on h11).

The oracles are fuzz/harness.py's (the atheris targets use the same); the inputs stress
framing: Content-Length and Transfer-Encoding together, length lists and spellings, chunk
extensions, obs-fold, bare CR or LF, duplicate fields, whitespace before the colon, then a
byte-level change. Each property is one invariant of issue 16.
"""

from __future__ import annotations

import h11
import pytest
from hypothesis import given
from hypothesis import strategies as st

from fuzz import harness
from tests.property.strategies import http1_inputs, http1_request
from tricorn.protocols.events import Body, EndBody, Request, Response
from tricorn.protocols.http11 import HTTP11Protocol
from tricorn.protocols.http11_h11 import H11Protocol
from tricorn.protocols.http11_httptools import HTTPToolsProtocol

PARSERS = [HTTP11Protocol, H11Protocol, HTTPToolsProtocol]
parsers = pytest.mark.parametrize("parser", PARSERS, ids=lambda cls: cls.__name__)


@parsers
@given(data=http1_inputs())
def test_http11_no_exception_escapes_and_each_error_is_answered_with_its_status(
    parser: type[harness.HTTP1], data: bytes
) -> None:
    """drive_http1 raises on any exception; a ProtocolError's status must be the status line
    written last, and the connection must end (the answer is complete, nothing follows)."""
    option, payload = harness.split_input(data)
    transcript = harness.drive_http1(parser, [payload], harness.http11_limits(option))
    if transcript.error:
        assert transcript.closed and transcript.error_message
        status_line = b"HTTP/1.1 %d " % transcript.error
        answer = transcript.output[transcript.output.rindex(status_line) :]
        head, _, content = answer.partition(b"\r\n\r\n")
        assert b"\r\ncontent-length: %d\r\n" % len(content) in head.lower() or (
            b"content-length" in head.lower() and not content  # the answer to a HEAD
        ), answer


@parsers
@given(data=http1_inputs(), cut=st.integers(0, 10_000))
def test_http11_any_chunking_gives_the_same_events(
    parser: type[harness.HTTP1], data: bytes, cut: int
) -> None:
    """Whole, split at a drawn position, in fixed pieces, one byte at a time: one transcript."""
    option, payload = harness.split_input(data)
    limits = harness.http11_limits(option)
    whole = harness.drive_http1(parser, [payload], limits)
    position = cut % (len(payload) + 1)
    for chunking in (
        [payload[:position], payload[position:]],
        [payload[i : i + 1] for i in range(len(payload))],
    ):
        pieces = [piece for piece in chunking if piece]
        assert harness.drive_http1(parser, pieces, limits).key() == whole.key(), pieces


@parsers
@given(request=http1_request(hostile=False))
def test_http11_split_at_every_position_gives_the_same_events(
    parser: type[harness.HTTP1], request: bytes
) -> None:
    whole = harness.drive_http1(parser, [request], {})
    for position in range(1, len(request)):
        pieces = [request[:position], request[position:]]
        assert harness.drive_http1(parser, pieces, {}).key() == whole.key(), position


@parsers
@given(data=http1_inputs())
def test_http11_work_and_memory_stay_bounded(parser: type[harness.HTTP1], data: bytes) -> None:
    """Bytes out under OUTPUT_FACTOR per byte in (+1 KiB); buffered never above received;
    events at most one per input byte (+2)."""
    option, payload = harness.split_input(data)
    protocol = parser(**harness.http11_limits(option))  # type: ignore[arg-type]
    events = protocol.receive_data(payload)
    assert protocol.buffered_size <= len(payload)
    assert len(events) <= len(payload) + 2
    out = protocol.data_to_send()
    assert len(out) <= harness.OUTPUT_FACTOR * len(payload) + harness.OUTPUT_CONSTANT
    harness.drive_http1(parser, [payload], harness.http11_limits(option))  # asserts the rest


@parsers
@given(requests=st.lists(http1_request(hostile=False), min_size=1, max_size=4))
def test_http11_a_complete_request_never_waits_for_more_bytes(
    parser: type[harness.HTTP1], requests: list[bytes]
) -> None:
    """Valid pipelined requests: every one is served before the peer closes (up to an
    HTTP/1.0 one, after which the connection closes)."""
    data = b"".join(requests)
    transcript = harness.drive_http1(parser, [data], {})
    served = [item for item in transcript.requests[: transcript.before_eof] if item[0] == "body"]
    http10 = next(
        (index for index, request in enumerate(requests) if b" HTTP/1.0\r\n" in request), None
    )
    expected = len(requests) if http10 is None else http10 + 1  # 1.0 closes (no keep-alive)
    assert len(served) == expected, transcript
    assert transcript.error is None


@given(data=http1_inputs())
def test_http11_parsers_agree_on_where_requests_end_and_on_each_status(data: bytes) -> None:
    harness.check_http1_differential(data)


RESPONSE_FIELDS = st.lists(
    st.tuples(
        st.sampled_from([b"x-a", b"Content-Type", b"set-cookie", b"cache-control"]),
        st.sampled_from([b"1", b"text/plain", b"a=b; Path=/", b""]),
    ),
    max_size=3,
)


@parsers
@given(
    method=st.sampled_from([b"GET", b"POST", b"HEAD"]),
    status=st.sampled_from([200, 201, 204, 301, 304, 404, 500]),
    fields=RESPONSE_FIELDS,
    body=st.lists(st.binary(max_size=50), max_size=3),
    with_length=st.booleans(),
)
def test_http11_round_trip_h11_client_reads_back_our_responses(
    parser: type[harness.HTTP1],
    method: bytes,
    status: int,
    fields: list[tuple[bytes, bytes]],
    body: list[bytes],
    with_length: bool,
) -> None:
    """h11 as the client sends a request; what our side answers, h11 parses back to the
    same status, fields and body (framed by length or chunked, none for HEAD/204/304)."""
    client = h11.Connection(h11.CLIENT)
    request = client.send(h11.Request(method=method, target="/", headers=[("Host", "a")]))
    request += client.send(h11.EndOfMessage())
    server = parser()
    events = server.receive_data(request)
    assert isinstance(events[0], Request)
    assert isinstance(events[-1], EndBody)
    content = b"".join(body)
    no_body = method == b"HEAD" or status in (204, 304)
    headers = list(fields)
    if with_length and not no_body:
        headers.append((b"content-length", b"%d" % len(content)))
    server.send(Response(1, status, headers))
    for piece in body:
        if not no_body:
            server.send(Body(1, piece))
    server.send(EndBody(1))
    client.receive_data(server.data_to_send())
    response = client.next_event()
    assert isinstance(response, h11.Response)
    assert response.status_code == status
    sent = [(name.lower(), value) for name, value in fields]
    got = [(bytes(name), bytes(value)) for name, value in response.headers]
    assert [field for field in got if field in sent] == sent
    received = b""
    while True:
        event = client.next_event()
        if isinstance(event, h11.Data):
            received += bytes(event.data)
        else:
            assert isinstance(event, h11.EndOfMessage), event
            break
    assert received == (b"" if no_body else content)


@parsers
@given(
    upgrade=st.sampled_from(
        [
            b"GET /chat HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
            b"GET / HTTP/1.1\r\nHost: a\r\nUpgrade: h2c\r\nConnection: Upgrade, HTTP2-Settings\r\n"
            b"HTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA\r\n\r\n",
            b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n",
        ]
    ),
    after=st.binary(max_size=64),
    cuts=st.lists(st.integers(0, 300), max_size=4),
)
def test_http11_the_hand_over_to_another_protocol_loses_no_byte(
    parser: type[harness.HTTP1], upgrade: bytes, after: bytes, cuts: list[int]
) -> None:
    """An accepted upgrade or the h2c preface: the bytes the hand-over gives the new
    protocol, then what arrives later, are exactly what followed (the preface included),
    however the input was cut."""
    data = upgrade + after
    positions = sorted({cut % (len(data) + 1) for cut in cuts})
    pieces = [data[a:b] for a, b in zip([0, *positions], [*positions, len(data)], strict=True)]
    transcript = harness.drive_http1(
        parser, [piece for piece in pieces if piece], {}, accept_upgrades=True
    )
    expected = data if upgrade.startswith(b"PRI") else after
    assert transcript.requests[-1] == ("switched", expected)
