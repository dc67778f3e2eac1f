"""Test helpers: run a real tricorn on 127.0.0.1 (random port) inside the test's event loop."""

from __future__ import annotations

import logging
import socket
import ssl
import weakref
from collections.abc import AsyncIterator, Iterator, Sequence
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any, Protocol, TypeVar

import anyio
import httpx
import trustme
from anyio.abc import SocketAttribute, SocketListener, SocketStream

from tricorn import Config, serve
from tricorn.server.asgi_types import ASGI3App
from tricorn.server.listeners import BoundAddress


@dataclass
class RunningServer:
    addresses: list[BoundAddress]
    shutdown: anyio.Event

    @property
    def host(self) -> str:
        address = self.addresses[0].address
        assert isinstance(address, tuple)
        return address[0]

    @property
    def port(self) -> int:
        address = self.addresses[0].address
        assert isinstance(address, tuple)
        return address[1]

    @property
    def url(self) -> str:
        return self.addresses[0].url()


#: Settings every ``serving`` call starts from; tests may parametrize them (http1_parser).
DEFAULT_SETTINGS: dict[str, Any] = {}

#: The HTTP/1.1 implementations (``http1_parser``) the HTTP/1.1 suites run on.
HTTP1_PARSERS = ["h11", "tricorn", "httptools"]


def use_http1_parser(parser: str) -> Iterator[str]:
    """For a fixture: every ``serving`` until the fixture ends uses ``parser``."""
    DEFAULT_SETTINGS["http1_parser"] = parser
    yield parser
    DEFAULT_SETTINGS.pop("http1_parser", None)


@asynccontextmanager
async def serving(app: ASGI3App, **settings: Any) -> AsyncIterator[RunningServer]:
    """Serve ``app`` on a free port for the body of the ``async with``; shut down gracefully."""
    settings = {**DEFAULT_SETTINGS, **settings}
    settings.setdefault("bind", ["127.0.0.1:0"])
    settings.setdefault("access_log", False)
    settings.setdefault("graceful_timeout", 5.0)
    config = Config(**settings)
    shutdown = anyio.Event()
    try:
        async with anyio.create_task_group() as group:
            start = partial(serve, app, config, shutdown_trigger=shutdown.wait)
            addresses = await group.start(start)
            try:
                yield RunningServer(addresses, shutdown)
            finally:
                shutdown.set()
    except BaseExceptionGroup as errors:
        # serve() raised one error (a lifespan failure, say): let the test see it as is.
        if len(errors.exceptions) == 1 and not isinstance(errors.exceptions[0], BaseExceptionGroup):
            raise errors.exceptions[0] from None
        raise


async def open_raw(server: RunningServer) -> anyio.abc.SocketStream:
    return await anyio.connect_tcp(server.host, server.port)


async def read_until_closed(stream: anyio.abc.ByteStream, timeout: float = 5.0) -> bytes:
    """Read everything until the server closes the connection (fails after ``timeout``)."""
    chunks = []
    with anyio.fail_after(timeout):
        while True:
            try:
                chunk = await stream.receive()
            except (anyio.EndOfStream, anyio.BrokenResourceError):
                break
            chunks.append(chunk)
    return b"".join(chunks)


#: Bytes read past the end of a response, kept for the next ``read_response`` on the stream
#: (pipelined responses may arrive in one segment).
_leftovers: weakref.WeakKeyDictionary[anyio.abc.ByteStream, bytes] = weakref.WeakKeyDictionary()


async def read_response(stream: anyio.abc.ByteStream, timeout: float = 5.0) -> bytes:
    """Read exactly one response with a content-length (or none) from a raw stream."""
    data = _leftovers.pop(stream, b"")
    with anyio.fail_after(timeout):
        while b"\r\n\r\n" not in data:
            data += await stream.receive()
        head, _, rest = data.partition(b"\r\n\r\n")
        length: int | None = None
        for line in head.split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value)
        while length is not None and len(rest) < length:
            rest += await stream.receive()
    if length is not None and len(rest) > length:
        _leftovers[stream] = rest[length:]
        rest = rest[:length]
    return head + b"\r\n\r\n" + rest


class _AdoptingStream(Protocol):
    """A transport stream of ours that takes over an accepted anyio stream
    (``AsyncioSocketStream``, ``TrioSocketStream``)."""

    @classmethod
    def adopt(cls, stream: SocketStream) -> SocketStream: ...

    async def aclose(self) -> None: ...


StreamT = TypeVar("StreamT", bound=_AdoptingStream)


@asynccontextmanager
async def connected_pair(
    stream_class: type[StreamT],
) -> AsyncIterator[tuple[StreamT, socket.socket]]:
    """A server-side stream adopted by ``stream_class`` and a non-blocking client socket
    connected to it, both on 127.0.0.1 (read the client with ``recv_exactly``)."""
    multi = await anyio.create_tcp_listener(local_host="127.0.0.1", local_port=0)
    listener = multi.listeners[0]
    assert isinstance(listener, SocketListener)
    port = listener.extra(SocketAttribute.local_port)
    client = socket.create_connection(("127.0.0.1", port))
    client.setblocking(False)
    stream = stream_class.adopt(await listener.accept())
    assert isinstance(stream, stream_class), f"{stream_class.__name__} did not adopt {stream}"
    try:
        yield stream, client
    finally:
        client.close()
        await stream.aclose()
        await listener.aclose()


async def recv_exactly(client: socket.socket, size: int) -> bytes:
    """Read exactly ``size`` bytes from a non-blocking client socket (fails after 10 s)."""
    data = b""
    with anyio.fail_after(10):  # hang guard
        while len(data) < size:
            try:
                chunk = client.recv(size - len(data))
            except BlockingIOError:
                await anyio.sleep(0.001)  # a plain socket: nothing to wait on but polling
                continue
            assert chunk, "the server closed the connection"
            data += chunk
    return data


@dataclass
class Certificates:
    """A test CA and a server certificate for 127.0.0.1 and localhost, as PEM files."""

    ca_file: Path
    certfile: Path
    keyfile: Path

    def client_context(self, alpn: Sequence[str] = ()) -> ssl.SSLContext:
        """A client context that trusts the test CA, offering ``alpn`` (none: no ALPN)."""
        context = ssl.create_default_context(cafile=str(self.ca_file))
        if alpn:
            context.set_alpn_protocols(list(alpn))
        return context

    def settings(self) -> dict[str, str]:
        """The ``Config`` settings that serve TLS with this certificate."""
        return {"certfile": str(self.certfile), "keyfile": str(self.keyfile)}


def issue_certificates(folder: Path) -> Certificates:
    """Make a CA and a server certificate signed by it, written into ``folder``."""
    authority = trustme.CA()
    server_cert = authority.issue_cert("127.0.0.1", "localhost")
    files = Certificates(folder / "ca.pem", folder / "cert.pem", folder / "key.pem")
    authority.cert_pem.write_to_path(str(files.ca_file))
    server_cert.cert_chain_pems[0].write_to_path(str(files.certfile))
    server_cert.private_key_pem.write_to_path(str(files.keyfile))
    return files


def http_client(version: str, **options: Any) -> httpx.AsyncClient:
    """httpx over HTTP/1.1 (``"http1"``), or HTTP/2 with prior knowledge (h2c) on the plain
    port (``"http2"``)."""
    if version == "http2":
        return httpx.AsyncClient(http1=False, http2=True, timeout=20, **options)
    return httpx.AsyncClient(timeout=20, **options)


@contextmanager
def restored_loggers(*names: str) -> Iterator[None]:
    """Put the tricorn loggers (and ``names``) back as they were: handlers (those added
    meanwhile are closed), level, propagation, disabled."""
    saved = {}
    for name in ("tricorn.error", "tricorn.access", *names):
        logger = logging.getLogger(name)
        saved[name] = (list(logger.handlers), logger.level, logger.propagate, logger.disabled)
    try:
        yield
    finally:
        for name, (handlers, level, propagate, disabled) in saved.items():
            logger = logging.getLogger(name)
            for handler in logger.handlers:
                if handler not in handlers:
                    handler.close()
            logger.handlers[:] = handlers
            logger.setLevel(level)
            logger.propagate = propagate
            logger.disabled = disabled


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def ipv6_loopback() -> bool:
    """Whether this machine can bind ``::1`` (IPv6 tests skip where it cannot)."""
    try:
        with socket.socket(socket.AF_INET6) as probe:
            probe.bind(("::1", 0))
    except OSError:
        return False
    return True
