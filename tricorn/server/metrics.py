"""Counters and histograms of one server, and their export: Prometheus text and statsd.

The request path only adds to plain ints (``Metrics``): no locks, no label lookups in a
library, no allocation per request. A scrape turns them into a ``Snapshot`` (plain data:
the same shape whether it comes from this process or, as JSON, from a worker) and the
snapshot into prometheus_client's metric families (``render_prometheus``); the statsd task
sends the differences since its last flush (``StatsdSender``). prometheus_client is only
imported to render a scrape, and only needed when ``metrics_bind`` is set.

Every label is bounded: protocol (``http/1.1``, ``h2``), method (the standard methods and
``other``), status class, HTTP/2 error code names, named kinds of protocol errors and abuse
limits. Never a path or a client address.
"""

from __future__ import annotations

import contextvars
import json
import logging
import random
import socket
import time
from bisect import bisect_left
from collections.abc import Callable, Coroutine, Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import anyio
from anyio.abc import SocketStream

from tricorn.config import Config
from tricorn.constants import ERROR_LOGGER
from tricorn.errors import ConfigError

if TYPE_CHECKING:
    from tricorn.protocols.events import ProtocolError

error_log = logging.getLogger(ERROR_LOGGER)

#: The protocol label of connections, requests and bytes: a connection class's
#: ``METRICS_INDEX`` is its place here.
PROTOCOLS = ("http/1.1", "h2")
HTTP1, HTTP2 = 0, 1
#: The method label: RFC 9110's methods and PATCH; anything else is "other".
METHODS = ("GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH", "other")
_METHOD_INDEX = {method: index for index, method in enumerate(METHODS)}
_OTHER_METHOD = len(METHODS) - 1
#: The status label: index status // 100 (0 for anything out of 1xx..5xx).
STATUS_CLASSES = ("other", "1xx", "2xx", "3xx", "4xx", "5xx")
#: Request duration buckets, seconds: from a cached hello world to a slow upload.
DURATION_BUCKETS = (
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
)  # fmt: skip

#: HTTP/2 error codes by number (RFC 9113 7).
H2_ERROR_CODES = (
    "NO_ERROR", "PROTOCOL_ERROR", "INTERNAL_ERROR", "FLOW_CONTROL_ERROR", "SETTINGS_TIMEOUT",
    "STREAM_CLOSED", "FRAME_SIZE_ERROR", "REFUSED_STREAM", "CANCEL", "COMPRESSION_ERROR",
    "CONNECT_ERROR", "ENHANCE_YOUR_CALM", "INADEQUATE_SECURITY", "HTTP_1_1_REQUIRED",
)  # fmt: skip
ENHANCE_YOUR_CALM = 0xB
REFUSED_STREAM = 0x7

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


class Metrics:
    """The counters of one server (one ``serve``), incremented from its event loop only."""

    __slots__ = (
        "abuse",
        "bytes_received",
        "bytes_sent",
        "clock",
        "connections_open",
        "connections_total",
        "durations",
        "goaways",
        "h2_streams",
        "in_flight",
        "protocol_errors",
        "requests",
        "resets",
        "timings",
        "timings_seen",
        "tls_failures",
        "ws_messages_received",
        "ws_messages_sent",
        "ws_open",
        "ws_total",
    )

    def __init__(self, *, timings: int = 0) -> None:
        self.clock = time.monotonic
        n = len(PROTOCOLS)
        self.connections_open = [0] * n
        self.connections_total = [0] * n
        self.bytes_received = [0] * n
        self.bytes_sent = [0] * n
        #: Completed requests, flat: (protocol * len(METHODS) + method) * 6 + status class.
        self.requests = [0] * (n * len(METHODS) * len(STATUS_CLASSES))
        #: Per protocol: a count per duration bucket (the last is +Inf), then the sum.
        self.durations = [[0.0] * (len(DURATION_BUCKETS) + 2) for _ in PROTOCOLS]
        self.in_flight = 0
        self.h2_streams = 0
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
        #: For statsd: up to ``timings`` request durations (ms) sampled since the last flush
        #: (a reservoir sample), and how many requests there were.
        self.timings: list[float] | None = [] if timings else None
        self.timings_seen = 0

    # --- the hooks (each called from one place; see connection.py) ---------------------

    def connection_opened(self, protocol: int) -> None:
        self.connections_open[protocol] += 1

    def connection_closed(self, protocol: int, handed_off: bool) -> None:
        """Counted in the total when it closes, unless it goes on in another protocol (h2c:
        the HTTP/1.1 connection that read the preface or the upgrade becomes an h2 one)."""
        self.connections_open[protocol] -= 1
        if not handed_off:
            self.connections_total[protocol] += 1

    def stream_started(self, protocol: int) -> None:
        """An HTTP request or a WebSocket handshake starts its app instance."""
        self.in_flight += 1
        if protocol:
            self.h2_streams += 1

    def stream_done(self, websocket_open: bool) -> None:
        self.in_flight -= 1
        if websocket_open:
            self.ws_open -= 1

    def websocket_accepted(self) -> None:
        self.ws_open += 1
        self.ws_total += 1

    def response_done(self, scope: Mapping[str, Any], status: int, start_time: float) -> None:
        """A response was sent completely (where the access log line is written)."""
        duration = self.clock() - start_time
        protocol = HTTP2 if scope["http_version"] == "2" else HTTP1
        method = _METHOD_INDEX.get(scope["method"], _OTHER_METHOD)
        status_class = status // 100
        if not 0 < status_class < 6:
            status_class = 0
        self.requests[(protocol * len(METHODS) + method) * 6 + status_class] += 1
        histogram = self.durations[protocol]
        histogram[bisect_left(DURATION_BUCKETS, duration)] += 1
        histogram[-1] += duration
        timings = self.timings
        if timings is not None:
            self._sample_timing(timings, duration * 1000.0)

    def _sample_timing(self, timings: list[float], milliseconds: float) -> None:
        seen = self.timings_seen
        self.timings_seen = seen + 1
        capacity = STATSD_MAX_TIMINGS
        if seen < capacity:
            timings.append(milliseconds)
        else:
            slot = random.randrange(seen + 1)
            if slot < capacity:
                timings[slot] = milliseconds

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

    def goaway(self, direction: str, code: int | None) -> None:
        key = (direction, h2_code_name(code))
        self.goaways[key] = self.goaways.get(key, 0) + 1

    def h2_error(self, event: ProtocolError) -> None:
        """HTTP/2 answered a peer's error (the RST_STREAM or GOAWAY is queued already)."""
        if event.status == 431:
            self.protocol_error("h2", "head_too_large")
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
        s["connections_open"] = _by_protocol(self.connections_open)
        s["connections_total"] = _by_protocol(self.connections_total)
        s["received_bytes_total"] = _by_protocol(self.bytes_received)
        s["sent_bytes_total"] = _by_protocol(self.bytes_sent)
        requests: dict[tuple[str, ...], Any] = {}
        for index, count in enumerate(self.requests):
            if count:
                rest, status = divmod(index, 6)
                protocol, method = divmod(rest, len(METHODS))
                requests[(PROTOCOLS[protocol], METHODS[method], STATUS_CLASSES[status])] = count
        s["requests_total"] = requests
        s["request_duration_seconds"] = {
            (PROTOCOLS[protocol],): list(histogram)
            for protocol, histogram in enumerate(self.durations)
            if any(histogram[:-1])
        }
        s["requests_in_flight"] = {(): self.in_flight}
        s["websocket_connections_open"] = {(): self.ws_open}
        s["websocket_connections_total"] = {(): self.ws_total}
        s["websocket_messages_received_total"] = {(): self.ws_messages_received}
        s["websocket_messages_sent_total"] = {(): self.ws_messages_sent}
        s["http2_streams_total"] = {(): self.h2_streams}
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
        return s

    def take_timings(self) -> tuple[list[float], int]:
        """The sampled durations (ms) since the last call and how many requests they stand
        for; starts a new sample."""
        timings, seen = self.timings or [], self.timings_seen
        if self.timings is not None:
            self.timings = []
        self.timings_seen = 0
        return timings, seen


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
        "HTTP requests answered completely.",
        ("protocol", "method", "status"),
    ),
    Family(
        "request_duration_seconds",
        "histogram",
        "Seconds from the request head to the end of the response.",
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


# --- Prometheus -------------------------------------------------------------------------

PROMETHEUS_MISSING = (
    "config: metrics_bind = {value!r}: prometheus_client is not installed "
    "(pip install 'tricorn[metrics]')"
)


def require_prometheus_client(value: str) -> None:
    """Stop start-up with one line when ``metrics_bind`` is set without prometheus_client."""
    try:
        import prometheus_client  # noqa: F401
    except ImportError:
        raise ConfigError(PROMETHEUS_MISSING.format(value=value)) from None


def families(parts: list[tuple[dict[str, str], Snapshot]], prefix: str = "tricorn_") -> list[Any]:
    """prometheus_client metric families, one per ``FAMILIES`` entry, holding the series of
    every snapshot of ``parts``, each with its extra labels added (``{"worker": "0"}``)."""
    from prometheus_client.core import (
        CounterMetricFamily,
        GaugeMetricFamily,
        HistogramMetricFamily,
    )

    extra_names = list(parts[0][0]) if parts else []
    result: list[Any] = []
    for family in FAMILIES:
        labels = [*extra_names, *family.labels]
        name = prefix + family.name
        metric: Any
        if family.kind == "histogram":
            metric = HistogramMetricFamily(name, family.help, labels=labels)
        elif family.kind == "counter":
            metric = CounterMetricFamily(name, family.help, labels=labels)
        else:
            metric = GaugeMetricFamily(name, family.help, labels=labels)
        for extra, snapshot in parts:
            extra_values = list(extra.values())
            for label_values, value in sorted(snapshot.get(family.name, {}).items()):
                if family.kind != "histogram":
                    metric.add_metric([*extra_values, *label_values], value)
                    continue
                cumulative = 0.0
                buckets: list[tuple[str, float]] = []
                bounds = (*DURATION_BUCKETS, float("inf"))
                for bound, count in zip(bounds, value[:-1], strict=True):
                    cumulative += count
                    buckets.append(("+Inf" if bound == float("inf") else repr(bound), cumulative))
                metric.add_metric([*extra_values, *label_values], buckets, value[-1])
        result.append(metric)
    return result


class _Collector:
    def __init__(self, collect: Callable[[], list[Any]]) -> None:
        self.collect = collect


def render_prometheus(collect: Callable[[], list[Any]]) -> bytes:
    """The Prometheus text exposition of the families ``collect()`` returns."""
    from prometheus_client import CollectorRegistry, generate_latest

    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Collector(collect))
    return generate_latest(registry)


PROMETHEUS_CONTENT_TYPE = b"text/plain; version=0.0.4; charset=utf-8"
#: A scrape request's head larger than this is refused (431).
MAX_SCRAPE_HEAD = 8192
#: Seconds a scrape connection may take to send its request and read the answer.
SCRAPE_TIMEOUT = 10.0


def scrape_response(head: bytes, render: Callable[[], bytes]) -> bytes:
    """The whole HTTP/1.1 response to one request on the metrics socket: ``GET /metrics``
    (or HEAD) is the exposition, any other path 404, another method 405."""
    line = head.split(b"\r\n", 1)[0]
    parts = line.split(b" ")
    if len(parts) != 3 or not parts[2].startswith(b"HTTP/1."):
        return _response(400, b"text/plain", b"bad request\n")
    method, target = parts[0], parts[1]
    path = target.split(b"?", 1)[0]
    if path != b"/metrics":
        return _response(404, b"text/plain", b"not found: the metrics are at /metrics\n")
    if method not in (b"GET", b"HEAD"):
        return _response(405, b"text/plain", b"method not allowed\n", [(b"allow", b"GET, HEAD")])
    body = render()
    return _response(200, PROMETHEUS_CONTENT_TYPE, body, head_only=method == b"HEAD")


_REASONS = {200: b"OK", 400: b"Bad Request", 404: b"Not Found", 405: b"Method Not Allowed",
            431: b"Request Header Fields Too Large", 500: b"Internal Server Error"}  # fmt: skip


def _response(
    status: int,
    content_type: bytes,
    body: bytes,
    headers: list[tuple[bytes, bytes]] | None = None,
    *,
    head_only: bool = False,
) -> bytes:
    lines = [
        b"HTTP/1.1 %d %s" % (status, _REASONS.get(status, b"")),
        b"content-type: " + content_type,
        b"content-length: %d" % len(body),
        b"connection: close",
        *(name + b": " + value for name, value in headers or ()),
    ]
    return b"\r\n".join(lines) + b"\r\n\r\n" + (b"" if head_only else body)


def read_scrape_head(data: bytes) -> bytes | None:
    """The request head once complete in ``data``; None while more is needed."""
    end = data.find(b"\r\n\r\n")
    return data[:end] if end >= 0 else None


async def serve_scrape(stream: SocketStream, render: Callable[[], bytes]) -> None:
    """Answer one connection to the metrics socket (one request, then close)."""
    try:
        with anyio.move_on_after(SCRAPE_TIMEOUT):
            data = b""
            while (head := read_scrape_head(data)) is None:
                if len(data) > MAX_SCRAPE_HEAD:
                    await stream.send(_response(431, b"text/plain", b"request head too large\n"))
                    return
                data += await stream.receive(4096)
            try:
                answer = scrape_response(head, render)
            except Exception:
                error_log.exception("Metrics: rendering the scrape failed")
                answer = _response(500, b"text/plain", b"internal error\n")
            await stream.send(answer)
    except (anyio.EndOfStream, anyio.BrokenResourceError, anyio.ClosedResourceError, OSError):
        pass
    finally:
        await anyio.aclose_forcefully(stream)


def open_metrics_socket(config: Config) -> socket.socket | None:
    """The ``metrics_bind`` listening socket (None when it is off); ConfigError, naming
    ``metrics_bind``, when prometheus_client is missing or the address cannot be bound."""
    value = config.metrics_bind
    if not value:
        return None
    require_prometheus_client(value)
    from tricorn.server.listeners import UnixSocketOptions, open_sockets

    options = UnixSocketOptions(
        int(config.unix_socket_mode, 8), config.unix_socket_user, config.unix_socket_group
    )
    try:
        sockets = open_sockets([value], config.backlog, options)
    except ConfigError as error:
        raise ConfigError(
            str(error).replace("config: bind =", "config: metrics_bind =", 1)
        ) from None
    for extra in sockets[1:]:  # a name with v4 and v6 addresses: the first is enough
        extra.close()
    return sockets[0]


async def run_prometheus_exporter(sock: socket.socket, metrics: Metrics) -> None:
    """Serve ``GET /metrics`` on ``sock`` until cancelled (single-process ``serve``)."""
    from tricorn.server.listeners import bound_address, to_listener

    listener = await to_listener(sock)
    error_log.info("Metrics (Prometheus) at %s/metrics", bound_address(sock).url("http"))

    def render() -> bytes:
        return render_prometheus(lambda: families([({}, metrics.snapshot())]))

    async with listener, anyio.create_task_group() as group:
        while True:
            try:
                stream = await listener.accept()
            except OSError as error:
                error_log.warning("Metrics: accept() failed: %s", error)
                await anyio.sleep(0.1)
                continue
            group.start_soon(serve_scrape, stream, render)


# --- statsd -----------------------------------------------------------------------------

#: Request durations kept per flush for statsd timers (a uniform sample past this; the
#: timer lines then carry the sample rate).
STATSD_MAX_TIMINGS = 1000
#: Largest datagram sent (fits a 1500-byte Ethernet MTU with IP and UDP headers).
STATSD_MAX_DATAGRAM = 1432


def parse_statsd_host(value: str) -> tuple[str, int]:
    host, sep, port = value.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ConfigError(f"config: statsd_host = {value!r}: expected 'HOST:PORT'")
    return host.strip("[]"), int(port)


def _statsd_segment(value: str) -> str:
    return "".join(char if char.isalnum() or char in "-_" else "_" for char in value)


class StatsdSender:
    """Turns snapshots into statsd (or DogStatsD) lines: counters as the difference since
    the previous flush, gauges as they are, durations as sampled timers."""

    def __init__(
        self,
        prefix: str,
        *,
        dogstatsd: bool = False,
        tags: Iterable[str] = (),
        gauge_labels: dict[str, str] | None = None,
    ) -> None:
        self.prefix = prefix.rstrip(".") + "." if prefix else ""
        self.dogstatsd = dogstatsd
        self.tags = list(tags)
        #: Labels added to gauges only (``worker``: each worker's gauge is its own series,
        #: where counters add up in statsd).
        self.gauge_labels = dict(gauge_labels or {})
        self._previous: dict[tuple[str, tuple[str, ...]], float] = {}

    def _name_and_tags(self, name: str, labels: dict[str, str]) -> tuple[str, str]:
        base = self.prefix + name.removesuffix("_total")
        if self.dogstatsd:
            tags = [*self.tags, *(f"{key}:{value}" for key, value in labels.items())]
            return base, ("|#" + ",".join(tags)) if tags else ""
        segments = [_statsd_segment(value) for value in labels.values()]
        return ".".join([base, *segments]), ""

    def lines(self, snapshot: Snapshot, timings: list[float], seen: int) -> list[str]:
        out: list[str] = []
        for family in FAMILIES:
            for label_values, value in sorted(snapshot.get(family.name, {}).items()):
                labels = dict(zip(family.labels, label_values, strict=True))
                if family.kind == "histogram":
                    continue  # sent as timers below
                key = (family.name, label_values)
                if family.kind == "gauge":
                    name, tags = self._name_and_tags(family.name, {**self.gauge_labels, **labels})
                    out.append(f"{name}:{value}|g{tags}")
                    continue
                delta = value - self._previous.get(key, 0)
                self._previous[key] = value
                if delta > 0:
                    name, tags = self._name_and_tags(family.name, labels)
                    out.append(f"{name}:{delta}|c{tags}")
        if timings:
            name, tags = self._name_and_tags("request_duration", {})
            rate = f"|@{len(timings) / seen:.4g}" if seen > len(timings) else ""
            out.extend(f"{name}:{value:.3f}|ms{rate}{tags}" for value in timings)
        return out


def batch(lines: list[str], size: int = STATSD_MAX_DATAGRAM) -> list[bytes]:
    """Lines joined by newlines into datagrams of at most ``size`` bytes."""
    datagrams: list[bytes] = []
    current = b""
    for line in lines:
        encoded = line.encode()
        if current and len(current) + 1 + len(encoded) > size:
            datagrams.append(current)
            current = b""
        current = current + b"\n" + encoded if current else encoded
    if current:
        datagrams.append(current)
    return datagrams


class StatsdClient:
    """A non-blocking UDP socket: a datagram that cannot be sent now is dropped (and
    counted), never waited for."""

    def __init__(self, host: str, port: int) -> None:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_DGRAM)
        family, kind, proto, _, address = infos[0]
        self.sock = socket.socket(family, kind, proto)
        self.sock.setblocking(False)
        self.address = address
        self.sent = 0
        self.dropped = 0

    def send(self, datagrams: list[bytes]) -> None:
        for datagram in datagrams:
            try:
                self.sock.sendto(datagram, self.address)
                self.sent += 1
            except OSError:  # a full buffer (EAGAIN), ECONNREFUSED from an earlier send...
                self.dropped += 1

    def close(self) -> None:
        self.sock.close()


async def run_statsd(
    metrics: Metrics, config: Config, gauge_labels: dict[str, str] | None = None
) -> None:
    """Flush to ``statsd_host`` every ``statsd_interval`` seconds until cancelled."""
    host, port = parse_statsd_host(config.statsd_host)
    client = StatsdClient(host, port)
    sender = StatsdSender(
        config.statsd_prefix,
        dogstatsd=config.statsd_dogstatsd,
        tags=config.statsd_tags,
        gauge_labels=gauge_labels,
    )
    error_log.info("Metrics: statsd to %s:%d every %g s", host, port, config.statsd_interval)
    reported = 0

    def flush() -> None:
        timings, seen = metrics.take_timings()
        client.send(batch(sender.lines(metrics.snapshot(), timings, seen)))

    try:
        while True:
            await anyio.sleep(config.statsd_interval)
            flush()
            if client.dropped > reported:
                error_log.debug("Metrics: %d statsd datagrams dropped so far", client.dropped)
                reported = client.dropped
    finally:
        flush()  # the last counts, at shutdown
        client.close()


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


@dataclass(slots=True)
class Exporters:
    """What ``serve`` runs besides its connections: the scrape socket and the statsd task."""

    metrics: Metrics | None
    sock: socket.socket | None
    config: Config

    @classmethod
    def open(cls, config: Config, metrics: Metrics | None) -> Exporters:
        if config.statsd_host:
            parse_statsd_host(config.statsd_host)
        return cls(metrics, open_metrics_socket(config), config)

    def tasks(self) -> list[Callable[[], Coroutine[Any, Any, None]]]:
        metrics = self.metrics
        if metrics is None:
            return []
        tasks: list[Callable[[], Coroutine[Any, Any, None]]] = []
        sock = self.sock
        if sock is not None:
            tasks.append(lambda: run_prometheus_exporter(sock, metrics))
        if self.config.statsd_host:
            labels = STATSD_GAUGE_LABELS.get()
            tasks.append(lambda: run_statsd(metrics, self.config, labels))
        return tasks

    async def run(self) -> None:
        """Run every exporter until cancelled."""
        tasks = self.tasks()
        if not tasks:
            return
        async with anyio.create_task_group() as group:
            for task in tasks:
                group.start_soon(task)

    def close(self) -> None:
        if self.sock is not None:
            self.sock.close()
