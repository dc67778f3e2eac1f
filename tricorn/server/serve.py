"""``serve``: the embeddable server, and ``run``: the blocking entry point for scripts and CLI."""

from __future__ import annotations

import logging
import signal
import socket
import ssl
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass
from typing import Any

import anyio
import sniffio
from anyio.abc import ByteStream, SocketListener, SocketStream, TaskStatus

from tricorn.config import Config
from tricorn.config.loader import check_config, show_value
from tricorn.config.logging import reopen_logs
from tricorn.config.tls import build_ssl_context
from tricorn.constants import ERROR_LOGGER
from tricorn.errors import ConfigError, TricornError
from tricorn.protocols.proxy_protocol import ProxyHeader
from tricorn.server import proxy_protocol, systemd
from tricorn.server.access_log import format_client
from tricorn.server.app import as_asgi3
from tricorn.server.asgi_types import ASGI3App
from tricorn.server.asyncio_stream import AsyncioSocketStream
from tricorn.server.backends import backend_name, backend_options
from tricorn.server.connection import Connection, Handoff
from tricorn.server.gc_tuning import freeze_after_startup
from tricorn.server.http2_connection import HTTP2Connection
from tricorn.server.http11_callbacks import CallbackServer
from tricorn.server.http11_connection import HTTP11Connection
from tricorn.server.lifespan import Lifespan, LifespanFailure
from tricorn.server.listeners import (
    BoundAddress,
    bound_address,
    close_sockets,
    open_config_sockets,
    peer_addresses,
    to_listener,
)
from tricorn.server.metrics_export import Exporters
from tricorn.server.state import ServerState
from tricorn.server.tls import HandshakeFailed, alpn_protocol, tls_extension, wrap_server_side

error_log = logging.getLogger(ERROR_LOGGER)

#: Seconds to back off when accept() fails for lack of file descriptors.
ACCEPT_BACKOFF = 0.1

#: The connection class for each protocol a connection starts with (the ALPN protocol of its
#: TLS handshake; HTTP/1.1 without one) or is handed over to (``Handoff.protocol``: the h2c
#: upgrade, or the HTTP/2 preface that HTTP/1.1 sniffed). A new protocol adds an entry.
CONNECTION_CLASSES: dict[str, type[Connection[Any]]] = {
    "http/1.1": HTTP11Connection,
    "h2": HTTP2Connection,
}


def connection_class(protocol: str | None) -> type[Connection[Any]]:
    """The class that serves ``protocol``, an ALPN protocol name (None: no TLS or no ALPN):
    HTTP/1.1 for any protocol not in ``CONNECTION_CLASSES``."""
    return CONNECTION_CLASSES.get(protocol or "http/1.1", HTTP11Connection)


async def serve(
    app: ASGI3App,
    config: Config,
    *,
    shutdown_trigger: Callable[[], Awaitable[Any]] | None = None,
    task_status: TaskStatus[list[BoundAddress]] = anyio.TASK_STATUS_IGNORED,
) -> None:
    """Serve ``app`` with ``config`` until ``shutdown_trigger()`` returns or until cancelled.

    Start it with ``await nursery.start(serve, app, config)`` (trio) or
    ``await task_group.start(serve, app, config)`` (anyio, asyncio): that returns the list
    of ``BoundAddress`` the server listens on, once the app's lifespan startup has
    completed and the sockets accept connections.

    When ``shutdown_trigger`` returns, the server shuts down gracefully: it stops accepting,
    lets in-flight requests finish for up to ``config.graceful_timeout`` seconds, cancels
    what is left, then runs the app's lifespan shutdown. Cancelling ``serve`` instead stops
    everything at once (no lifespan shutdown).

    ``app`` may be an ASGI 3 or ASGI 2 app, a class whose instances are ASGI 3 apps, or a
    WSGI app (PEP 3333; see ``config.interface`` and ``config.wsgi_max_threads``).
    Raises ``ConfigError`` for an invalid setting or a bind that cannot be opened,
    ``AppLoadError`` when ``app`` is no ASGI app, and ``LifespanFailure`` when the
    app's lifespan startup or shutdown fails.
    """
    check_config(config)
    app = as_asgi3(app, interface=config.interface, wsgi_max_threads=config.wsgi_max_threads)
    lifespan = Lifespan(
        app,
        config.lifespan,
        startup_timeout=config.startup_timeout,
        shutdown_timeout=config.shutdown_timeout,
    )
    state = ServerState(config, app, lifespan.state)
    tls = build_ssl_context(config)
    sockets = open_config_sockets(config)
    exporters: Exporters | None = None
    quic: tuple[list[socket.socket], Callable[[], Coroutine[Any, Any, None]]] | None = None
    try:
        quic = _open_quic(config, state)  # quic_bind: (UDP sockets, serve them) or None
        exporters = Exporters.open(config, state.metrics)  # metrics_bind, statsd_host
        extras = [exporters.run] if quic is None else [exporters.run, quic[1]]
        await _serve(lifespan, state, sockets, tls, shutdown_trigger, task_status, extras)
    except BaseExceptionGroup as group:
        # Give embedders the one TricornError (bind, lifespan) rather than a group of one.
        leaves = _leaves(group)
        if len(leaves) == 1 and isinstance(leaves[0], TricornError):
            raise leaves[0] from None
        raise
    finally:
        close_sockets(sockets + (quic[0] if quic is not None else []))
        if exporters is not None:
            exporters.close()
    error_log.info("Server stopped")


def _leaves(group: BaseExceptionGroup[BaseException]) -> list[BaseException]:
    leaves: list[BaseException] = []
    for error in group.exceptions:
        leaves.extend(_leaves(error) if isinstance(error, BaseExceptionGroup) else [error])
    return leaves


async def _serve(
    lifespan: Lifespan,
    state: ServerState,
    sockets: list[socket.socket],
    tls: ssl.SSLContext | None,
    shutdown_trigger: Callable[[], Awaitable[Any]] | None,
    task_status: TaskStatus[list[BoundAddress]],
    extras: list[Callable[[], Coroutine[Any, Any, None]]],
) -> None:
    """``extras``: tasks run beside the connections until the end (the metrics exporters,
    the QUIC endpoints)."""
    config = state.config
    async with anyio.create_task_group() as lifespan_group:
        await lifespan.startup(lifespan_group)
        addresses = [bound_address(sock) for sock in sockets]
        proxy = proxy_protocol.ProxyProtocolSetup.from_config(config)
        callback_sockets = _callback_sockets(sockets, tls, proxy)
        listeners = [await to_listener(sock) for sock in sockets if sock not in callback_sockets]
        backend = backend_name()
        for address in addresses:
            error_log.info(
                "tricorn serving on %s (%s; press CTRL+C to quit)",
                address.url("https" if tls else "http"),
                backend,
            )
        setup = _Setup(_stream_adopter(), tls, proxy)
        callbacks = CallbackServer(state, run_connections)
        async with anyio.create_task_group() as connections:
            state.use_task_group(connections)
            try:
                await callbacks.start(callback_sockets)
                with anyio.CancelScope() as accepting:
                    for listener in listeners:
                        connections.start_soon(_accept_loop, listener, state, setup)
                    for extra in extras:
                        connections.start_soon(extra)
                    task_status.started(addresses)
                    if shutdown_trigger is None:
                        await anyio.sleep_forever()
                    else:
                        await shutdown_trigger()
                    accepting.cancel()
                callbacks.close()
                for listener in listeners:
                    await listener.aclose()
                await _shut_down_connections(state)
                connections.cancel_scope.cancel()
            finally:
                callbacks.abort_all()  # those between requests have no task to cancel
                # The connections' tasks asyncio runs outside the group (ServerState.spawn).
                with anyio.CancelScope(shield=True):
                    await state.cancel_tasks()
        await lifespan.shutdown()
        lifespan_group.cancel_scope.cancel()


async def _shut_down_connections(state: ServerState) -> None:
    """Graceful shutdown of the open connections, for ``graceful_timeout`` at most."""
    config = state.config
    error_log.info("Shutting down: waiting for in-flight requests to finish")
    with anyio.move_on_after(config.graceful_timeout) as grace:
        await state.shutdown_connections()
    if grace.cancelled_caught:
        error_log.warning(
            "Graceful timeout (%g s) passed: cancelling %d connection(s)",
            config.graceful_timeout,
            len(state.connections),
        )


def _callback_sockets(
    sockets: list[socket.socket],
    tls: ssl.SSLContext | None,
    proxy: proxy_protocol.ProxyProtocolSetup | None,
) -> list[socket.socket]:
    """The sockets whose HTTP/1.1 the transports' callbacks drive (``http11_callbacks``):
    plain TCP on asyncio. TLS, the PROXY protocol and unix sockets keep the accept loop."""
    if tls is not None or proxy is not None or sniffio.current_async_library() != "asyncio":
        return []
    return [sock for sock in sockets if sock.family in (socket.AF_INET, socket.AF_INET6)]


def _open_quic(
    config: Config, state: ServerState
) -> tuple[list[socket.socket], Callable[[], Coroutine[Any, Any, None]]] | None:
    """``quic_bind``'s UDP sockets and the task serving HTTP/3 on them (None when it is
    empty); sets the Alt-Svc header the TLS binds advertise it with. ``ConfigError`` when
    aioquic is missing, certfile is not set, or a socket cannot be bound."""
    if not config.quic_bind:
        return None
    shown = show_value(config.quic_bind)
    try:
        import aioquic  # noqa: F401
    except ImportError:
        raise ConfigError(
            f"config: quic_bind = {shown}: aioquic is not installed (pip install 'tricorn[h3]')"
        ) from None
    if not config.certfile:
        raise ConfigError(f"config: quic_bind = {shown}: needs certfile (QUIC is always TLS)")
    from tricorn.server import quic

    configuration = quic.quic_configuration(config)
    sockets = quic.open_quic_sockets(config)
    port = sockets[0].getsockname()[1]
    for sock in sockets:
        error_log.info("tricorn serving HTTP/3 on udp://%s:%d", *sock.getsockname()[:2])
    if config.alt_svc_max_age:
        state.alt_svc = [(b"alt-svc", b'h3=":%d"; ma=%d' % (port, config.alt_svc_max_age))]
    return sockets, lambda: quic.serve_quic(state, sockets, configuration)


def _stream_adopter() -> Callable[[SocketStream], SocketStream]:
    """The leaner socket stream of the running backend, which takes over accepted streams.

    trio's module is imported here, not at the top: the backend choice reads "trio was
    imported" as "the app uses trio" (``backends.app_uses_trio``).
    """
    if sniffio.current_async_library() == "trio":
        from tricorn.server.trio_stream import TrioSocketStream

        return TrioSocketStream.adopt
    return AsyncioSocketStream.adopt


@dataclass(frozen=True, slots=True)
class _Setup:
    """How an accepted socket is set up, the same for every connection of one ``serve``."""

    #: The backend's leaner socket stream takes the accepted one over.
    adopt: Callable[[SocketStream], SocketStream]
    tls: ssl.SSLContext | None
    #: None when ``proxy_protocol`` is off.
    proxy: proxy_protocol.ProxyProtocolSetup | None = None


async def _accept_loop(listener: SocketListener, state: ServerState, setup: _Setup) -> None:
    while not state.shutting_down:
        try:
            transport = await listener.accept()
        except OSError as error:
            # EMFILE/ENFILE/ENOBUFS: keep the server alive and try again shortly.
            error_log.warning("accept() failed: %s", error)
            await anyio.sleep(ACCEPT_BACKOFF)
            continue
        except anyio.ClosedResourceError:
            return
        state.spawn(_handle_connection, transport, state, setup)


async def _handle_connection(transport: SocketStream, state: ServerState, setup: _Setup) -> None:
    # Runs in the server's task group (ServerState.spawn): nothing may escape but cancellation.
    client: tuple[str, int] | None = None
    stream: ByteStream = transport
    try:
        client, server = peer_addresses(transport)
        transport = setup.adopt(transport)
        stream = transport
        # The steps before the first byte of HTTP (a PROXY protocol header comes before TLS).
        scheme, protocol = "http", None
        extensions: dict[str, object] | None = None  # a dict only where there is one to give
        header: ProxyHeader | None = None
        if setup.proxy is not None:
            accepted = await proxy_protocol.accept(stream, setup.proxy, client)
            if isinstance(accepted, proxy_protocol.Refused):
                if accepted.result is not None and (metrics := state.metrics) is not None:
                    metrics.proxy_protocol_result(accepted.result)
                await anyio.aclose_forcefully(stream)
                return
            stream, header = accepted
            if header is not None and (metrics := state.metrics) is not None:
                metrics.proxy_protocol_result("proxy" if header.relayed else "local")
            if header is not None:
                client, server = proxy_protocol.endpoints(header, client, server)
        if setup.tls is not None:
            try:
                tls_stream = await wrap_server_side(
                    stream, setup.tls, state.config.tls_handshake_timeout
                )
            except HandshakeFailed as error:
                peer = format_client(client) or "unix socket peer"
                error_log.debug("TLS handshake with %s failed: %s", peer, error)
                if (metrics := state.metrics) is not None:
                    metrics.tls_failed(error)
                return
            stream, scheme, protocol = tls_stream, "https", alpn_protocol(tls_stream)
            extensions = {"tls": tls_extension(tls_stream)}
        if header is not None:
            scheme = proxy_protocol.scheme(header, scheme)
            extensions = {**(extensions or {}), **proxy_protocol.extensions(header)}
        connection = connection_class(protocol)(
            state, stream, client=client, server=server, scheme=scheme, extensions=extensions
        )
    except Exception:
        error_log.exception("Unexpected error on the connection from %s", client)
        await anyio.aclose_forcefully(stream)
        return
    await run_connections(connection)


async def run_connections(connection: Connection[Any]) -> None:
    """Serve ``connection``, then each connection it hands its transport to (h2c), until
    the transport closes. Nothing escapes but cancellation (it runs in the server's tasks).
    """
    handoff: Handoff | None = None
    try:
        while True:
            handoff = await connection.run(handoff)
            if handoff is None:
                return
            given = {  # what came with the transport, not what the protocol offered
                name: value
                for name, value in connection.extensions.items()
                if name not in connection.EXTENSIONS
            }
            connection = CONNECTION_CLASSES[handoff.protocol](
                connection.state,
                connection.transport,
                client=connection.client,
                server=connection.server,
                scheme=connection.scheme,
                extensions=given or None,
            )
    except Exception:
        error_log.exception("Unexpected error on the connection from %s", connection.client)
        await anyio.aclose_forcefully(connection.transport)


async def _serve_until_signalled(app: ASGI3App, config: Config) -> None:
    shutdown = anyio.Event()
    async with anyio.create_task_group() as group:

        async def watch_signals() -> None:
            signums = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGUSR1)
            with anyio.open_signal_receiver(*signums) as signals:
                async for signum in signals:
                    if signum == signal.SIGUSR1:
                        reopen_logs("Received SIGUSR1")
                        continue
                    if signum == signal.SIGHUP:
                        # One process cannot re-import its app in place: only the supervisor
                        # (workers >= 2) rolls workers. Dying on it would cut every request.
                        error_log.warning(
                            "Received SIGHUP: ignored (a rolling restart needs workers >= 2)"
                        )
                        continue
                    if shutdown.is_set():
                        error_log.warning("Second signal: stopping now")
                        group.cancel_scope.cancel()
                        return
                    error_log.info(
                        "Received %s: shutting down gracefully (send it again to stop now)",
                        signal.Signals(signum).name,
                    )
                    systemd.notify("STOPPING=1")
                    shutdown.set()

        async def serve_then_stop(*, task_status: TaskStatus[list[BoundAddress]]) -> None:
            await serve(app, config, shutdown_trigger=shutdown.wait, task_status=task_status)
            group.cancel_scope.cancel()  # the signal watcher and the watchdog

        group.start_soon(watch_signals)
        addresses = await group.start(serve_then_stop)
        freeze_after_startup(config)  # the app has started: gc_freeze
        systemd.notify("READY=1", f"STATUS=serving on {len(addresses)} socket(s)")
        interval = systemd.watchdog_interval()
        if interval is not None:
            group.start_soon(_watchdog, interval)


async def _watchdog(interval: float) -> None:
    """``WATCHDOG=1`` every ``interval`` seconds, from the event loop: a blocked loop stops
    the pings and systemd restarts the service."""
    while True:
        systemd.notify("WATCHDOG=1", wait=False)
        await anyio.sleep(interval)


def run(app: ASGI3App, config: Config) -> int:
    """Serve ``app`` until SIGINT or SIGTERM; return the process exit status.

    0 after a clean shutdown, 2 for a configuration problem (a bind that cannot be opened),
    3 when the app's lifespan startup or shutdown failed.
    """
    try:
        backend, options, reason = backend_options(config)
        error_log.info("Running on %s (%s)", "uvloop" if options else backend, reason)
        anyio.run(_serve_until_signalled, app, config, backend=backend, backend_options=options)
    except KeyboardInterrupt:
        return 0
    except (ConfigError, LifespanFailure) as error:
        return _exit_status(error)
    except BaseExceptionGroup as group:
        leaves = _leaves(group)
        if len(leaves) == 1 and isinstance(leaves[0], ConfigError | LifespanFailure):
            return _exit_status(leaves[0])
        raise
    return 0


def _exit_status(error: ConfigError | LifespanFailure) -> int:
    error_log.error("%s", error)
    return 2 if isinstance(error, ConfigError) else 3
