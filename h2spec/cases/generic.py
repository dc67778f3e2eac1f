"""Generic exchanges: a correct server must handle ordinary, valid traffic."""

from __future__ import annotations

from h2spec import frames as f
from h2spec import hpackraw as h
from h2spec.connection import CaseFailed, Connection
from h2spec.registry import case

S = "generic"


@case(
    S,
    "Sends a GET request",
    "a response with a final status",
    "RFC 9113 8.1: a request is a HEADERS frame; the response ends with END_STREAM.",
)
def get_request(conn: Connection) -> str:
    response = conn.roundtrip()
    return f"status {response.status}, {len(response.body)} body bytes"


@case(
    S,
    "Sends a HEAD request",
    "a response without content",
    "RFC 9110 9.3.2: the server MUST NOT send content in the response to HEAD.",
)
def head_request(conn: Connection) -> str:
    response = conn.roundtrip(conn.request_headers("HEAD"))
    if response.body:
        raise CaseFailed(f"HEAD response carried {len(response.body)} bytes of content")
    return f"status {response.status}"


@case(
    S,
    "Sends a POST request with a body",
    "a response",
    "RFC 9113 8.1: the content is carried in DATA frames.",
)
def post_request(conn: Connection) -> str:
    headers = conn.request_headers("POST", extra=[("content-length", "11")])
    return f"status {conn.roundtrip(headers, b'hello world').status}"


@case(
    S,
    "Sends a POST request with 100 small DATA frames",
    "a response",
    "RFC 9113 8.1: content may span any number of DATA frames.",
)
def many_data_frames(conn: Connection) -> str:
    sid = conn.new_stream_id()
    conn.send_headers(sid, conn.request_headers("POST"), end_stream=False)
    for index in range(100):
        conn.send_data(sid, b"x" * 100, end_stream=index == 99)
    return f"status {conn.expect_response(sid).status}"


@case(
    S,
    "Sends a POST body larger than the initial flow-control window",
    "a response",
    (
        "RFC 9113 5.2: the receiver advertises credit with WINDOW_UPDATE; a sender respecting it "
        "can send any amount."
    ),
)
def large_body(conn: Connection) -> str:
    headers = conn.request_headers("POST", extra=[("content-length", str(200_000))])
    return f"status {conn.roundtrip(headers, b'y' * 200_000).status}"


@case(
    S,
    "Sends a PING frame",
    "a PING frame with ACK and the same payload",
    (
        "RFC 9113 6.7: receivers of a PING frame without ACK MUST send a PING frame with ACK set "
        "in response, with an identical payload."
    ),
)
def ping_roundtrip(conn: Connection) -> str:
    return conn.expect_ping_ack(conn.ping(b"h2spec!!"))


@case(
    S,
    "Sends a request with trailers",
    "a response",
    (
        "RFC 9113 8.1: a trailer section is sent as a HEADERS frame with END_STREAM after the DATA "
        "frames."
    ),
)
def request_with_trailers(conn: Connection) -> str:
    sid = conn.new_stream_id()
    conn.send_headers(
        sid, conn.request_headers("POST", extra=[("te", "trailers")]), end_stream=False
    )
    conn.send_data(sid, b"body", end_stream=False)
    conn.send_headers(sid, [("x-checksum", "1234")], end_stream=True)
    return f"status {conn.expect_response(sid).status}"


@case(
    S,
    "Sends a large field section split across HEADERS and CONTINUATION frames",
    "a response",
    "RFC 9113 4.3/6.10: a field block can be split into a HEADERS frame and CONTINUATION frames.",
)
def large_headers(conn: Connection) -> str:
    extra = [(f"x-large-{i}", "v" * 900) for i in range(8)]
    block = conn.encode(conn.request_headers(extra=extra))
    size = len(block) // 3 + 1
    sid = conn.new_stream_id()
    conn.send_headers(sid, block[:size], end_stream=True, end_headers=False)
    conn.send_continuation(sid, block[size : 2 * size], end_headers=False)
    conn.send_continuation(sid, block[2 * size :], end_headers=True)
    return f"status {conn.expect_response(sid).status}"


@case(
    S,
    "Sends 10 requests in sequence on one connection",
    "10 responses",
    "RFC 9113 5.1.1: each request uses a new, higher stream identifier on the same connection.",
)
def sequential_requests(conn: Connection) -> str:
    for _ in range(10):
        conn.roundtrip()
    return "10 responses"


@case(
    S,
    "Opens three streams and interleaves their DATA frames",
    "three responses",
    "RFC 9113 5: streams are independent and frames from different streams may be interleaved.",
)
def interleaved_streams(conn: Connection) -> str:
    sids = [conn.new_stream_id() for _ in range(3)]
    for sid in sids:
        conn.send_headers(sid, conn.request_headers("POST"), end_stream=False)
    for chunk in range(3):
        for sid in sids:
            conn.send_data(sid, b"abc", end_stream=chunk == 2)
    conn.expect_responses(sids)
    return "three responses"


@case(
    S,
    "Sends every frame type a client may send, in valid ways",
    "a response and a PING ACK",
    (
        "RFC 9113 6: DATA, HEADERS, PRIORITY, RST_STREAM, SETTINGS, PING, WINDOW_UPDATE and "
        "CONTINUATION are all valid from a client."
    ),
)
def all_frame_types(conn: Connection) -> str:
    block = conn.encode(conn.request_headers("POST"))
    sid = conn.new_stream_id()
    conn.send_headers(sid, block[:5], end_stream=False, end_headers=False)
    conn.send_continuation(sid, block[5:])
    conn.send_frame(f.PRIORITY, 0, sid, f.priority_payload(0, 100))
    conn.send_frame(f.WINDOW_UPDATE, 0, 0, f.window_update_payload(1000))
    conn.send_frame(f.WINDOW_UPDATE, 0, sid, f.window_update_payload(1000))
    conn.send_frame(f.SETTINGS, 0, 0, f.settings_payload((f.SETTINGS_MAX_FRAME_SIZE, 16384)))
    other = conn.new_stream_id()
    conn.send_headers(other, conn.request_headers("POST"), end_stream=False)
    conn.send_frame(f.RST_STREAM, 0, other, f.rst_payload(f.CANCEL))
    conn.send_data(sid, b"done", end_stream=True)
    conn.expect_response(sid)
    return conn.expect_alive(allow_rst=True)


@case(
    S,
    "Sends a request with padded HEADERS and padded DATA frames",
    "a response",
    "RFC 9113 6.1/6.2: padding is removed by the receiver and does not change the content.",
)
def padded_request(conn: Connection) -> str:
    sid = conn.new_stream_id()
    conn.send_headers(sid, conn.request_headers("POST"), end_stream=False, pad=10)
    conn.send_data(sid, b"padded", end_stream=True, pad=20)
    return f"status {conn.expect_response(sid).status}"


@case(
    S,
    "Sends a request whose header values are Huffman-encoded",
    "a response",
    "RFC 7541 5.2: string literals may be Huffman-encoded.",
)
def huffman_request(conn: Connection) -> str:
    scheme = h.SCHEME_HTTPS if conn.target.tls else h.SCHEME_HTTP
    block = (
        h.indexed(h.METHOD_GET)
        + h.indexed(scheme)
        + h.literal_without_indexing(h.PATH_NAME, conn.target.path, use_huffman=True)
        + h.literal_without_indexing(h.AUTHORITY, conn.target.authority, use_huffman=True)
        + h.literal_without_indexing("user-agent", "h2spec huffman", use_huffman=True)
    )
    return f"status {conn.roundtrip(block).status}"


@case(
    S,
    "Sends a GET request with cookies split into several cookie fields",
    "a response",
    "RFC 9113 8.2.3: the Cookie header field MAY be split into separate field lines.",
)
def split_cookies(conn: Connection) -> str:
    headers = conn.request_headers(extra=[("cookie", "a=b"), ("cookie", "c=d"), ("cookie", "e=f")])
    return f"status {conn.roundtrip(headers).status}"
