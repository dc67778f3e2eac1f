"""RFC 9113 8.3: HTTP control data (pseudo-header fields)."""

from __future__ import annotations

from h2spec.cases.common import MALFORMED, MALFORMED_RFC, open_stream, send_malformed, without
from h2spec.connection import Connection
from h2spec.frames import PROTOCOL_ERROR
from h2spec.registry import case

S = "8.3"
S1 = "8.3.1"
PSEUDO = (
    "RFC 9113 8.3: Endpoints MUST treat a request or response that contains undefined or invalid "
    "pseudo-header fields as malformed. " + MALFORMED_RFC
)
ORDER = (
    "RFC 9113 8.3: All pseudo-header fields MUST appear in a field block before all regular field "
    "lines. Any request or response that contains a pseudo-header field that appears in a field "
    "block after a regular field line MUST be treated as malformed."
)
REPEATED = (
    "RFC 9113 8.3: The same pseudo-header field name MUST NOT appear more than once in a field "
    "block. A field block for an HTTP request or response that contains a repeated pseudo-header "
    "field name MUST be treated as malformed."
)
MANDATORY = (
    "RFC 9113 8.3.1: All HTTP/2 requests MUST include exactly one valid value for the :method, "
    ":scheme, and :path pseudo-header fields, unless they are CONNECT requests. An HTTP request "
    "that omits mandatory pseudo-header fields is malformed."
)


@case(S, "Sends a request with an unknown pseudo-header field", MALFORMED, PSEUDO)
def unknown_pseudo(conn: Connection) -> str:
    headers = conn.request_headers()
    return send_malformed(conn, [*headers[:4], (":h2spec", "unknown")])


@case(
    S,
    "Sends a request with the response pseudo-header :status",
    MALFORMED,
    "RFC 9113 8.3: pseudo-header fields defined for responses MUST NOT appear in requests. "
    + PSEUDO,
)
def status_in_request(conn: Connection) -> str:
    return send_malformed(conn, [*conn.request_headers(), (":status", "200")])


@case(S, "Sends a pseudo-header field after a regular field", MALFORMED, ORDER)
def pseudo_after_regular(conn: Connection) -> str:
    headers = conn.request_headers()
    return send_malformed(conn, [*headers[:3], ("x-regular", "1"), headers[3]])


@case(
    S,
    "Sends a trailer section containing a pseudo-header field",
    MALFORMED,
    "RFC 9113 8.3: Pseudo-header fields MUST NOT appear in a trailer section. " + MALFORMED_RFC,
)
def pseudo_in_trailers(conn: Connection) -> str:
    sid = open_stream(conn)
    conn.send_data(sid, b"content", end_stream=False)
    conn.send_headers(sid, [(":method", "POST"), ("x-trailer", "1")], end_stream=True)
    return conn.expect_stream_error(sid, PROTOCOL_ERROR)


@case(S, "Sends a request with a duplicated :method", MALFORMED, REPEATED)
def duplicate_method(conn: Connection) -> str:
    return send_malformed(conn, [(":method", "GET"), *conn.request_headers()])


@case(S, "Sends a request with a duplicated :scheme", MALFORMED, REPEATED)
def duplicate_scheme(conn: Connection) -> str:
    headers = conn.request_headers()
    return send_malformed(conn, [*headers[:2], headers[1], *headers[2:]])


@case(S, "Sends a request with a duplicated :path", MALFORMED, REPEATED)
def duplicate_path(conn: Connection) -> str:
    headers = conn.request_headers()
    return send_malformed(conn, [*headers[:3], (":path", "/other"), *headers[3:]])


@case(S, "Sends a request with a duplicated :authority", MALFORMED, REPEATED)
def duplicate_authority(conn: Connection) -> str:
    return send_malformed(conn, [*conn.request_headers(), (":authority", "other.example")])


# -- 8.3.1 request pseudo-header fields ---------------------------------------------------------


@case(S1, "Sends a request without :method", MALFORMED, MANDATORY)
def missing_method(conn: Connection) -> str:
    return send_malformed(conn, without(conn.request_headers(), ":method"))


@case(S1, "Sends a request without :scheme", MALFORMED, MANDATORY)
def missing_scheme(conn: Connection) -> str:
    return send_malformed(conn, without(conn.request_headers(), ":scheme"))


@case(S1, "Sends a request without :path", MALFORMED, MANDATORY)
def missing_path(conn: Connection) -> str:
    return send_malformed(conn, without(conn.request_headers(), ":path"))


@case(
    S1,
    "Sends a request with an empty :path",
    MALFORMED,
    "RFC 9113 8.3.1: The :path pseudo-header field MUST NOT be empty for http or https URIs. "
    + MALFORMED_RFC,
)
def empty_path(conn: Connection) -> str:
    return send_malformed(conn, conn.request_headers(path=""))


@case(
    S1,
    "Sends an OPTIONS request with :path *",
    "a response",
    (
        "RFC 9113 8.3.1: an OPTIONS request for an http or https URI that does not include a path "
        "component MUST include a :path pseudo-header field with a value of '*'."
    ),
)
def options_asterisk(conn: Connection) -> str:
    return f"status {conn.roundtrip(conn.request_headers('OPTIONS', path='*')).status}"


@case(
    S1,
    "Sends a request without :authority but with a host header field",
    "a response",
    (
        "RFC 9113 8.3.1: a request may carry its authority in the Host header field instead of "
        ":authority."
    ),
)
def host_instead_of_authority(conn: Connection) -> str:
    headers = [*without(conn.request_headers(), ":authority"), ("host", conn.target.authority)]
    return f"status {conn.roundtrip(headers).status}"
