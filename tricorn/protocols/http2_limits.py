"""Abuse limits for HTTP/2: per-time-window counters and the defaults of every limit.

Time comes from an injected clock (``Callable[[], float]``, seconds) so that the protocol
stays sans-IO and tests can drive it.
"""

from __future__ import annotations

from collections.abc import Callable

DEFAULT_MAX_CONCURRENT_STREAMS = 100
DEFAULT_MAX_HEADER_LIST_SIZE = 65536
DEFAULT_INITIAL_WINDOW_SIZE = 1 << 20
DEFAULT_CONNECTION_WINDOW_SIZE = 4 << 20
DEFAULT_MAX_FRAME_SIZE = 16384
#: CONTINUATION frames allowed after one HEADERS frame (CVE-2024-27316 class).
DEFAULT_MAX_CONTINUATION_FRAMES = 32
#: Streams the peer may reset (or get refused) per window (CVE-2023-44487, rapid reset).
DEFAULT_MAX_RESETS_PER_WINDOW = 200
#: PING frames per window (CVE-2019-9512).
DEFAULT_MAX_PINGS_PER_WINDOW = 100
#: SETTINGS frames per window (CVE-2019-9515).
DEFAULT_MAX_SETTINGS_PER_WINDOW = 100
#: Empty DATA / HEADERS / CONTINUATION frames without END_STREAM per window (CVE-2019-9518).
DEFAULT_MAX_EMPTY_FRAMES_PER_WINDOW = 100
#: PRIORITY and PRIORITY_UPDATE frames per window (CVE-2019-9513, resource loop).
DEFAULT_MAX_PRIORITY_FRAMES_PER_WINDOW = 1000
#: Glitches per window: frames and resets that cost work without serving a request (see
#: ``GlitchBudget``).
DEFAULT_MAX_GLITCHES_PER_WINDOW = 1000
#: Request-body bytes read and discarded after a complete early response before the stream
#: is reset with RST_STREAM(NO_ERROR).
DEFAULT_DISCARD_BODY_LIMIT = 64 << 20
#: The largest request body (Config.max_request_body_size; 0: no limit).
DEFAULT_MAX_REQUEST_BODY_SIZE = 0
DEFAULT_RATE_WINDOW_SECONDS = 10.0
#: Bytes queued for the peer above which the protocol stops reading input.
DEFAULT_MAX_OUTPUT_BUFFER = 1 << 20


class RateLimit:
    """Counts events in fixed time windows; ``hit`` says when a window holds too many.

    A ``limit`` of 0 disables the counter.
    """

    __slots__ = ("_clock", "_count", "_start", "_window", "limit")

    def __init__(self, limit: int, window: float, clock: Callable[[], float]) -> None:
        self.limit = limit
        self._window = window
        self._clock = clock
        self._start = clock()
        self._count = 0

    def hit(self) -> bool:
        """Count one event; return True when the current window now holds more than the limit."""
        if not self.limit:
            return False
        now = self._clock()
        if now - self._start >= self._window:
            self._start = now
            self._count = 0
        self._count += 1
        return self._count > self.limit


class GlitchBudget:
    """One per-connection budget for everything that costs work without serving a request.

    A leaky bucket: each glitch adds its cost, and the level drains at ``limit / window``
    per second, so a steady ``limit`` per ``window`` is allowed for ever and a burst of more
    than ``limit`` at once is not (no fixed-window edge where twice the limit gets through).
    A ``limit`` of 0 disables it.
    """

    __slots__ = ("_clock", "_last", "_rate", "level", "limit")

    def __init__(self, limit: int, window: float, clock: Callable[[], float]) -> None:
        self.limit = limit
        self._rate = limit / window if window > 0 else 0.0
        self._clock = clock
        self._last = clock()
        self.level = 0.0

    def charge(self, cost: float = 1.0) -> bool:
        """Add ``cost``; return True when the budget is now exhausted."""
        if not self.limit:
            return False
        now = self._clock()
        level = self.level - (now - self._last) * self._rate
        self._last = now
        self.level = (level if level > 0.0 else 0.0) + cost
        return self.level > self.limit
