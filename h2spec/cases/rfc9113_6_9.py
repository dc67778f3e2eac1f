"""RFC 9113 6.9: WINDOW_UPDATE frames and flow-control windows (6.9.1, 6.9.2)."""

from __future__ import annotations

from h2spec import frames as f
from h2spec.cases.common import open_stream
from h2spec.cases.rfc9113_6_5 import read_with_window
from h2spec.connection import CaseFailed, Connection, ConnectionClosed
from h2spec.registry import case

S = "6.9"
S1 = "6.9.1"
S2 = "6.9.2"
ZERO = (
    "RFC 9113 6.9: A receiver MUST treat the receipt of a WINDOW_UPDATE frame with a "
    "flow-control window increment of 0 as a stream error of type PROTOCOL_ERROR; errors on the "
    "connection flow-control window MUST be treated as a connection error."
)
LENGTH = (
    "RFC 9113 6.9: A WINDOW_UPDATE frame with a length other than 4 octets MUST be treated as a "
    "connection error of type FRAME_SIZE_ERROR."
)
OVERFLOW = (
    "RFC 9113 6.9.1: A sender MUST NOT allow a flow-control window to exceed 2^31-1 octets. If a "
    "sender receives a WINDOW_UPDATE that causes a flow-control window to exceed this maximum, it "
    "MUST terminate either the stream or the connection, as appropriate: RST_STREAM or GOAWAY "
    "with FLOW_CONTROL_ERROR."
)


def _window_update(conn: Connection, stream_id: int, increment: int) -> None:
    conn.send_frame(f.WINDOW_UPDATE, 0, stream_id, f.window_update_payload(increment))


@case(
    S,
    "Sends a WINDOW_UPDATE frame with an increment of 0 on the connection",
    "GOAWAY(PROTOCOL_ERROR)",
    ZERO,
)
def zero_increment_connection(conn: Connection) -> str:
    _window_update(conn, 0, 0)
    return conn.expect_connection_error(f.PROTOCOL_ERROR)


@case(
    S,
    "Sends a WINDOW_UPDATE frame with an increment of 0 on a stream",
    "RST_STREAM(PROTOCOL_ERROR) or GOAWAY(PROTOCOL_ERROR)",
    ZERO,
)
def zero_increment_stream(conn: Connection) -> str:
    sid = open_stream(conn)
    _window_update(conn, sid, 0)
    return conn.expect_stream_error(sid, f.PROTOCOL_ERROR)


@case(S, "Sends a WINDOW_UPDATE frame with a length of 3", "GOAWAY(FRAME_SIZE_ERROR)", LENGTH)
def length_3(conn: Connection) -> str:
    conn.send_frame(f.WINDOW_UPDATE, 0, 0, f.window_update_payload(1)[1:])
    return conn.expect_connection_error(f.FRAME_SIZE_ERROR)


@case(S, "Sends a WINDOW_UPDATE frame with a length of 5", "GOAWAY(FRAME_SIZE_ERROR)", LENGTH)
def length_5(conn: Connection) -> str:
    conn.send_frame(f.WINDOW_UPDATE, 0, 0, f.window_update_payload(1) + b"\x00")
    return conn.expect_connection_error(f.FRAME_SIZE_ERROR)


@case(
    S,
    "Sends a WINDOW_UPDATE frame with the reserved bit of the increment set",
    "no error (PING ACK)",
    "RFC 9113 6.9: the reserved bit R has undefined semantics and MUST be ignored when receiving.",
)
def reserved_bit(conn: Connection) -> str:
    _window_update(conn, 0, 0x8000_0001)
    return conn.expect_alive()


# -- 6.9.1 --------------------------------------------------------------------------------------


@case(
    S1,
    "Sends WINDOW_UPDATE frames that overflow the connection window",
    "GOAWAY(FLOW_CONTROL_ERROR)",
    OVERFLOW,
)
def overflow_connection(conn: Connection) -> str:
    _window_update(conn, 0, 2**31 - 1)
    _window_update(conn, 0, 2**31 - 1)
    return conn.expect_connection_error(f.FLOW_CONTROL_ERROR)


@case(
    S1,
    "Sends WINDOW_UPDATE frames that overflow a stream window",
    "RST_STREAM(FLOW_CONTROL_ERROR) or GOAWAY(FLOW_CONTROL_ERROR)",
    OVERFLOW,
)
def overflow_stream(conn: Connection) -> str:
    sid = open_stream(conn)
    _window_update(conn, sid, 2**31 - 1)
    _window_update(conn, sid, 2**31 - 1)
    return conn.expect_stream_error(sid, f.FLOW_CONTROL_ERROR)


@case(
    S1,
    "Sends WINDOW_UPDATE frames that raise the connection window to exactly 2^31-1",
    "no error (PING ACK)",
    "RFC 9113 6.9.1: 2^31-1 is the maximum window size and is allowed.",
)
def exact_maximum(conn: Connection) -> str:
    remaining = f.MAX_WINDOW - f.DEFAULT_WINDOW
    _window_update(conn, 0, remaining // 2)
    _window_update(conn, 0, remaining - remaining // 2)
    return conn.expect_alive()


# -- 6.9.2 --------------------------------------------------------------------------------------


@case(
    S2,
    "Raises SETTINGS_INITIAL_WINDOW_SIZE so that an open stream's window exceeds 2^31-1",
    "GOAWAY(FLOW_CONTROL_ERROR)",
    (
        "RFC 9113 6.9.2: An endpoint MUST treat a change to SETTINGS_INITIAL_WINDOW_SIZE that "
        "causes any flow-control window to exceed the maximum size as a connection error of type "
        "FLOW_CONTROL_ERROR."
    ),
)
def initial_window_overflow(conn: Connection) -> str:
    sid = open_stream(conn)
    _window_update(conn, sid, f.MAX_WINDOW - f.DEFAULT_WINDOW)
    conn.send_frame(
        f.SETTINGS, 0, 0, f.settings_payload((f.SETTINGS_INITIAL_WINDOW_SIZE, f.DEFAULT_WINDOW + 1))
    )
    return conn.expect_connection_error(f.FLOW_CONTROL_ERROR)


@case(
    S2,
    "Sends SETTINGS_INITIAL_WINDOW_SIZE=0, then a request",
    "no DATA with content until a WINDOW_UPDATE opens the stream window",
    (
        "RFC 9113 6.9.2/6.9: a sender MUST NOT send a flow-controlled frame with a length that "
        "exceeds the space available in the stream's flow-control window."
    ),
    settings=[(f.SETTINGS_INITIAL_WINDOW_SIZE, 0)],
)
def initial_window_zero(conn: Connection) -> str:
    sid = conn.get()
    conn.auto_window_update = False
    conn.history.clear()
    try:
        for frame in conn.frames():
            if frame.stream_id == sid and frame.type == f.DATA and frame.payload:
                raise CaseFailed(f"DATA with {len(frame.payload)} octets and a window of 0")
            if frame.stream_id == sid and frame.end_stream:
                return "response without content"
            if frame.stream_id == sid and frame.type == f.HEADERS:
                break
            if frame.type in (f.GOAWAY, f.RST_STREAM):
                raise CaseFailed(f"got {conn.so_far()}")
        payload = conn.ping()
        for frame in conn.frames():
            if frame.stream_id == sid and frame.type == f.DATA and frame.payload:
                raise CaseFailed(f"DATA with {len(frame.payload)} octets and a window of 0")
            if frame.type == f.PING and frame.ack and frame.payload == payload:
                break
    except TimeoutError as exc:
        raise CaseFailed(f"timed out; got {conn.so_far()}") from exc
    except ConnectionClosed as exc:
        raise CaseFailed(f"connection closed; got {conn.so_far()}") from exc
    _window_update(conn, sid, 1_000_000)
    return "no DATA before WINDOW_UPDATE; then " + read_with_window(conn, sid, window=1_000_000)


@case(
    S2,
    "Sends SETTINGS_INITIAL_WINDOW_SIZE=3 and grants 3 octets at a time",
    "response DATA frames of at most 3 octets",
    (
        "RFC 9113 6.9.2: SETTINGS_INITIAL_WINDOW_SIZE sets the initial window of every stream; "
        "6.9: the sender MUST NOT exceed it."
    ),
    settings=[(f.SETTINGS_INITIAL_WINDOW_SIZE, 3)],
)
def small_initial_window(conn: Connection) -> str:
    return read_with_window(conn, conn.get(), window=3, grant=3)
