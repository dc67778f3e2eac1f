"""RFC 9113 8.1: HTTP message framing (trailers, content-length, malformed messages)."""

from __future__ import annotations

from h2spec import frames as f
from h2spec.cases.common import MALFORMED, MALFORMED_RFC, open_stream
from h2spec.connection import Connection
from h2spec.registry import case

S = "8.1"
CONTENT_LENGTH = (
    "RFC 9113 8.1.1: A request or response is also malformed if the value of a content-length "
    "header field does not equal the sum of the DATA frame payload lengths that form the "
    "content. " + MALFORMED_RFC
)
SECOND_HEADERS = (
    "RFC 9113 8.1: An endpoint that receives a HEADERS frame without the END_STREAM flag set "
    "after receiving the HEADERS frame that opens a request ... MUST treat the corresponding "
    "request or response as malformed."
)


def _post(conn: Connection, length: int) -> int:
    headers = conn.request_headers("POST", extra=[("content-length", str(length))])
    return open_stream(conn, headers)


@case(
    S,
    "Sends a request with a trailer section",
    "a response",
    (
        "RFC 9113 8.1: an HTTP message consists of a header section, zero or more DATA frames and "
        "optionally a trailer section in a HEADERS frame with END_STREAM."
    ),
)
def trailers(conn: Connection) -> str:
    sid = open_stream(conn)
    conn.send_data(sid, b"content", end_stream=False)
    conn.send_headers(sid, [("x-trailer", "yes")], end_stream=True)
    return f"status {conn.expect_response(sid).status}"


@case(S, "Sends a trailer HEADERS frame without END_STREAM", MALFORMED, SECOND_HEADERS)
def trailers_without_end_stream(conn: Connection) -> str:
    sid = open_stream(conn)
    conn.send_data(sid, b"content", end_stream=False)
    conn.send_headers(sid, [("x-trailer", "yes")], end_stream=False)
    return conn.expect_stream_error(sid, f.PROTOCOL_ERROR)


@case(
    S,
    "Sends a second HEADERS frame without END_STREAM right after the request head",
    MALFORMED,
    SECOND_HEADERS,
)
def second_headers_without_end_stream(conn: Connection) -> str:
    sid = open_stream(conn)
    conn.send_headers(sid, [("x-more", "headers")], end_stream=False)
    return conn.expect_stream_error(sid, f.PROTOCOL_ERROR)


@case(S, "Sends content-length: 1 with 2 octets of DATA", MALFORMED, CONTENT_LENGTH)
def content_length_too_small(conn: Connection) -> str:
    sid = _post(conn, 1)
    conn.send_data(sid, b"ab", end_stream=True)
    return conn.expect_stream_error(sid, f.PROTOCOL_ERROR)


@case(S, "Sends content-length: 10 with 4 octets of DATA and END_STREAM", MALFORMED, CONTENT_LENGTH)
def content_length_too_large(conn: Connection) -> str:
    sid = _post(conn, 10)
    conn.send_data(sid, b"abcd", end_stream=True)
    return conn.expect_stream_error(sid, f.PROTOCOL_ERROR)


@case(
    S,
    "Sends content-length: 5 with three DATA frames totalling 6 octets",
    MALFORMED,
    CONTENT_LENGTH,
)
def content_length_multiple_frames(conn: Connection) -> str:
    sid = _post(conn, 5)
    conn.send_data(sid, b"ab", end_stream=False)
    conn.send_data(sid, b"cd", end_stream=False)
    conn.send_data(sid, b"ef", end_stream=True)
    return conn.expect_stream_error(sid, f.PROTOCOL_ERROR)


@case(
    S,
    "Sends content-length: 4 with a HEADERS frame carrying END_STREAM (no DATA)",
    MALFORMED,
    CONTENT_LENGTH,
)
def content_length_no_data(conn: Connection) -> str:
    sid = conn.new_stream_id()
    conn.send_headers(sid, conn.request_headers("POST", extra=[("content-length", "4")]))
    return conn.expect_stream_error(sid, f.PROTOCOL_ERROR)


@case(
    S,
    "Sends content-length matching the sum of padded DATA frames' content",
    "a response",
    (
        "RFC 9113 8.1.1: content-length counts the DATA payload that forms the content; padding is "
        "not content."
    ),
)
def content_length_with_padding(conn: Connection) -> str:
    sid = _post(conn, 6)
    conn.send_data(sid, b"abc", end_stream=False, pad=30)
    conn.send_data(sid, b"def", end_stream=True, pad=1)
    return f"status {conn.expect_response(sid).status}"


@case(
    S,
    "Sends a request and checks the response framing",
    "HEADERS, then DATA, ending with END_STREAM, valid response head",
    (
        "RFC 9113 8.1/8.3.2: a response starts with a HEADERS frame carrying :status and ends with "
        "END_STREAM; no connection-specific or uppercase field names."
    ),
)
def response_framing(conn: Connection) -> str:
    sid = conn.get()
    response = conn.expect_response(sid, check_headers=True)
    return f"status {response.status}, {len(response.body)} octets"
