"""WebSocket invariants as Hypothesis properties: the server side (WebSocketProtocol) fed
frames wsproto writes as a client (text and binary, fragmented, masked with its random
keys, permessage-deflate with context takeover), hand-made frames and byte damage.

The oracles are fuzz/harness.py's (``check_websocket``, ``drive_websocket``).
"""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st
from wsproto.frame_protocol import Opcode

from fuzz import harness
from tests.property.strategies import WS_MESSAGES, ws_client, ws_frames, ws_inputs, ws_option
from tricorn.protocols.events import ProtocolError
from tricorn.protocols.websocket import (
    CloseReceived,
    DeflateParameters,
    Message,
    WebSocketProtocol,
)


@given(data=ws_inputs())
def test_websocket_no_exception_escapes_and_each_error_carries_its_close_code(
    data: bytes,
) -> None:
    """No exception; a ProtocolError's code is 1002/1007/1008/1009 and the close frame the
    server then writes carries it (asserted by drive_websocket)."""
    option, payload = harness.split_input(data)
    harness.drive_websocket([payload], harness.websocket_options(option))


@given(data=ws_inputs(), cut=st.integers(0, 100_000))
def test_websocket_any_chunking_gives_the_same_events(data: bytes, cut: int) -> None:
    option, payload = harness.split_input(data)
    options = harness.websocket_options(option)
    whole = harness.drive_websocket([payload], options)
    position = cut % (len(payload) + 1)
    split = [piece for piece in (payload[:position], payload[position:]) if piece]
    bytewise = [payload[i : i + 1] for i in range(len(payload))]
    for pieces in (split, bytewise):
        events, output = harness.drive_websocket(pieces, options)
        assert events == whole[0]
        assert harness._without_close_reason(output) == harness._without_close_reason(whole[1])


@given(frames=ws_frames(deflate=True))
def test_websocket_split_at_every_position_gives_the_same_events(
    frames: tuple[bytes, list[str | bytes]],
) -> None:
    data, _ = frames
    options = harness.websocket_options(ws_option(True))
    whole = harness.drive_websocket([data], options)
    for position in range(1, len(data), max(1, len(data) // 60)):
        assert harness.drive_websocket([data[:position], data[position:]], options) == whole


@given(data=ws_inputs())
def test_websocket_work_and_memory_stay_bounded(data: bytes) -> None:
    """Queued output under OUTPUT_FACTOR per input byte (+1 KiB; pongs are capped), no
    message over max_message_size (also after inflating), events at most one per byte."""
    option, payload = harness.split_input(data)
    options = harness.websocket_options(option)
    protocol = WebSocketProtocol(**options)
    events = protocol.receive_data(payload)
    assert len(events) <= len(payload) + 1
    assert protocol.pending_output_size <= harness.OUTPUT_FACTOR * len(payload) + 1024
    for event in events:
        if isinstance(event, Message):
            data_ = event.data
            size = len(data_.encode() if isinstance(data_, str) else data_)
            assert size <= options["max_message_size"]
    harness.check_websocket(data)


@given(deflate=st.booleans(), frames=st.data())
def test_websocket_a_complete_message_never_waits_for_more_bytes(
    deflate: bool, frames: st.DataObject
) -> None:
    """Every message wsproto sent in full (fragmented, masked, compressed or not) arrives,
    intact and in order, before the transport ends."""
    data, messages = frames.draw(ws_frames(deflate=deflate))
    protocol = WebSocketProtocol(
        deflate=DeflateParameters(client_max_window_bits=15) if deflate else None
    )
    events = protocol.receive_data(data)
    received = [event.data for event in events if isinstance(event, Message)]
    assert received == messages
    assert not [event for event in events if isinstance(event, ProtocolError)]


@given(
    messages=WS_MESSAGES,
    deflate=st.booleans(),
    no_context_takeover=st.booleans(),
    level=st.sampled_from([-1, 0, 1, 9]),
    close=st.sampled_from([None, 1000, 1001, 3000, 4999]),
    reason=st.text(max_size=130),
)
def test_websocket_round_trip_wsproto_client_reads_back_our_frames(
    messages: list[str | bytes],
    deflate: bool,
    no_context_takeover: bool,
    level: int,
    close: int | None,
    reason: str,
) -> None:
    """What the server side writes (messages, compressed or not; a close with a code and a
    reason cut at 123 bytes of UTF-8), wsproto as the client parses back the same."""
    parameters = None
    if deflate:
        parameters = DeflateParameters(server_no_context_takeover=no_context_takeover)
    server = WebSocketProtocol(deflate=parameters, compression_level=level)
    for message in messages:
        server.send_message(message)
    server.close(close, reason)
    client = ws_client(deflate)
    client.receive_bytes(server.data_to_send())
    received: list[str | bytes] = []
    text: list[str] = []
    binary = bytearray()
    closed: tuple[int, str] | None = None
    for frame in client.received_frames():
        payload = frame.payload
        if frame.opcode is Opcode.CLOSE:
            assert isinstance(payload, tuple)
            closed = payload
        elif isinstance(payload, str):
            text.append(payload)
        else:
            assert isinstance(payload, bytes | bytearray)
            binary += payload
        if frame.message_finished and frame.opcode is not Opcode.CLOSE:
            received.append("".join(text) if text or frame.opcode is Opcode.TEXT else bytes(binary))
            text, binary = [], bytearray()
    assert received == messages
    assert closed is not None
    code, got_reason = closed
    assert code == (1005 if close is None else close)
    if close is not None:
        assert reason.encode().startswith(got_reason.encode())
        assert len(got_reason.encode()) <= 123


@given(messages=WS_MESSAGES, deflate=st.booleans())
def test_websocket_client_close_is_answered_and_reported(
    messages: list[str | bytes], deflate: bool
) -> None:
    """A close from the client after its messages: the messages, then CloseReceived, and
    our reply close frame is queued."""
    client = ws_client(deflate)
    data = b"".join(client.send_data(message) for message in messages) + client.close(1000)
    server = WebSocketProtocol(
        deflate=DeflateParameters(client_max_window_bits=15) if deflate else None
    )
    events = server.receive_data(data)
    assert [e.data for e in events if isinstance(e, Message)] == messages
    assert isinstance(events[-1], CloseReceived) and events[-1].code == 1000
    assert server.closed and server.data_to_send().startswith(b"\x88")
