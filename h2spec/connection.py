"""The client core: one HTTP/2 connection to the server under test.

A :class:`Connection` owns a socket (optionally TLS with ALPN ``h2``), sends raw frames, reads
frames with a timeout and keeps just enough state to talk to a correct server: the HPACK
encoder/decoder, the server's settings and the send windows. The ``expect_*`` methods wait for
what the RFC requires and raise :class:`CaseFailed` with what was received instead.
"""

from __future__ import annotations

import contextlib
import os
import socket
import ssl
import struct
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field

import hpack

from h2spec import frames as f
from h2spec.frames import Frame

# Header fields that are specific to one HTTP/1.1 connection (RFC 9113 section 8.2.2).
CONNECTION_SPECIFIC = (
    "connection",
    "keep-alive",
    "proxy-connection",
    "transfer-encoding",
    "upgrade",
)

Header = tuple[str, str]


class CaseFailed(Exception):
    """The server did not do what the RFC requires; the message says what it did instead."""


class ConnectionClosed(Exception):
    """The server closed the connection (EOF, reset, or a TLS close)."""


@dataclass(frozen=True)
class Target:
    """Where the server under test listens and how to reach it."""

    host: str
    port: int
    tls: bool = False
    timeout: float = 1.0
    path: str = "/"

    @property
    def authority(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"

    @property
    def scheme(self) -> str:
        return "https" if self.tls else "http"


@dataclass
class Response:
    """A complete response: the final head, the body and the trailers, if any."""

    stream_id: int
    headers: list[Header]
    body: bytes = b""
    trailers: list[Header] = field(default_factory=list)
    interim: list[list[Header]] = field(default_factory=list)

    @property
    def status(self) -> int:
        for name, value in self.headers:
            if name == ":status":
                return int(value)
        return 0


def response_header_problems(headers: Sequence[Header]) -> list[str]:
    """What is wrong with a response field block (RFC 9113 sections 8.2 and 8.3.2)."""
    problems: list[str] = []
    seen_regular = False
    statuses = 0
    for name, value in headers:
        if name.startswith(":"):
            if seen_regular:
                problems.append(f"pseudo-header {name} after a regular field")
            if name == ":status":
                statuses += 1
                if not (len(value) == 3 and value.isdigit()):
                    problems.append(f"invalid :status {value!r}")
            else:
                problems.append(f"pseudo-header {name} is not allowed in a response")
        else:
            seen_regular = True
            if name != name.lower():
                problems.append(f"field name {name!r} is not lowercase")
            if name in CONNECTION_SPECIFIC:
                problems.append(f"connection-specific field {name!r}")
            if name == "te" and value.lower() != "trailers":
                problems.append(f"te: {value!r}")
    if statuses != 1:
        problems.append(f"{statuses} :status pseudo-headers (expected exactly one)")
    return problems


class Connection:
    """One client connection to the server under test.

    Every read is bounded by ``target.timeout`` (an idle timeout per read) and every
    expectation by ten times that, so a case can never hang.
    """

    def __init__(self, target: Target) -> None:
        self.target = target
        self.timeout = target.timeout
        self.buffer = bytearray()
        self.sock = self._connect()
        self.encoder = hpack.Encoder()
        self.decoder = hpack.Decoder()
        self.server_settings: dict[int, int] = {}
        self.first_server_frame: Frame | None = None
        self.settings_acks = 0
        self.send_window = f.DEFAULT_WINDOW
        self.stream_windows: dict[int, int] = {}
        self.auto_window_update = True
        self.push_enabled = False
        self.next_stream_id = 1
        self.history: list[str] = []
        self.send_failed = False

    # -- transport -------------------------------------------------------------------------

    def _connect(self) -> socket.socket:
        t = self.target
        sock = socket.create_connection((t.host, t.port), timeout=max(t.timeout, 2.0))
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if not t.tls:
            return sock
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        context.set_alpn_protocols(["h2"])
        tls_sock = context.wrap_socket(sock, server_hostname=t.host)
        if tls_sock.selected_alpn_protocol() != "h2":
            tls_sock.close()
            raise CaseFailed(
                f"TLS handshake did not select ALPN h2 (got {tls_sock.selected_alpn_protocol()!r})"
            )
        return tls_sock

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.sock.close()

    def send(self, data: bytes) -> None:
        """Write bytes; a server that already closed the connection is not an error here."""
        try:
            self.sock.sendall(data)
        except (OSError, ssl.SSLError):
            self.send_failed = True

    def fill(self, size: int, deadline: float) -> None:
        while len(self.buffer) < size:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError
            self.sock.settimeout(remaining)
            try:
                chunk = self.sock.recv(65_536)
            except TimeoutError:
                raise
            except (OSError, ssl.SSLError) as exc:
                raise ConnectionClosed(str(exc) or type(exc).__name__) from exc
            if not chunk:
                raise ConnectionClosed("EOF")
            self.buffer += chunk

    def read_frame(self, timeout: float | None = None) -> Frame:
        """Read one raw frame (raises TimeoutError or ConnectionClosed)."""
        deadline = time.monotonic() + (self.timeout if timeout is None else timeout)
        self.fill(9, deadline)
        length = int.from_bytes(self.buffer[:3], "big")
        self.fill(9 + length, deadline)
        frame_type, flags, sid = struct.unpack("!BBI", self.buffer[3:9])
        payload = bytes(self.buffer[9 : 9 + length])
        del self.buffer[: 9 + length]
        return Frame(frame_type, flags, sid & 0x7FFF_FFFF, payload)

    # -- receiving with bookkeeping ---------------------------------------------------------

    def recv(self, timeout: float | None = None) -> Frame:
        """Read the next frame, merging CONTINUATIONs, decoding headers and keeping state."""
        frame = self.read_frame(timeout)
        if self.first_server_frame is None:
            self.first_server_frame = frame
        if frame.type in (f.HEADERS, f.PUSH_PROMISE):
            self._read_field_block(frame)
        elif frame.type == f.SETTINGS:
            self._on_settings(frame)
        elif frame.type == f.WINDOW_UPDATE and len(frame.payload) == 4:
            increment = struct.unpack("!I", frame.payload)[0] & 0x7FFF_FFFF
            if frame.stream_id == 0:
                self.send_window += increment
            elif frame.stream_id in self.stream_windows:
                self.stream_windows[frame.stream_id] += increment
        elif frame.type == f.DATA and self.auto_window_update and frame.payload:
            self.send(f.frame(f.WINDOW_UPDATE, 0, 0, f.window_update_payload(len(frame.payload))))
            if not frame.end_stream:
                increment = f.window_update_payload(len(frame.payload))
                self.send(f.frame(f.WINDOW_UPDATE, 0, frame.stream_id, increment))
        elif frame.type == f.PING and not frame.ack:
            self.send(f.frame(f.PING, f.ACK, 0, frame.payload))
        self.history.append(frame.describe())
        if frame.type == f.PUSH_PROMISE and not self.push_enabled:
            raise CaseFailed("server sent PUSH_PROMISE although SETTINGS_ENABLE_PUSH is 0")
        return frame

    def _read_field_block(self, frame: Frame) -> None:
        payload = frame.payload
        pad = 0
        if frame.flags & f.PADDED:
            if not payload:
                raise CaseFailed(f"server sent a PADDED {f.frame_name(frame.type)} without padding")
            pad = payload[0]
            payload = payload[1:]
        if frame.type == f.HEADERS and frame.flags & f.PRIORITY_FLAG:
            payload = payload[5:]
        elif frame.type == f.PUSH_PROMISE:
            payload = payload[4:]
        if pad > len(payload):
            raise CaseFailed("server sent a field block frame with invalid padding")
        block = payload[: len(payload) - pad]
        flags = frame.flags
        while not flags & f.END_HEADERS:
            cont = self.read_frame()
            if cont.type != f.CONTINUATION or cont.stream_id != frame.stream_id:
                raise CaseFailed(
                    f"server interleaved {f.frame_name(cont.type)} on stream {cont.stream_id} "
                    f"inside a field block of stream {frame.stream_id} (RFC 9113 4.3)"
                )
            block += cont.payload
            flags = cont.flags
        try:
            decoded = self.decoder.decode(block, raw=True)
        except hpack.HPACKError as exc:
            raise CaseFailed(f"server sent an undecodable field block: {exc!r}") from exc
        frame.headers = [
            (bytes(name).decode("latin-1"), bytes(value).decode("latin-1"))
            for name, value in decoded
        ]

    def _on_settings(self, frame: Frame) -> None:
        if frame.ack:
            self.settings_acks += 1
            return
        for offset in range(0, len(frame.payload) - len(frame.payload) % 6, 6):
            ident, value = struct.unpack("!HI", frame.payload[offset : offset + 6])
            if ident == f.SETTINGS_INITIAL_WINDOW_SIZE:
                delta = value - self.server_settings.get(ident, f.DEFAULT_WINDOW)
                for sid in self.stream_windows:
                    self.stream_windows[sid] += delta
            self.server_settings[ident] = value
        self.send(f.frame(f.SETTINGS, f.ACK, 0))

    def frames(self) -> Iterator[Frame]:
        """Frames as they come; stops with TimeoutError after an idle timeout or a hard cap."""
        hard_deadline = time.monotonic() + self.timeout * 10
        for _ in range(20_000):
            remaining = hard_deadline - time.monotonic()
            if remaining <= 0:
                break
            yield self.recv(min(self.timeout, remaining))
        raise TimeoutError

    # -- the server's settings --------------------------------------------------------------

    @property
    def max_frame_size(self) -> int:
        return self.server_settings.get(f.SETTINGS_MAX_FRAME_SIZE, f.DEFAULT_MAX_FRAME_SIZE)

    @property
    def initial_window(self) -> int:
        return self.server_settings.get(f.SETTINGS_INITIAL_WINDOW_SIZE, f.DEFAULT_WINDOW)

    @property
    def header_table_size(self) -> int:
        return self.server_settings.get(f.SETTINGS_HEADER_TABLE_SIZE, 4096)

    # -- sending ----------------------------------------------------------------------------

    def handshake(self, settings: Iterable[tuple[int, int]] = ()) -> None:
        """Send the client preface and SETTINGS; wait for the server's SETTINGS and our ACK."""
        ours = [(f.SETTINGS_ENABLE_PUSH, 0), *settings]
        self.push_enabled = dict(ours).get(f.SETTINGS_ENABLE_PUSH, 1) == 1
        self.send(f.PREFACE + f.frame(f.SETTINGS, 0, 0, f.settings_payload(*ours)))
        got_settings = False
        try:
            while not (got_settings and self.settings_acks):
                frame = self.recv()
                if frame.type == f.SETTINGS and not frame.ack:
                    got_settings = True
                elif frame.type == f.GOAWAY:
                    raise CaseFailed(f"handshake: server sent {frame.describe()}")
        except TimeoutError as exc:
            raise CaseFailed(
                f"handshake: no {'SETTINGS ACK' if got_settings else 'server SETTINGS'} "
                f"within {self.timeout}s"
            ) from exc
        except ConnectionClosed as exc:
            raise CaseFailed(f"handshake: connection closed ({exc})") from exc
        self.history.clear()

    def new_stream_id(self) -> int:
        sid = self.next_stream_id
        self.next_stream_id += 2
        return sid

    def request_headers(
        self,
        method: str = "GET",
        path: str | None = None,
        extra: Sequence[Header] = (),
    ) -> list[Header]:
        return [
            (":method", method),
            (":scheme", self.target.scheme),
            (":path", self.target.path if path is None else path),
            (":authority", self.target.authority),
            *extra,
        ]

    def encode(self, headers: Sequence[Header], *, huffman: bool = True) -> bytes:
        """HPACK-encode ``headers`` with the connection's encoder (which may index them)."""
        return bytes(self.encoder.encode(list(headers), huffman=huffman))

    def send_frame(
        self,
        frame_type: int,
        flags: int,
        stream_id: int,
        payload: bytes = b"",
        *,
        length: int | None = None,
        reserved_bit: bool = False,
    ) -> None:
        self.send(
            f.frame(frame_type, flags, stream_id, payload, length=length, reserved_bit=reserved_bit)
        )

    def send_headers(
        self,
        stream_id: int,
        headers: Sequence[Header] | bytes | None = None,
        *,
        end_stream: bool = True,
        end_headers: bool = True,
        pad: int | None = None,
        priority: bytes | None = None,
        flags: int = 0,
        reserved_bit: bool = False,
    ) -> None:
        """Send a HEADERS frame; ``headers`` defaults to a GET for the target path."""
        if headers is None:
            headers = self.request_headers()
        block = headers if isinstance(headers, bytes) else self.encode(headers)
        flags |= (f.END_STREAM if end_stream else 0) | (f.END_HEADERS if end_headers else 0)
        payload = block
        if priority is not None:
            flags |= f.PRIORITY_FLAG
            payload = priority + payload
        if pad is not None:
            flags |= f.PADDED
            payload = f.padded(payload, pad)
        self.stream_windows.setdefault(stream_id, self.initial_window)
        self.send_frame(f.HEADERS, flags, stream_id, payload, reserved_bit=reserved_bit)

    def send_continuation(self, stream_id: int, block: bytes, *, end_headers: bool = True) -> None:
        self.send_frame(f.CONTINUATION, f.END_HEADERS if end_headers else 0, stream_id, block)

    def send_data(
        self,
        stream_id: int,
        data: bytes = b"",
        *,
        end_stream: bool = True,
        pad: int | None = None,
        flags: int = 0,
    ) -> None:
        flags |= f.END_STREAM if end_stream else 0
        payload = data
        if pad is not None:
            flags |= f.PADDED
            payload = f.padded(data, pad)
        self.send_window -= len(payload)
        if stream_id in self.stream_windows:
            self.stream_windows[stream_id] -= len(payload)
        self.send_frame(f.DATA, flags, stream_id, payload)

    def send_body(self, stream_id: int, body: bytes, *, end_stream: bool = True) -> None:
        """Send ``body`` in DATA frames, respecting the server's flow-control windows."""
        self.stream_windows.setdefault(stream_id, self.initial_window)
        offset = 0
        while offset < len(body) or (end_stream and offset == len(body) == 0):
            available = min(self.send_window, self.stream_windows[stream_id], self.max_frame_size)
            if available <= 0 and offset < len(body):
                self._wait_for_window(stream_id)
                continue
            chunk = body[offset : offset + available]
            offset += len(chunk)
            last = offset >= len(body)
            self.send_data(stream_id, chunk, end_stream=end_stream and last)
            if last:
                return

    def _wait_for_window(self, stream_id: int) -> None:
        try:
            while min(self.send_window, self.stream_windows[stream_id]) <= 0:
                frame = self.recv()
                if frame.type == f.GOAWAY or (
                    frame.type == f.RST_STREAM and frame.stream_id == stream_id
                ):
                    raise CaseFailed(f"while sending the body: {frame.describe()}")
        except TimeoutError as exc:
            raise CaseFailed("the server did not open its flow-control window") from exc
        except ConnectionClosed as exc:
            raise CaseFailed(f"connection closed while sending the body ({exc})") from exc

    def ping(self, payload: bytes | None = None) -> bytes:
        data = os.urandom(8) if payload is None else payload
        self.send_frame(f.PING, 0, 0, data)
        return data

    # -- expectations -----------------------------------------------------------------------

    def so_far(self) -> str:
        if not self.history:
            return "nothing"
        shown = self.history[-8:]
        more = len(self.history) - len(shown)
        return (f"... {more} more, " if more else "") + ", ".join(shown)

    def expect_connection_error(self, *codes: int) -> str:
        """A GOAWAY with one of ``codes``, or the connection closed (GOAWAY is only a SHOULD)."""
        self.history.clear()
        try:
            for frame in self.frames():
                if frame.type == f.GOAWAY:
                    if frame.error_code in codes:
                        return frame.describe()
                    raise CaseFailed(f"got {self.so_far()}")
        except TimeoutError as exc:
            raise CaseFailed(f"timed out after {self.so_far()}") from exc
        except ConnectionClosed:
            return "connection closed"
        raise AssertionError("unreachable")

    def expect_stream_error(self, stream_id: int, *codes: int) -> str:
        """RST_STREAM(stream_id) or GOAWAY with one of ``codes``, or the connection closed.

        RFC 9113 5.4.1: an endpoint MAY treat a stream error as a connection error.
        """
        self.history.clear()
        try:
            for frame in self.frames():
                if frame.type == f.GOAWAY or (
                    frame.type == f.RST_STREAM and frame.stream_id == stream_id
                ):
                    if frame.error_code in codes:
                        return frame.describe()
                    raise CaseFailed(f"got {self.so_far()}")
        except TimeoutError as exc:
            raise CaseFailed(f"timed out after {self.so_far()}") from exc
        except ConnectionClosed:
            return "connection closed"
        raise AssertionError("unreachable")

    def expect_response(self, stream_id: int, *, check_headers: bool = False) -> Response:
        """A complete response on ``stream_id`` (final head, body, optional trailers)."""
        return self.expect_responses([stream_id], check_headers=check_headers)[stream_id]

    def expect_responses(
        self, stream_ids: Sequence[int], *, check_headers: bool = False
    ) -> dict[int, Response]:
        """Complete responses on all of ``stream_ids``, in whatever order they arrive."""
        self.history.clear()
        heads: dict[int, Response] = {}
        interim: dict[int, list[list[Header]]] = {sid: [] for sid in stream_ids}
        bodies: dict[int, bytearray] = {sid: bytearray() for sid in stream_ids}
        done: dict[int, Response] = {}
        try:
            for frame in self.frames():
                sid = frame.stream_id
                if frame.type == f.GOAWAY and (
                    frame.error_code != f.NO_ERROR or frame.last_stream_id < max(stream_ids)
                ):
                    raise CaseFailed(f"expected a response, got {self.so_far()}")
                if frame.type == f.RST_STREAM and sid in bodies:
                    raise CaseFailed(f"expected a response, got {self.so_far()}")
                if sid not in bodies or sid in done:
                    continue
                if frame.type == f.HEADERS:
                    status = dict(frame.headers).get(":status", "")
                    response = heads.get(sid)
                    if response is None and status.startswith("1") and len(status) == 3:
                        interim[sid].append(frame.headers)
                    elif response is None:
                        if check_headers:
                            problems = response_header_problems(frame.headers)
                            if problems:
                                raise CaseFailed("invalid response head: " + "; ".join(problems))
                        heads[sid] = Response(sid, frame.headers, interim=interim[sid])
                    else:
                        response.trailers = frame.headers
                        if not frame.end_stream:
                            raise CaseFailed("trailers without END_STREAM (RFC 9113 8.1)")
                elif frame.type == f.DATA:
                    if sid not in heads:
                        raise CaseFailed(f"DATA before the response HEADERS on stream {sid}")
                    data = frame.payload
                    if frame.flags & f.PADDED and data:
                        data = data[1 : len(data) - data[0]]
                    bodies[sid] += data
                if frame.end_stream:
                    if sid not in heads:
                        raise CaseFailed(f"stream {sid} ended without a final response")
                    heads[sid].body = bytes(bodies[sid])
                    done[sid] = heads[sid]
                    if len(done) == len(bodies):
                        return done
        except TimeoutError as exc:
            raise CaseFailed(f"no complete response; got {self.so_far()}") from exc
        except ConnectionClosed as exc:
            raise CaseFailed(
                f"connection closed ({exc}) before a complete response; got {self.so_far()}"
            ) from exc
        raise AssertionError("unreachable")

    def expect_ping_ack(self, payload: bytes, *, allow_rst: bool = False) -> str:
        """The PING ACK echoing ``payload``; no GOAWAY (and no RST_STREAM unless allowed)."""
        self.history.clear()
        try:
            for frame in self.frames():
                if frame.type == f.GOAWAY:
                    raise CaseFailed(f"connection not usable: got {self.so_far()}")
                if frame.type == f.RST_STREAM and not allow_rst:
                    raise CaseFailed(f"unexpected stream error: got {self.so_far()}")
                if frame.type == f.PING and frame.ack:
                    if frame.payload != payload:
                        raise CaseFailed(
                            f"PING ACK with payload {frame.payload!r}, expected {payload!r}"
                        )
                    return "PING ACK"
        except TimeoutError as exc:
            raise CaseFailed(f"no PING ACK; got {self.so_far()}") from exc
        except ConnectionClosed as exc:
            raise CaseFailed(f"connection closed ({exc}); got {self.so_far()}") from exc
        raise AssertionError("unreachable")

    def expect_alive(self, *, allow_rst: bool = False) -> str:
        """The connection is still usable: a PING round trip, with no error in between."""
        return self.expect_ping_ack(self.ping(), allow_rst=allow_rst)

    def expect_settings_ack(self) -> str:
        self.history.clear()
        acks = self.settings_acks
        try:
            for frame in self.frames():
                if frame.type == f.GOAWAY:
                    raise CaseFailed(f"got {self.so_far()}")
                if self.settings_acks > acks:
                    return "SETTINGS ACK"
        except TimeoutError as exc:
            raise CaseFailed(f"no SETTINGS ACK; got {self.so_far()}") from exc
        except ConnectionClosed as exc:
            raise CaseFailed(f"connection closed ({exc}); got {self.so_far()}") from exc
        raise AssertionError("unreachable")

    def expect_closed(self) -> str:
        """The server closes the connection (after any frames it still sends)."""
        try:
            for _ in self.frames():
                pass
        except TimeoutError as exc:
            raise CaseFailed(f"connection still open; got {self.so_far()}") from exc
        except ConnectionClosed:
            return "connection closed"
        raise AssertionError("unreachable")

    # -- convenience ------------------------------------------------------------------------

    def get(self) -> int:
        """Send a complete GET request on a new stream; return its stream id."""
        sid = self.new_stream_id()
        self.send_headers(sid, self.request_headers(), end_stream=True)
        return sid

    def roundtrip(
        self, headers: Sequence[Header] | bytes | None = None, body: bytes | None = None
    ) -> Response:
        """One complete request on a new stream and its response."""
        sid = self.new_stream_id()
        self.send_headers(sid, headers, end_stream=body is None)
        if body is not None:
            self.send_body(sid, body)
        return self.expect_response(sid)
