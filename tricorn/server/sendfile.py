"""Zero-copy file bodies: ``os.sendfile`` from an open file straight into a plain TCP socket.

Used for ``http.response.pathsend`` over cleartext HTTP/1.1 (``HTTP11Connection.send_file``).
The socket streams of both backends (``TrioSocketStream``, ``AsyncioSocketStream``) offer
what it needs, ``FileSocket``: the socket's descriptor and a wait until the socket takes
more bytes. Anything else (TLS, a stream that buffers writes of its own) has no such face,
and the file is then read and sent as body messages instead.

``os.sendfile`` on a non-blocking socket sends what fits in the socket's buffer and returns;
when nothing fits it raises ``BlockingIOError`` and we wait for the socket to become
writable: that is the backpressure, and a client that does not read stalls only its own
response. Reading the file happens in the kernel, in the event loop's thread: for a file
that is not in the page cache each call may wait for the disk (as in every server that uses
sendfile without a thread pool); ``SENDFILE_BLOCK`` bounds what one call moves.
"""

from __future__ import annotations

import errno
from typing import Protocol, cast, runtime_checkable

from tricorn.errors import ClientDisconnected

#: The most bytes one ``os.sendfile`` call is asked to send (a call returns sooner when the
#: socket's buffer is full, which over a network is far less).
SENDFILE_BLOCK = 4 * 1024 * 1024

#: What ``os.sendfile`` raises where it cannot be used (a file it cannot map, a socket type
#: it does not take, no sendfile in the kernel): the bytes are then sent the ordinary way.
UNAVAILABLE_ERRNOS = frozenset(
    code
    for code in (
        errno.EINVAL,
        errno.ENOSYS,
        errno.ENOTSOCK,
        errno.EOPNOTSUPP,
        getattr(errno, "ENOTSUP", errno.EOPNOTSUPP),
        errno.ESPIPE,
        errno.EOVERFLOW,
    )
)


def unsent(chunks: list[bytes], sent: int) -> bytes:
    """What a gathering write (``send_chunks``: ``sendmsg``, ``os.writev``) of ``chunks``
    left unsent after the kernel took ``sent`` bytes: all of it when the write could not
    go, mostly nothing. The socket streams send it the ordinary way."""
    return b"".join(chunks)[sent:] if sent < sum(map(len, chunks)) else b""


@runtime_checkable
class FileSocket(Protocol):
    """A socket stream that can take ``os.sendfile``."""

    def sendfile_fd(self) -> int | None:
        """The socket's descriptor to ``os.sendfile`` into now; None when the stream still
        holds unsent bytes of its own (they must go first) or is closed."""

    async def wait_writable(self) -> None:
        """Return once the socket may take more bytes (or has failed: the next send says
        how). Raises ``anyio.ClosedResourceError`` once the stream is closed."""


#: ``isinstance(x, FileSocket)`` per transport class: a runtime protocol check walks the
#: protocol's members on every call, once per connection otherwise.
_FILE_SOCKET_CLASSES: dict[type, bool] = {}


def file_socket(transport: object) -> FileSocket | None:
    """``transport`` itself when it can take ``os.sendfile``, else None."""
    kind = type(transport)
    takes = _FILE_SOCKET_CLASSES.get(kind)
    if takes is None:
        takes = _FILE_SOCKET_CLASSES[kind] = isinstance(transport, FileSocket)
    return cast(FileSocket, transport) if takes else None


class FileCutShort(ClientDisconnected):
    """The client went away while a file was being sent, after ``sent`` bytes of it."""

    def __init__(self, sent: int) -> None:
        super().__init__(f"the client has gone away after {sent} bytes of the file")
        self.sent = sent
