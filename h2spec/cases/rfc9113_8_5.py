"""RFC 9113 8.5: the CONNECT method."""

from __future__ import annotations

from h2spec.cases.common import MALFORMED, MALFORMED_RFC, send_malformed
from h2spec.connection import Connection
from h2spec.registry import case

S = "8.5"
CONNECT = (
    "RFC 9113 8.5: In a CONNECT request, the :method is CONNECT, the :scheme and :path "
    "pseudo-header fields MUST be omitted, and :authority contains the host and port to connect "
    "to. A CONNECT request that does not conform to these restrictions is malformed. "
    + MALFORMED_RFC
)


@case(S, "Sends a CONNECT request without :authority", MALFORMED, CONNECT)
def connect_without_authority(conn: Connection) -> str:
    return send_malformed(conn, [(":method", "CONNECT")], end_stream=False)


@case(S, "Sends a CONNECT request with :scheme and :path (no :protocol)", MALFORMED, CONNECT)
def connect_with_scheme_and_path(conn: Connection) -> str:
    headers = [
        (":method", "CONNECT"),
        (":scheme", conn.target.scheme),
        (":path", "/"),
        (":authority", "example.com:443"),
    ]
    return send_malformed(conn, headers, end_stream=False)
