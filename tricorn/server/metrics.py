"""Counters and histograms of one server (their export is ``metrics_export.py``).

The request path only adds to plain ints (``Metrics``): no locks, no label lookups in a
library, no formatting and no socket per request. A read, a write (and an HTTP/2 stream's
start) each add to one attribute of their protocol's ``ProtocolCounters``; a response's end is one
call (``response_done``: one count by labels and duration bucket together, one sum, and the
statsd sample's countdown). The requests in flight are not counted per request: a snapshot
counts the app instances running on the live connections (``running``). A scrape or a statsd
flush turns them into a ``Snapshot`` (plain data: the same shape whether it comes from this
process or, as JSON, from a worker), which ``metrics_export`` renders for Prometheus or
formats as statsd lines, and which ``tricorn.process.metrics`` adds up across workers.

Every label is bounded: protocol (``http/1.1``, ``h2``, ``h3``), method (the standard methods and
``other``), status class, HTTP/2 error code names, named kinds of protocol errors and abuse
limits. Never a path or a client address.
"""

from __future__ import annotations

import contextvars
import json
import logging
import math
import random
import time
from bisect import bisect_left
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from tricorn.config import Config
from tricorn.constants import ERROR_LOGGER

if TYPE_CHECKING:
    from tricorn.protocols.events import ProtocolError, Request

error_log = logging.getLogger(ERROR_LOGGER)
_random = random.random
_getrandbits = random.getrandbits
_floor = math.floor

#: The protocol label of connections, requests and bytes: a connection class's
#: ``METRICS_INDEX`` is its place here.
PROTOCOLS = ("http/1.1", "h2", "h3")
HTTP1, HTTP2, HTTP3 = 0, 1, 2
#: A scope's ``http_version`` -> its protocol label's index (HTTP/1.0 and 1.1: HTTP1).
_VERSION_INDEX = {"2": HTTP2, "3": HTTP3}
#: The method label: RFC 9110's methods and PATCH; anything else is "other".
METHODS = ("GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH", "other")
_METHOD_INDEX = {method: index for index, method in enumerate(METHODS)}
_OTHER_METHOD = len(METHODS) - 1
#: The status label: index status // 100 (0 for anything out of 1xx..5xx); "none" for a
#: request that ended with no response head sent (status 0 in the access log).
STATUS_CLASSES = ("other", "1xx", "2xx", "3xx", "4xx", "5xx", "none")
_NO_STATUS = len(STATUS_CLASSES) - 1
#: status // 100 (statuses are 100..999) -> its place in STATUS_CLASSES.
_STATUS_INDEX = (0, 1, 2, 3, 4, 5, 0, 0, 0, 0)
#: The requests answered completely (outcome ok) are counted by *slot*: one per (protocol,
#: method, status class), (protocol * len(METHODS) + method) * len(STATUS_CLASSES) + status
#: class. Where h2's slots start:
_PROTOCOL_STRIDE = len(METHODS) * len(STATUS_CLASSES)
_SLOT_COUNT = len(PROTOCOLS) * _PROTOCOL_STRIDE
#: A request's ``http_version`` -> the first slot of its GETs (its status class is added);
#: HTTP/1.0 and 1.1 are both "http/1.1". Other methods: ``_odd_slot``.
_GET_SLOTS = {"1.0": 0, "1.1": 0, "2": _PROTOCOL_STRIDE, "3": 2 * _PROTOCOL_STRIDE}
#: A status's offset from its method's first slot (100..999; the rest is never read).
_STATUS_SLOT = [_STATUS_INDEX[status // 100] for status in range(1000)]
#: Request duration buckets, seconds: from a cached hello world to a slow upload.
DURATION_BUCKETS = (
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
)  # fmt: skip
_FIRST_BUCKET, _SECOND_BUCKET, _THIRD_BUCKET = DURATION_BUCKETS[:3]
_TWO_SLOT_COUNTS = 2 * _SLOT_COUNT

#: HTTP/2 error codes by number (RFC 9113 7).
H2_ERROR_CODES = (
    "NO_ERROR", "PROTOCOL_ERROR", "INTERNAL_ERROR", "FLOW_CONTROL_ERROR", "SETTINGS_TIMEOUT",
    "STREAM_CLOSED", "FRAME_SIZE_ERROR", "REFUSED_STREAM", "CANCEL", "COMPRESSION_ERROR",
    "CONNECT_ERROR", "ENHANCE_YOUR_CALM", "INADEQUATE_SECURITY", "HTTP_1_1_REQUIRED",
)  # fmt: skip
ENHANCE_YOUR_CALM = 0xB
REFUSED_STREAM = 0x7

#: The outcome label of ``requests_total``: the access log's outcome of each line
#: (``tricorn.server.access_log``); "ok" is counted apart, in ``Metrics.requests``.
OUTCOMES = ("ok", "client_gone", "app_error", "shutdown", "timeout", "cancelled", "rejected")
#: The result label of ``proxy_protocol_connections_total``: a header accepted (``proxy``:
#: a relayed connection; ``local``: the LOCAL command or UNKNOWN, the proxy's own
#: connection such as a health check), or the connection closed: ``malformed`` (a bad or
#: missing header), ``not_allowed`` (a header from a peer not in proxy_protocol_allow_ips),
#: ``closed`` (closed before sending a byte: a TCP health check), ``timeout``.
PROXY_RESULTS = ("proxy", "local", "malformed", "not_allowed", "closed", "timeout")

#: HTTP/1.1 rejections that are request smuggling shapes (RFC 9112 6.1, 6.3, 11.2: framing
#: that two parsers could read differently), by the start of the message of the check of
#: ``protocols/http11_rules.py`` that raises them. A bare CR or LF shares its message with
#: other control bytes, so it counts as bad_request; so does whitespace before a colon on
#: the h11 parser (h11's own message).
SMUGGLING_MESSAGES = (
    "both Content-Length and Transfer-Encoding",
    "conflicting Content-Length values",
    "Transfer-Encoding in an HTTP/1.0 request",
    "chunked applied more than once",
    "unsupported Transfer-Encoding",
    "invalid Content-Length",
    "Content-Length has more than",
    "Content-Length larger than",
    "obsolete line folding",
    "whitespace between header name and colon",
    "more than one Host",
    "invalid chunk",
    "malformed chunk",
)
#: The kind label of an HTTP/1.1 rejection, by the status answered.
HTTP1_ERROR_KINDS = {
    400: "bad_request",
    408: "request_timeout",
    413: "body_too_large",
    414: "uri_too_long",
    431: "head_too_large",
    501: "not_implemented",
    505: "version_not_supported",
}
#: The limit label of an HTTP/2 abuse limit (GOAWAY ENHANCE_YOUR_CALM), by a piece of the
#: message the protocol gives (``protocols/http2*.py``); the first match wins.
ABUSE_LIMITS = (
    ("rapid reset", "rapid_reset"),
    ("PING flood", "ping_flood"),
    ("SETTINGS flood", "settings_flood"),
    ("PRIORITY", "priority_flood"),
    ("empty", "empty_frames"),
    ("glitch budget", "glitch_budget"),
    ("CONTINUATION", "continuation_frames"),
    ("header block too large", "header_block_size"),
    ("header list too large", "header_list_size"),
    ("malformed requests", "stream_errors"),
    ("streams refused", "stream_errors"),
    ("stream errors", "stream_errors"),
)
#: WebSocket close codes a protocol error is answered with, as a kind label.
WS_ERROR_KINDS = {1002: "ws_protocol_error", 1007: "ws_invalid_data", 1009: "ws_message_too_big"}


def h2_code_name(code: int | None) -> str:
    if code is None:
        return "NO_ERROR"
    return H2_ERROR_CODES[code] if 0 <= code < len(H2_ERROR_CODES) else "UNKNOWN"


def http1_error_kind(status: int | None, message: str) -> str:
    """The kind label of an HTTP/1.1 request the protocol refused (``ProtocolError``)."""
    if status in (400, 501) and message.startswith(SMUGGLING_MESSAGES):
        return "smuggling"
    return HTTP1_ERROR_KINDS.get(status or 0, "other")


def abuse_limit(message: str) -> str:
    for piece, name in ABUSE_LIMITS:
        if piece in message:
            return name
    return "other"


def tls_failure_reason(message: str) -> str:
    """The reason label of a failed TLS handshake, from ``HandshakeFailed``'s message."""
    if message.startswith("TimeoutError"):
        return "timeout"
    if "SSL" in message or "TLS" in message or "CERTIFICATE" in message.upper():
        return "tls_error"
    return "closed"


# --- counting ---------------------------------------------------------------------------


class ProtocolCounters:
    """The counts of one protocol label that its connections update themselves, per read,
    write and stream: each connection holds its protocol's (``Connection._counters``), so
    that each count is one attribute away (``counters.bytes_sent += size``)."""

    __slots__ = (
        "bytes_received",
        "bytes_sent",
        "connections_open",
        "connections_total",
        "streams_started",
    )

    def __init__(self) -> None:
        self.bytes_received = 0
        self.bytes_sent = 0
        self.connections_open = 0
        #: Connections closed (not handed off to another protocol).
        self.connections_total = 0
        #: App instances started (HTTP requests and WebSockets): counted by HTTP/2 only
        #: (``HTTP2Connection._spawn_stream``), for ``http2_streams_total``.
        self.streams_started = 0


class Metrics:
    """The counters of one server (one ``serve``), incremented from its event loop only."""

    __slots__ = (
        "_timings_left",
        "_timings_stride",
        "_timings_window",
        "abuse",
        "clock",
        "cut_duration_sums",
        "cut_durations",
        "duration_sums",
        "goaways",
        "protocol_errors",
        "protocols",
        "proxy_protocol",
        "requests",
        "requests_cut",
        "resets",
        "running",
        "timings",
        "timings_next",
        "tls_failures",
        "ws_messages_received",
        "ws_messages_sent",
        "ws_open",
        "ws_total",
    )

    def __init__(self, *, timings: int = 0) -> None:
        self.clock = time.monotonic
        #: Per protocol label (``PROTOCOLS``): connections, bytes, streams.
        self.protocols = tuple(ProtocolCounters() for _ in PROTOCOLS)
        #: Requests answered completely (outcome ok), by slot (``_GET_SLOTS``,
        #: ``_odd_slot``) and duration bucket, flat: ``bucket * _SLOT_COUNT + slot`` (the
        #: last bucket is +Inf). One count per request says both its labels and its duration
        #: bucket; a snapshot adds them up into ``requests_total`` and the histogram.
        self.requests = [0] * ((len(DURATION_BUCKETS) + 1) * _SLOT_COUNT)
        #: Their durations' sums, by slot.
        self.duration_sums = [0.0] * _SLOT_COUNT
        #: (protocol, method, status class, outcome) -> count, for outcomes other than ok;
        #: their durations per protocol: a count per bucket, and the sums.
        self.requests_cut: dict[tuple[str, ...], int] = {}
        self.cut_durations = [[0] * (len(DURATION_BUCKETS) + 1) for _ in PROTOCOLS]
        self.cut_duration_sums = [0.0] * len(PROTOCOLS)
        self.ws_open = 0
        self.ws_total = 0
        self.ws_messages_received = 0
        self.ws_messages_sent = 0
        #: (direction, code name) -> count; direction "sent" or "received".
        self.resets: dict[tuple[str, str], int] = {}
        self.goaways: dict[tuple[str, str], int] = {}
        #: (protocol, kind) -> count.
        self.protocol_errors: dict[tuple[str, str], int] = {}
        self.abuse: dict[str, int] = {}
        self.tls_failures: dict[str, int] = {}
        #: PROXY protocol step results (``PROXY_RESULTS``) -> count.
        self.proxy_protocol: dict[str, int] = {}
        #: What counts the app instances running now, one per ``serve`` counting here
        #: (``ServerState.running_streams``): their sum is ``requests_in_flight``.
        self.running: list[Callable[[], int]] = []
        #: For statsd: up to ``STATSD_MAX_TIMINGS`` request durations (ms) sampled since the
        #: last flush (one from each window of ``_timings_stride`` requests).
        self.timings: list[float] | None = [] if timings else None
        #: The count (since the last flush) of the next duration that goes into the sample,
        #: drawn in its window (``_take_timing``); the window's first count and its length.
        self.timings_next = 1
        self._timings_window = 1
        self._timings_stride = 1
        #: How many requests until that one (it is the one that brings this to 0): a
        #: countdown rather than a count of the requests, whose ints pass 256 and so are
        #: made anew each request (``timings_seen`` is worked out from the two).
        self._timings_left = 1

    # --- the hooks (each called from one place; see connection.py) ---------------------

    def connection_opened(self, protocol: int) -> None:
        self.protocols[protocol].connections_open += 1

    def connection_closed(self, protocol: int, handed_off: bool) -> None:
        """Counted in the total when it closes, unless it goes on in another protocol (h2c:
        the HTTP/1.1 connection that read the preface or the upgrade becomes an h2 one)."""
        counters = self.protocols[protocol]
        counters.connections_open -= 1
        if not handed_off:
            counters.connections_total += 1

    def websocket_accepted(self) -> None:
        self.ws_open += 1
        self.ws_total += 1

    def response_done(self, request: Request, status: int, start_time: float) -> None:
        """A response was sent completely, outcome ok (where the access line is written):
        everything a request counts, in one call. Its labels come from the request head
        (what the client sent), not from the scope, which the app may have changed."""
        # Written for speed: this runs once per request (tricorn.server.metrics docstring):
        # no call but the clock's in the common case (GET, a duration in the first three
        # buckets, a duration the statsd sample does not draw for), slotted attributes and
        # list subscripts rather than the scope's dict (two hashed lookups, ~400
        # instructions), two counts (the slot-and-bucket, the sum), no allocation but the
        # duration's float and the counts' ints.
        duration = self.clock() - start_time
        if request.method == b"GET":
            slot = _GET_SLOTS[request.http_version] + _STATUS_SLOT[status]
        else:
            slot = _odd_slot(request, status)
        self.duration_sums[slot] += duration
        # The first buckets by compares: bisect_left's call and the index's product cost
        # more than two compares (under 5 ms: most requests, and every one under callgrind).
        if duration <= _FIRST_BUCKET:
            self.requests[slot] += 1
        elif duration <= _SECOND_BUCKET:
            self.requests[_SLOT_COUNT + slot] += 1
        elif duration <= _THIRD_BUCKET:
            self.requests[_TWO_SLOT_COUNTS + slot] += 1
        else:
            self.requests[bisect_left(DURATION_BUCKETS, duration) * _SLOT_COUNT + slot] += 1
        timings = self.timings
        if timings is not None:
            left = self._timings_left - 1
            if left:
                self._timings_left = left
            elif self._timings_stride == 1 and len(timings) < STATSD_MAX_TIMINGS:
                timings.append(duration * 1000.0)  # windows of one: no draw, no call
                self._timings_window = self.timings_next = self.timings_next + 1  # left: 1
            else:
                self._take_timing(timings, duration * 1000.0)

    def response_cut(
        self, scope: Mapping[str, Any], status: int, outcome: str, start_time: float
    ) -> None:
        """A request whose access line has another outcome than ok (cut short, a 500 for a
        failed app, a 408): counted with its outcome; status 0 (no head sent) is "none"."""
        protocol = _VERSION_INDEX.get(scope["http_version"], HTTP1)
        self.request_ended(protocol, scope["method"], status, outcome, self.clock() - start_time)

    def request_ended(
        self, protocol: int, method: str | None, status: int, outcome: str, duration: float
    ) -> None:
        """One request of any outcome but ok (also those refused before a stream existed,
        whose method may be unknown: "other")."""
        method_label = METHODS[_METHOD_INDEX.get(method or "", _OTHER_METHOD)]
        status_label = STATUS_CLASSES[_STATUS_INDEX[status // 100] if status else _NO_STATUS]
        key = (PROTOCOLS[protocol], method_label, status_label, outcome)
        self.requests_cut[key] = self.requests_cut.get(key, 0) + 1
        self.cut_duration_sums[protocol] += duration
        self.cut_durations[protocol][bisect_left(DURATION_BUCKETS, duration)] += 1
        self.sample_timing(duration * 1000.0)

    def proxy_protocol_result(self, result: str) -> None:
        """The PROXY protocol step of one connection ended (``PROXY_RESULTS``)."""
        self.proxy_protocol[result] = self.proxy_protocol.get(result, 0) + 1

    def sample_timing(self, milliseconds: float) -> None:
        """Offer one duration to the statsd sample (``response_done`` inlines this)."""
        timings = self.timings
        if timings is not None:
            left = self._timings_left - 1
            if left:
                self._timings_left = left
            else:
                self._take_timing(timings, milliseconds)

    @property
    def timings_seen(self) -> int:
        """How many requests were offered to the sample since the last flush."""
        return self.timings_next - self._timings_left

    # The sample is stratified: the interval's requests are cut into windows of
    # ``_timings_stride`` in a row, and one duration of each window, at a random place in
    # it, goes in. Every duration of the interval is as likely to be in the sample, as in
    # a reservoir, and a request costs one compare; a taken one an append and one random
    # draw (a reservoir kept by Li's Algorithm L needed a log and two powers per
    # replacement, about 6,000 instructions, for some 3,000 replacements a second at 20k
    # requests/s). When the sample is full, pairs of windows become one window of twice
    # the stride, keeping one of each pair's two durations at random. Each interval starts
    # with the stride that would have filled 4/5 of the sample in the last one.

    def _take_timing(self, timings: list[float], milliseconds: float) -> None:
        """The duration of count ``timings_next`` goes into the sample (its window's one);
        then the place of the next window's is drawn."""
        stride = self._timings_stride
        window = self._timings_window
        taken = self.timings_next
        if len(timings) == STATSD_MAX_TIMINGS:
            # Full, at the first window of a pair: the windows so far pair up, one duration
            # of each pair kept; this window is the first half of a window twice as long.
            # One random bit per pair, as the digits of one draw: a pair's "1" keeps its
            # second. (Shifting the 500-bit draw once per pair made a new big int each
            # time: 2.2 million instructions a merge, against about 60,000 this way.)
            flips = format(_getrandbits(_HALF_MAX_TIMINGS), _HALF_BITS)
            timings[:] = [
                second if flip == "1" else first
                for first, second, flip in zip(timings[0::2], timings[1::2], flips, strict=True)
            ]
            self._timings_stride = stride * 2
            if _random() < 0.5:  # the longer window's duration comes from its second half
                self.timings_next = window + stride + _floor(_random() * stride)
                self._timings_left = self.timings_next - taken
                return
            stride *= 2
        timings.append(milliseconds)
        window += stride
        self._timings_window = window
        self.timings_next = window + _floor(_random() * stride) if stride > 1 else window
        self._timings_left = self.timings_next - taken

    def protocol_error(self, protocol: str, kind: str) -> None:
        key = (protocol, kind)
        self.protocol_errors[key] = self.protocol_errors.get(key, 0) + 1

    def http1_error(self, event: ProtocolError) -> None:
        """HTTP/1.1 refused a request (``ProtocolError`` with the status answered)."""
        self.protocol_error("http/1.1", http1_error_kind(event.status, event.message))

    def websocket_error(self, code: int | None) -> None:
        """A WebSocket broke the protocol or a limit (closed with ``code``)."""
        self.protocol_error("websocket", WS_ERROR_KINDS.get(code or 0, "ws_other"))

    def reset(self, direction: str, code: int | None) -> None:
        key = (direction, h2_code_name(code))
        self.resets[key] = self.resets.get(key, 0) + 1

    def count_resets_sent(self, code: int, count: int) -> None:
        """Resets the protocol sent without an event (REFUSED_STREAM after our GOAWAY),
        added when the connection ends."""
        key = ("sent", h2_code_name(code))
        self.resets[key] = self.resets.get(key, 0) + count

    def goaway(self, direction: str, code: int | None) -> None:
        key = (direction, h2_code_name(code))
        self.goaways[key] = self.goaways.get(key, 0) + 1

    def h2_error(self, event: ProtocolError) -> None:
        """HTTP/2 answered a peer's error (the RST_STREAM or GOAWAY is queued already)."""
        if event.status == 431:
            self.protocol_error("h2", "head_too_large")
        elif event.status == 413 or event.message.startswith("request body over"):
            # max_request_body_size: a 413 (no reset yet: the rest of the body is
            # discarded), or a reset with CANCEL once the response had started.
            if event.error_code is not None:
                self.reset("sent", event.error_code)
            self.protocol_error("h2", "body_too_large")
        elif event.stream_id is not None:
            self.reset("sent", event.error_code)
            refused = event.error_code == REFUSED_STREAM
            self.protocol_error("h2", "refused_stream" if refused else "stream_error")
        else:
            self.goaway("sent", event.error_code)
            if event.error_code == ENHANCE_YOUR_CALM:
                self.abuse_triggered(abuse_limit(event.message))
            self.protocol_error("h2", "connection_error")

    def abuse_triggered(self, limit: str) -> None:
        self.abuse[limit] = self.abuse.get(limit, 0) + 1

    def tls_failed(self, error: BaseException) -> None:
        reason = tls_failure_reason(str(error))
        self.tls_failures[reason] = self.tls_failures.get(reason, 0) + 1

    # --- reading --------------------------------------------------------------------

    def snapshot(self) -> Snapshot:
        """Every series now, as plain data (see ``Snapshot``)."""
        s: Snapshot = {}
        protocols = self.protocols
        s["connections_open"] = _by_protocol([p.connections_open for p in protocols])
        s["connections_total"] = _by_protocol([p.connections_total for p in protocols])
        s["received_bytes_total"] = _by_protocol([p.bytes_received for p in protocols])
        s["sent_bytes_total"] = _by_protocol([p.bytes_sent for p in protocols])
        by_slot = [0] * _SLOT_COUNT
        histograms = [list(cut) for cut in self.cut_durations]
        for index, count in enumerate(self.requests):
            if count:
                bucket, slot = divmod(index, _SLOT_COUNT)
                by_slot[slot] += count
                histograms[slot // _PROTOCOL_STRIDE][bucket] += count
        requests: dict[tuple[str, ...], Any] = {}
        for slot, count in enumerate(by_slot):
            if count:
                rest, status = divmod(slot, len(STATUS_CLASSES))
                protocol, method = divmod(rest, len(METHODS))
                labels = (PROTOCOLS[protocol], METHODS[method], STATUS_CLASSES[status], "ok")
                requests[labels] = count
        requests.update(self.requests_cut)
        s["requests_total"] = requests
        sums = self.duration_sums
        s["request_duration_seconds"] = {
            (PROTOCOLS[protocol],): [
                *histogram,
                math.fsum(sums[protocol * _PROTOCOL_STRIDE : (protocol + 1) * _PROTOCOL_STRIDE])
                + self.cut_duration_sums[protocol],
            ]
            for protocol, histogram in enumerate(histograms)
            if any(histogram)
        }
        s["requests_in_flight"] = {(): sum(running() for running in self.running)}
        s["websocket_connections_open"] = {(): self.ws_open}
        s["websocket_connections_total"] = {(): self.ws_total}
        s["websocket_messages_received_total"] = {(): self.ws_messages_received}
        s["websocket_messages_sent_total"] = {(): self.ws_messages_sent}
        s["http2_streams_total"] = {(): protocols[HTTP2].streams_started}
        for direction in ("sent", "received"):
            s[f"http2_resets_{direction}_total"] = {
                (code,): n for (way, code), n in self.resets.items() if way == direction
            }
            s[f"http2_goaways_{direction}_total"] = {
                (code,): n for (way, code), n in self.goaways.items() if way == direction
            }
        s["protocol_errors_total"] = {key: n for key, n in self.protocol_errors.items()}
        s["abuse_limit_triggers_total"] = {(name,): n for name, n in self.abuse.items()}
        s["tls_handshake_failures_total"] = {(name,): n for name, n in self.tls_failures.items()}
        s["proxy_protocol_connections_total"] = {
            (name,): n for name, n in self.proxy_protocol.items()
        }
        return s

    def take_timings(self) -> tuple[list[float], int]:
        """The sampled durations (ms) since the last call and how many requests they stand
        for; starts a new sample."""
        timings, seen = self.timings or [], self.timings_seen
        if self.timings is not None:
            self.timings = []
        # The stride that would have taken 4/5 of STATSD_MAX_TIMINGS from ``seen``.
        stride = max(1, -(-seen * 5 // (4 * STATSD_MAX_TIMINGS)))
        self._timings_stride = stride
        self._timings_window = 1
        self.timings_next = self._timings_left = 1 + _floor(_random() * stride) if stride > 1 else 1
        return timings, seen


def _odd_slot(request: Request, status: int) -> int:
    """The slot of a request of another method than GET (a method not in ``METHODS``:
    "other")."""
    protocol = _VERSION_INDEX.get(request.http_version, HTTP1)
    method = _METHOD_INDEX.get(request.method.decode("latin-1"), _OTHER_METHOD)
    return (protocol * len(METHODS) + method) * len(STATUS_CLASSES) + _STATUS_SLOT[status]


def _by_protocol(values: list[int]) -> dict[tuple[str, ...], Any]:
    return {(PROTOCOLS[index],): value for index, value in enumerate(values)}


#: Metric name (without ``tricorn_``) -> {label values: value}; a histogram's value is its
#: per-bucket counts (not cumulative; the last bucket is +Inf) followed by the sum.
Snapshot = dict[str, dict[tuple[str, ...], Any]]


@dataclass(frozen=True, slots=True)
class Family:
    name: str
    kind: str  # "counter", "gauge", "histogram"
    help: str
    labels: tuple[str, ...] = ()


FAMILIES = (
    Family("connections_open", "gauge", "Open connections.", ("protocol",)),
    Family(
        "connections_total",
        "counter",
        "Connections closed, by the protocol they ended in (h2c counts as h2).",
        ("protocol",),
    ),
    Family(
        "requests_total",
        "counter",
        "HTTP requests, one per access log line: by status class ('none': no response head "
        "sent) and outcome ('ok': answered completely; else what cut it short or refused it).",
        ("protocol", "method", "status", "outcome"),
    ),
    Family(
        "request_duration_seconds",
        "histogram",
        "Seconds from the request head to the end of the response (or of the request, "
        "for one cut short or refused).",
        ("protocol",),
    ),
    Family("requests_in_flight", "gauge", "App instances running (HTTP requests and WebSockets)."),
    Family("received_bytes_total", "counter", "Bytes read from connections.", ("protocol",)),
    Family("sent_bytes_total", "counter", "Bytes written to connections.", ("protocol",)),
    Family("websocket_connections_open", "gauge", "Open (accepted) WebSockets."),
    Family("websocket_connections_total", "counter", "WebSockets accepted."),
    Family("websocket_messages_received_total", "counter", "WebSocket messages received."),
    Family("websocket_messages_sent_total", "counter", "WebSocket messages sent."),
    Family("http2_streams_total", "counter", "HTTP/2 streams served (requests, WebSockets)."),
    Family("http2_resets_sent_total", "counter", "RST_STREAM frames sent.", ("error_code",)),
    Family(
        "http2_resets_received_total", "counter", "RST_STREAM frames received.", ("error_code",)
    ),
    Family("http2_goaways_sent_total", "counter", "GOAWAY frames sent.", ("error_code",)),
    Family("http2_goaways_received_total", "counter", "GOAWAY frames received.", ("error_code",)),
    Family(
        "protocol_errors_total",
        "counter",
        "Requests or connections refused for breaking the protocol or a limit.",
        ("protocol", "kind"),
    ),
    Family(
        "abuse_limit_triggers_total",
        "counter",
        "HTTP/2 connections closed by an abuse limit (GOAWAY ENHANCE_YOUR_CALM).",
        ("limit",),
    ),
    Family("tls_handshake_failures_total", "counter", "TLS handshakes that failed.", ("reason",)),
    Family(
        "proxy_protocol_connections_total",
        "counter",
        "Connections through the PROXY protocol step, by result: proxy, local (header "
        "accepted); malformed, not_allowed, closed (no byte: a health check), timeout.",
        ("result",),
    ),
)
FAMILY_BY_NAME = {family.name: family for family in FAMILIES}


def merge(snapshots: Iterable[Snapshot], *, gauges: bool = True) -> Snapshot:
    """The sum of ``snapshots``, series by series (gauges left out unless ``gauges``)."""
    total: Snapshot = {}
    for snapshot in snapshots:
        for name, series in snapshot.items():
            family = FAMILY_BY_NAME.get(name)
            if family is None or (family.kind == "gauge" and not gauges):
                continue
            into = total.setdefault(name, {})
            for labels, value in series.items():
                if family.kind == "histogram":
                    old = into.get(labels)
                    into[labels] = (
                        list(value)
                        if old is None
                        else [a + b for a, b in zip(old, value, strict=True)]
                    )
                else:
                    into[labels] = into.get(labels, 0) + value
    return total


def snapshot_to_json(snapshot: Snapshot) -> bytes:
    return json.dumps(
        {
            name: [[*labels, value] for labels, value in series.items()]
            for name, series in snapshot.items()
        },
        separators=(",", ":"),
    ).encode()


def snapshot_from_json(data: bytes) -> Snapshot:
    """The snapshot a worker sent; raises ``ValueError`` for anything else."""
    raw = json.loads(data)
    if not isinstance(raw, dict):
        raise ValueError("not a snapshot")
    snapshot: Snapshot = {}
    for name, rows in raw.items():
        family = FAMILY_BY_NAME.get(name)
        if family is None or not isinstance(rows, list):
            continue
        series: dict[tuple[str, ...], Any] = {}
        for row in rows:
            if not isinstance(row, list) or len(row) != len(family.labels) + 1:
                raise ValueError(f"bad row in {name}")
            series[tuple(str(label) for label in row[:-1])] = row[-1]
        snapshot[name] = series
    return snapshot


#: Request durations kept per flush for statsd timers (a uniform sample past this; the
#: timer lines then carry the sample rate).
STATSD_MAX_TIMINGS = 1000
_HALF_MAX_TIMINGS = STATSD_MAX_TIMINGS // 2
_HALF_BITS = f"0{_HALF_MAX_TIMINGS}b"  # format(): every bit, leading zeros too


# --- wiring into serve ------------------------------------------------------------------

#: Set by a worker process (``tricorn.process.metrics``) around its ``serve``: the server
#: counts into this object, which the worker sends to the supervisor.
PROCESS_METRICS: contextvars.ContextVar[Metrics | None] = contextvars.ContextVar(
    "tricorn_process_metrics", default=None
)
#: Labels a worker adds to its statsd gauges (``worker``).
STATSD_GAUGE_LABELS: contextvars.ContextVar[dict[str, str] | None] = contextvars.ContextVar(
    "tricorn_statsd_gauge_labels", default=None
)


def metrics_for(config: Config) -> Metrics | None:
    """The ``Metrics`` a server counts into: None (no counting at all) unless metrics_bind
    or statsd_host is set or a worker collects them."""
    given = PROCESS_METRICS.get()
    if given is not None:
        if config.statsd_host and given.timings is None:
            given.timings = []
        return given
    if config.metrics_bind or config.statsd_host:
        return Metrics(timings=STATSD_MAX_TIMINGS if config.statsd_host else 0)
    return None
