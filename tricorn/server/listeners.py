"""Binds: turn the configured addresses into listening sockets and anyio listeners."""

from __future__ import annotations

import os
import socket
import stat
import weakref
from collections.abc import Callable
from dataclasses import dataclass

import anyio
from anyio.abc import SocketAttribute, SocketListener, SocketStream

from tricorn.config import Config
from tricorn.config.loader import parse_bind
from tricorn.errors import ConfigError
from tricorn.server import systemd

#: The ``bind`` setting's default: left so, systemd's passed sockets (if any) are used.
DEFAULT_BIND = Config().bind


@dataclass(frozen=True, slots=True)
class BoundAddress:
    """One address the server listens on, as returned by ``serve`` through ``task_status``."""

    family: socket.AddressFamily
    #: ``(host, port)`` for TCP, the socket path for unix sockets.
    address: tuple[str, int] | str

    def url(self, scheme: str = "http") -> str:
        if isinstance(self.address, str):
            return f"{scheme}+unix://{self.address}"
        host, port = self.address
        if ":" in host:
            host = f"[{host}]"
        return f"{scheme}://{host}:{port}"


def _tcp_sockets(value: str, backlog: int) -> list[socket.socket]:
    host, port = parse_bind(value)
    try:
        infos = socket.getaddrinfo(
            host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE | socket.AI_ADDRCONFIG
        )
    except socket.gaierror as error:
        raise ConfigError(f"config: bind = {value!r}: cannot resolve host ({error})") from None
    sockets: list[socket.socket] = []
    seen: set[tuple[int, str]] = set()
    for family, kind, proto, _, resolved in infos:
        key = (family, str(resolved[0]))
        if key in seen:
            continue
        seen.add(key)
        sock = socket.socket(family, kind, proto)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if family == socket.AF_INET6:
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            address = resolved
            if port == 0 and sockets:
                # "localhost:0" gives two families; keep them on one port number.
                address = (resolved[0], sockets[0].getsockname()[1], *resolved[2:])
            sock.bind(address)
            sock.listen(backlog)
        except OSError as error:
            sock.close()
            for other in sockets:
                other.close()
            raise ConfigError(
                f"config: bind = {value!r}: cannot listen ({error.strerror})"
            ) from None
        sockets.append(sock)
    return sockets


@dataclass(frozen=True, slots=True)
class UnixSocketOptions:
    """Permissions of the unix sockets the server creates (see ``unix_socket_*`` settings)."""

    mode: int = 0o660
    user: str = ""
    group: str = ""


#: The socket files ``open_sockets`` created, by their socket: ``(path, st_dev, st_ino)``.
#: ``close_sockets`` removes them, not those of sockets passed in (systemd's, ``fd://N``).
_created_files: weakref.WeakKeyDictionary[socket.socket, tuple[str, int, int]] = (
    weakref.WeakKeyDictionary()
)


def _unix_socket(path: str, backlog: int, options: UnixSocketOptions) -> socket.socket:
    value = f"unix:{path}"
    _remove_stale_socket(path, value)
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.bind(path)
        info = os.stat(path)
        _created_files[sock] = (path, info.st_dev, info.st_ino)
        os.chmod(path, options.mode)
        if options.user or options.group:
            os.chown(path, _user_id(options.user), _group_id(options.group))
        sock.listen(backlog)
    except OSError as error:
        sock.close()
        raise ConfigError(f"config: bind = {value!r}: cannot listen ({error.strerror})") from None
    except BaseException:
        sock.close()
        raise
    return sock


def _remove_stale_socket(path: str, value: str) -> None:
    """Unlink a socket file left by an earlier run; refuse one that a server still answers on."""
    try:
        if not stat.S_ISSOCK(os.stat(path).st_mode):
            return  # not a socket (or nothing there): bind() says what is wrong
    except OSError:
        return
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        probe.connect(path)
    except OSError:
        os.unlink(path)  # nothing listens: stale
        return
    finally:
        probe.close()
    raise ConfigError(
        f"config: bind = {value!r}: in use (another server is listening on that socket)"
    )


def _user_id(user: str) -> int:
    import pwd

    return _account_id(user, "unix_socket_user", "user", lambda name: pwd.getpwnam(name).pw_uid)


def _group_id(group: str) -> int:
    import grp

    return _account_id(group, "unix_socket_group", "group", lambda name: grp.getgrnam(name).gr_gid)


def _account_id(value: str, setting: str, kind: str, lookup: Callable[[str], int]) -> int:
    """-1 (keep) for an empty value, a number as given, else the id of that name."""
    if not value:
        return -1
    if value.isdigit():
        return int(value)
    try:
        return lookup(value)
    except KeyError:
        raise ConfigError(f"config: {setting} = {value!r}: no such {kind}") from None


def _fd_socket(value: str) -> socket.socket:
    text = value.removeprefix("fd://")
    if not text.isdigit():
        raise ConfigError(f"config: bind = {value!r}: expected 'fd://N' with N a file descriptor")
    try:
        sock = socket.socket(fileno=int(text))
    except OSError as error:
        raise ConfigError(f"config: bind = {value!r}: not a socket ({error.strerror})") from None
    return sock


def open_sockets(
    binds: list[str], backlog: int, unix: UnixSocketOptions | None = None
) -> list[socket.socket]:
    """Create, bind and listen on one socket per address (two for a name with v4 and v6)."""
    sockets: list[socket.socket] = []
    try:
        for value in binds:
            if value.startswith("unix:"):
                sockets.append(
                    _unix_socket(value.removeprefix("unix:"), backlog, unix or UnixSocketOptions())
                )
            elif value.startswith("fd://"):
                sockets.append(_fd_socket(value))
            else:
                sockets.extend(_tcp_sockets(value, backlog))
    except BaseException:
        close_sockets(sockets)
        raise
    for sock in sockets:
        sock.setblocking(False)
    return sockets


def close_sockets(sockets: list[socket.socket]) -> None:
    """Close listening sockets, and remove the socket files ``open_sockets`` created for
    them, as Uvicorn and gunicorn do at exit: a proxy then gets "no such file" rather
    than "connection refused" from a path nobody serves. A file that is no longer the one
    created (replaced by another server since) is left alone. Safe to call twice."""
    for sock in sockets:
        created = _created_files.pop(sock, None)
        sock.close()
        if created is None:
            continue
        path, device, inode = created
        try:
            info = os.stat(path)
            if (info.st_dev, info.st_ino) == (device, inode):
                os.unlink(path)
        except OSError:
            pass  # gone already, or not ours to remove


def open_config_sockets(config: Config) -> list[socket.socket]:
    """The listening sockets for ``config``: the ones systemd passed (socket activation)
    when ``bind`` is left at its default, else one per configured address."""
    if config.bind == DEFAULT_BIND:
        passed = systemd.listen_sockets()
        if passed:
            for sock in passed:
                sock.setblocking(False)
            return passed
    options = UnixSocketOptions(
        int(config.unix_socket_mode, 8), config.unix_socket_user, config.unix_socket_group
    )
    return open_sockets(config.bind, config.backlog, options)


def bound_address(sock: socket.socket) -> BoundAddress:
    name = sock.getsockname()
    if sock.family == socket.AF_UNIX:
        return BoundAddress(sock.family, str(name))
    return BoundAddress(sock.family, (str(name[0]), int(name[1])))


async def to_listener(sock: socket.socket) -> SocketListener:
    """Wrap a listening socket for the running backend (the listener takes ownership)."""
    return await SocketListener.from_socket(sock)


def peer_addresses(
    stream: SocketStream,
) -> tuple[tuple[str, int] | None, tuple[str, int] | None]:
    """The ASGI ``client`` and ``server`` of a connection (None where there is no address)."""
    # From the socket itself: anyio's ``extra`` builds its table of attribute getters on
    # every call, a measurable cost per connection (Connection: close).
    # (asyncio's is a TransportSocket, which has both methods; trio's a socket.socket.)
    sock = getattr(stream, "_raw_socket", None)
    try:
        if sock is not None and hasattr(sock, "getpeername"):
            remote, local = sock.getpeername(), sock.getsockname()
        else:
            remote = stream.extra(SocketAttribute.remote_address)
            local = stream.extra(SocketAttribute.local_address)
    except OSError:  # the peer has gone already; it is found out at the first read
        return None, None
    except anyio.TypedAttributeLookupError:  # pragma: no cover - every socket has them
        return None, None
    client = (str(remote[0]), int(remote[1])) if isinstance(remote, tuple) else None
    server = (str(local[0]), int(local[1])) if isinstance(local, tuple) else None
    return client, server
