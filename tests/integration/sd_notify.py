"""A service manager's end of ``NOTIFY_SOCKET`` for the tests: every datagram, as it comes.

A thread reads the socket all the time, as systemd does. A test that read only while it
waited for one message would let the datagrams pile up meanwhile (a request, a signal, the
wait for the exit), and a unix datagram socket queues only ``net.unix.max_dgram_qlen``
of them (10 by default; systemd raises it to 512): the next ``sd_notify`` of the server
then blocks, in the supervisor's loop or in the event loop that pings the watchdog, until
someone reads.
"""

from __future__ import annotations

import socket
import struct
import threading
import time
from types import TracebackType

#: Hang guard of one wait for a datagram, in seconds (a loaded machine starts slowly).
GUARD = 30.0
_CREDENTIALS = struct.calcsize("iII")


class Notifications:
    """Bind ``address`` (a path, or ``@name`` in the abstract namespace, as ``NOTIFY_SOCKET``
    spells it) and collect ``(sender pid, text)`` for every datagram until ``close()``.

    The sender's pid comes from the kernel (SCM_CREDENTIALS), as systemd reads it to apply
    NotifyAccess=main. ``until`` reads them in order, one cursor per listener.
    """

    def __init__(self, address: str) -> None:
        self.address = address
        self._socket = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self._socket.bind("\0" + address[1:] if address.startswith("@") else address)
        self._socket.setsockopt(socket.SOL_SOCKET, socket.SO_PASSCRED, 1)
        self._socket.settimeout(0.1)  # how often the reader looks at ``_closed``
        self._seen: list[tuple[int, str]] = []
        self._cursor = 0
        self._changed = threading.Condition()
        self._closed = False
        self._thread = threading.Thread(target=self._read, name="sd-notify", daemon=True)
        self._thread.start()

    def _read(self) -> None:
        space = socket.CMSG_SPACE(_CREDENTIALS)
        while not self._closed:
            try:
                data, ancillary, _, _ = self._socket.recvmsg(4096, space)
            except TimeoutError:
                continue
            except OSError:
                return
            pids = [
                struct.unpack("iII", cdata)[0]
                for level, kind, cdata in ancillary
                if level == socket.SOL_SOCKET and kind == socket.SCM_CREDENTIALS
            ]
            with self._changed:
                self._seen.append((pids[0] if pids else 0, data.decode()))
                self._changed.notify_all()

    def until(self, wanted: str, timeout: float = GUARD) -> list[tuple[int, str]]:
        """The datagrams after the last ``until``'s, up to the first that holds ``wanted``."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while True:
                for index in range(self._cursor, len(self._seen)):
                    if wanted in self._seen[index][1]:
                        taken = self._seen[self._cursor : index + 1]
                        self._cursor = index + 1
                        return taken
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(
                        f"no {wanted!r} from NOTIFY_SOCKET in {timeout:g} s; "
                        f"got {[text for _, text in self._seen]}"
                    )
                self._changed.wait(left)

    def texts(self, wanted: str) -> list[str]:
        """Like ``until``, the texts alone."""
        return [text for _, text in self.until(wanted)]

    def close(self) -> None:
        self._closed = True
        self._thread.join(GUARD)
        self._socket.close()

    def __enter__(self) -> Notifications:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()
