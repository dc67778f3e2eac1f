"""RFC 9113 3.4: HTTP/2 connection preface."""

from __future__ import annotations

import time

from h2spec import frames as f
from h2spec.connection import CaseFailed, Connection, ConnectionClosed
from h2spec.registry import case

S = "3.4"
INVALID = (
    "RFC 9113 3.4: Clients and servers MUST treat an invalid connection preface as a connection "
    "error of type PROTOCOL_ERROR. A GOAWAY frame MAY be omitted in this case."
)


@case(
    S,
    "Sends an invalid connection preface",
    "GOAWAY(PROTOCOL_ERROR) or connection close",
    INVALID,
    handshake=False,
)
def invalid_preface(conn: Connection) -> str:
    conn.send(b"PRI * HTTP/2.0\r\n\r\nXX\r\n\r\n" + f.frame(f.SETTINGS, 0, 0))
    return conn.expect_connection_error(f.PROTOCOL_ERROR)


@case(
    S,
    "Sends the preface magic followed by a PING instead of SETTINGS",
    "GOAWAY(PROTOCOL_ERROR) or connection close",
    (
        "RFC 9113 3.4: the client connection preface is the magic string followed by a SETTINGS "
        "frame; an invalid preface is a connection error of type PROTOCOL_ERROR."
    ),
    handshake=False,
)
def preface_without_settings(conn: Connection) -> str:
    conn.send(f.PREFACE + f.frame(f.PING, 0, 0, b"\x00" * 8))
    return conn.expect_connection_error(f.PROTOCOL_ERROR)


@case(
    S,
    "Sends a valid client preface",
    "the server preface starts with a SETTINGS frame",
    (
        "RFC 9113 3.4: The server connection preface consists of a potentially empty SETTINGS "
        "frame that MUST be the first frame the server sends in the HTTP/2 connection."
    ),
    handshake=False,
)
def server_preface_is_settings(conn: Connection) -> str:
    conn.handshake()
    first = conn.first_server_frame
    if first is None or first.type != f.SETTINGS or first.ack:
        raise CaseFailed(f"first frame from the server: {first.describe() if first else None}")
    return "SETTINGS"


@case(
    S,
    "Sends the client preface one byte at a time",
    "SETTINGS, SETTINGS ACK, and a PING ACK",
    (
        "RFC 9113 3.4/4.1: the preface and frames are byte streams; TCP may deliver them in any "
        "segmentation."
    ),
    handshake=False,
)
def preface_byte_by_byte(conn: Connection) -> str:
    for byte in f.PREFACE + f.frame(f.SETTINGS, 0, 0):
        conn.send(bytes([byte]))
    conn.expect_settings_ack()
    return conn.expect_alive()


@case(
    S,
    "Sends an HTTP/1.1 request on a connection that expects the HTTP/2 preface",
    "GOAWAY(PROTOCOL_ERROR), an HTTP/1.1 response or connection close",
    (
        "RFC 9113 3.4: a connection not starting with the preface is invalid; the server must not "
        "treat it as HTTP/2 frames."
    ),
    handshake=False,
)
def http11_instead_of_preface(conn: Connection) -> str:
    conn.send(b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n")
    try:
        conn.fill(5, time.monotonic() + conn.timeout)
    except TimeoutError as exc:
        raise CaseFailed("no reaction within the timeout") from exc
    except ConnectionClosed:
        return "connection closed"
    if conn.buffer.startswith(b"HTTP/"):
        return "HTTP/1.1 response"
    return conn.expect_connection_error(f.PROTOCOL_ERROR)
