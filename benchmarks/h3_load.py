"""An HTTP/3 load client on aioquic's sans-IO layers (h2load here has no HTTP/3).

One process, one thread, no event loop: ``connections`` QUIC connections on UDP sockets of
their own, each keeping ``streams`` GET requests in flight (a new one as each response
ends) for ``duration`` seconds, or fetching ``count`` responses in all. Datagrams and
timers are moved by hand (``selectors``), so the client spends its time in aioquic and
the TLS crypto only. It prints one JSON line: requests done, failures, wall seconds, its
own CPU seconds, and the per-response times (for downloads).

    python benchmarks/h3_load.py --port P --ca CA --connections 8 --streams 16 --duration 5
    python benchmarks/h3_load.py --port P --ca CA --path /download --count 3 --connections 1
"""

from __future__ import annotations

import argparse
import json
import resource
import selectors
import socket
import ssl
import time
from dataclasses import dataclass, field

from aioquic.h3 import events as h3_events
from aioquic.h3.connection import H3_ALPN, H3Connection
from aioquic.quic import events as quic_events
from aioquic.quic.configuration import QuicConfiguration
from aioquic.quic.connection import QuicConnection


@dataclass
class Totals:
    done: int = 0
    failed: int = 0
    body_bytes: int = 0
    #: Seconds from request to last body byte, per response (with ``--times``).
    times: list[float] = field(default_factory=list)


class LoadConnection:
    """One QUIC connection keeping ``streams`` requests in flight."""

    def __init__(self, port: int, config: QuicConfiguration, args: argparse.Namespace) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.setblocking(False)
        self.quic = QuicConnection(configuration=config)
        self.h3 = H3Connection(self.quic)
        self.head = [
            (b":method", b"GET"),
            (b":scheme", b"https"),
            (b":authority", b"localhost"),
            (b":path", args.path.encode()),
        ]
        self.streams = args.streams
        self.started: dict[int, float] = {}
        self.status: dict[int, int] = {}
        self.ready = False
        self.closed = False
        self.quic.connect(("127.0.0.1", port), now=time.monotonic())

    def fill(self, budget: list[int]) -> None:
        """Start requests up to ``streams`` in flight (and while ``budget[0]`` lasts)."""
        while self.ready and len(self.started) < self.streams and budget[0] != 0:
            stream_id = self.quic.get_next_available_stream_id()
            self.h3.send_headers(stream_id, self.head, end_stream=True)
            self.started[stream_id] = time.monotonic()
            budget[0] -= 1

    def flush(self) -> None:
        for data, addr in self.quic.datagrams_to_send(now=time.monotonic()):
            try:
                self.sock.sendto(data, addr)
            except BlockingIOError:
                return

    def read(self) -> None:
        now = time.monotonic()
        while True:
            try:
                data, addr = self.sock.recvfrom(65535)
            except (BlockingIOError, InterruptedError):
                return
            self.quic.receive_datagram(data, addr, now=now)

    def events(self, totals: Totals, keep_times: bool) -> None:
        timer = self.quic.get_timer()
        if timer is not None and timer <= time.monotonic():
            self.quic.handle_timer(time.monotonic())
        while (event := self.quic.next_event()) is not None:
            if isinstance(event, quic_events.HandshakeCompleted):
                self.ready = True
            elif isinstance(event, quic_events.ConnectionTerminated):
                self.closed = True
                totals.failed += len(self.started)
                self.started.clear()
            elif (
                isinstance(event, quic_events.StreamReset)
                and self.started.pop(event.stream_id, None) is not None
            ):
                totals.failed += 1
            for h3_event in self.h3.handle_event(event):
                stream_id = getattr(h3_event, "stream_id", -1)
                if isinstance(h3_event, h3_events.HeadersReceived):
                    if stream_id not in self.status:
                        self.status[stream_id] = int(dict(h3_event.headers)[b":status"])
                elif isinstance(h3_event, h3_events.DataReceived):
                    totals.body_bytes += len(h3_event.data)
                if getattr(h3_event, "stream_ended", False):
                    begun = self.started.pop(stream_id, None)
                    if begun is None:
                        continue
                    if self.status.pop(stream_id, 0) == 200:
                        totals.done += 1
                        if keep_times:
                            totals.times.append(time.monotonic() - begun)
                    else:
                        totals.failed += 1


def client_configuration(ca: str) -> QuicConfiguration:
    config = QuicConfiguration(is_client=True, alpn_protocols=H3_ALPN)
    config.server_name = "localhost"
    config.verify_mode = ssl.CERT_REQUIRED
    config.load_verify_locations(cafile=ca)
    config.idle_timeout = 60.0
    return config


def run(args: argparse.Namespace) -> dict[str, object]:
    config = client_configuration(args.ca)
    conns = [LoadConnection(args.port, config, args) for _ in range(args.connections)]
    selector = selectors.DefaultSelector()
    for conn in conns:
        selector.register(conn.sock, selectors.EVENT_READ, conn)
    totals = Totals()
    budget = [args.count if args.count else -1]  # -1: unbounded (the duration decides)
    keep_times = bool(args.count)
    guard = time.monotonic() + args.timeout
    # Handshakes first: the clock starts once every connection is up.
    while not all(c.ready or c.closed for c in conns) and time.monotonic() < guard:
        for conn in conns:
            conn.events(totals, keep_times)
            conn.flush()
        for key, _ in selector.select(timeout=0.05):
            key.data.read()
    cpu0 = resource.getrusage(resource.RUSAGE_SELF)
    start = time.monotonic()
    end = start + args.duration if not args.count else guard
    while True:
        now = time.monotonic()
        if now >= end or now >= guard:
            break
        if args.count and totals.done + totals.failed >= args.count:
            break
        if all(c.closed for c in conns):
            break
        for conn in conns:
            conn.fill(budget)
            conn.flush()
        timers = [t for c in conns if (t := c.quic.get_timer()) is not None]
        wait = max(0.0, min([end, *timers]) - now)
        for key, _ in selector.select(timeout=min(wait, 0.05)):
            key.data.read()
        for conn in conns:
            conn.events(totals, keep_times)
    seconds = time.monotonic() - start
    cpu1 = resource.getrusage(resource.RUSAGE_SELF)
    for conn in conns:
        conn.quic.close()
        conn.flush()
        conn.sock.close()
    return {
        "done": totals.done,
        "failed": totals.failed,
        "seconds": seconds,
        "cpu": (cpu1.ru_utime - cpu0.ru_utime) + (cpu1.ru_stime - cpu0.ru_stime),
        "body_bytes": totals.body_bytes,
        "times": totals.times,
        "connections_up": sum(c.ready for c in conns),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--ca", required=True, help="CA file the server's certificate is from")
    parser.add_argument("--path", default="/")
    parser.add_argument("--connections", type=int, default=8)
    parser.add_argument("--streams", type=int, default=16, help="requests in flight each")
    parser.add_argument("--duration", type=float, default=5.0)
    parser.add_argument("--count", type=int, default=0, help="stop after N responses")
    parser.add_argument("--timeout", type=float, default=120.0, help="hard bound, seconds")
    print(json.dumps(run(parser.parse_args())), flush=True)


if __name__ == "__main__":
    main()
