"""Small building blocks shared by the case modules."""

from __future__ import annotations

from collections.abc import Sequence

from h2spec import frames as f
from h2spec import hpackraw as h
from h2spec.connection import CaseFailed, Connection, ConnectionClosed, Header

MALFORMED = "RST_STREAM(PROTOCOL_ERROR) or GOAWAY(PROTOCOL_ERROR)"
MALFORMED_RFC = (
    "RFC 9113 8.1.1: Malformed requests or responses that are detected MUST be treated as a "
    "stream error of type PROTOCOL_ERROR."
)


def open_stream(conn: Connection, headers: Sequence[Header] | None = None) -> int:
    """Start a POST on a new stream without ending it (the stream stays open)."""
    sid = conn.new_stream_id()
    conn.send_headers(
        sid, headers or conn.request_headers("POST"), end_stream=False, end_headers=True
    )
    return sid


def send_malformed(conn: Connection, headers: Sequence[Header], *, end_stream: bool = True) -> str:
    """Send a request head and expect it to be treated as malformed (stream PROTOCOL_ERROR)."""
    sid = conn.new_stream_id()
    conn.send_headers(sid, headers, end_stream=end_stream)
    return conn.expect_stream_error(sid, f.PROTOCOL_ERROR)


def without(headers: Sequence[Header], name: str) -> list[Header]:
    return [(n, v) for n, v in headers if n != name]


def complete_exchange(conn: Connection) -> int:
    """One GET and its full response; returns the (now closed) stream id."""
    sid = conn.get()
    conn.expect_response(sid)
    return sid


def expect_no_error_after_goaway(conn: Connection) -> str:
    """After the client's GOAWAY: a PING ACK, a GOAWAY(NO_ERROR) or a clean close is fine."""
    conn.ping(b"goodbye!")
    conn.history.clear()
    try:
        for frame in conn.frames():
            if frame.type == f.GOAWAY:
                if frame.error_code != f.NO_ERROR:
                    raise CaseFailed(f"got {conn.so_far()}")
                return frame.describe()
            if frame.type == f.PING and frame.ack:
                return "PING ACK"
    except TimeoutError as exc:
        raise CaseFailed(f"no reaction; got {conn.so_far()}") from exc
    except ConnectionClosed:
        return "connection closed"
    raise AssertionError("unreachable")


def raw_request_prefix(conn: Connection) -> bytes:
    """A GET request head built by hand, without touching the dynamic table."""
    scheme = h.SCHEME_HTTPS if conn.target.tls else h.SCHEME_HTTP
    return (
        h.indexed(h.METHOD_GET)
        + h.indexed(scheme)
        + h.literal_without_indexing(h.PATH_NAME, conn.target.path)
        + h.literal_without_indexing(h.AUTHORITY, conn.target.authority)
    )


def send_raw_block(conn: Connection, block: bytes) -> int:
    """Send a complete GET whose field block is ``block``; returns the stream id."""
    sid = conn.new_stream_id()
    conn.send_headers(sid, block, end_stream=True)
    return sid


def expect_compression_error(conn: Connection, block: bytes) -> str:
    send_raw_block(conn, block)
    return conn.expect_connection_error(f.COMPRESSION_ERROR)
