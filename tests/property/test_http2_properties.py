"""HTTP/2 invariants as Hypothesis properties: the server connection (HTTP2Protocol) fed
conversations h2 writes as a client, raw frame sequences (stream states, flow control,
SETTINGS) and HPACK blocks hpack encodes, each possibly damaged.

The oracles are fuzz/harness.py's: ``check_http2`` drives the connection answering as it
reads (once) and answering after the reads (over every chunking, which must not matter).
"""

from __future__ import annotations

import base64
import struct

import h2.events
from hypothesis import given
from hypothesis import strategies as st

from fuzz import harness
from tests.property.strategies import (
    Conversation,
    h2_client,
    h2_conversation,
    h2_inputs,
    hpack_inputs,
    raw_frames,
)
from tricorn.protocols.events import Body, EndBody, ProtocolError, Request, Response, Trailers
from tricorn.protocols.http2 import HTTP2Protocol

PREAMBLE = harness.PREFACE + harness.CLIENT_SETTINGS


@given(data=h2_inputs())
def test_http2_no_exception_escapes_and_each_error_goes_on_the_wire(data: bytes) -> None:
    """No exception, no "internal error"; each ProtocolError's code is in a GOAWAY or an
    RST_STREAM written (asserted by drive_http2), the server answering as it reads."""
    option, payload = harness.split_input(data)
    settings = harness.http2_settings(option)
    harness.drive_http2([PREAMBLE + payload], settings, answer_now=True)
    half = len(payload) // 2
    harness.drive_http2([PREAMBLE + payload[:half], payload[half:]], settings, answer_now=True)


@given(data=h2_inputs(), cut=st.integers(0, 100_000))
def test_http2_any_chunking_gives_the_same_events(data: bytes, cut: int) -> None:
    option, payload = harness.split_input(data)
    settings = harness.http2_settings(option)
    stream = PREAMBLE + payload
    whole = harness.drive_http2([stream], settings)
    position = cut % (len(stream) + 1)
    split = [piece for piece in (stream[:position], stream[position:]) if piece]
    assert harness.drive_http2(split, settings).key() == whole.key()
    if len(stream) <= 600:
        bytewise = [stream[i : i + 1] for i in range(len(stream))]
        assert harness.drive_http2(bytewise, settings).key() == whole.key()


@given(conversation=h2_conversation(valid_headers=True))
def test_http2_split_at_every_position_gives_the_same_events(
    conversation: Conversation,
) -> None:
    stream = PREAMBLE + conversation.data
    whole = harness.drive_http2([stream], {})
    for position in range(1, len(stream), max(1, len(stream) // 40)):
        pieces = [stream[:position], stream[position:]]
        assert harness.drive_http2(pieces, {}).key() == whole.key(), position


@given(data=h2_inputs())
def test_http2_work_and_memory_stay_bounded(data: bytes) -> None:
    """Output under OUTPUT_FACTOR per input byte (+1 KiB), held input under the header
    block limit (asserted by drive_http2); the request bodies held for the apps within the
    windows we advertised."""
    option, payload = harness.split_input(data)
    settings = harness.http2_settings(option)
    protocol = HTTP2Protocol(clock=lambda: 0.0, **settings)
    protocol.initiate()
    protocol.receive_data(PREAMBLE + payload)
    assert protocol.buffered_request_bytes <= protocol._connection_window_size
    harness.drive_http2([PREAMBLE + payload], settings, answer_now=True)


@given(conversation=h2_conversation(valid_headers=True))
def test_http2_a_complete_request_never_waits_for_more_bytes(conversation: Conversation) -> None:
    """Every request whose head and body h2 sent in full is reported, body and end,
    before the peer closes."""
    protocol = HTTP2Protocol(clock=lambda: 0.0)
    protocol.initiate()
    events = protocol.receive_data(PREAMBLE + conversation.data)
    ended = {event.stream_id for event in events if isinstance(event, EndBody)}
    ended |= {
        event.stream_id for event in events if isinstance(event, Request) and not event.expects_body
    }
    ended |= {event.stream_id for event in events if isinstance(event, Trailers)}
    assert set(conversation.complete) <= ended, (conversation.complete, events)
    bodies: dict[int, bytes] = {}
    for event in events:
        if isinstance(event, Body):
            bodies[event.stream_id] = bodies.get(event.stream_id, b"") + event.data
    for stream_id in conversation.complete:
        assert bodies.get(stream_id, b"") == conversation.bodies[stream_id]


@given(data=hpack_inputs())
def test_http2_hpack_blocks_are_decoded_or_refused_never_crash(data: bytes) -> None:
    """HPACK blocks hpack encodes (any header list, Huffman or not, never-indexed), mutated:
    the connection oracle, and what reaches the app was in the block (check_hpack_block)."""
    harness.check_hpack_block(data)


@given(data=st.binary(max_size=60), option=st.integers(0, 255))
def test_http2_hpack_random_blocks_never_crash(data: bytes, option: int) -> None:
    harness.check_hpack_block(bytes([option]) + data)


@given(frames=raw_frames(), option=st.integers(0, 255))
def test_http2_settings_flow_control_and_stream_state_sequences(frames: bytes, option: int) -> None:
    """Frames of every type on a few streams with drawn flags: SETTINGS with values at and
    past their ranges, WINDOW_UPDATE 0 and overflowing, DATA past the windows, HEADERS and
    RST_STREAM on idle, open and closed streams, CONTINUATION out of place."""
    harness.check_http2(bytes([option]) + frames)


@given(
    uploads=st.lists(st.binary(max_size=2000), min_size=1, max_size=4),
    status=st.sampled_from([200, 204, 301, 404, 500]),
    fields=st.lists(
        st.tuples(
            st.sampled_from([b"x-a", b"content-type", b"set-cookie"]),
            st.sampled_from([b"1", b"text/plain", b"a=b"]),
        ),
        max_size=3,
    ),
    body=st.binary(max_size=3000),
    trailers=st.booleans(),
)
def test_http2_round_trip_h2_client_reads_back_our_responses(
    uploads: list[bytes],
    status: int,
    fields: list[tuple[bytes, bytes]],
    body: bytes,
    trailers: bool,
) -> None:
    """h2 as the client sends requests (with bodies); it parses back what our server
    answers: the same status, fields, body and trailers, then each stream's end."""
    client = h2_client()
    for index, upload in enumerate(uploads):
        stream_id = 2 * index + 1
        method = b"POST" if upload else b"GET"
        client.send_headers(
            stream_id,
            [(b":method", method), (b":path", b"/"), (b":scheme", b"https"), (b":authority", b"a")],
            end_stream=not upload,
        )
        if upload:
            client.send_data(stream_id, upload, end_stream=True)
    server = HTTP2Protocol(clock=lambda: 0.0)
    server.initiate()
    events = server.receive_data(PREAMBLE + client.data_to_send())
    uploaded: dict[int, bytes] = {}
    for event in events:
        if isinstance(event, Body):
            uploaded[event.stream_id] = uploaded.get(event.stream_id, b"") + event.data
    done = [event.stream_id for event in events if isinstance(event, EndBody)]
    done += [e.stream_id for e in events if isinstance(e, Request) and not e.expects_body]
    assert sorted(done) == [2 * index + 1 for index in range(len(uploads))]
    assert all(uploaded.get(2 * i + 1, b"") == upload for i, upload in enumerate(uploads))
    content = b"" if status == 204 else body
    for stream_id in done:
        server.send(Response(stream_id, status, fields))
        if content:
            assert server.sendable(stream_id) >= len(content)
            server.send(Body(stream_id, content))
        if trailers:
            server.send(Trailers(stream_id, [(b"x-checksum", b"1")]))
        else:
            server.send(EndBody(stream_id))
    answers: list[h2.events.Event] = client.receive_data(server.data_to_send())
    heads: dict[int, list[list[tuple[bytes, bytes]]]] = {}
    data: dict[int, bytes] = {}
    ended = set()
    for answer in answers:
        if isinstance(answer, h2.events.ResponseReceived | h2.events.TrailersReceived):
            heads.setdefault(answer.stream_id, []).append(
                [(bytes(n), bytes(v)) for n, v in answer.headers]
            )
        elif isinstance(answer, h2.events.DataReceived):
            data[answer.stream_id] = data.get(answer.stream_id, b"") + answer.data
        elif isinstance(answer, h2.events.StreamEnded):
            ended.add(answer.stream_id)
    for stream_id in done:
        head = heads[stream_id][0]
        assert head[0] == (b":status", b"%d" % status)
        assert [field for field in head if field in fields] == fields
        assert data.get(stream_id, b"") == content
        if trailers:
            assert heads[stream_id][1] == [(b"x-checksum", b"1")]
        assert stream_id in ended


@given(
    header=st.one_of(
        st.binary(max_size=40),
        st.lists(st.tuples(st.integers(0, 12), st.integers(0, 2**32 - 1)), max_size=4).map(
            lambda pairs: base64.urlsafe_b64encode(
                b"".join(struct.pack(">HL", ident, value) for ident, value in pairs)
            ).rstrip(b"=")
        ),
    )
)
def test_http2_h2c_settings_header_is_taken_or_refused_never_crashes(header: bytes) -> None:
    """``Upgrade: h2c``'s HTTP2-Settings value (base64url SETTINGS payload, any values):
    stream 1's Request, or a ProtocolError with its GOAWAY and ConnectionClosed."""
    request = Request(1, b"GET", b"/", [(b"host", b"a")], "1.1", expects_body=False)
    protocol = HTTP2Protocol(clock=lambda: 0.0)
    events = protocol.initiate_upgrade(header, request)
    if isinstance(events[0], Request):
        assert events[0].stream_id == 1 and events[0].http_version == "2"
        harness.parse_frames(protocol.data_to_send())
        return
    error = events[0]
    assert isinstance(error, ProtocolError) and error.error_code, events
    frames = harness.parse_frames(protocol.data_to_send())
    assert frames[-1][0] == harness.GOAWAY
    assert struct.unpack(">L", frames[-1][3][4:8])[0] == error.error_code
