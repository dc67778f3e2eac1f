"""What ``HTTP2Protocol`` tracks per stream next to h2's own state machine."""

from __future__ import annotations

from dataclasses import dataclass

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


@dataclass(slots=True, eq=False)
class Stream:
    """One open stream: its request's framing, flow-control credit and response state.

    A record (compared by identity): ``Stream(stream_id, scheme, authority)``, the rest
    starts at its default.
    """

    stream_id: int
    scheme: bytes
    authority: bytes | None
    content_length: int | None = None
    received: int = 0
    unacked: int = 0
    #: What the peer may still send on the stream, and what was consumed since the last
    #: WINDOW_UPDATE (inbound flow control is ours: DATA on open streams bypasses h2).
    window: int = 0
    credit: int = 0
    remote_closed: bool = False
    local_closed: bool = False
    response_started: bool = False
    expect_continue: bool = False
    #: DATA went out since the peer's last WINDOW_UPDATE for the stream.
    sent: bool = False
    #: A CONNECT stream: when one side ends, the tunnel is over.
    tunnel: bool = False
    #: A HEAD request: response content is dropped (RFC 9110 9.3.2).
    head: bool = False
