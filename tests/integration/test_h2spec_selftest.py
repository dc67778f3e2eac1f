"""Self-tests of the h2spec suite itself, against tiny in-test servers (no tricorn involved).

- A silent server (accepts, reads, never answers) must not let a single case pass: no case may
  pass on a timeout alone.
- A minimal server built on the h2 library must pass the generic and PING cases, so the client
  core (preface, HPACK, flow control, response reading) is known to work.
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Callable, Iterator

import h2.config
import h2.connection
import h2.events
import h2.exceptions
import pytest

from h2spec import run_suite
from h2spec.runner import selected_cases


def _serve(handler: Callable[[socket.socket], None]) -> Iterator[int]:
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)
    listener.settimeout(0.1)
    stop = threading.Event()

    def accept_loop() -> None:
        while not stop.is_set():
            try:
                client, _ = listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            threading.Thread(target=handler, args=(client,), daemon=True).start()

    thread = threading.Thread(target=accept_loop, daemon=True)
    thread.start()
    try:
        yield listener.getsockname()[1]
    finally:
        stop.set()
        thread.join(2)
        listener.close()


def _silent(client: socket.socket) -> None:
    client.settimeout(5)
    with client:
        try:
            while client.recv(65_536):
                pass
        except OSError:
            pass


def _h2_server(client: socket.socket) -> None:
    client.settimeout(5)
    conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=False))
    conn.initiate_connection()
    methods: dict[int, str] = {}
    with client:
        try:
            client.sendall(conn.data_to_send())
            while data := client.recv(65_536):
                try:
                    events = conn.receive_data(data)
                except h2.exceptions.ProtocolError:
                    client.sendall(conn.data_to_send())
                    return
                for event in events:
                    if isinstance(event, h2.events.RequestReceived):
                        methods[event.stream_id] = dict(event.headers).get(b":method", b"").decode()
                    elif isinstance(event, h2.events.DataReceived):
                        conn.acknowledge_received_data(
                            event.flow_controlled_length, event.stream_id
                        )
                    elif isinstance(event, h2.events.StreamEnded):
                        head = methods.get(event.stream_id) == "HEAD"
                        headers = [(":status", "200"), ("content-length", "2")]
                        conn.send_headers(event.stream_id, headers, end_stream=head)
                        if not head:
                            conn.send_data(event.stream_id, b"ok", end_stream=True)
                client.sendall(conn.data_to_send())
        except OSError:
            pass


@pytest.fixture
def silent_port() -> Iterator[int]:
    yield from _serve(_silent)


@pytest.fixture
def h2_port() -> Iterator[int]:
    yield from _serve(_h2_server)


def test_enough_cases_with_unique_ids() -> None:
    cases = selected_cases()
    assert len(cases) >= 140
    assert len({case.id for case in cases}) == len(cases)
    assert all(case.requirement and case.expects for case in cases)


def test_silent_server_passes_nothing(silent_port: int) -> None:
    result = run_suite("127.0.0.1", silent_port, timeout=0.02)
    assert result.passed == 0, [r.line() for r in result.results if r.passed]
    assert result.failed == len(result.results)


@pytest.mark.parametrize("section", ["generic/", "6.7/", "6.5.3/1", "4.1/"])
def test_h2_library_server_passes_basic_cases(h2_port: int, section: str) -> None:
    result = run_suite("127.0.0.1", h2_port, timeout=2.0, filter=section)
    assert result.results
    assert result.failed == 0, [r.line() for r in result.failures]
