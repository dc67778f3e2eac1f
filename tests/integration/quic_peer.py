"""A QUIC/HTTP/3 client driven by hand, for the attack tests: aioquic's sans-IO layers on a
plain UDP socket, no event loop.

``Peer`` is one client connection on its own socket; ``drive(peers, until, timeout)`` moves
datagrams and timers for any number of them until ``until()`` holds or ``timeout`` seconds
pass (a hang guard: what the tests assert is the state reached, never the time taken). A
peer misbehaves only when a test tells it to (``ignore_stream_limit``, ``Stingy``), and it
can change its UDP socket mid-connection (``rebind``) as a client behind a NAT would.
"""

from __future__ import annotations

import select
import socket
import ssl
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from aioquic.h3 import events as h3_events
from aioquic.h3.connection import H3_ALPN, H3Connection
from aioquic.quic import events as quic_events
from aioquic.quic.configuration import QuicConfiguration
from aioquic.quic.connection import QuicConnection
from aioquic.quic.packet_builder import QuicPacketBuilder
from aioquic.quic.recovery import QuicPacketSpace
from aioquic.quic.stream import QuicStream

#: Body bytes kept per response (the rest is only counted).
KEEP = 65536


@dataclass
class Answer:
    """One request's answer as far as it came."""

    status: int = 0
    body: bytes = b""
    received: int = 0
    ended: bool = False
    reset: int | None = None

    @property
    def over(self) -> bool:
        return self.ended or self.reset is not None


class Stingy(QuicConnection):
    """A client that never reads: it grants no flow-control credit past its first windows
    (it acknowledges packets, so the connection is not idle)."""

    def _write_connection_limits(self, builder: QuicPacketBuilder, space: QuicPacketSpace) -> None:
        return

    def _write_stream_limits(
        self, builder: QuicPacketBuilder, space: QuicPacketSpace, stream: QuicStream
    ) -> None:
        return


def configuration(
    ca_file: str, *, stream_window: int | None = None, connection_window: int | None = None
) -> QuicConfiguration:
    config = QuicConfiguration(is_client=True, alpn_protocols=H3_ALPN)
    config.server_name = "localhost"
    config.verify_mode = ssl.CERT_REQUIRED
    config.load_verify_locations(cafile=ca_file)
    config.idle_timeout = 120.0  # the server's idle timeout is the one under test
    if stream_window is not None:
        config.max_stream_data = stream_window
    if connection_window is not None:
        config.max_data = connection_window
    return config


class Peer:
    """One client QUIC connection to 127.0.0.1:``port`` speaking HTTP/3."""

    def __init__(
        self,
        port: int,
        config: QuicConfiguration,
        *,
        quic_class: type[QuicConnection] = QuicConnection,
    ) -> None:
        self.server = ("127.0.0.1", port)
        self.sock = self._socket()
        self.quic = quic_class(configuration=config)
        self.h3 = H3Connection(self.quic)
        self.answers: dict[int, Answer] = {}
        self.handshaken = False
        self.terminated: quic_events.ConnectionTerminated | None = None
        self.quic.connect(self.server, now=time.monotonic())

    @staticmethod
    def _socket() -> socket.socket:
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        sock.bind(("127.0.0.1", 0))
        sock.setblocking(False)
        return sock

    @property
    def port(self) -> int:
        port: int = self.sock.getsockname()[1]
        return port

    # --- requests -------------------------------------------------------------------

    def start(self, path: str, *, end: bool = True) -> int:
        stream_id = self.quic.get_next_available_stream_id()
        self.answers[stream_id] = Answer()
        head = [
            (b":method", b"GET"),
            (b":scheme", b"https"),
            (b":authority", b"localhost"),
            (b":path", path.encode()),
        ]
        self.h3.send_headers(stream_id, head, end_stream=end)
        return stream_id

    def stream_credit(self) -> int:
        """Request streams the server's MAX_STREAMS lets us open now."""
        quic = self.quic
        credit: int = quic._remote_max_streams_bidi - quic._local_next_stream_id_bidi // 4
        return credit

    def reset(self, stream_id: int, error_code: int = 0x10C) -> None:
        """RESET_STREAM and STOP_SENDING (H3_REQUEST_CANCELLED)."""
        self.quic.reset_stream(stream_id, error_code)
        self.quic.stop_stream(stream_id, error_code)

    def ignore_stream_limit(self) -> None:
        """Open streams past the server's MAX_STREAMS from now on."""
        self.quic._remote_max_streams_bidi = 1 << 30

    def rebind(self) -> None:
        """Carry on from a new UDP socket (a new source port), as after a NAT rebinding;
        the old socket is closed."""
        old, self.sock = self.sock, self._socket()
        old.close()

    def close(self) -> None:
        self.quic.close()
        self.flush()
        self.sock.close()

    # --- datagrams --------------------------------------------------------------------

    def flush(self) -> None:
        if self.sock.fileno() < 0:
            return
        for data, addr in self.quic.datagrams_to_send(now=time.monotonic()):
            try:
                self.sock.sendto(data, addr)
            except OSError:
                return  # the buffer is full: QUIC retransmits

    def _read(self) -> None:
        while True:
            try:
                data, addr = self.sock.recvfrom(65535)
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                return  # ICMP port unreachable and such
            self.quic.receive_datagram(data, addr, now=time.monotonic())

    def _timers(self) -> None:
        timer = self.quic.get_timer()
        if timer is not None and timer <= time.monotonic():
            self.quic.handle_timer(time.monotonic())

    def _events(self) -> None:
        while (event := self.quic.next_event()) is not None:
            if isinstance(event, quic_events.HandshakeCompleted):
                self.handshaken = True
            elif isinstance(event, quic_events.ConnectionTerminated):
                self.terminated = event
            elif isinstance(event, quic_events.StreamReset):
                answer = self.answers.get(event.stream_id)
                if answer is not None:
                    answer.reset = event.error_code
            for h3_event in self.h3.handle_event(event):
                answer = self.answers.get(getattr(h3_event, "stream_id", -1))
                if answer is None:
                    continue
                if isinstance(h3_event, h3_events.HeadersReceived) and not answer.status:
                    answer.status = int(dict(h3_event.headers)[b":status"])
                elif isinstance(h3_event, h3_events.DataReceived):
                    answer.received += len(h3_event.data)
                    if len(answer.body) < KEEP:
                        answer.body += h3_event.data[: KEEP - len(answer.body)]
                if getattr(h3_event, "stream_ended", False):
                    answer.ended = True


def drive(peers: Iterable[Peer], until: Callable[[], bool], timeout: float) -> bool:
    """Run ``peers`` until ``until()`` or ``timeout`` seconds; whether ``until()`` holds."""
    crowd = list(peers)
    deadline = time.monotonic() + timeout
    while True:
        for peer in crowd:
            peer._timers()
            peer._events()
            peer.flush()
        if until():
            return True
        now = time.monotonic()
        if now >= deadline:
            return False
        live = [peer for peer in crowd if peer.terminated is None and peer.sock.fileno() >= 0]
        timers = [t for peer in live if (t := peer.quic.get_timer()) is not None]
        wait = min([deadline, *timers]) - now
        ready, _, _ = select.select([peer.sock for peer in live], [], [], max(0.0, min(wait, 0.2)))
        by_socket = {peer.sock: peer for peer in live}
        for sock in ready:
            by_socket[sock]._read()
