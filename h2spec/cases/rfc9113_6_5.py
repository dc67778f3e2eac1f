"""RFC 9113 6.5: SETTINGS frames (6.5 format, 6.5.2 defined settings, 6.5.3 synchronization)."""

from __future__ import annotations

import hpack

from h2spec import frames as f
from h2spec.connection import CaseFailed, Connection, ConnectionClosed
from h2spec.registry import case

S = "6.5"
S2 = "6.5.2"
S3 = "6.5.3"


def _settings(conn: Connection, *settings: tuple[int, int]) -> None:
    conn.send_frame(f.SETTINGS, 0, 0, f.settings_payload(*settings))


# -- 6.5 ----------------------------------------------------------------------------------------


@case(
    S,
    "Sends a SETTINGS frame with ACK flag and a non-empty payload",
    "GOAWAY(FRAME_SIZE_ERROR)",
    (
        "RFC 9113 6.5: Receipt of a SETTINGS frame with the ACK flag set and a length field value "
        "other than 0 MUST be treated as a connection error of type FRAME_SIZE_ERROR."
    ),
)
def ack_with_payload(conn: Connection) -> str:
    conn.send_frame(f.SETTINGS, f.ACK, 0, f.settings_payload((f.SETTINGS_ENABLE_PUSH, 0)))
    return conn.expect_connection_error(f.FRAME_SIZE_ERROR)


@case(
    S,
    "Sends a SETTINGS frame with a stream identifier other than 0",
    "GOAWAY(PROTOCOL_ERROR)",
    (
        "RFC 9113 6.5: If an endpoint receives a SETTINGS frame whose Stream Identifier field is "
        "anything other than 0x00, the endpoint MUST respond with a connection error of type "
        "PROTOCOL_ERROR."
    ),
)
def settings_on_stream(conn: Connection) -> str:
    conn.send_frame(f.SETTINGS, 0, 1, f.settings_payload((f.SETTINGS_ENABLE_PUSH, 0)))
    return conn.expect_connection_error(f.PROTOCOL_ERROR)


@case(
    S,
    "Sends a SETTINGS frame with a length that is not a multiple of 6",
    "GOAWAY(FRAME_SIZE_ERROR)",
    (
        "RFC 9113 6.5: A SETTINGS frame with a length other than a multiple of 6 octets MUST be "
        "treated as a connection error of type FRAME_SIZE_ERROR."
    ),
)
def settings_bad_length(conn: Connection) -> str:
    conn.send_frame(f.SETTINGS, 0, 0, b"\x00\x02\x00\x00")
    return conn.expect_connection_error(f.FRAME_SIZE_ERROR)


@case(
    S,
    "Sends an empty SETTINGS frame",
    "a SETTINGS ACK",
    (
        "RFC 9113 6.5: a SETTINGS frame may be empty (the preface SETTINGS is potentially empty); "
        "every SETTINGS frame is acknowledged."
    ),
)
def empty_settings(conn: Connection) -> str:
    _settings(conn)
    return conn.expect_settings_ack()


# -- 6.5.2 --------------------------------------------------------------------------------------


@case(
    S2,
    "Sends SETTINGS_ENABLE_PUSH with a value of 2",
    "GOAWAY(PROTOCOL_ERROR)",
    (
        "RFC 9113 6.5.2 SETTINGS_ENABLE_PUSH: Any value other than 0 or 1 MUST be treated as a "
        "connection error of type PROTOCOL_ERROR."
    ),
)
def enable_push_2(conn: Connection) -> str:
    _settings(conn, (f.SETTINGS_ENABLE_PUSH, 2))
    return conn.expect_connection_error(f.PROTOCOL_ERROR)


@case(
    S2,
    "Sends SETTINGS_INITIAL_WINDOW_SIZE with a value above 2^31-1",
    "GOAWAY(FLOW_CONTROL_ERROR)",
    (
        "RFC 9113 6.5.2 SETTINGS_INITIAL_WINDOW_SIZE: Values above the maximum flow-control window "
        "size of 2^31-1 MUST be treated as a connection error of type FLOW_CONTROL_ERROR."
    ),
)
def initial_window_too_large(conn: Connection) -> str:
    _settings(conn, (f.SETTINGS_INITIAL_WINDOW_SIZE, 2**31))
    return conn.expect_connection_error(f.FLOW_CONTROL_ERROR)


@case(
    S2,
    "Sends SETTINGS_MAX_FRAME_SIZE with a value below 2^14",
    "GOAWAY(PROTOCOL_ERROR)",
    (
        "RFC 9113 6.5.2 SETTINGS_MAX_FRAME_SIZE: the value MUST be between 2^14 and 2^24-1; values "
        "outside this range MUST be treated as a connection error of type PROTOCOL_ERROR."
    ),
)
def max_frame_size_too_small(conn: Connection) -> str:
    _settings(conn, (f.SETTINGS_MAX_FRAME_SIZE, 2**14 - 1))
    return conn.expect_connection_error(f.PROTOCOL_ERROR)


@case(
    S2,
    "Sends SETTINGS_MAX_FRAME_SIZE with a value above 2^24-1",
    "GOAWAY(PROTOCOL_ERROR)",
    (
        "RFC 9113 6.5.2 SETTINGS_MAX_FRAME_SIZE: values outside 2^14..2^24-1 MUST be treated as a "
        "connection error of type PROTOCOL_ERROR."
    ),
)
def max_frame_size_too_large(conn: Connection) -> str:
    _settings(conn, (f.SETTINGS_MAX_FRAME_SIZE, 2**24))
    return conn.expect_connection_error(f.PROTOCOL_ERROR)


@case(
    S2,
    "Sends SETTINGS_MAX_FRAME_SIZE with a value of 0",
    "GOAWAY(PROTOCOL_ERROR)",
    (
        "RFC 9113 6.5.2 SETTINGS_MAX_FRAME_SIZE: values outside 2^14..2^24-1 MUST be treated as a "
        "connection error of type PROTOCOL_ERROR (a server that takes 0 can loop: CVE-2026-33814)."
    ),
)
def max_frame_size_zero(conn: Connection) -> str:
    _settings(conn, (f.SETTINGS_MAX_FRAME_SIZE, 0))
    return conn.expect_connection_error(f.PROTOCOL_ERROR)


@case(
    S2,
    "Sends SETTINGS_ENABLE_CONNECT_PROTOCOL with a value of 2",
    "GOAWAY(PROTOCOL_ERROR)",
    (
        "RFC 8441 3: a SETTINGS_ENABLE_CONNECT_PROTOCOL value other than 0 or 1 is invalid (as for "
        "the other boolean settings of RFC 9113 6.5.2: a connection error of type PROTOCOL_ERROR)."
    ),
)
def enable_connect_protocol_2(conn: Connection) -> str:
    _settings(conn, (f.SETTINGS_ENABLE_CONNECT_PROTOCOL, 2))
    return conn.expect_connection_error(f.PROTOCOL_ERROR)


@case(
    S2,
    "Sends SETTINGS_NO_RFC7540_PRIORITIES with a value of 2",
    "GOAWAY(PROTOCOL_ERROR)",
    (
        "RFC 9218 2.1: A value other than 0 or 1 for SETTINGS_NO_RFC7540_PRIORITIES MUST be "
        "treated as a connection error of type PROTOCOL_ERROR."
    ),
)
def no_rfc7540_priorities_2(conn: Connection) -> str:
    _settings(conn, (f.SETTINGS_NO_RFC7540_PRIORITIES, 2))
    return conn.expect_connection_error(f.PROTOCOL_ERROR)


@case(
    S2,
    "Sends a SETTINGS frame with an unknown identifier",
    "a SETTINGS ACK",
    (
        "RFC 9113 6.5.2: An endpoint that receives a SETTINGS frame with any unknown or "
        "unsupported identifier MUST ignore that setting."
    ),
)
def unknown_identifier(conn: Connection) -> str:
    _settings(conn, (0xFF, 1), (f.SETTINGS_UNKNOWN, 0xFFFF_FFFF))
    conn.expect_settings_ack()
    return conn.expect_alive()


@case(
    S2,
    "Sends the extreme valid values (INITIAL_WINDOW_SIZE 2^31-1, MAX_FRAME_SIZE 2^24-1)",
    "a SETTINGS ACK and a response",
    "RFC 9113 6.5.2: 2^31-1 and 2^24-1 are the largest allowed values of these settings.",
)
def extreme_valid_values(conn: Connection) -> str:
    _settings(
        conn, (f.SETTINGS_INITIAL_WINDOW_SIZE, 2**31 - 1), (f.SETTINGS_MAX_FRAME_SIZE, 2**24 - 1)
    )
    conn.expect_settings_ack()
    return f"status {conn.roundtrip().status}"


@case(
    S2,
    "Sends SETTINGS_ENABLE_PUSH=1 and SETTINGS_MAX_CONCURRENT_STREAMS=0 from the client",
    "a SETTINGS ACK",
    (
        "RFC 9113 6.5.2: a client may allow push (1); MAX_CONCURRENT_STREAMS only limits streams "
        "the server would open."
    ),
)
def client_push_settings(conn: Connection) -> str:
    conn.push_enabled = True
    _settings(conn, (f.SETTINGS_ENABLE_PUSH, 1), (f.SETTINGS_MAX_CONCURRENT_STREAMS, 0))
    conn.expect_settings_ack()
    return f"status {conn.roundtrip().status}"


@case(
    S2,
    "Checks the server's own SETTINGS values",
    "every value within its allowed range, no ENABLE_PUSH=1",
    (
        "RFC 9113 6.5.2: A server MUST NOT explicitly set SETTINGS_ENABLE_PUSH to 1; "
        "INITIAL_WINDOW_SIZE <= 2^31-1; MAX_FRAME_SIZE within 2^14..2^24-1."
    ),
)
def server_settings_valid(conn: Connection) -> str:
    values = conn.server_settings
    problems = []
    if values.get(f.SETTINGS_ENABLE_PUSH, 0) != 0:
        problems.append(f"ENABLE_PUSH={values[f.SETTINGS_ENABLE_PUSH]}")
    if values.get(f.SETTINGS_INITIAL_WINDOW_SIZE, 0) > f.MAX_WINDOW:
        problems.append(f"INITIAL_WINDOW_SIZE={values[f.SETTINGS_INITIAL_WINDOW_SIZE]}")
    if not 2**14 <= values.get(f.SETTINGS_MAX_FRAME_SIZE, 2**14) <= 2**24 - 1:
        problems.append(f"MAX_FRAME_SIZE={values[f.SETTINGS_MAX_FRAME_SIZE]}")
    if problems:
        raise CaseFailed("invalid server settings: " + ", ".join(problems))
    return ", ".join(f"{k}={v}" for k, v in sorted(values.items())) or "empty SETTINGS"


@case(
    S2,
    "Sends SETTINGS_HEADER_TABLE_SIZE=0, then two requests",
    "responses decodable without a dynamic table",
    (
        "RFC 9113 6.5.2 SETTINGS_HEADER_TABLE_SIZE: the maximum size of the compression table used "
        "to decode field blocks; RFC 7541 4.2: the encoder MUST signal the change with a size "
        "update."
    ),
    settings=[(f.SETTINGS_HEADER_TABLE_SIZE, 0)],
)
def header_table_size_zero(conn: Connection) -> str:
    # Our decoder keeps no dynamic table: a reference to a dynamic entry fails to decode.
    conn.decoder = hpack.Decoder()
    conn.decoder.header_table_size = 0
    conn.decoder.max_allowed_table_size = 0
    conn.roundtrip()
    return f"status {conn.roundtrip().status}"


# -- 6.5.3 --------------------------------------------------------------------------------------


@case(
    S3,
    "Sends a SETTINGS frame after the preface",
    "a SETTINGS frame with the ACK flag",
    (
        "RFC 9113 6.5.3: Upon receiving a SETTINGS frame with the ACK flag not set, the recipient "
        "MUST immediately update its parameters and then acknowledge it by sending a SETTINGS "
        "frame with the ACK flag set."
    ),
)
def settings_acknowledged(conn: Connection) -> str:
    _settings(conn, (f.SETTINGS_INITIAL_WINDOW_SIZE, 100), (f.SETTINGS_MAX_FRAME_SIZE, 20000))
    return conn.expect_settings_ack()


@case(
    S3,
    "Sends INITIAL_WINDOW_SIZE=100 then INITIAL_WINDOW_SIZE=1 in one SETTINGS frame",
    "response DATA never exceeds a window of 1 octet",
    (
        "RFC 9113 6.5.3: The values in the SETTINGS frame MUST be processed in the order they "
        "appear, with no other frame processing between values."
    ),
    settings=[(f.SETTINGS_INITIAL_WINDOW_SIZE, 100), (f.SETTINGS_INITIAL_WINDOW_SIZE, 1)],
)
def settings_in_order(conn: Connection) -> str:
    return read_with_window(conn, conn.get(), window=1)


def read_with_window(conn: Connection, sid: int, *, window: int, grant: int | None = None) -> str:
    """Read the response on ``sid`` checking that DATA never exceeds the stream window.

    After each DATA frame the consumed credit (or ``grant`` octets) is given back.
    """
    conn.auto_window_update = False
    available = window
    received = 0
    conn.history.clear()
    try:
        for frame in conn.frames():
            if frame.type == f.GOAWAY or (frame.type == f.RST_STREAM and frame.stream_id == sid):
                raise CaseFailed(f"got {conn.so_far()}")
            if frame.stream_id != sid:
                continue
            if frame.type == f.DATA:
                size = len(frame.payload)
                if size > available:
                    raise CaseFailed(
                        f"DATA of {size} octets with only {available} octets of stream window"
                    )
                available -= size
                received += len(frame.payload)
                if size:
                    conn.send_frame(f.WINDOW_UPDATE, 0, 0, f.window_update_payload(size))
                if not frame.end_stream and (size or grant):
                    credit = grant or size
                    conn.send_frame(f.WINDOW_UPDATE, 0, sid, f.window_update_payload(credit))
                    available += credit
            if frame.end_stream:
                return f"{received} octets within the window"
    except TimeoutError as exc:
        raise CaseFailed(f"response incomplete; got {conn.so_far()}") from exc
    except ConnectionClosed as exc:
        raise CaseFailed(f"connection closed; got {conn.so_far()}") from exc
    raise AssertionError("unreachable")
