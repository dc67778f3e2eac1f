"""What ``HTTP2Protocol`` tracks per stream next to h2's own state machine."""

from __future__ import annotations

__all__ = ["ClosedStream", "Stream"]


class ClosedStream:
    """A stream that was reset (by either side): what may still arrive on it for free.

    After we reset a stream, frames the peer sent before it saw our RST_STREAM are ignored
    (RFC 9113 5.1 closed, 5.4.2): up to ``allowance`` DATA bytes (the stream window it could
    have in flight) and one trailer block. Anything beyond is a glitch. ``answered``: an
    RST_STREAM for the stream went out (when the client reset it, the first frame after is
    answered with RST_STREAM(STREAM_CLOSED), then ignored).
    """

    __slots__ = ("allowance", "answered", "trailers")

    def __init__(self, allowance: int, answered: bool) -> None:
        self.allowance = allowance
        self.trailers = allowance > 0
        self.answered = answered


class Stream:
    """One open stream: its request's framing, flow-control credit and response state."""

    __slots__ = (
        "authority",
        "content_length",
        "credit",
        "expect_continue",
        "head",
        "local_closed",
        "received",
        "remote_closed",
        "response_started",
        "scheme",
        "sent",
        "stream_id",
        "tunnel",
        "unacked",
        "window",
    )

    def __init__(self, stream_id: int, scheme: bytes, authority: bytes | None) -> None:
        self.stream_id = stream_id
        self.scheme = scheme
        self.authority = authority
        self.content_length: int | None = None
        self.received = 0
        self.unacked = 0
        #: What the peer may still send on the stream, and what was consumed since the last
        #: WINDOW_UPDATE (inbound flow control is ours: DATA on open streams bypasses h2).
        self.window = 0
        self.credit = 0
        self.remote_closed = False
        self.local_closed = False
        self.response_started = False
        self.expect_continue = False
        #: DATA went out since the peer's last WINDOW_UPDATE for the stream.
        self.sent = False
        #: A CONNECT stream: when one side ends, the tunnel is over.
        self.tunnel = False
        #: A HEAD request: response content is dropped (RFC 9110 9.3.2).
        self.head = False
