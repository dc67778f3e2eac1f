"""RFC 9113 5.1.2: stream concurrency (SETTINGS_MAX_CONCURRENT_STREAMS)."""

from __future__ import annotations

from h2spec import frames as f
from h2spec.cases.common import open_stream
from h2spec.connection import Connection
from h2spec.registry import Skip, case

S = "5.1.2"
LIMIT_CAP = 1000


def _limit(conn: Connection) -> int:
    limit = conn.server_settings.get(f.SETTINGS_MAX_CONCURRENT_STREAMS)
    if limit is None or limit > LIMIT_CAP:
        raise Skip(f"server advertises SETTINGS_MAX_CONCURRENT_STREAMS={limit}")
    return limit


@case(
    S,
    "Opens one stream more than SETTINGS_MAX_CONCURRENT_STREAMS",
    "RST_STREAM or GOAWAY (PROTOCOL_ERROR or REFUSED_STREAM)",
    (
        "RFC 9113 5.1.2: An endpoint that receives a HEADERS frame that causes its advertised "
        "concurrent stream limit to be exceeded MUST treat this as a stream error of type "
        "PROTOCOL_ERROR or REFUSED_STREAM."
    ),
)
def exceed_limit(conn: Connection) -> str:
    limit = _limit(conn)
    for _ in range(limit):
        open_stream(conn)
    sid = open_stream(conn)
    return conn.expect_stream_error(sid, f.PROTOCOL_ERROR, f.REFUSED_STREAM)


@case(
    S,
    "Opens exactly SETTINGS_MAX_CONCURRENT_STREAMS streams",
    "no error (PING ACK)",
    (
        "RFC 9113 5.1.2: streams in the open or half-closed states count toward the limit; up to "
        "the limit is allowed."
    ),
)
def up_to_limit(conn: Connection) -> str:
    limit = _limit(conn)
    for _ in range(limit):
        open_stream(conn)
    return f"{limit} streams, " + conn.expect_alive()


@case(
    S,
    "Opens more streams than the limit one after another, each completed first",
    "all responses",
    (
        "RFC 9113 5.1.2: only open and half-closed streams count toward the limit; closed streams "
        "do not."
    ),
)
def closed_streams_do_not_count(conn: Connection) -> str:
    limit = _limit(conn)
    for _ in range(limit + 5):
        conn.roundtrip()
    return f"{limit + 5} responses"
