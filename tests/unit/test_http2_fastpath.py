"""The frames of a plain request that bypass h2's per-frame code (``HTTP2Protocol._open_stream``,
``_send_block``, ``send_data``) leave h2's state as h2 itself would, and what goes on the wire
is what an h2 client reads back; repeated heads (the memories of ``_build_request``,
``_outbound_headers`` and ``http2_hpack``) give the same answers as new ones."""

from __future__ import annotations

import h2.events as h2e
from h2.errors import ErrorCodes
from h2.stream import StreamState
from hpack import Encoder

from tests.unit.test_http2 import GET, Pair, frame, goaway_code, of, post
from tricorn.protocols.events import Body, EndBody, ProtocolError, Request, Response, StreamReset


def _answer(pair: Pair, stream_id: int, headers: list[tuple[bytes, bytes]], body: bytes) -> None:
    pair.server.send(Response(stream_id, 200, headers))
    pair.server.send(Body(stream_id, body))
    pair.server.send(EndBody(stream_id))


def test_many_requests_on_one_connection_keep_h2s_stream_table_bounded() -> None:
    pair = Pair()
    for _ in range(40):  # 40 batches of 25 concurrent streams, as a load tool sends them
        ids = [pair.client.get_next_available_stream_id() + 2 * i for i in range(25)]
        for stream_id in ids:
            pair.client.send_headers(stream_id, GET, end_stream=True)
        requests = of(pair.to_server(), Request)
        assert [request.stream_id for request in requests] == ids
        for stream_id in ids:
            _answer(pair, stream_id, [(b"content-type", b"text/plain")], b"hello")
        got = pair.to_client()
        assert len(of(got, h2e.StreamEnded)) == 25
        assert len(pair.server._h2.streams) <= 128
    # h2's view: every stream it still holds is closed, none of ours is open
    assert all(
        s.state_machine.state == StreamState.CLOSED for s in pair.server._h2.streams.values()
    )
    assert pair.server.active_streams == 0
    assert pair.server._h2.highest_inbound_stream_id == ids[-1]


def test_repeated_heads_are_served_like_new_ones() -> None:
    pair = Pair()
    headers = [(b"content-type", b"text/plain"), (b"x-id", b"1")]
    seen = []
    for _ in range(5):
        stream_id, events = pair.request([*GET, (b"user-agent", b"load")])
        (request,) = of(events, Request)
        seen.append(list(request.headers))
        request.headers.append((b"x-app", b"mutated"))  # the app's list is its own
        _answer(pair, stream_id, headers, b"hi")
        got = pair.to_client()
        (response,) = of(got, h2e.ResponseReceived)
        assert response.headers == [(b":status", b"200"), *headers]
        assert of(got, h2e.DataReceived)[0].data == b"hi"
    assert all(h == [(b"host", b"example.com"), (b"user-agent", b"load")] for h in seen)


def test_a_response_head_larger_than_a_frame_goes_out_in_continuation_frames() -> None:
    pair = Pair()
    stream_id, _ = pair.request(GET)
    big = [(f"x-big-{i}".encode(), b"v" * 4000) for i in range(10)]  # > 16 KiB after HPACK
    pair.server.send(Response(stream_id, 200, big))
    pair.server.send(EndBody(stream_id))
    data = pair.server.data_to_send()
    kinds = []
    rest = data
    while rest:
        length = int.from_bytes(rest[:3], "big")
        kinds.append((rest[3], rest[4]))
        rest = rest[9 + length :]
    assert kinds[0] == (1, 0)  # HEADERS without END_HEADERS
    assert kinds[-2] == (9, 4)  # the last CONTINUATION ends the block
    assert kinds[-1] == (0, 1)  # the empty END_STREAM DATA frame
    got = pair.client.receive_data(data)
    (response,) = of(got, h2e.ResponseReceived)
    assert response.headers == [(b":status", b"200"), *big]
    assert of(got, h2e.StreamEnded)


def test_head_with_end_stream_on_the_head_frame() -> None:
    pair = Pair()
    stream_id, _ = pair.request(GET)
    pair.server.send_response(stream_id, 204, [], end_stream=True)
    got = pair.to_client()
    assert of(got, h2e.ResponseReceived)[0].headers == [(b":status", b"204")]
    assert of(got, h2e.StreamEnded)
    assert pair.server.active_streams == 0


def test_outbound_windows_are_kept_as_h2_keeps_them() -> None:
    pair = Pair()
    stream_id, _ = pair.request(GET)
    h2 = pair.server._h2
    before = (h2.outbound_flow_control_window, h2.streams[stream_id].outbound_flow_control_window)
    pair.server.send(Response(stream_id, 200))
    pair.server.send_data(stream_id, b"x" * 40000)
    after = (h2.outbound_flow_control_window, h2.streams[stream_id].outbound_flow_control_window)
    assert after == (before[0] - 40000, before[1] - 40000)
    assert pair.server.sendable(stream_id) == min(after)
    got = pair.to_client()
    assert sum(len(e.data) for e in of(got, h2e.DataReceived)) == 40000


def test_a_request_body_after_a_fast_head_still_arrives() -> None:
    pair = Pair()
    _, events = pair.request(post(), b"payload")
    assert [type(e) for e in events] == [Request, Body, EndBody]
    assert of(events, Body)[0].data == b"payload"


def test_a_priority_flag_still_goes_through_h2() -> None:
    pair = Pair()
    stream_id, events = pair.request(GET, priority_weight=200, priority_depends_on=0)
    (request,) = of(events, Request)
    assert request.stream_id == stream_id
    _answer(pair, stream_id, [], b"ok")
    assert of(pair.to_client(), h2e.StreamEnded)


def test_a_reused_stream_id_is_still_a_connection_error() -> None:
    pair = Pair()
    stream_id, _ = pair.request(GET)
    _answer(pair, stream_id, [], b"ok")
    pair.to_client()
    block = Encoder().encode(GET)
    events = pair.raw(frame(1, 0x5, stream_id, block))
    assert of(events, ProtocolError)
    assert goaway_code(pair.server_frames()) == ErrorCodes.STREAM_CLOSED


def test_an_oversized_header_list_on_a_new_stream_is_enhance_your_calm() -> None:
    pair = Pair(max_header_list_size=1024)
    block = Encoder().encode([*GET, (b"x-huge", b"v" * 3000)])  # over twice the limit
    events = pair.raw(frame(1, 0x5, 1, block))
    assert of(events, ProtocolError)[0].error_code == ErrorCodes.ENHANCE_YOUR_CALM
    assert goaway_code(pair.server_frames()) == ErrorCodes.ENHANCE_YOUR_CALM


def test_a_header_list_between_the_limit_and_twice_it_is_answered_431() -> None:
    pair = Pair(max_header_list_size=1024)
    _, events = pair.request([*GET, (b"x-big", b"v" * 1200)])
    assert of(events, ProtocolError)[0].status == 431
    got = pair.to_client()
    assert of(got, h2e.ResponseReceived)[0].headers == [(b":status", b"431")]
    assert not of(events, StreamReset)


def test_respond_sends_head_and_body_in_one_call_when_the_window_takes_it() -> None:
    pair = Pair()
    stream_id, _ = pair.request(GET)
    assert pair.server.respond(
        stream_id, 200, [(b"content-type", b"text/plain")], b"hi", end_stream=True
    )
    got = pair.to_client()
    (response,) = of(got, h2e.ResponseReceived)
    assert response.headers == [(b":status", b"200"), (b"content-type", b"text/plain")]
    assert of(got, h2e.DataReceived)[0].data == b"hi"
    assert of(got, h2e.StreamEnded)
    assert pair.server.active_streams == 0


def test_respond_queues_nothing_when_the_window_is_too_small() -> None:
    pair = Pair()
    pair.client.update_settings({0x4: 1})  # INITIAL_WINDOW_SIZE: 1 byte per stream
    pair.to_server()
    pair.to_client()
    stream_id, _ = pair.request(GET)
    assert not pair.server.respond(stream_id, 200, [], b"hello", end_stream=True)
    assert pair.server.data_to_send() == b""
    # the general path still works: the head, then what the window allows
    pair.server.send(Response(stream_id, 200, []))
    assert pair.server.sendable(stream_id) == 1
    pair.server.send(Body(stream_id, b"h"))
    got = pair.to_client()
    assert of(got, h2e.ResponseReceived)
    assert of(got, h2e.DataReceived)[0].data == b"h"


def test_respond_refuses_a_stream_that_is_not_open() -> None:
    pair = Pair()
    stream_id, _ = pair.request(GET)
    _answer(pair, stream_id, [], b"done")
    assert not pair.server.respond(stream_id, 200, [], b"again", end_stream=True)
    assert not pair.server.respond(99, 200, [], b"x", end_stream=True)
