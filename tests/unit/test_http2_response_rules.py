"""HTTP/2 rules on what goes out and how much comes in: connection-specific response fields
dropped (RFC 9113 8.2.2), sensitive fields never indexed (RFC 7541 7.1.3), and
``max_request_body_size`` (413, or a reset once the response started)."""

from __future__ import annotations

import logging

import h2.events as h2e
import pytest
from h2.errors import ErrorCodes
from hpack import Decoder
from hpack.hpack import decode_integer

from tests.unit.test_http2 import GET, WEBSOCKET_CONNECT, Pair, frame, of, post, rst_codes
from tricorn.protocols.events import (
    Body,
    EndBody,
    InformationalResponse,
    ProtocolError,
    PushPromise,
    Request,
    Response,
    StreamReset,
    Trailers,
)

HEADERS_FRAME = 0x1
PUSH_PROMISE_FRAME = 0x5
WINDOW_UPDATE_FRAME = 0x8


# --- reading HPACK representations (RFC 7541 6) --------------------------------------------


def _skip_string(block: bytes, pos: int) -> int:
    length, used = decode_integer(block[pos:], 7)
    return pos + used + length


def representations(block: bytes) -> list[str]:
    """The kind of each field representation of a header block, in order: ``indexed``,
    ``incremental``, ``without`` (without indexing) or ``never`` (never indexed); dynamic
    table size updates are left out."""
    kinds = []
    pos = 0
    while pos < len(block):
        first = block[pos]
        if first & 0x80:
            kinds.append("indexed")
            pos += decode_integer(block[pos:], 7)[1]
            continue
        if first & 0xE0 == 0x20:  # dynamic table size update
            pos += decode_integer(block[pos:], 5)[1]
            continue
        if first & 0xC0 == 0x40:
            kind, prefix = "incremental", 6
        elif first & 0xF0 == 0x10:
            kind, prefix = "never", 4
        else:
            kind, prefix = "without", 4
        index, used = decode_integer(block[pos:], prefix)
        pos += used
        if index == 0:
            pos = _skip_string(block, pos)  # a literal name
        pos = _skip_string(block, pos)
        kinds.append(kind)
    return kinds


class BlockReader:
    """Decodes the server's header blocks in order (keeping a table in step with the
    server's encoder) and names the representation of each field."""

    def __init__(self) -> None:
        self.decoder = Decoder()

    def fields(self, block: bytes) -> list[tuple[bytes, bytes, str]]:
        decoded = list(self.decoder.decode(block, raw=True))
        kinds = representations(block)
        assert len(kinds) == len(decoded)
        return [(bytes(n), bytes(v), kind) for (n, v), kind in zip(decoded, kinds, strict=True)]

    def from_frames(
        self, frames: list[tuple[int, int, int, bytes]]
    ) -> list[list[tuple[bytes, bytes, str]]]:
        """Every HEADERS/PUSH_PROMISE block (one frame each, no padding or priority here)."""
        blocks = []
        for frame_type, _, _, payload in frames:
            if frame_type == HEADERS_FRAME:
                blocks.append(self.fields(payload))
            elif frame_type == PUSH_PROMISE_FRAME:
                blocks.append(self.fields(payload[4:]))
        return blocks


SENSITIVE = [
    (b"set-cookie", b"a=1"),  # a short one too: the easiest to guess
    (b"Set-Cookie", b"session=" + b"x" * 40 + b"; HttpOnly; Secure"),
    (b"authorization", b"Bearer abc"),
    (b"cookie", b"c=3"),
    (b"proxy-authorization", b"Basic eA=="),
]


def test_sensitive_response_fields_are_never_indexed_every_time() -> None:
    pair = Pair()
    reader = BlockReader()
    for _ in range(2):  # the second time from the caches: still never indexed
        stream_id, _ = pair.request(GET)
        pair.server.send_response(
            stream_id, 200, [*SENSITIVE, (b"x-plain", b"yes")], end_stream=True
        )
        (block,) = reader.from_frames(pair.server_frames())
        kinds = {(name, value): kind for name, value, kind in block}
        for name, value in SENSITIVE:
            assert kinds[(name.lower(), value)] == "never", (name, value)
        assert kinds[(b"x-plain", b"yes")] != "never"
    # Nothing sensitive entered the dynamic table (only x-plain did).
    assert [name for name, _ in reader.decoder.header_table.dynamic_entries] == [b"x-plain"]


def test_sensitive_fields_in_trailers_and_1xx_are_never_indexed() -> None:
    pair = Pair()
    reader = BlockReader()
    stream_id, _ = pair.request(GET)
    pair.server.send(InformationalResponse(stream_id, 103, [(b"set-cookie", b"early=1")]))
    pair.server.send_response(stream_id, 200, [(b"trailer", b"set-cookie")])
    pair.server.send(Body(stream_id, b"x"))
    pair.server.send(Trailers(stream_id, [(b"set-cookie", b"t=1")]))
    blocks = reader.from_frames(pair.server_frames())
    kinds = {(name, value): kind for block in blocks for name, value, kind in block}
    assert kinds[(b"set-cookie", b"early=1")] == "never"
    assert kinds[(b"set-cookie", b"t=1")] == "never"


def test_a_pushed_request_carries_its_cookie_never_indexed() -> None:
    pair = Pair()
    reader = BlockReader()
    stream_id, _ = pair.request(GET)
    pushed = pair.server.push(PushPromise(stream_id, b"/a.css", [(b"cookie", b"p=1")]))
    assert pushed is not None
    (block,) = reader.from_frames(pair.server_frames())
    assert (b"cookie", b"p=1", "never") in block


# --- connection-specific response fields (RFC 9113 8.2.2) ------------------------------------

CONNECTION_FIELDS = [
    (b"Connection", b"close"),
    (b"keep-alive", b"timeout=5"),
    (b"proxy-connection", b"keep-alive"),
    (b"transfer-encoding", b"chunked"),
    (b"upgrade", b"h2c"),
    (b"te", b"trailers"),
    (b"TE", b"gzip"),
]


@pytest.mark.parametrize("field", CONNECTION_FIELDS, ids=[n.decode() for n, _ in CONNECTION_FIELDS])
def test_each_connection_specific_field_is_dropped_from_every_block(
    field: tuple[bytes, bytes], caplog: pytest.LogCaptureFixture
) -> None:
    pair = Pair()
    stream_id, _ = pair.request([*GET, (b"te", b"trailers")])
    with caplog.at_level(logging.DEBUG):
        pair.server.send_response(stream_id, 200, [field, (b"x-a", b"1")])
        pair.server.send(Body(stream_id, b"x"))
        pair.server.send(Trailers(stream_id, [field, (b"x-sum", b"1")]))
    got = pair.to_client()
    assert of(got, h2e.ResponseReceived)[0].headers == [(b":status", b"200"), (b"x-a", b"1")]
    assert of(got, h2e.TrailersReceived)[0].headers == [(b"x-sum", b"1")]
    name = field[0].lower().decode()
    assert f"connection-specific response header '{name}' dropped" in caplog.text


def test_connection_specific_fields_are_dropped_from_1xx_and_push() -> None:
    pair = Pair()
    stream_id, _ = pair.request(GET)
    pair.server.send(
        InformationalResponse(stream_id, 103, [(b"te", b"trailers"), (b"link", b"</a>")])
    )
    pushed = pair.server.push(PushPromise(stream_id, b"/a", [(b"connection", b"x"), (b"te", b"y")]))
    assert pushed is not None
    got = pair.to_client()
    assert of(got, h2e.InformationalResponseReceived)[0].headers == [
        (b":status", b"103"),
        (b"link", b"</a>"),
    ]
    promised = of(got, h2e.PushedStreamReceived)[0].headers
    assert not [name for name, _ in promised if name in (b"te", b"connection")]


# --- max_request_body_size --------------------------------------------------------------------


def test_content_length_over_the_limit_is_answered_413_before_any_request_event() -> None:
    pair = Pair(max_request_body_size=100)
    stream_id, events = pair.request(post(b"/", (b"content-length", b"101")), end_stream=False)
    assert not of(events, Request)
    (error,) = of(events, ProtocolError)
    assert (error.stream_id, error.status, error.method, error.target) == (
        stream_id,
        413,
        b"POST",
        b"/",
    )
    got = pair.to_client()
    response = of(got, h2e.ResponseReceived)[0]
    assert dict(response.headers)[b":status"] == b"413"
    assert of(got, h2e.StreamEnded)
    # The body the client still sends is read and discarded (no reset: some clients lose a
    # response that a reset follows mid-upload); the connection carries on.
    pair.client.send_data(stream_id, b"x" * 101, end_stream=True)
    assert pair.to_server() == []
    assert not rst_codes(pair.server_frames())
    _, events = pair.request(GET)
    assert of(events, Request)


def test_content_length_at_the_limit_passes() -> None:
    pair = Pair(max_request_body_size=100)
    _, events = pair.request(post(b"/", (b"content-length", b"100")), b"x" * 100)
    assert [type(e) for e in events] == [Request, Body, EndBody]


def test_without_discarding_the_413_is_followed_by_a_no_error_reset() -> None:
    pair = Pair(max_request_body_size=100, discard_body_limit=0)
    stream_id, _ = pair.request(post(b"/", (b"content-length", b"200")), end_stream=False)
    frames = pair.server_frames()
    assert rst_codes(frames) == {stream_id: ErrorCodes.NO_ERROR}


def test_a_body_growing_past_the_limit_is_answered_413_and_the_stream_ends() -> None:
    pair = Pair(max_request_body_size=100)
    stream_id, events = pair.request(post(), end_stream=False)
    assert of(events, Request)
    events = pair.raw(frame(0, 0, stream_id, b"x" * 60))
    assert events == [Body(stream_id, b"x" * 60)]
    events = pair.raw(frame(0, 0, stream_id, b"y" * 41))
    (error,) = events
    assert isinstance(error, ProtocolError) and error.status == 413
    assert error.stream_id == stream_id
    frames = pair.server_frames()
    assert not rst_codes(frames)
    heads = BlockReader().from_frames(frames)
    assert [(n, v) for n, v, _ in heads[0]] == [(b":status", b"413")]
    # The stream window reopens by what the client sent (101 bytes), so that the rest of
    # the body can arrive and be discarded.
    updates = [p for t, _, sid, p in frames if t == WINDOW_UPDATE_FRAME and sid == stream_id]
    assert sum(int.from_bytes(p, "big") for p in updates) == 101
    # What the app sends next is dropped: the request was answered.
    pair.server.send_response(stream_id, 200, [], end_stream=True)
    assert not pair.server_frames()
    assert pair.raw(frame(0, 1, stream_id, b"z" * 10)) == []
    _, events = pair.request(GET)
    assert of(events, Request)


def test_a_body_growing_past_the_limit_after_the_response_started_resets_with_cancel() -> None:
    pair = Pair(max_request_body_size=100)
    stream_id, _ = pair.request(post(), end_stream=False)
    pair.server.send_response(stream_id, 200, [])
    pair.server.send_data(stream_id, b"partial")
    pair.server.data_to_send()
    events = pair.raw(frame(0, 0, stream_id, b"x" * 101))
    assert of(events, ProtocolError)[0].status is None
    assert of(events, ProtocolError)[0].error_code == ErrorCodes.CANCEL
    assert StreamReset(stream_id, ErrorCodes.CANCEL) in events
    frames = pair.server_frames()
    assert rst_codes(frames) == {stream_id: ErrorCodes.CANCEL}
    assert any(t == WINDOW_UPDATE_FRAME and sid == 0 for t, _, sid, _ in frames)


def test_the_limit_is_off_at_zero_and_never_applies_to_a_tunnel() -> None:
    pair = Pair()
    _, events = pair.request(post(), b"x" * 16000)
    assert sum(len(e.data) for e in of(events, Body)) == 16000
    pair = Pair(max_request_body_size=10, enable_connect_protocol=True)
    stream_id = pair.client.get_next_available_stream_id()
    pair.client.send_headers(stream_id, WEBSOCKET_CONNECT)
    pair.client.send_data(stream_id, b"w" * 100)
    events = pair.to_server()
    assert of(events, Request) and of(events, Body)[0].data == b"w" * 100
    assert not of(events, ProtocolError)


def test_response_event_after_a_413_is_dropped_quietly() -> None:
    pair = Pair(max_request_body_size=5)
    stream_id, _ = pair.request(post(), end_stream=False)
    pair.raw(frame(0, 0, stream_id, b"x" * 6))
    pair.server.send(Response(stream_id, 200, []))
    pair.server.send(EndBody(stream_id))
    frames = pair.server_frames()
    assert [t for t, *_ in frames if t == HEADERS_FRAME] == [HEADERS_FRAME]  # the 413 only
