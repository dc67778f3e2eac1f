"""Exporting ``Metrics``: the Prometheus scrape socket (``metrics_bind``) and statsd.

A scrape renders a ``Snapshot`` with prometheus_client (imported only then, and required
only when ``metrics_bind`` is set); the statsd task sends, every ``statsd_interval``, the
counters' differences since its last flush, the gauges, and the sampled durations, batched
into datagrams on a non-blocking UDP socket (a datagram that cannot go now is dropped).
"""

from __future__ import annotations

import logging
import socket
from collections.abc import Callable, Coroutine, Iterable
from dataclasses import dataclass
from typing import Any

import anyio
from anyio.abc import SocketStream

from tricorn.config import Config
from tricorn.config.loader import show_value
from tricorn.constants import ERROR_LOGGER
from tricorn.errors import ConfigError
from tricorn.server.metrics import (
    DURATION_BUCKETS,
    FAMILIES,
    STATSD_GAUGE_LABELS,
    Metrics,
    Snapshot,
)

error_log = logging.getLogger(ERROR_LOGGER)


# --- Prometheus -------------------------------------------------------------------------

PROMETHEUS_MISSING = (
    "config: metrics_bind = {value}: prometheus_client is not installed "
    "(pip install 'tricorn[metrics]')"
)


def require_prometheus_client(value: str) -> None:
    """Stop start-up with one line when ``metrics_bind`` is set without prometheus_client."""
    try:
        import prometheus_client  # noqa: F401
    except ImportError:
        raise ConfigError(PROMETHEUS_MISSING.format(value=show_value(value))) from None


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

#: Largest datagram sent (fits a 1500-byte Ethernet MTU with IP and UDP headers).
STATSD_MAX_DATAGRAM = 1432


def parse_statsd_host(value: str) -> tuple[str, int]:
    host, sep, port = value.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ConfigError(f"config: statsd_host = {show_value(value)}: expected 'HOST:PORT'")
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
