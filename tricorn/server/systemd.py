"""systemd integration without libsystemd: socket activation (``LISTEN_FDS``) and the
``sd_notify`` datagram protocol (``NOTIFY_SOCKET``: READY, RELOADING, STOPPING, WATCHDOG).

Both are plain environment variables and a unix datagram socket, as sd_listen_fds(3) and
sd_notify(3) describe them; every function here is a no-op outside systemd.
"""

from __future__ import annotations

import logging
import os
import socket

from tricorn.constants import ERROR_LOGGER

error_log = logging.getLogger(ERROR_LOGGER)

#: The first file descriptor systemd passes (SD_LISTEN_FDS_START).
LISTEN_FDS_START = 3


def listen_fds(environ: dict[str, str] | None = None) -> list[tuple[int, str]]:
    """The sockets systemd passed to this process: ``(fd, name)`` pairs, or ``[]``.

    Only when ``LISTEN_PID`` is this process (the variables are inherited by children, who
    must not take them for their own). Names come from ``LISTEN_FDNAMES`` (``unknown``
    where systemd gave none).
    """
    env = os.environ if environ is None else environ
    if env.get("LISTEN_PID", "") != str(os.getpid()):
        return []
    try:
        count = int(env.get("LISTEN_FDS", "0"))
    except ValueError:
        return []
    names = env.get("LISTEN_FDNAMES", "").split(":") if env.get("LISTEN_FDNAMES") else []
    names += ["unknown"] * (count - len(names))
    return [(LISTEN_FDS_START + index, names[index]) for index in range(max(count, 0))]


def listen_sockets(environ: dict[str, str] | None = None) -> list[socket.socket]:
    """The passed sockets as socket objects (the family and type read from each fd)."""
    sockets = []
    for fd, name in listen_fds(environ):
        sock = socket.socket(fileno=fd)
        error_log.info("Using the socket systemd passed as fd %d (%s): %s", fd, name, _name(sock))
        sockets.append(sock)
    return sockets


def _name(sock: socket.socket) -> str:
    address = sock.getsockname()
    if sock.family == socket.AF_UNIX:
        return f"unix:{address if isinstance(address, str) else address.decode(errors='replace')}"
    host, port = address[0], address[1]
    return f"[{host}]:{port}" if sock.family == socket.AF_INET6 else f"{host}:{port}"


# How long READY=1 or STOPPING=1 waits for room in a full notify socket (see notify).
NOTIFY_TIMEOUT = 2.0


def notify(*states: str, environ: dict[str, str] | None = None, wait: bool = True) -> bool:
    """Send ``states`` (``"READY=1"``, ``"STATUS=..."``) to systemd; False outside systemd.

    Never raises: a service manager that went away must not take the server with it. The
    socket queues only ``net.unix.max_dgram_qlen`` datagrams; when the manager does not
    read and the queue is full, a message waits at most ``NOTIFY_TIMEOUT`` seconds (READY,
    STOPPING: systemd needs them) and with ``wait=False`` not at all (the watchdog pings,
    sent from the event loop: the next one comes anyway), then it is dropped.
    """
    env = os.environ if environ is None else environ
    address = env.get("NOTIFY_SOCKET", "")
    if not address or not states:
        return False
    if address.startswith("@"):  # the abstract namespace
        address = "\0" + address[1:]
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
            sock.connect(address)
            sock.settimeout(NOTIFY_TIMEOUT if wait else 0.0)
            sock.sendall("\n".join(states).encode())
    except OSError as error:
        error_log.debug("sd_notify to %r failed: %s", address, error)
        return False
    return True


def watchdog_interval(environ: dict[str, str] | None = None) -> float | None:
    """Seconds between ``WATCHDOG=1`` pings (half of ``WATCHDOG_USEC``), or None."""
    env = os.environ if environ is None else environ
    if env.get("WATCHDOG_PID", str(os.getpid())) != str(os.getpid()):
        return None
    try:
        usec = int(env.get("WATCHDOG_USEC", "0"))
    except ValueError:
        return None
    return usec / 2_000_000 if usec > 0 else None
