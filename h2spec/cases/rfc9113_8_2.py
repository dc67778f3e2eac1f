"""RFC 9113 8.2: HTTP fields (field validity, connection-specific fields, cookies)."""

from __future__ import annotations

from h2spec.cases.common import MALFORMED, MALFORMED_RFC, send_malformed
from h2spec.connection import Connection
from h2spec.registry import case

S = "8.2"
S1 = "8.2.1"
S2 = "8.2.2"
S3 = "8.2.3"
VALIDITY = (
    "RFC 9113 8.2.1: A field name MUST NOT contain characters in the ranges 0x00-0x20, "
    "0x41-0x5a, or 0x7f-0xff; field names MUST NOT include a colon (except pseudo-headers); a "
    "field value MUST NOT contain NUL, LF or CR, nor start or end with SP or HTAB. A request "
    "that contains a field that violates any of these conditions MUST be treated as malformed. "
    + MALFORMED_RFC
)
CONNECTION = (
    "RFC 9113 8.2.2: An endpoint MUST NOT generate an HTTP/2 message containing "
    "connection-specific header fields (Connection, Proxy-Connection, Keep-Alive, "
    "Transfer-Encoding, Upgrade). Any message containing connection-specific header fields MUST "
    "be treated as malformed. " + MALFORMED_RFC
)


@case(
    S,
    "Sends a request with an uppercase field name",
    MALFORMED,
    (
        "RFC 9113 8.2: Field names MUST be converted to lowercase when constructing an HTTP/2 "
        "message; a request containing uppercase field names MUST be treated as malformed (8.2.1). "
    )
    + MALFORMED_RFC,
)
def uppercase_name(conn: Connection) -> str:
    return send_malformed(conn, conn.request_headers(extra=[("X-Uppercase", "test")]))


@case(
    S,
    "Sends a request and checks the response field names",
    "lowercase names, no connection-specific fields",
    (
        "RFC 9113 8.2: Field names MUST be converted to lowercase; 8.2.2: an endpoint MUST NOT "
        "generate connection-specific header fields."
    ),
)
def response_fields(conn: Connection) -> str:
    response = conn.expect_response(conn.get(), check_headers=True)
    return f"{len(response.headers)} fields"


# -- 8.2.1 field validity -----------------------------------------------------------------------


@case(S1, "Sends a field name containing a space", MALFORMED, VALIDITY)
def name_with_space(conn: Connection) -> str:
    return send_malformed(conn, conn.request_headers(extra=[("x bad", "test")]))


@case(S1, "Sends a field name containing a colon", MALFORMED, VALIDITY)
def name_with_colon(conn: Connection) -> str:
    return send_malformed(conn, conn.request_headers(extra=[("x:bad", "test")]))


@case(S1, "Sends a field name containing a non-ASCII octet (0xff)", MALFORMED, VALIDITY)
def name_with_high_octet(conn: Connection) -> str:
    return send_malformed(conn, conn.request_headers(extra=[("x-bad\xff", "test")]))


@case(S1, "Sends a field value containing CR LF", MALFORMED, VALIDITY)
def value_with_crlf(conn: Connection) -> str:
    return send_malformed(conn, conn.request_headers(extra=[("x-bad", "a\r\nx-injected: b")]))


@case(S1, "Sends a field value containing NUL", MALFORMED, VALIDITY)
def value_with_nul(conn: Connection) -> str:
    return send_malformed(conn, conn.request_headers(extra=[("x-bad", "a\x00b")]))


@case(S1, "Sends a field value with leading whitespace", MALFORMED, VALIDITY)
def value_leading_space(conn: Connection) -> str:
    return send_malformed(conn, conn.request_headers(extra=[("x-bad", " leading")]))


@case(S1, "Sends a field value with a trailing tab", MALFORMED, VALIDITY)
def value_trailing_tab(conn: Connection) -> str:
    return send_malformed(conn, conn.request_headers(extra=[("x-bad", "trailing\t")]))


@case(
    S1, "Sends an empty field name", MALFORMED, VALIDITY + " (an empty name is not a valid token)"
)
def empty_name(conn: Connection) -> str:
    return send_malformed(conn, conn.request_headers(extra=[("", "value")]))


# -- 8.2.2 connection-specific fields -----------------------------------------------------------


@case(S2, "Sends a request with a connection header field", MALFORMED, CONNECTION)
def connection_field(conn: Connection) -> str:
    return send_malformed(conn, conn.request_headers(extra=[("connection", "keep-alive")]))


@case(S2, "Sends a request with a keep-alive header field", MALFORMED, CONNECTION)
def keep_alive_field(conn: Connection) -> str:
    return send_malformed(conn, conn.request_headers(extra=[("keep-alive", "timeout=5")]))


@case(S2, "Sends a request with a proxy-connection header field", MALFORMED, CONNECTION)
def proxy_connection_field(conn: Connection) -> str:
    return send_malformed(conn, conn.request_headers(extra=[("proxy-connection", "keep-alive")]))


@case(S2, "Sends a request with a transfer-encoding header field", MALFORMED, CONNECTION)
def transfer_encoding_field(conn: Connection) -> str:
    return send_malformed(conn, conn.request_headers(extra=[("transfer-encoding", "chunked")]))


@case(S2, "Sends a request with an upgrade header field", MALFORMED, CONNECTION)
def upgrade_field(conn: Connection) -> str:
    return send_malformed(conn, conn.request_headers(extra=[("upgrade", "h2c")]))


@case(
    S2,
    "Sends a request with te: gzip",
    MALFORMED,
    (
        "RFC 9113 8.2.2: The TE header field MAY be present in an HTTP/2 request; when it is, it "
        'MUST NOT contain any value other than "trailers". '
    )
    + MALFORMED_RFC,
)
def te_not_trailers(conn: Connection) -> str:
    return send_malformed(conn, conn.request_headers(extra=[("te", "gzip")]))


@case(
    S2,
    "Sends a request with te: trailers",
    "a response",
    (
        "RFC 9113 8.2.2: The only exception [to connection-specific fields] is the TE header "
        'field, which MAY be present in an HTTP/2 request with the value "trailers".'
    ),
)
def te_trailers(conn: Connection) -> str:
    return f"status {conn.roundtrip(conn.request_headers(extra=[('te', 'trailers')])).status}"


# -- 8.2.3 cookies ------------------------------------------------------------------------------


@case(
    S3,
    "Sends the cookie header split into several field lines",
    "a response",
    (
        "RFC 9113 8.2.3: the Cookie header field MAY be split into separate header fields, each "
        "with one or more cookie-pairs."
    ),
)
def split_cookie(conn: Connection) -> str:
    headers = conn.request_headers(extra=[("cookie", "a=1"), ("cookie", "b=2; c=3")])
    return f"status {conn.roundtrip(headers).status}"
