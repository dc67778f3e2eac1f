"""RFC 9113 6.7: PING frames."""

from __future__ import annotations

from h2spec import frames as f
from h2spec.connection import Connection
from h2spec.registry import case

S = "6.7"
LENGTH = (
    "RFC 9113 6.7: Receipt of a PING frame with a length field value other than 8 MUST be "
    "treated as a connection error of type FRAME_SIZE_ERROR."
)


@case(
    S,
    "Sends a PING frame",
    "a PING ACK with an identical payload",
    (
        "RFC 9113 6.7: Receivers of a PING frame that does not include an ACK flag MUST send a "
        "PING frame with the ACK flag set in response, with an identical frame payload."
    ),
)
def ping(conn: Connection) -> str:
    return conn.expect_ping_ack(conn.ping(b"\x00\xff\x01\xfe\x02\xfd\x03\xfc"))


@case(
    S,
    "Sends a PING frame with the ACK flag, then a PING without it",
    "only the second PING is acknowledged",
    "RFC 9113 6.7: An endpoint MUST NOT respond to PING frames containing this [ACK] flag.",
)
def ping_ack_not_answered(conn: Connection) -> str:
    conn.send_frame(f.PING, f.ACK, 0, b"unsolici")
    return conn.expect_ping_ack(conn.ping(b"expected"))


@case(
    S,
    "Sends a PING frame with a stream identifier other than 0",
    "GOAWAY(PROTOCOL_ERROR)",
    (
        "RFC 9113 6.7: If a PING frame is received with a Stream Identifier field value other than "
        "0x00, the recipient MUST respond with a connection error of type PROTOCOL_ERROR."
    ),
)
def ping_on_stream(conn: Connection) -> str:
    conn.send_frame(f.PING, 0, 1, b"\x00" * 8)
    return conn.expect_connection_error(f.PROTOCOL_ERROR)


@case(S, "Sends a PING frame with a length of 7", "GOAWAY(FRAME_SIZE_ERROR)", LENGTH)
def ping_length_7(conn: Connection) -> str:
    conn.send_frame(f.PING, 0, 0, b"\x00" * 7)
    return conn.expect_connection_error(f.FRAME_SIZE_ERROR)


@case(S, "Sends a PING frame with a length of 9", "GOAWAY(FRAME_SIZE_ERROR)", LENGTH)
def ping_length_9(conn: Connection) -> str:
    conn.send_frame(f.PING, 0, 0, b"\x00" * 9)
    return conn.expect_connection_error(f.FRAME_SIZE_ERROR)


@case(
    S,
    "Sends several PING frames back to back",
    "one PING ACK per PING, same payloads",
    "RFC 9113 6.7: every PING without ACK gets a response with an identical payload.",
)
def many_pings(conn: Connection) -> str:
    payloads = [bytes([i]) * 8 for i in range(5)]
    for payload in payloads:
        conn.ping(payload)
    for payload in payloads:
        conn.expect_ping_ack(payload)
    return "5 PING ACKs"
